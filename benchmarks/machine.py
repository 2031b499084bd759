"""The machine and the versions a run measured on, for the report's header."""

from __future__ import annotations

import os
import platform
import subprocess
from datetime import UTC, datetime
from pathlib import Path

from mcs_apiserver.local.binaries import ensure_binaries


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _memory() -> str:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return f"{int(line.split()[1]) / 2**20:.1f} GiB"
    return "unknown"


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def _version(binary: Path) -> str:
    """The first line of ``binary --version``, e.g. ``Kubernetes v1.37.2`` or ``etcd 3.7.3``."""
    result = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=30, check=False)
    first = (result.stdout or result.stderr).strip().splitlines()[0]
    return first.replace(" Version:", "")


def describe() -> list[str]:
    """Markdown bullet lines: CPUs, model, memory, kernel, versions, date."""
    binaries = ensure_binaries()
    machine = (
        f"- Machine: {len(os.sched_getaffinity(0))} CPUs (nproc), {_cpu_model()}, {_memory()} RAM, "
        f"Linux {platform.release()}; **shared with other work** (other engineers' builds and tests may "
        "run at the same time), so the absolute figures are noisy"
    )
    versions = (
        f"- Versions: {_version(binaries.kube_apiserver)} (kube-apiserver), {_version(binaries.etcd)}, "
        f"Python {platform.python_version()} (mcs-apiserver and this benchmark)"
    )
    shared = ("- Everything (3 control planes on one etcd, 3 mcs-apiserver instances, this client) shares "
              "these CPUs, over loopback")
    return [f"- Date: {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}", machine, versions, shared]
