"""A small expiring cache with single-flight fetches, for TokenReview and SubjectAccessReview answers.

Both reviews are a round trip to kube-apiserver that a request waits for; kube-apiserver's own
delegating authenticator and authorizer cache them for 10 seconds, and so do we. Single flight
matters as much as the cache: a benchmark (or an informer resync) opens hundreds of identical LIST
and WATCH requests at once, and they must cause one review, not hundreds.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

__all__ = ["ExpiringCache"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class ExpiringCache(Generic[K, V]):
    """Values kept ``ttl`` seconds, at most ``max_entries`` of them; failed fetches are not kept.

    All entries live equally long, so the oldest insertion is also the first to expire: when full,
    dropping the oldest (dicts keep insertion order) is both LRU-like and O(1).
    """

    def __init__(
        self, ttl: float, max_entries: int, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self.ttl = ttl
        self.max_entries = max_entries
        self._clock = clock
        self._entries: dict[K, tuple[float, V]] = {}
        self._inflight: dict[K, asyncio.Future[V]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    async def get(self, key: K, fetch: Callable[[], Awaitable[V]]) -> V:
        """The cached value of ``key``, or the result of ``fetch()`` (shared with concurrent callers).

        ``fetch`` runs in its own task: a caller that goes away (client disconnected) does not
        cancel it for the others. Its exception reaches every waiting caller and is not cached.
        """
        entry = self._entries.get(key)
        if entry is not None:
            if entry[0] > self._clock():
                return entry[1]
            del self._entries[key]
        future = self._inflight.get(key)
        if future is None:
            future = asyncio.ensure_future(fetch())
            self._inflight[key] = future
            future.add_done_callback(lambda done: self._settle(key, done))
        return await asyncio.shield(future)

    def _settle(self, key: K, done: asyncio.Future[V]) -> None:
        if self._inflight.get(key) is done:
            del self._inflight[key]
        if done.cancelled() or done.exception() is not None:  # also marks the exception as seen
            return
        if len(self._entries) >= self.max_entries:
            del self._entries[next(iter(self._entries))]
        self._entries[key] = (self._clock() + self.ttl, done.result())
