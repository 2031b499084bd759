"""The optional kustomize components of manifests/components/ (cert-manager, monitoring), rendered by
the real kubectl kustomize.

The cert-manager component is checked twice: for its structure (it names exactly what the base
manifests use), and by a server-side dry run against a member where cert-manager's own Certificate
and Issuer CRDs are installed. Those come from cert-manager's Go module (``deploy/crds``): Helm
templates whose template parts sit in YAML comments and in label values, so dropping the labels and
annotations leaves the plain CRD.
"""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from mcs_apiserver.install import plan
from mcs_apiserver.install.run import MANIFESTS
from mcs_apiserver.local.binaries import Binaries
from tests.e2e.helpers import eventually

pytestmark = pytest.mark.e2e


def render(binaries: Binaries, tmp_path: Path, component: str) -> list[dict]:
    (tmp_path / "kustomization.yaml").write_text(yaml.safe_dump({
        "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
        # kustomize takes relative paths only
        "resources": [os.path.relpath(MANIFESTS, tmp_path)],
        "components": [os.path.relpath(MANIFESTS / "components" / component, tmp_path)]}))
    out = subprocess.run([str(binaries.kubectl), "kustomize", str(tmp_path)], capture_output=True, text=True, check=True).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def test_the_cert_manager_component_issues_the_serving_secret_and_injects_its_ca_everywhere(binaries, tmp_path):
    objects = render(binaries, tmp_path, "cert-manager")
    by_kind: dict[str, list[dict]] = {}
    for o in objects:
        by_kind.setdefault(o["kind"], []).append(o)
    serving = next(c for c in by_kind["Certificate"] if c["metadata"]["name"] == "mcs-apiserver-serving")
    deployment = by_kind["Deployment"][0]
    mounted = {v["secret"]["secretName"] for v in deployment["spec"]["template"]["spec"]["volumes"] if "secret" in v}
    assert serving["spec"]["secretName"] in mounted
    assert "mcs-apiserver.mcs-system.svc" in serving["spec"]["dnsNames"]
    issuers = {i["metadata"]["name"] for i in by_kind["Issuer"]}
    assert serving["spec"]["issuerRef"]["name"] in issuers
    ca = next(c for c in by_kind["Certificate"] if c["spec"].get("isCA"))
    assert ca["spec"]["issuerRef"]["name"] in issuers
    annotated = [o for kind in ("APIService", "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration")
                 for o in by_kind[kind]]
    assert len(annotated) == 3
    for o in annotated:
        assert o["metadata"]["annotations"]["cert-manager.io/inject-ca-from"] == \
            f"{serving['metadata']['namespace']}/{serving['metadata']['name']}"
    # every other object of the base is still there, unchanged in number
    base = subprocess.run([str(binaries.kubectl), "kustomize", str(MANIFESTS)], capture_output=True, text=True,
                          check=True).stdout
    assert len(objects) == len([d for d in yaml.safe_load_all(base) if d]) + 4


#: cert-manager release whose CRDs the dry run uses (from the Go module proxy, cached by Go).
CERT_MANAGER = "github.com/cert-manager/cert-manager@v1.16.2"


def cert_manager_crds(names: tuple[str, ...]) -> list[dict]:
    info = json.loads(subprocess.run(["go", "mod", "download", "-json", CERT_MANAGER], capture_output=True,
                                     text=True, check=True, timeout=600).stdout)
    crds = []
    for name in names:
        crd = yaml.safe_load((Path(info["Dir"]) / "deploy" / "crds" / f"crd-{name}.yaml").read_text())
        crd["metadata"] = {"name": crd["metadata"]["name"]}  # the Helm-templated labels go
        crds.append(crd)
    return crds


def test_the_cert_manager_component_is_accepted_by_a_server_side_dry_run(clusterset, kubectl, tmp_path):
    crds = cert_manager_crds(("certificates", "issuers"))
    listing = json.dumps({"apiVersion": "v1", "kind": "List", "items": crds})
    kubectl.apply(listing)
    try:
        for crd in crds:
            kubectl.run("wait", "--for=condition=Established", f"crd/{crd['metadata']['name']}", "--timeout=60s")
        objects = render(clusterset.binaries, tmp_path, "cert-manager")
        proc = kubectl.run("apply", "--dry-run=server", "--server-side", "--force-conflicts",
                           "--field-manager=mcs-apiserver-install", "-k", str(tmp_path))
        lines = [line for line in proc.stdout.splitlines() if line.strip()]
        assert len(lines) == len(objects) and all(line.endswith("(server dry run)") for line in lines)
        for kind in ("certificate.cert-manager.io/mcs-apiserver-serving", "issuer.cert-manager.io/mcs-apiserver-ca"):
            assert any(line.startswith(kind + " ") for line in lines), proc.stdout
    finally:
        kubectl.run("delete", "-f", "-", input=listing)


def test_the_monitoring_component_scrapes_the_https_port_with_the_serving_ca(binaries, tmp_path):
    objects = render(binaries, tmp_path, "monitoring")
    monitor = next(o for o in objects if o["kind"] == "ServiceMonitor")
    service = next(o for o in objects if o["kind"] == "Service" and o["metadata"]["name"] == "mcs-apiserver")
    endpoint = monitor["spec"]["endpoints"][0]
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert endpoint["tlsConfig"]["ca"]["secret"] == {"name": plan.SERVING_SECRET, "key": "ca.crt"}
    role = next(o for o in objects if o["kind"] == "ClusterRole" and o["metadata"]["name"].endswith("metrics-reader"))
    assert role["rules"] == [{"nonResourceURLs": ["/metrics"], "verbs": ["get"]}]


def scrape(clusterset, token: str) -> tuple[int, str]:
    port = clusterset.state.member("member-1").mcs_port
    context = ssl.create_default_context(cafile=str(clusterset.state_dir / "pki" / "mcs-apiserver-ca.crt"))
    request = urllib.request.Request(f"https://127.0.0.1:{port}/metrics", headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, context=context, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, ""


def test_the_metrics_reader_role_lets_a_scraper_token_read_metrics_and_nothing_else_does(clusterset, kubectl):
    role = next(o for o in yaml.safe_load_all((MANIFESTS / "components/monitoring/rbac.yaml").read_text())
                if o["kind"] == "ClusterRole")
    kubectl.run("create", "serviceaccount", "scraper", "-n", "default")
    try:
        token = kubectl.run("create", "token", "scraper", "-n", "default").stdout.strip()
        assert scrape(clusterset, token)[0] == 403
        kubectl.apply(json.dumps(role))
        kubectl.run("create", "clusterrolebinding", "scraper-metrics", f"--clusterrole={role['metadata']['name']}",
                    "--serviceaccount=default:scraper")
        code, text = eventually(lambda: (r := scrape(clusterset, token))[0] == 200 and r, timeout=30,
                                what="the scraper to be authorized")
        names = {f.name for f in text_string_to_metric_families(text)}
        assert {"mcs_apiserver_build_info", "process_resident_memory_bytes", "apiserver_request"} <= names
    finally:
        kubectl.run("delete", "clusterrolebinding", "scraper-metrics", "--ignore-not-found")
        kubectl.run("delete", "clusterrole", role["metadata"]["name"], "--ignore-not-found")
        kubectl.run("delete", "serviceaccount", "scraper", "-n", "default")
