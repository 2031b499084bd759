"""One member cluster: five reflectors feeding trimmed, read-only caches (a ``MemberView``).

Objects are trimmed on the way in to what the views and webhooks read: ServiceExports and Services
become compact records (``contract.ExportRecord``, ``contract.ServiceRecord``: one tuple each instead
of a tree of dicts, interned strings, one shared copy of what Services repeat), namespaces and
ClusterProperties keep their few read fields, and EndpointSlices are reduced to a ready-endpoint
count per Service, plus the ready addresses, hostnames, pod names and ports that DNS needs, for
exported Services only, as interned tuples: memory per object is what lets one instance hold a
large ClusterSet.

Every change is reported to a ``ChangeSink`` as the keys it touches, so the view engine recomputes
only those. Connection trouble is tracked per member: the member is Unreachable while any reflector
cannot reach the server, and its exports expire (stop counting) after the grace period.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from sys import intern
from typing import Any, NamedTuple, Protocol

import aiohttp

from mcs_apiserver.kube.types import ClusterProperty, Namespace, ObjectEventType
from mcs_apiserver.kube.client import ApiError, KubeClient
from mcs_apiserver.kube.shared import interned
from mcs_apiserver.members.reflector import MemberSettings, Reflector, Resource
from mcs_apiserver.kube.times import format_epoch
from mcs_apiserver.contract import (
    Endpoint,
    ExportRecord,
    IPFamily,
    Key,
    MemberStatus,
    ReadyEndpoints,
    ServiceRecord,
    SlicePort,
    export_record,
    service_record,
)

log = logging.getLogger("mcs_apiserver.members")

SERVICE_NAME_LABEL = "kubernetes.io/service-name"

SERVICE_EXPORTS = Resource("/apis/multicluster.x-k8s.io/v1beta1", "serviceexports")
SERVICES = Resource("/api/v1", "services")
ENDPOINT_SLICES = Resource("/apis/discovery.k8s.io/v1", "endpointslices")
NAMESPACES = Resource("/api/v1", "namespaces")
CLUSTER_PROPERTIES = Resource("/apis/about.k8s.io/v1beta1", "clusterproperties")


class ChangeSink(Protocol):
    """Where a member reports what changed; the view updater batches and recomputes."""

    def keys_changed(self, member: str, keys: Iterable[Key]) -> None: ...

    def namespaces_changed(self, member: str, names: Iterable[str]) -> None: ...

    def membership_changed(self, member: str) -> None: ...


#: The metadata the views and webhooks read of namespaces and ClusterProperties. Strings are
#: interned: thousands of objects share a creation second.
_META_KEPT = ("name", "namespace", "creationTimestamp")


def _meta(obj: dict[str, Any], *, extra: tuple[str, ...] = ()) -> dict[str, Any]:
    meta = obj.get("metadata") or {}
    kept = {k: interned(meta[k]) for k in _META_KEPT if k in meta}
    for k in extra:
        if k in meta:
            kept[k] = meta[k]
    return kept


def _key(obj: dict[str, Any]) -> Key:
    meta = obj.get("metadata") or {}
    return (interned(meta.get("namespace", "")), interned(meta.get("name", "")))


def trim_export(obj: dict[str, Any]) -> ExportRecord:
    """What is read of a ServiceExport of the instance's own cluster: with its status (conditions),
    resourceVersion and uid, which its status writer needs (the uid names the export in Events)."""
    return export_record(obj)


def trim_remote_export(obj: dict[str, Any]) -> ExportRecord:
    """What is read of another member's ServiceExport: without its status, resourceVersion and uid,
    so that another instance's condition writes are not even a change here."""
    return export_record(obj, keep_status=False)


def trim_namespace(obj: dict[str, Any]) -> Namespace:
    # The uid of kube-system is the cluster ID the ClusterProperty webhook suggests (KEP-2149).
    return {"metadata": _meta(obj, extra=("uid",)), "status": obj.get("status") or {}}  # type: ignore[typeddict-item]


def trim_property(obj: dict[str, Any]) -> ClusterProperty:
    return {"metadata": _meta(obj), "spec": obj.get("spec") or {}}  # type: ignore[typeddict-item]


_FAMILIES: dict[str, IPFamily] = {"IPv4": "IPv4", "IPv6": "IPv6"}


def ready_endpoints(slice_: dict[str, Any]) -> ReadyEndpoints | None:
    """The ready endpoints of one EndpointSlice as compact tuples; None for FQDN slices.

    Port names, protocols, hostnames and pod names are interned: the same few strings recur in every
    slice of a Service (and pod names in the Pod-keyed caches of the process).
    """
    family = _FAMILIES.get(slice_.get("addressType") or "")
    if family is None:
        return None
    ports = tuple(
        SlicePort(intern(p.get("name") or ""), intern(p.get("protocol") or "TCP"), p["port"],
                  intern(app) if isinstance(app := p.get("appProtocol"), str) else None)
        for p in slice_.get("ports") or () if isinstance(p.get("port"), int)
    )
    endpoints = []
    for endpoint in slice_.get("endpoints") or ():
        if not (endpoint.get("conditions") or {}).get("ready", True):
            continue
        addresses = tuple(endpoint.get("addresses") or ())
        if not addresses:
            continue
        hostname = endpoint.get("hostname") or None
        target = endpoint.get("targetRef") or {}
        pod = target.get("name") if target.get("kind") == "Pod" else None
        endpoints.append(Endpoint(addresses, intern(hostname) if hostname else None, intern(pod) if pod else None))
    return ReadyEndpoints(family, ports, tuple(endpoints))


def ready_count(slice_: dict[str, Any]) -> int:
    """Ready endpoint addresses of one EndpointSlice (``ready`` unset counts as ready, per the API)."""
    total = 0
    for endpoint in slice_.get("endpoints") or ():
        if (endpoint.get("conditions") or {}).get("ready", True):
            total += len(endpoint.get("addresses") or ())
    return total


class _Objects:
    """A reflector handler keeping trimmed objects by key and reporting changed keys."""

    def __init__(self, store: dict, key: Callable[[dict], Any], trim: Callable[[dict], Any],
                 report: Callable[[Iterable[Any]], None]) -> None:
        self.store = store
        self.key = key
        self.trim = trim
        self.report = report

    def replace(self, objects: list[dict[str, Any]]) -> None:
        self.replace_prepared(self.prepare(objects))

    def prepare(self, objects: list[dict[str, Any]]) -> list[tuple[Any, Any]]:
        return [(self.key(o), self.trim(o)) for o in objects]

    def replace_prepared(self, prepared: list[tuple[Any, Any]]) -> None:
        fresh = dict(prepared)
        changed = {k for k in self.store.keys() - fresh.keys()}
        changed |= {k for k, v in fresh.items() if self.store.get(k) != v}
        self.store.clear()
        self.store.update(fresh)
        if changed:
            self.report(changed)

    def apply(self, event_type: ObjectEventType, obj: dict[str, Any]) -> None:
        key = self.key(obj)
        if event_type == "DELETED":
            if self.store.pop(key, None) is not None:
                self.report((key,))
            return
        trimmed = self.trim(obj)
        if self.store.get(key) != trimmed:
            self.store[key] = trimmed
            self.report((key,))


class _Slice(NamedTuple):
    """What is kept of one EndpointSlice: its Service, its ready count, and (only while that Service
    is exported here) its ready endpoints. ``resource_version`` tells a fetched copy is the same."""

    service: Key
    ready: int
    endpoints: ReadyEndpoints | None
    resource_version: str
    #: An IPv6 slice: counted apart, since in dual-stack the same pods are in one slice per family.
    v6: bool = False


class _Slices:
    """EndpointSlices reduced to a ready-endpoint count per Service key, plus, for the Services this
    member exports, their ready endpoints (for DNS).

    A slice that arrives while its Service is not exported keeps only its count. When the export
    appears, the slices already seen are fetched again (GET by ``kubernetes.io/service-name``); a
    fetched slice fills in only if it is the very version the watch gave (same resourceVersion): any
    other version is either older (the watch's newer event already carried the endpoints) or newer
    (its watch event is on the way). The slices are first listed after the exports (see
    ``MemberCache._run``), so a start-up needs no such fetch.
    """

    def __init__(self, member: "MemberCache") -> None:
        self.member = member
        self.slices: dict[Key, _Slice] = {}  # slice key -> what is kept
        self.by_service: dict[Key, set[Key]] = {}  # service key -> its slice keys
        self._pending: set[Key] = set()  # exported services whose slices lack their endpoints
        self._fetching: asyncio.Task | None = None

    def _entry(self, obj: dict[str, Any]) -> _Slice | None:
        meta = obj.get("metadata") or {}
        service = (meta.get("labels") or {}).get(SERVICE_NAME_LABEL)
        if not service:
            return None
        key = (meta.get("namespace", ""), service)
        endpoints = ready_endpoints(obj) if key in self.member._exports else None
        return _Slice(key, ready_count(obj), endpoints, meta.get("resourceVersion", ""),
                      obj.get("addressType") == "IPv6")

    def _set(self, slice_key: Key, entry: _Slice | None, changed: set[Key]) -> None:
        old = self.slices.pop(slice_key, None)
        if old is not None:
            self.member._ready_add(old.service, -old.ready, old.v6)
            keys = self.by_service[old.service]
            keys.discard(slice_key)
            if not keys:
                del self.by_service[old.service]
        if entry is not None:
            self.slices[slice_key] = entry
            self.member._ready_add(entry.service, entry.ready, entry.v6)
            self.by_service.setdefault(entry.service, set()).add(slice_key)
        if old is None or entry is None or old[:3] != entry[:3] or old.v6 != entry.v6:  # a new resourceVersion alone is no change
            changed.update(e.service for e in (old, entry) if e is not None)

    def replace(self, objects: list[dict[str, Any]]) -> None:
        self.replace_prepared(self.prepare(objects))

    def prepare(self, objects: list[dict[str, Any]]) -> list[tuple[Key, _Slice | None]]:
        return [(_key(o), self._entry(o)) for o in objects]

    def replace_prepared(self, prepared: list[tuple[Key, _Slice | None]]) -> None:
        changed: set[Key] = set()
        fresh = dict(prepared)
        for slice_key in list(self.slices.keys() - fresh.keys()):
            self._set(slice_key, None, changed)
        for slice_key, entry in fresh.items():
            self._set(slice_key, entry, changed)
        if changed:
            self.member.sink.keys_changed(self.member.name, changed)

    def apply(self, event_type: ObjectEventType, obj: dict[str, Any]) -> None:
        changed: set[Key] = set()
        self._set(_key(obj), None if event_type == "DELETED" else self._entry(obj), changed)
        if changed:
            self.member.sink.keys_changed(self.member.name, changed)

    def endpoints(self, key: Key) -> tuple[ReadyEndpoints, ...]:
        found = []
        for slice_key in self.by_service.get(key, ()):
            endpoints = self.slices[slice_key].endpoints
            if endpoints is not None:
                found.append(endpoints)
        return tuple(found)

    # --- exports come and go ------------------------------------------------------------------

    def exports_changed(self, keys: Iterable[Key]) -> None:
        """Keep endpoints for newly exported Services (fetching them), drop them for unexported ones."""
        exports = self.member._exports
        for key in keys:
            slice_keys = self.by_service.get(key, ())
            if key in exports:
                if any(self.slices[s].endpoints is None for s in slice_keys):
                    self._pending.add(key)
            else:
                self._pending.discard(key)
                for s in slice_keys:
                    entry = self.slices[s]
                    if entry.endpoints is not None:
                        self.slices[s] = entry._replace(endpoints=None)
        if self._pending and self._fetching is None:
            try:
                self._fetching = asyncio.get_running_loop().create_task(
                    self._fetch_pending(), name=f"{self.member.name}/endpointslices-fetch")
            except RuntimeError:  # no loop: unit tests drive fill() by hand
                pass

    def fill(self, objects: Iterable[dict[str, Any]]) -> None:
        """Fill in the endpoints of exported Services from fetched slices (same versions only)."""
        changed: set[Key] = set()
        exports = self.member._exports
        for obj in objects:
            entry = self.slices.get(_key(obj))
            if entry is None or entry.endpoints is not None or entry.service not in exports:
                continue
            if entry.resource_version != (obj.get("metadata") or {}).get("resourceVersion", ""):
                continue
            self.slices[_key(obj)] = entry._replace(endpoints=ready_endpoints(obj))
            changed.add(entry.service)
        if changed:
            self.member.sink.keys_changed(self.member.name, changed)

    async def _fetch_pending(self) -> None:
        """GET the slices of every pending key by label, ``fetch_concurrency`` at a time (never one
        LIST of every slice: in a large cluster that is megabytes for a few keys)."""
        try:
            await asyncio.gather(*(self._fetch_worker() for _ in range(self.member.settings.fetch_concurrency)))
        finally:
            self._fetching = None

    async def _fetch_worker(self) -> None:
        client = self.member.client
        while self._pending:
            key = self._pending.pop()
            namespace, name = key
            try:
                page = await client.get(
                    f"{ENDPOINT_SLICES.prefix}/namespaces/{namespace}/{ENDPOINT_SLICES.plural}",
                    params={"labelSelector": f"{SERVICE_NAME_LABEL}={name}"}, timeout=30)
            except (ApiError, aiohttp.ClientError, asyncio.TimeoutError, OSError, ValueError) as error:
                log.info("member %s: fetching the endpoints of %s/%s failed, retrying: %s", self.member.name,
                         namespace, name, error, extra={"member": self.member.name})
                await asyncio.sleep(self.member.settings.fetch_retry)
                if key in self.member._exports:
                    self._pending.add(key)
                continue
            self.fill(page.get("items") or ())


class MemberCache:
    """The caches of one member cluster; implements ``contract.MemberView``."""

    def __init__(self, name: str, client: KubeClient, sink: ChangeSink, *, grace_period: float = 300.0,
                 local: bool = False, clock: Callable[[], float] = time.time,
                 settings: MemberSettings = MemberSettings()) -> None:
        self._name = name
        self.settings = settings
        self.client = client
        self.sink = sink
        self.grace_period = grace_period
        self._clock = clock
        self._cluster_properties: dict[str, ClusterProperty] = {}
        self._namespaces: dict[str, Namespace] = {}
        self._exports: dict[Key, ExportRecord] = {}
        self._services: dict[Key, ServiceRecord] = {}
        self._ready: dict[Key, int] = {}  # ready endpoints of IPv4 (and FQDN) slices, by Service
        self._ready6: dict[Key, int] = {}  # ... of IPv6 slices
        self._status = MemberStatus()
        self._failing: dict[str, tuple[str, bool]] = {}  # resource -> (message, connection lost)
        self._disconnected_since: float | None = None
        self._expiry: asyncio.TimerHandle | None = None
        self._tasks: list[asyncio.Task] = []
        report_keys = lambda keys: sink.keys_changed(name, keys)  # noqa: E731
        self._slices = _Slices(self)

        def report_exports(keys: Iterable[Key]) -> None:
            keys = list(keys)
            self._slices.exports_changed(keys)
            sink.keys_changed(name, keys)

        self.reflectors = [
            self._reflector(SERVICE_EXPORTS, _Objects(self._exports, _key,
                                                      trim_export if local else trim_remote_export, report_exports)),
            self._reflector(SERVICES, _Objects(self._services, _key, service_record, report_keys)),
            self._reflector(ENDPOINT_SLICES, self._slices),
            self._reflector(NAMESPACES, _Objects(
                self._namespaces, lambda o: o["metadata"]["name"], trim_namespace,
                lambda names: sink.namespaces_changed(name, names))),
            self._reflector(CLUSTER_PROPERTIES, _Objects(
                self._cluster_properties, lambda o: o["metadata"]["name"], trim_property,
                lambda _: sink.membership_changed(name))),
        ]

    def _reflector(self, resource: Resource, handler: Any) -> Reflector:
        return Reflector(
            self.client, resource, handler,
            on_healthy=lambda: self._healthy(str(resource)),
            on_failure=lambda message, lost: self._failure(str(resource), message, lost),
            settings=self.settings,
        )

    # --- MemberView ---------------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self._name

    @property
    def status(self) -> MemberStatus:
        return self._status

    @property
    def cluster_properties(self) -> dict[str, ClusterProperty]:
        return self._cluster_properties

    @property
    def namespaces(self) -> dict[str, Namespace]:
        return self._namespaces

    @property
    def exports(self) -> dict[Key, ExportRecord]:
        return self._exports

    @property
    def services(self) -> dict[Key, ServiceRecord]:
        return self._services

    def ready_endpoints(self, key: Key) -> int:
        """Ready endpoints of the Service, each pod once: a dual-stack Service has one slice per family
        with the same pods in both, so the larger family's count is the number of endpoints."""
        return max(self._ready.get(key, 0), self._ready6.get(key, 0))

    def ready_endpoint_slices(self, key: Key) -> tuple[ReadyEndpoints, ...]:
        return self._slices.endpoints(key)

    def _ready_add(self, key: Key, delta: int, v6: bool) -> None:
        counts = self._ready6 if v6 else self._ready
        total = counts.get(key, 0) + delta
        if total:
            counts[key] = total
        else:
            counts.pop(key, None)

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._run(r), name=f"{self.name}/{r.resource}") for r in self.reflectors]

    async def _run(self, reflector: Reflector) -> None:
        """EndpointSlices are listed once the exports are (or cannot be): their endpoints are kept
        only for exported Services, and a slice seen before its export would have to be fetched
        again."""
        if reflector.resource == ENDPOINT_SLICES:
            exports = next(r for r in self.reflectors if r.resource == SERVICE_EXPORTS)
            while not exports.synced and str(SERVICE_EXPORTS) not in self._failing:
                await asyncio.sleep(0.02)
        await reflector.run()

    async def stop(self) -> None:
        if self._slices._fetching is not None:
            self._tasks.append(self._slices._fetching)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._expiry is not None:
            self._expiry.cancel()
        await self.client.close()

    def resource_synced(self, resource: Resource) -> bool:
        return any(r.synced for r in self.reflectors if r.resource == resource)

    @property
    def synced(self) -> bool:
        return all(r.synced for r in self.reflectors)

    @property
    def settled(self) -> bool:
        """Synced, or known to be failing: what readiness waits for (never for a dead member)."""
        return self.synced or bool(self._failing)

    # --- status tracking ----------------------------------------------------------------------

    def _healthy(self, resource: str) -> None:
        self._failing.pop(resource, None)
        self._update_status()

    def _failure(self, resource: str, message: str, connection_lost: bool) -> None:
        previous = self._failing.get(resource)
        self._failing[resource] = (message, connection_lost)
        if previous != (message, connection_lost):
            log.warning("member %s: %s", self.name, message, extra={"member": self.name})
        self._update_status()

    def _update_status(self) -> None:
        now = self._clock()
        lost = [m for m, is_lost in self._failing.values() if is_lost]
        connected = not lost
        synced = self.synced
        message = "; ".join(sorted(m for m, _ in self._failing.values()))
        last_sync = self._status.last_sync
        if connected and synced and not self._failing:
            last_sync = format_epoch(now)
        if not connected and self._disconnected_since is None:
            self._disconnected_since = now
            last_contact = max((r.last_event for r in self.reflectors), default=0.0)
            if last_contact:
                last_sync = format_epoch(last_contact)
            self._schedule_expiry()
        if connected:
            self._disconnected_since = None
            if self._expiry is not None:
                self._expiry.cancel()
                self._expiry = None
        expired = (not connected and self._disconnected_since is not None
                   and now - self._disconnected_since >= self.grace_period)
        new = MemberStatus(connected=connected, synced=synced, last_sync=last_sync, message=message,
                           expired=expired)
        if _significant(self._status, new):
            if connected != self._status.connected:
                log.info("member %s %s", self.name, "reachable" if connected else "unreachable",
                         extra={"member": self.name})
            self._status = new
            self.sink.membership_changed(self.name)
        else:
            self._status = new

    def _schedule_expiry(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        if self._expiry is not None:
            self._expiry.cancel()
        self._expiry = loop.call_later(self.grace_period, self._update_status)


def _significant(old: MemberStatus, new: MemberStatus) -> bool:
    """Whether a status change is worth a recompute (a fresher last_sync alone is not)."""
    return (old.connected, old.synced, old.message, old.expired) != (
        new.connected, new.synced, new.message, new.expired)
