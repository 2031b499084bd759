"""Events on ServiceExports (``writers.events``): which condition changes make an Event, and client-go's
correlation (dedup into one Event's count, a token bucket per object) on a fake clock. The Events
in a real cluster, and the status writer recording them, are in tests/e2e/test_events.py."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from mcs_apiserver.kube.client import ApiError
from mcs_apiserver.writers.events import (
    Correlator,
    EventRecorder,
    EventSettings,
    ObjectRef,
    condition_events,
    event_object,
)

WEB = ObjectRef("shop", "web", "uid-1")
DB = ObjectRef("shop", "db", "uid-2")
T0 = 1_780_000_000.0


def cond(type_: str, status: str, reason: str = "R", message: str = "m") -> dict[str, str]:
    return {"type": type_, "status": status, "reason": reason, "message": message}


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


# --- which changes are events ---------------------------------------------------------------------


def test_a_new_export_that_is_valid_and_without_conflict_makes_no_event() -> None:
    assert condition_events([], [cond("Valid", "True"), cond("Ready", "True"), cond("Conflict", "False")]) == []


def test_turning_conflict_true_is_a_warning_with_the_conditions_reason_and_message() -> None:
    before = [cond("Valid", "True"), cond("Conflict", "False", "NoConflicts")]
    after = [cond("Valid", "True"), cond("Conflict", "True", "PortConflict", "ports differ")]
    assert condition_events(before, after) == [("Warning", "PortConflict", "ports differ")]


def test_a_new_export_without_its_service_is_a_warning_valid_false() -> None:
    after = [cond("Valid", "False", "NoService", "Service shop/web does not exist"), cond("Conflict", "False")]
    assert condition_events([], after) == [("Warning", "NoService", "Service shop/web does not exist")]


def test_the_same_bad_state_written_again_is_no_new_event_but_a_new_message_is() -> None:
    bad = [cond("Conflict", "True", "PortConflict", "ports differ")]
    assert condition_events(bad, bad) == []
    worse = [cond("Conflict", "True", "PortConflict", "ports differ in 3 clusters")]
    assert condition_events(bad, worse) == [("Warning", "PortConflict", "ports differ in 3 clusters")]


def test_a_cleared_condition_is_a_normal_event_with_the_new_reason() -> None:
    before = [cond("Valid", "False", "NoService"), cond("Conflict", "True", "PortConflict")]
    after = [cond("Valid", "True", "Valid", "ok"), cond("Conflict", "False", "NoConflicts", "none")]
    assert condition_events(before, after) == [("Normal", "Valid", "ok"), ("Normal", "NoConflicts", "none")]


def test_ready_changes_alone_make_no_event() -> None:
    assert condition_events([cond("Ready", "True")], [cond("Ready", "False")]) == []


# --- correlation ----------------------------------------------------------------------------------


def test_the_same_event_again_bumps_the_count_of_the_first_event_and_keeps_its_name_and_first_time() -> None:
    clock = Clock()
    correlator = Correlator(EventSettings(), clock)
    first = correlator.observe(WEB, "Warning", "PortConflict", "ports differ")
    clock.now += 90
    again = correlator.observe(WEB, "Warning", "PortConflict", "ports differ")
    assert first is not None and again is not None
    assert (first.count, again.count) == (1, 2)
    assert again.name == first.name and first.name.startswith("web.")
    assert again.first_timestamp == first.first_timestamp != again.last_timestamp


def test_another_message_or_another_object_is_another_event() -> None:
    correlator = Correlator(EventSettings(), Clock())
    first = correlator.observe(WEB, "Warning", "PortConflict", "ports differ")
    other = correlator.observe(WEB, "Warning", "PortConflict", "ports differ again")
    elsewhere = correlator.observe(DB, "Warning", "PortConflict", "ports differ")
    assert first and other and elsewhere
    assert (other.count, elsewhere.count) == (1, 1)
    assert len({first.name, elsewhere.name}) == 2 and elsewhere.name.startswith("db.")


def test_a_flapping_export_gets_its_burst_then_one_event_per_refill_period_and_others_are_untouched() -> None:
    clock = Clock()
    correlator = Correlator(EventSettings(burst=25, refill_seconds=300), clock)
    sent = [correlator.observe(WEB, "Warning", "R", f"m{i % 2}") for i in range(40)]
    assert sum(o is not None for o in sent) == 25 and correlator.dropped == 15
    assert correlator.observe(DB, "Warning", "R", "m") is not None  # a bucket per object
    clock.now += 299
    assert correlator.observe(WEB, "Warning", "R", "m") is None
    clock.now += 1
    assert correlator.observe(WEB, "Warning", "R", "m") is not None
    assert correlator.observe(WEB, "Warning", "R", "m") is None


def test_the_caches_are_bounded_and_forget_the_oldest_first() -> None:
    correlator = Correlator(EventSettings(cache_size=2), Clock())
    for ref in (WEB, DB, ObjectRef("shop", "cart")):
        correlator.observe(ref, "Warning", "R", "m")
    again = correlator.observe(WEB, "Warning", "R", "m")
    assert again is not None and again.count == 1  # forgotten: a new Event
    assert len(correlator._seen) == 2 and len(correlator._buckets) == 2


def test_a_long_message_is_cut_to_the_events_limit() -> None:
    occurrence = Correlator(EventSettings(), Clock()).observe(WEB, "Warning", "R", "é" * 2000)
    assert occurrence is not None
    assert len(occurrence.message.encode()) <= 1024 and occurrence.message.endswith("...")


def test_the_event_names_the_export_by_kind_name_namespace_and_uid_as_kubectl_describe_looks_it_up() -> None:
    occurrence = Correlator(EventSettings(), Clock()).observe(WEB, "Warning", "PortConflict", "ports differ")
    assert occurrence is not None
    event = event_object(occurrence, "pod-1")
    assert event["involvedObject"] == {"apiVersion": "multicluster.x-k8s.io/v1beta1", "kind": "ServiceExport",
                                       "namespace": "shop", "name": "web", "uid": "uid-1"}
    assert (event["source"], event["reportingComponent"], event["reportingInstance"]) == (
        {"component": "mcs-apiserver", "host": "pod-1"}, "mcs-apiserver", "pod-1")
    assert (event["count"], event["metadata"]["namespace"], event["type"]) == (1, "shop", "Warning")


# --- the recorder's calls -------------------------------------------------------------------------


class Sink:
    """Answers the recorder's API calls: ``refuse`` with that code, else remembers the Events."""

    def __init__(self, refuse: int = 0) -> None:
        self.refuse = refuse
        self.calls: list[tuple[str, str]] = []
        self.events: dict[str, dict[str, Any]] = {}

    async def json(self, method: str, path: str, *, body: Any = None, **_: Any) -> Any:
        self.calls.append((method, path))
        if self.refuse:
            raise ApiError(self.refuse, {"reason": "Forbidden", "message": "events is forbidden"})
        name = path.rsplit("/", 1)[-1]
        if method == "POST":
            self.events[body["metadata"]["name"]] = body
        elif name not in self.events:
            raise ApiError(404, {"reason": "NotFound"})
        else:
            self.events[name].update(body)
        return body


async def drain(recorder: EventRecorder) -> None:
    while not recorder._queue.empty():
        await recorder._send(recorder._queue.get_nowait())


def test_a_repeated_event_is_a_patch_of_count_and_one_that_expired_is_created_again() -> None:
    sink = Sink()
    recorder = EventRecorder(sink, "pod-1", clock=Clock())  # type: ignore[arg-type]
    for _ in range(2):
        recorder.record(WEB, "Warning", "PortConflict", "ports differ")
    asyncio.run(drain(recorder))
    assert [m for m, _ in sink.calls] == ["POST", "PATCH"]
    (event,) = sink.events.values()
    assert event["count"] == 2
    sink.events.clear()  # expired
    recorder.record(WEB, "Warning", "PortConflict", "ports differ")
    asyncio.run(drain(recorder))
    assert [m for m, _ in sink.calls[2:]] == ["PATCH", "POST"]
    assert [e["count"] for e in sink.events.values()] == [3]


def test_without_permission_to_create_events_the_refusal_is_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    sink = Sink(refuse=403)
    recorder = EventRecorder(sink, "pod-1", clock=Clock())  # type: ignore[arg-type]
    with caplog.at_level(logging.WARNING, logger="mcs_apiserver.events"):
        for i in range(5):
            recorder.record(ObjectRef("shop", f"web-{i}"), "Warning", "R", "m")
        asyncio.run(drain(recorder))
    assert len(sink.calls) == 5 and recorder.sent == 0
    (line,) = [r.getMessage() for r in caplog.records]
    assert "403" in line and "conditions are still written" in line
