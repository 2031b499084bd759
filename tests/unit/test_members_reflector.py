"""The reflector: malformed objects and events from a member never crash it, and retries stay short."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from mcs_apiserver.kube.client import ApiError
from mcs_apiserver.members.reflector import MemberSettings, Reflector, Resource

GOOD = {"metadata": {"name": "web", "namespace": "demo", "resourceVersion": "7"}, "spec": {}}


class Sink:
    def __init__(self) -> None:
        self.replaced: list[list[dict[str, Any]]] = []
        self.applied: list[tuple[str, dict[str, Any]]] = []

    def prepare(self, objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return objects  # kept whole: what the reflector hands over is what is recorded

    def replace_prepared(self, objects: list[dict[str, Any]]) -> None:
        self.replaced.append(objects)

    def apply(self, event_type: str, obj: dict[str, Any]) -> None:
        self.applied.append((event_type, obj))


class Client:
    """Lists ``items`` then streams ``events``; then fails every call (a member gone)."""

    def __init__(self, items: list[Any], events: list[Any], *, failures: int = 0) -> None:
        self.items, self.events, self.failures = items, events, failures
        self.lists = 0

    async def get(self, path: str, params: dict[str, str], timeout: float) -> Any:
        if self.failures:
            self.failures -= 1
            raise ApiError(503, {"message": "unavailable"})
        self.lists += 1
        return {"metadata": {"resourceVersion": "5"}, "items": self.items}

    def watch(self, path: str, params: dict[str, str], *, timeout: float, idle_timeout: float) -> AsyncIterator[Any]:
        events = self.events

        async def stream() -> AsyncIterator[Any]:
            for event in events:
                yield event
            await asyncio.Event().wait()  # an open watch with nothing more to say

        return stream()


async def run_until(reflector: Reflector, condition: Any) -> None:
    task = asyncio.create_task(reflector.run())
    try:
        async with asyncio.timeout(10):
            while not condition():
                await asyncio.sleep(0)
                if task.done():
                    task.result()
    finally:
        task.cancel()


@pytest.mark.parametrize("bad", [
    {"metadata": [1]}, {"spec": {}}, {"metadata": {"name": 5}}, {"metadata": {"name": "x", "annotations": ["a"]}},
    {"metadata": {"name": "x"}, "spec": [{}]}, {"metadata": {"name": "x", "namespace": {}}},
])
async def test_a_malformed_object_is_skipped_and_the_rest_is_served(bad: Any) -> None:
    sink, failures = Sink(), []
    events = [{"type": "ADDED", "object": bad}, {"type": "MODIFIED", "object": GOOD}]
    reflector = Reflector(Client([bad, GOOD], events), Resource("/apis/x/v1", "things"), sink,  # type: ignore[arg-type]
                          on_healthy=lambda: None, on_failure=lambda m, lost: failures.append(m))
    await run_until(reflector, lambda: sink.applied)
    assert sink.replaced == [[GOOD]]
    assert sink.applied == [("MODIFIED", GOOD)]
    assert reflector.resource_version == "7" and not failures


@pytest.mark.parametrize("bad_event", [[1], "x", {"type": "ADDED", "object": "x"}, {"type": "ERROR", "object": {"code": "x"}}])
async def test_a_malformed_watch_event_is_a_failure_that_relists_not_a_crash(bad_event: Any) -> None:
    sink, failures, sleeps = Sink(), [], []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        await asyncio.sleep(0)

    client = Client([GOOD], [bad_event])
    reflector = Reflector(client, Resource("/apis/x/v1", "things"), sink,  # type: ignore[arg-type]
                          on_healthy=lambda: None, on_failure=lambda m, lost: failures.append(m), sleep=sleep)
    await run_until(reflector, lambda: client.lists >= 3)
    assert failures and all(f.startswith("things:") for f in failures)


async def test_a_member_that_comes_back_is_retried_within_a_few_seconds(monkeypatch: pytest.MonkeyPatch) -> None:
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        await asyncio.sleep(0)

    client = Client([GOOD], [], failures=40)  # down for 40 attempts, then back
    reflector = Reflector(client, Resource("/apis/x/v1", "things"), Sink(),  # type: ignore[arg-type]
                          on_healthy=lambda: None, on_failure=lambda m, lost: None, sleep=sleep)
    await run_until(reflector, lambda: client.lists == 1)
    assert len(sleeps) == 40
    settings = MemberSettings()
    assert max(sleeps) <= settings.backoff_max * 1.5 <= 3.0  # the longest wait after it is back
    assert settings.backoff_initial < settings.backoff_max


class CutClient(Client):
    """Streams ``events``, then cuts the stream mid-chunk, as a closed connection does."""

    def __init__(self, items: list[Any], events: list[Any], *, serve_for: float) -> None:
        super().__init__(items, events)
        self.serve_for = serve_for
        self.watches = 0

    def watch(self, path: str, params: dict[str, str], *, timeout: float, idle_timeout: float) -> AsyncIterator[Any]:
        self.watches += 1
        events, serve_for = self.events, self.serve_for

        async def stream() -> AsyncIterator[Any]:
            for event in events:
                yield event
            await asyncio.sleep(serve_for)
            raise aiohttp.ClientPayloadError("Response payload is not completed: TransferEncodingError")

        return stream()


async def test_a_watch_cut_after_serving_a_while_is_watched_again_without_a_failure_or_a_relist() -> None:
    sink, failures = Sink(), []
    client = CutClient([GOOD], [{"type": "MODIFIED", "object": GOOD}], serve_for=0.05)
    reflector = Reflector(client, Resource("/apis/x/v1", "things"), sink,  # type: ignore[arg-type]
                          settings=MemberSettings(watch_cut_grace=0.01),
                          on_healthy=lambda: None, on_failure=lambda m, lost: failures.append(m))
    await run_until(reflector, lambda: client.watches >= 3)
    assert failures == [] and client.lists == 1


async def test_a_watch_cut_at_once_is_a_failure_that_backs_off_and_relists() -> None:
    sink, failures = Sink(), []
    client = CutClient([GOOD], [], serve_for=0)
    reflector = Reflector(client, Resource("/apis/x/v1", "things"), sink,  # type: ignore[arg-type]
                          settings=MemberSettings(watch_cut_grace=5, backoff_initial=0.001, backoff_max=0.001),
                          on_healthy=lambda: None, on_failure=lambda m, lost: failures.append(m))
    await run_until(reflector, lambda: client.lists >= 2)
    assert failures and "TransferEncodingError" in failures[0]
