"""ViewEngine: incremental updates, deltas, namespace sameness, membership, IPs, speed."""

from __future__ import annotations

import random
from datetime import datetime, timezone
from typing import Any

import pytest

from mcs_apiserver.views import UNCHANGED, ViewDelta, ViewEngine
from mcs_apiserver.views.imports import export_conflicts, import_uid
from mcs_apiserver.contract import CLUSTER_ID_PROPERTY, CLUSTERSET_PROPERTY, MemberStatus
from mcs_apiserver.views.testing import InMemoryMember, member, port, service

WEB = ("shop", "web")
DB = ("shop", "db")
FIXED = datetime(2026, 1, 2, tzinfo=timezone.utc)
EXPIRED = MemberStatus(connected=False, synced=True, last_sync="2026-01-01T00:00:00Z", expired=True)
UNREACHABLE = MemberStatus(connected=False, synced=True, last_sync="2026-01-01T00:00:00Z")


def at(second: int, micro: int = 0) -> str:
    return f"2026-01-01T00:00:{second:02d}.{micro:06d}Z"


def world(*names: str, local_namespaces: tuple[str, ...] = ("default", "shop")) -> dict[str, InMemoryMember]:
    """Members a (local), b, c... of set-1, each with cluster ID = name."""
    ms = {n: member(n, namespaces=local_namespaces if n == "a" else ("default",)) for n in names or ("a", "b", "c")}
    return ms


def engine(**kwargs: Any) -> ViewEngine:
    kwargs.setdefault("now", lambda: FIXED)
    return ViewEngine("a", **kwargs)


def web_service(key=WEB, **kwargs: Any):
    kwargs.setdefault("ports", [port(80, "http")])
    return service(key, **kwargs)


# --- deltas --------------------------------------------------------------------------------------


def test_the_first_update_serves_everything_and_an_unchanged_update_reports_nothing() -> None:
    ms = world()
    ms["b"].export(WEB, web_service(), at(1), ready=1)
    ms["c"].export(DB, web_service(DB), at(2), ready=1)
    e = engine()
    assert e.membership is None and e.clusterset is None
    first = e.update(ms)
    assert e.membership is not None and e.membership.eligible == {"a": "a", "b": "b", "c": "c"}
    assert set(first.imports) == {WEB, DB}
    assert first.clusterset is e.clusterset is not None
    assert dict(e.imports) == first.imports
    again = e.update(ms, changed_keys={WEB, DB}, changed_namespaces={"shop"})
    assert again.imports == {} and again.clusterset is UNCHANGED and not again
    full = e.update(ms, membership_changed=True)
    assert full.imports == {} and not full


def web_and_db_imported() -> tuple[dict[str, InMemoryMember], ViewEngine]:
    """A ClusterSet where member b exports WEB and DB, and an engine that has seen it."""
    ms = world()
    ms["b"].export(WEB, web_service(), at(1), ready=1)
    ms["b"].export(DB, web_service(DB), at(2), ready=1)
    e = engine()
    e.update(ms)
    return ms, e


def test_only_imports_whose_served_object_changed_are_in_the_delta() -> None:
    ms, e = web_and_db_imported()
    ms["b"].endpoints[WEB] = 3
    ms["b"].services[DB] = web_service(DB, selector={"app": "new"})  # not a field the import shows
    delta = e.update(ms, changed_keys={WEB, DB})
    assert list(delta.imports) == [WEB]
    assert delta.imports[WEB]["status"]["clusters"][0]["readyEndpoints"] == 3  # type: ignore[index]
    assert e.imports[WEB] == delta.imports[WEB]  # built again when read: equal, not the same dict


def test_removing_the_last_export_deletes_the_import() -> None:
    ms = world()
    ms["b"].export(WEB, web_service(), at(1))
    ms["c"].export(WEB, web_service(), at(2))
    e = engine()
    e.update(ms)
    ms["b"].unexport(WEB)
    delta = e.update(ms, changed_keys={WEB})
    assert [c["cluster"] for c in delta.imports[WEB]["status"]["clusters"]] == ["c"]  # type: ignore[index]
    ms["c"].unexport(WEB)
    delta = e.update(ms, changed_keys={WEB})
    assert delta.imports == {WEB: None}
    assert WEB not in e.imports and e.derived(WEB) is None


def test_a_deleted_service_withdraws_that_clusters_contribution() -> None:
    ms = world()
    ms["b"].export(WEB, web_service(), at(1))
    e = engine()
    e.update(ms)
    del ms["b"].services[WEB]
    assert e.update(ms, changed_keys={WEB}).imports == {WEB: None}


# --- namespace sameness --------------------------------------------------------------------------


def test_an_import_is_served_only_where_its_namespace_exists_in_the_local_cluster() -> None:
    ms = world(local_namespaces=("default",))
    ms["b"].export(WEB, web_service(), at(1))
    e = engine()
    assert e.update(ms).imports == {}
    assert e.derived(WEB) is not None  # it exists in the ClusterSet, just not here
    ms["a"].add_namespace("shop")
    created = e.update(ms, changed_namespaces={"shop"})
    assert list(created.imports) == [WEB] and created.imports[WEB] is not None
    del ms["a"].namespaces["shop"]
    assert e.update(ms, changed_namespaces={"shop"}).imports == {WEB: None}


def test_a_namespace_of_another_member_does_not_make_an_import_appear() -> None:
    ms = world(local_namespaces=("default",))
    ms["b"].export(WEB, web_service(), at(1))  # b has "shop"
    e = engine()
    e.update(ms)
    ms["c"].add_namespace("shop")
    assert e.update(ms, changed_namespaces={"shop"}).imports == {}


# --- membership ----------------------------------------------------------------------------------


def test_the_clusterset_is_in_the_delta_only_when_it_changes() -> None:
    ms = world()
    e = engine()
    assert e.update(ms).clusterset_changed
    assert e.update(ms).clusterset is UNCHANGED
    ms["b"].export(WEB, web_service(), at(1))
    delta = e.update(ms, changed_keys={WEB})
    assert delta.clusterset is e.clusterset
    assert [m["exports"] for m in e.clusterset["status"]["members"]] == [0, 1, 0]  # type: ignore[index]


def test_leaving_the_clusterset_removes_the_clusterset_and_every_import() -> None:
    ms = world()
    ms["b"].export(WEB, web_service(), at(1))
    e = engine()
    e.update(ms)
    del ms["a"].cluster_properties[CLUSTERSET_PROPERTY]
    delta = e.update(ms, membership_changed=True)
    assert delta.clusterset is None and delta.clusterset_changed
    assert delta.imports == {WEB: None}
    assert e.clusterset is None and dict(e.imports) == {}
    ms["a"].set_property(CLUSTERSET_PROPERTY, "set-1")
    assert set(e.update(ms, membership_changed=True).imports) == {WEB}


def test_renaming_the_clusterset_gives_every_import_a_new_uid() -> None:
    ms = world()
    ms["b"].export(WEB, web_service(), at(1))
    for m in ms.values():
        m.set_property(CLUSTERSET_PROPERTY, "set-1")
    e = engine()
    e.update(ms)
    old_uid = e.imports[WEB]["metadata"]["uid"]
    for m in ms.values():
        m.set_property(CLUSTERSET_PROPERTY, "set-2")
    delta = e.update(ms, membership_changed=True)
    assert e.clusterset is not None and e.clusterset["metadata"]["name"] == "set-2"
    assert delta.imports[WEB]["metadata"]["uid"] == import_uid("set-2", *WEB) != old_uid  # type: ignore[index]


def test_a_change_of_eligibility_recomputes_the_imports_even_without_the_flag() -> None:
    ms = world()
    ms["b"].export(WEB, web_service(), at(1))
    e = engine()
    e.update(ms)
    ms["b"].status = EXPIRED
    assert e.update(ms).imports == {WEB: None}


def test_a_member_in_its_grace_period_keeps_its_exports_and_an_expired_one_loses_them() -> None:
    ms = world()
    ms["b"].export(WEB, web_service(), at(1))
    ms["c"].export(WEB, web_service(), at(2))
    e = engine()
    e.update(ms)
    ms["b"].status = UNREACHABLE
    delta = e.update(ms, membership_changed=True)
    assert delta.imports == {}  # still served from b's last known export
    assert [m["state"] for m in e.clusterset["status"]["members"]] == ["Joined", "Unreachable", "Joined"]  # type: ignore[index]
    ms["b"].status = EXPIRED
    delta = e.update(ms, membership_changed=True)
    assert [c["cluster"] for c in delta.imports[WEB]["status"]["clusters"]] == ["c"]  # type: ignore[index]


def test_duplicate_cluster_ids_exclude_every_member_that_shares_one() -> None:
    ms = world("a", "b", "c", "d")
    ms["c"].set_property(CLUSTER_ID_PROPERTY, "b")
    for name in "bcd":
        ms[name].export(WEB, web_service(), at(ord(name) - 90))
    e = engine()
    e.update(ms)
    assert [c["cluster"] for c in e.imports[WEB]["status"]["clusters"]] == ["d"]


def test_members_of_another_clusterset_or_without_an_id_contribute_nothing() -> None:
    ms = world("a", "b", "c", "d")
    ms["b"].set_property(CLUSTERSET_PROPERTY, "set-2")
    del ms["c"].cluster_properties[CLUSTER_ID_PROPERTY]
    for name in "bcd":
        ms[name].export(WEB, web_service(), at(ord(name) - 90))
    e = engine()
    e.update(ms)
    assert [c["cluster"] for c in e.imports[WEB]["status"]["clusters"]] == ["d"]
    states = {m["name"]: m["state"] for m in e.clusterset["status"]["members"]}  # type: ignore[index]
    assert states == {"a": "Joined", "b": "NotMember", "c": "MissingID", "d": "Joined"}


def test_the_local_clusters_own_exports_count() -> None:
    ms = world()
    ms["a"].export(WEB, web_service(), at(1))
    e = engine()
    e.update(ms)
    assert [c["cluster"] for c in e.imports[WEB]["status"]["clusters"]] == ["a"]


# --- ClusterSetIPs -------------------------------------------------------------------------------


def test_two_ranges_of_one_family_are_refused() -> None:
    with pytest.raises(ValueError, match="two ClusterSetIP ranges for IPv4"):
        ViewEngine("a", ip_ranges=["10.0.0.0/24", "10.1.0.0/24"])


def test_an_import_gets_one_address_per_family_from_the_default_ranges() -> None:
    ms = world()
    ms["b"].export(WEB, web_service(families=("IPv4", "IPv6")), at(1))
    e = engine()
    e.update(ms)
    ipv4, ipv6 = e.imports[WEB]["spec"]["ips"]
    assert ipv4.startswith("243.0.") and ipv6.startswith("fd00:243::")


def test_without_a_range_for_its_family_an_import_is_not_ready() -> None:
    ms = world()
    ms["b"].export(WEB, web_service(families=("IPv6",)), at(1), ready=1)
    e = engine(ip_ranges=["243.0.0.0/16"])
    e.update(ms)
    ready = e.imports[WEB]["status"]["conditions"][0]
    assert (ready["status"], ready["reason"]) == ("False", "IPFamilyNotSupported")


def test_a_displaced_import_is_in_the_delta_when_an_older_import_takes_its_address() -> None:
    ms = world()
    e = engine(ip_ranges=["10.0.0.0/30"])  # two addresses
    keys = [("shop", f"s{i}") for i in range(3)]
    ms["b"].export(keys[0], web_service(keys[0]), at(10))
    ms["b"].export(keys[1], web_service(keys[1]), at(11))
    e.update(ms)
    assert sorted(e.imports[k]["spec"]["ips"][0] for k in keys[:2]) == ["10.0.0.1", "10.0.0.2"]
    ms["c"].export(keys[2], web_service(keys[2]), at(1))  # the oldest: takes an address from a younger one
    delta = e.update(ms, changed_keys={keys[2]})
    assert keys[2] in delta.imports and "ips" in e.imports[keys[2]]["spec"]
    losers = [k for k in keys[:2] if "ips" not in e.imports[k]["spec"]]
    assert len(losers) == 1 and losers[0] in delta.imports
    ready = e.imports[losers[0]]["status"]["conditions"][0]
    assert ready["reason"] == "Pending" and "no free address" in ready["message"]


def test_every_instance_computes_the_same_addresses_whatever_order_it_learns_things_in() -> None:
    rnd = random.Random(7)
    ranges = ["10.0.0.0/27", "fd00::/123"]  # 30 addresses for 24 imports: many collisions
    keys = [("shop", f"s{i}") for i in range(24)]
    exports = [(rnd.choice("abc"), key, at(rnd.randrange(60), rnd.randrange(3))) for key in keys]

    one = world()
    for name, key, when in exports:
        one[name].export(key, web_service(key, families=("IPv4", "IPv6")), when)
    e1 = ViewEngine("a", ip_ranges=ranges, now=lambda: FIXED)
    e1.update(one)

    two = world("c", "b", "a", local_namespaces=("default", "shop"))  # another local member
    e2 = ViewEngine("c", ip_ranges=ranges, now=lambda: FIXED)
    two["c"].add_namespace("shop")
    e2.update(two)
    for name, key, when in rnd.sample(exports, len(exports)):
        two[name].export(key, web_service(key, families=("IPv4", "IPv6")), when)
        e2.update(two, changed_keys={key})
    assert {k: o["spec"].get("ips") for k, o in e1.imports.items()} == {
        k: o["spec"].get("ips") for k, o in e2.imports.items()
    }
    assert len(e1.imports) == 24


# --- the webhook's view --------------------------------------------------------------------------


def test_the_engine_hands_the_webhook_the_eligible_contributions_of_a_key() -> None:
    ms = world("a", "b", "c", "d")
    ms["b"].export(WEB, web_service(), at(1))
    ms["c"].export(WEB, web_service(headless=True), at(2))
    ms["d"].export(WEB, web_service(), at(3))
    ms["d"].status = EXPIRED
    e = engine()
    e.update(ms)
    contributions = e.contributions(ms, WEB)
    assert sorted(c.cluster for c in contributions) == ["b", "c"]
    candidate = next(c for c in contributions if c.cluster == "c")
    assert [c.reason for c in export_conflicts(candidate, contributions)] == ["TypeConflict"]
    assert ViewEngine("a").contributions(ms, WEB) == []  # before the first update


# --- incremental == full -------------------------------------------------------------------------


def _random_change(rnd: random.Random, ms: dict[str, InMemoryMember], keys: list[tuple[str, str]]):
    """Mutate the members at random; return (changed_keys, changed_namespaces, membership_changed)."""
    name = rnd.choice(list(ms))
    m = ms[name]
    key = rnd.choice(keys)
    roll = rnd.random()
    if roll < 0.35:
        kind = rnd.choice(["plain", "headless", "dual", "nodeport", "external", "affinity", "ports", "none"])
        svc: Any = {
            "plain": web_service(key),
            "headless": web_service(key, headless=True),
            "dual": web_service(key, families=("IPv4", "IPv6")),
            "nodeport": web_service(key, type_="NodePort", ports=[port(80, "web")]),
            "external": web_service(key, type_="ExternalName"),
            "affinity": web_service(key, sessionAffinity="ClientIP"),
            "ports": web_service(key, ports=[port(8080, "http"), port(53, "dns", "UDP")]),
            "none": None,
        }[kind]
        had_namespace = key[0] in m.namespaces
        m.export(key, svc, at(rnd.randrange(10), rnd.randrange(2)), ready=rnd.randrange(3), labels=rnd.choice([None, {"v": "1"}]))
        return {key}, (set() if had_namespace else {key[0]}), False  # export() creates a missing namespace
    if roll < 0.55:
        m.unexport(key)
        return {key}, set(), False
    if roll < 0.65:
        if key in m.exports:
            m.endpoints[key] = rnd.randrange(4)
        return {key}, set(), False
    if roll < 0.75:
        ns = rnd.choice(["shop", "bank", "default"])
        if ns in m.namespaces:
            del m.namespaces[ns]
        else:
            m.add_namespace(ns)
        return set(), {ns}, False
    if roll < 0.85:
        m.status = rnd.choice([MemberStatus(True, True, "2026-01-01T00:00:00Z"), UNREACHABLE, EXPIRED])
        return set(), set(), rnd.random() < 0.5
    if roll < 0.95:
        m.set_property(CLUSTER_ID_PROPERTY, rnd.choice(list(ms)))  # may create duplicates, or undo them
        return set(), set(), rnd.random() < 0.5
    if name == "a":
        if CLUSTERSET_PROPERTY in m.cluster_properties:
            del m.cluster_properties[CLUSTERSET_PROPERTY]
        else:
            m.set_property(CLUSTERSET_PROPERTY, "set-1")
    else:
        m.set_property(CLUSTERSET_PROPERTY, rnd.choice(["set-1", "set-2"]))
    return set(), set(), True


@pytest.mark.parametrize("seed", range(12))
def test_the_incremental_engine_always_equals_a_full_recompute(seed: int) -> None:
    rnd = random.Random(seed)
    ms = world("a", "b", "c", "d")
    keys = [(ns, f"s{i}") for ns in ("shop", "bank") for i in range(6)]
    ranges = ["10.0.0.0/28", "fd00::/124"]  # 14 addresses for up to 12 imports: collisions and displacement
    e = ViewEngine("a", ip_ranges=ranges, now=lambda: FIXED)
    shadow: dict[tuple[str, str], Any] = {}
    shadow_clusterset: Any = None
    for _ in range(150):
        changed_keys, changed_namespaces, membership_changed = _random_change(rnd, ms, keys)
        delta = e.update(ms, changed_keys, changed_namespaces, membership_changed)
        for key, obj in delta.imports.items():
            assert (obj is None) == (key in shadow and key not in e.imports)
            if obj is None:
                del shadow[key]
            else:
                shadow[key] = obj
        if delta.clusterset_changed:
            shadow_clusterset = delta.clusterset
        fresh = ViewEngine("a", ip_ranges=ranges, now=lambda: FIXED)
        fresh.update(ms)
        assert dict(e.imports) == dict(fresh.imports) == shadow
        assert e.clusterset == fresh.clusterset == shadow_clusterset


# --- ViewDelta ---------------------------------------------------------------------------------


def test_an_empty_delta_is_false_and_the_unchanged_sentinel_is_distinct_from_none() -> None:
    assert not ViewDelta()
    assert ViewDelta(clusterset=None)
    assert ViewDelta(clusterset=None).clusterset_changed
    assert not ViewDelta().clusterset_changed
    assert UNCHANGED is not None and repr(UNCHANGED) == "UNCHANGED"


def test_imports_with_equal_ports_families_and_conditions_share_one_copy_of_each() -> None:
    _, e = web_and_db_imported()
    web, db = e.imports[WEB], e.imports[DB]
    assert web["spec"]["ports"] == [{"name": "http", "protocol": "TCP", "port": 80}]
    assert web["spec"]["ports"] is db["spec"]["ports"]
    assert web["spec"]["ipFamilies"] is db["spec"]["ipFamilies"]
    assert web["status"]["conditions"] is db["status"]["conditions"]
    assert web["status"]["clusters"] is not db["status"]["clusters"]  # their exportedAt differs
