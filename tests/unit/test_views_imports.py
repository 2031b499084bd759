"""ServiceImport derivation: KEP-1645 merge and conflict rules for one key."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from mcs_apiserver.kube.times import parse_time
from mcs_apiserver.views.imports import (
    Contribution,
    import_conditions,
    render_service_import,
    derive_import,
    export_conditions,
    export_conflicts,
    export_validity,
    import_uid,
    make_contribution,
)
from mcs_apiserver.views.testing import port, service, service_export

KEY = ("shop", "web")
T0 = "2026-01-01T00:00:00Z"
NOW = "2026-01-02T00:00:00Z"
ADDRESSES = {"IPv4": "243.0.0.7", "IPv6": "fd00:243::7"}


def at(second: int, micro: int = 0) -> str:
    return f"2026-01-01T00:00:{second:02d}.{micro:06d}Z"


def contrib(
    cluster: str,
    exported_at: str | None = None,
    svc: dict[str, Any] | None | bool = True,
    ready: int = 1,
    created: str = T0,
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    **service_args: Any,
) -> Contribution:
    """A contribution of ``cluster``; ``svc=True`` builds a Service from ``service_args``, None = no Service."""
    if svc is True:
        service_args.setdefault("ports", [port(80, "http")])
        svc = service(KEY, **service_args)
    return make_contribution(
        cluster, f"member-{cluster}", service_export(KEY, exported_at, created, labels, annotations), svc, ready  # type: ignore[arg-type]
    )


def build(contributions: list[Contribution], addresses=ADDRESSES, previous=None, now: str = NOW):
    derived = derive_import(KEY, contributions)
    assert derived is not None
    before = ((previous or {}).get("status") or {}).get("conditions")
    return render_service_import(derived, "set-1", addresses, import_conditions(derived, addresses, before, now))


def conditions(obj) -> dict[str, dict[str, str]]:
    return {c["type"]: c for c in obj["status"]["conditions"]}


# --- validity and type ---------------------------------------------------------------------------


def test_an_export_without_its_service_does_not_contribute() -> None:
    lonely = contrib("c1", svc=None)
    assert export_validity(lonely) == (False, "NoService", "Service shop/web does not exist in cluster c1")
    assert derive_import(KEY, [lonely]) is None
    obj = build([lonely, contrib("c2")])
    assert [c["cluster"] for c in obj["status"]["clusters"]] == ["c2"]


def test_an_externalname_service_cannot_be_exported_and_does_not_contribute() -> None:
    external = contrib("c1", type_="ExternalName")
    validity = export_validity(external)
    assert validity.valid is False and validity.reason == "InvalidServiceType"
    assert derive_import(KEY, [external]) is None
    assert [c["cluster"] for c in build([external, contrib("c2", at(5))])["status"]["clusters"]] == ["c2"]


def test_a_service_with_its_export_is_valid() -> None:
    assert export_validity(contrib("c1")).reason == "Valid"


@pytest.mark.parametrize(
    ("service_args", "expected"),
    [
        ({"type_": "ClusterIP"}, "ClusterSetIP"),
        ({"type_": "NodePort"}, "ClusterSetIP"),
        ({"type_": "LoadBalancer"}, "ClusterSetIP"),
        ({"headless": True}, "Headless"),
    ],
)
def test_cluster_ip_none_is_headless_and_any_other_type_is_clustersetip(
    service_args: dict[str, Any], expected: str
) -> None:
    obj = build([contrib("c1", **service_args)])
    assert obj["spec"]["type"] == expected
    assert ("ips" in obj["spec"]) is (expected == "ClusterSetIP")


# --- export age ------------------------------------------------------------------------------------


def test_the_oldest_export_wins_a_type_conflict() -> None:
    young = contrib("c1", at(9), headless=True)
    old = contrib("c2", at(1))
    obj = build([young, old])
    assert obj["spec"]["type"] == "ClusterSetIP"
    assert conditions(obj)["Conflict"]["reason"] == "TypeConflict"
    assert conditions(obj)["Conflict"]["message"] == (
        "type: ClusterSetIP in c2 but Headless in c1; c2 wins because it exported first (2026-01-01T00:00:01.000000Z)"
    )


def test_the_exported_at_annotation_orders_exports_made_in_the_same_second() -> None:
    first = contrib("zz", "2026-01-01T00:00:00.000001Z", created=T0, headless=True)
    second = contrib("aa", "2026-01-01T00:00:00.000002Z", created=T0)
    assert build([second, first])["spec"]["type"] == "Headless"


def test_the_exported_at_annotation_takes_precedence_over_the_creation_timestamp() -> None:
    stamped = contrib("c1", exported_at=at(30), created=at(1), headless=True)
    unstamped = contrib("c2", exported_at=None, created=at(10))
    assert stamped.exported_at == at(30) and unstamped.exported_at == at(10)
    assert build([stamped, unstamped])["spec"]["type"] == "ClusterSetIP"


def test_an_unreadable_exported_at_falls_back_to_the_creation_timestamp() -> None:
    broken = contrib("c1", exported_at="yesterday", created=at(1), headless=True)
    assert broken.exported_at == at(1)
    assert build([broken, contrib("c2", at(5))])["spec"]["type"] == "Headless"


def test_an_export_with_no_readable_time_is_the_youngest() -> None:
    timeless = contrib("a", exported_at=None, created="", headless=True)
    assert build([timeless, contrib("b", at(59))])["spec"]["type"] == "ClusterSetIP"


def test_a_timestamp_without_an_offset_is_read_as_utc() -> None:
    naive = contrib("c1", exported_at="2026-01-01T00:00:02", headless=True)
    assert naive.age.time == parse_time("2026-01-01T00:00:02Z")
    assert build([naive, contrib("c2", "2026-01-01T01:00:01+01:00")])["spec"]["type"] == "ClusterSetIP"


def test_the_cluster_id_breaks_a_tie_between_exports_of_the_same_instant() -> None:
    obj = build([contrib("c2", at(3), headless=True), contrib("c1", at(3))])
    assert obj["spec"]["type"] == "ClusterSetIP"
    assert conditions(obj)["Conflict"]["message"] == (
        "type: ClusterSetIP in c1 but Headless in c2; c1 wins because both exported at "
        "2026-01-01T00:00:03.000000Z and its cluster ID sorts first"
    )


# --- ports -------------------------------------------------------------------------------------

PORT_CASES = [
    pytest.param(
        [[port(80, "http")], [port(443, "https")]],
        [{"name": "http", "protocol": "TCP", "port": 80}, {"name": "https", "protocol": "TCP", "port": 443}],
        ["ports: the port sets differ (only in c1: 80/TCP; only in c2: 443/TCP); the import serves the union, so a port is answered only by the clusters that expose it"],
        id="union",
    ),
    pytest.param(
        [[port(80, "http")], [port(80, "http")]],
        [{"name": "http", "protocol": "TCP", "port": 80}],
        [],
        id="same-port-merges",
    ),
    pytest.param(
        [[port(80, "http")], [port(8080, "http")]],
        [{"name": "http", "protocol": "TCP", "port": 80}],
        ["ports: port http is 80/TCP in c1 but 8080/TCP in c2; c1 wins because it exported first (2026-01-01T00:00:01.000000Z)"],
        id="same-name-other-port",
    ),
    pytest.param(
        [[port(80, "http")], [port(80, "web")]],
        [{"name": "http", "protocol": "TCP", "port": 80}],
        ["ports: port 80/TCP is named http in c1 but named web in c2; c1 wins because it exported first (2026-01-01T00:00:01.000000Z)"],
        id="same-port-other-name",
    ),
    pytest.param(
        [[port(80)], [port(8080)]],
        [{"protocol": "TCP", "port": 80}],
        ["ports: the unnamed port is 80/TCP in c1 but 8080/TCP in c2; c1 wins because it exported first (2026-01-01T00:00:01.000000Z)"],
        id="two-unnamed-ports",
    ),
    pytest.param(
        [[port(80)], [port(80)]],
        [{"protocol": "TCP", "port": 80}],
        [],
        id="same-unnamed-port",
    ),
    pytest.param(
        [[port(80)], [port(80, "http")]],
        [{"protocol": "TCP", "port": 80}],
        ["ports: port 80/TCP is unnamed in c1 but named http in c2; c1 wins because it exported first (2026-01-01T00:00:01.000000Z)"],
        id="unnamed-then-named",
    ),
    pytest.param(
        [[port(53, "dns", "UDP")], [port(53, "dns-tcp", "TCP")]],
        [{"name": "dns", "protocol": "UDP", "port": 53}, {"name": "dns-tcp", "protocol": "TCP", "port": 53}],
        ["ports: the port sets differ (only in c1: 53/UDP; only in c2: 53/TCP); the import serves the union, so a port is answered only by the clusters that expose it"],
        id="same-number-other-protocol",
    ),
    pytest.param(
        [[port(80, "http", app_protocol="h2c")], [port(80, "http")]],
        [{"name": "http", "protocol": "TCP", "appProtocol": "h2c", "port": 80}],
        ["ports: port http (80/TCP) has appProtocol h2c in c1 but unset in c2; c1 wins because it exported first (2026-01-01T00:00:01.000000Z)"],
        id="app-protocol",
    ),
    pytest.param(
        [[port(80, "http")], [port(8080, "http"), port(9090, "metrics")], [port(9090, "prom"), port(7070, "x")]],
        [
            {"name": "http", "protocol": "TCP", "port": 80},
            {"name": "metrics", "protocol": "TCP", "port": 9090},
            {"name": "x", "protocol": "TCP", "port": 7070},
        ],
        [
            "ports: port http is 80/TCP in c1 but 8080/TCP in c2; c1 wins because it exported first (2026-01-01T00:00:01.000000Z)",
            "ports: port 9090/TCP is named metrics in c2 but named prom in c3; c2 wins because it exported first (2026-01-01T00:00:02.000000Z)",
        ],
        id="the-owner-of-a-port-wins-not-the-oldest-export",
    ),
]


@pytest.mark.parametrize(("ports_by_age", "expected_ports", "messages"), PORT_CASES)
def test_ports_are_a_union_merged_by_name_then_protocol_and_port(
    ports_by_age: list[list[dict[str, Any]]], expected_ports: list[dict[str, Any]], messages: list[str]
) -> None:
    contributions = [contrib(f"c{i + 1}", at(i + 1), ports=p) for i, p in enumerate(ports_by_age)]
    obj = build(list(reversed(contributions)))
    assert obj["spec"]["ports"] == expected_ports
    names = [p.get("name", "") for p in obj["spec"]["ports"]]
    pairs = [(p["protocol"], p["port"]) for p in obj["spec"]["ports"]]
    assert len(set(names)) == len(names) and len(set(pairs)) == len(pairs)
    conflict = conditions(obj)["Conflict"]
    if messages:
        assert conflict["status"] == "True" and conflict["reason"] == "PortConflict"
        assert conflict["message"] == "; ".join(messages)
    else:
        assert conflict["status"] == "False" and conflict["reason"] == "NoConflicts"


def test_port_sets_that_differ_keep_the_union_and_flag_every_contributing_export() -> None:
    # the conformance case: c2 exposes the same port as c1 plus one more
    c1 = contrib("c1", at(1), ports=[port(42, "tcp")])
    c2 = contrib("c2", at(2), ports=[port(42, "tcp"), port(142, "stcp", "SCTP")])
    derived = derive_import(KEY, [c2, c1])
    assert derived is not None
    assert derived.ports == [
        {"name": "tcp", "protocol": "TCP", "port": 42},
        {"name": "stcp", "protocol": "SCTP", "port": 142},
    ]
    assert [(c.reason, c.cluster, c.winner) for c in derived.conflicts] == [("PortConflict", "c2", "c1")]
    assert "only in c2: 142/SCTP" in derived.conflicts[0].message
    for contribution in (c1, c2):
        conflict = {c["type"]: c for c in export_conditions(contribution, derived, None, NOW)}["Conflict"]
        assert (conflict["status"], conflict["reason"]) == ("True", "PortConflict")


def test_a_malformed_service_loses_its_repeated_or_numberless_ports_without_a_conflict() -> None:
    ports = [port(80, "http"), port(81, "http"), port(80, "web"), {"name": "x"}, {"name": "y", "port": "80"}]
    obj = build([contrib("c1", ports=ports)])
    assert obj["spec"]["ports"] == [{"name": "http", "protocol": "TCP", "port": 80}]
    assert conditions(obj)["Conflict"]["reason"] == "NoConflicts"


def test_a_port_without_a_protocol_is_tcp() -> None:
    obj = build([contrib("c1", ports=[{"port": 80, "name": "http"}])])
    assert obj["spec"]["ports"] == [{"name": "http", "protocol": "TCP", "port": 80}]


def test_a_service_without_ports_gives_an_empty_port_list() -> None:
    assert build([contrib("c1", headless=True, ports=[])])["spec"]["ports"] == []


# --- whole-service properties ------------------------------------------------------------------

WHOLE_SERVICE_CASES = [
    pytest.param({"headless": False}, {"headless": True}, "TypeConflict", ("spec", "type"), "ClusterSetIP", id="type"),
    pytest.param(
        {"sessionAffinity": "ClientIP", "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 10800}}},
        {"sessionAffinity": "None"},
        "SessionAffinityConflict",
        ("spec", "sessionAffinity"),
        "ClientIP",
        id="sessionAffinity",
    ),
    pytest.param(
        {"sessionAffinity": "ClientIP", "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 60}}},
        {"sessionAffinity": "ClientIP", "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 10800}}},
        "SessionAffinityConfigConflict",
        ("spec", "sessionAffinityConfig"),
        {"clientIP": {"timeoutSeconds": 60}},
        id="sessionAffinityConfig",
    ),
    pytest.param(
        {"internalTrafficPolicy": "Local"},
        {"internalTrafficPolicy": "Cluster"},
        "InternalTrafficPolicyConflict",
        ("spec", "internalTrafficPolicy"),
        "Local",
        id="internalTrafficPolicy",
    ),
    pytest.param(
        {"trafficDistribution": "PreferClose"},
        {},
        "TrafficDistributionConflict",
        ("spec", "trafficDistribution"),
        "PreferClose",
        id="trafficDistribution",
    ),
    pytest.param(
        {"labels": {"tier": "web"}},
        {"labels": {"tier": "frontend"}},
        "LabelsConflict",
        ("metadata", "labels"),
        {"tier": "web"},
        id="exportedLabels",
    ),
    pytest.param(
        {"annotations": {"team": "a"}},
        {},
        "AnnotationsConflict",
        ("metadata", "annotations"),
        {"team": "a"},
        id="exportedAnnotations",
    ),
    pytest.param(
        {"families": ("IPv4", "IPv6")},
        {"families": ("IPv4",)},
        "IPFamilyConflict",
        ("spec", "ipFamilies"),
        ["IPv4", "IPv6"],
        id="ipFamilies",
    ),
]


@pytest.mark.parametrize(("older", "younger", "reason", "path", "served"), WHOLE_SERVICE_CASES)
def test_a_whole_service_property_comes_from_the_oldest_export_and_a_difference_is_a_conflict(
    older: dict[str, Any], younger: dict[str, Any], reason: str, path: tuple[str, str], served: Any
) -> None:
    old = contrib("c2", at(1), **older)
    young = contrib("c1", at(2), **younger)
    obj = build([young, old])
    assert obj[path[0]].get(path[1]) == served
    conflict = conditions(obj)["Conflict"]
    assert conflict["status"] == "True"
    assert conflict["reason"] == reason
    assert "c2 wins because it exported first (2026-01-01T00:00:01.000000Z)" in conflict["message"]
    clusters = {c["cluster"]: c for c in obj["status"]["clusters"]}
    assert clusters["c1"]["conflicts"] == [reason]
    assert "conflicts" not in clusters["c2"]
    # swap the ages: the other value is served
    swapped = build([contrib("c2", at(2), **older), contrib("c1", at(1), **younger)])
    assert swapped[path[0]].get(path[1]) != served


@pytest.mark.parametrize(
    ("left", "right"),
    [
        ({}, {"sessionAffinity": None}),
        ({}, {"internalTrafficPolicy": None}),
        ({"families": ("IPv4", "IPv6")}, {"families": ("IPv6", "IPv4")}),
        ({"families": ("IPv4",)}, {"families": ("IPv4", "IPv6")}),
        ({"labels": None}, {"labels": {}}),
    ],
    ids=["affinity-default", "itp-default", "family-order", "more-families", "no-labels"],
)
def test_values_that_mean_the_same_are_no_conflict(left: dict[str, Any], right: dict[str, Any]) -> None:
    obj = build([contrib("c1", at(1), **left), contrib("c2", at(2), **right)])
    assert conditions(obj)["Conflict"]["reason"] == "NoConflicts"


def test_the_ip_family_conflict_message_says_which_address_cannot_reach_which_cluster() -> None:
    obj = build([contrib("c1", at(1), families=("IPv4", "IPv6")), contrib("c2", at(2), families=("IPv4",))])
    assert conditions(obj)["Conflict"]["message"] == (
        "ipFamilies: [IPv4, IPv6] in c1 but [IPv4] in c2, so its IPv6 address cannot reach c2; "
        "c1 wins because it exported first (2026-01-01T00:00:01.000000Z)"
    )


def test_several_conflicts_are_comma_joined_in_a_fixed_order_and_listed_per_cluster() -> None:
    obj = build(
        [
            contrib("c1", at(1), ports=[port(80, "http")]),
            contrib("c2", at(2), headless=True, ports=[port(81, "http")], labels={"x": "y"}),
            contrib("c3", at(3), internalTrafficPolicy="Local"),
        ]
    )
    conflict = conditions(obj)["Conflict"]
    assert conflict["reason"] == "TypeConflict,PortConflict,InternalTrafficPolicyConflict,LabelsConflict"
    assert conflict["message"].count("; c1 wins") == 4
    assert [c.get("conflicts") for c in obj["status"]["clusters"]] == [
        None,
        ["TypeConflict", "PortConflict", "LabelsConflict"],
        ["InternalTrafficPolicyConflict"],
    ]


def test_the_conflict_message_names_the_field_the_winner_and_why() -> None:
    obj = build(
        [
            contrib("member-2", "2026-01-01T00:00:05.000000Z", ports=[port(80, "web")]),
            contrib("member-1", "2026-01-01T00:00:00.000001Z", ports=[port(80, "http")]),
        ]
    )
    assert conditions(obj)["Conflict"]["message"] == (
        "ports: port 80/TCP is named http in member-1 but named web in member-2; member-1 wins because it "
        "exported first (2026-01-01T00:00:00.000001Z)"
    )


# --- the object ----------------------------------------------------------------------------------


def test_the_import_object_has_derived_metadata_from_the_oldest_export() -> None:
    old = contrib("c2", at(1), created="2025-12-31T00:00:00Z", labels={"app": "web"}, annotations={"a": "b"})
    young = contrib("c1", at(2), created="2025-06-01T00:00:00Z")
    obj = build([young, old])
    assert obj["apiVersion"] == "views.multicluster.x-k8s.io/v1alpha1"
    assert obj["kind"] == "ServiceImport"
    assert obj["metadata"] == {
        "name": "web",
        "namespace": "shop",
        "uid": import_uid("set-1", "shop", "web"),
        "creationTimestamp": "2025-12-31T00:00:00Z",
        "labels": {"app": "web"},
        "annotations": {"a": "b"},
    }


def test_the_uid_is_a_stable_uuid5_of_clusterset_namespace_and_name() -> None:
    uid = import_uid("set-1", "shop", "web")
    assert uuid.UUID(uid).version == 5
    assert build([contrib("c1")])["metadata"]["uid"] == build([contrib("c9", at(7))])["metadata"]["uid"] == uid
    assert len({uid, import_uid("set-2", "shop", "web"), import_uid("set-1", "shop2", "web"), import_uid("set-1", "shop", "web2")}) == 4


def test_the_spec_carries_the_winners_optional_fields_only_when_set() -> None:
    plain = build([contrib("c1", sessionAffinity=None, internalTrafficPolicy=None)])
    assert set(plain["spec"]) == {"type", "ips", "ipFamilies", "ports"}
    rich = build(
        [
            contrib(
                "c1",
                sessionAffinity="ClientIP",
                sessionAffinityConfig={"clientIP": {"timeoutSeconds": 30}},
                trafficDistribution="PreferClose",
            )
        ]
    )
    assert rich["spec"]["sessionAffinity"] == "ClientIP"
    assert rich["spec"]["sessionAffinityConfig"] == {"clientIP": {"timeoutSeconds": 30}}
    assert rich["spec"]["internalTrafficPolicy"] == "Cluster"
    assert rich["spec"]["trafficDistribution"] == "PreferClose"
    assert "labels" not in rich["metadata"] and "annotations" not in rich["metadata"]


def test_status_lists_the_contributing_clusters_by_cluster_id() -> None:
    obj = build([contrib("zeta", at(1), ready=3), contrib("alpha", at(2), ready=0), contrib("mid", at(3), svc=None)])
    assert obj["status"]["clusters"] == [
        {"cluster": "alpha", "exportedAt": at(2), "readyEndpoints": 0},
        {"cluster": "zeta", "exportedAt": at(1), "readyEndpoints": 3},
    ]


def test_ips_follow_the_winners_family_order_and_only_for_clustersetip() -> None:
    dual = build([contrib("c1", families=("IPv6", "IPv4"))])
    assert dual["spec"]["ipFamilies"] == ["IPv6", "IPv4"]
    assert dual["spec"]["ips"] == ["fd00:243::7", "243.0.0.7"]
    headless = build([contrib("c1", headless=True, families=("IPv6", "IPv4"))])
    assert headless["spec"]["ipFamilies"] == ["IPv6", "IPv4"] and "ips" not in headless["spec"]


def test_families_are_inferred_from_cluster_ips_when_the_service_lacks_ip_families() -> None:
    obj = build([contrib("c1", ipFamilies=None, clusterIPs=["fd00::1"])])
    assert obj["spec"]["ipFamilies"] == ["IPv6"] and obj["spec"]["ips"] == ["fd00:243::7"]


READY_CASES = [
    pytest.param({}, 2, ADDRESSES, ("True", "Ready"), id="clustersetip-with-ip-and-endpoints"),
    pytest.param({}, 0, ADDRESSES, ("False", "Pending"), id="clustersetip-without-endpoints"),
    pytest.param({"headless": True}, 1, {}, ("True", "Ready"), id="headless-with-endpoints"),
    pytest.param({"headless": True}, 0, ADDRESSES, ("False", "Pending"), id="headless-without-endpoints"),
    pytest.param({"families": ("IPv6",)}, 1, {"IPv4": "243.0.0.1"}, ("False", "IPFamilyNotSupported"), id="no-range"),
    pytest.param({}, 1, {}, ("False", "IPFamilyNotSupported"), id="no-range-at-all"),
    pytest.param({}, 1, {"IPv4": None}, ("False", "Pending"), id="range-full"),
]


@pytest.mark.parametrize(("service_args", "ready", "addresses", "expected"), READY_CASES)
def test_ready_means_a_consumer_can_reach_a_ready_endpoint_through_the_import(
    service_args: dict[str, Any], ready: int, addresses: dict[str, str | None], expected: tuple[str, str]
) -> None:
    obj = build([contrib("c1", ready=ready, **service_args)], addresses=addresses)
    cond = conditions(obj)["Ready"]
    assert (cond["status"], cond["reason"]) == expected
    assert cond["message"]


def test_an_unsupported_family_is_dropped_from_a_dual_stack_import_when_the_other_is_served() -> None:
    obj = build([contrib("c1", families=("IPv4", "IPv6"))], addresses={"IPv4": "243.0.0.1"})
    assert obj["spec"]["ipFamilies"] == ["IPv4"] and obj["spec"]["ips"] == ["243.0.0.1"]
    assert conditions(obj)["Ready"]["status"] == "True"


def test_the_ready_message_counts_endpoints_and_clusters() -> None:
    obj = build([contrib("c1", at(1), ready=2), contrib("c2", at(2), ready=0), contrib("c3", at(3), ready=5)])
    assert conditions(obj)["Ready"]["message"] == "7 ready endpoints in 2 of 3 exporting clusters"


def test_conditions_keep_their_transition_time_while_their_status_holds() -> None:
    first = build([contrib("c1", ready=0)], now="2026-01-02T00:00:00Z")
    again = build([contrib("c1", ready=0)], previous=first, now="2026-01-03T00:00:00Z")
    assert again == first
    ready = build([contrib("c1", ready=1)], previous=again, now="2026-01-04T00:00:00Z")
    assert conditions(ready)["Ready"]["lastTransitionTime"] == "2026-01-04T00:00:00Z"
    assert conditions(ready)["Conflict"]["lastTransitionTime"] == "2026-01-02T00:00:00Z"


# --- the webhook's question ------------------------------------------------------------------------


def test_export_conflicts_reports_what_a_new_export_would_lose() -> None:
    others = [contrib("c1", at(1)), contrib("c2", at(2))]
    candidate = contrib("c3", at(9), headless=True, ports=[port(81, "http")])
    conflicts = export_conflicts(candidate, others)
    assert [(c.reason, c.field, c.cluster, c.winner) for c in conflicts] == [
        ("TypeConflict", "type", "c3", "c1"),
        ("PortConflict", "ports", "c3", "c1"),
    ]
    derived = derive_import(KEY, [*others, candidate])
    assert derived is not None and conflicts == derived.conflicts


def test_export_conflicts_reports_the_clusters_that_disagree_with_an_old_export_being_updated() -> None:
    others = [contrib("c2", at(2), labels={"v": "2"}), contrib("c3", at(3), labels={"v": "2"})]
    candidate = contrib("c1", at(1), labels={"v": "1"})
    assert [(c.reason, c.cluster, c.winner) for c in export_conflicts(candidate, others)] == [
        ("LabelsConflict", "c2", "c1"),
        ("LabelsConflict", "c3", "c1"),
    ]


def test_export_conflicts_ignores_disagreements_between_other_clusters() -> None:
    others = [contrib("c1", at(1)), contrib("c2", at(2), headless=True)]
    assert export_conflicts(contrib("c3", at(3)), others) == []


def test_export_conflicts_replaces_the_candidates_own_cluster_among_the_others() -> None:
    others = [contrib("c1", at(1)), contrib("c2", at(2), headless=True)]
    assert export_conflicts(contrib("c2", at(2)), others) == []


def test_export_conflicts_is_empty_for_an_export_that_would_not_contribute() -> None:
    others = [contrib("c1", at(1))]
    assert export_conflicts(contrib("c2", at(2), svc=None), others) == []
    assert export_conflicts(contrib("c2", at(2), type_="ExternalName"), others) == []


# --- ServiceExport status ------------------------------------------------------------------------


def _export_status(contribution: Contribution, others: list[Contribution]) -> dict[str, tuple[str, str]]:
    derived = derive_import(KEY, [contribution, *others])
    conds = export_conditions(contribution, derived, None, NOW)
    assert all(c["lastTransitionTime"] == NOW for c in conds)
    return {c["type"]: (c["status"], c["reason"]) for c in conds}


def test_a_contributing_export_is_valid_ready_and_carries_the_imports_conflict() -> None:
    loser = contrib("c2", at(2), headless=True)
    assert _export_status(loser, [contrib("c1", at(1))]) == {
        "Valid": ("True", "Valid"),
        "Ready": ("True", "Ready"),
        "Conflict": ("True", "TypeConflict"),
    }
    winner = contrib("c1", at(1))
    assert _export_status(winner, [loser])["Conflict"] == ("True", "TypeConflict")  # on all exports


def test_an_export_without_a_service_is_invalid_and_failed() -> None:
    assert _export_status(contrib("c1", svc=None), [contrib("c2", at(5), headless=True)]) == {
        "Valid": ("False", "NoService"),
        "Ready": ("False", "Failed"),
        "Conflict": ("False", "NoConflicts"),
    }


def test_a_valid_export_of_a_cluster_that_does_not_count_yet_is_pending() -> None:
    mine = contrib("c9")
    conds = export_conditions(mine, derive_import(KEY, [contrib("c1")]), None, NOW)
    assert [(c["type"], c["status"], c["reason"]) for c in conds] == [
        ("Valid", "True", "Valid"),
        ("Ready", "Unknown", "Pending"),
        ("Conflict", "False", "NoConflicts"),
    ]
    assert export_conditions(mine, None, None, NOW)[1]["status"] == "Unknown"


def test_export_conditions_keep_their_transition_time_while_their_status_holds() -> None:
    derived = derive_import(KEY, [contrib("c1")])
    first = export_conditions(contrib("c1"), derived, None, "2026-01-02T00:00:00Z")
    again = export_conditions(contrib("c1"), derived, first, "2026-01-03T00:00:00Z")
    assert again == first
