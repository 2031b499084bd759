"""Admission through the real kube-apiserver and ``kubectl apply``: cluster ID rules, export rules,
conflict warnings and denials, and the conditions written to ServiceExports."""

from __future__ import annotations

import asyncio
import json

import pytest

from mcs_apiserver.local import cluster
from tests.e2e.helpers import (
    eventually,
    external_name_service,
    namespace,
    service,
    service_export,
    unique_namespace,
)

pytestmark = pytest.mark.e2e

EXPORTED_AT = "views.multicluster.x-k8s.io/exported-at"


def cluster_property(name: str, value: str | None, version: str = "v1beta1") -> str:
    spec = {} if value is None else {"value": value}
    return json.dumps({"apiVersion": f"about.k8s.io/{version}", "kind": "ClusterProperty",
                       "metadata": {"name": name}, "spec": spec})


def _apply(kubectl, manifest: str, context: str, *extra: str):
    return kubectl.run("apply", "-f", "-", *extra, input=manifest, context=context, check=False)


def _value(kubectl, name: str, context: str) -> str | None:
    proc = kubectl.run("get", "clusterproperty", name, "-o", "jsonpath={.spec.value}", context=context, check=False)
    return proc.stdout if proc.returncode == 0 else None


def test_changing_or_deleting_the_cluster_id_of_a_member_is_refused_with_the_way_out(kubectl):
    changed = _apply(kubectl, cluster_property("cluster.clusterset.k8s.io", "renamed"), "member-2")
    assert changed.returncode != 0
    assert "denied the request" in changed.stderr
    assert "delete clusterset.k8s.io first to leave the ClusterSet" in changed.stderr
    deleted = kubectl.run("delete", "clusterproperty", "cluster.clusterset.k8s.io", context="member-2", check=False)
    assert deleted.returncode != 0 and "cannot delete cluster.clusterset.k8s.io" in deleted.stderr
    dry = _apply(kubectl, cluster_property("cluster.clusterset.k8s.io", "renamed"), "member-2", "--dry-run=server")
    assert dry.returncode != 0 and "delete clusterset.k8s.io first" in dry.stderr
    assert _value(kubectl, "cluster.clusterset.k8s.io", "member-2") == "member-2"


def test_the_clusterset_name_of_a_member_is_immutable(kubectl):
    proc = _apply(kubectl, cluster_property("clusterset.k8s.io", "elsewhere"), "member-1")
    assert proc.returncode != 0 and "immutable" in proc.stderr
    assert _value(kubectl, "clusterset.k8s.io", "member-1") == "local"


def test_other_cluster_properties_are_not_touched(kubectl):
    proc = _apply(kubectl, cluster_property("region.example.com", "Europe/Paris & co"), "member-1")
    assert proc.returncode == 0, proc.stderr
    assert _value(kubectl, "region.example.com", "member-1") == "Europe/Paris & co"
    kubectl.run("delete", "clusterproperty", "region.example.com", context="member-1")


def test_leaving_and_joining_follows_the_cluster_id_rules(clusterset, kubectl):
    """member-3 leaves the ClusterSet, then tries every wrong way back in before the right one."""
    ctx = "member-3"
    kubectl.run("delete", "clusterproperty", "clusterset.k8s.io", context=ctx)  # leaving is allowed
    try:
        # An invalid ID is refused, and kubectl prints why (a DNS label, with a hint).
        invalid = _apply(kubectl, cluster_property("cluster.clusterset.k8s.io", "Member_3"), ctx)
        assert invalid.returncode != 0
        assert "is not an RFC 1123 DNS label" in invalid.stderr
        subdomain = _apply(kubectl, cluster_property("cluster.clusterset.k8s.io", "member-3.eu"), ctx)
        assert subdomain.returncode != 0 and "single DNS label" in subdomain.stderr
        legacy = _apply(kubectl, cluster_property("id.k8s.io", "UPPER", version="v1alpha1"), ctx)
        assert legacy.returncode != 0 and "DNS label" in legacy.stderr

        # Outside a ClusterSet the ID may go, and clusterset.k8s.io cannot come before an ID.
        kubectl.run("delete", "clusterproperty", "cluster.clusterset.k8s.io", context=ctx)
        early = _apply(kubectl, cluster_property("clusterset.k8s.io", "local"), ctx)
        assert early.returncode != 0 and "create cluster.clusterset.k8s.io first" in early.stderr

        # An ID created without a value gets the kube-system namespace UID.
        kubectl.apply(cluster_property("cluster.clusterset.k8s.io", None), ctx)
        uid = kubectl.run("get", "namespace", "kube-system", "-o", "jsonpath={.metadata.uid}", context=ctx).stdout
        assert _value(kubectl, "cluster.clusterset.k8s.io", ctx) == uid

        # Joining with an ID another member already uses is refused, live, across clusters.
        kubectl.run("delete", "clusterproperty", "cluster.clusterset.k8s.io", context=ctx)
        kubectl.apply(cluster_property("cluster.clusterset.k8s.io", "member-1"), ctx)
        duplicate = _apply(kubectl, cluster_property("clusterset.k8s.io", "local"), ctx)
        assert duplicate.returncode != 0
        assert "already used in ClusterSet 'local' by member 'member-1'" in duplicate.stderr
        dry = _apply(kubectl, cluster_property("clusterset.k8s.io", "local"), ctx, "--dry-run=server")
        assert dry.returncode != 0 and "already used" in dry.stderr
    finally:
        kubectl.run("delete", "clusterproperty", "cluster.clusterset.k8s.io", context=ctx, check=False)
        kubectl.apply(cluster_property("cluster.clusterset.k8s.io", "member-3"), ctx)
        rejoined = eventually(lambda: _apply(kubectl, cluster_property("clusterset.k8s.io", "local"), ctx).returncode == 0,
                              timeout=30, what="member-3 to join again")
        assert rejoined

    def joined():
        obj = kubectl.json("get", "clusterset", "local", context="member-1")
        return all(m["state"] == "Joined" for m in obj["status"]["members"]) and len(obj["status"]["members"]) == 3

    eventually(joined, timeout=60, what="member-3 Joined again")


def test_the_webhook_stamps_exported_at_on_create_and_keeps_it_on_update(kubectl):
    ns = unique_namespace("stamp")
    kubectl.apply(namespace(ns), "member-1")
    kubectl.apply(service("web", ns), "member-1")
    kubectl.apply(service_export("web", ns), "member-1")
    first = kubectl.json("get", "serviceexport", "web", "-n", ns, context="member-1")
    stamp = first["metadata"]["annotations"][EXPORTED_AT]
    assert stamp.endswith("Z") and len(stamp.split(".")[1]) == 7  # microseconds + Z
    kubectl.run("annotate", "serviceexport", "web", "-n", ns, f"{EXPORTED_AT}=2000-01-01T00:00:00.000000Z",
                "--overwrite", context="member-1")
    kubectl.run("label", "serviceexport", "web", "-n", ns, "team=a", context="member-1")
    after = kubectl.json("get", "serviceexport", "web", "-n", ns, context="member-1")
    assert after["metadata"]["annotations"][EXPORTED_AT] == stamp
    assert after["metadata"]["labels"]["team"] == "a"
    kubectl.run("delete", "namespace", ns, "--wait=false", context="member-1")


def test_exporting_an_external_name_service_is_admitted_with_a_warning_and_marked_invalid(kubectl):
    ns = unique_namespace("extname")
    kubectl.apply(namespace(ns), "member-2")
    kubectl.apply(external_name_service("outside", ns), "member-2")
    dry = _apply(kubectl, service_export("outside", ns), "member-2", "--dry-run=server")
    assert dry.returncode == 0 and "will not be imported" in dry.stderr
    proc = _apply(kubectl, service_export("outside", ns), "member-2")
    assert proc.returncode == 0, proc.stderr
    assert "Warning: InvalidServiceType: Service " + ns + "/outside is of type ExternalName" in proc.stderr

    def invalid():
        valid = _conditions(kubectl, ns, "outside", "member-2").get("Valid") or {}
        return (valid.get("status"), valid.get("reason")) == ("False", "InvalidServiceType")

    eventually(invalid, what="Valid=False/InvalidServiceType on the export")
    for context in ("member-1", "member-2"):
        listed = kubectl.json("get", "serviceimports.views.multicluster.x-k8s.io", "-n", ns, context=context)
        assert listed["items"] == []
    kubectl.run("delete", "namespace", ns, "--wait=false", context="member-2")


def test_port_sets_that_differ_are_served_as_a_union_and_flag_every_export(kubectl):
    ns = unique_namespace("portset")
    first = [{"name": "tcp", "port": 42, "protocol": "TCP"}]
    second = [*first, {"name": "stcp", "port": 142, "protocol": "SCTP"}]
    for context, ports in (("member-2", first), ("member-3", second)):
        kubectl.apply(namespace(ns), context)
        kubectl.apply(service("hello", ns, ports=ports), context)
        kubectl.apply(service_export("hello", ns), context)

    def flagged():
        for context in ("member-2", "member-3"):
            conflict = _conditions(kubectl, ns, "hello", context).get("Conflict") or {}
            if (conflict.get("status"), conflict.get("reason")) != ("True", "PortConflict"):
                return False
        return True

    eventually(flagged, what="Conflict=True/PortConflict on both exports")
    imported = kubectl.json("get", "serviceimports.views.multicluster.x-k8s.io", "hello", "-n", ns,
                            context="member-2")
    assert sorted((p["protocol"], p["port"]) for p in imported["spec"]["ports"]) == [("SCTP", 142), ("TCP", 42)]
    for context in ("member-2", "member-3"):
        kubectl.run("delete", "namespace", ns, "--wait=false", context=context)


def test_an_export_whose_name_is_not_a_service_name_is_refused(kubectl):
    ns = unique_namespace("badname")
    kubectl.apply(namespace(ns), "member-2")
    proc = _apply(kubectl, service_export("9lives", ns), "member-2")
    assert proc.returncode != 0 and "9lives" in proc.stderr
    kubectl.run("delete", "namespace", ns, "--wait=false", context="member-2")


def _conditions(kubectl, ns: str, name: str, context: str) -> dict[str, dict]:
    obj = kubectl.json("get", "serviceexport", name, "-n", ns, context=context)
    return {c["type"]: c for c in (obj.get("status") or {}).get("conditions") or []}


def test_a_conflicting_export_is_warned_about_and_both_exports_show_the_conflict(kubectl):
    ns = unique_namespace("clash")
    for member in ("member-1", "member-2", "member-3"):
        kubectl.apply(namespace(ns), member)
    kubectl.apply(service("api", ns, ports=[{"name": "http", "port": 80, "protocol": "TCP"}]), "member-1")
    kubectl.apply(service_export("api", ns), "member-1")
    eventually(lambda: _conditions(kubectl, ns, "api", "member-1").get("Ready", {}).get("reason") in ("Ready", "Pending")
               and _conditions(kubectl, ns, "api", "member-1")["Valid"]["status"] == "True",
               what="member-1's export to be Valid")
    kubectl.apply(service("api", ns, headless=True, ports=[{"name": "http", "port": 80, "protocol": "TCP"}]),
                  "member-2")
    # The conflict check needs member-1's export in member-2's view: it is there within milliseconds.
    eventually(lambda: kubectl.run("get", "serviceimport", "api", "-n", ns, context="member-2", check=False).returncode == 0,
               what="the import in member-2")
    dry = _apply(kubectl, service_export("api", ns), "member-2", "--dry-run=server")
    assert dry.returncode == 0 and "TypeConflict" in dry.stderr
    created = _apply(kubectl, service_export("api", ns), "member-2")
    assert created.returncode == 0, created.stderr
    assert "Warning:" in created.stderr and "TypeConflict" in created.stderr

    def conflict_on(context: str):
        conditions = _conditions(kubectl, ns, "api", context)
        return conditions if conditions.get("Conflict", {}).get("status") == "True" else None

    for context in ("member-1", "member-2"):
        conditions = eventually(lambda c=context: conflict_on(c), timeout=30, what=f"Conflict=True in {context}")
        assert "TypeConflict" in conditions["Conflict"]["reason"]
        assert "member-1" in conditions["Conflict"]["message"]  # the winner is named
        assert conditions["Valid"]["status"] == "True"
    described = kubectl.run("describe", "serviceexport", "api", "-n", ns, context="member-2").stdout
    assert "Conflict" in described and "TypeConflict" in described and "member-1" in described


def test_deny_mode_refuses_a_conflicting_export(clusterset, kubectl):
    ns = unique_namespace("strict")
    for member in ("member-1", "member-3"):
        kubectl.apply(namespace(ns), member)
    kubectl.apply(service("cache", ns, ports=[{"name": "redis", "port": 6379, "protocol": "TCP"}]), "member-3")
    kubectl.apply(service_export("cache", ns), "member-3")
    kubectl.apply(service("cache", ns, ports=[{"name": "redis", "port": 6380, "protocol": "TCP"}]), "member-1")
    asyncio.run(cluster.restart_instance(clusterset.state_dir, "member-1", "--export-conflict-policy=deny"))
    try:
        eventually(lambda: kubectl.run("get", "serviceimport", "cache", "-n", ns, context="member-1",
                                       check=False).returncode == 0, what="the import in member-1")
        dry = _apply(kubectl, service_export("cache", ns), "member-1", "--dry-run=server")
        assert dry.returncode != 0 and "PortConflict" in dry.stderr
        refused = _apply(kubectl, service_export("cache", ns), "member-1")
        assert refused.returncode != 0 and "PortConflict" in refused.stderr
        assert kubectl.run("get", "serviceexport", "cache", "-n", ns, context="member-1", check=False).returncode != 0
    finally:
        asyncio.run(cluster.restart_instance(clusterset.state_dir, "member-1"))
