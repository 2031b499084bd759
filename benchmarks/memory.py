"""Memory per object: the RSS growth of member-1's instance, and of member-2's kube-apiserver.

RSS is VmRSS from /proc/<pid>/status. The instance holds every member's caches (member-2's N
Services and N ServiceExports, trimmed) plus the N ServiceImports derived from them with their
serialized JSON, so its growth per export is compared with kube-apiserver's growth per Service plus
ServiceExport. kube-apiserver is a Go process: its RSS follows the garbage collector's heap target
and returns freed pages lazily, so its figures are approximate (they are measured after the same
pause, on the member that stores the objects).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

from benchmarks.report import Section
from benchmarks.stats import kib, mib

#: How long a process is left alone before its RSS is read, so that start-up bursts settle.
SETTLE = 3.0


def rss(pid: int) -> int:
    """The resident set size of ``pid`` in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


async def settled_rss(pid: int) -> int:
    await asyncio.sleep(SETTLE)
    return rss(pid)


@dataclass
class MemoryResult:
    """RSS readings of one round (bytes); the round brought the total to ``exports``."""

    exports: int
    #: Services and ServiceExports created in member-2 during this round (each).
    created: int
    instance_empty: int
    instance_synced: int
    apiserver_before: int
    apiserver_with_services: int
    apiserver_with_exports: int
    #: After a restart with the N exports present (only when the startup benchmark ran too).
    instance_restarted: int | None = None


def _per(growth: int, count: int) -> str:
    return kib(growth / count) if count else "n/a"


def section(results: list[MemoryResult]) -> Section:
    table = Section(
        "Memory per export",
        ["exports", "instance RSS: empty / synced (/ restarted)", "instance per export: synced (restarted)",
         "kube-apiserver (member-2) RSS growth per Service / per ServiceExport", "kube-apiserver per pair"],
    )
    for r in results:
        restarted = f" / {mib(r.instance_restarted)}" if r.instance_restarted is not None else ""
        restarted_per = (f" ({_per(r.instance_restarted - r.instance_empty, r.exports)})"
                         if r.instance_restarted is not None else "")
        services = r.apiserver_with_services - r.apiserver_before
        exports = r.apiserver_with_exports - r.apiserver_with_services
        table.rows.append([
            f"{r.exports:,}",
            f"{mib(r.instance_empty)} / {mib(r.instance_synced)}{restarted}",
            _per(r.instance_synced - r.instance_empty, r.exports) + restarted_per,
            f"{_per(services, r.created)} / {_per(exports, r.created)}",
            _per(services + exports, r.created),
        ])
    table.notes.append(
        "Instance: (RSS with N exports - RSS of the freshly started instance with none) / N; 'synced' is "
        "after the exports arrived one by one, 'restarted' after a restart that listed them all at once. "
        "It covers member-2's Services and ServiceExports in the caches and the ServiceImport views. "
        "kube-apiserver: growth of member-2's kube-apiserver while this round's Services, then its "
        "ServiceExports, were created, divided by the number created in the round; Go's RSS is coarse.")
    return table
