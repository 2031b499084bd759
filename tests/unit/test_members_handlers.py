"""The reflector handlers of a member cache, fed plain dicts: what they keep and which keys they report."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

import pytest

from mcs_apiserver.members.member import (
    SERVICE_EXPORTS,
    MemberCache,
    _key,
    _Objects,
    _Slices,
)
from mcs_apiserver.contract import Endpoint, ReadyEndpoints, ServiceRecord, SlicePort, service_record
from mcs_apiserver.members.reflector import MemberSettings


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
    return _Objects(store, _key, service_record, lambda keys: reported.append(set(keys)))


def test_a_first_replace_stores_trimmed_objects_and_reports_every_key(objects) -> None:
    store, reported = objects
    handler(store, reported).replace([svc("a", managedFields=[{}]), svc("b")])
    assert set(store) == {("shop", "a"), ("shop", "b")}
    assert store[("shop", "a")] == ServiceRecord(type="ClusterIP", ports=[{"port": 80}])  # what is read, no metadata
    assert reported == [{("shop", "a"), ("shop", "b")}]


def test_a_relist_reports_only_what_changed_while_away(objects) -> None:
    store, reported = objects
    h = handler(store, reported)
    h.replace([svc("kept"), svc("changed"), svc("gone")])
    reported.clear()
    h.replace([svc("kept"), svc("changed", rv="2", port=81), svc("new")])
    assert reported == [{("shop", "changed"), ("shop", "gone"), ("shop", "new")}]
    assert set(store) == {("shop", "kept"), ("shop", "changed"), ("shop", "new")}
    assert store[("shop", "changed")].ports == [{"port": 81}]


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
    assert store[("shop", "a")].ports == [{"port": 443}]
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


def test_a_dual_stack_service_counts_each_ready_pod_once_not_once_per_family(member) -> None:
    cache, sink = member
    slices = _Slices(cache)
    v4 = {**eps("web-v4", "web", True, True, True), "addressType": "IPv4"}
    v6 = {**eps("web-v6", "web", True, True, True), "addressType": "IPv6"}
    slices.replace([v4, v6])
    assert cache.ready_endpoints(("shop", "web")) == 3
    slices.apply("MODIFIED", {**eps("web-v6", "web", True, True, True, True), "addressType": "IPv6"})
    assert cache.ready_endpoints(("shop", "web")) == 4  # mid-rollout the families differ: the larger
    slices.apply("DELETED", v4)
    slices.apply("DELETED", v6)
    assert cache.ready_endpoints(("shop", "web")) == 0 and not cache._ready6


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


# --- ready endpoints of exported Services (for DNS) -------------------------------------------------


def dns_eps(name: str, service: str, rv: str = "1", ns: str = "shop", address_type: str = "IPv4") -> dict:
    return {"metadata": {"name": name, "namespace": ns, "resourceVersion": rv,
                         "labels": {"kubernetes.io/service-name": service}},
            "addressType": address_type,
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}, {"port": 9090}],
            "endpoints": [
                {"addresses": ["10.0.0.1"], "hostname": "web-0",
                 "targetRef": {"kind": "Pod", "name": "web-0", "namespace": ns}},
                {"addresses": ["10.0.0.2"], "targetRef": {"kind": "Pod", "name": "web-7d9f-x2"}},
                {"addresses": ["10.0.0.3"], "conditions": {"ready": False}},
                {"addresses": ["10.0.0.4"], "targetRef": {"kind": "Node", "name": "node-1"}},
            ]}


def export(cache: MemberCache, name: str, ns: str = "shop") -> None:
    cache._exports[(ns, name)] = {"metadata": {"name": name, "namespace": ns}}
    cache._slices.exports_changed([(ns, name)])


def unexport(cache: MemberCache, name: str, ns: str = "shop") -> None:
    del cache._exports[(ns, name)]
    cache._slices.exports_changed([(ns, name)])


def test_an_exported_service_keeps_its_ready_addresses_hostnames_pod_names_and_ports(member) -> None:
    cache, sink = member
    export(cache, "web")
    cache._slices.apply("ADDED", dns_eps("web-1", "web"))
    (kept,) = cache.ready_endpoint_slices(("shop", "web"))
    assert kept == ReadyEndpoints("IPv4", (SlicePort("http", "TCP", 8080), SlicePort("", "TCP", 9090)), (
        Endpoint(("10.0.0.1",), "web-0", "web-0"),
        Endpoint(("10.0.0.2",), None, "web-7d9f-x2"),
        Endpoint(("10.0.0.4",), None, None),  # a target that is no Pod gives no pod name
    ))
    assert cache.ready_endpoints(("shop", "web")) == 3
    assert isinstance(kept, tuple) and isinstance(kept.endpoints[0], tuple)  # compact records, no dicts


def test_a_service_that_is_not_exported_keeps_only_its_ready_count(member) -> None:
    cache, _ = member
    cache._slices.apply("ADDED", dns_eps("db-1", "db"))
    assert cache.ready_endpoints(("shop", "db")) == 3
    assert cache.ready_endpoint_slices(("shop", "db")) == ()
    assert cache._slices.slices[("shop", "db-1")].endpoints is None


def test_fqdn_slices_count_but_give_no_addresses(member) -> None:
    cache, _ = member
    export(cache, "web")
    cache._slices.apply("ADDED", dns_eps("web-1", "web", address_type="FQDN"))
    assert cache.ready_endpoint_slices(("shop", "web")) == ()
    assert cache.ready_endpoints(("shop", "web")) == 3


def test_an_export_made_after_its_slices_fills_them_from_a_fetch_of_the_same_version(member) -> None:
    cache, sink = member
    cache._slices.apply("ADDED", dns_eps("web-1", "web", rv="5"))
    export(cache, "web")
    assert cache._slices._pending == {("shop", "web")}  # no loop here: the fetch is driven by hand
    sink.keys.clear()
    cache._slices.fill([dns_eps("web-1", "web", rv="5")])
    assert len(cache.ready_endpoint_slices(("shop", "web"))[0].endpoints) == 3
    assert sink.keys == [{("shop", "web")}]


def test_a_fetched_slice_of_another_version_is_ignored_as_the_watch_brings_the_right_one(member) -> None:
    cache, sink = member
    cache._slices.apply("ADDED", dns_eps("web-1", "web", rv="5"))
    export(cache, "web")
    sink.keys.clear()
    cache._slices.fill([dns_eps("web-1", "web", rv="6"), dns_eps("web-2", "web", rv="6")])
    assert cache.ready_endpoint_slices(("shop", "web")) == ()
    assert sink.keys == []
    cache._slices.apply("MODIFIED", dns_eps("web-1", "web", rv="6"))  # the watch event: export known now
    assert len(cache.ready_endpoint_slices(("shop", "web"))) == 1


def test_unexporting_drops_the_endpoints_and_keeps_the_count(member) -> None:
    cache, _ = member
    export(cache, "web")
    cache._slices.apply("ADDED", dns_eps("web-1", "web"))
    unexport(cache, "web")
    assert cache._slices.slices[("shop", "web-1")].endpoints is None
    assert cache.ready_endpoints(("shop", "web")) == 3
    assert cache._slices._pending == set()


def test_a_new_resource_version_with_the_same_content_is_no_change(member) -> None:
    cache, sink = member
    export(cache, "web")
    cache._slices.apply("ADDED", dns_eps("web-1", "web", rv="1"))
    cache._slices.apply("MODIFIED", dns_eps("web-1", "web", rv="2"))
    assert sink.keys == [{("shop", "web")}]
    assert cache._slices.slices[("shop", "web-1")].resource_version == "2"


def test_a_changed_address_of_an_exported_service_is_reported_even_at_the_same_count(member) -> None:
    cache, sink = member
    export(cache, "web")
    first = dns_eps("web-1", "web", rv="1")
    second = dns_eps("web-1", "web", rv="2")
    second["endpoints"][0]["addresses"] = ["10.0.0.9"]
    cache._slices.apply("ADDED", first)
    cache._slices.apply("MODIFIED", second)
    assert sink.keys == [{("shop", "web")}, {("shop", "web")}]
    assert cache.ready_endpoint_slices(("shop", "web"))[0].endpoints[0].addresses == ("10.0.0.9",)


async def test_an_export_appearing_with_a_loop_fetches_its_slices_by_label(member) -> None:
    cache, sink = member
    calls: list[tuple[str, dict]] = []

    class Client:
        async def get(self, path: str, params: dict | None = None, timeout: float = 30) -> dict:
            calls.append((path, dict(params or {})))
            return {"items": [dns_eps("web-1", "web", rv="5")]}

    cache.client = Client()  # type: ignore[assignment]
    cache._slices.apply("ADDED", dns_eps("web-1", "web", rv="5"))
    export(cache, "web")
    await cache._slices._fetching
    assert calls == [("/apis/discovery.k8s.io/v1/namespaces/shop/endpointslices",
                      {"labelSelector": "kubernetes.io/service-name=web"})]
    assert len(cache.ready_endpoint_slices(("shop", "web"))) == 1


async def test_many_exports_appearing_at_once_fetch_their_slices_a_few_gets_at_a_time(member) -> None:
    cache, _ = member
    calls: list[str] = []
    in_flight = peak = 0
    names = [f"s{i}" for i in range(20)]

    class Client:
        async def get(self, path: str, params: dict | None = None, timeout: float = 30) -> dict:
            nonlocal in_flight, peak
            in_flight += 1
            peak = max(peak, in_flight)
            await asyncio.sleep(0.001)
            in_flight -= 1
            name = (params or {})["labelSelector"].split("=")[1]
            calls.append(name)
            return {"items": [dns_eps(f"{name}-1", name)]}

    cache.client = Client()  # type: ignore[assignment]
    for n in names:
        cache._slices.apply("ADDED", dns_eps(f"{n}-1", n))
    for n in names:
        cache._exports[("shop", n)] = {"metadata": {"name": n, "namespace": "shop"}}
    cache._slices.exports_changed([("shop", n) for n in names])
    await cache._slices._fetching
    assert sorted(calls) == sorted(names) and peak == MemberSettings().fetch_concurrency
    assert all(cache.ready_endpoint_slices(("shop", n)) for n in names)


async def test_a_failed_fetch_is_retried_while_the_service_is_still_exported() -> None:
    cache = MemberCache("m", None, Sink(), settings=MemberSettings(fetch_retry=0.001))  # type: ignore[arg-type]
    attempts = []

    class Client:
        async def get(self, path: str, params: dict | None = None, timeout: float = 30) -> dict:
            attempts.append(path)
            if len(attempts) == 1:
                raise OSError("connection reset")
            return {"items": [dns_eps("web-1", "web", rv="5")]}

    cache.client = Client()  # type: ignore[assignment]
    cache._slices.apply("ADDED", dns_eps("web-1", "web", rv="5"))
    export(cache, "web")
    await cache._slices._fetching
    assert len(attempts) == 2 and cache.ready_endpoint_slices(("shop", "web"))


async def test_endpoint_slices_are_listed_only_once_the_exports_are(member) -> None:
    cache, _ = member
    order: list[str] = []
    for reflector in cache.reflectors:
        async def run(r=reflector) -> None:
            order.append(str(r.resource))
            if r.resource == SERVICE_EXPORTS:
                await asyncio.sleep(0.05)
                r.synced = True
        reflector.run = run  # type: ignore[method-assign]
    await asyncio.gather(*(cache._run(r) for r in cache.reflectors))
    assert order.index("endpointslices") == len(order) - 1
