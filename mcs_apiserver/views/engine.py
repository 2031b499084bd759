"""``ViewEngine``: keeps the served ServiceImports and ClusterSet up to date, incrementally.

The member layer calls ``update`` after applying a batch of watch events, naming what changed; the
engine re-derives only the affected ServiceImports and returns a ``ViewDelta`` with the served
objects that actually changed, for the HTTP store to version and broadcast. No I/O, no global state:
time comes from the ``now`` callable given at construction.

What is recomputed:

* the membership and the ClusterSet object, on every call: they depend on a handful of members (and
  on export *counts*, which change with any export), so they cost next to nothing;
* every ServiceImport when ``membership_changed`` is set, on the first call, or when the set of
  eligible members, their cluster IDs or the ClusterSet's name came out different (so a caller that
  forgets the flag still gets a correct result);
* otherwise the keys in ``changed_keys`` (an export, Service or EndpointSlice of that key changed in
  some member), the imports whose ClusterSetIP moved because of them (collisions), and the imports of
  ``changed_namespaces`` (a namespace of the *local* member appeared or went: namespace sameness).

ClusterSetIPs are allocated over every import of the ClusterSet, served here or not, so that every
instance computes the same addresses whatever namespaces its local cluster has.

The objects handed out (``imports``, ``clusterset``, the deltas) are shared with the engine's own
state and with each other (ports, families, labels and conditions are one copy for every import
that has equal ones; status lists): callers must treat them as read-only and copy before adding
anything (e.g. ``metadata.resourceVersion``), or the next comparison would see a change that is not
there, and every import sharing the fragment would change with it.
"""

from __future__ import annotations

import gc
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import AbstractSet, Callable, Final, Iterable, Iterator, Mapping

from mcs_apiserver.kube.types import ClusterSet, ServiceImport
from mcs_apiserver.views.clusterset import Membership, build_clusterset, derive_membership
from mcs_apiserver.kube.times import format_time, utc_now
from mcs_apiserver.views.imports import (
    CLUSTERSET_IP,
    Age,
    Contribution,
    DerivedImport,
    build_service_import,
    derive_import,
    make_contribution,
)
from mcs_apiserver.views.ipalloc import DEFAULT_CLUSTERSET_IP_CIDRS, Allocator
from mcs_apiserver.contract import Key, MemberView


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Hold the cyclic garbage collector off during a full recompute.

    A full recompute allocates tens of thousands of small dicts and lists that all survive; each
    generation-0 collection they trigger traverses them again, and older generations the whole heap
    (member caches included), while none of it is garbage. Pausing halves the time. Reference
    counting still frees everything as usual; the collector runs normally again afterwards.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class _Unchanged:
    """Type of ``UNCHANGED``: the ClusterSet did not change (None means it was removed)."""

    _instance: _Unchanged | None = None

    def __new__(cls) -> _Unchanged:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNCHANGED"

    def __bool__(self) -> bool:
        return False


UNCHANGED: Final = _Unchanged()


@dataclass(slots=True)
class ViewDelta:
    """What changed in the served views after one ``update``.

    ``imports``: only keys whose served object changed; None = no longer served (deleted).
    ``clusterset``: the new ClusterSet, None if it was removed, ``UNCHANGED`` otherwise.
    """

    imports: dict[Key, ServiceImport | None] = field(default_factory=dict)
    clusterset: ClusterSet | None | _Unchanged = UNCHANGED

    @property
    def clusterset_changed(self) -> bool:
        return self.clusterset is not UNCHANGED

    def __bool__(self) -> bool:
        return bool(self.imports) or self.clusterset_changed


class ViewEngine:
    """Derives the served views from the members, recomputing only what a change can affect."""

    def __init__(
        self,
        local_member: str,
        ip_ranges: Iterable[str] = DEFAULT_CLUSTERSET_IP_CIDRS,
        now: Callable[[], datetime] = utc_now,
    ) -> None:
        """``ip_ranges``: ClusterSetIP CIDRs, at most one per IP family (ValueError otherwise)."""
        self.local_member = local_member
        #: The upstream ServiceImport CRD is installed locally and not published to (a ClusterSet
        #: condition says so); set by the server, which then reports a membership change.
        self.upstream_clash = False
        self._now = now
        self._allocators: dict[str, Allocator[Age]] = {}
        for cidr in ip_ranges:
            allocator: Allocator[Age] = Allocator(cidr)
            if allocator.family in self._allocators:
                raise ValueError(
                    f"two ClusterSetIP ranges for {allocator.family}: "
                    f"{self._allocators[allocator.family].range.network} and {cidr}"
                )
            self._allocators[allocator.family] = allocator
        self._membership: Membership | None = None
        self._clusterset: ClusterSet | None = None
        self._derived: dict[Key, DerivedImport] = {}
        self._objects: dict[Key, ServiceImport] = {}  # every import of the ClusterSet
        # what each of _objects was built from, to skip rebuilding an object whose inputs are unchanged:
        # (derivation, ClusterSet name, address in each range...), one flat tuple per import
        self._inputs: dict[Key, tuple[DerivedImport | str | None, ...]] = {}
        self._by_namespace: dict[str, set[Key]] = {}  # keys of _objects by namespace
        self._served: dict[Key, ServiceImport] = {}  # those whose namespace exists locally

    # -- what is served --

    @property
    def imports(self) -> Mapping[Key, ServiceImport]:
        """The ServiceImports served in the local cluster (read-only, live)."""
        return MappingProxyType(self._served)

    @property
    def clusterset(self) -> ClusterSet | None:
        """The ClusterSet served in the local cluster, None when the local cluster is in none."""
        return self._clusterset

    @property
    def membership(self) -> Membership | None:
        """The last membership verdict (None before the first ``update``)."""
        return self._membership

    def derived(self, key: Key) -> DerivedImport | None:
        """The derivation behind an import of the ClusterSet (served locally or not): conflicts etc."""
        return self._derived.get(key)

    def contributions(self, members: Mapping[str, MemberView], key: Key) -> list[Contribution]:
        """The eligible members' current contributions for ``key`` (for the admission webhook)."""
        membership = self._membership
        if membership is None or membership.clusterset is None:
            return []
        return self._contributions(members, membership.eligible, key)

    # -- updates --

    def update(
        self,
        members: Mapping[str, MemberView],
        changed_keys: AbstractSet[Key] = frozenset(),
        changed_namespaces: AbstractSet[str] = frozenset(),
        membership_changed: bool = False,
    ) -> ViewDelta:
        """Bring the views up to date with ``members`` after the named changes; what changed."""
        now = format_time(self._now())
        delta = ViewDelta()
        previous = self._membership
        membership = derive_membership(members, self.local_member)
        self._membership = membership

        clusterset = build_clusterset(membership, members, self.local_member, self._clusterset, now,
                                      self.upstream_clash)
        if clusterset != self._clusterset:
            self._clusterset = clusterset
            delta.clusterset = clusterset

        if membership.clusterset is None:
            self._clear(delta)
            return delta
        full = (
            membership_changed
            or previous is None
            or previous.clusterset != membership.clusterset
            or previous.eligible != membership.eligible
        )
        if full:
            with _gc_paused():
                self._recompute_all(members, membership, now, delta)
        else:
            self._recompute_keys(members, membership, changed_keys, changed_namespaces, now, delta)
        return delta

    # -- internals --

    def _contributions(
        self, members: Mapping[str, MemberView], eligible: Mapping[str, str], key: Key
    ) -> list[Contribution]:
        found: list[Contribution] = []
        for name, cluster in eligible.items():
            member = members.get(name)
            if member is None:
                continue
            export = member.exports.get(key)
            if export is None:
                continue
            service = member.services.get(key)
            ready = member.ready_endpoints(key) if service is not None else 0
            found.append(make_contribution(cluster, name, export, service, ready))
        return found

    def _clear(self, delta: ViewDelta) -> None:
        for key in self._served:
            delta.imports[key] = None
        self._served.clear()
        self._objects.clear()
        self._inputs.clear()
        self._by_namespace.clear()
        self._derived.clear()
        for allocator in self._allocators.values():
            allocator.reset({})

    def _recompute_all(
        self, members: Mapping[str, MemberView], membership: Membership, now: str, delta: ViewDelta
    ) -> None:
        keys: set[Key] = set(self._objects)
        for name in membership.eligible:
            keys.update(members[name].exports.keys())  # eligible names come from ``members``
        derived: dict[Key, DerivedImport] = {}
        for key in keys:
            result = derive_import(key, self._contributions(members, membership.eligible, key))
            if result is not None:
                derived[key] = result
        self._derived = derived
        for family, allocator in self._allocators.items():
            allocator.reset(
                {k: d.age for k, d in derived.items() if d.type == CLUSTERSET_IP and family in d.families}
            )
        local_namespaces = self._local_namespaces(members)
        clusterset = membership.clusterset or ""
        for key in keys:
            self._apply(key, clusterset, local_namespaces, now, delta)

    def _recompute_keys(
        self,
        members: Mapping[str, MemberView],
        membership: Membership,
        changed_keys: AbstractSet[Key],
        changed_namespaces: AbstractSet[str],
        now: str,
        delta: ViewDelta,
    ) -> None:
        touched: set[Key] = set()
        allocation: dict[str, list[tuple[Key, Age | None]]] = {family: [] for family in self._allocators}
        for key in changed_keys:
            result = derive_import(key, self._contributions(members, membership.eligible, key))
            if result is None:
                self._derived.pop(key, None)
            else:
                self._derived[key] = result
            for family, changes in allocation.items():
                if result is not None and result.type == CLUSTERSET_IP and family in result.families:
                    changes.append((key, result.age))
                else:
                    changes.append((key, None))
            touched.add(key)
        for family, changes in allocation.items():
            if changes:
                touched.update(self._allocators[family].update(changes))
        for namespace in changed_namespaces:
            touched.update(self._by_namespace.get(namespace, ()))
        local_namespaces = self._local_namespaces(members)
        clusterset = membership.clusterset or ""
        for key in touched:
            self._apply(key, clusterset, local_namespaces, now, delta)

    def _local_namespaces(self, members: Mapping[str, MemberView]) -> Mapping[str, object]:
        local = members.get(self.local_member)
        return local.namespaces if local is not None else {}

    def _apply(
        self,
        key: Key,
        clusterset: str,
        local_namespaces: Mapping[str, object],
        now: str,
        delta: ViewDelta,
    ) -> None:
        """Rebuild the object of ``key`` from its derivation; record it in ``delta`` if the served one changed."""
        derived = self._derived.get(key)
        old = self._objects.get(key)
        namespace = key[0]
        if derived is None:
            self._inputs.pop(key, None)
            if old is not None:
                del self._objects[key]
                keys = self._by_namespace[namespace]
                keys.discard(key)
                if not keys:
                    del self._by_namespace[namespace]
            new = None
        else:
            addresses = (
                {family: allocator.address(key) for family, allocator in self._allocators.items()}
                if derived.type == CLUSTERSET_IP
                else {}
            )
            inputs = (derived, clusterset, *addresses.values())  # the ranges' order never changes
            if old is not None and self._inputs.get(key) == inputs:
                new = old  # same inputs, same object (condition times included): skip building it
            else:
                new = build_service_import(derived, clusterset, addresses, old, now)
                self._inputs[key] = inputs
            if old is not None and new == old:
                new = old
            else:
                self._objects[key] = new
                if old is None:
                    self._by_namespace.setdefault(namespace, set()).add(key)
        served = new if new is not None and namespace in local_namespaces else None
        before = self._served.get(key)
        if served is before:
            return
        if served is None:
            del self._served[key]
        else:
            self._served[key] = served
        delta.imports[key] = served
