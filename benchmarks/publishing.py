"""Publishing cost: ``python3 -m benchmarks.publishing [--exports 1000,10000] [--samples 30]``.

A run of its own, on a local ClusterSet brought up with ``--publish`` (publishing adds load, so the
main benchmarks run without it), that rewrites the "Publishing" part of BENCHMARKS.md between its
markers (kept by the main run, which rewrites only what follows its own marker):

* **latency**: a Service with a 3-endpoint EndpointSlice in member-2 is exported; the clock runs
  from just before the export's POST until member-1's watches deliver the upstream ServiceImport
  and then its MCS EndpointSlice (ADDED);
* **writes per change**: member-1's kube-apiserver counts the writes (``apiserver_request_total``,
  verbs POST/PATCH/APPLY/DELETE on serviceimports and endpointslices; nothing else writes those
  there) for an export's arrival, a scale-up of its endpoints and its unexport;
* **load at N exports**: member-2 exports N Services (no endpoints); the writes and reads member-1's
  kube-apiserver served for publishing them, and the writes in a further 90 s of quiet (resyncs
  included: a steady state must write nothing).
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from benchmarks import machine, objects, populate
from benchmarks.context import EXPORTER, READER, Bench, BenchError, own_clusterset
from benchmarks.report import MARKER
from benchmarks.stats import Summary, ms
from mcs_apiserver.logs import Progress

BEGIN, END = "<!-- publishing:begin -->", "<!-- publishing:end -->"
OUTPUT = Path(__file__).resolve().parents[1] / "BENCHMARKS.md"
TARGET_P99 = 0.200
NAMESPACE = "bench-publish"
UPSTREAM = "/apis/multicluster.x-k8s.io/v1beta1"
SLICES = "/apis/discovery.k8s.io/v1"
MCS_SELECTOR = "multicluster.kubernetes.io/service-name"
QUIET = 90.0
_COUNTER = re.compile(r'^apiserver_request_total\{(?P<labels>[^}]*)\} (?P<value>\S+)$')


async def request_counts(bench: Bench) -> dict[tuple[str, str], float]:
    """member-1's kube-apiserver request counts for serviceimports/endpointslices, by (resource, verb)."""
    async with bench.admin.get(bench.apiserver(READER) + "/metrics") as resp:
        text = await resp.text()
    counts: dict[tuple[str, str], float] = {}
    for line in text.splitlines():
        match = _COUNTER.match(line)
        if not match:
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', match["labels"]))
        if labels.get("resource") in ("serviceimports", "endpointslices") and labels.get("group") in (
                "multicluster.x-k8s.io", "discovery.k8s.io"):
            key = (labels["resource"], labels.get("verb", ""))
            counts[key] = counts.get(key, 0.0) + float(match["value"])
    return counts


def writes(before: dict, after: dict, resource: str | None = None) -> int:
    return int(sum(v - before.get(k, 0.0) for k, v in after.items()
                   if k[1] in ("POST", "PATCH", "APPLY", "PUT", "DELETE") and resource in (None, k[0])))


def reads(before: dict, after: dict) -> int:
    return int(sum(v - before.get(k, 0.0) for k, v in after.items() if k[1] in ("GET", "LIST", "WATCH")))


async def _watch(bench: Bench, url: str, params: dict[str, str], queue: asyncio.Queue) -> None:
    async with bench.admin.get(url, params={"watch": "1", **params}, headers={"Accept": "application/json"},
                               timeout=aiohttp.ClientTimeout(total=None, sock_read=None)) as response:
        while line := await response.content.readline():
            if line.strip():
                queue.put_nowait((time.perf_counter(), orjson.loads(line)))


async def _until(queue: asyncio.Queue, kind: str, match, timeout: float = 30.0) -> float:
    deadline = time.monotonic() + timeout
    while True:
        try:
            at, event = await asyncio.wait_for(queue.get(), timeout=max(deadline - time.monotonic(), 0.001))
        except TimeoutError:
            raise BenchError(f"no {kind} event within {timeout:.0f}s") from None
        if event.get("type") == kind and match(event["object"]):
            return at


def _slice(name: str, addresses: list[str]) -> dict[str, Any]:
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": f"{name}-src", "namespace": NAMESPACE,
                         "labels": {"kubernetes.io/service-name": name,
                                    "endpointslice.kubernetes.io/managed-by": "bench.mcs-apiserver"}},
            "addressType": "IPv4", "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
            "endpoints": [{"addresses": [a], "conditions": {"ready": True}} for a in addresses]}


async def latency(bench: Bench, samples: int) -> tuple[Summary, Summary, dict[str, list[int]]]:
    exporter = bench.apiserver(EXPORTER)
    reader = bench.apiserver(READER)
    for member in (READER, EXPORTER):
        await bench.call("POST", bench.apiserver(member) + "/api/v1/namespaces", objects.namespace(NAMESPACE),
                         ok=(409,))
    imports_rv = (await bench.call("GET", f"{reader}{UPSTREAM}/namespaces/{NAMESPACE}/serviceimports"))[
        "metadata"]["resourceVersion"]
    slices_rv = (await bench.call("GET", f"{reader}{SLICES}/namespaces/{NAMESPACE}/endpointslices"))[
        "metadata"]["resourceVersion"]
    imports_q: asyncio.Queue = asyncio.Queue()
    slices_q: asyncio.Queue = asyncio.Queue()
    watchers = [
        asyncio.create_task(_watch(bench, f"{reader}{UPSTREAM}/namespaces/{NAMESPACE}/serviceimports",
                                   {"resourceVersion": imports_rv}, imports_q)),
        asyncio.create_task(_watch(bench, f"{reader}{SLICES}/namespaces/{NAMESPACE}/endpointslices",
                                   {"resourceVersion": slices_rv, "labelSelector": MCS_SELECTOR}, slices_q)),
    ]
    to_import: list[float] = []
    to_slice: list[float] = []
    per_change: dict[str, list[int]] = {"export": [], "scale": [], "unexport": []}
    try:
        for i in range(samples):
            name = f"pub-{i:04d}"
            await bench.call("POST", exporter + objects.services_path(NAMESPACE), objects.service(name, NAMESPACE, 0))
            await bench.call("POST", f"{exporter}{SLICES}/namespaces/{NAMESPACE}/endpointslices",
                             _slice(name, [f"10.2.9.{n}" for n in (1, 2, 3)]))
            await asyncio.sleep(0.1)
            before = await request_counts(bench)
            start = time.perf_counter()
            await bench.call("POST", exporter + objects.exports_path(NAMESPACE), objects.service_export(name, NAMESPACE))
            to_import.append(await _until(imports_q, "ADDED", lambda o: o["metadata"]["name"] == name) - start)
            to_slice.append(await _until(slices_q, "ADDED", lambda o: o["metadata"]["labels"].get(MCS_SELECTOR) == name)
                            - start)
            await asyncio.sleep(1.0)  # the status apply after the create, then quiet
            after = await request_counts(bench)
            per_change["export"].append(writes(before, after))
            before = after
            await bench.call("PUT", f"{exporter}{SLICES}/namespaces/{NAMESPACE}/endpointslices/{name}-src",
                             _slice(name, [f"10.2.9.{n}" for n in (1, 2, 3, 4)]))
            await asyncio.sleep(1.0)
            after = await request_counts(bench)
            per_change["scale"].append(writes(before, after))
            before = after
            await bench.call("DELETE", f"{exporter}{objects.exports_path(NAMESPACE)}/{name}")
            await asyncio.sleep(1.0)
            per_change["unexport"].append(writes(before, await request_counts(bench)))
    finally:
        for task in watchers:
            task.cancel()
    return Summary.of(to_import), Summary.of(to_slice), per_change


async def published(bench: Bench) -> int:
    listing = await bench.call("GET", f"{bench.apiserver(READER)}{UPSTREAM}/serviceimports")
    return sum(1 for item in listing["items"] if item["metadata"]["namespace"] in objects.SPREAD_NAMESPACES)


async def load(bench: Bench, exports: int, have: int) -> dict[str, Any]:
    before = await request_counts(bench)
    await populate.create_services(bench, range(have, exports), 32)
    started = time.perf_counter()  # from the first export on: creating the Services is not publishing
    await populate.create_exports(bench, range(have, exports), 32)
    while await published(bench) < exports:
        if time.perf_counter() - started > 1800:
            raise BenchError(f"member-1 published {await published(bench)} of {exports} ServiceImports")
        await asyncio.sleep(1.0)
    seconds = time.perf_counter() - started
    await asyncio.sleep(3.0)
    settled = await request_counts(bench)
    await asyncio.sleep(QUIET)
    quiet = await request_counts(bench)
    return {"exports": exports, "created": exports - have, "seconds": seconds,
            "writes": writes(before, settled), "reads": reads(before, settled),
            "quiet_writes": writes(settled, quiet), "quiet_reads": reads(settled, quiet)}


def render(to_import: Summary, to_slice: Summary, per_change: dict[str, list[int]], loads: list[dict],
           samples: int) -> str:
    met = to_import.p99 <= TARGET_P99 and to_slice.p99 <= TARGET_P99
    lines = [
        BEGIN,
        "### Publishing (`python3 -m benchmarks.publishing`, a ClusterSet brought up with `--publish`)",
        "",
        *machine.describe(),
        f"- Load average at the end: {machine.load_average()}",
        "",
        "| measure | p50 | p99 | target p99 <= 200 ms |",
        "|---|---|---|---|",
        f"| export in member-2 -> upstream ServiceImport ADDED in member-1 ({samples} samples) | "
        f"{ms(to_import.p50)} | {ms(to_import.p99)} | {'met' if to_import.p99 <= TARGET_P99 else 'NOT met'} |",
        f"| export in member-2 -> its MCS EndpointSlice ADDED in member-1 | {ms(to_slice.p50)} | "
        f"{ms(to_slice.p99)} | {'met' if to_slice.p99 <= TARGET_P99 else 'NOT met'} |",
        "",
        "Writes to member-1's kube-apiserver per change (median of the samples; objects changed: export = "
        "1 ServiceImport + 1 EndpointSlice, scale = both (the slice's endpoints, the import's Ready "
        "message), unexport = both deleted):",
        "",
        "| change | writes (median, min-max) | objects changed |",
        "|---|---|---|",
    ]
    for change, counts in per_change.items():
        ordered = sorted(counts)
        lines.append(f"| {change} | {ordered[len(ordered) // 2]} ({ordered[0]}-{ordered[-1]}) | 2 |")
    lines += ["", "Load on member-1's kube-apiserver while member-2's exports are published (no endpoints, "
              "so ServiceImports only):", "",
              "| exports | created | first export until all published | writes | reads | writes in the next 90 s | "
              "reads in the next 90 s |", "|---|---|---|---|---|---|---|"]
    for row in loads:
        lines.append(f"| {row['exports']:,} | {row['created']:,} | {row['seconds']:.1f} s | {row['writes']:,} | "
                     f"{row['reads']:,} | {row['quiet_writes']:,} | {row['quiet_reads']:,} |")
    lines += ["", f"Latency target {'met' if met else 'NOT met'}. A new ServiceImport costs 2 writes (POST, "
              "then the status subresource: a create ignores status); every later change 1 per changed "
              "object. Reads are the publisher's LIST on winning the Lease and every 60 s resync.", END]
    return "\n".join(lines)


def write(text: str, path: Path = OUTPUT) -> None:
    current = path.read_text()
    if BEGIN in current and END in current:
        head, rest = current.split(BEGIN, 1)
        current = head + text + rest.split(END, 1)[1]
    else:  # first run: above the main run's marker, where its rewrite does not reach
        at = current.find(MARKER)
        current = (current[:at] + text + "\n\n" + current[at:]) if at >= 0 else current + "\n" + text + "\n"
    path.write_text(current)


async def run(sizes: list[int], samples: int) -> str:
    progress = Progress(sys.stderr)
    async with own_clusterset("mcs-apiserver-bench-publish-", progress, members=3, nodes=0, publish=True) as own:
        bench = own.bench
        progress(f"latency and writes per change, {samples} samples")
        to_import, to_slice, per_change = await latency(bench, samples)
        await populate.create_namespaces(bench, [m for m in ("member-1", "member-2", "member-3")])
        loads, have = [], 0
        for size in sizes:
            progress(f"load: {size:,} exports")
            loads.append(await load(bench, size, have))
            have = size
    return render(to_import, to_slice, per_change, loads, samples)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m benchmarks.publishing", description=__doc__.splitlines()[0])
    parser.add_argument("--exports", default="1000,10000", help="export counts for the load figures")
    parser.add_argument("--samples", type=int, default=30, help="latency samples")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.exports.split(",") if s]
    try:
        text = asyncio.run(run(sizes, args.samples))
    except BenchError as error:
        print(f"error: {error}; BENCHMARKS.md left as it was", file=sys.stderr)
        return 1
    write(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
