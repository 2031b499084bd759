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
from mcs_apiserver.kube.types import ClusterSet
from mcs_apiserver.views.engine import ViewEngine
from mcs_apiserver.contract import Key, MemberView

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
        self._resync = False  # after a failed run: recompute everything and compare with the stores
        self._clusterset_key: Key | None = None
        self._on_run = on_run
        self.runs = 0
        self._membership = False
        #: Called after every run with the keys that changed (reported or re-derived) and whether a
        #: member's status or ClusterProperties changed (e.g. the ServiceExport status writer).
        self.listeners: list[Callable[[set[Key], bool], None]] = []

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
        self._membership = True
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
        keys, namespaces, membership = self._keys, self._namespaces, self._membership
        self._keys, self._namespaces, self._membership = set(), set(), False
        resync = self._resync
        started = time.perf_counter()
        try:
            delta = self.engine.update(self.members, keys, namespaces, membership_changed=resync)
        except Exception:  # noqa: BLE001 - a bug must not stop serving the last good views
            # Nothing reported is dropped: the next run (on the next change) retries it, as a full
            # recompute, because the engine may have moved its own state on before it failed.
            log.exception("view engine failed; keeping the last served views")
            self._keys |= keys
            self._namespaces |= namespaces
            self._membership |= membership
            self._resync = True
            return
        self._resync = False
        if resync:
            changes = self._reconcile_imports()
            if changes:
                self.imports.apply(changes)
            self._reconcile_clusterset()
            changed = len(changes)
        else:
            if delta.imports:
                self.imports.apply(delta.imports)
            if delta.clusterset_changed:
                self._apply_clusterset(delta.clusterset)  # type: ignore[arg-type]
            changed = len(delta.imports)
        self.runs += 1
        if self._on_run is not None:
            self._on_run(time.perf_counter() - started, changed)
        if self.listeners:
            touched = keys | delta.imports.keys()
            for listener in self.listeners:
                listener(touched, membership)

    def _reconcile_imports(self) -> dict[Key, dict | None]:
        """What the imports store must change to equal the engine's served imports (after a failed
        run, whose delta was lost, the engine's own comparison no longer tells)."""
        served = self.engine.imports
        changes: dict[Key, dict | None] = {}
        for key in self.imports.objects:
            if key not in served:
                changes[key] = None
        for key, obj in served.items():
            stored = self.imports.get(key)
            if stored is None or not stored.holds(obj):
                changes[key] = obj  # type: ignore[assignment]
        return changes

    def _reconcile_clusterset(self) -> None:
        clusterset = self.engine.clusterset
        wanted = ("", clusterset["metadata"]["name"]) if clusterset is not None else None
        changes: dict[Key, dict | None] = {key: None for key in self.clustersets.objects if key != wanted}
        if wanted is not None:
            stored = self.clustersets.get(wanted)
            if stored is None or not stored.holds(clusterset):
                changes[wanted] = clusterset  # type: ignore[assignment]
        self._clusterset_key = wanted
        if changes:
            self.clustersets.apply(changes)

    def _apply_clusterset(self, clusterset: ClusterSet | None) -> None:
        changes: dict[Key, dict | None] = {}
        new_key = ("", clusterset["metadata"]["name"]) if clusterset is not None else None
        if self._clusterset_key is not None and self._clusterset_key != new_key:
            changes[self._clusterset_key] = None
        if new_key is not None:
            changes[new_key] = clusterset  # type: ignore[assignment]
        self._clusterset_key = new_key
        self.clustersets.apply(changes)
