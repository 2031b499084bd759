"""Publishing through the real kube-apiserver: member-1's instance, restarted with the publish flags and
the upstream ServiceImport CRD installed, writes upstream ServiceImports and MCS EndpointSlices for
exports of member-2 and member-3, updates them, deletes them, leaves foreign objects alone, and
leaves no orphan after a restart."""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import subprocess

import dns.exception
import dns.message
import dns.query
import dns.rdatatype
import pytest

from mcs_apiserver.local import cluster
from tests.e2e.helpers import endpoint_slice, eventually, namespace, service, service_export, unique_namespace

pytestmark = pytest.mark.e2e

UPSTREAM = "serviceimports.multicluster.x-k8s.io"
VIEWS = "serviceimports.views.multicluster.x-k8s.io"
CRD = cluster.MANIFESTS / "publish" / f"{UPSTREAM}.yaml"
MCS_SLICE_LABELS = "multicluster.kubernetes.io/service-name,multicluster.kubernetes.io/source-cluster"


@pytest.fixture(scope="module")
def publishing(clusterset):
    kubectl = clusterset.kubectl
    asyncio.run(cluster.enable_publishing(clusterset.state_dir, "member-1"))
    asyncio.run(cluster.restart_instance(clusterset.state_dir, "member-1", *cluster.PUBLISH_FLAGS))
    try:
        yield clusterset
    finally:
        # the CRD goes first: an instance that does not publish beside it would report the clash
        kubectl.run("delete", "-f", str(CRD), "--timeout=60s", context="member-1", check=False)
        asyncio.run(cluster.restart_instance(clusterset.state_dir, "member-1"))
        # While the upstream CRD existed, `kubectl get serviceimports` resolved to it, and kubectl's
        # discovery cache (shared by the session's tests) would keep that mapping for hours.
        shutil.rmtree(kubectl.cache_dir, ignore_errors=True)


def upstream(kubectl, ns: str, name: str):
    proc = kubectl.run("get", UPSTREAM, name, "-n", ns, "-o", "json", context="member-1", check=False)
    return json.loads(proc.stdout) if proc.returncode == 0 else None


def mcs_slices(kubectl, ns: str) -> list[dict]:
    return kubectl.json("get", "endpointslices", "-n", ns, "-l", MCS_SLICE_LABELS, context="member-1")["items"]


def export_with_endpoints(kubectl, ns: str, context: str, addresses: list[str]) -> None:
    kubectl.apply(namespace(ns), context)
    kubectl.apply(service("web", ns), context)
    kubectl.apply(endpoint_slice("web", ns, addresses), context)
    kubectl.apply(service_export("web", ns), context)


def test_exports_appear_as_upstream_serviceimports_and_mcs_endpointslices_and_vanish_on_unexport(publishing):
    kubectl = publishing.kubectl
    ns = unique_namespace("publish")
    kubectl.apply(namespace(ns), "member-1")
    export_with_endpoints(kubectl, ns, "member-2", ["10.2.0.5"])
    export_with_endpoints(kubectl, ns, "member-3", ["10.3.0.5", "10.3.0.6"])

    def published():
        obj = upstream(kubectl, ns, "web")
        return obj if obj and len(obj.get("status", {}).get("clusters") or []) == 2 else None

    obj = eventually(published, what="the upstream ServiceImport with both clusters")
    view = kubectl.json("get", VIEWS, "web", "-n", ns, context="member-1")
    assert obj["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "mcs-apiserver"
    assert obj["spec"]["ips"] == view["spec"]["ips"] and obj["spec"]["type"] == "ClusterSetIP"
    assert obj["spec"]["ports"] == view["spec"]["ports"]
    # v1alpha1 (what CoreDNS reads) serves the same object
    alpha = kubectl.json("get", f"{UPSTREAM.replace('.multicluster', '.v1alpha1.multicluster')}", "web", "-n", ns,
                         context="member-1")
    assert alpha["spec"]["ips"] == view["spec"]["ips"]

    def slices_by_cluster():
        found = {s["metadata"]["labels"]["multicluster.kubernetes.io/source-cluster"]:
                 sorted(a for e in s["endpoints"] for a in e["addresses"]) for s in mcs_slices(kubectl, ns)}
        return found if found == {"member-2": ["10.2.0.5"], "member-3": ["10.3.0.5", "10.3.0.6"]} else None

    eventually(slices_by_cluster, what="MCS EndpointSlices of member-2 and member-3")
    for slice_ in mcs_slices(kubectl, ns):
        labels = slice_["metadata"]["labels"]
        assert labels["endpointslice.kubernetes.io/managed-by"] == "mcs-apiserver"
        assert labels["multicluster.kubernetes.io/service-name"] == "web"
        assert "kubernetes.io/service-name" not in labels

    # a scale-up in member-2 shows in its slice
    kubectl.apply(endpoint_slice("web", ns, ["10.2.0.5", "10.2.0.7"]), "member-2")
    eventually(lambda: any(sorted(a for e in s["endpoints"] for a in e["addresses"]) == ["10.2.0.5", "10.2.0.7"]
                           for s in mcs_slices(kubectl, ns)), what="member-2's new endpoint")

    for context in ("member-2", "member-3"):
        kubectl.run("delete", "serviceexport", "web", "-n", ns, context=context)
    eventually(lambda: upstream(kubectl, ns, "web") is None and mcs_slices(kubectl, ns) == [],
               what="the upstream ServiceImport and MCS EndpointSlices to be deleted")
    for context in ("member-1", "member-2", "member-3"):
        kubectl.run("delete", "namespace", ns, "--wait=false", context=context)


def test_a_foreign_serviceimport_without_our_label_is_never_touched(publishing):
    kubectl = publishing.kubectl
    ns = unique_namespace("foreign")
    kubectl.apply(namespace(ns), "member-1")
    kubectl.apply(json.dumps({"apiVersion": "multicluster.x-k8s.io/v1beta1", "kind": "ServiceImport",
                              "metadata": {"name": "web", "namespace": ns, "labels": {"owner": "someone"}},
                              "spec": {"type": "Headless", "ports": [{"port": 1, "protocol": "TCP"}]}}),
                  "member-1")
    before = upstream(kubectl, ns, "web")
    export_with_endpoints(kubectl, ns, "member-2", ["10.2.0.8"])
    eventually(lambda: kubectl.json("get", VIEWS, "web", "-n", ns, context="member-1"), what="the view")
    # the MCS EndpointSlices are still published; the ServiceImport stays someone else's
    eventually(lambda: mcs_slices(kubectl, ns), what="the MCS EndpointSlice")
    after = upstream(kubectl, ns, "web")
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    assert after["spec"]["type"] == "Headless"
    for context in ("member-1", "member-2"):
        kubectl.run("delete", "namespace", ns, "--wait=false", context=context)


def test_an_import_removed_while_the_writer_was_down_leaves_no_orphan_after_its_restart(publishing):
    kubectl = publishing.kubectl
    ns = unique_namespace("orphan")
    kubectl.apply(namespace(ns), "member-1")
    export_with_endpoints(kubectl, ns, "member-2", ["10.2.0.9"])
    eventually(lambda: upstream(kubectl, ns, "web") and mcs_slices(kubectl, ns), what="the published objects")
    cluster.stop_member(publishing.state_dir, "member-1", "mcs-apiserver")
    try:
        kubectl.run("delete", "serviceexport", "web", "-n", ns, context="member-2")
    finally:
        asyncio.run(cluster.start_member(publishing.state_dir, "member-1", "mcs-apiserver"))
    eventually(lambda: upstream(kubectl, ns, "web") is None and mcs_slices(kubectl, ns) == [],
               what="the orphaned ServiceImport and EndpointSlices to be deleted after the restart")
    for context in ("member-1", "member-2"):
        kubectl.run("delete", "namespace", ns, "--wait=false", context=context)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def coredns(publishing, tmp_path):
    """The pinned CoreDNS, its kubernetes plugin in multicluster mode, reading member-1 (README: "DNS
    through CoreDNS's multicluster support")."""
    port = _free_port()
    corefile = tmp_path / "Corefile"
    corefile.write_text(
        f".:{port} {{\n"
        "    bind 127.0.0.1\n"
        "    kubernetes cluster.local clusterset.local {\n"
        f"        kubeconfig {publishing.kubeconfig} member-1\n"
        "        multicluster clusterset.local\n"
        "    }\n"
        "}\n")
    log = (tmp_path / "coredns.log").open("w")
    proc = subprocess.Popen([str(publishing.binaries.coredns), "-conf", str(corefile)], stdout=log,
                            stderr=subprocess.STDOUT)
    try:
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()


def test_coredns_multicluster_resolves_a_published_import(publishing, coredns):
    kubectl = publishing.kubectl
    ns = unique_namespace("coredns")
    kubectl.apply(namespace(ns), "member-1")
    export_with_endpoints(kubectl, ns, "member-2", ["10.2.0.11"])
    obj = eventually(lambda: upstream(kubectl, ns, "web"), what="the upstream ServiceImport")

    def answer():
        query = dns.message.make_query(f"web.{ns}.svc.clusterset.local", dns.rdatatype.A)
        try:
            response = dns.query.udp(query, "127.0.0.1", port=coredns, timeout=2)
        except dns.exception.Timeout:
            return None  # CoreDNS still starting

        return sorted(r.address for rrset in response.answer for r in rrset)

    assert eventually(answer, what="CoreDNS's A answer") == obj["spec"]["ips"]
    for context in ("member-1", "member-2"):
        kubectl.run("delete", "namespace", ns, "--wait=false", context=context)


def test_an_upstream_crd_installed_where_nothing_publishes_is_named_in_the_clustersets_status(clusterset):
    kubectl = clusterset.kubectl
    kubectl.run("apply", "-f", str(CRD), context="member-2")
    try:
        def clash():
            [cset] = kubectl.json("get", "clustersets", context="member-2")["items"]
            return {c["type"]: c for c in cset["status"]["conditions"]}.get("UpstreamServiceImportClash")

        condition = eventually(clash, timeout=45, what="the UpstreamServiceImportClash condition in member-2")
        assert condition["status"] == "True"
        assert "kubectl get serviceimports.views.multicluster.x-k8s.io" in condition["message"]
    finally:
        kubectl.run("delete", "-f", str(CRD), "--timeout=60s", context="member-2", check=False)
    eventually(lambda: clash() is None, timeout=45, what="the condition to go with the CRD")
