"""ClusterSet membership: cluster IDs, member states, the ClusterSet object."""

from __future__ import annotations

import uuid

import pytest

from mcs_apiserver.views.clusterset import (
    UID_NAMESPACE,
    MemberState,
    build_clusterset,
    cluster_id_of,
    clusterset_of,
    clusterset_uid,
    derive_membership,
    stable_uid,
)
from mcs_apiserver.contract import (
    CLUSTER_ID_PROPERTY,
    CLUSTERSET_PROPERTY,
    LEGACY_CLUSTER_ID_PROPERTY,
    MemberStatus,
)
from mcs_apiserver.views.testing import InMemoryMember, cluster_property, member

T0 = "2026-01-01T00:00:00Z"
T1 = "2026-01-01T01:00:00Z"
UNREACHABLE = MemberStatus(connected=False, synced=True, last_sync="2026-01-01T00:30:00Z", message="dial tcp: refused")
EXPIRED = MemberStatus(connected=False, synced=True, last_sync="2026-01-01T00:30:00Z", expired=True)
NEVER_SYNCED = MemberStatus(connected=False, synced=False, message="connecting")
RESYNCING = MemberStatus(connected=True, synced=False, last_sync="2026-01-01T00:30:00Z")


def members(*ms: InMemoryMember) -> dict[str, InMemoryMember]:
    return {m.name: m for m in ms}


def states(ms: dict[str, InMemoryMember], local: str = "a") -> dict[str, str]:
    return {i.name: str(i.state) for i in derive_membership(ms, local).members}


# --- cluster IDs ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("props", "expected"),
    [
        ({CLUSTER_ID_PROPERTY: "east"}, "east"),
        ({LEGACY_CLUSTER_ID_PROPERTY: "legacy"}, "legacy"),
        ({CLUSTER_ID_PROPERTY: "east", LEGACY_CLUSTER_ID_PROPERTY: "legacy"}, "east"),
        ({CLUSTER_ID_PROPERTY: "", LEGACY_CLUSTER_ID_PROPERTY: "legacy"}, "legacy"),
        ({}, None),
        ({CLUSTER_ID_PROPERTY: ""}, None),
    ],
    ids=["well-known", "alias", "well-known-wins", "empty-falls-back", "none", "empty"],
)
def test_the_cluster_id_is_the_well_known_property_with_id_k8s_io_as_alias(
    props: dict[str, str], expected: str | None
) -> None:
    assert cluster_id_of({k: cluster_property(k, v) for k, v in props.items()}) == expected


def test_a_member_identified_only_by_the_id_k8s_io_alias_joins() -> None:
    b = InMemoryMember("b")
    b.set_property(LEGACY_CLUSTER_ID_PROPERTY, "bee")
    b.set_property(CLUSTERSET_PROPERTY, "set-1")
    membership = derive_membership(members(member("a"), b), "a")
    assert membership.eligible == {"a": "a", "b": "bee"}
    assert states(members(member("a"), b)) == {"a": "Joined", "b": "Joined"}


def test_the_clusterset_name_is_the_local_clusterset_property() -> None:
    ms = members(member("a", clusterset="blue"), member("b", clusterset="blue"))
    assert derive_membership(ms, "a").clusterset == "blue"
    assert clusterset_of(ms["a"].cluster_properties) == "blue"


@pytest.mark.parametrize(
    "local",
    [
        member("a", clusterset=None),
        InMemoryMember("a", status=NEVER_SYNCED),
    ],
    ids=["no-clusterset-property", "local-not-synced"],
)
def test_without_a_local_clusterset_property_there_is_no_clusterset_and_nobody_is_eligible(
    local: InMemoryMember,
) -> None:
    ms = members(local, member("b"))
    membership = derive_membership(ms, "a")
    assert membership.clusterset is None
    assert membership.eligible == {}
    assert build_clusterset(membership, ms, "a", None, T0) is None


def test_an_unknown_local_member_name_gives_no_clusterset() -> None:
    assert derive_membership(members(member("b")), "a").clusterset is None


# --- member states -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("other", "state", "eligible"),
    [
        (member("b"), "Joined", True),
        (member("b", clusterset="other-set"), "NotMember", False),
        (member("b", clusterset=None), "NotMember", False),
        (InMemoryMember("b"), "MissingID", False),
        (member("b", status=UNREACHABLE), "Unreachable", True),
        (member("b", status=EXPIRED), "Unreachable", False),
        (member("b", status=NEVER_SYNCED), "Syncing", False),
        (member("b", status=RESYNCING), "Syncing", True),
    ],
    ids=["joined", "other-set", "no-set", "no-id", "grace", "expired", "never-synced", "resyncing"],
)
def test_each_member_state_and_whether_its_exports_count(
    other: InMemoryMember, state: str, eligible: bool
) -> None:
    ms = members(member("a"), other)
    membership = derive_membership(ms, "a")
    assert states(ms)["b"] == state
    assert ("b" in membership.eligible) is eligible


def test_a_member_that_never_synced_is_syncing_even_though_it_shows_no_properties_yet() -> None:
    ms = members(member("a"), InMemoryMember("b", status=NEVER_SYNCED))
    (info,) = [i for i in derive_membership(ms, "a").members if i.name == "b"]
    assert info.state is MemberState.SYNCING
    assert info.cluster_id is None
    assert info.message == "waiting for the first sync: connecting"


def test_all_members_sharing_a_cluster_id_are_duplicates_and_excluded() -> None:
    ms = members(member("a"), member("b", cluster_id="x"), member("c", cluster_id="x"), member("d", cluster_id="x"))
    membership = derive_membership(ms, "a")
    assert states(ms) == {"a": "Joined", "b": "DuplicateID", "c": "DuplicateID", "d": "DuplicateID"}
    assert membership.eligible == {"a": "a"}
    messages = {i.name: i.message for i in membership.members}
    assert messages["b"] == "cluster ID x is also used by c, d"
    assert messages["d"] == "cluster ID x is also used by b, c"


def test_the_local_member_is_a_duplicate_too_when_another_member_uses_its_id() -> None:
    ms = members(member("a", cluster_id="x"), member("b", cluster_id="x"))
    assert states(ms) == {"a": "DuplicateID", "b": "DuplicateID"}
    assert derive_membership(ms, "a").eligible == {}


def test_a_cluster_id_shared_with_a_member_of_another_clusterset_is_no_duplicate() -> None:
    ms = members(member("a"), member("b", cluster_id="x"), member("c", cluster_id="x", clusterset="other"))
    assert states(ms) == {"a": "Joined", "b": "Joined", "c": "NotMember"}


def test_an_expired_member_does_not_lock_its_cluster_id_away_from_a_live_one() -> None:
    ms = members(member("a"), member("old", cluster_id="x", status=EXPIRED), member("new", cluster_id="x"))
    membership = derive_membership(ms, "a")
    assert states(ms) == {"a": "Joined", "new": "Joined", "old": "Unreachable"}
    assert membership.eligible == {"a": "a", "new": "x"}


def test_a_member_in_its_grace_period_still_counts_against_a_duplicate() -> None:
    ms = members(member("a"), member("b", cluster_id="x", status=UNREACHABLE), member("c", cluster_id="x"))
    assert states(ms) == {"a": "Joined", "b": "DuplicateID", "c": "DuplicateID"}


def test_an_identity_problem_is_reported_before_a_connection_problem() -> None:
    ms = members(member("a"), member("b", clusterset="other", status=UNREACHABLE))
    assert states(ms)["b"] == "NotMember"


def test_a_local_member_without_an_id_is_missing_id_and_has_no_local_cluster() -> None:
    local = InMemoryMember("a")
    local.set_property(CLUSTERSET_PROPERTY, "set-1")
    ms = members(local, member("b"))
    membership = derive_membership(ms, "a")
    assert membership.clusterset == "set-1"
    assert membership.local_cluster is None
    assert states(ms) == {"a": "MissingID", "b": "Joined"}
    cs = build_clusterset(membership, ms, "a", None, T0)
    assert cs is not None and "localCluster" not in cs["status"]
    assert "create cluster.clusterset.k8s.io in a" in cs["status"]["members"][0]["message"]


def test_unreachable_messages_say_whether_the_last_known_exports_are_still_served() -> None:
    ms = members(member("a"), member("b", status=UNREACHABLE), member("c", status=EXPIRED))
    infos = {i.name: i.message for i in derive_membership(ms, "a").members}
    assert infos["b"] == (
        "unreachable since 2026-01-01T00:30:00Z; its last known exports are served until the grace "
        "period ends: dial tcp: refused"
    )
    assert "no longer served" in infos["c"]


# --- the ClusterSet object ----------------------------------------------------------------------


def _clusterset(ms: dict[str, InMemoryMember], previous=None, now: str = T0, local: str = "a"):
    return build_clusterset(derive_membership(ms, local), ms, local, previous, now)


def test_the_clusterset_object_has_a_stable_uid_and_the_creation_time_of_the_local_property() -> None:
    a = member("a")
    a.set_property(CLUSTERSET_PROPERTY, "set-1", created="2025-06-01T12:00:00Z")
    cs = _clusterset(members(a, member("b")))
    assert cs is not None
    assert cs["apiVersion"] == "views.multicluster.x-k8s.io/v1alpha1"
    assert cs["kind"] == "ClusterSet"
    assert cs["metadata"] == {
        "name": "set-1",
        "uid": clusterset_uid("set-1"),
        "creationTimestamp": "2025-06-01T12:00:00Z",
    }
    assert uuid.UUID(cs["metadata"]["uid"]).version == 5
    assert clusterset_uid("set-1") == clusterset_uid("set-1") != clusterset_uid("set-2")


def test_members_are_listed_by_cluster_id_then_name_with_sync_time_and_export_count() -> None:
    a = member("a", cluster_id="zulu")
    b = member("b", cluster_id="alpha")
    c = InMemoryMember("c")
    c.set_property(CLUSTERSET_PROPERTY, "set-1")
    b.export(("default", "web"), None)
    b.export(("default", "db"), None)
    cs = _clusterset(members(a, b, c))
    assert cs is not None
    assert cs["status"]["localCluster"] == "zulu"
    assert [(m["cluster"], m["name"], m["state"], m["exports"]) for m in cs["status"]["members"]] == [
        ("", "c", "MissingID", 0),
        ("alpha", "b", "Joined", 2),
        ("zulu", "a", "Joined", 0),
    ]
    assert cs["status"]["members"][1]["lastSyncTime"] == T0
    assert "message" not in cs["status"]["members"][1]


def test_the_clusterset_is_ready_when_all_members_joined() -> None:
    cs = _clusterset(members(member("a"), member("b")))
    assert cs is not None
    (ready,) = cs["status"]["conditions"]
    assert ready == {
        "type": "Ready",
        "status": "True",
        "reason": "AllMembersJoined",
        "message": "all 2 members joined",
        "lastTransitionTime": T0,
    }


def test_the_clusterset_is_not_ready_with_reasons_naming_each_problem_and_members_not_joined() -> None:
    ms = members(
        member("a"),
        member("b", cluster_id="x"),
        member("c", cluster_id="x"),
        member("d", status=UNREACHABLE),
        member("e", clusterset="other"),
    )
    cs = _clusterset(ms)
    assert cs is not None
    (ready,) = cs["status"]["conditions"]
    assert ready["status"] == "False"
    assert ready["reason"] == "DuplicateID,NotMember,Unreachable"
    assert ready["message"].startswith("1 of 5 members joined; not joined: ")
    assert "b (DuplicateID: cluster ID x is also used by c)" in ready["message"]
    assert "e (NotMember: " in ready["message"]
    assert "a (" not in ready["message"]


def test_an_unchanged_condition_keeps_its_last_transition_time_and_a_changed_one_gets_now() -> None:
    ms = members(member("a"), member("b"))
    first = _clusterset(ms, now=T0)
    same = _clusterset(ms, previous=first, now=T1)
    assert same == first  # nothing changed, not even the time
    ms["b"].status = UNREACHABLE
    changed = _clusterset(ms, previous=same, now=T1)
    assert changed is not None
    assert changed["status"]["conditions"][0]["lastTransitionTime"] == T1
    ms["c"] = member("c", status=NEVER_SYNCED)
    still_false = _clusterset(ms, previous=changed, now="2026-01-01T02:00:00Z")
    assert still_false is not None
    assert still_false["status"]["conditions"][0]["reason"] == "Unreachable,Syncing"
    assert still_false["status"]["conditions"][0]["lastTransitionTime"] == T1


@pytest.mark.parametrize("name", ["", "clusterset/set-1", "serviceimport/set-1/shop/web", "ünïcode/ns/name"])
def test_the_fast_stable_uid_is_exactly_uuid5_in_the_project_namespace(name: str) -> None:
    assert stable_uid(name) == str(uuid.uuid5(UID_NAMESPACE, name))
    assert UID_NAMESPACE == uuid.uuid5(uuid.NAMESPACE_DNS, "views.multicluster.x-k8s.io")


def test_an_upstream_serviceimport_crd_not_published_to_is_named_in_a_condition_with_the_name_to_use() -> None:
    ms = members(member("a", "a", "set"), member("b", "b", "set"))
    membership = derive_membership(ms, "a")
    plain = build_clusterset(membership, ms, "a", None, T0)
    assert [c["type"] for c in plain["status"]["conditions"]] == ["Ready"]
    clash = build_clusterset(membership, ms, "a", None, T0, upstream_clash=True)
    condition = {c["type"]: c for c in clash["status"]["conditions"]}["UpstreamServiceImportClash"]
    assert (condition["status"], condition["reason"]) == ("True", "UpstreamCRDInstalled")
    assert "serviceimports.multicluster.x-k8s.io" in condition["message"]
    assert "kubectl get serviceimports.views.multicluster.x-k8s.io" in condition["message"]
    assert "--publish-serviceimports" in condition["message"]
