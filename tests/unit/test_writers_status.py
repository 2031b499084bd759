"""Which conditions the status writer wants on an export (``desired_conditions``, plain members) and
when it has work to do (``mark``). The writes themselves go to real ServiceExports (tests/e2e)."""

from __future__ import annotations

import pytest

from mcs_apiserver.writers.status import StatusWriter, desired_conditions
from mcs_apiserver.views.engine import ViewEngine
from mcs_apiserver.contract import CLUSTERSET_PROPERTY
from mcs_apiserver.views.testing import InMemoryMember, member, port, service

WEB = ("shop", "web")
NOW = "2026-01-02T00:00:00Z"
LATER = "2026-01-03T00:00:00Z"


def world() -> dict[str, InMemoryMember]:
    return {n: member(n, namespaces=("default", "shop")) for n in ("a", "b")}


def run(members: dict[str, InMemoryMember]) -> ViewEngine:
    engine = ViewEngine("a")
    engine.update(members)
    return engine


def by_type(conditions) -> dict[str, dict]:
    return {c["type"]: c for c in conditions}


def carry(m: InMemoryMember, key, conditions) -> None:
    """The export now carries ``conditions`` in its status (what the write and the watch bring)."""
    m.exports[key] = m.exports[key]._replace(status={"conditions": conditions})


def test_an_export_of_an_existing_service_of_a_joined_member_is_valid_ready_and_without_conflict() -> None:
    ms = world()
    ms["a"].export(WEB, service(WEB, [port(80, "http")]), ready=2)
    conditions = desired_conditions(run(ms), ms["a"], WEB, NOW)
    got = by_type(conditions)
    assert [c["type"] for c in conditions] == ["Valid", "Ready", "Conflict"]
    assert (got["Valid"]["status"], got["Valid"]["reason"]) == ("True", "Valid")
    assert (got["Ready"]["status"], got["Ready"]["reason"]) == ("True", "Ready")
    assert (got["Conflict"]["status"], got["Conflict"]["reason"]) == ("False", "NoConflicts")
    assert {c["lastTransitionTime"] for c in conditions} == {NOW}


def test_an_export_without_its_service_is_invalid_with_reason_no_service() -> None:
    ms = world()
    ms["a"].export(WEB, None)
    got = by_type(desired_conditions(run(ms), ms["a"], WEB, NOW))
    assert (got["Valid"]["status"], got["Valid"]["reason"]) == ("False", "NoService")
    assert got["Valid"]["message"] == "Service shop/web does not exist in cluster a"
    assert got["Ready"]["status"] == "False"


def test_an_export_of_a_cluster_outside_any_clusterset_is_valid_but_pending() -> None:
    ms = world()
    del ms["a"].cluster_properties[CLUSTERSET_PROPERTY]
    ms["a"].export(WEB, service(WEB, [port(80, "http")]))
    got = by_type(desired_conditions(run(ms), ms["a"], WEB, NOW))
    assert got["Valid"]["status"] == "True"
    assert (got["Ready"]["status"], got["Ready"]["reason"]) == ("Unknown", "Pending")


def test_nothing_is_written_when_the_export_already_carries_the_same_conditions() -> None:
    ms = world()
    ms["a"].export(WEB, service(WEB, [port(80, "http")]))
    engine = run(ms)
    carry(ms["a"], WEB, desired_conditions(engine, ms["a"], WEB, NOW))
    assert desired_conditions(engine, ms["a"], WEB, LATER) is None


def test_nothing_is_written_for_a_key_that_is_not_exported() -> None:
    ms = world()
    assert desired_conditions(run(ms), ms["a"], WEB, NOW) is None


def test_conditions_of_other_types_are_kept_in_front_of_ours() -> None:
    ms = world()
    ms["a"].export(WEB, None)
    theirs = {"type": "example.com/Audited", "status": "True", "reason": "Audited", "message": "by someone else",
              "lastTransitionTime": "2025-01-01T00:00:00Z"}
    carry(ms["a"], WEB, [theirs])
    conditions = desired_conditions(run(ms), ms["a"], WEB, NOW)
    assert conditions is not None
    assert conditions[0] == theirs
    assert [c["type"] for c in conditions[1:]] == ["Valid", "Ready", "Conflict"]


def test_a_condition_whose_status_changes_gets_a_new_transition_time() -> None:
    ms = world()
    ms["a"].export(WEB, None)
    engine = run(ms)
    carry(ms["a"], WEB, desired_conditions(engine, ms["a"], WEB, NOW))
    ms["a"].services[WEB] = service(WEB, [port(80, "http")])
    engine.update(ms, changed_keys={WEB})
    got = by_type(desired_conditions(engine, ms["a"], WEB, LATER))
    assert (got["Valid"]["status"], got["Valid"]["lastTransitionTime"]) == ("True", LATER)
    assert got["Conflict"]["lastTransitionTime"] == NOW  # False before, False now


def test_a_change_of_message_only_keeps_the_transition_time() -> None:
    ms = world()
    ms["a"].export(WEB, service(WEB, [port(80, "http")]))
    engine = run(ms)
    first = by_type(desired_conditions(engine, ms["a"], WEB, NOW))
    carry(ms["a"], WEB, list(first.values()))
    ms["b"].export(WEB, service(WEB, [port(80, "http")]))  # now two clusters back the import
    engine.update(ms, changed_keys={WEB})
    conditions = desired_conditions(engine, ms["a"], WEB, LATER)
    assert conditions is not None  # the message changed: worth a write
    ready = by_type(conditions)["Ready"]
    assert ready["status"] == "True" and ready["message"] != first["Ready"]["message"]
    assert "2 clusters" in ready["message"]
    assert ready["lastTransitionTime"] == NOW


# --- when there is work ---------------------------------------------------------------------------


class Local(InMemoryMember):
    """The local member as the writer sees it: plain data, plus whether its first sync is done."""

    synced: bool = True


@pytest.fixture
def writer() -> StatusWriter:
    local = Local(**vars(member("a", namespaces=("default", "shop"))))
    ms = {"a": local, "b": member("b", namespaces=("default", "shop"))}
    local.export(WEB, None)
    local.export(("shop", "db"), None)
    return StatusWriter(run(ms), local, None)  # type: ignore[arg-type] - no write happens here


def test_a_follower_marks_nothing(writer: StatusWriter) -> None:
    writer.mark([WEB])
    assert writer._pending == set() and not writer._wake.is_set()


def test_becoming_leader_marks_every_local_export(writer: StatusWriter) -> None:
    writer.leadership_changed(True)
    assert writer._pending == {WEB, ("shop", "db")}
    assert writer._wake.is_set()


def test_only_keys_exported_locally_are_marked(writer: StatusWriter) -> None:
    writer.enabled = True
    writer.mark([("shop", "elsewhere")])
    assert writer._pending == set() and not writer._wake.is_set()
    writer.mark([("shop", "elsewhere"), WEB])
    assert writer._pending == {WEB}


def test_keys_marked_before_the_local_member_synced_wait_for_the_first_mark_after_it(writer: StatusWriter) -> None:
    writer.local.synced = False
    writer.leadership_changed(True)
    writer.mark([WEB])
    assert writer._pending == {WEB, ("shop", "db")}
    assert not writer._wake.is_set()  # the views may not hold the whole member yet
    writer.local.synced = True
    writer.mark([WEB])  # the sync is reported: its mark names no new key, yet there is work
    assert writer._wake.is_set()


def test_losing_leadership_stops_marking(writer: StatusWriter) -> None:
    writer.leadership_changed(True)
    writer.leadership_changed(False)
    writer._pending.clear()
    writer._wake.clear()
    writer.mark([WEB])
    assert writer._pending == set() and not writer._wake.is_set()
