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

The engine keeps no ServiceImport object: per import it keeps what the object is built from (the
derivation, the ClusterSet's name, the conditions with their times, the addresses), and
``render_service_import`` makes the object from that whenever one is asked for (``imports``, the
deltas), in a few microseconds. The served JSON is kept by the API store; a second tree of five dicts
per import here was the largest cost per export of an instance.

The objects handed out (``imports``, ``clusterset``, the deltas) share their fragments with the
engine's own state and with each other (ports, families, labels and conditions are one copy for every
import that has equal ones; status lists): callers must treat them as read-only and copy before
adding anything (e.g. ``metadata.resourceVersion``), or every import sharing the fragment would
change with it.
"""

from __future__ import annotations

import gc
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import AbstractSet, Any, Callable, Final, Iterable, Iterator, Mapping

from mcs_apiserver.kube.types import ClusterSet, ServiceImport
from mcs_apiserver.views.clusterset import Membership, build_clusterset, derive_membership
from mcs_apiserver.kube.times import format_time, utc_now
from mcs_apiserver.views.imports import (
    CLUSTERSET_IP,
    Age,
    Contribution,
    DerivedImport,
    derive_import,
    import_conditions,
    make_contribution,
    render_service_import,
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


#: What an import's object is built from, one flat tuple: (derivation, ClusterSet name, conditions,
#: address in each ClusterSetIP range... (in the ranges' order, which never changes; none for Headless)).
_Built = tuple[Any, ...]
_DERIVED, _CLUSTERSET, _CONDITIONS = 0, 1, 2


class _ServedImports(Mapping[Key, ServiceImport]):
    """``ViewEngine.imports``: the served keys, each object rendered when it is read (read-only, live)."""

    __slots__ = ("_engine",)

    def __init__(self, engine: ViewEngine) -> None:
        self._engine = engine

    def __getitem__(self, key: Key) -> ServiceImport:
        if key not in self._engine._served:
            raise KeyError(key)
        return self._engine._render(key)

    def __contains__(self, key: object) -> bool:
        return key in self._engine._served

    def __iter__(self) -> Iterator[Key]:
        return iter(self._engine._served)

    def __len__(self) -> int:
        return len(self._engine._served)


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
        #: every import of the ClusterSet: what its object is built from (see ``_Built``)
        self._built: dict[Key, _Built] = {}
        # insertion-ordered set of those whose namespace exists locally
        self._served: dict[Key, None] = {}
        self._imports = _ServedImports(self)

    # -- what is served --

    @property
    def imports(self) -> Mapping[Key, ServiceImport]:
        """The ServiceImports served in the local cluster (read-only, live; each object is built
        when read, so hold on to it rather than reading it again)."""
        return self._imports

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
        built = self._built.get(key)
        return built[_DERIVED] if built is not None else None

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
        self._built.clear()
        for allocator in self._allocators.values():
            allocator.reset({})

    def _recompute_all(
        self, members: Mapping[str, MemberView], membership: Membership, now: str, delta: ViewDelta
    ) -> None:
        keys: set[Key] = set(self._built)
        for name in membership.eligible:
            keys.update(members[name].exports.keys())  # eligible names come from ``members``
        derived: dict[Key, DerivedImport] = {}
        for key in keys:
            result = derive_import(key, self._contributions(members, membership.eligible, key))
            if result is not None:
                derived[key] = result
        for family, allocator in self._allocators.items():
            allocator.reset(
                {k: d.age for k, d in derived.items() if d.type == CLUSTERSET_IP and family in d.families}
            )
        local_namespaces = self._local_namespaces(members)
        clusterset = membership.clusterset or ""
        for key in keys:
            self._apply(key, derived.get(key), clusterset, local_namespaces, now, delta)

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
        fresh: dict[Key, DerivedImport | None] = {}  # the new derivations of the changed keys
        allocation: dict[str, list[tuple[Key, Age | None]]] = {family: [] for family in self._allocators}
        for key in changed_keys:
            result = derive_import(key, self._contributions(members, membership.eligible, key))
            fresh[key] = result
            for family, changes in allocation.items():
                if result is not None and result.type == CLUSTERSET_IP and family in result.families:
                    changes.append((key, result.age))
                else:
                    changes.append((key, None))
            touched.add(key)
        for family, changes in allocation.items():
            if changes:
                touched.update(self._allocators[family].update(changes))
        if changed_namespaces:  # rare (a local namespace came or went): one pass, no index kept per import
            touched.update(key for key in self._built if key[0] in changed_namespaces)
        local_namespaces = self._local_namespaces(members)
        clusterset = membership.clusterset or ""
        for key in touched:
            derived = fresh[key] if key in fresh else self.derived(key)
            self._apply(key, derived, clusterset, local_namespaces, now, delta)

    def _local_namespaces(self, members: Mapping[str, MemberView]) -> Mapping[str, object]:
        local = members.get(self.local_member)
        return local.namespaces if local is not None else {}

    def _render(self, key: Key) -> ServiceImport:
        built = self._built[key]
        return _render_built(built, self._allocators)

    def _apply(
        self,
        key: Key,
        derived: DerivedImport | None,
        clusterset: str,
        local_namespaces: Mapping[str, object],
        now: str,
        delta: ViewDelta,
    ) -> None:
        """Rebuild the object of ``key`` from its derivation (None: it has none any more); record it in
        ``delta`` if the served one changed."""
        old = self._built.get(key)
        namespace = key[0]
        obj: ServiceImport | None = None  # the new object, when it was rendered
        if derived is None:
            changed = old is not None
            if old is not None:
                del self._built[key]
        else:
            addresses = (
                {family: allocator.address(key) for family, allocator in self._allocators.items()}
                if derived.type == CLUSTERSET_IP
                else {}
            )
            values = tuple(addresses.values())
            if (old is not None and old[_DERIVED] == derived and old[_CLUSTERSET] == clusterset
                    and old[_CONDITIONS + 1:] == values):
                changed = False  # same inputs, same object (condition times included): skip building it
            else:
                previous = old[_CONDITIONS] if old is not None else None
                built = (derived, clusterset, import_conditions(derived, addresses, previous, now), *values)
                self._built[key] = built
                obj = _render_built(built, self._allocators)
                changed = old is None or obj != _render_built(old, self._allocators)
        served = derived is not None and namespace in local_namespaces
        was = key in self._served
        if served:
            if was and not changed:
                return
            self._served[key] = None
            delta.imports[key] = obj if obj is not None else self._render(key)
        elif was:
            del self._served[key]
            delta.imports[key] = None


def _render_built(built: _Built, allocators: Mapping[str, Allocator[Age]]) -> ServiceImport:
    derived: DerivedImport = built[_DERIVED]
    addresses = dict(zip(allocators, built[_CONDITIONS + 1:])) if derived.type == CLUSTERSET_IP else {}
    return render_service_import(derived, built[_CLUSTERSET], addresses, built[_CONDITIONS])
