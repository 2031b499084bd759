"""Creating the benchmark objects fast, and waiting until member-1 serves them.

Creation runs ``concurrency`` requests in flight on the admin client (keep-alive): 20,000 sequential
creates would take longer than all the measurements together. A request kube-apiserver sheds under
that load (429 from API Priority and Fairness, 5xx while busy) is retried with a back-off; 409 means
the object is already there, which is what we wanted.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from benchmarks import objects
from benchmarks.context import (
    EXPORTER,
    EXPORTS,
    READER,
    VIEWS,
    Bench,
    BenchError,
    RequestFailed,
)
from benchmarks.report import Section

RETRIED = (429, 500, 503, 504)
ATTEMPTS = 8


async def _create(bench: Bench, url: str, body: dict[str, Any]) -> None:
    for attempt in range(ATTEMPTS):
        try:
            await bench.call("POST", url, body, ok=(409,))
            return
        except RequestFailed as error:
            if error.status not in RETRIED or attempt == ATTEMPTS - 1:
                raise
        await asyncio.sleep(0.05 * 2**attempt)


async def create_many(bench: Bench, requests: Iterable[tuple[str, dict[str, Any]]], concurrency: int) -> float:
    """POST every (url, body), ``concurrency`` at a time; returns the wall-clock seconds."""
    start = time.perf_counter()
    queue = list(requests)
    position = 0

    async def worker() -> None:
        nonlocal position
        while position < len(queue):
            url, body = queue[position]
            position += 1
            await _create(bench, url, body)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - start


async def create_namespaces(bench: Bench, members: Iterable[str]) -> None:
    """Every benchmark namespace in every member: an import is only served where its namespace exists."""
    await create_many(bench, (
        (bench.apiserver(member) + "/api/v1/namespaces", objects.namespace(name))
        for member in members for name in objects.ALL_NAMESPACES), concurrency=8)


async def create_services(bench: Bench, indexes: range, concurrency: int) -> float:
    base = bench.apiserver(EXPORTER)
    return await create_many(bench, (
        (base + objects.services_path(objects.spread_namespace(i)),
         objects.service(objects.service_name(i), objects.spread_namespace(i), i))
        for i in indexes), concurrency)


async def create_exports(bench: Bench, indexes: range, concurrency: int) -> float:
    base = bench.apiserver(EXPORTER)
    return await create_many(bench, (
        (base + objects.exports_path(objects.spread_namespace(i)),
         objects.service_export(objects.service_name(i), objects.spread_namespace(i)))
        for i in indexes), concurrency)


async def served_imports(bench: Bench) -> int:
    """How many of the spread namespaces' ServiceImports member-1 serves through its aggregator."""
    listing = await bench.call("GET", bench.apiserver(READER) + VIEWS + "/serviceimports")
    return sum(1 for item in listing["items"] if item["metadata"]["namespace"] in objects.SPREAD_NAMESPACES)


async def wait_served(bench: Bench, count: int, timeout: float = 600.0) -> float:
    """Poll member-1's aggregated LIST until it serves ``count`` imports; returns the seconds waited."""
    start = time.perf_counter()
    served = -1
    while True:
        try:
            served = await served_imports(bench)
        except BenchError as error:  # e.g. 503 while the aggregator marks the APIService unavailable
            bench.progress(f"  waiting for member-1's imports: {error}")
        if served == count:
            return time.perf_counter() - start
        if time.perf_counter() - start > timeout:
            raise BenchError(f"member-1 serves {served} of {count} ServiceImports after {timeout:.0f}s")
        await asyncio.sleep(1.0)


#: member-2's exports count as settled when none of them changed for this long.
QUIET = 3.0


async def _exports_state(bench: Bench) -> tuple[int, int]:
    """(exports in the spread namespaces that carry status conditions, newest resourceVersion)."""
    listing = await bench.call("GET", bench.apiserver(EXPORTER) + EXPORTS + "/serviceexports")
    items = [i for i in listing["items"] if i["metadata"]["namespace"] in objects.SPREAD_NAMESPACES]
    with_status = sum(1 for i in items if (i.get("status") or {}).get("conditions"))
    return with_status, max((int(i["metadata"]["resourceVersion"]) for i in items), default=0)


async def wait_settled(bench: Bench, count: int, timeout: float = 900.0) -> float:
    """Wait until member-2's instance has written the status conditions of every export and no
    export changed for ``QUIET`` seconds; returns the seconds waited.

    Each status write is a MODIFIED event that every instance recomputes: measuring before they end
    would measure the write storm. An instance that writes no status (no conditions at all once
    quiet) is accepted as settled too.
    """
    start = time.perf_counter()
    last_change, newest, with_status = start, -1, 0
    while True:
        with_status, rv = await _exports_state(bench)
        now = time.perf_counter()
        if rv != newest:
            newest, last_change = rv, now
        elif now - last_change >= QUIET and with_status in (0, count):
            return last_change - start
        if now - start > timeout:
            raise BenchError(f"member-2's exports still change after {timeout:.0f}s "
                             f"({with_status} of {count} have status conditions)")
        await asyncio.sleep(1.0)


@dataclass(frozen=True)
class SetupResult:
    """How long one round's setup took: not a benchmark, but it says what the load was."""

    exports: int
    created: int
    services_seconds: float
    exports_seconds: float
    served_seconds: float
    settled_seconds: float


def section(results: list[SetupResult], concurrency: int) -> Section:
    table = Section(
        "Setup (for context: creating the objects in member-2)",
        ["exports in total", "created this round", "Services: time (rate)", "ServiceExports: time (rate)",
         "then until member-1 served them all", "then until their status conditions settled"],
    )
    for r in results:
        table.rows.append([
            f"{r.exports:,}", f"{r.created:,}",
            f"{r.services_seconds:.1f} s ({r.created / r.services_seconds:,.0f}/s)",
            f"{r.exports_seconds:.1f} s ({r.created / r.exports_seconds:,.0f}/s)",
            f"{r.served_seconds:.1f} s", f"{r.settled_seconds:.1f} s",
        ])
    table.notes.append(f"{concurrency} creates in flight. ServiceExport creates go through member-2's "
                       "mutating and validating webhooks. Member-1 serving them is polled (aggregated LIST) "
                       "once a second; then the benchmarks wait until member-2's instance has written "
                       "every export's status conditions (each write is an event that all instances "
                       "process) and nothing changed for 3 s: the time to the last change is shown.")
    return table
