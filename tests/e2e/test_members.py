"""A member cache (``members.member.MemberCache`` and its reflectors) against the real kube-apiservers
of the session's ClusterSet: the initial list, live events, pagination, 410 Expired, and a member
whose kube-apiserver goes away and comes back."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

import pytest

from mcs_apiserver.local import cluster
from mcs_apiserver.kube.client import KubeClient
from mcs_apiserver.members.member import (
    SERVICE_EXPORTS,
    SERVICES,
    MemberCache,
)
from mcs_apiserver.members.reflector import Expired, MemberSettings, Reflector
from mcs_apiserver.contract import ServiceRecord

pytestmark = pytest.mark.e2e

EXPORTS_API = "/apis/multicluster.x-k8s.io/v1beta1"
SLICES_API = "/apis/discovery.k8s.io/v1"
PROPERTIES_API = "/apis/about.k8s.io/v1beta1/clusterproperties"


class RecordingSink:
    """A ``ChangeSink`` that remembers every call, in order."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, Any]] = []

    def keys_changed(self, member: str, keys: Iterable[tuple[str, str]]) -> None:
        self.calls.append(("keys", member, set(keys)))

    def namespaces_changed(self, member: str, names: Iterable[str]) -> None:
        self.calls.append(("namespaces", member, set(names)))

    def membership_changed(self, member: str) -> None:
        self.calls.append(("membership", member, None))

    def mark(self) -> int:
        return len(self.calls)

    def keys(self, since: int = 0) -> set[tuple[str, str]]:
        return {k for kind, _, keys in self.calls[since:] if kind == "keys" for k in keys}

    def namespaces(self, since: int = 0) -> set[str]:
        return {n for kind, _, names in self.calls[since:] if kind == "namespaces" for n in names}

    def membership(self, since: int = 0) -> int:
        return sum(1 for kind, _, _ in self.calls[since:] if kind == "membership")


async def until(probe: Callable[[], Any], *, timeout: float = 30.0, what: str = "the condition") -> Any:
    """Poll ``probe`` (sync or async) until it returns something truthy; fail with the last value."""
    deadline = asyncio.get_running_loop().time() + timeout
    last: Any = None
    while True:
        try:
            last = probe()
            if asyncio.iscoroutine(last):
                last = await last
            if last:
                return last
        except AssertionError as error:
            last = error
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}; last: {last!r}")
        await asyncio.sleep(0.1)


def admin(clusterset, member: str) -> KubeClient:
    return cluster.admin_client(clusterset.state_dir, clusterset.state.member(member))


@pytest.fixture
async def writer(clusterset) -> AsyncIterator[KubeClient]:
    """The admin of member-2, making the changes the caches must see."""
    client = admin(clusterset, "member-2")
    yield client
    await client.close()


@pytest.fixture
async def ns(writer: KubeClient) -> AsyncIterator[str]:
    name = f"members-{secrets.token_hex(3)}"
    await writer.json("POST", "/api/v1/namespaces", body={"metadata": {"name": name}})
    yield name
    await writer.request("DELETE", f"/api/v1/namespaces/{name}")


async def started(clusterset, member: str, sink: RecordingSink) -> MemberCache:
    cache = MemberCache(member, admin(clusterset, member), sink)
    cache.start()
    await until(lambda: cache.synced, what=f"the first sync of {member}")
    return cache


@pytest.fixture
async def member2(clusterset) -> AsyncIterator[tuple[MemberCache, RecordingSink]]:
    sink = RecordingSink()
    cache = await started(clusterset, "member-2", sink)
    yield cache, sink
    await cache.stop()


def service_body(name: str, *ports: int, headless: bool = False) -> dict:
    spec: dict[str, Any] = {"ports": [{"name": f"p{p}", "port": p, "protocol": "TCP"} for p in ports or (80,)]}
    if headless:
        spec["clusterIP"] = "None"
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": spec}


def export_body(name: str) -> dict:
    return {"apiVersion": "multicluster.x-k8s.io/v1beta1", "kind": "ServiceExport", "metadata": {"name": name}}


def slice_body(name: str, service: str, endpoints: list[dict]) -> dict:
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": name, "labels": {"kubernetes.io/service-name": service,
                                                  "endpointslice.kubernetes.io/managed-by": "e2e.mcs-apiserver"}},
            "addressType": "IPv4", "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
            "endpoints": endpoints}


def endpoint(address: str, ready: bool | None) -> dict:
    """``ready=None`` leaves the condition unset, which the API defines as ready."""
    out: dict[str, Any] = {"addresses": [address]}
    if ready is not None:
        out["conditions"] = {"ready": ready}
    return out


# --- the initial list -----------------------------------------------------------------------------


async def test_the_first_sync_brings_what_the_member_already_holds(clusterset, writer, ns):
    await writer.json("POST", f"/api/v1/namespaces/{ns}/services", body=service_body("web", 80, 443))
    await writer.json("POST", f"{EXPORTS_API}/namespaces/{ns}/serviceexports", body=export_body("web"))
    await writer.json("POST", f"{SLICES_API}/namespaces/{ns}/endpointslices", body=slice_body(
        "web-1", "web", [endpoint("10.0.0.1", True), endpoint("10.0.0.2", None), endpoint("10.0.0.3", False)]))
    sink = RecordingSink()
    cache = await started(clusterset, "member-2", sink)
    try:
        key = (ns, "web")
        assert cache.status.connected and cache.status.synced and cache.status.last_sync
        assert cache.status.message == ""
        assert ns in cache.namespaces and cache.namespaces[ns]["status"]["phase"] == "Active"
        assert [p["port"] for p in cache.services[key].ports] == [80, 443]  # type: ignore[union-attr]
        assert cache.services[key].cluster_ip  # what kube-apiserver allocated
        assert isinstance(cache.services[key], ServiceRecord)  # what is read: no metadata, managedFields and all
        export = cache.exports[key]
        assert export.exported_at  # the EXPORTED_AT_ANNOTATION stamped by member-2's webhook
        assert cache.ready_endpoints(key) == 2
        values = {name: p["spec"]["value"] for name, p in cache.cluster_properties.items()}
        assert values["cluster.clusterset.k8s.io"] == "member-2"
        assert values["clusterset.k8s.io"] == "local"
        assert key in sink.keys() and ns in sink.namespaces() and sink.membership() >= 1
    finally:
        await cache.stop()


async def test_a_list_longer_than_a_page_is_followed_to_its_end(clusterset, writer, ns):
    count = MemberSettings().list_page_size + 20
    gate = asyncio.Semaphore(32)

    async def create(i: int) -> None:
        async with gate:
            await writer.json("POST", f"/api/v1/namespaces/{ns}/services",
                              body=service_body(f"svc-{i:04d}", headless=True))

    await asyncio.gather(*(create(i) for i in range(count)))

    pages: list[dict[str, str]] = []

    class Paging:
        """The real client, noting the parameters of every page it lists."""

        def __init__(self, client: KubeClient) -> None:
            self.client = client

        async def get(self, path: str, params=None, timeout: float = 30.0):
            if path == SERVICES.path:
                pages.append(dict(params or {}))
            return await self.client.get(path, params=params, timeout=timeout)

        def watch(self, *args, **kwargs):
            return self.client.watch(*args, **kwargs)

        async def close(self) -> None:
            await self.client.close()

    cache = MemberCache("member-2", Paging(admin(clusterset, "member-2")), RecordingSink())  # type: ignore[arg-type]
    cache.start()
    try:
        await until(lambda: cache.synced, what="the first sync")
        mine = {name for (namespace, name) in cache.services if namespace == ns}
        assert mine == {f"svc-{i:04d}" for i in range(count)}
        assert len(pages) >= 2 and "continue" not in pages[0] and "continue" in pages[1]
        assert all(p["limit"] == str(MemberSettings().list_page_size) for p in pages)
    finally:
        await cache.stop()


# --- live events ----------------------------------------------------------------------------------


async def test_services_and_exports_added_modified_and_deleted_are_seen_and_reported_by_key(member2, writer, ns):
    cache, sink = member2
    key = (ns, "web")

    since = sink.mark()
    await writer.json("POST", f"/api/v1/namespaces/{ns}/services", body=service_body("web", 80))
    await until(lambda: key in cache.services and key in sink.keys(since), what="the Service ADDED")

    since = sink.mark()
    await writer.json("PATCH", f"/api/v1/namespaces/{ns}/services/web", content_type="application/merge-patch+json",
                      body={"spec": {"ports": [{"name": "p80", "port": 80}, {"name": "p443", "port": 443}]}})
    await until(lambda: [p["port"] for p in cache.services[key].ports or ()] == [80, 443], what="the MODIFIED")
    assert key in sink.keys(since)

    since = sink.mark()
    await writer.json("POST", f"{EXPORTS_API}/namespaces/{ns}/serviceexports", body=export_body("web"))
    await until(lambda: key in cache.exports and key in sink.keys(since), what="the ServiceExport ADDED")
    assert cache.exports[key].exported_at  # the EXPORTED_AT_ANNOTATION

    since = sink.mark()
    await writer.json("DELETE", f"{EXPORTS_API}/namespaces/{ns}/serviceexports/web")
    await until(lambda: key not in cache.exports and key in sink.keys(since), what="the ServiceExport DELETED")

    since = sink.mark()
    await writer.json("DELETE", f"/api/v1/namespaces/{ns}/services/web")
    await until(lambda: key not in cache.services and key in sink.keys(since), what="the Service DELETED")
    assert sink.keys(since) == {key}


async def test_endpoint_slices_become_ready_counts_per_service_and_follow_a_slice_that_moves(member2, writer, ns):
    cache, sink = member2
    web, api = (ns, "web"), (ns, "api")
    slices = f"{SLICES_API}/namespaces/{ns}/endpointslices"

    await writer.json("POST", slices, body=slice_body("web-a", "web", [
        endpoint("10.0.0.1", True), endpoint("10.0.0.2", None), endpoint("10.0.0.3", False)]))
    await until(lambda: cache.ready_endpoints(web) == 2, what="2 ready endpoints (ready unset counts)")

    await writer.json("POST", slices, body=slice_body("web-b", "web", [endpoint("10.0.0.4", True)]))
    await until(lambda: cache.ready_endpoints(web) == 3, what="two slices of web adding up")

    since = sink.mark()
    await writer.json("PATCH", f"{slices}/web-a", content_type="application/merge-patch+json",
                      body={"endpoints": [endpoint("10.0.0.1", True), endpoint("10.0.0.2", False),
                                          endpoint("10.0.0.3", False)]})
    await until(lambda: cache.ready_endpoints(web) == 2, what="an endpoint turning not-ready")
    assert web in sink.keys(since)

    since = sink.mark()
    await writer.json("PATCH", f"{slices}/web-b", content_type="application/merge-patch+json",
                      body={"metadata": {"labels": {"kubernetes.io/service-name": "api"}}})
    await until(lambda: (cache.ready_endpoints(web), cache.ready_endpoints(api)) == (1, 1),
                what="the slice counting for api instead of web")
    assert {web, api} <= sink.keys(since)

    since = sink.mark()
    await writer.json("DELETE", f"{slices}/web-a")
    await until(lambda: cache.ready_endpoints(web) == 0 and web in sink.keys(since), what="the slice DELETED")
    assert cache.ready_endpoints(api) == 1


async def test_namespaces_appear_and_go_with_their_names_reported(member2, writer):
    cache, sink = member2
    name = f"members-ns-{secrets.token_hex(3)}"
    since = sink.mark()
    await writer.json("POST", "/api/v1/namespaces", body={"metadata": {"name": name}})
    await until(lambda: name in cache.namespaces and name in sink.namespaces(since), what="the namespace ADDED")
    assert cache.namespaces[name]["status"]["phase"] == "Active"

    since = sink.mark()
    await writer.json("DELETE", f"/api/v1/namespaces/{name}")
    # Terminating first (MODIFIED), then gone once the namespace controller finalized it (DELETED).
    await until(lambda: name not in cache.namespaces, timeout=90, what="the namespace DELETED")
    assert name in sink.namespaces(since)
    assert {k for k in sink.keys(since) if k[0] == name} == set()


async def test_cluster_properties_are_cached_and_every_change_reports_the_membership(member2, writer):
    cache, sink = member2
    name = f"e2e-{secrets.token_hex(3)}.example.com"
    since = sink.mark()
    await writer.json("POST", PROPERTIES_API, body={
        "apiVersion": "about.k8s.io/v1beta1", "kind": "ClusterProperty", "metadata": {"name": name},
        "spec": {"value": "one"}})
    try:
        await until(lambda: cache.cluster_properties.get(name, {}).get("spec") == {"value": "one"},
                    what="the ClusterProperty ADDED")
        assert sink.membership(since) >= 1

        since = sink.mark()
        await writer.json("PATCH", f"{PROPERTIES_API}/{name}", content_type="application/merge-patch+json",
                          body={"spec": {"value": "two"}})
        await until(lambda: cache.cluster_properties[name]["spec"] == {"value": "two"}, what="the MODIFIED")
        assert sink.membership(since) >= 1
    finally:
        since = sink.mark()
        await writer.json("DELETE", f"{PROPERTIES_API}/{name}")
    await until(lambda: name not in cache.cluster_properties, what="the ClusterProperty DELETED")
    assert sink.membership(since) >= 1
    assert cache.cluster_properties["cluster.clusterset.k8s.io"]["spec"]["value"] == "member-2"


async def test_the_local_members_cache_keeps_export_conditions_and_another_members_cache_does_not(
        clusterset, writer, ns):
    await writer.json("POST", f"/api/v1/namespaces/{ns}/services", body=service_body("web"))
    await writer.json("POST", f"{EXPORTS_API}/namespaces/{ns}/serviceexports", body=export_body("web"))
    local = MemberCache("member-2", admin(clusterset, "member-2"), RecordingSink(), local=True)
    remote = MemberCache("member-2", admin(clusterset, "member-2"), RecordingSink())
    local.start()
    remote.start()
    try:
        key = (ns, "web")

        def valid_in_local_cache() -> bool:
            export = local.exports.get(key)
            conditions = ((export.status if export is not None else None) or {}).get("conditions") or []
            return any(c["type"] == "Valid" and c["status"] == "True" for c in conditions)

        await until(valid_in_local_cache, what="member-2's instance's conditions in the local cache")
        await until(lambda: key in remote.exports, what="the export in the other cache")
        assert remote.exports[key].status is None
    finally:
        await local.stop()
        await remote.stop()


# --- 410 Expired ----------------------------------------------------------------------------------


class Recorder:
    """A reflector handler that records what it receives; ``on_replace`` runs after each list."""

    def __init__(self) -> None:
        self.replaced: list[list[dict]] = []
        self.events: list[tuple[str, str]] = []
        self.on_replace: Callable[[], None] | None = None

    def prepare(self, objects: list[dict]) -> list[dict]:
        return objects  # kept whole: what the reflector hands over is what is recorded

    def replace_prepared(self, objects: list[dict]) -> None:
        self.replaced.append(objects)
        if self.on_replace is not None:
            self.on_replace()

    def apply(self, event_type: str, obj: dict) -> None:
        self.events.append((event_type, obj["metadata"]["name"]))


async def test_a_watch_from_a_resource_version_the_server_no_longer_has_ends_in_expired(writer):
    failures: list[tuple[str, bool]] = []
    reflector = Reflector(writer, SERVICE_EXPORTS, Recorder(), on_healthy=lambda: None,
                          on_failure=lambda m, lost: failures.append((m, lost)))
    await reflector._list()
    assert int(reflector.resource_version) > 1
    reflector.resource_version = "1"
    with pytest.raises(Expired):
        await asyncio.wait_for(reflector._watch(), 30)
    assert failures == []


async def test_the_reflector_relists_after_a_410_and_goes_on_watching(writer, ns):
    handler = Recorder()
    failures: list[tuple[str, bool]] = []
    healthy: list[bool] = []
    reflector = Reflector(writer, SERVICE_EXPORTS, handler,
                          on_healthy=lambda: healthy.append(True),
                          on_failure=lambda m, lost: failures.append((m, lost)))

    def too_old() -> None:
        if len(handler.replaced) == 1:
            reflector.resource_version = "1"  # as if compacted away before the first watch

    handler.on_replace = too_old
    task = asyncio.create_task(reflector.run())
    try:
        await until(lambda: len(handler.replaced) >= 2, what="a second list after the 410")
        await writer.json("POST", f"{EXPORTS_API}/namespaces/{ns}/serviceexports", body=export_body("after-410"))
        await until(lambda: ("ADDED", "after-410") in handler.events, what="the watch resumed after the relist")
        assert int(reflector.resource_version) > 1
        assert failures == []  # a 410 is routine, not a failure of the member
        assert len(healthy) == 2
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


# --- a member that goes away ----------------------------------------------------------------------


async def joined_everywhere(clusterset) -> None:
    """The ClusterSet as member-1's instance serves it: every member Joined again."""
    client = admin(clusterset, "member-1")

    async def joined() -> bool:
        obj = await client.get("/apis/views.multicluster.x-k8s.io/v1alpha1/clustersets/local")
        return all(m["state"] == "Joined" for m in obj["status"]["members"])

    try:
        await until(joined, timeout=120, what="every member Joined again")
    finally:
        await client.close()


async def test_a_member_whose_apiserver_stops_is_disconnected_and_resyncs_when_it_is_back(clusterset):
    before = admin(clusterset, "member-3")
    ns = f"members-away-{secrets.token_hex(3)}"
    await before.json("POST", "/api/v1/namespaces", body={"metadata": {"name": ns}})
    await before.json("POST", f"/api/v1/namespaces/{ns}/services", body=service_body("kept"))
    await before.json("POST", f"/api/v1/namespaces/{ns}/services", body=service_body("doomed"))
    await before.close()

    sink = RecordingSink()
    cache = await started(clusterset, "member-3", sink)
    try:
        assert {(ns, "kept"), (ns, "doomed")} <= cache.services.keys()
        since = sink.mark()
        await asyncio.to_thread(cluster.stop_member, clusterset.state_dir, "member-3", "kube-apiserver")
        try:
            await until(lambda: not cache.status.connected, timeout=60, what="member-3 disconnected")
            assert any(str(r.resource) in cache.status.message for r in cache.reflectors), \
                cache.status.message  # says what failed
            assert sink.membership(since) >= 1
            assert (ns, "kept") in cache.services  # the last known state is kept meanwhile
        finally:
            await cluster.start_member(clusterset.state_dir, "member-3", "kube-apiserver")

        # Changes made as soon as the server is back, while the reflectors are still backing off.
        after = admin(clusterset, "member-3")
        try:
            since = sink.mark()
            await after.json("POST", f"/api/v1/namespaces/{ns}/services", body=service_body("new"))
            await after.json("DELETE", f"/api/v1/namespaces/{ns}/services/doomed")
        finally:
            await after.close()
        await until(lambda: cache.status.connected and not cache.status.message, timeout=60,
                    what="member-3 connected again")
        await until(lambda: (ns, "new") in cache.services and (ns, "doomed") not in cache.services,
                    what="the changes made while away")
        assert (ns, "kept") in cache.services
        assert {(ns, "new"), (ns, "doomed")} <= sink.keys(since)
        assert cache.status.synced and cache.status.last_sync
    finally:
        await cache.stop()
        cleanup = admin(clusterset, "member-3")
        await cleanup.request("DELETE", f"/api/v1/namespaces/{ns}")
        await cleanup.close()
        await joined_everywhere(clusterset)
