"""ClusterSetIP allocation: the same address for an import on every instance, without coordination.

Each instance computes the addresses of *all* ClusterSetIP imports of the ClusterSet (not only those
it serves: namespace sameness differs between instances, the addresses must not), one range per IP
family (e.g. ``243.0.0.0/16`` and ``fd00:243::/112``).

The rule, a pure function of the set of (key, age) pairs:

* an import's *probe sequence* is a permutation of the range's usable addresses (the network and
  the last -- broadcast -- address are never used), derived from a SHA-256 of ``namespace/name``:
  ``start + i * step (mod size)`` with ``step`` coprime to ``size`` (double hashing, so colliding
  imports do not pile up behind one another);
* imports are placed from the oldest to the youngest (age, then key, to break ties): each takes the
  first address of its sequence that no older import holds. When the range is full the youngest
  imports get no address.

Stability: without a collision an import's address is the first of its sequence, whatever else
exists, so it never changes for the life of the import. An address changes only in the rare
collision case: when an *older* import whose sequence reaches it appears (the younger one moves
on) or when an older import it had to step over disappears (it moves back to the earlier address).
A new import is normally the youngest one, so creating an import never moves another.

``Allocator`` keeps the result of that rule up to date under adds and removes while touching only
what changes: a new import that finds a free address (the common case) or a removal nobody had
stepped over costs O(1); displacement chains are followed only as far as they go. The rule written
plainly, as a pure function, is the reference in ``tests/unit/test_views_ipalloc.py``, which checks
that the two agree on random sequences.
"""

from __future__ import annotations

import hashlib
import ipaddress
import socket
from math import gcd
from typing import Any, Callable, Generic, Iterable, Mapping, Protocol, TypeVar

from mcs_apiserver.contract import Key

#: This project's defaults: 243.0.0.0/8 is reserved (class E) and is what Submariner Lighthouse uses
#: for clusterset IPs; fd00:243::/112 is a unique-local range of the same size.
DEFAULT_CLUSTERSET_IP_CIDRS = ("243.0.0.0/16", "fd00:243::/112")


class _Comparable(Protocol):
    def __lt__(self, other: Any, /) -> bool: ...


A = TypeVar("A", bound=_Comparable)


class AddressRange:
    """The usable addresses of one CIDR, and the probe sequences of imports in it."""

    __slots__ = ("network", "family", "size", "_base", "_format")

    def __init__(self, cidr: str) -> None:
        network = ipaddress.ip_network(cidr, strict=True)
        size = network.num_addresses - 2
        if size < 1:
            raise ValueError(
                f"ClusterSetIP range {cidr} has no usable address (it needs a prefix of /30 or /126 at most)"
            )
        self.network = network
        self.family = "IPv4" if network.version == 4 else "IPv6"
        self.size = size
        self._base = int(network.network_address) + 1
        self._format = _formatter(network)

    def __repr__(self) -> str:
        return f"AddressRange({str(self.network)!r})"

    def address(self, offset: int) -> str:
        """The address at ``offset`` (0 is the first usable one)."""
        return self._format(self._base + offset)

    def probe(self, key: Key) -> tuple[int, int]:
        """``(start, step)`` of the import's probe sequence: slot ``i`` is ``(start + i*step) % size``."""
        digest = hashlib.sha256(f"{key[0]}/{key[1]}".encode()).digest()
        size = self.size
        start = int.from_bytes(digest[:8], "big") % size
        if size <= 2:
            return start, 1
        step = 1 + int.from_bytes(digest[8:16], "big") % (size - 1)
        while gcd(step, size) != 1:  # terminates: size - 1 is coprime to size
            step += 1
        return start, step


_EMBEDDED_V4 = (ipaddress.ip_network("::/96"), ipaddress.ip_network("::ffff:0:0/96"))


def _formatter(network: ipaddress.IPv4Network | ipaddress.IPv6Network) -> Callable[[int], str]:
    """The fastest way to print an address of ``network`` exactly as ``ipaddress`` would.

    ``str(IPv6Address(n))`` costs ~7 us, ``inet_ntop`` a tenth of that, and both print RFC 5952 text
    except for addresses with an embedded IPv4 address (``::ffff:1.2.3.4``), where ``ipaddress``
    is used. A full recompute formats every ClusterSetIP, so this matters.
    """
    if network.version == 4:
        return lambda n: socket.inet_ntop(socket.AF_INET, n.to_bytes(4, "big"))
    if any(network.overlaps(embedded) for embedded in _EMBEDDED_V4):
        return lambda n: str(ipaddress.IPv6Address(n))
    return lambda n: socket.inet_ntop(socket.AF_INET6, n.to_bytes(16, "big"))


def _as_range(network: str | AddressRange) -> AddressRange:
    return network if isinstance(network, AddressRange) else AddressRange(network)


class Allocator(Generic[A]):
    """The allocation rule, kept incrementally for one range: work proportional to what changes.

    State: who holds each slot, how many probe steps each holder took (its *path*; only non-zero
    counts are kept, most imports take their first address), and for each slot the imports that
    stepped over it (``_passed``), which are exactly the ones that may move when the slot is freed.
    Imports without an address (range full) are kept apart: they have stepped over every slot. Probe
    sequences are hashed again when needed rather than kept: that is rare (a placement, a collision,
    a removal), and an instance holds every import of the ClusterSet.
    """

    def __init__(self, network: str | AddressRange) -> None:
        self.range = _as_range(network)
        self._ages: dict[Key, A] = {}
        self._slot: dict[Key, int] = {}
        self._steps: dict[Key, int] = {}
        self._owner: dict[int, Key] = {}
        self._passed: dict[int, set[Key]] = {}
        self._unassigned: set[Key] = set()

    # -- queries --

    @property
    def family(self) -> str:
        return self.range.family

    def __len__(self) -> int:
        return len(self._ages)

    def __contains__(self, key: object) -> bool:
        return key in self._ages

    def address(self, key: Key) -> str | None:
        """The import's address, None if it has none (unknown key, or range full). Formatted on each
        call (a microsecond): the engine keeps the text it builds an import from, so a cache here
        would only be a second index entry per import."""
        slot = self._slot.get(key)
        return None if slot is None else self.range.address(slot)

    # -- updates --

    def reset(self, imports: Mapping[Key, A]) -> dict[Key, str | None]:
        """Replace every import at once; returns the keys whose address changed (None = lost)."""
        if imports == self._ages:
            return {}  # the common full recompute: nothing moved
        before = {key: self.address(key) for key in self._ages}
        self._ages = dict(imports)
        self._slot.clear()
        self._steps.clear()
        self._owner.clear()
        self._passed.clear()
        self._unassigned.clear()
        # Oldest first, so nobody is ever displaced: the plain greedy of the rule, keeping the index.
        size = self.range.size
        owner, slots, steps, passed, probe = self._owner, self._slot, self._steps, self._passed, self.range.probe
        for key in sorted(imports, key=lambda k: (imports[k], k)):
            if len(owner) >= size:
                self._unassigned.add(key)
                continue
            start, step = probe(key)
            for i in range(size):
                slot = (start + i * step) % size
                if slot not in owner:
                    owner[slot] = key
                    slots[key] = slot
                    if i:
                        steps[key] = i
                    break
                if slot in passed:
                    passed[slot].add(key)
                else:
                    passed[slot] = {key}
            else:  # pragma: no cover - guarded by the len(owner) check above
                raise AssertionError("free slot not found in a range that has one")
        changes: dict[Key, str | None] = {}
        for key in before.keys() | self._ages.keys():
            after = self.address(key)
            if before.get(key) != after:
                changes[key] = after
        return changes

    def set(self, key: Key, age: A) -> dict[Key, str | None]:
        """Add an import, or change its age; returns the keys whose address changed (None = lost)."""
        before: dict[Key, str | None] = {}
        self._set(key, age, before)
        return self._changes(before)

    def discard(self, key: Key) -> dict[Key, str | None]:
        """Remove an import if present; returns the keys whose address changed (None = lost)."""
        before: dict[Key, str | None] = {}
        self._discard(key, before)
        return self._changes(before)

    def update(self, imports: Iterable[tuple[Key, A | None]]) -> dict[Key, str | None]:
        """Apply several ``set`` (an age) / ``discard`` (None) at once; returns the net changes."""
        before: dict[Key, str | None] = {}
        for key, age in imports:
            if age is None:
                self._discard(key, before)
            else:
                self._set(key, age, before)
        return self._changes(before)

    # -- internals --

    def _rank(self, key: Key) -> tuple[A, Key]:
        return (self._ages[key], key)

    def _note(self, before: dict[Key, str | None] | None, key: Key) -> None:
        if before is not None and key not in before:
            before[key] = self.address(key)

    def _changes(self, before: Mapping[Key, str | None]) -> dict[Key, str | None]:
        changes: dict[Key, str | None] = {}
        for key, old in before.items():
            new = self.address(key)
            if new != old:
                changes[key] = new
        return changes

    def _walk(self, key: Key, index: int, before: dict[Key, str | None] | None) -> None:
        """Place ``key`` from probe ``index`` on; a younger holder it meets is displaced and walks on."""
        size = self.range.size
        owner = self._owner
        passed = self._passed
        while True:
            start, step = self.range.probe(key)
            rank = self._rank(key)
            placed = False
            for i in range(index, size):
                slot = (start + i * step) % size
                holder = owner.get(slot)
                if holder is None or self._rank(holder) > rank:
                    owner[slot] = key
                    self._slot[key] = slot
                    self._set_steps(key, i)
                    placed = True
                    break
                passed.setdefault(slot, set()).add(key)
            if not placed:
                # Range full: an unassigned import counts as having stepped over every slot.
                for i in range(index, size):
                    self._discard_passed((start + i * step) % size, key)
                for i in range(index):
                    self._discard_passed((start + i * step) % size, key)
                self._slot.pop(key, None)
                self._steps.pop(key, None)
                self._unassigned.add(key)
                return
            if holder is None:
                return
            # ``holder`` is younger: it loses the slot and continues its own walk past it.
            self._note(before, holder)
            passed.setdefault(slot, set()).add(holder)
            index = self._steps.get(holder, 0) + 1
            key = holder

    def _set_steps(self, key: Key, steps: int) -> None:
        if steps:
            self._steps[key] = steps
        else:
            self._steps.pop(key, None)

    def _discard_passed(self, slot: int, key: Key) -> None:
        keys = self._passed.get(slot)
        if keys is not None:
            keys.discard(key)
            if not keys:
                del self._passed[slot]

    def _set(self, key: Key, age: A, before: dict[Key, str | None]) -> None:
        old_age = self._ages.get(key, _MISSING)
        if old_age is not _MISSING:
            if not (old_age < age or age < old_age):  # type: ignore[operator]
                return
            self._note(before, key)
            self._remove(key, before)
        else:
            before.setdefault(key, None)
        self._ages[key] = age
        self._walk(key, 0, before)

    def _discard(self, key: Key, before: dict[Key, str | None]) -> None:
        if key not in self._ages:
            return
        self._note(before, key)
        self._remove(key, before)
        del self._ages[key]

    def _remove(self, key: Key, before: dict[Key, str | None]) -> None:
        """Take ``key`` out; whoever stepped over its slot may move back into it, and so on."""
        if key in self._unassigned:
            self._unassigned.discard(key)
            return
        slot = self._slot.pop(key)
        start, step = self.range.probe(key)
        size = self.range.size
        for i in range(self._steps.pop(key, 0)):
            self._discard_passed((start + i * step) % size, key)
        del self._owner[slot]
        self._fill(slot, before)

    def _fill(self, slot: int, before: dict[Key, str | None]) -> None:
        """Give a freed slot to the oldest import that stepped over it; repeat for the slot it left."""
        size = self.range.size
        while True:
            candidates = self._passed.get(slot, set()) | self._unassigned
            if not candidates:
                return
            mover = min(candidates, key=self._rank)
            self._note(before, mover)
            start, step = self.range.probe(mover)
            index = ((slot - start) * pow(step, -1, size)) % size if size > 1 else 0
            self._owner[slot] = mover
            if mover in self._unassigned:
                self._unassigned.discard(mover)
                for i in range(index):
                    self._passed.setdefault((start + i * step) % size, set()).add(mover)
                self._slot[mover] = slot
                self._set_steps(mover, index)
                return
            left = self._slot[mover]
            for i in range(index, self._steps.get(mover, 0)):
                self._discard_passed((start + i * step) % size, mover)
            del self._owner[left]
            self._slot[mover] = slot
            self._set_steps(mover, index)
            slot = left


_MISSING: object = object()
