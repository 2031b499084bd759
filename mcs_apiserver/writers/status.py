"""Write ``Valid``, ``Ready`` and ``Conflict`` conditions to the local cluster's ServiceExports.

So that ``kubectl describe serviceexport`` tells what the ClusterSet made of an export. The
conditions are derived by the view engine's pure ``export_conditions`` (same code, same messages as
the ServiceImport's); this module only decides *when* to write and does the I/O:

* only the Lease holder writes (``leader.LeaseElector``), so replicas never fight;
* only when a condition's type, status, reason or message differs from what the export carries;
* the write is a merge patch of the status subresource carrying the export's resourceVersion, so a
  concurrent change is never overwritten (409: the watch brings the new state, we retry then);
* conditions of other types (another controller's) are kept;
* after a write that succeeded, Events for what changed (``writers.events``: a Warning when the
  export turns ``Conflict=True`` or ``Valid=False``, a Normal one when that clears). Only then: a
  write refused with 409 was computed from a stale export, and records nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import aiohttp

from mcs_apiserver.kube.types import Condition
from mcs_apiserver.kube.client import ApiError, KubeClient
from mcs_apiserver.members.member import MemberCache
from mcs_apiserver.kube.times import format_time, utc_now
from mcs_apiserver.views.engine import ViewEngine
from mcs_apiserver.writers.events import EventRecorder, EventType, ObjectRef, condition_events
from mcs_apiserver.views.imports import export_conditions, make_contribution
from mcs_apiserver.contract import Key

log = logging.getLogger("mcs_apiserver.status")

OUR_CONDITIONS = ("Valid", "Ready", "Conflict")


@dataclass(frozen=True, slots=True)
class WriterSettings:
    """Tuning of the status writer (``serve`` hands it in)."""

    #: Status PATCHes in flight at once, and the delay before failed ones are tried again.
    concurrent_writes: int = 8
    retry_after: float = 2.0


def _significant(conditions: Iterable[Condition]) -> dict[str, tuple[Any, ...]]:
    return {c.get("type", ""): (c.get("status"), c.get("reason"), c.get("message")) for c in conditions
            if c.get("type") in OUR_CONDITIONS}


def desired_conditions(engine: ViewEngine, local: MemberCache, key: Key, now: str) -> list[Condition] | None:
    """The full condition list the export ``key`` should carry, or None if nothing must change."""
    export = local.exports.get(key)
    if export is None:
        return None
    membership = engine.membership
    cluster = (membership.local_cluster if membership else None) or ""
    contribution = make_contribution(cluster, local.name, export, local.services.get(key), local.ready_endpoints(key))
    current: list[Condition] = list((export.status or {}).get("conditions") or ())
    ours = export_conditions(contribution, engine.derived(key), current, now)
    if _significant(ours) == _significant(current):
        return None
    others = [c for c in current if c.get("type") not in OUR_CONDITIONS]
    return others + ours


class StatusWriter:
    def __init__(self, engine: ViewEngine, local: MemberCache, client: KubeClient,
                 settings: WriterSettings = WriterSettings(), events: EventRecorder | None = None) -> None:
        self.engine = engine
        self.events = events
        self.settings = settings
        self.local = local
        self.client = client
        self.enabled = False
        self._pending: set[Key] = set()
        self._wake = asyncio.Event()
        self.writes = 0

    # --- inputs ---------------------------------------------------------------------------------

    def leadership_changed(self, leading: bool) -> None:
        self.enabled = leading
        if leading:
            self.mark(self.local.exports.keys())

    def mark(self, keys: Iterable[Key]) -> None:
        """Keys whose export, import or membership may have changed since the last look."""
        if not self.enabled:
            return
        self._pending.update(k for k in keys if k in self.local.exports)
        # Conditions are computed only from views over a synced local member: keys marked before its
        # sync stay pending, without waking the loop (the views may not include the whole member
        # yet). The sync itself is reported, and the mark that follows it wakes the loop for every
        # pending key, though it names no new one.
        if self._pending and self.local.synced:
            self._wake.set()

    # --- the loop -------------------------------------------------------------------------------

    async def run(self) -> None:
        semaphore = asyncio.Semaphore(self.settings.concurrent_writes)
        in_flight: set[asyncio.Task] = set()
        while True:
            await self._wake.wait()
            self._wake.clear()
            if not self.enabled or not self.local.synced:
                continue
            now = format_time(utc_now())
            batch, self._pending = self._pending, set()
            for key in sorted(batch):
                export = self.local.exports.get(key)
                conditions = desired_conditions(self.engine, self.local, key, now)
                if conditions is None or export is None:
                    continue
                # The version the conditions were computed from, not the one cached at write time:
                # anything that changed in between (e.g. another controller's condition) must make
                # the write fail with 409 rather than be overwritten.
                version = export.resource_version
                changes = condition_events((export.status or {}).get("conditions") or (), conditions)
                ref = ObjectRef(key[0], key[1], export.uid or "")
                await semaphore.acquire()
                task = asyncio.create_task(self._write(key, conditions, version, semaphore, ref, changes))
                in_flight.add(task)
                task.add_done_callback(in_flight.discard)

    async def _write(self, key: Key, conditions: list[Condition], version: str | None,
                     semaphore: asyncio.Semaphore, ref: ObjectRef, changes: list[tuple[EventType, str, str]]) -> None:
        """PATCH the conditions; once written, record the Events of ``changes`` on ``ref``."""
        namespace, name = key
        patch = {"metadata": {"resourceVersion": version}, "status": {"conditions": conditions}}
        path = f"/apis/multicluster.x-k8s.io/v1beta1/namespaces/{namespace}/serviceexports/{name}/status"
        try:
            await self.client.json("PATCH", path, body=patch, content_type="application/merge-patch+json",
                                   params={"fieldManager": "mcs-apiserver"})
            self.writes += 1
            if self.events is not None:
                for type_, reason, message in changes:
                    self.events.record(ref, type_, reason, message)
        except ApiError as error:
            if error.code == 409:
                pass  # changed meanwhile: the watch event re-marks the key with the new state
            elif error.code != 404:
                log.warning("cannot write the status of ServiceExport %s/%s: %s", namespace, name, error)
        except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as error:
            log.warning("cannot write the status of ServiceExport %s/%s: %s", namespace, name, error)
            self._pending.add(key)
            asyncio.get_running_loop().call_later(self.settings.retry_after, self._wake.set)
        finally:
            semaphore.release()
