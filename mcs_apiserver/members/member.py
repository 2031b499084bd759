"""One member cluster: five reflectors feeding trimmed, read-only caches (a ``MemberView``).

Objects are trimmed on the way in to what the views and webhooks read (no managedFields, no
unrelated annotations, EndpointSlices reduced to a ready-endpoint count per Service): memory per
object is what lets one instance hold a large ClusterSet.

Every change is reported to a ``ChangeSink`` as the keys it touches, so the view engine recomputes
only those. Connection trouble is tracked per member: the member is Unreachable while any reflector
cannot reach the server, and its exports expire (stop counting) after the grace period.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from typing import Any, NamedTuple, Protocol

from mcs_apiserver.kube_types import ClusterProperty, Namespace, Service, ServiceExport
from mcs_apiserver.members.client import KubeClient
from mcs_apiserver.members.reflector import Reflector, Resource
from mcs_apiserver.views.conditions import format_time
from mcs_apiserver.views.model import EXPORTED_AT_ANNOTATION, Key, MemberStatus

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


def rfc3339(epoch: float) -> str:
    return format_time(datetime.fromtimestamp(epoch, timezone.utc))


def _meta(obj: dict[str, Any], *, annotations: tuple[str, ...] = ()) -> dict[str, Any]:
    meta = obj.get("metadata") or {}
    kept = {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion", "generation",
                                 "creationTimestamp", "deletionTimestamp") if k in meta}
    if annotations and (source := meta.get("annotations")):
        picked = {k: source[k] for k in annotations if k in source}
        if picked:
            kept["annotations"] = picked
    return kept


def _key(obj: dict[str, Any]) -> Key:
    meta = obj.get("metadata") or {}
    return (meta.get("namespace", ""), meta.get("name", ""))


def trim_export(obj: dict[str, Any], *, keep_status: bool = True) -> ServiceExport:
    """What the views read of a ServiceExport. The status (conditions) matters only to the status
    writer of the export's own cluster: dropped elsewhere, another instance's condition writes are
    not even a change here."""
    metadata = _meta(obj, annotations=(EXPORTED_AT_ANNOTATION,))
    if not keep_status:
        # Nor its resourceVersion (which only the status writer needs), or every status write
        # would still look like a change.
        metadata.pop("resourceVersion", None)
    trimmed: dict[str, Any] = {"metadata": metadata}
    if spec := obj.get("spec"):
        trimmed["spec"] = spec
    if keep_status and (status := obj.get("status")):
        trimmed["status"] = status
    return trimmed  # type: ignore[return-value]


def trim_remote_export(obj: dict[str, Any]) -> ServiceExport:
    return trim_export(obj, keep_status=False)


def trim_service(obj: dict[str, Any]) -> Service:
    spec = obj.get("spec") or {}
    kept = {k: spec[k] for k in ("type", "clusterIP", "clusterIPs", "ipFamilies", "ports",
                                 "sessionAffinity", "sessionAffinityConfig", "internalTrafficPolicy",
                                 "trafficDistribution", "externalName") if k in spec}
    return {"metadata": _meta(obj), "spec": kept}  # type: ignore[return-value,typeddict-item]


def trim_namespace(obj: dict[str, Any]) -> Namespace:
    return {"metadata": _meta(obj), "status": obj.get("status") or {}}  # type: ignore[typeddict-item]


def trim_property(obj: dict[str, Any]) -> ClusterProperty:
    return {"metadata": _meta(obj), "spec": obj.get("spec") or {}}  # type: ignore[typeddict-item]


def ready_count(slice_: dict[str, Any]) -> int:
    """Ready endpoint addresses of one EndpointSlice (``ready`` unset counts as ready, per the API)."""
    total = 0
    for endpoint in slice_.get("endpoints") or ():
        if (endpoint.get("conditions") or {}).get("ready", True):
            total += len(endpoint.get("addresses") or ())
    return total


class SliceEndpoints(NamedTuple):
    """What an MCS EndpointSlice copies of one source EndpointSlice: its ready endpoints.

    Kept beside the ready count (additive: the count stays what the views read) for the
    publishers of MCS EndpointSlices. Tuples, so that an unchanged slice compares equal and costs
    little.
    """

    service: Key
    address_type: str
    #: (name, protocol, port, appProtocol) of each port
    ports: tuple[tuple[str, str, int, str | None], ...]
    #: (addresses, hostname) of each ready endpoint
    endpoints: tuple[tuple[tuple[str, ...], str | None], ...]


def slice_endpoints(service: Key, obj: dict[str, Any]) -> SliceEndpoints:
    """The ready endpoints of an EndpointSlice (``ready`` unset counts as ready, per the API)."""
    ports = tuple(
        (p.get("name") or "", p.get("protocol") or "TCP", p["port"], p.get("appProtocol"))
        for p in obj.get("ports") or () if isinstance(p.get("port"), int)
    )
    endpoints = tuple(
        (tuple(e.get("addresses") or ()), e.get("hostname"))
        for e in obj.get("endpoints") or ()
        if (e.get("conditions") or {}).get("ready", True) and e.get("addresses")
    )
    return SliceEndpoints(service, obj.get("addressType") or "IPv4", ports, endpoints)


class _Objects:
    """A reflector handler keeping trimmed objects by key and reporting changed keys."""

    def __init__(self, store: dict, key: Callable[[dict], Any], trim: Callable[[dict], Any],
                 report: Callable[[Iterable[Any]], None]) -> None:
        self.store = store
        self.key = key
        self.trim = trim
        self.report = report

    def replace(self, objects: list[dict[str, Any]]) -> None:
        fresh = {self.key(o): self.trim(o) for o in objects}
        changed = {k for k in self.store.keys() - fresh.keys()}
        changed |= {k for k, v in fresh.items() if self.store.get(k) != v}
        self.store.clear()
        self.store.update(fresh)
        if changed:
            self.report(changed)

    def apply(self, event_type: str, obj: dict[str, Any]) -> None:
        key = self.key(obj)
        if event_type == "DELETED":
            if self.store.pop(key, None) is not None:
                self.report((key,))
            return
        trimmed = self.trim(obj)
        if self.store.get(key) != trimmed:
            self.store[key] = trimmed
            self.report((key,))


class _Slices:
    """EndpointSlices reduced to a ready-endpoint count per Service key."""

    def __init__(self, member: "MemberCache") -> None:
        self.member = member
        self.slices: dict[Key, tuple[Key, int]] = {}  # slice key -> (service key, ready count)
        self.details: dict[Key, SliceEndpoints] = {}  # slice key -> its ready endpoints

    def _entry(self, obj: dict[str, Any]) -> tuple[Key, int] | None:
        meta = obj.get("metadata") or {}
        service = (meta.get("labels") or {}).get(SERVICE_NAME_LABEL)
        if not service:
            return None
        return (meta.get("namespace", ""), service), ready_count(obj)

    def _detail(self, slice_key: Key, obj: dict[str, Any] | None, changed: set[Key]) -> None:
        old = self.details.pop(slice_key, None)
        service = (((obj or {}).get("metadata") or {}).get("labels") or {}).get(SERVICE_NAME_LABEL)
        new = slice_endpoints((slice_key[0], service), obj) if obj is not None and service else None
        if new is not None:
            self.details[slice_key] = new
            self.member._index_slice(new.service, slice_key, True)
        if old is not None and (new is None or new.service != old.service):
            self.member._index_slice(old.service, slice_key, False)
        if old != new:  # e.g. an address changed, the ready count did not
            changed.update(e.service for e in (old, new) if e is not None)

    def _set(self, slice_key: Key, entry: tuple[Key, int] | None, changed: set[Key]) -> None:
        old = self.slices.pop(slice_key, None)
        if old is not None:
            self.member._ready_add(old[0], -old[1])
        if entry is not None:
            self.slices[slice_key] = entry
            self.member._ready_add(entry[0], entry[1])
        if old != entry:
            changed.update(e[0] for e in (old, entry) if e is not None)

    def replace(self, objects: list[dict[str, Any]]) -> None:
        changed: set[Key] = set()
        fresh = {_key(o): self._entry(o) for o in objects}
        for slice_key in list(self.slices.keys() - fresh.keys()):
            self._set(slice_key, None, changed)
        for slice_key in list(self.details.keys() - fresh.keys()):
            self._detail(slice_key, None, changed)
        for slice_key, entry in fresh.items():
            self._set(slice_key, entry, changed)
        for obj in objects:
            self._detail(_key(obj), obj, changed)
        if changed:
            self.member.sink.keys_changed(self.member.name, changed)

    def apply(self, event_type: str, obj: dict[str, Any]) -> None:
        changed: set[Key] = set()
        self._set(_key(obj), None if event_type == "DELETED" else self._entry(obj), changed)
        self._detail(_key(obj), None if event_type == "DELETED" else obj, changed)
        if changed:
            self.member.sink.keys_changed(self.member.name, changed)


class MemberCache:
    """The caches of one member cluster; implements ``views.model.MemberView``."""

    def __init__(self, name: str, client: KubeClient, sink: ChangeSink, *, grace_period: float = 300.0,
                 local: bool = False, clock: Callable[[], float] = time.time) -> None:
        self._name = name
        self.client = client
        self.sink = sink
        self.grace_period = grace_period
        self._clock = clock
        self._cluster_properties: dict[str, ClusterProperty] = {}
        self._namespaces: dict[str, Namespace] = {}
        self._exports: dict[Key, ServiceExport] = {}
        self._services: dict[Key, Service] = {}
        self._ready: dict[Key, int] = {}
        self._slices_of: dict[Key, set[Key]] = {}  # service key -> its EndpointSlices' keys
        self._slice_handler = _Slices(self)
        self._status = MemberStatus()
        self._failing: dict[str, tuple[str, bool]] = {}  # resource -> (message, connection lost)
        self._disconnected_since: float | None = None
        self._expiry: asyncio.TimerHandle | None = None
        self._tasks: list[asyncio.Task] = []
        report_keys = lambda keys: sink.keys_changed(name, keys)  # noqa: E731
        self.reflectors = [
            self._reflector(SERVICE_EXPORTS, _Objects(self._exports, _key,
                                                      trim_export if local else trim_remote_export, report_keys)),
            self._reflector(SERVICES, _Objects(self._services, _key, trim_service, report_keys)),
            self._reflector(ENDPOINT_SLICES, self._slice_handler),
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
    def exports(self) -> dict[Key, ServiceExport]:
        return self._exports

    @property
    def services(self) -> dict[Key, Service]:
        return self._services

    def ready_endpoints(self, key: Key) -> int:
        return self._ready.get(key, 0)

    def endpoint_slices(self, key: Key) -> list[SliceEndpoints]:
        """The ready endpoints of the Service ``key``, one entry per EndpointSlice, in slice-name order."""
        details = self._slice_handler.details
        return [details[s] for s in sorted(self._slices_of.get(key, ()))]

    def _index_slice(self, service: Key, slice_key: Key, present: bool) -> None:
        if present:
            self._slices_of.setdefault(service, set()).add(slice_key)
            return
        keys = self._slices_of.get(service)
        if keys is not None:
            keys.discard(slice_key)
            if not keys:
                del self._slices_of[service]

    def _ready_add(self, key: Key, delta: int) -> None:
        total = self._ready.get(key, 0) + delta
        if total:
            self._ready[key] = total
        else:
            self._ready.pop(key, None)

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        self._tasks = [asyncio.create_task(r.run(), name=f"{self.name}/{r.resource}") for r in self.reflectors]

    async def stop(self) -> None:
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
            last_sync = rfc3339(now)
        if not connected and self._disconnected_since is None:
            self._disconnected_since = now
            last_contact = max((r.last_event for r in self.reflectors), default=0.0)
            if last_contact:
                last_sync = rfc3339(last_contact)
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
