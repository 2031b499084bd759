"""Start to ready: restart member-1's instance with the N exports present.

Two clocks, both from just before the process is started: until its ``/readyz`` answers 200 (every
member listed, views computed: what a readiness probe waits for), and until member-1's kube-apiserver
serves all N ServiceImports through the aggregator again (what a user waits for).
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aiohttp

from benchmarks.context import READER, Bench, BenchError
from benchmarks.populate import served_imports
from benchmarks.report import Section
from benchmarks.stats import ms
from mcs_apiserver.local import cluster

COMPONENT = "mcs-apiserver"
TIMEOUT = 300.0


@dataclass(frozen=True)
class StartupResult:
    exports: int
    ready: list[float]
    serving: list[float]


async def _until(probe: Callable[[], Awaitable[bool]], what: str, start: float, interval: float) -> float:
    """Seconds from ``start`` until ``probe()`` is true; errors while it comes up count as not yet."""
    while True:
        try:
            if await probe():
                return time.perf_counter() - start
        except (aiohttp.ClientError, BenchError, OSError):
            pass
        if time.perf_counter() - start > TIMEOUT:
            raise BenchError(f"timed out after {TIMEOUT:.0f}s waiting for {what}")
        await asyncio.sleep(interval)


async def restart(bench: Bench, exports: int) -> tuple[float, float]:
    """Stop member-1's instance, start it, and time it; returns (to ready, to serving everything)."""
    await asyncio.to_thread(cluster.stop_member, bench.state_dir, READER, COMPONENT)
    readyz = bench.instance(READER) + "/readyz"

    async def ready() -> bool:
        async with bench.webhook.get(readyz, timeout=aiohttp.ClientTimeout(total=2)) as response:
            await response.read()
            return response.status == 200

    async def serving() -> bool:
        return await served_imports(bench) == exports

    start = time.perf_counter()
    await cluster.start_member(bench.state_dir, READER, COMPONENT)
    to_ready = await _until(ready, "member-1's instance to be ready", start, interval=0.02)
    to_serving = await _until(serving, "member-1 to serve every ServiceImport again", start, interval=0.1)
    return to_ready, to_serving


async def measure(bench: Bench, exports: int, restarts: int) -> StartupResult:
    bench.progress(f"  start to ready x{restarts}: restarting member-1's instance")
    ready, serving = [], []
    for _ in range(restarts):
        to_ready, to_serving = await restart(bench, exports)
        bench.progress(f"    ready after {to_ready:.2f}s, serving everything after {to_serving:.2f}s")
        ready.append(to_ready)
        serving.append(to_serving)
    return StartupResult(exports, ready, serving)


def _series(values: list[float]) -> str:
    every = ", ".join(f"{v:.2f}" for v in values)
    return f"{ms(statistics.median(values))} ({every} s)"


def section(results: list[StartupResult]) -> Section:
    table = Section(
        "Start to ready (member-1's instance restarted)",
        ["exports present", "restarts", "to /readyz 200: median (each)",
         "to the full LIST through the aggregator: median (each)"],
    )
    for r in results:
        table.rows.append([f"{r.exports:,}", str(len(r.ready)), _series(r.ready), _series(r.serving)])
    table.notes.append("From just before the process is started (Python start-up and imports included) "
                       "to the first 200; `/readyz` is polled every 20 ms, the LIST every 100 ms.")
    return table
