"""The reflector handlers of a member cache, fed plain dicts: what they keep and which keys they report."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pytest

from mcs_apiserver.members.member import MemberCache, _key, _Objects, _Slices, trim_service


class Sink:
    """A ``ChangeSink`` that records every call."""

    def __init__(self) -> None:
        self.keys: list[set] = []
        self.namespaces: list[set[str]] = []
        self.membership = 0

    def keys_changed(self, member: str, keys: Iterable) -> None:
        assert member == "m"
        self.keys.append(set(keys))

    def namespaces_changed(self, member: str, names: Iterable[str]) -> None:
        self.namespaces.append(set(names))

    def membership_changed(self, member: str) -> None:
        self.membership += 1


def svc(name: str, rv: str = "1", port: int = 80, ns: str = "shop", **metadata: Any) -> dict:
    return {"metadata": {"name": name, "namespace": ns, "resourceVersion": rv, **metadata},
            "spec": {"type": "ClusterIP", "ports": [{"port": port}]}}


@pytest.fixture
def objects() -> tuple[dict, list[set]]:
    store: dict = {}
    reported: list[set] = []
    return store, reported


def handler(store: dict, reported: list[set]) -> _Objects:
    return _Objects(store, _key, trim_service, lambda keys: reported.append(set(keys)))


def test_a_first_replace_stores_trimmed_objects_and_reports_every_key(objects) -> None:
    store, reported = objects
    handler(store, reported).replace([svc("a", managedFields=[{}]), svc("b")])
    assert set(store) == {("shop", "a"), ("shop", "b")}
    assert "managedFields" not in store[("shop", "a")]["metadata"]
    assert reported == [{("shop", "a"), ("shop", "b")}]


def test_a_relist_reports_only_what_changed_while_away(objects) -> None:
    store, reported = objects
    h = handler(store, reported)
    h.replace([svc("kept"), svc("changed"), svc("gone")])
    reported.clear()
    h.replace([svc("kept"), svc("changed", rv="2", port=81), svc("new")])
    assert reported == [{("shop", "changed"), ("shop", "gone"), ("shop", "new")}]
    assert set(store) == {("shop", "kept"), ("shop", "changed"), ("shop", "new")}
    assert store[("shop", "changed")]["spec"]["ports"] == [{"port": 81}]


def test_a_relist_that_changes_nothing_reports_nothing(objects) -> None:
    store, reported = objects
    h = handler(store, reported)
    h.replace([svc("a")])
    h.replace([svc("a")])
    assert reported == [{("shop", "a")}]


def test_events_add_modify_and_delete_one_key_each(objects) -> None:
    store, reported = objects
    h = handler(store, reported)
    h.apply("ADDED", svc("a"))
    h.apply("MODIFIED", svc("a", rv="2", port=443))
    assert store[("shop", "a")]["spec"]["ports"] == [{"port": 443}]
    h.apply("DELETED", svc("a", rv="3"))
    assert store == {}
    assert reported == [{("shop", "a")}] * 3


def test_a_repeated_event_and_the_deletion_of_an_unknown_object_are_not_reported(objects) -> None:
    store, reported = objects
    h = handler(store, reported)
    h.apply("ADDED", svc("a"))
    h.apply("MODIFIED", svc("a"))  # same object again (e.g. replayed after a reconnect)
    h.apply("DELETED", svc("never-seen"))
    assert reported == [{("shop", "a")}]


# --- EndpointSlices -------------------------------------------------------------------------------


def eps(name: str, service: str | None, *ready: bool | None, ns: str = "shop") -> dict:
    labels = {"kubernetes.io/service-name": service} if service else {}
    endpoints = []
    for i, r in enumerate(ready):
        endpoint: dict = {"addresses": [f"10.0.0.{i + 1}"]}
        if r is not None:
            endpoint["conditions"] = {"ready": r}
        endpoints.append(endpoint)
    return {"metadata": {"name": name, "namespace": ns, "labels": labels}, "endpoints": endpoints}


@pytest.fixture
def member() -> tuple[MemberCache, Sink]:
    sink = Sink()
    return MemberCache("m", None, sink), sink  # type: ignore[arg-type] - the reflectors never run here


def test_slices_add_up_per_service_counting_unset_ready_and_ignoring_not_ready(member) -> None:
    cache, sink = member
    slices = _Slices(cache)
    slices.replace([eps("web-1", "web", True, None, False), eps("web-2", "web", True), eps("db-1", "db", False)])
    assert cache.ready_endpoints(("shop", "web")) == 3
    assert cache.ready_endpoints(("shop", "db")) == 0
    assert sink.keys == [{("shop", "web"), ("shop", "db")}]


def test_a_slice_whose_ready_count_changes_reports_its_service(member) -> None:
    cache, sink = member
    slices = _Slices(cache)
    slices.apply("ADDED", eps("web-1", "web", True))
    slices.apply("MODIFIED", eps("web-1", "web", True, True))
    slices.apply("MODIFIED", eps("web-1", "web", True, True))  # same count: nothing to report
    assert cache.ready_endpoints(("shop", "web")) == 2
    assert sink.keys == [{("shop", "web")}, {("shop", "web")}]


def test_a_slice_moving_to_another_service_moves_its_count_and_reports_both(member) -> None:
    cache, sink = member
    slices = _Slices(cache)
    slices.apply("ADDED", eps("s-1", "old", True, True))
    slices.apply("MODIFIED", eps("s-1", "new", True, True))
    assert cache.ready_endpoints(("shop", "old")) == 0
    assert cache.ready_endpoints(("shop", "new")) == 2
    assert sink.keys[-1] == {("shop", "old"), ("shop", "new")}


def test_deleting_the_last_slice_drops_the_service_count(member) -> None:
    cache, sink = member
    slices = _Slices(cache)
    slices.apply("ADDED", eps("web-1", "web", True))
    slices.apply("DELETED", eps("web-1", "web", True))
    assert cache.ready_endpoints(("shop", "web")) == 0
    assert cache._ready == {}
    assert sink.keys == [{("shop", "web")}, {("shop", "web")}]


def test_a_slice_without_a_service_label_counts_for_nothing_until_it_gets_one(member) -> None:
    cache, sink = member
    slices = _Slices(cache)
    slices.apply("ADDED", eps("orphan", None, True))
    assert cache._ready == {} and sink.keys == []
    slices.apply("MODIFIED", eps("orphan", "web", True))
    assert cache.ready_endpoints(("shop", "web")) == 1
    assert sink.keys == [{("shop", "web")}]


def test_a_relist_forgets_slices_deleted_while_away_and_keeps_the_rest(member) -> None:
    cache, sink = member
    slices = _Slices(cache)
    slices.replace([eps("web-1", "web", True), eps("web-2", "web", True), eps("db-1", "db", True)])
    sink.keys.clear()
    slices.replace([eps("web-1", "web", True), eps("db-1", "db", True)])
    assert cache.ready_endpoints(("shop", "web")) == 1
    assert cache.ready_endpoints(("shop", "db")) == 1
    assert sink.keys == [{("shop", "web")}]


def test_slices_of_the_same_name_in_two_namespaces_are_distinct(member) -> None:
    cache, _ = member
    slices = _Slices(cache)
    slices.replace([eps("web-1", "web", True, ns="a"), eps("web-1", "web", True, True, ns="b")])
    assert cache.ready_endpoints(("a", "web")) == 1
    assert cache.ready_endpoints(("b", "web")) == 2
