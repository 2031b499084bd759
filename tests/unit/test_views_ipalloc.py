"""ClusterSetIP allocation: deterministic, collision-settled by age, incremental = pure."""

from __future__ import annotations

import ipaddress
import random

import pytest

from mcs_apiserver.views.ipalloc import (
    DEFAULT_CLUSTERSET_IP_CIDRS,
    AddressRange,
    Allocator,
)

Key = tuple[str, str]


def allocate(network: str | AddressRange, imports: dict[Key, int]) -> dict[Key, str]:
    """The allocation rule written plainly (the reference ``Allocator`` must agree with): oldest import
    first (ties by key), each takes the first free address of its probe sequence; none when full."""
    rng = network if isinstance(network, AddressRange) else AddressRange(network)
    taken: set[int] = set()
    result: dict[Key, str] = {}
    for key in sorted(imports, key=lambda k: (imports[k], k)):
        if len(taken) >= rng.size:
            break
        start, step = rng.probe(key)
        for i in range(rng.size):
            slot = (start + i * step) % rng.size
            if slot not in taken:
                taken.add(slot)
                result[key] = rng.address(slot)
                break
    return result


def assignments(allocator: Allocator[int], pool: list[Key]) -> dict[Key, str]:
    """Every key of ``pool`` that has an address in ``allocator``, with it."""
    return {key: address for key in pool if (address := allocator.address(key)) is not None}


def keys(n: int, namespace: str = "ns") -> list[Key]:
    return [(namespace, f"svc-{i}") for i in range(n)]


def colliding_pair(rng: AddressRange) -> tuple[Key, Key]:
    """Two keys whose probe sequences start at the same address."""
    seen: dict[int, Key] = {}
    for key in keys(10_000):
        start = rng.probe(key)[0]
        if start in seen:
            return seen[start], key
        seen[start] = key
    raise AssertionError("no collision found")


def test_the_address_depends_only_on_namespace_and_name() -> None:
    ages = {k: i for i, k in enumerate(keys(50))}
    first = allocate("243.0.0.0/16", ages)
    shuffled = dict(sorted(ages.items(), key=lambda _: random.random()))
    assert allocate("243.0.0.0/16", shuffled) == first
    assert Allocator("243.0.0.0/16").reset(shuffled) == first
    lone = allocate("243.0.0.0/16", {("ns", "svc-7"): 99})
    assert lone[("ns", "svc-7")] == first[("ns", "svc-7")]  # no collision: same address whatever else exists


def test_addresses_fall_inside_the_range_and_skip_the_network_and_broadcast_addresses() -> None:
    cidr = "10.9.8.0/29"  # 8 addresses, 6 usable
    result = allocate(cidr, {k: i for i, k in enumerate(keys(6))})
    assert sorted(result.values(), key=ipaddress.ip_address) == [f"10.9.8.{i}" for i in range(1, 7)]
    v6 = allocate("fd00:243::/125", {k: i for i, k in enumerate(keys(6))})
    assert sorted(v6.values(), key=ipaddress.ip_address) == [f"fd00:243::{i}" for i in range(1, 7)]


def test_when_the_range_is_full_the_youngest_imports_get_no_address() -> None:
    ages = {k: i for i, k in enumerate(keys(9))}
    result = allocate("10.0.0.0/29", ages)
    assert set(result) == set(keys(6))
    allocator: Allocator[int] = Allocator("10.0.0.0/29")
    allocator.reset(ages)
    assert allocator.address(("ns", "svc-8")) is None
    assert allocator.discard(("ns", "svc-0")) == {("ns", "svc-0"): None, ("ns", "svc-6"): result[("ns", "svc-0")]}


def test_on_a_collision_the_older_import_keeps_the_address_and_the_younger_probes_on() -> None:
    rng = AddressRange("243.0.0.0/16")
    a, b = colliding_pair(rng)
    first_choice = rng.address(rng.probe(a)[0])
    assert allocate(rng, {a: 1, b: 2})[a] == first_choice
    assert allocate(rng, {a: 2, b: 1})[b] == first_choice
    assert allocate(rng, {a: 2, b: 1})[a] != first_choice


def test_an_address_changes_only_when_an_older_colliding_import_appears_or_goes() -> None:
    rng = AddressRange("243.0.0.0/16")
    a, b = colliding_pair(rng)
    allocator: Allocator[int] = Allocator(rng)
    assert allocator.set(b, 5) == {b: rng.address(rng.probe(b)[0])}
    assert allocator.set(("other", "x"), 6) == {("other", "x"): allocator.address(("other", "x"))}  # younger: moves no one
    assert allocator.set(("other", "y"), 1) == {("other", "y"): allocator.address(("other", "y"))}  # older, no collision
    moved = allocator.set(a, 2)  # older and colliding: b probes on
    assert set(moved) == {a, b} and moved[a] == rng.address(rng.probe(a)[0])
    back = allocator.discard(a)  # b had stepped over a's address: it moves back
    assert back == {a: None, b: rng.address(rng.probe(b)[0])}


def test_a_removal_nobody_stepped_over_frees_the_address_and_moves_no_one() -> None:
    allocator: Allocator[int] = Allocator("243.0.0.0/16")
    allocator.reset({k: i for i, k in enumerate(keys(100))})
    assert allocator.discard(("ns", "svc-42")) == {("ns", "svc-42"): None}
    assert allocator.discard(("ns", "never-added")) == {}


def test_setting_the_same_age_again_changes_nothing() -> None:
    allocator: Allocator[int] = Allocator("243.0.0.0/16")
    allocator.set(("ns", "a"), 1)
    assert allocator.set(("ns", "a"), 1) == {}


@pytest.mark.parametrize("cidr", ["10.0.0.0/29", "10.0.0.0/30", "fd00::/125", "10.0.0.0/27", *DEFAULT_CLUSTERSET_IP_CIDRS])
@pytest.mark.parametrize("seed", range(25))
def test_the_incremental_allocator_always_equals_the_pure_function(cidr: str, seed: int) -> None:
    """Random adds, age changes and removes (many collisions in the tiny ranges, full ranges too)."""
    rnd = random.Random(f"{cidr}-{seed}")
    pool = keys(12) + keys(4, "other")
    allocator: Allocator[int] = Allocator(cidr)
    ages: dict[Key, int] = {}
    previous = allocate(cidr, ages)
    for _ in range(80):
        roll = rnd.random()
        if roll < 0.1:
            batch = [(rnd.choice(pool), rnd.choice([None, rnd.randint(0, 30)])) for _ in range(4)]
            for key, age in batch:
                if age is None:
                    ages.pop(key, None)
                else:
                    ages[key] = age
            changes = allocator.update(batch)
        elif roll < 0.6:
            key, age = rnd.choice(pool), rnd.randint(0, 30)
            ages[key] = age
            changes = allocator.set(key, age)
        else:
            key = rnd.choice(pool)
            ages.pop(key, None)
            changes = allocator.discard(key)
        expected = allocate(cidr, ages)
        assert assignments(allocator, pool) == expected
        assert changes == {
            k: expected.get(k) for k in previous.keys() | expected.keys() if previous.get(k) != expected.get(k)
        }
        previous = expected
    assert len(allocator) == len(ages)


def test_reset_reports_every_address_that_changed() -> None:
    cidr = "10.0.0.0/29"
    allocator: Allocator[int] = Allocator(cidr)
    ages = {k: i for i, k in enumerate(keys(8))}
    first = allocator.reset(ages)
    assert first == allocate(cidr, ages)  # every address is new
    fewer = {k: age for k, age in ages.items() if k != ("ns", "svc-0")}
    after = allocate(cidr, fewer)
    changes = allocator.reset(fewer)
    assert changes[("ns", "svc-0")] is None
    assert changes == {k: after.get(k) for k in ages if first.get(k) != after.get(k)}
    assert len(changes) >= 2  # the freed address went to an import that had none


@pytest.mark.parametrize("cidr", ["10.0.0.0/31", "10.0.0.1/32", "fd00::/127", "fd00::/128"])
def test_a_range_without_a_usable_address_is_refused(cidr: str) -> None:
    with pytest.raises(ValueError, match="no usable address"):
        AddressRange(cidr)


def test_a_cidr_with_host_bits_set_is_refused() -> None:
    with pytest.raises(ValueError):
        AddressRange("243.0.0.1/16")


@pytest.mark.parametrize("cidr", ["fd00:243::/112", "2001:db8::/64", "::/64", "::ffff:0:0/104", "0.0.0.0/8"])
def test_addresses_are_printed_exactly_as_the_ipaddress_module_prints_them(cidr: str) -> None:
    rng = AddressRange(cidr)
    rnd = random.Random(cidr)
    for offset in [0, 1, rng.size - 1, *(rnd.randrange(rng.size) for _ in range(2000))]:
        expected = str(type(rng.network.network_address)(int(rng.network.network_address) + 1 + offset))
        assert rng.address(offset) == expected


def test_probe_sequences_visit_every_usable_address_once() -> None:
    for cidr in ["10.0.0.0/28", "10.0.0.0/29", "fd00::/120"]:
        rng = AddressRange(cidr)
        for key in keys(20):
            start, step = rng.probe(key)
            assert sorted((start + i * step) % rng.size for i in range(rng.size)) == list(range(rng.size))
