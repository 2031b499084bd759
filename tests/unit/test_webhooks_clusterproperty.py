"""ClusterProperty admission rules (webhooks.clusterproperty), table-driven with plain data."""

from __future__ import annotations

from typing import Any

import jsonpatch
import orjson
import pytest

from mcs_apiserver.kube.names import is_dns1123_label
from webhooks.clusterproperty import cluster_id_problem, mutate_cluster_property, validate_cluster_property
from webhooks.facts import MemberIdentity
from webhooks.review import AdmissionRequest, Decision, parse_review, review_response
from webhooks.testing import NOT_SYNCED, StaticFacts, admission_review, cluster_property

ID = "cluster.clusterset.k8s.io"
ALIAS = "id.k8s.io"
CLUSTERSET = "clusterset.k8s.io"
UID = "721ab723-13bc-11e5-aec2-42010af0021e"
LEAVE_FIRST = "delete clusterset.k8s.io first to leave the ClusterSet"


def request(
    operation: str,
    name: str,
    value: Any = None,
    old_value: Any = None,
    *,
    version: str = "v1beta1",
    dry_run: bool = False,
    obj: dict | None = None,
) -> AdmissionRequest:
    """A parsed ClusterProperty review: CREATE uses value, UPDATE both, DELETE old_value."""
    new = (
        obj if obj is not None else (cluster_property(name, value, version=version) if operation != "DELETE" else None)
    )
    old = cluster_property(name, old_value, version=version) if operation != "CREATE" else None
    review = admission_review(operation, new, old, version=version, dry_run=dry_run, name=name)
    return parse_review(orjson.dumps(review))


def validate(req: AdmissionRequest, **facts: Any) -> Decision:
    return validate_cluster_property(req, StaticFacts(**facts))


def member(name: str, cluster_id: str, clusterset: str, synced: bool = True) -> MemberIdentity:
    return MemberIdentity(name, cluster_id, clusterset, synced)


# --- the cluster ID must be a DNS label -------------------------------------------------------------------

VALID_IDS = ["cluster-1", "a", "0", UID, "x" * 63, "us-east-1-prod"]


@pytest.mark.parametrize("name", [ID, ALIAS])
@pytest.mark.parametrize("version", ["v1alpha1", "v1beta1"])
@pytest.mark.parametrize("value", VALID_IDS)
def test_a_cluster_id_that_is_a_dns_label_is_accepted(name: str, version: str, value: str) -> None:
    decision = validate(request("CREATE", name, value, version=version))
    assert decision.allowed, decision.message
    assert decision.warnings == ()


@pytest.mark.parametrize("value, suggestion", [("cluster-1.example.com", "cluster-1-example-com"), ("a.b", "a-b")])
@pytest.mark.parametrize("name", [ID, ALIAS])
def test_a_cluster_id_that_is_a_subdomain_is_refused_with_a_hint(name: str, value: str, suggestion: str) -> None:
    decision = validate(request("CREATE", name, value))
    assert not decision.allowed
    assert decision.code == 422
    assert decision.causes[0]["field"] == "spec.value"
    assert "is a DNS subdomain, but a cluster ID must be a single DNS label" in decision.message
    assert "<hostname>.<clusterid>.<svc>.<ns>.svc.clusterset.local" in decision.message
    assert f"use e.g. {suggestion!r}" in decision.message


NOT_LABELS = [
    pytest.param("Cluster-1", "cluster-1", id="upper case"),
    pytest.param("-cluster", "cluster", id="a leading dash"),
    pytest.param("cluster-", "cluster", id="a trailing dash"),
    pytest.param("my_cluster", "my-cluster", id="an underscore"),
    pytest.param("my cluster", "my-cluster", id="a space"),
    pytest.param("cluster\n", "cluster", id="a trailing newline"),
    pytest.param("x" * 64, "x" * 63, id="64 characters"),
    pytest.param("clüster", "cl-ster", id="a non-ASCII letter"),
    pytest.param("___", "cluster-1", id="nothing usable"),
]


@pytest.mark.parametrize("value, suggestion", NOT_LABELS)
def test_a_cluster_id_that_is_not_a_dns_label_is_refused_with_a_valid_example(value: str, suggestion: str) -> None:
    decision = validate(request("CREATE", ID, value))
    assert (decision.allowed, decision.code, decision.reason) == (False, 422, "Invalid")
    assert f"use e.g. {suggestion!r}" in decision.message
    assert is_dns1123_label(suggestion)
    assert (
        "create cluster.clusterset.k8s.io without spec.value to get the kube-system namespace UID" in decision.message
    )


@pytest.mark.parametrize("value", ["", 5, ["a"]])
def test_a_cluster_id_that_is_empty_or_not_a_string_is_refused(value: Any) -> None:
    obj = {
        "apiVersion": "about.k8s.io/v1beta1",
        "kind": "ClusterProperty",
        "metadata": {"name": ID},
        "spec": {"value": value},
    }
    decision = validate(request("CREATE", ID, obj=obj))
    assert (decision.allowed, decision.code) == (False, 422)


@pytest.mark.parametrize("value", ["a.b", "Upper", "x" * 64, "a_b", "-", "é", "a..b", "1.2.3.4"])
def test_every_hint_offers_a_valid_label(value: str) -> None:
    problem = cluster_id_problem(value)
    example = problem.split("use e.g. ")[1].split(",")[0].strip("'")
    assert is_dns1123_label(example)


def test_a_changed_cluster_id_outside_a_clusterset_is_checked_for_format_too() -> None:
    decision = validate(request("UPDATE", ID, "a.b", "a"), properties={ID: "a"})
    assert (decision.allowed, decision.code) == (False, 422)


# --- the cluster ID is fixed while the cluster is in a ClusterSet -----------------------------------------

ID_CHANGES = [
    # (id, operation, name, value, old value, properties before the request, allowed, code, fragment)
    pytest.param("CREATE", ID, "a", None, {}, True, 200, "", id="creating the ID outside a ClusterSet is allowed"),
    pytest.param(
        "UPDATE", ID, "b", "a", {ID: "a"}, True, 200, "", id="changing the ID outside a ClusterSet is allowed"
    ),
    pytest.param(
        "DELETE", ID, None, "a", {ID: "a"}, True, 200, "", id="deleting the ID outside a ClusterSet is allowed"
    ),
    pytest.param(
        "UPDATE",
        ID,
        "b",
        "a",
        {ID: "a", CLUSTERSET: "set-1"},
        False,
        403,
        "cannot change cluster.clusterset.k8s.io from 'a' to 'b'",
        id="changing the ID inside a ClusterSet is refused",
    ),
    pytest.param(
        "UPDATE",
        ALIAS,
        "b",
        "a",
        {ALIAS: "a", CLUSTERSET: "set-1"},
        False,
        403,
        "cannot change id.k8s.io from 'a' to 'b'",
        id="changing the alias ID inside a ClusterSet is refused",
    ),
    pytest.param(
        "DELETE",
        ID,
        None,
        "a",
        {ID: "a", CLUSTERSET: "set-1"},
        False,
        403,
        "cannot delete cluster.clusterset.k8s.io",
        id="deleting the ID inside a ClusterSet is refused",
    ),
    pytest.param(
        "DELETE",
        ALIAS,
        None,
        "a",
        {ALIAS: "a", CLUSTERSET: "set-1"},
        False,
        403,
        "cannot delete id.k8s.io",
        id="deleting the only (alias) ID inside a ClusterSet is refused",
    ),
    pytest.param(
        "DELETE",
        ALIAS,
        None,
        "a",
        {ID: "a", ALIAS: "a", CLUSTERSET: "set-1"},
        True,
        200,
        "",
        id="deleting the alias while an agreeing ID stays is allowed",
    ),
    pytest.param(
        "DELETE",
        ID,
        None,
        "a",
        {ID: "a", ALIAS: "a", CLUSTERSET: "set-1"},
        True,
        200,
        "",
        id="deleting the ID while an agreeing alias stays is allowed",
    ),
    pytest.param(
        "DELETE",
        ID,
        None,
        "a",
        {ID: "a", ALIAS: "b", CLUSTERSET: "set-1"},
        False,
        403,
        "its cluster ID 'a' must exist and stay unchanged",
        id="deleting the ID while a disagreeing alias stays is refused",
    ),
    pytest.param(
        "CREATE",
        ID,
        "a",
        None,
        {ALIAS: "a", CLUSTERSET: "set-1"},
        True,
        200,
        "",
        id="creating the ID with the alias's value inside a ClusterSet is allowed",
    ),
    pytest.param(
        "CREATE",
        ID,
        "b",
        None,
        {ALIAS: "a", CLUSTERSET: "set-1"},
        False,
        403,
        "cannot create cluster.clusterset.k8s.io with value 'b'",
        id="creating the ID with another value than the alias inside a ClusterSet is refused",
    ),
    pytest.param(
        "CREATE",
        ALIAS,
        "b",
        None,
        {ID: "a", CLUSTERSET: "set-1"},
        False,
        403,
        "disagree",
        id="creating a disagreeing alias inside a ClusterSet is refused",
    ),
    pytest.param(
        "UPDATE",
        ALIAS,
        "a",
        "b",
        {ID: "a", ALIAS: "b", CLUSTERSET: "set-1"},
        True,
        200,
        "",
        id="making a disagreeing alias agree inside a ClusterSet is allowed",
    ),
    pytest.param(
        "CREATE",
        ID,
        "a",
        None,
        {CLUSTERSET: "set-1"},
        False,
        403,
        "without one",
        id="a cluster in a ClusterSet without an ID must leave before getting one",
    ),
]


@pytest.mark.parametrize("operation, name, value, old_value, properties, allowed, code, fragment", ID_CHANGES)
def test_the_cluster_id_cannot_change_or_disappear_while_in_a_clusterset(
    operation: str, name: str, value: Any, old_value: Any, properties: dict, allowed: bool, code: int, fragment: str
) -> None:
    decision = validate(request(operation, name, value, old_value), properties=properties)
    assert decision.allowed is allowed, decision.message
    assert decision.code == code
    assert fragment in decision.message
    if code == 403 and "disagree" not in fragment:
        assert decision.message.endswith(LEAVE_FIRST) or LEAVE_FIRST in decision.message


def test_the_membership_denial_names_the_clusterset_and_how_to_leave() -> None:
    decision = validate(request("UPDATE", ID, "b", "a"), properties={ID: "a", CLUSTERSET: "set-1"})
    assert "member of ClusterSet 'set-1'" in decision.message
    assert decision.message.endswith(LEAVE_FIRST)


def test_two_disagreeing_id_properties_outside_a_clusterset_are_only_a_warning() -> None:
    decision = validate(request("CREATE", ALIAS, "b"), properties={ID: "a"})
    assert decision.allowed
    assert len(decision.warnings) == 1
    assert "disagree" in decision.warnings[0] and "cluster.clusterset.k8s.io wins" in decision.warnings[0]


@pytest.mark.parametrize("value", ["a", "Legacy_ID.example"])
def test_an_update_that_keeps_the_cluster_id_is_allowed_without_facts(value: str) -> None:
    facts = StaticFacts(properties=NOT_SYNCED)
    decision = validate_cluster_property(request("UPDATE", ID, value, value), facts)
    assert decision.allowed, decision.message
    assert facts.calls == []


@pytest.mark.parametrize(
    "operation, value, old_value", [("CREATE", "a", None), ("UPDATE", "b", "a"), ("DELETE", None, "a")]
)
def test_an_id_change_before_the_local_properties_are_synced_is_a_retryable_503(
    operation: str, value: Any, old_value: Any
) -> None:
    decision = validate(request(operation, ID, value, old_value), properties=NOT_SYNCED)
    assert (decision.allowed, decision.code, decision.reason) == (False, 503, "ServiceUnavailable")
    assert "retry" in decision.message


def test_a_malformed_id_is_refused_even_before_the_local_properties_are_synced() -> None:
    decision = validate(request("CREATE", ID, "a.b"), properties=NOT_SYNCED)
    assert decision.code == 422


# --- clusterset.k8s.io: joining, staying, leaving ---------------------------------------------------------

JOINS = [
    # (properties, other members, allowed, code, fragment)
    pytest.param({ID: "a"}, [], True, 200, "", id="a cluster with an ID joins"),
    pytest.param({ALIAS: "a"}, [], True, 200, "", id="a cluster with only the alias ID joins"),
    pytest.param({ID: "a", ALIAS: "a"}, [], True, 200, "", id="a cluster with two agreeing IDs joins"),
    pytest.param(
        {},
        [],
        False,
        403,
        "create cluster.clusterset.k8s.io first",
        id="a cluster without an ID is told to create it first",
    ),
    pytest.param(
        {"other.example.com": "x"},
        [],
        False,
        403,
        "create cluster.clusterset.k8s.io first",
        id="other properties do not count as an ID",
    ),
    pytest.param({ID: "a.b"}, [], False, 403, "single DNS label", id="a cluster whose ID is a subdomain cannot join"),
    pytest.param(
        {ID: "a", ALIAS: "b"}, [], False, 403, "disagree", id="a cluster with two disagreeing IDs cannot join"
    ),
    pytest.param(
        {ID: "a"},
        [member("east", "a", "set-1")],
        False,
        403,
        "already used in ClusterSet 'set-1' by member 'east'",
        id="an ID already used by another member of the ClusterSet is refused",
    ),
    pytest.param(
        {ID: "a"},
        [member("east", "A", "set-1")],
        False,
        403,
        "by member 'east'",
        id="IDs are compared case-insensitively like DNS names",
    ),
    pytest.param(
        {ID: "a"},
        [member("east", "a", "set-2")],
        True,
        200,
        "",
        id="the same ID in another ClusterSet does not block joining",
    ),
    pytest.param(
        {ID: "a"},
        [member("east", "a", "")],
        True,
        200,
        "",
        id="the same ID on a cluster in no ClusterSet does not block joining",
    ),
    pytest.param(
        {ID: "a"}, [member("east", "b", "set-1"), member("west", "c", "set-1")], True, 200, "", id="distinct IDs join"
    ),
    pytest.param(
        {ID: "a"},
        [member("east", "b", "set-1"), member("west", "", "", synced=False)],
        False,
        503,
        "member 'west' have not been read yet",
        id="an unsynced member makes the join a retryable 503",
    ),
    pytest.param(
        {ID: "a"},
        [member("east", "a", "set-1"), member("west", "", "", synced=False)],
        False,
        403,
        "by member 'east'",
        id="a duplicate ID is refused even while another member is syncing",
    ),
]


@pytest.mark.parametrize("properties, members, allowed, code, fragment", JOINS)
def test_joining_a_clusterset_needs_a_unique_label_id(
    properties: dict, members: list, allowed: bool, code: int, fragment: str
) -> None:
    decision = validate(request("CREATE", CLUSTERSET, "set-1"), properties=properties, members=members)
    assert decision.allowed is allowed, decision.message
    assert decision.code == code
    assert fragment in decision.message


def test_joining_before_the_local_properties_are_synced_is_a_retryable_503() -> None:
    decision = validate(request("CREATE", CLUSTERSET, "set-1"), properties=NOT_SYNCED)
    assert (decision.allowed, decision.code) == (False, 503)


@pytest.mark.parametrize("value", ["", 3])
def test_a_clusterset_value_that_is_empty_or_not_a_string_is_invalid(value: Any) -> None:
    obj = {"metadata": {"name": CLUSTERSET}, "spec": {"value": value}}
    decision = validate(request("CREATE", CLUSTERSET, obj=obj), properties={ID: "a"})
    assert (decision.allowed, decision.code) == (False, 422)


def test_the_clusterset_value_cannot_change() -> None:
    decision = validate(request("UPDATE", CLUSTERSET, "set-2", "set-1"), properties={ID: "a", CLUSTERSET: "set-1"})
    assert (decision.allowed, decision.code) == (False, 403)
    assert "immutable" in decision.message
    assert "delete clusterset.k8s.io (leave) and create it again" in decision.message


def test_an_update_that_keeps_the_clusterset_value_is_allowed() -> None:
    req = request("UPDATE", CLUSTERSET, "set-1", "set-1")
    assert validate(req, properties=NOT_SYNCED).allowed


def test_leaving_a_clusterset_by_deleting_it_is_always_allowed() -> None:
    facts = StaticFacts(properties=NOT_SYNCED)
    assert validate_cluster_property(request("DELETE", CLUSTERSET, None, "set-1"), facts).allowed
    assert facts.calls == []


# --- everything else --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "operation, value, old_value", [("CREATE", "Not A Label!", None), ("UPDATE", "x", "y"), ("DELETE", None, "y")]
)
def test_other_cluster_properties_are_allowed_untouched(operation: str, value: Any, old_value: Any) -> None:
    facts = StaticFacts(properties=NOT_SYNCED, uid=NOT_SYNCED)
    req = request(operation, "region.example.com", value, old_value)
    for decide in (validate_cluster_property, mutate_cluster_property):
        decision = decide(req, facts)
        assert decision.allowed and decision.patch == () and decision.warnings == ()
    assert facts.calls == []


DRY_RUN_CASES = [
    (("CREATE", ID, "a.b", None), {}),
    (("UPDATE", ID, "b", "a"), {ID: "a", CLUSTERSET: "s"}),
    (("CREATE", CLUSTERSET, "s", None), {}),
    (("CREATE", CLUSTERSET, "s", None), {ID: "a"}),
    (("CREATE", ID, None, None), {}),
]


@pytest.mark.parametrize("args, properties", DRY_RUN_CASES)
def test_dry_run_requests_get_exactly_the_same_answer(args: tuple, properties: dict) -> None:
    for decide in (validate_cluster_property, mutate_cluster_property):
        real = decide(request(*args), StaticFacts(properties=properties))
        dry = decide(request(*args, dry_run=True), StaticFacts(properties=properties))
        assert review_response("u", dry) == review_response("u", real)


# --- mutating: default the cluster ID to the kube-system namespace UID ------------------------------------

NO_VALUE_OBJECTS = [
    pytest.param({}, id="no spec"),
    pytest.param({"spec": None}, id="a null spec"),
    pytest.param({"spec": {}}, id="an empty spec"),
    pytest.param({"spec": {"value": None}}, id="a null value"),
    pytest.param({"spec": {"value": ""}}, id="an empty value"),
]


@pytest.mark.parametrize("extra", NO_VALUE_OBJECTS)
def test_a_cluster_id_created_without_a_value_gets_the_kube_system_uid(extra: dict) -> None:
    obj = {"apiVersion": "about.k8s.io/v1beta1", "kind": "ClusterProperty", "metadata": {"name": ID}, **extra}
    decision = mutate_cluster_property(request("CREATE", ID, obj=obj), StaticFacts())
    assert decision.allowed
    patched = jsonpatch.apply_patch(obj, list(decision.patch))
    assert patched["spec"] == {"value": UID}
    assert patched["metadata"] == {"name": ID}
    # ...and the defaulted object passes validation.
    assert validate(request("CREATE", ID, obj=patched)).allowed


def test_a_cluster_id_created_with_a_value_is_not_changed() -> None:
    decision = mutate_cluster_property(request("CREATE", ID, "my-cluster"), StaticFacts())
    assert decision.allowed and decision.patch == ()


@pytest.mark.parametrize("operation, name", [("CREATE", ALIAS), ("CREATE", CLUSTERSET), ("UPDATE", ID), ("DELETE", ID)])
def test_only_a_new_cluster_clusterset_k8s_io_is_defaulted(operation: str, name: str) -> None:
    obj = {"metadata": {"name": name}, "spec": {}} if operation != "DELETE" else None
    old = {"metadata": {"name": name}, "spec": {"value": "a"}} if operation != "CREATE" else None
    review = admission_review(operation, obj, old, name=name)
    decision = mutate_cluster_property(parse_review(orjson.dumps(review)), StaticFacts())
    assert decision.allowed and decision.patch == ()


def test_defaulting_before_the_kube_system_uid_is_known_is_a_retryable_503() -> None:
    decision = mutate_cluster_property(request("CREATE", ID, None), StaticFacts(uid=NOT_SYNCED))
    assert (decision.allowed, decision.code) == (False, 503)
    assert "set spec.value" in decision.message
