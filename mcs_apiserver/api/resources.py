"""GET, LIST and WATCH of ``serviceimports`` and ``clustersets``, exactly as kube-apiserver answers them.

Every response is built from the bytes each stored object serialized once: a LIST of 10,000 objects
is a join, not 10,000 encodings. Tables and PartialObjectMetadata are derived per request (kubectl
and the metadata client); every error is a ``Status``; every write verb is 405.
"""

from __future__ import annotations

import asyncio
import gzip
import bisect
import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import orjson
from aiohttp import web

from mcs_apiserver.api import negotiation, tables
from mcs_apiserver.kube import status
from mcs_apiserver.api.continuetoken import decode_continue, encode_continue
from mcs_apiserver.api.discovery import ResourceInfo, resource_info
from mcs_apiserver.api.negotiation import IncludeObject, Negotiated, Target
from mcs_apiserver.kube.requestinfo import ListOptions, RequestInfo, info_of
from mcs_apiserver.kube.selectors import COMMON_FIELDS, Fields, compile_selectors
from mcs_apiserver.kube.status import StatusError
from mcs_apiserver.api.store import Event, Store, Stored, TooLarge, TooOld, Watcher
from mcs_apiserver.contract import API_VERSION, GROUP, VERSION

log = logging.getLogger("mcs_apiserver.api")

PREFIX = f"/apis/{GROUP}/{VERSION}"


def _spec_type(obj: Mapping[str, Any]) -> str:
    type_: str = (obj.get("spec") or {}).get("type", "")
    return type_


#: The field selector labels each resource supports, and how to read them from an object (the
#: store's ``Stored.selectable`` holds what they read: a new one must be added there too).
SUPPORTED_FIELDS: Final[dict[str, Fields]] = {
    "serviceimports": {**COMMON_FIELDS, "spec.type": _spec_type},
    "clustersets": COMMON_FIELDS,
}
JSON = "application/json"
#: kube-apiserver closes a watch without timeoutSeconds after a random 30-60 minutes.
DEFAULT_WATCH_SECONDS = (1800, 3600)
INITIAL_EVENTS_END = "k8s.io/initial-events-end"
WRITE_VERBS = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}


@dataclass
class Served:
    """The stores the HTTP layer serves from, by plural resource name."""

    stores: dict[str, Store]

    def store(self, info: ResourceInfo) -> Store:
        return self.stores[info.name]


@dataclass(frozen=True, slots=True)
class Target_:
    """What a request path names."""

    info: ResourceInfo
    namespace: str | None  # None: all namespaces (or cluster-scoped)
    name: str | None


def target_of(info: RequestInfo) -> Target_:
    """The object or collection a request under the group-version prefix names, or 404."""
    resource = resource_info(info.resource) if info.resource_request else None
    if resource is None or info.subresource or info.verb == "proxy":
        raise StatusError(status.not_found())
    namespace = info.namespace or None
    if namespace is not None and not resource.namespaced:
        raise StatusError(status.not_found())
    name = None if info.name_from_selector else info.name or None
    if name is not None and resource.namespaced and namespace is None:
        raise StatusError(status.not_found())
    return Target_(resource, namespace, name)


def _parse_rv(raw: str | None) -> int | None:
    """A resourceVersion from a client: None for unset/"0"; 400 if not a version of ours."""
    if raw in (None, "", "0"):
        return None
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if value < 0:
        raise StatusError(status.bad_request(f"invalid resource version: {raw!r}"))
    return value


@dataclass(frozen=True, slots=True)
class ApiSettings:
    """Tuning of the resource handler (``serve`` hands it in; tests shorten it)."""

    #: Seconds between BOOKMARK events of an idle watch that asked for them (kube-apiserver: ~1 min).
    bookmark_interval: float = 60.0
    #: kube-apiserver gzips responses above 128 KiB, at level 1, when the client accepts it (client-go
    #: does): on a real network a 10,000-object list shrinks ~10x for a few ms of CPU.
    gzip_threshold: int = 128 * 1024
    gzip_level: int = 1


def _accepts_gzip(request: web.Request) -> bool:
    for coding in request.headers.get("Accept-Encoding", "").split(","):
        name, _, params = coding.strip().partition(";")
        if name.strip().lower() == "gzip":
            return params.replace(" ", "") not in ("q=0", "q=0.0")
    return False


async def compress(request: web.Request, response: web.Response, settings: ApiSettings) -> web.Response:
    """Gzip a large body the client accepts gzipped, in a thread (zlib releases the GIL), so that
    compressing a big list never stalls the event loop for the watches and webhooks it also serves."""
    body = response.body
    if not isinstance(body, bytes) or len(body) <= settings.gzip_threshold or not _accepts_gzip(request):
        return response
    compressed = await asyncio.to_thread(gzip.compress, body, settings.gzip_level, mtime=0)
    response.body = compressed
    response.headers["Content-Encoding"] = "gzip"
    response.headers["Vary"] = "Accept-Encoding"
    return response


class ResourceHandler:
    def __init__(self, served: Served, *, settings: ApiSettings = ApiSettings(),
                 clock: Callable[[], float] = time.time) -> None:
        self.served = served
        self.settings = settings
        self.clock = clock

    async def __call__(self, request: web.Request) -> web.StreamResponse:
        info = info_of(request)
        target = target_of(info)
        if request.method in WRITE_VERBS:
            verb = WRITE_VERBS[request.method]
            if verb == "delete" and target.name is None:
                verb = "deletecollection"
            raise StatusError(status.method_not_allowed(target.info.name, verb, group=GROUP))
        if request.method not in ("GET", "HEAD"):
            raise StatusError(status.method_not_allowed(target.info.name, request.method.lower(), group=GROUP))
        if info.options_error:
            raise StatusError(status.bad_request(info.options_error))
        if info.verb == "watch":
            return await self.watch(request, target, info.options)
        if target.name is not None:
            return self.get(request, target)
        return await compress(request, self.list(request, target, info.options), self.settings)

    # --- get ------------------------------------------------------------------------------------

    def get(self, request: web.Request, target: Target_) -> web.Response:
        chosen = negotiation.negotiate(request.headers.get("Accept"), negotiation.GET)
        store = self.served.store(target.info)
        stored = store.get((target.namespace or "", target.name or ""))
        if stored is None:
            raise StatusError(status.not_found(target.info.name, target.name or "", group=GROUP))
        if chosen.target is Target.TABLE:
            include = negotiation.parse_include_object(request.query.get("includeObject"))
            body = orjson.dumps(tables.table_for(
                target.info.kind, [stored.obj], self.clock(), include, api_version=chosen.api_version,
                resource_version=str(stored.rv)))
        elif chosen.target is Target.PARTIAL_OBJECT_METADATA:
            body = tables.partial_object_metadata_head(chosen.api_version) + stored.metadata_json + b"}"
        else:
            body = stored.json
        return web.Response(body=body, content_type=JSON)

    # --- list -----------------------------------------------------------------------------------

    def list(self, request: web.Request, target: Target_, options: ListOptions) -> web.Response:
        chosen = negotiation.negotiate(request.headers.get("Accept"), negotiation.LIST)
        predicate, labels, fields = compile_selectors(options.label_selector, options.field_terms, SUPPORTED_FIELDS[target.info.name])
        limit = max(options.limit, 0)
        store = self.served.store(target.info)
        match = options.resource_version_match
        raw_rv = options.resource_version
        requested = _parse_rv(raw_rv)
        if match not in ("", "NotOlderThan", "Exact"):
            raise StatusError(status.invalid_params(
                "resourceVersionMatch", match, "must be one of NotOlderThan, Exact"))
        token = options.continue_token
        if match and raw_rv in (None, ""):
            raise StatusError(status.invalid_params(
                "resourceVersionMatch", match, "resourceVersionMatch is forbidden unless resourceVersion is provided"))
        if match and token:
            raise StatusError(status.invalid_params(
                "resourceVersionMatch", match, "resourceVersionMatch is forbidden when continue is provided"))
        if match == "Exact" and raw_rv == "0":
            raise StatusError(status.invalid_params(
                "resourceVersionMatch", match, 'resourceVersionMatch "exact" is forbidden for resourceVersion "0"'))

        after: tuple[str, str] | None = None
        if token:
            decoded = decode_continue(token)
            if raw_rv not in (None, "", "0"):
                raise StatusError(status.bad_request("specifying resource version is not allowed when using continue"))
            try:
                list_rv = int(decoded.resource_version)
            except ValueError:
                raise StatusError(status.bad_request("invalid continue token: invalid resourceVersion")) from None
            snapshot = store.snapshot(list_rv)
            if snapshot is None:
                raise StatusError(status.continue_expired())
            after = _split_key(decoded.last_key)
        else:
            list_rv = store.resource_version
            if requested is not None:
                if requested > list_rv:
                    raise StatusError(status.too_large_resource_version(requested, list_rv))
                if match == "Exact" and requested != list_rv:
                    snapshot = store.snapshot(requested)
                    if snapshot is None:
                        raise StatusError(status.too_old_resource_version(requested, list_rv))
                    list_rv = requested
            snapshot = store.snapshot(list_rv)
            assert snapshot is not None

        _, items = snapshot
        start, end = store.key_range(items, target.namespace)
        pinned = fields.exact("metadata.name")
        selected: list[Stored] = []
        next_key: tuple[str, str] | None = None
        remaining: int | None = None
        if after is not None:
            start = max(start, bisect.bisect_right(items, after, lo=start, hi=end, key=lambda s: s.key))
        if labels.empty and fields.empty:
            # Nothing to filter: the page is a slice, and what is left is known without looking.
            stop = min(end, start + limit) if limit else end
            selected = items[start:stop]
            if stop < end:
                next_key = selected[-1].key if selected else None
                remaining = end - stop
        else:
            # With selectors, remainingItemCount is unknown and left unset, as kube-apiserver does.
            for index in range(start, end):
                stored = items[index]
                if pinned is not None and stored.key[1] != pinned:
                    continue
                if not predicate(stored.selectable):
                    continue
                if limit and len(selected) >= limit:
                    next_key = selected[-1].key
                    break
                selected.append(stored)
        continue_token = encode_continue(str(list_rv), _join_key(next_key)) if next_key else None
        return web.Response(body=self._list_body(target.info, chosen, request, selected, list_rv,
                                                 continue_token, remaining if continue_token else None),
                            content_type=JSON)

    def _list_body(self, info: ResourceInfo, chosen: Negotiated, request: web.Request, items: list[Stored],
                   rv: int, continue_token: str | None, remaining: int | None) -> bytes:
        if chosen.target is Target.TABLE:
            include = negotiation.parse_include_object(request.query.get("includeObject"))
            return orjson.dumps(tables.table_for(
                # One object parsed at a time and dropped once its row is made: a list of them all
                # would keep the garbage collector walking them (2.5 times the time at 10,000).
                info.kind, (s.obj for s in items), self.clock(), include, api_version=chosen.api_version,
                resource_version=str(rv), continue_token=continue_token, remaining_item_count=remaining))
        meta: dict[str, Any] = {"resourceVersion": str(rv)}
        if continue_token:
            meta["continue"] = continue_token
            if remaining is not None:
                meta["remainingItemCount"] = remaining
        if chosen.target is Target.PARTIAL_OBJECT_METADATA_LIST:
            head = b'{"kind":"PartialObjectMetadataList","apiVersion":"' + chosen.api_version.encode() + b'","metadata":'
            item_prefix = tables.partial_object_metadata_head(chosen.api_version)
            body = b",".join(item_prefix + s.metadata_json + b"}" for s in items)
            return head + orjson.dumps(meta) + b',"items":[' + body + b"]}"
        head = (b'{"kind":"' + info.list_kind.encode() + b'","apiVersion":"' + API_VERSION.encode()
                + b'","metadata":')
        parts = [head, orjson.dumps(meta), b',"items":[']
        for stored in items:
            parts += stored.pieces
            parts.append(b",")
        if items:
            parts.pop()
        parts.append(b"]}")
        return b"".join(parts)

    # --- watch ----------------------------------------------------------------------------------

    async def watch(self, request: web.Request, target: Target_, options: ListOptions) -> web.StreamResponse:
        query = request.query
        chosen = negotiation.negotiate(request.headers.get("Accept"), negotiation.WATCH)
        predicate, _, fields = compile_selectors(options.label_selector, options.field_terms, SUPPORTED_FIELDS[target.info.name])
        store = self.served.store(target.info)
        bookmarks = options.allow_watch_bookmarks
        send_initial = bool(options.send_initial_events)
        match = options.resource_version_match
        raw_rv = options.resource_version
        if options.send_initial_events is not None:
            if match != "NotOlderThan":
                raise StatusError(status.invalid_params(
                    "resourceVersionMatch", match,
                    "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan"))
            if send_initial and not bookmarks:
                raise StatusError(status.invalid_params(
                    "allowWatchBookmarks", query.get("allowWatchBookmarks", ""),
                    "sendInitialEvents requires setting allowWatchBookmarks to true"))
        elif match:
            raise StatusError(status.invalid_params(
                "resourceVersionMatch", match, "resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided"))
        timeout = options.timeout_seconds
        if not timeout:
            # Unset or 0: kube-apiserver picks its own (randomized) timeout; 0 is not "end now".
            timeout = random.randint(*DEFAULT_WATCH_SECONDS)
        # Negative: kube-apiserver's timer fires at once, and the watch ends after what it has queued.
        include = negotiation.parse_include_object(query.get("includeObject"))

        key = (target.namespace or "", target.name) if target.name else None
        pinned = fields.exact("metadata.name")
        if key is None and pinned is not None and (target.namespace is not None or not target.info.namespaced):
            key = (target.namespace or "", pinned)
        requested = _parse_rv(raw_rv)
        legacy_initial = options.send_initial_events is None and requested is None
        if send_initial:
            since = None
            if requested is not None and requested > store.resource_version:
                raise StatusError(status.too_large_resource_version(requested, store.resource_version))
        elif legacy_initial:
            since = None
        else:
            since = requested if requested is not None else store.resource_version
        writer = _EventWriter(target.info.kind, chosen, include, self.clock)
        failure: dict[str, Any] | None = None
        watcher: Watcher | None = None
        head = b""
        try:
            watcher, backlog = store.watch(target.namespace, predicate, since=since, key=key)
        except TooOld as error:
            # kube-apiserver answers an expired watch with 200 and one ERROR event.
            failure = status.too_old_resource_version(error.requested, error.oldest)
        except TooLarge as error:
            failure = status.too_large_resource_version(error.requested, error.current)
        else:
            # The initial state is taken in the same event-loop step as the registration: a change
            # applied while the response is being prepared then reaches the watcher exactly once,
            # after the state it changes, and the initial-events-end bookmark covers no event that
            # is still to come.
            if since is None and (send_initial or legacy_initial):
                head = b"".join(writer.event("ADDED", s) for s in store.initial_events(watcher))
                if send_initial:
                    head += writer.bookmark(store.resource_version, initial_events_end=True)
            if backlog:
                head += b"".join(writer.event(e.type, e.stored) for e in backlog)

        response = web.StreamResponse(headers={"Content-Type": JSON, "Cache-Control": "no-cache, private"})
        response.enable_chunked_encoding()
        try:
            await response.prepare(request)
            if failure is not None:
                await response.write(writer.error(failure))
                return response
            assert watcher is not None
            deadline = asyncio.get_running_loop().time() + timeout
            if head:
                await response.write(head)
            await self._stream(response, watcher, writer, store, deadline, bookmarks)
        except ConnectionResetError:
            pass
        finally:
            if watcher is not None:
                store.unwatch(watcher)
        return response

    async def _stream(self, response: web.StreamResponse, watcher: Watcher, writer: "_EventWriter",
                      store: Store, deadline: float, bookmarks: bool) -> None:
        loop = asyncio.get_running_loop()
        next_bookmark = loop.time() + self.settings.bookmark_interval * (0.5 + random.random() / 2)
        while True:
            now = loop.time()
            if now >= deadline:
                # Events queued while the last chunk was written go out before the final bookmark:
                # a bookmark tells the client it has seen everything up to its version.
                batch, closed = watcher.take()
                if batch:
                    await response.write(b"".join(writer.event(e.type, e.stored) for e in batch))
                if bookmarks and not closed:
                    await response.write(writer.bookmark(store.resource_version))
                return
            if not await watcher.wait(min(deadline, next_bookmark) if bookmarks else deadline):
                if bookmarks and loop.time() >= next_bookmark:
                    await response.write(writer.bookmark(store.resource_version))
                    next_bookmark = loop.time() + self.settings.bookmark_interval
                continue
            batch, closed = watcher.take()
            if batch:
                await response.write(b"".join(writer.event(e.type, e.stored) for e in batch))
            if closed:
                return  # server shutdown, or the watcher fell too far behind: the client rewatches


class _EventWriter:
    """Encodes watch events in the representation the client negotiated."""

    def __init__(self, kind: str, chosen: Negotiated, include: IncludeObject, clock: Callable[[], float]) -> None:
        self.kind = kind
        self.chosen = chosen
        self.include = include
        self.clock = clock
        self.first_table = True

    def _line(self, event_type: bytes, obj: bytes) -> bytes:
        return b'{"type":"' + event_type + b'","object":' + obj + b"}\n"

    def event(self, event_type: str, stored: Stored) -> bytes:
        target = self.chosen.target
        if target is Target.TABLE:
            table = tables.table_for_event(self.kind, stored.obj, self.clock(), self.include,
                                           with_column_definitions=self.first_table,
                                           api_version=self.chosen.api_version)
            self.first_table = False
            return self._line(event_type.encode(), orjson.dumps(table))
        if target is Target.PARTIAL_OBJECT_METADATA:
            obj = tables.partial_object_metadata_head(self.chosen.api_version) + stored.metadata_json + b"}"
            return self._line(event_type.encode(), obj)
        return self._line(event_type.encode(), stored.json)

    def bookmark(self, rv: int, *, initial_events_end: bool = False) -> bytes:
        meta: dict[str, Any] = {"resourceVersion": str(rv)}
        if initial_events_end:
            meta["annotations"] = {INITIAL_EVENTS_END: "true"}
        target = self.chosen.target
        if target is Target.TABLE:
            obj = tables.bookmark_table(str(rv), self.chosen.api_version)
            obj["metadata"] = meta
        elif target is Target.PARTIAL_OBJECT_METADATA:
            obj = tables.partial_object_metadata({"metadata": meta}, self.chosen.api_version)
        else:
            obj = {"kind": self.kind, "apiVersion": API_VERSION, "metadata": meta}
        return self._line(b"BOOKMARK", orjson.dumps(obj))

    def error(self, error_status: dict[str, Any]) -> bytes:
        return self._line(b"ERROR", orjson.dumps(error_status))


def _join_key(key: tuple[str, str] | None) -> str:
    return "" if key is None else f"{key[0]}/{key[1]}"


def _split_key(text: str) -> tuple[str, str]:
    namespace, _, name = text.rpartition("/")
    return namespace, name
