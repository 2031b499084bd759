"""Workloads: how fast a Deployment in member-2 runs and shows in member-1's import, and what the
simulated Nodes cost.

One 3-replica Deployment behind a Service exported from member-2. Each sample scales it from 0 to 3
and takes two clocks from just before the scale request: until member-2 lists 3 Running pods with
an IP (kube-controller-manager, kube-scheduler and kwok at work), and until member-1's ServiceImport,
read through its aggregator, says ``readyEndpoints: 3`` (plus the endpointslice controller and the
instances). Then it scales to 0 and times the import back to 0 ready endpoints. Polls every 20 ms.

The cost: RSS of member-2's kube-scheduler and kwok, and the CPU they use over a quiet minute
(2 Nodes, kwok renewing each Node Lease every 2 s).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import orjson

from benchmarks.context import EXPORTER, READER, VIEWS, Bench, BenchError
from benchmarks.memory import rss
from benchmarks.report import Section
from benchmarks.stats import Summary, mib, ms

NAMESPACE = "bench-workloads"
REPLICAS = 3
#: The issue's bar for a Deployment to have its pods Running with IPs on a warm cache.
TARGET_RUNNING = 30.0
#: "within a second or two" for the import to follow a scale.
TARGET_IMPORT = 2.0
POLL = 0.02
TIMEOUT = 60.0
IDLE = 60.0


@dataclass(frozen=True)
class WorkloadResult:
    up_seconds: float
    nodes: int
    running: Summary
    imported: Summary
    scaled_down: Summary
    scheduler_rss: int
    kwok_rss: int
    #: CPU seconds per second (a share of one core) over ``IDLE`` seconds, Deployment at 3 replicas.
    scheduler_cpu: float
    kwok_cpu: float


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100  # utime + stime, in USER_HZ (100 on Linux)


async def _until(probe: Callable[[], Awaitable[bool]], what: str, start: float) -> float:
    while time.perf_counter() - start < TIMEOUT:
        if await probe():
            return time.perf_counter() - start
        await asyncio.sleep(POLL)
    raise BenchError(f"timed out after {TIMEOUT:.0f}s waiting for {what}")


def _objects() -> list[tuple[str, dict]]:
    labels = {"app": "web"}
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": NAMESPACE},
        "spec": {"replicas": 0, "selector": {"matchLabels": labels},
                 "template": {"metadata": {"labels": labels},
                              "spec": {"containers": [{"name": "web", "image": "registry.k8s.io/pause:3.10"}]}}},
    }
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": NAMESPACE},
               "spec": {"selector": labels, "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}}
    export = {"apiVersion": "multicluster.x-k8s.io/v1beta1", "kind": "ServiceExport",
              "metadata": {"name": "web", "namespace": NAMESPACE}}
    return [
        (f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments", deployment),
        (f"/api/v1/namespaces/{NAMESPACE}/services", service),
        (f"/apis/multicluster.x-k8s.io/v1beta1/namespaces/{NAMESPACE}/serviceexports", export),
    ]


async def measure(bench: Bench, samples: int, up_seconds: float, nodes: int) -> WorkloadResult:
    exporter, reader = bench.apiserver(EXPORTER), bench.apiserver(READER)
    for base in (exporter, reader):
        await bench.call("POST", base + "/api/v1/namespaces",
                         {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
    for path, body in _objects():
        await bench.call("POST", exporter + path, body)
    scale_url = f"{exporter}/apis/apps/v1/namespaces/{NAMESPACE}/deployments/web/scale"
    pods_url = f"{exporter}/api/v1/namespaces/{NAMESPACE}/pods"
    import_url = f"{reader}{VIEWS}/namespaces/{NAMESPACE}/serviceimports/web"

    async def scale(replicas: int) -> None:
        async with bench.admin.patch(scale_url, data=orjson.dumps({"spec": {"replicas": replicas}}),
                                     headers={"Content-Type": "application/merge-patch+json"}) as resp:
            if resp.status != 200:
                raise BenchError(f"scaling member-2's Deployment: HTTP {resp.status}: {(await resp.read())[:300]!r}")

    async def running(count: int) -> bool:
        pods = (await bench.call("GET", pods_url + "?labelSelector=app%3Dweb"))["items"]
        up = [p for p in pods if p["status"].get("phase") == "Running" and p["status"].get("podIP")]
        return len(up) == len(pods) == count

    async def ready_endpoints(count: int) -> bool:
        found = await bench.call("GET", import_url, ok=(404,))
        clusters = (found or {}).get("status", {}).get("clusters", [])
        return found is not None and sum(c.get("readyEndpoints", 0) for c in clusters) == count

    bench.progress(f"  workloads x{samples}: scale member-2's Deployment 0 -> {REPLICAS} -> 0")
    await _until(lambda: ready_endpoints(0), "member-1 to import web", time.perf_counter())
    run, imported, down = [], [], []
    for _ in range(samples):
        start = time.perf_counter()
        await scale(REPLICAS)
        run.append(await _until(lambda: running(REPLICAS), f"{REPLICAS} Running pods", start))
        imported.append(await _until(lambda: ready_endpoints(REPLICAS), f"{REPLICAS} ready endpoints", start))
        start = time.perf_counter()
        await scale(0)
        down.append(await _until(lambda: ready_endpoints(0), "0 ready endpoints", start))
        await _until(lambda: running(0), "the pods to be gone", time.perf_counter())

    await scale(REPLICAS)
    await _until(lambda: running(REPLICAS), f"{REPLICAS} Running pods", time.perf_counter())
    scheduler, kwok = bench.pid(f"{EXPORTER}/kube-scheduler"), bench.pid(f"{EXPORTER}/kwok")
    bench.progress(f"  workloads: CPU of member-2's kube-scheduler and kwok over {IDLE:.0f}s")
    before = (_cpu_seconds(scheduler), _cpu_seconds(kwok))
    await asyncio.sleep(IDLE)
    after = (_cpu_seconds(scheduler), _cpu_seconds(kwok))
    return WorkloadResult(
        up_seconds=up_seconds, nodes=nodes, running=Summary.of(run), imported=Summary.of(imported),
        scaled_down=Summary.of(down), scheduler_rss=rss(scheduler), kwok_rss=rss(kwok),
        scheduler_cpu=(after[0] - before[0]) / IDLE, kwok_cpu=(after[1] - before[1]) / IDLE,
    )


def section(result: WorkloadResult) -> Section:
    table = Section("Workloads: a Deployment in member-2, its import in member-1",
                    ["what", "samples", "p50 / p99", "target", "met"])
    table.rows.append(["`local up` (3 members, " + f"{result.nodes} Nodes each)", "1",
                       f"{result.up_seconds:.1f} s", "", ""])
    for what, summary, target in (
        (f"scale 0 -> {REPLICAS}: {REPLICAS} pods Running with an IP", result.running, TARGET_RUNNING),
        (f"scale 0 -> {REPLICAS}: member-1's import has {REPLICAS} ready endpoints", result.imported, TARGET_IMPORT),
        (f"scale {REPLICAS} -> 0: member-1's import has 0 ready endpoints", result.scaled_down, TARGET_IMPORT),
    ):
        table.rows.append([what, str(summary.count), f"{ms(summary.p50)} / {ms(summary.p99)}",
                           f"p99 <= {target:.0f} s",
                           table.check(what, f"p99 {ms(summary.p99)}", f"<= {target:.0f} s", summary.p99 <= target)])
    table.notes.append(
        f"Cost of the simulated Nodes, per member (member-2, {result.nodes} Nodes, {REPLICAS} pods): "
        f"kube-scheduler RSS {mib(result.scheduler_rss)}, {100 * result.scheduler_cpu:.1f}% of a core; "
        f"kwok RSS {mib(result.kwok_rss)}, {100 * result.kwok_cpu:.1f}% of a core (over {IDLE:.0f} s).")
    return table
