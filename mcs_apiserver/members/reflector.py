"""List, then watch, one resource of one member cluster, for as long as the process runs.

The same loop as client-go's reflector, on raw JSON: a paginated LIST gives the full state and a
resourceVersion; a WATCH from there (with bookmarks, so the resourceVersion stays fresh while
nothing changes) streams the rest. A 410 Gone means our resourceVersion was compacted away: relist.
Any other failure backs off exponentially (with jitter, capped) and relists; the member layer is
told about every failure and recovery, which is how a member becomes Unreachable and rejoins.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp

from mcs_apiserver.kube.client import ApiError, KubeClient
from mcs_apiserver.kube.types import ObjectEventType

log = logging.getLogger("mcs_apiserver.members")



@dataclass(frozen=True, slots=True)
class MemberSettings:
    """Tuning of the member caches (``serve`` hands it in; tests shorten it)."""

    list_page_size: int = 500
    #: Seconds, like client-go: spread reconnections out.
    watch_timeout_range: tuple[int, int] = (300, 600)
    #: No byte for this long on a watch (kube-apiserver sends a bookmark about every minute) means the
    #: connection is dead even if TCP has not noticed, e.g. behind a silent network partition.
    watch_idle_timeout: float = 150.0
    #: A watch stream cut after serving this long is an ordinary end (watch again at once); cut sooner,
    #: it is a failure that backs off.
    watch_cut_grace: float = 1.0
    backoff_initial: float = 0.2
    #: A member that comes back must rejoin within a few seconds: with jitter (x0.5-1.5) a retry comes at
    #: most 3 s after it is up again, at the cost of one failed connection attempt every ~2 s per watched
    #: resource while it is down (client-go caps at 30 s, for a fleet of kubelets, not a few peers).
    backoff_max: float = 2.0
    #: GETs in flight for the endpoints of newly exported Services, and the delay after a failed one.
    fetch_concurrency: int = 4
    fetch_retry: float = 1.0


@dataclass(frozen=True, slots=True)
class Resource:
    """Where a resource lives: ``/api/v1`` + ``services``, or ``/apis/<g>/<v>`` + plural."""

    prefix: str
    plural: str

    @property
    def path(self) -> str:
        return f"{self.prefix}/{self.plural}"

    def __str__(self) -> str:
        return self.plural


class Handler(Protocol):
    """Receives a reflector's output. Called from the event loop, never concurrently."""

    def prepare(self, objects: list[dict[str, Any]]) -> list[Any]:
        """What is kept of one listed page (trimmed entries), until the list's last page: a list of
        10,000 objects, held whole, would leave its peak behind in the allocator's pools."""

    def replace_prepared(self, prepared: list[Any]) -> None:
        """The full current state, after a (re)list: the pages' prepared entries."""

    def apply(self, event_type: ObjectEventType, obj: dict[str, Any]) -> None:
        """One ADDED / MODIFIED / DELETED watch event."""


class Expired(Exception):
    """Our resourceVersion is too old for the server (410 Gone): relist."""


class Reflector:
    def __init__(
        self,
        client: KubeClient,
        resource: Resource,
        handler: Handler,
        *,
        on_healthy: Callable[[], None],
        on_failure: Callable[[str, bool], None],
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        settings: MemberSettings = MemberSettings(),
    ) -> None:
        self.client = client
        self.settings = settings
        self.resource = resource
        self.handler = handler
        self._on_healthy = on_healthy
        self._on_failure = on_failure
        self._sleep = sleep
        self.synced = False
        self.resource_version = ""
        self.last_event = 0.0

    async def run(self) -> None:
        """Forever: list, watch until the watch ends or fails, and again."""
        backoff = self.settings.backoff_initial
        while True:
            try:
                await self._list()
                backoff = self.settings.backoff_initial
                while True:
                    await self._watch()
            except asyncio.CancelledError:
                raise
            except Expired:
                log.info("resourceVersion expired, relisting", extra={"resource": str(self.resource)})
                continue
            except ApiError as error:
                # 403/404 mean we are connected but may not (or cannot yet) read this resource: the
                # member is reachable, its state is incomplete. 5xx/429 are the server's trouble.
                connection_lost = error.code >= 500 or error.code == 429
                self._on_failure(f"{self.resource}: {error.message}", connection_lost)
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError, ValueError) as error:
                self._on_failure(f"{self.resource}: {_describe(error)}", True)
            await self._sleep(backoff * (0.5 + random.random()))
            backoff = min(backoff * 2, self.settings.backoff_max)

    async def _list(self) -> None:
        objects: list[Any] = []  # the pages' prepared entries
        params: dict[str, str] = {"limit": str(self.settings.list_page_size)}
        while True:
            try:
                page = await self.client.get(self.resource.path, params=params, timeout=60)
            except ApiError as error:
                if error.code == 410 and "continue" in params:
                    # The snapshot our continue token pointed at was compacted: start over.
                    params = {"limit": str(self.settings.list_page_size)}
                    objects = []
                    continue
                raise
            if not isinstance(page, dict):
                raise ValueError(f"the list of {self.resource} is not a JSON object")
            items = page.get("items") or []
            objects.extend(self.handler.prepare(
                [o for o in (items if isinstance(items, list) else []) if self._well_formed(o)]))
            meta = page.get("metadata") if isinstance(page.get("metadata"), dict) else {}
            token = meta.get("continue")
            if not token or not isinstance(token, str):
                break
            params = {"limit": str(self.settings.list_page_size), "continue": token}
        rv = meta.get("resourceVersion", "")
        self.resource_version = rv if isinstance(rv, str) else ""
        self.handler.replace_prepared(objects)
        self.synced = True
        self.last_event = time.time()
        self._on_healthy()

    async def _watch(self) -> None:
        low, high = self.settings.watch_timeout_range
        timeout = random.randint(low, high)
        params = {
            "resourceVersion": self.resource_version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(timeout),
        }
        stream = self.client.watch(self.resource.path, params, timeout=timeout + 30,
                                   idle_timeout=self.settings.watch_idle_timeout)
        opened = time.monotonic()
        try:
            await self._consume(stream)
        except aiohttp.ClientPayloadError as error:
            # A stream cut mid-chunk (a proxy or the server closing a long watch, a restart) after
            # it served for a while is an ordinary end of a watch, as client-go treats an unexpected
            # EOF: watch again from the last resourceVersion, nothing is lost. One cut at once is a
            # failure, so a server that always breaks its streams still backs off and is reported.
            if time.monotonic() - opened < self.settings.watch_cut_grace:
                raise
            log.debug("watch stream cut, watching again",
                      extra={"resource": str(self.resource), "reason": _describe(error)})

    async def _consume(self, stream: AsyncIterator[Any]) -> None:
        async for event in stream:
            if not isinstance(event, dict) or not isinstance(event.get("object"), dict):
                raise ValueError(f"a watch event of {self.resource} is not an object with an object")
            event_type = event.get("type")
            obj = event["object"]
            if event_type == "ERROR":
                code = obj.get("code")
                if code == 410:
                    raise Expired()
                raise ApiError(code if isinstance(code, int) and 400 <= code < 600 else 500, obj)
            metadata = obj.get("metadata")
            rv = metadata.get("resourceVersion") if isinstance(metadata, dict) else None
            if rv and isinstance(rv, str):
                self.resource_version = rv
            self.last_event = time.time()
            if event_type in ("ADDED", "MODIFIED", "DELETED") and self._well_formed(obj):
                self.handler.apply(event_type, obj)

    def _well_formed(self, obj: Any) -> bool:
        """Whether ``obj`` has the shape every consumer relies on: an object whose metadata is an
        object with a string name (and namespace), whose spec and status are objects if present.
        Anything else (a CRD without a schema can store it) is skipped with a warning,
        rather than crashing the caches, the views or the webhooks that read them."""
        if isinstance(obj, dict):
            metadata = obj.get("metadata")
            if (isinstance(metadata, dict) and isinstance(metadata.get("name"), str)
                    and isinstance(metadata.get("namespace", ""), str)
                    and isinstance(metadata.get("annotations") or {}, dict)
                    and isinstance(metadata.get("labels") or {}, dict)
                    and isinstance(obj.get("spec") or {}, dict) and isinstance(obj.get("status") or {}, dict)):
                return True
        name = obj.get("metadata", {}).get("name") if isinstance(obj, dict) and isinstance(
            obj.get("metadata"), dict) else None
        log.warning("ignoring a malformed object", extra={"resource": str(self.resource), "object": str(name)})
        return False


def _describe(error: BaseException) -> str:
    if isinstance(error, asyncio.TimeoutError):
        return "timed out"
    text = str(error) or type(error).__name__
    return text
