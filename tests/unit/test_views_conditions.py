"""Condition helpers shared by the ServiceImport and ClusterSet views."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from mcs_apiserver.kube.times import format_time, utc_now
from mcs_apiserver.views.conditions import (
    MAX_CONDITION_MESSAGE,
    condition,
    stamp_transitions,
)


def test_times_are_printed_in_utc_with_second_precision_and_a_z() -> None:
    moment = datetime(2026, 1, 1, 2, 0, 0, 123456, tzinfo=timezone(timedelta(hours=2)))
    assert format_time(moment) == "2026-01-01T00:00:00Z"
    assert utc_now().tzinfo is not None


def test_a_condition_message_is_cut_to_the_length_kubernetes_accepts() -> None:
    cond = condition("Conflict", True, "PortConflict", "x" * (MAX_CONDITION_MESSAGE + 10))
    assert len(cond["message"]) == MAX_CONDITION_MESSAGE and cond["message"].endswith("...")
    assert condition("Ready", True, "Ready", "short")["message"] == "short"


def test_a_condition_status_is_true_false_or_unknown() -> None:
    assert [condition("Ready", s, "R", "m")["status"] for s in (True, False, None)] == ["True", "False", "Unknown"]


def test_a_condition_keeps_its_time_only_while_its_status_is_the_same() -> None:
    previous = [
        {"type": "Ready", "status": "True", "reason": "Ready", "message": "", "lastTransitionTime": "T0"},
        {"type": "Conflict", "status": "False", "reason": "NoConflicts", "message": "", "lastTransitionTime": "T0"},
    ]
    new = stamp_transitions(
        [condition("Ready", True, "Ready", "other message"), condition("Conflict", True, "TypeConflict", "m")],
        previous,
        "T1",
    )
    assert [c["lastTransitionTime"] for c in new] == ["T0", "T1"]
    assert stamp_transitions([condition("Ready", True, "Ready", "")], None, "T2")[0]["lastTransitionTime"] == "T2"
