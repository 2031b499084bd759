"""ServiceExport admission rules (webhooks.serviceexport), table-driven with plain data."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import jsonpatch
import orjson
import pytest

from mcs_apiserver.contract import EXPORTED_AT_ANNOTATION, service_record
from mcs_apiserver.kube.times import format_micro_time, parse_micro_time
from webhooks.review import AdmissionRequest, Decision, parse_review, review_response
from webhooks.serviceexport import (
    mutate_service_export,
    validate_service_export,
)
from webhooks.testing import NOT_SYNCED, StaticFacts, admission_review

NOW = datetime(2026, 11, 23, 18, 55, 0, 123456, tzinfo=UTC)
STAMP = "2026-11-23T18:55:00.123456Z"
OLD_STAMP = "2025-01-02T03:04:05.000006Z"
KEY = EXPORTED_AT_ANNOTATION


def export(name: str = "web", namespace: str = "shop", annotations: Any = "absent", **metadata: Any) -> dict:
    meta: dict[str, Any] = {"name": name, "namespace": namespace, **metadata}
    if annotations != "absent":
        meta["annotations"] = annotations
    return {"apiVersion": "multicluster.x-k8s.io/v1beta1", "kind": "ServiceExport", "metadata": meta}


def request(
    operation: str, obj: dict | None, old: dict | None = None, *, dry_run: bool = False, version: str = "v1beta1"
) -> AdmissionRequest:
    source = obj if obj is not None else old
    review = admission_review(
        operation,
        obj,
        old,
        group="multicluster.x-k8s.io",
        version=version,
        kind="ServiceExport",
        resource="serviceexports",
        namespace=source["metadata"].get("namespace", "shop"),
        dry_run=dry_run,
    )
    return parse_review(orjson.dumps(review))


def mutate(req: AdmissionRequest, now: datetime = NOW) -> Decision:
    return mutate_service_export(req, StaticFacts(), now=lambda: now)


def applied(obj: dict, decision: Decision) -> dict:
    return jsonpatch.apply_patch(obj, list(decision.patch)) if decision.patch else copy.deepcopy(obj)


def service(type_: str = "ClusterIP", **spec: Any) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {"type": type_, **spec},
    }


# --- the exported-at format -------------------------------------------------------------------------------


def test_exported_at_is_rfc3339_utc_with_microseconds() -> None:
    assert format_micro_time(NOW) == STAMP
    tokyo = timezone(timedelta(hours=9))
    assert format_micro_time(datetime(2026, 1, 1, 9, 0, tzinfo=tokyo)) == "2026-01-01T00:00:00.000000Z"


@pytest.mark.parametrize(
    "value, expected",
    [
        (STAMP, NOW),
        ("2026-11-23T18:55:00Z", None),
        ("2026-11-23T18:55:00.123Z", None),
        ("2026-11-23T18:55:00.123456+00:00", None),
        ("2026-13-23T18:55:00.123456Z", None),
        (STAMP + "\n", None),
        (12, None),
    ],
)
def test_only_our_exact_exported_at_format_is_parsed(value: Any, expected: datetime | None) -> None:
    assert parse_micro_time(value) == expected


# --- mutating: stamp on CREATE ----------------------------------------------------------------------------

CREATE_SHAPES = [
    pytest.param(export(), id="no annotations"),
    pytest.param(export(annotations=None), id="null annotations"),
    pytest.param(export(annotations={}), id="empty annotations"),
    pytest.param(export(annotations={"team": "payments", "a/b": "c"}), id="other annotations"),
    pytest.param({"apiVersion": "multicluster.x-k8s.io/v1beta1", "kind": "ServiceExport"}, id="no metadata"),
]


@pytest.mark.parametrize("obj", CREATE_SHAPES)
def test_a_new_export_is_stamped_with_the_current_time_in_microseconds(obj: dict) -> None:
    if "metadata" not in obj:
        req = parse_review(
            orjson.dumps(
                admission_review(
                    "CREATE", obj, group="multicluster.x-k8s.io", kind="ServiceExport", namespace="shop", name="web"
                )
            )
        )
    else:
        req = request("CREATE", obj)
    decision = mutate(req)
    assert decision.allowed and decision.warnings == ()
    patched = applied(obj, decision)
    assert patched["metadata"]["annotations"][KEY] == STAMP
    before = (obj.get("metadata") or {}).get("annotations") or {}
    assert {k: v for k, v in patched["metadata"]["annotations"].items() if k != KEY} == before
    assert {k: v for k, v in patched["metadata"].items() if k != "annotations"} == {
        k: v for k, v in (obj.get("metadata") or {}).items() if k != "annotations"
    }


def test_the_patch_escapes_the_slash_in_the_annotation_key() -> None:
    decision = mutate(request("CREATE", export(annotations={"x": "y"})))
    assert decision.patch == (
        {"op": "add", "path": "/metadata/annotations/views.multicluster.x-k8s.io~1exported-at", "value": STAMP},
    )


@pytest.mark.parametrize("later", [timedelta(0), timedelta(milliseconds=3), timedelta(seconds=90)])
def test_reinvocation_keeps_the_first_stamp(later: timedelta) -> None:
    obj = export()
    first = applied(obj, mutate(request("CREATE", obj)))
    second = mutate(request("CREATE", first), now=NOW + later)
    assert second.allowed and second.patch == () and second.warnings == ()


@pytest.mark.parametrize(
    "supplied",
    [OLD_STAMP, "1970-01-01T00:00:00.000000Z", "2026-11-23T19:30:00.000000Z", "yesterday", "2026-11-23T18:55:00Z", ""],
)
def test_a_stamp_supplied_by_the_client_on_create_is_replaced_with_a_warning(supplied: str) -> None:
    obj = export(annotations={KEY: supplied})
    decision = mutate(request("CREATE", obj))
    assert applied(obj, decision)["metadata"]["annotations"][KEY] == STAMP
    assert len(decision.warnings) == 1 and "replaced by" in decision.warnings[0]


# --- mutating: keep on UPDATE -----------------------------------------------------------------------------

UPDATES = [
    # (new annotations, old annotations, expected annotation after the patch or "absent", warns)
    pytest.param({KEY: OLD_STAMP, "x": "1"}, {KEY: OLD_STAMP}, OLD_STAMP, False, id="an unchanged stamp is left alone"),
    pytest.param({"x": "1"}, {KEY: OLD_STAMP}, OLD_STAMP, False, id="a dropped stamp is put back silently"),
    pytest.param("absent", {KEY: OLD_STAMP}, OLD_STAMP, False, id="dropped annotations are put back silently"),
    pytest.param(None, {KEY: OLD_STAMP}, OLD_STAMP, False, id="null annotations are put back silently"),
    pytest.param(
        {KEY: "1970-01-01T00:00:00.000000Z"},
        {KEY: OLD_STAMP},
        OLD_STAMP,
        True,
        id="a changed stamp is restored with a warning",
    ),
    pytest.param(
        {KEY: "not-a-time"}, {KEY: "also-not-a-time"}, "also-not-a-time", True, id="even a malformed old value is kept"
    ),
    pytest.param({"x": "1"}, {}, "absent", False, id="an export without a stamp stays without one"),
    pytest.param({KEY: OLD_STAMP}, {}, "absent", True, id="a stamp added later is removed with a warning"),
]


@pytest.mark.parametrize("new_annotations, old_annotations, expected, warns", UPDATES)
def test_an_update_keeps_the_stamp_of_the_create(
    new_annotations: Any, old_annotations: dict, expected: str, warns: bool
) -> None:
    obj, old = export(annotations=new_annotations), export(annotations=old_annotations)
    decision = mutate(request("UPDATE", obj, old))
    patched = applied(obj, decision)
    assert (patched["metadata"].get("annotations") or {}).get(KEY, "absent") == expected
    assert bool(decision.warnings) is warns
    if new_annotations not in ("absent", None):
        others = {k: v for k, v in new_annotations.items() if k != KEY}
        assert {k: v for k, v in patched["metadata"]["annotations"].items() if k != KEY} == others
    # idempotent: mutating the result again changes nothing
    again = mutate(request("UPDATE", patched, old))
    assert again.patch == () and again.warnings == ()


@pytest.mark.parametrize("operation", ["DELETE"])
def test_deleting_an_export_is_not_mutated(operation: str) -> None:
    decision = mutate(request(operation, None, export(annotations={KEY: OLD_STAMP})))
    assert decision.allowed and decision.patch == ()


def test_dry_run_gets_the_same_stamp() -> None:
    real, dry = mutate(request("CREATE", export())), mutate(request("CREATE", export(), dry_run=True))
    assert review_response("u", dry) == review_response("u", real)


# --- validating: names and Service types ------------------------------------------------------------------

BAD_NAMES = [
    pytest.param("1web", "svc-1web", id="a name starting with a digit"),
    pytest.param("Web", "web", id="upper case"),
    pytest.param("web.v2", "web-v2", id="a dot"),
    pytest.param("web-", "web", id="a trailing dash"),
    pytest.param("w" * 64, "w" * 63, id="64 characters"),
]


@pytest.mark.parametrize("name, suggestion", BAD_NAMES)
def test_an_export_whose_name_cannot_name_a_service_is_invalid(name: str, suggestion: str) -> None:
    facts = StaticFacts()
    decision = validate_service_export(request("CREATE", export(name)), facts)
    assert (decision.allowed, decision.code, decision.reason) == (False, 422, "Invalid")
    assert decision.causes[0]["field"] == "metadata.name"
    assert "RFC 1035 label" in decision.message
    assert f"e.g. {suggestion!r}" in decision.message
    assert facts.calls == []


@pytest.mark.parametrize("name", ["web", "a", "w" * 63, "web-2"])
def test_an_export_with_a_valid_name_and_no_service_yet_is_allowed(name: str) -> None:
    decision = validate_service_export(request("CREATE", export(name)), StaticFacts())
    assert decision.allowed and decision.warnings == ()


@pytest.mark.parametrize("operation", ["CREATE", "UPDATE"])
def test_exporting_an_externalname_service_is_admitted_with_a_warning_saying_why_it_is_not_imported(
    operation: str,
) -> None:
    facts = StaticFacts(services={("shop", "web"): service("ExternalName", externalName="example.com")})
    old = export() if operation == "UPDATE" else None
    decision = validate_service_export(request(operation, export(), old), facts)
    assert decision.allowed
    [warning] = decision.warnings
    assert warning.startswith("InvalidServiceType: Service shop/web is of type ExternalName")
    assert "will not be imported" in warning and "Valid=False/InvalidServiceType" in warning


@pytest.mark.parametrize(
    "svc",
    [
        service("ClusterIP"),
        service("ClusterIP", clusterIP="None"),
        service("NodePort"),
        service("LoadBalancer"),
        {"metadata": {"name": "web"}},
    ],
)
def test_exporting_other_service_types_is_allowed(svc: dict) -> None:
    decision = validate_service_export(request("CREATE", export()), StaticFacts(services={("shop", "web"): svc}))
    assert decision.allowed


def test_an_existing_export_stays_updatable_whatever_its_name_or_service() -> None:
    facts = StaticFacts(services={("shop", "Web_1"): service("ExternalName")})
    obj = export("Web_1", finalizers=[])
    decision = validate_service_export(request("UPDATE", obj, export("Web_1", finalizers=["x"])), facts)
    assert decision.allowed


def test_deleting_an_export_is_always_allowed() -> None:
    facts = StaticFacts(services=NOT_SYNCED, conflicts=NOT_SYNCED)
    assert validate_service_export(request("DELETE", None, export()), facts, policy="deny").allowed
    assert facts.calls == []


# --- validating: conflicts --------------------------------------------------------------------------------

CONFLICTS = [
    ("PortConflict", "port 443/TCP is named 'https' in cluster east, 'tls' here; east's export is older"),
    ("TypeConflict", "Headless in cluster east (oldest export), ClusterSetIP here"),
]


def test_conflicts_come_back_as_warnings_under_the_warn_policy() -> None:
    facts = StaticFacts(services={("shop", "web"): service()}, conflicts=CONFLICTS)
    decision = validate_service_export(request("CREATE", export()), facts, policy="warn")
    assert decision.allowed
    assert decision.warnings == (f"PortConflict: {CONFLICTS[0][1]}", f"TypeConflict: {CONFLICTS[1][1]}")


def test_conflicts_deny_the_export_under_the_deny_policy() -> None:
    facts = StaticFacts(services={("shop", "web"): service()}, conflicts=CONFLICTS)
    decision = validate_service_export(request("CREATE", export()), facts, policy="deny")
    assert (decision.allowed, decision.code) == (False, 403)
    assert "--export-conflict-policy=deny" in decision.message
    assert "PortConflict: port 443/TCP" in decision.message and "TypeConflict: Headless" in decision.message


def test_no_conflicts_means_no_warnings_under_either_policy() -> None:
    for policy in ("warn", "deny"):
        decision = validate_service_export(
            request("CREATE", export()), StaticFacts(services={("shop", "web"): service()}), policy=policy
        )
        assert decision.allowed and decision.warnings == ()


def test_the_conflict_check_sees_the_export_being_admitted_and_the_local_service() -> None:
    svc = service()
    obj = export(annotations={KEY: STAMP}, labels={"app": "web"})
    facts = StaticFacts(services={("shop", "web"): svc})
    validate_service_export(request("CREATE", obj), facts)
    assert ("export_conflicts", ("shop", "web", obj, service_record(svc))) in facts.calls  # the record the caches keep


def _labels_conflict(namespace: str, name: str, export_: dict, service_: dict) -> list[tuple[str, str]]:
    labels = (export_.get("spec") or {}).get("exportedLabels") or {}
    found = [("TypeConflict", "Headless in east")]
    if labels.get("tier") == "gold":
        found.append(("LabelsConflict", "east exports tier=silver"))
    return found


def test_under_the_deny_policy_an_update_is_denied_only_for_new_conflicts() -> None:
    facts = StaticFacts(services={("shop", "web"): service()}, conflicts=_labels_conflict)
    plain, gold = export(), {**export(), "spec": {"exportedLabels": {"tier": "gold"}}}
    keeps = validate_service_export(request("UPDATE", plain, plain), facts, policy="deny")
    assert keeps.allowed and keeps.warnings == ("TypeConflict: Headless in east",)
    worsens = validate_service_export(request("UPDATE", gold, plain), facts, policy="deny")
    assert not worsens.allowed
    assert "LabelsConflict" in worsens.message and "TypeConflict" not in worsens.message


def test_under_the_deny_policy_an_export_being_deleted_can_still_be_updated() -> None:
    facts = StaticFacts(services={("shop", "web"): service()}, conflicts=_labels_conflict)
    deleting = {"deletionTimestamp": "2026-11-23T18:00:00Z"}
    old = export(finalizers=["example.com/x"], **deleting)
    obj = {**export(finalizers=[], **deleting), "spec": {"exportedLabels": {"tier": "gold"}}}
    decision = validate_service_export(request("UPDATE", obj, old), facts, policy="deny")
    assert decision.allowed
    assert decision.warnings == ("TypeConflict: Headless in east", "LabelsConflict: east exports tier=silver")


@pytest.mark.parametrize(
    "facts",
    [
        pytest.param(StaticFacts(services=NOT_SYNCED), id="Services not synced"),
        pytest.param(StaticFacts(services={("shop", "web"): service()}, conflicts=NOT_SYNCED), id="exports not synced"),
    ],
)
def test_unchecked_exports_warn_under_warn_and_are_retryable_under_deny(facts: StaticFacts) -> None:
    warned = validate_service_export(request("CREATE", export()), facts, policy="warn")
    assert warned.allowed and "not checked" in warned.warnings[0]
    denied = validate_service_export(request("CREATE", export()), facts, policy="deny")
    assert (denied.allowed, denied.code) == (False, 503)
    assert "retry" in denied.message


@pytest.mark.parametrize("policy", ["warn", "deny"])
@pytest.mark.parametrize("name", ["web", "1web"])
def test_dry_run_requests_get_exactly_the_same_validation(policy: str, name: str) -> None:
    facts = StaticFacts(services={("shop", name): service()}, conflicts=CONFLICTS)
    real = validate_service_export(request("CREATE", export(name)), facts, policy=policy)
    dry = validate_service_export(request("CREATE", export(name), dry_run=True), facts, policy=policy)
    assert review_response("u", dry) == review_response("u", real)


@pytest.mark.parametrize("version", ["v1alpha1", "v1beta1"])
def test_both_served_versions_are_checked_alike(version: str) -> None:
    decision = validate_service_export(request("CREATE", export("Bad"), version=version), StaticFacts())
    assert decision.code == 422


@pytest.mark.parametrize(
    "obj, patch",
    [
        ({"metadata": {"name": "web"}}, [{"op": "add", "path": "/metadata/annotations", "value": {"a": "1"}}]),
        ({"metadata": {"annotations": {"x": "y"}}},
         [{"op": "add", "path": "/metadata/annotations/views.multicluster.x-k8s.io~1exported-at", "value": "t"}]),
        ({"spec": {}}, [{"op": "add", "path": "/metadata", "value": {"annotations": {"k": "v"}}}]),
        ({"metadata": {"annotations": {"a~b": "old"}}}, [{"op": "add", "path": "/metadata/annotations/a~0b", "value": "new"}]),
        ({"metadata": {"finalizers": ["f"]}}, [{"op": "add", "path": "/metadata/finalizers/0", "value": "g"}]),
        ({"metadata": {"labels": {"a": "b"}}}, [{"op": "remove", "path": "/metadata/labels/a"}]),
    ],
)
def test_the_cheap_patch_applier_agrees_with_jsonpatch_and_leaves_the_input_alone(obj: dict, patch: list) -> None:
    import copy

    import jsonpatch

    from webhooks.serviceexport import patched

    before = copy.deepcopy(obj)
    assert patched(obj, patch) == jsonpatch.apply_patch(before, patch)
    assert obj == before
