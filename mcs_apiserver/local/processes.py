"""Start, find and stop the long-running processes of a local ClusterSet.

``local up`` returns while etcd, the kube-apiservers, the controller managers and the mcs-apiserver
instances keep running, so every process is started in its own session (Ctrl-C in the terminal
that ran ``up`` does not reach it), logs to a file in the state directory, and is recorded with its
pid *and* its start time, so that ``down`` never signals an unrelated process that reused the pid.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass
class ProcessRecord:
    """One started process, as kept in the state file."""

    name: str  # e.g. "member-2/kube-apiserver"
    pid: int
    start_ticks: int  # /proc/<pid>/stat field 22: the process' start time, to detect pid reuse
    argv: list[str]
    log: str

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "ProcessRecord":
        return cls(**data)


def _start_ticks(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may contain spaces and parentheses: split after the last ')'.
    fields = stat.rsplit(")", 1)[1].split()
    return int(fields[19])


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


def alive(record: ProcessRecord) -> bool:
    """Whether the recorded process still runs (and is the one we started)."""
    ticks = _start_ticks(record.pid)
    return ticks is not None and ticks == record.start_ticks and not _is_zombie(record.pid)


def start(name: str, argv: list[str], log: Path, *, env: dict[str, str] | None = None,
          cwd: Path | None = None) -> tuple[ProcessRecord, subprocess.Popen]:
    """Start ``argv`` detached from our session, stdout and stderr appended to ``log``."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=env,
            cwd=cwd,
            close_fds=True,
        )
    ticks = _start_ticks(proc.pid)
    record = ProcessRecord(name=name, pid=proc.pid, start_ticks=ticks or 0, argv=argv, log=str(log))
    return record, proc


def stop(record: ProcessRecord, *, timeout: float = 15.0) -> bool:
    """SIGTERM, then SIGKILL after ``timeout``; True if the process is gone (or was already)."""
    if not alive(record):
        _reap(record.pid)
        return True
    try:
        os.kill(record.pid, signal.SIGTERM)
    except ProcessLookupError:
        return True
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _reap(record.pid)
        if not alive(record):
            return True
        time.sleep(0.05)
    try:
        os.kill(record.pid, signal.SIGKILL)
    except ProcessLookupError:
        return True
    for _ in range(100):
        _reap(record.pid)
        if not alive(record):
            return True
        time.sleep(0.05)
    return not alive(record)


def _reap(pid: int) -> None:
    """Collect the exit status if the process is our child, so it does not linger as a zombie."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def log_tail(record: ProcessRecord, lines: int = 15) -> str:
    try:
        text = Path(record.log).read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])
