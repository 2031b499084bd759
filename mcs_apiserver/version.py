"""What build this is: ``mcs-apiserver --version``, ``GET /version`` (shaped like kube-apiserver's,
with ``pythonVersion`` where kube has ``goVersion``) and the ``mcs_apiserver_build_info`` metric.

The git commit comes from ``MCS_APISERVER_GIT_COMMIT`` (set when an image is built, with
``MCS_APISERVER_GIT_TREE_STATE``) or, when running from a git checkout, from ``git rev-parse``; it is
empty when neither is known.
"""

from __future__ import annotations

import functools
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from mcs_apiserver.kube.types import VersionInfo

COMMIT_ENV = "MCS_APISERVER_GIT_COMMIT"
TREE_STATE_ENV = "MCS_APISERVER_GIT_TREE_STATE"


def _package_version() -> str:
    try:
        return metadata.version("mcs-apiserver")
    except metadata.PackageNotFoundError:
        return "0.0.0"


def _git(*args: str) -> str:
    root = Path(__file__).resolve().parents[1]
    if not (root / ".git").exists():
        return ""
    try:
        return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=5,
                              check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def _machine() -> str:
    machine = platform.machine().lower()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


@functools.cache
def version_info() -> VersionInfo:
    version = _package_version()
    major, _, rest = version.partition(".")
    commit = os.environ.get(COMMIT_ENV, "") or _git("rev-parse", "HEAD")
    if os.environ.get(COMMIT_ENV):
        tree = os.environ.get(TREE_STATE_ENV) or "clean"
    elif commit:
        tree = "dirty" if _git("status", "--porcelain", "--untracked-files=no") else "clean"
    else:
        tree = ""
    return {
        "major": major, "minor": rest.partition(".")[0], "gitVersion": f"v{version}", "gitCommit": commit,
        "gitTreeState": tree, "pythonVersion": platform.python_version(),
        "compiler": sys.implementation.name, "platform": f"{sys.platform}/{_machine()}",
    }


def version_line() -> str:
    info = version_info()
    commit = f", commit {info['gitCommit'][:12]}" if info["gitCommit"] else ""
    return f"mcs-apiserver {info['gitVersion']}{commit} (Python {info['pythonVersion']}, {info['platform']})"
