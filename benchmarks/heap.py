"""``python3 -m benchmarks.heap``: where an instance's memory per export goes, without a cluster.

One process, no network: N Services and N ServiceExports, shaped like kube-apiserver's JSON
(``managedFields`` and all), go through the real member cache handlers of a remote member, then the
updater runs the view engine and fills the stores, as in ``serve`` (with ``--dns``, also the DNS zone,
as in the instances of ``local up``, which serve DNS; ``--listed`` also reads every ServiceImport's
JSON, as a LIST does: the stores keep only the JSON, from the start, so that changes nothing now and
is kept for comparing with commits whose stores serialized on the first read). Reported per export: the growth
of the process's RSS, and of the Python heap (tracemalloc), broken down by the module that allocated
what is still held. It isolates the caches and views from what the end-to-end memory benchmark
(``python3 -m benchmarks --only memory``) also counts (connections, the event loop, other load), so
that a change to the caches can be measured in seconds, before and after, on the same machine.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import subprocess
import sys
import tracemalloc
from pathlib import Path
from typing import Any

import orjson

from mcs_apiserver.api.store import Store, Versioner
from mcs_apiserver.dns.feed import DnsFeed
from mcs_apiserver.dns.zone import Zone
from mcs_apiserver.members.member import MemberCache
from mcs_apiserver.updater import ViewUpdater
from mcs_apiserver.views.engine import ViewEngine

ROOT = str(Path(__file__).resolve().parent.parent) + os.sep


def _rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def _parsed(obj: dict[str, Any]) -> dict[str, Any]:
    """A fresh copy with strings of its own, as each watch event's JSON gives."""
    return orjson.loads(orjson.dumps(obj))


def service(i: int) -> dict[str, Any]:
    ip = f"10.96.{i // 250}.{i % 250 + 1}"
    return _parsed({
        "kind": "Service", "apiVersion": "v1",
        "metadata": {"name": f"svc-{i:05d}", "namespace": "bench", "uid": f"00000000-0000-0000-0000-{i:012d}",
                     "resourceVersion": str(1000 + i), "creationTimestamp": "2026-01-01T00:00:00Z",
                     "labels": {"app": "bench"},
                     "managedFields": [{"manager": "kubectl", "operation": "Update", "apiVersion": "v1",
                                        "time": "2026-01-01T00:00:00Z", "fieldsType": "FieldsV1",
                                        "fieldsV1": {"f:spec": {"f:ports": {}}}}]},
        "spec": {"type": "ClusterIP", "clusterIP": ip, "clusterIPs": [ip], "ipFamilies": ["IPv4"],
                 "ipFamilyPolicy": "SingleStack", "selector": {"app": "bench"},
                 "ports": [{"name": "http", "protocol": "TCP", "port": 80, "targetPort": 8080}],
                 "sessionAffinity": "None", "internalTrafficPolicy": "Cluster"},
        "status": {"loadBalancer": {}},
    })


def service_export(i: int) -> dict[str, Any]:
    return _parsed({
        "kind": "ServiceExport", "apiVersion": "multicluster.x-k8s.io/v1alpha1",
        "metadata": {"name": f"svc-{i:05d}", "namespace": "bench", "uid": f"11111111-0000-0000-0000-{i:012d}",
                     "resourceVersion": str(50000 + i), "generation": 1, "creationTimestamp": "2026-01-01T00:00:00Z",
                     "annotations": {"views.multicluster.x-k8s.io/exported-at": f"2026-01-01T00:00:00.{i:06d}Z"}},
        "spec": {},
        "status": {"conditions": [{"type": "Valid", "status": "True", "reason": "Valid", "message": "exported",
                                   "lastTransitionTime": "2026-01-01T00:00:00Z"}]},
    })


def _namespace(name: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "uid": f"uid-{name}", "creationTimestamp": "2026-01-01T00:00:00Z"},
            "status": {"phase": "Active"}}


def _property(name: str, value: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "creationTimestamp": "2026-01-01T00:00:00Z"}, "spec": {"value": value}}


async def measure(exports: int, *, trace: bool, dns: bool = False,
                  listed: bool = False) -> tuple[int, int, list[tuple[str, int]], int]:
    """(RSS growth, heap growth, heap growth by module, ServiceImports served) for ``exports``.

    With ``trace`` the heap is traced (tracemalloc's own bookkeeping then inflates the RSS, so the RSS
    is measured in a run of its own, without it)."""
    versioner = Versioner()
    imports, clustersets = Store("serviceimports", versioner), Store("clustersets", versioner)
    engine = ViewEngine("member-1")
    members: dict[str, MemberCache] = {}
    updater = ViewUpdater(engine, members, imports, clustersets)
    if dns:
        updater.listeners.append(DnsFeed(Zone(), engine, members))
    handlers: dict[str, dict[str, Any]] = {}
    for name in ("member-1", "member-2"):
        cache = members[name] = MemberCache(name, None, updater, local=name == "member-1")  # type: ignore[arg-type]
        handlers[name] = {str(r.resource): r.handler for r in cache.reflectors}
        handlers[name]["namespaces"].replace([_namespace("bench"), _namespace("kube-system")])
        handlers[name]["clusterproperties"].replace(
            [_property("cluster.clusterset.k8s.io", name), _property("clusterset.k8s.io", "bench")])
        for reflector in cache.reflectors:  # as if every list had just succeeded
            reflector.synced = True
            cache._healthy(str(reflector.resource))
    await asyncio.sleep(0.1)
    gc.collect()
    rss_before = _rss()
    if trace:
        tracemalloc.start()
        before = tracemalloc.take_snapshot()
    remote = handlers["member-2"]
    for i in range(exports):
        remote["services"].apply("ADDED", service(i))
        remote["serviceexports"].apply("ADDED", service_export(i))
        if i % 1000 == 999:
            await asyncio.sleep(0)  # let the updater run, as watch events arrive in batches
    await asyncio.sleep(0.5)
    if listed:
        _, items = imports.snapshot()  # type: ignore[misc]
        for stored in items:
            stored.json  # noqa: B018 - serialized and kept, as a LIST does
    gc.collect()
    rss_after = _rss()
    if not trace:
        return rss_after - rss_before, 0, [], len(imports.objects)
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    by_file: dict[str, int] = {}
    for stat in after.compare_to(before, "filename"):
        name = stat.traceback[0].filename
        name = name[len(ROOT):] if name.startswith(ROOT) else "(other: JSON parsing, stdlib)"
        if name.startswith("benchmarks"):
            name = "(other: JSON parsing, stdlib)"  # the strings parsed here and kept by the caches
        by_file[name] = by_file.get(name, 0) + stat.size_diff
    heap = sum(by_file.values())
    ranked = sorted(by_file.items(), key=lambda item: -item[1])
    return rss_after - rss_before, heap, ranked, len(imports.objects)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python3 -m benchmarks.heap", description=__doc__.split("\n")[0])
    parser.add_argument("--exports", type=int, default=10_000, help="ServiceExports to hold (default 10000)")
    parser.add_argument("--dns", action="store_true", help="also keep the DNS zone, as an instance serving DNS does")
    parser.add_argument("--listed", action="store_true",
                        help="also read every ServiceImport's JSON, as a LIST does (the same figures since the "
                             "stores keep only the JSON; for comparing with older commits)")
    parser.add_argument("--rss-only", action="store_true", help=argparse.SUPPRESS)  # the untraced child run
    args = parser.parse_args(argv)
    if args.rss_only:
        rss, _, _, served = asyncio.run(measure(args.exports, trace=False, dns=args.dns, listed=args.listed))
        print(rss if served == args.exports else -1)
        return
    flags = [flag for flag, on in (("--dns", args.dns), ("--listed", args.listed)) if on]
    child = subprocess.run([sys.executable, "-m", "benchmarks.heap", "--exports", str(args.exports), "--rss-only",
                            *flags], capture_output=True, text=True, check=True)
    rss = int(child.stdout.split()[-1])
    _, heap, ranked, served = asyncio.run(measure(args.exports, trace=True, dns=args.dns, listed=args.listed))
    if served != args.exports or rss < 0:
        sys.exit(f"expected {args.exports} ServiceImports, the views serve {served}")
    n = args.exports
    print(f"| exports | RSS growth per export | Python heap per export |\n|---|---|---|\n"
          f"| {n:,} | {rss / n / 1024:.2f} KiB | {heap / n / 1024:.2f} KiB |\n")
    print("| held by (allocated in) | per export |\n|---|---|")
    for name, size in ranked:
        if abs(size) / n >= 16:
            print(f"| `{name}` | {size / n:,.0f} B |")


if __name__ == "__main__":
    main()
