"""The served state: current objects with resourceVersions, list snapshots, and watch fan-out.

Nothing is persisted: the view engine hands over what changed, the store stamps each change with a
resourceVersion from one counter (shared by both resources, like etcd's revision), keeps a bounded
history for watches that resume, a few immutable snapshots for paginated lists, and pushes every
event to the matching watchers.

resourceVersions start at the process' start time in microseconds, so a version handed out by an
earlier incarnation (or by another replica) is always older than anything this one knows, and the
client is told 410 Expired and relists, exactly as after an etcd compaction.

Every object's JSON is serialized once, when it changes, and reused by every list, get and watch.
It is the only form kept: an object costs its JSON and a small record here, and what thousands of
objects repeat in it (their conditions: the same reasons and messages, stamped in the same second)
is one shared copy, the JSON being kept in two parts (``Stored.own``, ``Stored.shared``). What needs the object
itself (tables, PartialObjectMetadata) parses the JSON again (a few microseconds for a ServiceImport);
selectors read a small stand-in made from the record (``Stored.selectable``), and a watch or list
without selectors reads nothing.
"""

from __future__ import annotations

import asyncio
import bisect
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from mcs_apiserver.kube.selectors import MATCH_ALL
from mcs_apiserver.kube.types import ObjectEventType

Key = tuple[str, str]  # (namespace, name); namespace "" for cluster-scoped objects
Predicate = Callable[[Mapping[str, Any]], bool]



@dataclass(frozen=True, slots=True)
class StoreSettings:
    """How much a store keeps for watches and paginated lists (``serve`` hands these in)."""

    #: Events kept for watches that resume from a resourceVersion (older ones answer 410 Expired).
    history_events: int = 20_000
    #: List snapshots kept for ``continue`` tokens (an older token answers 410 Expired).
    snapshots_kept: int = 8
    #: Events queued for one watch before it is ended as stuck (its client relists).
    watch_queue_limit: int = 50_000


class Versioner:
    """The one resourceVersion counter of this process."""

    def __init__(self, start: int | None = None) -> None:
        self.origin = start if start is not None else int(time.time() * 1_000_000)
        self.current = self.origin

    def next(self) -> int:
        self.current += 1
        return self.current


@dataclass(slots=True, eq=False)
class Stored:
    """One served object at one resourceVersion: its JSON (stamped with the version) in pieces, what
    selectors read of it besides its key (its labels and ``spec.type``: the objects' own, shared,
    never copied), and the JSON of its metadata once something asked for it."""

    key: Key
    rv: int
    #: the JSON is ``own`` followed by ``end``: (when it has conditions) the JSON from its
    #: conditions on, shared with every object that ends the same way (else None)
    own: bytes
    end: SharedEnd | None
    labels: Mapping[str, str] | None = None
    spec_type: str | None = None
    _metadata_json: bytes | None = None

    @classmethod
    def of(cls, key: Key, obj: Mapping[str, Any], rv: int) -> Stored:
        """``obj`` (not mutated: it may be shared) stamped with ``rv`` and serialized."""
        return cls(key, rv, *_split(orjson.dumps(_with_rv(obj, rv)), obj), (obj.get("metadata") or {}).get("labels"),
                   (obj.get("spec") or {}).get("type"))

    @property
    def pieces(self) -> tuple[bytes, ...]:
        """The object's JSON as the pieces it is kept in, to be joined (a LIST joins all its objects'
        pieces at once)."""
        end = self.end
        return (self.own,) if end is None else (self.own, end.conditions, end.tail)

    @property
    def json(self) -> bytes:
        """The object's JSON (without a shared end, ``own`` itself, not a copy)."""
        end = self.end
        return self.own if end is None else b"".join(self.pieces)

    @property
    def selectable(self) -> dict[str, Any]:
        """What label and field selectors read (``api/resources.py``: ``SUPPORTED_FIELDS``), made
        without parsing the JSON: name, namespace, labels and ``spec.type``."""
        metadata: dict[str, Any] = {"name": self.key[1]}
        if self.key[0]:
            metadata["namespace"] = self.key[0]
        if self.labels is not None:
            metadata["labels"] = self.labels
        return {"metadata": metadata, "spec": {"type": self.spec_type} if self.spec_type is not None else {}}

    @property
    def obj(self) -> dict[str, Any]:
        """A fresh copy of the object, parsed from its JSON, except its conditions, which are parsed
        once per shared end and shared (read-only): its own part is parsed with ``null`` in their
        place, a third less to parse for every row of a Table."""
        end = self.end
        if end is None:
            return orjson.loads(self.own)  # type: ignore[no-any-return]
        obj = orjson.loads(b"".join((self.own, b"null", end.tail)))
        status = obj.get("status")
        if isinstance(status, dict) and "conditions" in status and status["conditions"] is None:
            status["conditions"] = end.parsed()
            return obj  # type: ignore[no-any-return]
        return orjson.loads(self.json)  # type: ignore[no-any-return] # the end's bytes were elsewhere

    def at(self, rv: int) -> Stored:
        """The same object stamped with another version (a tombstone, a watcher's DELETED)."""
        return Stored.of(self.key, self.obj, rv)

    def holds(self, obj: Mapping[str, Any]) -> bool:
        """Whether ``obj`` is what is stored (the same JSON once stamped with this version)."""
        return orjson.dumps(_with_rv(obj, self.rv)) == self.json

    @property
    def metadata_json(self) -> bytes:
        if self._metadata_json is None:
            self._metadata_json = _exact(orjson.dumps(self.obj["metadata"]))
        return self._metadata_json


@dataclass(slots=True)
class Event:
    type: ObjectEventType
    rv: int
    stored: Stored  # the new state (the last state, stamped with the deletion's version, for DELETED)
    previous: Stored | None
    _left: Stored | None = None  # cache of left(): shared by every watcher the change drops

    def left(self) -> Stored:
        """What a watcher whose selection this change leaves receives as DELETED: the previous state
        stamped with this event's version (kube-apiserver's cacheWatcher does the same), encoded once."""
        if self._left is None:
            before = self.previous if self.previous is not None else self.stored
            self._left = before.at(self.rv)
        return self._left


class Watcher:
    """One open watch: a namespace filter, a predicate, and the events not yet sent.

    The events wait in a plain list with one future for the handler to wait on, not an
    ``asyncio.Queue`` (four deques and an event, some 3 KiB) woken through ``asyncio.wait_for``
    (a task per wait): a thousand idle watches are a thousand of these."""

    __slots__ = ("namespace", "queue_limit", "predicate", "key", "pending", "waiter", "overflowed")

    def __init__(self, namespace: str | None, predicate: Predicate, key: Key | None = None, *,
                 queue_limit: int) -> None:
        self.namespace = namespace
        self.queue_limit = queue_limit
        self.predicate = predicate
        self.key = key
        self.pending: list[Event | None] = []  # None: the watch is closed after what precedes it
        self.waiter: asyncio.Future[None] | None = None
        self.overflowed = False

    def matches(self, stored: Stored | None) -> bool:
        if stored is None:
            return False
        if self.namespace is not None and stored.key[0] != self.namespace:
            return False
        if self.key is not None and stored.key != self.key:
            return False
        return self.predicate is MATCH_ALL or self.predicate(stored.selectable)

    def translate(self, event: Event) -> Event | None:
        """An event as this watcher sees it: leaving the selection is a DELETED, entering an ADDED."""
        was = self.matches(event.previous)
        now = event.type != "DELETED" and self.matches(event.stored)
        if event.type == "DELETED":
            return event if was else None
        if was and now:
            return event
        if now:
            return Event("ADDED", event.rv, event.stored, event.previous)
        if was:
            return Event("DELETED", event.rv, event.left(), event.previous)
        return None

    def offer(self, event: Event) -> None:
        if self.overflowed:
            return
        if len(self.pending) >= self.queue_limit:
            # A consumer this far behind is stuck: end its watch (it relists), as the watch cache does.
            self.overflowed = True
            self._put(None)
            return
        self._put(event)

    def close(self) -> None:
        self._put(None)

    def _put(self, event: Event | None) -> None:
        self.pending.append(event)
        if self.waiter is not None:
            _wake(self.waiter)

    async def wait(self, until: float) -> bool:
        """Wait until something is pending or the loop's clock reaches ``until``; whether something is."""
        if self.pending:
            return True
        loop = asyncio.get_running_loop()
        waiter = self.waiter = loop.create_future()
        timer = loop.call_at(until, _wake, waiter)
        try:
            await waiter
        finally:
            timer.cancel()
            self.waiter = None
        return bool(self.pending)

    def take(self) -> tuple[list[Event], bool]:
        """The pending events, and whether the watch was closed after them."""
        pending, self.pending = self.pending, []
        if None in pending:
            return pending[: pending.index(None)], True  # type: ignore[return-value]  # no None before it
        return pending, False  # type: ignore[return-value]


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class TooOld(Exception):
    """The history no longer reaches back to ``requested``; ``oldest`` is the oldest version a watch
    can still start from (what kube-apiserver's watch cache names in its message)."""

    def __init__(self, requested: int, oldest: int) -> None:
        super().__init__(f"too old resource version: {requested} ({oldest})")
        self.requested = requested
        self.oldest = oldest


class TooLarge(Exception):
    """``requested`` is newer than any version this process handed out (e.g. from a replica that
    started later): kube-apiserver answers ``Too large resource version`` (504), and clients relist."""

    def __init__(self, requested: int, current: int) -> None:
        super().__init__(f"Too large resource version: {requested}, current: {current}")
        self.requested = requested
        self.current = current


class Store:
    """The objects of one resource."""

    def __init__(self, resource: str, versioner: Versioner, settings: StoreSettings = StoreSettings()) -> None:
        self.resource = resource
        self.settings = settings
        self.versioner = versioner
        self.objects: dict[Key, Stored] = {}
        self._keys: list[Key] = []  # sorted: a namespace's objects are one contiguous run
        self._history: deque[Event] = deque(maxlen=settings.history_events)
        # Events newer than this are all in the history (the version before the oldest kept one).
        self._history_floor = versioner.current
        self._last_change = versioner.current
        # version -> (items, version of the first change after it, or None while still current)
        self._snapshots: OrderedDict[int, tuple[list[Stored], int | None]] = OrderedDict()
        self._watchers: set[Watcher] = set()

    # --- writes (from the view updater) ---------------------------------------------------------

    def apply(self, changes: Mapping[Key, dict[str, Any] | None]) -> list[Event]:
        """Apply new states (None = deleted) in key order; returns the events, already fanned out."""
        events: list[Event] = []
        for key in sorted(changes):
            new = changes[key]
            previous = self.objects.get(key)
            if new is None:
                if previous is None:
                    continue
                rv = self.versioner.next()
                self._remove_key(key)
                del self.objects[key]
                tombstone = previous.at(rv)
                events.append(Event("DELETED", rv, tombstone, previous))
                continue
            rv = self.versioner.next()
            stored = Stored.of(key, new, rv)
            if previous is None:
                bisect.insort(self._keys, key)
            self.objects[key] = stored
            events.append(Event("MODIFIED" if previous else "ADDED", rv, stored, previous))
        if events:
            latest = self._snapshots.get(self._last_change)
            if latest is not None and latest[1] is None:
                self._snapshots[self._last_change] = (latest[0], events[0].rv)
            self._last_change = events[-1].rv
            for event in events:
                if len(self._history) == self._history.maxlen:
                    self._history_floor = self._history[0].rv
                self._history.append(event)
            for watcher in list(self._watchers):
                for event in events:
                    seen = watcher.translate(event)
                    if seen is not None:
                        watcher.offer(seen)
        return events

    def _remove_key(self, key: Key) -> None:
        index = bisect.bisect_left(self._keys, key)
        if index < len(self._keys) and self._keys[index] == key:
            del self._keys[index]

    # --- reads ----------------------------------------------------------------------------------

    @property
    def resource_version(self) -> int:
        """The list resourceVersion: the process-wide current version (like etcd's revision)."""
        return self.versioner.current

    def get(self, key: Key) -> Stored | None:
        return self.objects.get(key)

    def snapshot(self, at: int | None = None) -> tuple[int, list[Stored]] | None:
        """All objects in key order as of version ``at`` (default: now), or None if that state is
        no longer kept. Snapshots are immutable lists, so a paginated list stays consistent."""
        if at is None or at >= self._last_change:
            current = self._snapshots.get(self._last_change)
            if current is None or current[1] is not None:
                items = [self.objects[k] for k in self._keys]
                self._snapshots[self._last_change] = (items, None)
                while len(self._snapshots) > self.settings.snapshots_kept:
                    self._snapshots.popitem(last=False)
            return self._last_change, self._snapshots[self._last_change][0]
        for version, (items, valid_until) in reversed(self._snapshots.items()):
            if version <= at and (valid_until is None or at < valid_until):
                # Least recently used goes first: a list being paginated keeps its snapshot alive.
                self._snapshots.move_to_end(version)
                return version, items
        return None

    def key_range(self, items: list[Stored], namespace: str | None) -> tuple[int, int]:
        """The [start, end) slice of a snapshot holding one namespace (or everything)."""
        if namespace is None:
            return 0, len(items)
        start = bisect.bisect_left(items, (namespace, ""), key=lambda s: s.key)
        end = bisect.bisect_left(items, (namespace + "\x00", ""), key=lambda s: s.key)
        return start, end

    # --- watches --------------------------------------------------------------------------------

    def watch(self, namespace: str | None, predicate: Predicate, *, since: int | None,
              key: Key | None = None) -> tuple[Watcher, list[Event]]:
        """Register a watcher. With ``since``, also return the history after it (raises TooOld if
        the history no longer reaches back that far, TooLarge if ``since`` is newer than anything this
        process knows); without, the caller sends initial state (``initial_events``, in the same
        event-loop step, so that no change falls between the two)."""
        watcher = Watcher(namespace, predicate, key, queue_limit=self.settings.watch_queue_limit)
        backlog: list[Event] = []
        if since is not None:
            if since > self.versioner.current:
                raise TooLarge(since, self.versioner.current)
            if since < self._history_floor:
                raise TooOld(since, self._history_floor)
            for event in self._history:
                if event.rv > since:
                    seen = watcher.translate(event)
                    if seen is not None:
                        backlog.append(seen)
        self._watchers.add(watcher)
        return watcher, backlog

    def unwatch(self, watcher: Watcher) -> None:
        self._watchers.discard(watcher)

    def close_watchers(self) -> None:
        for watcher in list(self._watchers):
            watcher.close()
        self._watchers.clear()

    def initial_events(self, watcher: Watcher) -> list[Stored]:
        """The current objects a new watch should see as synthetic ADDED events."""
        if watcher.key is not None:
            stored = self.objects.get(watcher.key)
            return [stored] if watcher.matches(stored) else []
        _, items = self.snapshot()  # type: ignore[misc]
        start, end = self.key_range(items, watcher.namespace)
        if watcher.predicate is MATCH_ALL:
            return items[start:end]
        return [s for s in items[start:end] if watcher.predicate(s.selectable)]


#: Ends of JSON that many served objects repeat, one copy each. Bounded: when full it starts over,
#: which costs sharing, never correctness (an object's parts always join to its JSON).
_ENDS: dict[tuple[bytes, bytes], SharedEnd] = {}
_ENDS_LIMIT = 10_000


@dataclass(slots=True, eq=False)
class SharedEnd:
    """The end of many objects' JSON: their conditions, and what follows them (``}}``)."""

    conditions: bytes
    tail: bytes
    _parsed: list[Any] | None = None

    def parsed(self) -> list[Any]:
        """The conditions, parsed once (read-only: every object ending this way shares them)."""
        if self._parsed is None:
            self._parsed = orjson.loads(self.conditions)
        return self._parsed


def _split(data: bytes, obj: Mapping[str, Any]) -> tuple[bytes, SharedEnd | None]:
    """``data``, the JSON of ``obj``, as its own part and a shared end (its conditions and what
    follows them): the conditions of a ServiceImport are a third of its JSON, and most are equal to
    many others' (the engine shares equal condition lists too). No shared end without conditions."""
    status = obj.get("status")
    conditions = status.get("conditions") if isinstance(status, dict) else None
    if conditions:
        fragment = orjson.dumps(conditions)
        at = data.rfind(fragment)
        if at >= 0:
            end = (fragment, data[at + len(fragment):])
            found = _ENDS.get(end)
            if found is None:
                if len(_ENDS) >= _ENDS_LIMIT:
                    _ENDS.clear()
                found = _ENDS[end] = SharedEnd(_exact(fragment), end[1])  # a slice is an exact copy already
            return data[:at], found
    return _exact(data), None


def _exact(data: bytes) -> bytes:
    """A copy of ``data`` that takes only its length: what orjson returns keeps the whole buffer it
    was written in (an object of 900 bytes holds 4 KiB of memory, a bigger one 8 KiB), which a cache
    of every served object would pay for in full. The buffer is freed at once and reused by the next
    serialization; the copy costs 0.2 us."""
    return memoryview(data).tobytes()


def _with_rv(obj: Mapping[str, Any], rv: int) -> dict[str, Any]:
    """A copy of ``obj`` whose metadata carries ``rv`` (``obj`` is shared with the engine: never mutated)."""
    meta = dict(obj.get("metadata") or {})
    meta["resourceVersion"] = str(rv)
    copy = dict(obj)
    copy["metadata"] = meta
    return copy
