"""ServiceImports through the real kubectl and the real kube-apiserver aggregator, from every member."""

from __future__ import annotations

import json
import subprocess
import time

import pytest

from tests.e2e.helpers import (
    endpoint_slice,
    eventually,
    namespace,
    service,
    service_export,
    unique_namespace,
)

pytestmark = pytest.mark.e2e

GROUP = "views.multicluster.x-k8s.io"


def _everywhere(kubectl, manifest: str, members=("member-1", "member-2", "member-3")) -> None:
    for member in members:
        kubectl.apply(manifest, member)


def _import(kubectl, ns: str, name: str, context: str) -> dict | None:
    proc = kubectl.run("get", "serviceimports", name, "-n", ns, "-o", "json", context=context, check=False)
    if proc.returncode != 0:
        if "NotFound" in proc.stderr or "not found" in proc.stderr:
            return None
        raise AssertionError(proc.stderr)
    return json.loads(proc.stdout)


def _condition(obj: dict, kind: str) -> dict:
    return next(c for c in obj["status"]["conditions"] if c["type"] == kind)


@pytest.fixture
def exported_web(kubectl):
    """A ClusterIP Service exported from member-2, its namespace present in every member."""
    ns = unique_namespace("web")
    _everywhere(kubectl, namespace(ns))
    kubectl.apply(service("web", ns, ports=[{"name": "http", "port": 80, "protocol": "TCP"},
                                            {"name": "https", "port": 443, "protocol": "TCP"}]), "member-2")
    kubectl.apply(endpoint_slice("web", ns, ["10.0.0.5", "10.0.0.6"]), "member-2")
    kubectl.apply(service_export("web", ns), "member-2")
    yield ns
    for member in ("member-1", "member-2", "member-3"):
        kubectl.run("delete", "namespace", ns, "--wait=false", context=member, check=False)


def test_a_service_exported_in_member_2_is_imported_in_member_1_and_member_3(kubectl, exported_web):
    ns = exported_web
    for context in ("member-1", "member-3", "member-2"):
        imported = eventually(lambda c=context: _import(kubectl, ns, "web", c), what=f"web imported in {context}")
        assert imported["kind"] == "ServiceImport"
        assert imported["apiVersion"] == f"{GROUP}/v1alpha1"
        assert imported["spec"]["type"] == "ClusterSetIP"
        assert [(p["name"], p["port"], p["protocol"]) for p in imported["spec"]["ports"]] == [
            ("http", 80, "TCP"), ("https", 443, "TCP")]
        assert len(imported["spec"]["ips"]) >= 1
        assert [c["cluster"] for c in imported["status"]["clusters"]] == ["member-2"]
        assert imported["status"]["clusters"][0]["readyEndpoints"] == 2
        assert _condition(imported, "Ready")["status"] == "True"


def test_every_instance_computes_the_same_uid_and_clusterset_ip(kubectl, exported_web):
    ns = exported_web
    seen = [eventually(lambda c=c: _import(kubectl, ns, "web", c)) for c in ("member-1", "member-2", "member-3")]
    assert len({s["metadata"]["uid"] for s in seen}) == 1
    assert len({tuple(s["spec"]["ips"]) for s in seen}) == 1


def test_kubectl_get_prints_the_import_columns_and_wide_adds_more(kubectl, exported_web):
    ns = exported_web
    eventually(lambda: _import(kubectl, ns, "web", "member-1"))
    out = kubectl.run("get", "serviceimports", "-n", ns, context="member-1").stdout.splitlines()
    assert out[0].split() == ["NAME", "TYPE", "IP", "PORTS", "CLUSTERS", "AGE"]
    row = out[1].split()
    assert row[0] == "web" and row[1] == "ClusterSetIP" and row[3] == "80/TCP,443/TCP" and row[4] == "member-2"
    wide = kubectl.run("get", "svcim", "-n", ns, "-o", "wide", context="member-1").stdout.splitlines()
    assert wide[0].split()[:6] == ["NAME", "TYPE", "IP", "PORTS", "CLUSTERS", "AGE"]
    assert "CONFLICT" in wide[0] and "READY" in wide[0]


def test_get_serviceimports_across_all_namespaces_shows_the_namespace_column(kubectl, exported_web):
    ns = exported_web
    eventually(lambda: _import(kubectl, ns, "web", "member-3"))
    out = kubectl.run("get", "serviceimports", "-A", context="member-3").stdout.splitlines()
    assert out[0].split()[:2] == ["NAMESPACE", "NAME"]
    assert any(line.split()[:2] == [ns, "web"] for line in out[1:])


def test_yaml_output_has_the_upstream_field_names(kubectl, exported_web):
    ns = exported_web
    eventually(lambda: _import(kubectl, ns, "web", "member-1"))
    text = kubectl.run("get", "serviceimport", "web", "-n", ns, "-o", "yaml", context="member-1").stdout
    for needle in ("kind: ServiceImport", "type: ClusterSetIP", "ips:", "ports:", "clusters:",
                   "cluster: member-2", "resourceVersion:", "creationTimestamp:"):
        assert needle in text, needle


def test_kubectl_watch_sees_an_import_appear_and_disappear(kubectl):
    ns = unique_namespace("watch")
    _everywhere(kubectl, namespace(ns))
    argv = [str(kubectl.binary), "--kubeconfig", str(kubectl.kubeconfig), "--context", "member-1",
            "--cache-dir", str(kubectl.cache_dir), "get", "serviceimports", "-n", ns, "-w",
            "--output-watch-events", "--request-timeout=0"]
    watcher = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(1.5)  # let the watch start before the export exists
        kubectl.apply(service("db", ns), "member-2")
        kubectl.apply(service_export("db", ns), "member-2")
        eventually(lambda: _import(kubectl, ns, "db", "member-1"), what="db imported")
        kubectl.run("delete", "serviceexport", "db", "-n", ns, context="member-2")
        eventually(lambda: _import(kubectl, ns, "db", "member-1") is None, what="db import gone")
        time.sleep(1.0)
    finally:
        watcher.terminate()
        out, err = watcher.communicate(timeout=10)
    # kubectl prints the server's Table rows, with the event type in front.
    lines = [line.split() for line in out.splitlines() if line.strip()]
    assert lines[0][:4] == ["EVENT", "NAME", "TYPE", "IP"], (out, err)
    events = [(line[0], line[1], line[2]) for line in lines[1:]]
    assert ("ADDED", "db", "ClusterSetIP") in events, (out, err)
    assert ("DELETED", "db", "ClusterSetIP") in events, (out, err)
    assert events.index(("ADDED", "db", "ClusterSetIP")) < events.index(("DELETED", "db", "ClusterSetIP"))
    for member in ("member-1", "member-2", "member-3"):
        kubectl.run("delete", "namespace", ns, "--wait=false", context=member, check=False)


def test_a_headless_export_is_imported_as_headless_with_its_ready_endpoints(kubectl):
    ns = unique_namespace("headless")
    _everywhere(kubectl, namespace(ns))
    kubectl.apply(service("db", ns, headless=True), "member-3")
    kubectl.apply(endpoint_slice("db", ns, ["10.3.0.1", "10.3.0.2", "10.3.0.3"]), "member-3")
    kubectl.apply(endpoint_slice("db", ns, ["10.3.0.9"], ready=False, name="db-notready"), "member-3")
    kubectl.apply(service_export("db", ns), "member-3")
    imported = eventually(lambda: _import(kubectl, ns, "db", "member-1"), what="headless import")
    assert imported["spec"]["type"] == "Headless"
    assert "ips" not in imported["spec"] or imported["spec"]["ips"] == []
    assert imported["status"]["clusters"] == [
        {**imported["status"]["clusters"][0], "cluster": "member-3", "readyEndpoints": 3}]
    assert _condition(imported, "Ready")["status"] == "True"


def test_conflicting_exports_are_flagged_and_the_oldest_export_wins(kubectl):
    ns = unique_namespace("conflict")
    _everywhere(kubectl, namespace(ns))
    kubectl.apply(service("api", ns, ports=[{"name": "http", "port": 80, "protocol": "TCP"}]), "member-1")
    kubectl.apply(service_export("api", ns), "member-1")
    eventually(lambda: _import(kubectl, ns, "api", "member-2"), what="first export imported")
    time.sleep(0.05)
    kubectl.apply(service("api", ns, headless=True, ports=[{"name": "http", "port": 8080, "protocol": "TCP"}]),
                  "member-3")
    kubectl.apply(service_export("api", ns), "member-3")

    def conflicted():
        obj = _import(kubectl, ns, "api", "member-2")
        return obj if obj and _condition(obj, "Conflict")["status"] == "True" else None

    imported = eventually(conflicted, what="the Conflict condition")
    conflict = _condition(imported, "Conflict")
    assert "TypeConflict" in conflict["reason"] and "PortConflict" in conflict["reason"]
    assert "member-1" in conflict["message"]
    assert imported["spec"]["type"] == "ClusterSetIP"  # member-1 exported first
    assert sorted(c["cluster"] for c in imported["status"]["clusters"]) == ["member-1", "member-3"]
    out = kubectl.run("get", "serviceimports", "-n", ns, "-o", "wide", context="member-2").stdout
    assert "TypeConflict" in out


def test_an_import_is_served_only_where_its_namespace_exists(kubectl):
    ns = unique_namespace("sameness")
    kubectl.apply(namespace(ns), "member-1")
    kubectl.apply(namespace(ns), "member-2")
    kubectl.apply(service("only", ns), "member-1")
    kubectl.apply(service_export("only", ns), "member-1")
    eventually(lambda: _import(kubectl, ns, "only", "member-2"), what="import in member-2")
    listed = kubectl.json("get", "serviceimports", "-A", context="member-3")["items"]
    assert all(item["metadata"]["namespace"] != ns for item in listed)
    kubectl.apply(namespace(ns), "member-3")
    eventually(lambda: _import(kubectl, ns, "only", "member-3"), what="import once the namespace exists")


def test_deleting_a_namespace_that_holds_imports_completes(kubectl):
    ns = unique_namespace("doomed")
    _everywhere(kubectl, namespace(ns))
    kubectl.apply(service("gone", ns), "member-1")
    kubectl.apply(service_export("gone", ns), "member-1")
    eventually(lambda: _import(kubectl, ns, "gone", "member-3"), what="import in member-3")
    kubectl.run("delete", "namespace", ns, "--timeout=90s", context="member-3", timeout=120)
    proc = kubectl.run("get", "namespace", ns, context="member-3", check=False)
    assert proc.returncode != 0 and "NotFound" in proc.stderr


def test_serviceimports_cannot_be_created_or_deleted(kubectl, exported_web):
    ns = exported_web
    eventually(lambda: _import(kubectl, ns, "web", "member-1"))
    manifest = json.dumps({"apiVersion": f"{GROUP}/v1alpha1", "kind": "ServiceImport",
                           "metadata": {"name": "forged", "namespace": ns},
                           "spec": {"type": "ClusterSetIP", "ports": [{"port": 1}]}})
    created = kubectl.run("create", "-f", "-", input=manifest, context="member-1", check=False)
    assert created.returncode != 0
    assert "MethodNotAllowed" in created.stderr or "not allow" in created.stderr
    deleted = kubectl.run("delete", "serviceimport", "web", "-n", ns, context="member-1", check=False)
    assert deleted.returncode != 0
    assert "MethodNotAllowed" in deleted.stderr or "not allow" in deleted.stderr
    assert _import(kubectl, ns, "web", "member-1") is not None
