"""Tables, AGE and PartialObjectMetadata (mcs_apiserver.api.tables)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from mcs_apiserver.api.negotiation import IncludeObject
from mcs_apiserver.api.tables import (
    bookmark_table,
    column_definitions,
    human_duration,
    partial_object_metadata,
    partial_object_metadata_head,
    table_for,
    table_for_event,
    table_row,
    translate_timestamp_since,
)

NOW = datetime(2025, 6, 1, 12, 0, 0, tzinfo=UTC)
SECOND = timedelta(seconds=1)
MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


# --- HumanDuration -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("d", "want"),
    [
        # k8s.io/apimachinery/pkg/util/duration TestHumanDuration
        (SECOND, "1s"),
        (70 * SECOND, "70s"),
        (190 * SECOND, "3m10s"),
        (70 * MINUTE, "70m"),
        (47 * HOUR, "47h"),
        (49 * HOUR, "2d1h"),
        ((8 * 24 + 2) * HOUR, "8d"),
        (367 * 24 * HOUR, "367d"),
        ((365 * 2 * 24 + 25) * HOUR, "2y1d"),
        ((365 * 8 * 24 + 2) * HOUR, "8y"),
        # every threshold, from both sides
        (timedelta(0), "0s"),
        (-SECOND, "0s"),
        (timedelta(seconds=-1.5), "0s"),
        (-2 * SECOND, "<invalid>"),
        (timedelta(milliseconds=999), "0s"),
        (119 * SECOND, "119s"),
        (120 * SECOND, "2m"),
        (121 * SECOND, "2m1s"),
        (599 * SECOND, "9m59s"),
        (10 * MINUTE, "10m"),
        (10 * MINUTE + 30 * SECOND, "10m"),
        (179 * MINUTE + 59 * SECOND, "179m"),
        (3 * HOUR, "3h"),
        (3 * HOUR + 30 * MINUTE, "3h30m"),
        (7 * HOUR + 59 * MINUTE, "7h59m"),
        (8 * HOUR, "8h"),
        (8 * HOUR + 30 * MINUTE, "8h"),
        (47 * HOUR + 59 * MINUTE, "47h"),
        (48 * HOUR, "2d"),
        (7 * DAY + 23 * HOUR, "7d23h"),
        (8 * DAY, "8d"),
        (729 * DAY + 23 * HOUR, "729d"),
        (730 * DAY, "2y"),
        (731 * DAY, "2y1d"),
        (8 * 365 * DAY - HOUR, "7y364d"),
        (8 * 365 * DAY, "8y"),
        (20 * 365 * DAY + 200 * DAY, "20y"),
    ],
)
def test_human_duration_matches_apimachinery(d: timedelta, want: str) -> None:
    assert human_duration(d) == want


def test_human_duration_accepts_float_seconds_and_truncates_toward_zero() -> None:
    assert human_duration(119.9) == "119s"
    assert human_duration(-1.9) == "0s"


def test_age_is_measured_from_the_creation_timestamp_to_now() -> None:
    assert translate_timestamp_since("2025-06-01T11:57:00Z", NOW) == "3m"
    assert translate_timestamp_since("2025-06-01T11:57:00.123456Z", NOW.timestamp()) == "2m59s"
    assert translate_timestamp_since("2025-06-01T12:00:05Z", NOW) == "<invalid>"


@pytest.mark.parametrize("timestamp", [None, "", "yesterday"])
def test_age_without_a_usable_timestamp_is_unknown(timestamp: str | None) -> None:
    assert translate_timestamp_since(timestamp, NOW) == "<unknown>"


# --- columns -----------------------------------------------------------------------------------


def service_import(**overrides: object) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": "views.multicluster.x-k8s.io/v1alpha1",
        "kind": "ServiceImport",
        "metadata": {
            "name": "web",
            "namespace": "shop",
            "uid": "u-1",
            "resourceVersion": "41",
            "creationTimestamp": "2025-06-01T10:00:00Z",
            "labels": {"app": "web"},
        },
        "spec": {
            "type": "ClusterSetIP",
            "ips": ["10.42.0.7", "fd00::7"],
            "ipFamilies": ["IPv4", "IPv6"],
            "ports": [
                {"name": "http", "port": 80, "protocol": "TCP"},
                {"name": "dns", "port": 53, "protocol": "UDP"},
            ],
        },
        "status": {
            "clusters": [{"cluster": "east"}, {"cluster": "west"}],
            "conditions": [{"type": "Ready", "status": "True", "reason": "Ready"}],
        },
    }
    obj.update(overrides)
    return obj


def cluster_set(members: list[dict]) -> dict:
    return {
        "apiVersion": "views.multicluster.x-k8s.io/v1alpha1",
        "kind": "ClusterSet",
        "metadata": {"name": "prod", "resourceVersion": "9", "creationTimestamp": "2025-05-31T12:00:00Z"},
        "status": {
            "localCluster": "east",
            "members": members,
            "conditions": [{"type": "Ready", "status": "False", "reason": "MembersNotJoined"}],
        },
    }


def cells_by_name(kind: str, row: dict) -> dict[str, object]:
    return {c["name"]: cell for c, cell in zip(column_definitions(kind), row["cells"], strict=True)}


def test_service_import_columns_are_name_type_ip_ports_clusters_age_then_wide_ones() -> None:
    columns = column_definitions("ServiceImport")
    assert [c["name"].upper() for c in columns if c["priority"] == 0] == [
        "NAME",
        "TYPE",
        "IP",
        "PORTS",
        "CLUSTERS",
        "AGE",
    ]
    assert [c["name"].upper() for c in columns if c["priority"] == 1] == ["CONFLICT", "READY", "IP FAMILIES"]


def test_cluster_set_columns_are_name_local_members_ready_age_and_wide_not_joined() -> None:
    columns = column_definitions("ClusterSet")
    assert [c["name"].upper() for c in columns if c["priority"] == 0] == [
        "NAME",
        "LOCAL",
        "MEMBERS",
        "READY",
        "AGE",
    ]
    assert [c["name"].upper() for c in columns if c["priority"] == 1] == ["NOT JOINED"]


@pytest.mark.parametrize("kind", ["ServiceImport", "ClusterSet"])
def test_every_column_definition_has_all_fields_and_the_name_column_has_format_name(kind: str) -> None:
    columns = column_definitions(kind)
    for column in columns:
        assert set(column) == {"name", "type", "format", "description", "priority"}
        assert column["description"]
    assert columns[0]["name"] == "Name" and columns[0]["format"] == "name" and columns[0]["type"] == "string"


def test_a_service_import_row_prints_like_kubectl_prints_services() -> None:
    row = table_row("ServiceImport", service_import(), NOW)
    assert cells_by_name("ServiceImport", row) == {
        "Name": "web",
        "Type": "ClusterSetIP",
        "IP": "10.42.0.7,fd00::7",
        "Ports": "80/TCP,53/UDP",
        "Clusters": "east,west",
        "Age": "120m",  # HumanDuration keeps minutes up to 3h
        "Conflict": "<none>",
        "Ready": "True",
        "IP Families": "IPv4,IPv6",
    }


def test_a_headless_import_without_ips_or_ports_prints_none() -> None:
    obj = service_import(spec={"type": "Headless"}, status={})
    cells = cells_by_name("ServiceImport", table_row("ServiceImport", obj, NOW))
    assert (cells["IP"], cells["Ports"], cells["Clusters"], cells["Ready"]) == (
        "<none>",
        "<none>",
        "<none>",
        "Unknown",
    )


def test_a_port_without_protocol_prints_as_tcp() -> None:
    obj = service_import(spec={"type": "ClusterSetIP", "ports": [{"port": 8080}]})
    assert cells_by_name("ServiceImport", table_row("ServiceImport", obj, NOW))["Ports"] == "8080/TCP"


def test_many_clusters_are_summarised_after_the_first_three() -> None:
    clusters = [{"cluster": f"c{i}"} for i in range(5)]
    obj = service_import(status={"clusters": clusters})
    assert (
        cells_by_name("ServiceImport", table_row("ServiceImport", obj, NOW))["Clusters"] == "c0,c1,c2 + 2 more..."
    )


def test_the_conflict_column_shows_the_reason_of_a_true_conflict_condition() -> None:
    conditions = [
        {"type": "Ready", "status": "True"},
        {"type": "Conflict", "status": "True", "reason": "PortConflict,TypeConflict"},
    ]
    obj = service_import(status={"clusters": [], "conditions": conditions})
    assert (
        cells_by_name("ServiceImport", table_row("ServiceImport", obj, NOW))["Conflict"]
        == "PortConflict,TypeConflict"
    )
    conditions[1] = {"type": "Conflict", "status": "False", "reason": "NoConflicts"}
    assert cells_by_name("ServiceImport", table_row("ServiceImport", obj, NOW))["Conflict"] == "<none>"


def test_a_cluster_set_row_counts_joined_members_and_lists_the_others() -> None:
    members = [
        {"cluster": "east", "name": "ctx-east", "state": "Joined"},
        {"cluster": "west", "name": "ctx-west", "state": "Unreachable"},
        {"cluster": "", "name": "ctx-new", "state": "MissingID"},
    ]
    cells = cells_by_name("ClusterSet", table_row("ClusterSet", cluster_set(members), NOW))
    assert cells == {
        "Name": "prod",
        "Local": "east",
        "Members": "1/3",
        "Ready": "False",
        "Age": "24h",
        "Not Joined": "west:Unreachable,ctx-new:MissingID",
    }


def test_a_fully_joined_cluster_set_has_nothing_not_joined() -> None:
    cells = cells_by_name(
        "ClusterSet", table_row("ClusterSet", cluster_set([{"cluster": "east", "state": "Joined"}]), NOW)
    )
    assert (cells["Members"], cells["Not Joined"]) == ("1/1", "<none>")


def test_tables_can_be_asked_for_by_resource_name_and_unknown_kinds_are_refused() -> None:
    assert column_definitions("serviceimports") == column_definitions("ServiceImport")
    with pytest.raises(ValueError):
        column_definitions("Pod")


# --- rows' objects, tables, metadata -----------------------------------------------------------


def test_row_objects_follow_include_object() -> None:
    obj = service_import()
    metadata_row = table_row("ServiceImport", obj, NOW, IncludeObject.METADATA)
    assert metadata_row["object"] == {
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj["metadata"],
    }
    assert table_row("ServiceImport", obj, NOW, IncludeObject.OBJECT)["object"] == obj
    assert table_row("ServiceImport", obj, NOW, IncludeObject.NONE)["object"] is None


def test_a_list_table_carries_the_list_metadata_and_one_row_per_object() -> None:
    objects = [service_import(), service_import()]
    table = table_for(
        "ServiceImport", objects, NOW, resource_version="77", continue_token="tok", remaining_item_count=3
    )
    assert table["kind"] == "Table" and table["apiVersion"] == "meta.k8s.io/v1"
    assert table["metadata"] == {"resourceVersion": "77", "continue": "tok", "remainingItemCount": 3}
    assert len(table["columnDefinitions"]) == 9
    assert len(table["rows"]) == 2
    assert table["rows"][0] == table_row("ServiceImport", objects[0], NOW)


def test_an_empty_list_is_a_table_with_no_rows_not_null() -> None:
    table = table_for("ClusterSet", [], NOW)
    assert table["rows"] == [] and table["metadata"] == {}


def test_a_v1beta1_table_differs_only_in_api_versions() -> None:
    obj = service_import()
    v1 = table_for("ServiceImport", [obj], NOW)
    beta = table_for("ServiceImport", [obj], NOW, api_version="meta.k8s.io/v1beta1")
    assert beta["apiVersion"] == "meta.k8s.io/v1beta1"
    assert beta["rows"][0]["object"]["apiVersion"] == "meta.k8s.io/v1beta1"
    assert beta["rows"][0]["cells"] == v1["rows"][0]["cells"]
    assert beta["columnDefinitions"] == v1["columnDefinitions"]


def test_watch_events_after_the_first_carry_no_column_definitions_and_the_objects_version() -> None:
    obj = service_import()
    first = table_for_event("ServiceImport", obj, NOW, with_column_definitions=True)
    later = table_for_event("ServiceImport", obj, NOW)
    assert first["columnDefinitions"] and later["columnDefinitions"] == []
    assert later["metadata"] == {"resourceVersion": "41"}
    assert len(later["rows"]) == 1


def test_a_bookmark_on_a_table_watch_is_an_empty_table_with_the_resource_version() -> None:
    assert bookmark_table("99") == {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": "99"},
        "columnDefinitions": [],
        "rows": [],
    }


def test_partial_object_metadata_keeps_the_whole_metadata_and_nothing_else() -> None:
    obj = service_import()
    assert partial_object_metadata(obj) == {
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj["metadata"],
    }


def test_the_serialized_partial_object_metadata_is_the_same_object_joined_from_metadata_bytes() -> None:
    obj = service_import()
    joined = partial_object_metadata_head("meta.k8s.io/v1beta1") + orjson.dumps(obj["metadata"]) + b"}"
    assert orjson.loads(joined) == partial_object_metadata(obj, "meta.k8s.io/v1beta1")


def test_a_table_of_ten_thousand_imports_has_one_row_per_import_in_order() -> None:
    # How fast tables are built belongs to the benchmarks (LIST as=Table in benchmarks/reads.py).
    objects = []
    for i in range(10_000):
        obj = service_import()
        obj["metadata"] = dict(
            obj["metadata"], name=f"svc-{i}", creationTimestamp=f"2025-05-{1 + i % 28:02d}T10:00:00Z"
        )
        objects.append(obj)
    table = table_for("ServiceImport", objects, NOW)
    assert [row["cells"][0] for row in table["rows"]] == [f"svc-{i}" for i in range(10_000)]
