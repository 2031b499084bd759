"""How an instance serves: certificate rotation without a restart, health, metrics, graceful stop."""

from __future__ import annotations

import json
import socket
import ssl
import subprocess
import urllib.request
from pathlib import Path

import pytest
from cryptography import x509
from prometheus_client.parser import text_string_to_metric_families

from certs import pki
from mcs_apiserver.local import processes
from mcs_apiserver.local.pki import MCS_NAMESPACE, MCS_SERVICE
from tests.e2e.helpers import eventually

pytestmark = pytest.mark.e2e


def _served_serial(port: int, ca_file: str) -> int:
    context = ssl.create_default_context(cafile=ca_file)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with context.wrap_socket(raw, server_hostname=f"{MCS_SERVICE}.{MCS_NAMESPACE}.svc") as tls:
            der = tls.getpeercert(binary_form=True)
    return x509.load_der_x509_certificate(der).serial_number


def test_a_rotated_serving_certificate_is_served_without_a_restart(clusterset, kubectl):
    root = clusterset.state_dir / "pki"
    port = clusterset.state.member("member-2").mcs_port
    ca_file = str(root / "mcs-apiserver-ca.crt")
    record = clusterset.state.process("member-2/mcs-apiserver")
    before = _served_serial(port, ca_file)
    ca = pki.load_cert_key(root / "mcs-apiserver-ca.crt", root / "mcs-apiserver-ca.key")
    dns, ips = pki.serving_names(MCS_SERVICE, MCS_NAMESPACE)
    fresh = pki.issue_serving_cert(ca, common_name=f"{MCS_SERVICE}.{MCS_NAMESPACE}.svc", dns_names=dns,
                                   ip_addresses=ips)
    pki.write_cert_key(fresh, root / "mcs-apiserver-serving.crt", root / "mcs-apiserver-serving.key",
                       overwrite=True)
    eventually(lambda: _served_serial(port, ca_file) == fresh.cert.serial_number, timeout=30,
               what="the new certificate to be served")
    assert fresh.cert.serial_number != before
    assert record is not None and processes.alive(record)  # same process, no restart
    # the aggregator still reaches it, verifying the new chain (a 503 "unable to handle" would fail)
    raw = kubectl.run("get", "--raw", "/apis/views.multicluster.x-k8s.io/v1alpha1/serviceimports",
                      context="member-2").stdout
    assert json.loads(raw)["kind"] == "ServiceImportList"


def test_health_endpoints_answer_without_credentials(clusterset):
    port = clusterset.state.member("member-1").mcs_port
    context = ssl.create_default_context(cafile=str(clusterset.state_dir / "pki" / "mcs-apiserver-ca.crt"))
    for path in ("/healthz", "/livez", "/readyz"):
        with urllib.request.urlopen(f"https://localhost:{port}{path}", context=context, timeout=5) as response:
            assert response.status == 200 and response.read() == b"ok"
    with urllib.request.urlopen(f"https://localhost:{port}/readyz?verbose", context=context, timeout=5) as response:
        text = response.read().decode()
    assert "[+]members-synced ok" in text and "readyz check passed" in text


def scrape(clusterset, member: str = "member-1") -> tuple[str, str]:
    """/metrics of ``member``'s instance as an authorized caller: (Content-Type, text)."""
    root = clusterset.state_dir / "pki"
    port = clusterset.state.member(member).mcs_port
    context = ssl.create_default_context(cafile=str(root / "mcs-apiserver-ca.crt"))
    context.load_cert_chain(root / "front-proxy-client.crt", root / "front-proxy-client.key")
    request = urllib.request.Request(f"https://localhost:{port}/metrics",
                                     headers={"X-Remote-User": "admin", "X-Remote-Group": "system:masters"})
    with urllib.request.urlopen(request, context=context, timeout=5) as response:
        return response.headers["Content-Type"], response.read().decode()


def test_metrics_are_served_in_the_prometheus_format_to_an_authorized_caller(clusterset):
    content_type, text = scrape(clusterset)
    assert content_type.startswith("text/plain")
    for member in ("member-1", "member-2", "member-3"):
        assert f'mcs_member_up{{member="{member}"}} 1.0' in text
    assert "# TYPE apiserver_request_total counter" in text
    assert "mcs_view_engine_run_seconds_count" in text


#: kube-apiserver's labels of apiserver_request_total (apiserver_request_duration_seconds: all but code).
KUBE_LABELS = {"verb", "dry_run", "group", "version", "resource", "subresource", "scope", "component", "code"}


def test_metrics_parse_and_count_kubectl_get_serviceimports_with_kube_apiservers_labels(clusterset, kubectl):
    def listed_cluster_wide() -> float:
        families = {f.name: f for f in text_string_to_metric_families(scrape(clusterset, "member-3")[1])}
        return sum(s.value for s in families["apiserver_request"].samples
                   if s.name == "apiserver_request_total" and s.labels["verb"] == "LIST"
                   and s.labels["resource"] == "serviceimports" and s.labels["scope"] == "cluster"
                   and s.labels["code"] == "200")

    before = listed_cluster_wide()
    kubectl.run("get", "serviceimports", "-A", context="member-3")
    eventually(lambda: listed_cluster_wide() == before + 1, what="kubectl's LIST counted")
    families = {f.name: f for f in text_string_to_metric_families(scrape(clusterset, "member-3")[1])}
    totals = [s for s in families["apiserver_request"].samples if s.name == "apiserver_request_total"]
    assert totals and all(set(s.labels) == KUBE_LABELS for s in totals)
    listed = next(s for s in totals if s.labels["verb"] == "LIST" and s.labels["scope"] == "cluster"
                  and s.labels["code"] == "200")
    assert listed.labels == {"verb": "LIST", "dry_run": "", "group": "views.multicluster.x-k8s.io",
                             "version": "v1alpha1", "resource": "serviceimports", "subresource": "",
                             "scope": "cluster", "component": "apiserver", "code": "200"}
    durations = [s for s in families["apiserver_request_duration_seconds"].samples
                 if s.name == "apiserver_request_duration_seconds_count"]
    assert durations and all(set(s.labels) == KUBE_LABELS - {"code"} for s in durations)
    build = families["mcs_apiserver_build_info"].samples[0]
    assert build.value == 1 and set(build.labels) == {"version", "git_commit", "python_version"}
    # the instances run from this checkout: the commit is its HEAD
    head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True,
                          cwd=Path(__file__).resolve().parent).stdout.strip()
    assert build.labels["git_commit"] == head
