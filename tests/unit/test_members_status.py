"""How a member cache's status follows its reflectors' failures and recoveries (fake clock, no loop)."""

from __future__ import annotations

from collections.abc import Iterable

import pytest

from mcs_apiserver.kube.times import format_epoch
from mcs_apiserver.members.member import MemberCache
from mcs_apiserver.contract import MemberStatus

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z


class Sink:
    def __init__(self) -> None:
        self.membership = 0

    def keys_changed(self, member: str, keys: Iterable) -> None:
        pass

    def namespaces_changed(self, member: str, names: Iterable[str]) -> None:
        pass

    def membership_changed(self, member: str) -> None:
        self.membership += 1


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def sink() -> Sink:
    return Sink()


@pytest.fixture
def cache(clock: Clock, sink: Sink) -> MemberCache:
    return MemberCache("m", None, sink, grace_period=300, clock=clock)  # type: ignore[arg-type]


def synced(cache: MemberCache) -> MemberCache:
    """Every reflector has listed once (what ``Reflector._list`` records)."""
    for reflector in cache.reflectors:
        reflector.synced = True
        reflector.last_event = T0
        cache._healthy(str(reflector.resource))
    return cache


def test_a_new_cache_is_neither_connected_nor_synced(cache: MemberCache) -> None:
    assert cache.status == MemberStatus()
    assert not cache.synced and not cache.settled


def test_once_every_reflector_listed_the_member_is_connected_synced_and_timestamped(cache, sink, clock) -> None:
    synced(cache)
    assert cache.status == MemberStatus(connected=True, synced=True, last_sync=format_epoch(T0), message="")
    assert cache.synced and cache.settled
    assert sink.membership >= 1


def test_a_lost_connection_makes_the_member_disconnected_with_the_message_and_is_reported(cache, sink, clock) -> None:
    synced(cache)
    before = sink.membership
    clock.now = T0 + 30
    cache._failure("services", "services: Cannot connect to host", True)
    assert not cache.status.connected
    assert cache.status.message == "services: Cannot connect to host"
    assert cache.status.last_sync == format_epoch(T0)  # the last contact, not the time of the failure
    assert cache.status.synced  # the caches still hold the last known state
    assert sink.membership == before + 1


def test_the_same_failure_again_is_not_reported_again(cache, sink) -> None:
    synced(cache)
    cache._failure("services", "down", True)
    reported = sink.membership
    cache._failure("services", "down", True)
    assert sink.membership == reported


def test_a_forbidden_resource_leaves_the_member_connected_but_says_why(cache) -> None:
    synced(cache)
    cache._failure("clusterproperties", "clusterproperties: forbidden", False)
    assert cache.status.connected
    assert cache.status.message == "clusterproperties: forbidden"
    assert cache.settled


def test_messages_of_several_failing_resources_are_joined_in_order(cache) -> None:
    synced(cache)
    cache._failure("services", "services: down", True)
    cache._failure("endpointslices", "endpointslices: down", True)
    assert cache.status.message == "endpointslices: down; services: down"


def test_the_member_is_connected_again_only_when_every_failing_resource_recovered(cache, sink, clock) -> None:
    synced(cache)
    cache._failure("services", "services: down", True)
    cache._failure("namespaces", "namespaces: down", True)
    cache._healthy("services")
    assert not cache.status.connected and cache.status.message == "namespaces: down"
    clock.now = T0 + 60
    reported = sink.membership
    cache._healthy("namespaces")
    assert cache.status == MemberStatus(connected=True, synced=True, last_sync=format_epoch(T0 + 60), message="")
    assert sink.membership == reported + 1


def test_a_member_disconnected_for_the_grace_period_expires_and_rejoining_clears_it(cache, sink, clock) -> None:
    synced(cache)
    cache._failure("services", "down", True)
    clock.now = T0 + 299
    cache._update_status()  # what the expiry timer calls
    assert not cache.status.expired
    reported = sink.membership
    clock.now = T0 + 300
    cache._update_status()
    assert cache.status.expired and not cache.status.connected
    assert sink.membership == reported + 1
    cache._healthy("services")
    assert cache.status.connected and not cache.status.expired


def test_the_grace_period_counts_from_the_first_failure_not_the_latest(cache, clock) -> None:
    synced(cache)
    cache._failure("services", "down", True)
    clock.now = T0 + 200
    cache._failure("services", "still down", True)
    clock.now = T0 + 300
    cache._update_status()
    assert cache.status.expired


def test_a_fresher_sync_time_alone_is_not_reported(cache, sink, clock) -> None:
    synced(cache)
    reported = sink.membership
    clock.now = T0 + 10
    cache._healthy("services")
    assert cache.status.last_sync == format_epoch(T0 + 10)
    assert sink.membership == reported


def test_a_member_that_failed_before_its_first_sync_is_settled_but_not_synced(cache) -> None:
    cache._failure("services", "down", True)
    assert not cache.synced and cache.settled
    assert cache.status.last_sync is None  # never heard from it
