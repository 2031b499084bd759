"""One local ClusterSet of real control planes for the whole e2e session, brought up by the same
code as ``mcs-apiserver local up`` and torn down at the end, whatever happened.

The upstream binaries are built (or reused from the cache) by the fixture itself: the e2e tests never
skip for want of a binary.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from mcs_apiserver.local import cluster
from mcs_apiserver.local import state as local_state
from mcs_apiserver.local.binaries import Binaries, ensure_binaries
from mcs_apiserver.local.state import LocalState

pytestmark = pytest.mark.e2e


@dataclass
class Kubectl:
    """The real kubectl (the pinned upstream build) against one context of the ClusterSet."""

    binary: Path
    kubeconfig: Path
    cache_dir: Path

    def run(self, *args: str, context: str = "member-1", input: str | None = None,
            check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        argv = [str(self.binary), "--kubeconfig", str(self.kubeconfig), "--context", context,
                "--cache-dir", str(self.cache_dir), *args]
        proc = subprocess.run(argv, input=input, capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(
                f"kubectl {' '.join(args)} (context {context}) failed with {proc.returncode}:\n"
                f"stdout: {proc.stdout}\nstderr: {proc.stderr}")
        return proc

    def json(self, *args: str, context: str = "member-1") -> Any:
        return json.loads(self.run(*args, "-o", "json", context=context).stdout)

    def apply(self, manifest: str, context: str = "member-1", *extra: str) -> subprocess.CompletedProcess[str]:
        return self.run("apply", "-f", "-", *extra, context=context, input=manifest)


@dataclass
class ClusterSetHandle:
    state_dir: Path
    started: LocalState
    binaries: Binaries
    kubectl: Kubectl

    @property
    def state(self) -> LocalState:
        """The state as it is now: a test that restarts a component (``local stop/start``) changes
        its process record, which a copy taken at session start would still show."""
        return local_state.load(self.state_dir) or self.started

    @property
    def kubeconfig(self) -> Path:
        return self.state_dir / cluster.ADMIN_KUBECONFIG

    @property
    def members(self) -> list[str]:
        return [m.name for m in self.state.members]


@pytest.fixture(scope="session")
def binaries() -> Binaries:
    return ensure_binaries(out=sys.stderr)


@pytest.fixture(scope="session")
def clusterset(binaries: Binaries, tmp_path_factory: pytest.TempPathFactory):
    state_dir = tmp_path_factory.mktemp("clusterset")
    options = cluster.UpOptions(state_dir=state_dir, members=3)
    try:
        state = asyncio.run(cluster.up(options))
        kubectl = Kubectl(binaries.kubectl, state_dir / cluster.ADMIN_KUBECONFIG,
                          tmp_path_factory.mktemp("kubectl-cache"))
        yield ClusterSetHandle(state_dir, state, binaries, kubectl)
    finally:
        cluster.down(state_dir)


@pytest.fixture
def kubectl(clusterset: ClusterSetHandle) -> Kubectl:
    return clusterset.kubectl
