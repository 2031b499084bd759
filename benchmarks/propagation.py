"""Propagation: a ServiceExport created (deleted) in member-2 until member-1's watch says ADDED (DELETED).

The watch is what a controller in member-1 would open: through member-1's kube-apiserver, on one
namespace, from the resourceVersion of a LIST. The clock starts just before the create (delete)
request is written and stops when the event's line arrives; it covers member-2's admission webhooks,
its write to etcd, its watch to all three instances, member-1's view engine, its watch fan-out and
the aggregator's proxying of the stream. The Services are created beforehand, so each sample is one
export alone.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

from benchmarks import objects
from benchmarks.context import EXPORTER, READER, VIEWS, Bench, BenchError
from benchmarks.populate import create_many
from benchmarks.report import Section
from benchmarks.stats import Summary, ms

TARGET_P99 = 0.100
EVENT_TIMEOUT = 30.0
#: A pause between samples, so that each export propagates on its own rather than in a batch.
PAUSE = 0.05

Arrival = tuple[float, dict[str, Any]]


@dataclass(frozen=True)
class PropagationResult:
    exports: int
    added: Summary
    deleted: Summary


def _name(i: int) -> str:
    return f"prop-{i:04d}"


async def _read_events(response: aiohttp.ClientResponse, arrivals: asyncio.Queue[Arrival]) -> None:
    while line := await response.content.readline():
        if line.strip():
            arrivals.put_nowait((time.perf_counter(), orjson.loads(line)))


async def _arrival(arrivals: asyncio.Queue[Arrival], kind: str, name: str) -> float:
    """When the ``kind`` event for ``name`` arrived; other events (MODIFIED, ...) are skipped."""
    deadline = time.monotonic() + EVENT_TIMEOUT
    while True:
        remaining = deadline - time.monotonic()
        try:
            at, event = await asyncio.wait_for(arrivals.get(), timeout=max(remaining, 0.001))
        except TimeoutError:
            raise BenchError(f"no {kind} event for {name} on member-1 within {EVENT_TIMEOUT:.0f}s") from None
        if event.get("type") == "ERROR":
            raise BenchError(f"member-1's watch failed: {event.get('object')}")
        if event.get("type") == kind and event["object"]["metadata"]["name"] == name:
            return at


async def measure(bench: Bench, exports: int, samples: int) -> PropagationResult:
    ns = objects.PROPAGATION_NAMESPACE
    exporter = bench.apiserver(EXPORTER) + objects.exports_path(ns)
    await create_many(bench, (
        (bench.apiserver(EXPORTER) + objects.services_path(ns), objects.service(_name(i), ns, i))
        for i in range(samples)), concurrency=8)
    imports = f"{bench.apiserver(READER)}{VIEWS}/namespaces/{ns}/serviceimports"
    rv = (await bench.call("GET", imports))["metadata"]["resourceVersion"]
    bench.progress(f"  propagation x{samples}: create in member-2 -> ADDED on member-1, delete -> DELETED")
    added: list[float] = []
    deleted: list[float] = []
    arrivals: asyncio.Queue[Arrival] = asyncio.Queue()
    async with bench.admin.get(imports, params={"watch": "1", "resourceVersion": rv},
                               headers={"Accept": "application/json"},
                               timeout=aiohttp.ClientTimeout(total=None, sock_read=None)) as response:
        if response.status != 200:
            raise BenchError(f"watch on member-1: HTTP {response.status}: {(await response.read())[:300]!r}")
        reader = asyncio.create_task(_read_events(response, arrivals))
        try:
            for i in range(samples):
                name = _name(i)
                start = time.perf_counter()
                await bench.call("POST", exporter, objects.service_export(name, ns))
                added.append(await _arrival(arrivals, "ADDED", name) - start)
                await asyncio.sleep(PAUSE)
                start = time.perf_counter()
                await bench.call("DELETE", f"{exporter}/{name}")
                deleted.append(await _arrival(arrivals, "DELETED", name) - start)
                await asyncio.sleep(PAUSE)
        finally:
            reader.cancel()
    return PropagationResult(exports, Summary.of(added), Summary.of(deleted))


def section(results: list[PropagationResult]) -> Section:
    table = Section(
        "Propagation: export in member-2 until the watch event on member-1",
        ["exports present", "samples", "create -> ADDED p50 / p99", "delete -> DELETED p50 / p99",
         f"target p99 <= {ms(TARGET_P99)}"],
    )
    for result in results:
        table.rows.append([
            f"{result.exports:,}", str(result.added.count),
            f"{ms(result.added.p50)} / {ms(result.added.p99)}",
            f"{ms(result.deleted.p50)} / {ms(result.deleted.p99)}",
            table.check(f"propagation, {result.exports:,} exports",
                        f"p99 {ms(result.added.p99)} (ADDED), {ms(result.deleted.p99)} (DELETED)",
                        f"p99 <= {ms(TARGET_P99)}", max(result.added.p99, result.deleted.p99) <= TARGET_P99),
        ])
    table.notes.append("The clock includes member-2's own create (admission webhooks, etcd) as a client "
                       "sees it; the target applies to both columns.")
    return table
