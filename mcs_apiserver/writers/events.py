"""Kubernetes Events on ServiceExports, recorded like client-go's ``record.EventRecorder``.

Conditions say what an export is *now*; an Event says *when* it went wrong or right, and is what
``kubectl describe serviceexport`` lists under "Events:" and what event exporters and alerting
pipelines already collect. The status writer (the Lease holder) records:

* a Warning when an export turns ``Conflict=True`` or ``Valid=False`` (or the reason or message of
  that bad state changes), reason and message being the condition's;
* a Normal one when that condition clears, with the new condition's reason and message.

core/v1 Events (not events.k8s.io/v1): ``kubectl describe`` lists events through core/v1 (with a field
selector on ``involvedObject``), every Kubernetes version serves them, and their ``count`` /
``lastTimestamp`` are what client-go's legacy recorder patches. events.k8s.io/v1 would show the same,
the two APIs are views of one stored object, but its ``series`` needs ``eventTime``, ``action`` and
a client-side series state for nothing more in ``kubectl describe``.

The correlation is client-go's ``EventCorrelator``, in two pure pieces with an injected clock:

* dedup (``eventLogger``): the same (object, type, reason, message) again bumps ``count`` and
  ``lastTimestamp`` of the one Event already created (a PATCH), never a second Event;
* spam filter: a token bucket per involved object (client-go: burst 25, one token back every 5
  minutes), so a flapping export cannot flood the cluster; events over it are dropped.

Both caches are LRU-bounded (client-go: 4096 entries). The I/O runs in :meth:`EventRecorder.run` from
a bounded queue (full: dropped, as client-go's broadcaster does), so recording never blocks the
condition writes. Without the permission to create Events (403), conditions are still written and
the refusal is logged once, not once per event.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

import aiohttp

from mcs_apiserver.kube.client import ApiError, KubeClient
from mcs_apiserver.kube.times import format_epoch
from mcs_apiserver.kube.types import Condition

log = logging.getLogger("mcs_apiserver.events")

COMPONENT = "mcs-apiserver"
EXPORT_API_VERSION = "multicluster.x-k8s.io/v1beta1"
EXPORT_KIND = "ServiceExport"
#: events.k8s.io/v1's limit on a note, applied to core/v1 messages too (both APIs read one object).
MESSAGE_LIMIT = 1024

EventType = Literal["Normal", "Warning"]
#: The conditions whose bad state is worth a Warning: (type, the status that is bad).
WATCHED = (("Valid", "False"), ("Conflict", "True"))


@dataclass(frozen=True, slots=True)
class EventSettings:
    """client-go's ``EventCorrelator`` defaults (``serve`` hands them in; tests shrink them)."""

    #: Token bucket per object: events at once, and the seconds after which one more is allowed.
    burst: int = 25
    refill_seconds: float = 300.0
    #: Objects (spam filter) and distinct events (dedup) remembered; the oldest are forgotten first.
    cache_size: int = 4096
    #: Events waiting for their API call; more are dropped.
    queue_size: int = 1000


@dataclass(frozen=True, slots=True)
class ObjectRef:
    """The involved object: what ``kubectl describe`` matches an Event's ``involvedObject`` against
    (name, namespace, kind and uid)."""

    namespace: str
    name: str
    uid: str = ""
    api_version: str = EXPORT_API_VERSION
    kind: str = EXPORT_KIND


@dataclass(frozen=True, slots=True)
class Occurrence:
    """One event to send: a new Event (``count`` 1) or a bump of the one named ``name``."""

    ref: ObjectRef
    type: EventType
    reason: str
    message: str
    name: str
    count: int
    first_timestamp: str
    last_timestamp: str


def condition_events(previous: Iterable[Condition], current: Iterable[Condition]) -> list[tuple[EventType, str, str]]:
    """The (type, reason, message) events of a condition write from ``previous`` to ``current``:
    a Warning for each watched condition that is now bad and was not (or was bad otherwise), a
    Normal one for each that was bad and is not any more. Pure."""
    before = {c.get("type"): c for c in previous}
    after = {c.get("type"): c for c in current}
    events: list[tuple[EventType, str, str]] = []
    for kind, bad in WATCHED:
        old, new = before.get(kind), after.get(kind)
        if new is None:
            continue
        was_bad = old is not None and old.get("status") == bad
        state = (new.get("reason", ""), new.get("message", ""))
        if new.get("status") == bad:
            if not was_bad or (old.get("reason", ""), old.get("message", "")) != state:  # type: ignore[union-attr]
                events.append(("Warning", *state))
        elif was_bad:
            events.append(("Normal", *state))
    return events


class _Lru(OrderedDict):
    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def touch(self, key: Any, value: Any) -> None:
        self[key] = value
        self.move_to_end(key)
        while len(self) > self.size:
            self.popitem(last=False)


class Correlator:
    """Which events to send, and as what: client-go's ``EventCorrelator`` (dedup + spam filter) without
    its aggregation of similar messages (our messages are the conditions', already one per state).
    Pure: ``clock`` gives the time in seconds since the epoch."""

    def __init__(self, settings: EventSettings, clock: Callable[[], float]) -> None:
        self.settings = settings
        self.clock = clock
        self._buckets = _Lru(settings.cache_size)  # object -> (tokens, when counted)
        self._seen = _Lru(settings.cache_size)  # (object, type, reason, message) -> (name, count, first)
        self.dropped = 0

    def _take_token(self, ref: ObjectRef, now: float) -> bool:
        tokens, then = self._buckets.get(ref, (float(self.settings.burst), now))
        tokens = min(float(self.settings.burst), tokens + (now - then) / self.settings.refill_seconds)
        allowed = tokens >= 1.0
        self._buckets.touch(ref, (tokens - 1.0 if allowed else tokens, now))
        return allowed

    def observe(self, ref: ObjectRef, type_: EventType, reason: str, message: str) -> Occurrence | None:
        """The occurrence to send for this event, or None if the object's bucket is empty."""
        now = self.clock()
        if not self._take_token(ref, now):
            self.dropped += 1
            return None
        message = _truncate(message)
        key = (ref, type_, reason, message)
        stamp = format_epoch(now)
        seen = self._seen.get(key)
        if seen is None:
            name, count, first = f"{ref.name}.{int(now * 1e9):x}", 1, stamp
        else:
            name, count, first = seen[0], seen[1] + 1, seen[2]
        self._seen.touch(key, (name, count, first))
        return Occurrence(ref, type_, reason, message, name, count, first, stamp)


def _truncate(message: str) -> str:
    data = message.encode()
    if len(data) <= MESSAGE_LIMIT:
        return message
    return data[:MESSAGE_LIMIT - 3].decode(errors="ignore") + "..."


def event_object(occurrence: Occurrence, instance: str) -> dict[str, Any]:
    """The core/v1 Event of a first occurrence."""
    ref = occurrence.ref
    return {
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": occurrence.name, "namespace": ref.namespace},
        "involvedObject": {"apiVersion": ref.api_version, "kind": ref.kind, "namespace": ref.namespace,
                           "name": ref.name, **({"uid": ref.uid} if ref.uid else {})},
        "type": occurrence.type, "reason": occurrence.reason, "message": occurrence.message,
        "source": {"component": COMPONENT, "host": instance},
        "reportingComponent": COMPONENT, "reportingInstance": instance,
        "firstTimestamp": occurrence.first_timestamp, "lastTimestamp": occurrence.last_timestamp,
        "count": occurrence.count,
    }


class EventRecorder:
    """Records events on ServiceExports of the local cluster (``client``), as ``instance``.

    :meth:`record` decides at once (dedup, spam filter) and queues the API call; :meth:`run` makes
    the calls, one at a time, in order."""

    def __init__(self, client: KubeClient, instance: str, settings: EventSettings = EventSettings(),
                 clock: Callable[[], float] = time.time) -> None:
        self.client = client
        self.instance = instance
        self.correlator = Correlator(settings, clock)
        self._queue: asyncio.Queue[Occurrence] = asyncio.Queue(settings.queue_size)
        self._failing = 0  # the HTTP code of the failure last logged; 0 after a success
        self.sent = 0

    def record(self, ref: ObjectRef, type_: EventType, reason: str, message: str) -> None:
        occurrence = self.correlator.observe(ref, type_, reason, message)
        if occurrence is None:
            return
        try:
            self._queue.put_nowait(occurrence)
        except asyncio.QueueFull:
            self.correlator.dropped += 1

    async def run(self) -> None:
        while True:
            occurrence = await self._queue.get()
            await self._send(occurrence)

    async def _send(self, occurrence: Occurrence) -> None:
        path = f"/api/v1/namespaces/{occurrence.ref.namespace}/events"
        try:
            if occurrence.count > 1:
                try:
                    await self.client.json(
                        "PATCH", f"{path}/{occurrence.name}", content_type="application/merge-patch+json",
                        body={"count": occurrence.count, "lastTimestamp": occurrence.last_timestamp,
                              "message": occurrence.message})
                    self._sent()
                    return
                except ApiError as error:
                    if error.code != 404:
                        raise
                    # Expired (Events live an hour) or never created: a new one, as client-go does.
            await self.client.json("POST", path, body=event_object(occurrence, self.instance))
            self._sent()
        except ApiError as error:
            if error.code == 409:  # a bump that found the Event again (or a clock that repeats): fine
                return
            self._failed(error.code, str(error))
        except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as error:
            self._failed(-1, str(error) or type(error).__name__)

    def _sent(self) -> None:
        self.sent += 1
        if self._failing:
            log.info("recording Events again")
        self._failing = 0

    def _failed(self, code: int, detail: str) -> None:
        if code == self._failing:
            return  # once per kind of failure, not once per event
        self._failing = code
        hint = (" (grant create and patch on events in the local cluster: manifests/rbac.yaml); ServiceExport "
                "conditions are still written") if code == 403 else ""
        log.warning("cannot record Events on ServiceExports: %s%s", detail, hint)
