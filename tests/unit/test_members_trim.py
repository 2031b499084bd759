"""What the member caches keep of each object (trim_*) and how EndpointSlices count (ready_count)."""

from __future__ import annotations

from mcs_apiserver.kube.times import format_epoch
from mcs_apiserver.members.member import (
    _key,
    ready_count,
    trim_export,
    trim_namespace,
    trim_property,
    trim_remote_export,
)
from mcs_apiserver.contract import EXPORTED_AT_ANNOTATION, ExportRecord, ServiceRecord, service_record

METADATA = {
    "name": "web", "namespace": "shop", "uid": "u-1", "resourceVersion": "42", "generation": 3,
    "creationTimestamp": "2026-01-01T00:00:00Z", "deletionTimestamp": "2026-01-02T00:00:00Z",
    "labels": {"app": "web"},
    "annotations": {EXPORTED_AT_ANNOTATION: "2026-01-01T00:00:00.000001Z",
                    "kubectl.kubernetes.io/last-applied-configuration": "{...}"},
    "managedFields": [{"manager": "kubectl", "operation": "Apply"}],
    "finalizers": ["x"],
}


def test_an_export_keeps_what_is_read_its_version_uid_spec_status_and_only_the_exported_at_annotation() -> None:
    export = {"apiVersion": "multicluster.x-k8s.io/v1beta1", "kind": "ServiceExport", "metadata": METADATA,
              "spec": {"exportedLabels": {"tier": "web"}},
              "status": {"conditions": [{"type": "Valid", "status": "True"}]}}
    trimmed = trim_export(export)
    assert trimmed == ExportRecord(
        namespace="shop", name="web", creation_timestamp="2026-01-01T00:00:00Z",
        exported_at="2026-01-01T00:00:00.000001Z", exported_labels={"tier": "web"},
        resource_version="42", uid="u-1", status={"conditions": [{"type": "Valid", "status": "True"}]},
    )


def test_an_export_without_the_stamp_spec_or_status_carries_none_of_them() -> None:
    export = {"metadata": {"name": "web", "namespace": "shop", "annotations": {"other": "x"}}, "spec": {}}
    assert trim_export(export) == ExportRecord(namespace="shop", name="web")


def test_an_export_of_another_member_is_kept_without_its_status_resource_version_or_uid() -> None:
    export = {"metadata": METADATA, "spec": {"exportedLabels": {"tier": "web"}},
              "status": {"conditions": [{"type": "Valid", "status": "True"}]}}
    trimmed = trim_remote_export(export)
    assert trimmed.status is None and trimmed.resource_version is None and trimmed.uid is None
    local = trim_export(export)
    assert trimmed == local._replace(resource_version=None, uid=None, status=None)


def test_an_export_keeps_no_part_whose_type_is_not_its_schemas() -> None:
    odd = trim_export({"metadata": {"name": "web", "namespace": "shop", "creationTimestamp": 7,
                                    "annotations": {EXPORTED_AT_ANNOTATION: 1}},
                       "spec": {"exportedLabels": ["a"], "exportedAnnotations": {"a": "b"}}, "status": [1]})
    assert odd == ExportRecord(namespace="shop", name="web", exported_annotations={"a": "b"})
    assert trim_export({"metadata": ["web"], "spec": [{}]}) == ExportRecord()


def test_a_status_write_in_another_member_is_no_change_at_all() -> None:
    before = {"metadata": {**METADATA, "resourceVersion": "1"}, "spec": {}}
    after = {"metadata": {**METADATA, "resourceVersion": "2"}, "spec": {},
             "status": {"conditions": [{"type": "Ready", "status": "True"}]}}
    assert trim_remote_export(before) == trim_remote_export(after)


def test_a_service_keeps_only_the_spec_fields_the_views_read() -> None:
    spec = {"type": "ClusterIP", "clusterIP": "10.0.0.1", "clusterIPs": ["10.0.0.1"], "ipFamilies": ["IPv4"],
            "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080}],
            "sessionAffinity": "ClientIP", "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 60}},
            "internalTrafficPolicy": "Local", "trafficDistribution": "PreferClose",
            "selector": {"app": "web"}, "ipFamilyPolicy": "SingleStack", "publishNotReadyAddresses": True}
    trimmed = service_record({"metadata": METADATA, "spec": spec, "status": {"loadBalancer": {}}})
    assert trimmed == ServiceRecord(
        type="ClusterIP", cluster_ip="10.0.0.1", ip_families=["IPv4"], ports=spec["ports"],
        session_affinity="ClientIP", session_affinity_config={"clientIP": {"timeoutSeconds": 60}},
        internal_traffic_policy="Local", traffic_distribution="PreferClose",
    )
    assert trimmed.addresses == ("10.0.0.1",)  # clusterIPs of the primary alone: not kept twice
    dual = service_record({"spec": {"clusterIP": "10.0.0.1", "clusterIPs": ["10.0.0.1", "fd00::1"]}})
    assert dual.addresses == ["10.0.0.1", "fd00::1"]


def test_a_service_and_its_export_share_one_copy_of_their_names_and_of_repeated_values() -> None:
    def fresh(text: str) -> str:
        return "".join(list(text))  # a new string object, as each parsed JSON document gives

    def meta() -> dict:
        return {"name": fresh("web"), "namespace": fresh("shop"), "creationTimestamp": fresh("2026-01-01T00:00:00Z")}

    def spec() -> dict:
        return {"type": fresh("ClusterIP"), "ipFamilies": [fresh("IPv4")], "ports": [{"protocol": fresh("TCP"), "port": 80}]}

    service_key = _key({"metadata": meta(), "spec": spec()})
    export = trim_remote_export({"metadata": meta()})
    assert service_key[0] is export.namespace and service_key[1] is export.name
    assert trim_remote_export({"metadata": meta()}).creation_timestamp is export.creation_timestamp
    service = service_record({"metadata": meta(), "spec": spec()})
    other = service_record({"metadata": meta(), "spec": {**spec(), "ports": [{"protocol": fresh("TCP"), "port": 81}]}})
    assert other.type is service.type
    assert other.ip_families[0] is service.ip_families[0]  # type: ignore[index]
    assert other.ports[0]["protocol"] is service.ports[0]["protocol"]  # type: ignore[index]


def test_an_external_name_service_keeps_its_type() -> None:
    trimmed = service_record({"metadata": {"name": "ext"}, "spec": {"type": "ExternalName", "externalName": "a.b"}})
    assert trimmed == ServiceRecord(type="ExternalName")  # what makes its export invalid; the name is not read


def test_a_namespace_keeps_its_status_and_a_property_its_spec() -> None:
    ns = trim_namespace({"metadata": {"name": "shop", "labels": {"a": "b"}, "uid": "n-1"},
                         "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Terminating"}})
    assert ns == {"metadata": {"name": "shop", "uid": "n-1"}, "status": {"phase": "Terminating"}}  # uid: kube-system's
    assert trim_namespace({"metadata": {"name": "bare"}}) == {"metadata": {"name": "bare"}, "status": {}}
    prop = trim_property({"metadata": {"name": "cluster.clusterset.k8s.io", "managedFields": []},
                          "spec": {"value": "member-1"}})
    assert prop == {"metadata": {"name": "cluster.clusterset.k8s.io"}, "spec": {"value": "member-1"}}


def _endpoint(*addresses: str, **conditions: bool) -> dict:
    endpoint: dict = {"addresses": list(addresses)}
    if conditions:
        endpoint["conditions"] = conditions
    return endpoint


def test_ready_count_counts_ready_addresses_and_an_unset_ready_as_ready() -> None:
    slice_ = {"endpoints": [
        _endpoint("10.0.0.1", ready=True),
        _endpoint("10.0.0.2"),                               # no conditions at all: ready
        {"addresses": ["10.0.0.3"], "conditions": {}},         # ready unset: ready
        {"addresses": ["10.0.0.4"], "conditions": {"serving": True}},  # ready unset: ready
        _endpoint("10.0.0.5", ready=False),                  # not ready: ignored
        _endpoint("10.0.0.6", ready=False, serving=True),    # terminating but serving: not ready
    ]}
    assert ready_count(slice_) == 4


def test_ready_count_counts_every_address_of_an_endpoint_and_nothing_without_endpoints() -> None:
    assert ready_count({"endpoints": [_endpoint("10.0.0.1", "10.0.0.2", ready=True)]}) == 2
    assert ready_count({"endpoints": [{"conditions": {"ready": True}}]}) == 0
    assert ready_count({"endpoints": None}) == 0
    assert ready_count({}) == 0


def test_rfc3339_is_second_precision_utc_with_a_z() -> None:
    assert format_epoch(0) == "1970-01-01T00:00:00Z"
    assert format_epoch(1767225600.75) == "2026-01-01T00:00:00Z"


def test_services_with_equal_ports_and_families_share_one_copy_of_them() -> None:
    def spec(ip: str) -> dict:
        return {"type": "ClusterIP", "clusterIP": ip, "clusterIPs": [ip], "ipFamilies": ["IPv4"],
                "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080}]}

    one = service_record({"metadata": METADATA, "spec": spec("10.0.0.1")})
    two = service_record({"metadata": METADATA, "spec": spec("10.0.0.2")})
    assert one.ports is two.ports
    assert one.ip_families is two.ip_families
    assert one.addresses == ("10.0.0.1",) and two.addresses == ("10.0.0.2",)
