"""The pipeline's middle: member changes in, view engine run, store updates out.

Members report what changed as it happens; the updater coalesces everything reported during one turn
of the event loop into one engine run (so the initial sync of thousands of objects is one run, and a
single export propagates on the next loop turn, with no timer in the way), then hands the delta to
the stores, which version it and wake the watchers.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Mapping

from mcs_apiserver.api.store import Store
from mcs_apiserver.kube_types import ClusterSet
from mcs_apiserver.views.engine import ViewEngine
from mcs_apiserver.views.model import Key, MemberView

log = logging.getLogger("mcs_apiserver.updater")


class ViewUpdater:
    """A ``members.member.ChangeSink`` that keeps the stores equal to the engine's views."""

    def __init__(self, engine: ViewEngine, members: Mapping[str, MemberView], imports: Store,
                 clustersets: Store, *, on_run: Callable[[float, int], None] | None = None) -> None:
        self.engine = engine
        self.members = members
        self.imports = imports
        self.clustersets = clustersets
        self._keys: set[Key] = set()
        self._namespaces: set[str] = set()
        self._scheduled = False
        self._clusterset_key: Key | None = None
        self._on_run = on_run
        self.runs = 0
        self.listeners: list[Callable[[], None]] = []

    # --- ChangeSink -----------------------------------------------------------------------------

    def keys_changed(self, member: str, keys: Iterable[Key]) -> None:
        self._keys.update(keys)
        self._schedule()

    def namespaces_changed(self, member: str, names: Iterable[str]) -> None:
        if member == self.engine.local_member:
            self._namespaces.update(names)
        self._schedule()

    def membership_changed(self, member: str) -> None:
        # The engine notices itself when eligibility, IDs or the ClusterSet change, and rebuilds
        # the ClusterSet object on every run: a run is all a status change needs.
        self._schedule()

    # --- running --------------------------------------------------------------------------------

    def _schedule(self) -> None:
        if self._scheduled:
            return
        self._scheduled = True
        try:
            asyncio.get_running_loop().call_soon(self.run)
        except RuntimeError:  # no loop (unit tests driving the updater by hand)
            self._scheduled = False

    def run(self) -> None:
        """One engine run over everything reported since the last one."""
        self._scheduled = False
        keys, namespaces = self._keys, self._namespaces
        self._keys, self._namespaces = set(), set()
        started = time.perf_counter()
        try:
            delta = self.engine.update(self.members, keys, namespaces)
        except Exception:  # noqa: BLE001 - a bug must not stop serving the last good views
            log.exception("view engine failed; keeping the last served views")
            return
        if delta.imports:
            self.imports.apply(delta.imports)
        if delta.clusterset_changed:
            self._apply_clusterset(delta.clusterset)  # type: ignore[arg-type]
        self.runs += 1
        if self._on_run is not None:
            self._on_run(time.perf_counter() - started, len(delta.imports))
        for listener in self.listeners:
            listener()

    def _apply_clusterset(self, clusterset: ClusterSet | None) -> None:
        changes: dict[Key, dict | None] = {}
        new_key = ("", clusterset["metadata"]["name"]) if clusterset is not None else None
        if self._clusterset_key is not None and self._clusterset_key != new_key:
            changes[self._clusterset_key] = None
        if new_key is not None:
            changes[new_key] = clusterset  # type: ignore[assignment]
        self._clusterset_key = new_key
        self.clustersets.apply(changes)
