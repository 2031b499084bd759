"""The pure parts of the Lease elector: MicroTime, the Lease spec it writes, and how long a holder
that cannot renew keeps leading. The election itself runs against a real Lease (tests/e2e)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from mcs_apiserver.writers.lease import LeaseElector, default_identity
from mcs_apiserver.kube.times import format_micro_time as micro_time
from mcs_apiserver.kube.times import parse_time as parse_micro_time

T0 = datetime(2026, 1, 1, 12, 0, 0, 123456, tzinfo=timezone.utc)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def elector(clock: Clock | None = None, **kwargs) -> LeaseElector:
    return LeaseElector(None, "mcs-system", "lease", identity="me", clock=clock or Clock(),  # type: ignore[arg-type]
                        **kwargs)


def test_micro_time_is_utc_with_microseconds_and_a_z() -> None:
    assert micro_time(T0) == "2026-01-01T12:00:00.123456Z"
    two_hours_east = timezone(timedelta(hours=2))
    assert micro_time(T0.astimezone(two_hours_east)) == "2026-01-01T12:00:00.123456Z"
    assert micro_time(datetime(2026, 1, 1, tzinfo=timezone.utc)) == "2026-01-01T00:00:00.000000Z"


def test_parse_micro_time_reads_what_kube_apiserver_writes_back_to_the_same_moment() -> None:
    assert parse_micro_time(micro_time(T0)) == T0
    assert parse_micro_time("2026-01-01T12:00:00Z") == T0.replace(microsecond=0)
    assert parse_micro_time("2026-01-01T14:00:00.123456+02:00") == T0


@pytest.mark.parametrize("text", [None, "", "yesterday", "2026-13-01T00:00:00Z"])
def test_parse_micro_time_gives_none_for_missing_or_unreadable_times(text) -> None:
    assert parse_micro_time(text) is None


def test_a_parsed_time_is_comparable_with_the_clock() -> None:
    parsed = parse_micro_time("2026-01-01T11:59:00.000000Z")
    assert parsed is not None and T0 - parsed > timedelta(seconds=59)


def test_the_spec_of_an_acquisition_names_the_holder_and_both_times() -> None:
    spec = elector(lease_duration=15)._spec(T0, acquire=True, transitions=2)
    assert spec == {"holderIdentity": "me", "leaseDurationSeconds": 15, "renewTime": micro_time(T0),
                    "acquireTime": micro_time(T0), "leaseTransitions": 2}


def test_the_spec_of_a_renewal_leaves_the_acquire_time_alone() -> None:
    spec = elector(lease_duration=15)._spec(T0, acquire=False, transitions=0)
    assert "acquireTime" not in spec and spec["renewTime"] == micro_time(T0)


def test_lease_duration_seconds_is_written_as_an_integer() -> None:
    assert elector(lease_duration=7.9)._spec(T0, acquire=False, transitions=0)["leaseDurationSeconds"] == 7


def test_the_renew_deadline_defaults_to_two_thirds_of_the_lease_like_client_go() -> None:
    assert elector(lease_duration=15).renew_deadline == 10
    assert elector(lease_duration=15, renew_deadline=12).renew_deadline == 12


def test_a_holder_that_cannot_renew_keeps_leading_only_until_its_renew_deadline() -> None:
    clock = Clock()
    e = elector(clock, lease_duration=15)
    e.leader, e._renewed = True, T0
    clock.now = T0 + timedelta(seconds=9.9)
    assert e._still_valid()
    clock.now = T0 + timedelta(seconds=10)
    assert not e._still_valid()  # 5 s before anyone else may take the Lease over


def test_a_follower_never_counts_as_still_leading() -> None:
    e = elector()
    e._renewed = T0
    assert not e._still_valid()


def test_a_holder_waits_for_an_answer_no_longer_than_what_is_left_of_its_deadline() -> None:
    clock = Clock()
    e = elector(clock, lease_duration=15)
    assert e._attempt_timeout() == 10  # a follower: the whole deadline
    e.leader, e._renewed = True, T0
    clock.now = T0 + timedelta(seconds=4)
    assert e._attempt_timeout() == pytest.approx(6)
    clock.now = T0 + timedelta(seconds=30)
    assert 0 < e._attempt_timeout() < 1


def test_default_identities_are_unique_per_elector() -> None:
    assert default_identity() != default_identity()
    assert elector().identity == "me"
