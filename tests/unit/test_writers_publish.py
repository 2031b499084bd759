"""The publish reconcilers, with plain data: desired objects from views, drift, orphans, ownership."""

from __future__ import annotations

import copy
from typing import Any

from mcs_apiserver.members.member import ready_endpoints
from mcs_apiserver.contract import Endpoint, ReadyEndpoints, SlicePort
from mcs_apiserver.writers.publish_imports import MANAGED_BY_LABEL, desired_service_import
from mcs_apiserver.writers.publish_slices import (
    MAX_ENDPOINTS,
    SERVICE_NAME_LABEL,
    SOURCE_CLUSTER_LABEL,
    desired_endpoint_slices,
)
from mcs_apiserver.writers.reconcile import plan

LABEL, OURS, MANAGER = MANAGED_BY_LABEL, "mcs-apiserver", "mcs-apiserver"

VIEW: dict[str, Any] = {
    "apiVersion": "views.multicluster.x-k8s.io/v1alpha1",
    "kind": "ServiceImport",
    "metadata": {"name": "web", "namespace": "shop", "uid": "u", "creationTimestamp": "2026-01-01T00:00:00Z",
                 "labels": {"team": "a"}, "annotations": {"note": "x"}},
    "spec": {"type": "ClusterSetIP", "ips": ["10.0.0.9"], "ipFamilies": ["IPv4"],
             "ports": [{"name": "http", "protocol": "TCP", "port": 80}], "sessionAffinity": "None"},
    "status": {"clusters": [{"cluster": "c1", "exportedAt": "t", "readyEndpoints": 2}],
               "conditions": [{"type": "Ready", "status": "True", "reason": "Ready", "message": "m",
                               "lastTransitionTime": "2026-01-01T00:00:00Z"}]},
}


def test_the_upstream_serviceimport_equals_the_view_with_our_label_and_upstream_status_fields_only() -> None:
    obj = desired_service_import(VIEW)
    assert obj["apiVersion"] == "multicluster.x-k8s.io/v1beta1"
    assert obj["metadata"] == {"name": "web", "namespace": "shop", "annotations": {"note": "x"},
                               "labels": {"team": "a", LABEL: OURS}}
    assert obj["spec"] == VIEW["spec"]
    assert obj["status"] == {"clusters": [{"cluster": "c1"}], "conditions": VIEW["status"]["conditions"]}


def server_copy(obj: dict[str, Any]) -> dict[str, Any]:
    """What the API server gives back: our fields plus its own."""
    have = copy.deepcopy(obj)
    have["metadata"].update(uid="x", resourceVersion="7", managedFields=[
        {"manager": MANAGER, "operation": "Apply",
         "fieldsV1": {"f:metadata": {"f:labels": {f"f:{k}": {} for k in obj["metadata"].get("labels", {})}}}}])
    have["spec"]["internalTrafficPolicy"] = "Cluster"  # a default the server may add
    return have


def test_an_unchanged_state_plans_no_write_twice_in_a_row() -> None:
    desired = {("shop", "web"): desired_service_import(VIEW)}
    existing = {("shop", "web"): server_copy(desired[("shop", "web")])}
    assert not plan(desired, existing, LABEL, OURS, MANAGER)
    assert not plan(desired, existing, LABEL, OURS, MANAGER, {("shop", "web")})


def test_missing_objects_are_created_drifted_ones_updated_and_orphans_deleted() -> None:
    web = desired_service_import(VIEW)
    drifted = server_copy(web)
    drifted["spec"]["ips"] = ["10.9.9.9"]
    orphan = server_copy({**web, "metadata": {**web["metadata"], "name": "old"}})
    api = {**web, "metadata": {**web["metadata"], "name": "api"}}
    steps = plan({("shop", "web"): web, ("shop", "api"): api},
                 {("shop", "web"): drifted, ("shop", "old"): orphan}, LABEL, OURS, MANAGER)
    assert (steps.create, steps.update, steps.delete) == ([("shop", "api")], [("shop", "web")], [("shop", "old")])


def test_a_label_we_stopped_setting_is_an_update_but_someone_elses_label_is_not() -> None:
    web = desired_service_import(VIEW)
    have = server_copy(web)
    have["metadata"]["labels"]["added-by-someone"] = "y"
    assert not plan({("shop", "web"): web}, {("shop", "web"): have}, LABEL, OURS, MANAGER)
    without_team = copy.deepcopy(web)
    del without_team["metadata"]["labels"]["team"]
    steps = plan({("shop", "web"): without_team}, {("shop", "web"): have}, LABEL, OURS, MANAGER)
    assert steps.update == [("shop", "web")]


def test_an_object_without_our_label_is_never_updated_or_deleted_and_is_reported_as_a_clash() -> None:
    foreign = {"metadata": {"name": "web", "namespace": "shop", "labels": {"owner": "them"}}, "spec": {}}
    stray = {"metadata": {"name": "other", "namespace": "shop"}, "spec": {}}
    steps = plan({("shop", "web"): desired_service_import(VIEW)},
                 {("shop", "web"): foreign, ("shop", "other"): stray}, LABEL, OURS, MANAGER)
    assert not steps and steps.clashes == [("shop", "web")]


def test_an_incremental_pass_leaves_keys_outside_its_scope_alone() -> None:
    orphan = server_copy(desired_service_import(VIEW))
    assert not plan({}, {("shop", "web"): orphan}, LABEL, OURS, MANAGER, {("shop", "api")})
    assert plan({}, {("shop", "web"): orphan}, LABEL, OURS, MANAGER, {("shop", "web")}).delete == [("shop", "web")]


def source_slice(count: int, *, family: str = "IPv4", start: int = 0) -> dict[str, Any]:
    return {"metadata": {"name": "web-abc", "namespace": "shop", "labels": {"kubernetes.io/service-name": "web"}},
            "addressType": family, "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
            "endpoints": [{"addresses": [f"10.1.{(start + i) // 250}.{(start + i) % 250 + 1}"],
                           "hostname": f"web-{start + i}", "conditions": {"ready": True}} for i in range(count)]
            + [{"addresses": ["10.1.99.99"], "conditions": {"ready": False}}]}


def test_only_ready_endpoints_are_kept_from_a_source_slice() -> None:
    kept = ready_endpoints(source_slice(2))
    assert kept == ReadyEndpoints("IPv4", (SlicePort("http", "TCP", 8080),),
                                  (Endpoint(("10.1.0.1",), "web-0", None), Endpoint(("10.1.0.2",), "web-1", None)))


def test_a_ports_app_protocol_is_copied_into_the_mcs_endpointslice() -> None:
    source = source_slice(1)
    source["ports"][0]["appProtocol"] = "kubernetes.io/h2c"
    [obj] = desired_endpoint_slices(("shop", "web"), [("c2", [ready_endpoints(source)])]).values()
    assert obj["ports"] == [{"name": "http", "protocol": "TCP", "port": 8080, "appProtocol": "kubernetes.io/h2c"}]


def test_mcs_endpointslices_carry_the_mcs_labels_and_never_the_service_name_label() -> None:
    slices = desired_endpoint_slices(("shop", "web"), [("c2", [ready_endpoints(source_slice(3))])])
    [obj] = slices.values()
    assert obj["metadata"]["labels"] == {SERVICE_NAME_LABEL: "web", SOURCE_CLUSTER_LABEL: "c2",
                                         "endpointslice.kubernetes.io/managed-by": "mcs-apiserver"}
    assert "kubernetes.io/service-name" not in obj["metadata"]["labels"]
    assert [e["hostname"] for e in obj["endpoints"]] == ["web-0", "web-1", "web-2"]
    assert obj["ports"] == [{"name": "http", "protocol": "TCP", "port": 8080}]
    assert len(obj["metadata"]["name"]) <= 63


def test_slices_are_split_at_100_endpoints_per_source_cluster_and_family() -> None:
    key = ("shop", "web")
    c2 = [ready_endpoints(source_slice(150)), ready_endpoints(source_slice(60, start=150))]
    c3 = [ready_endpoints(source_slice(5, family="IPv6"))]
    slices = desired_endpoint_slices(key, [("c2", c2), ("c3", c3)])
    sizes = sorted((o["metadata"]["labels"][SOURCE_CLUSTER_LABEL], o["addressType"], len(o["endpoints"]))
                   for o in slices.values())
    assert sizes == [("c2", "IPv4", 10), ("c2", "IPv4", MAX_ENDPOINTS), ("c2", "IPv4", MAX_ENDPOINTS),
                     ("c3", "IPv6", 5)]
    # the same input gives the same names: a restart finds its own slices again
    assert desired_endpoint_slices(key, [("c2", c2), ("c3", c3)]).keys() == slices.keys()


def test_a_cluster_without_ready_endpoints_gets_no_slice() -> None:
    assert desired_endpoint_slices(("shop", "web"), [("c2", [ready_endpoints(source_slice(0))])]) == {}
