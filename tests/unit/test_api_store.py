"""The versioned store: resourceVersions, snapshots for paginated lists, history and watch fan-out."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from mcs_apiserver.api.store import (
    Event,
    Store,
    StoreSettings,
    TooLarge,
    TooOld,
    Versioner,
    Watcher,
)

ORIGIN = 1_000


def obj(namespace: str, name: str, *, labels: dict[str, str] | None = None, port: int = 80) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, "namespace": namespace, "uid": f"uid-{namespace}-{name}"}
    if labels:
        metadata["labels"] = labels
    return {
        "apiVersion": "views.multicluster.x-k8s.io/v1alpha1",
        "kind": "ServiceImport",
        "metadata": metadata,
        "spec": {"type": "ClusterSetIP", "ports": [{"port": port, "protocol": "TCP"}]},
    }


def everything(_: Any) -> bool:
    return True


def labelled(key: str, value: str):
    return lambda o: (o.get("metadata", {}).get("labels") or {}).get(key) == value


@pytest.fixture
def versioner() -> Versioner:
    return Versioner(ORIGIN)


@pytest.fixture
def store(versioner: Versioner) -> Store:
    return Store("serviceimports", versioner)


def names(items) -> list[tuple[str, str]]:
    return [s.key for s in items]


# --- versions -----------------------------------------------------------------------------------


def test_resource_versions_start_at_the_origin_and_grow_by_one_per_change(store: Store) -> None:
    assert store.resource_version == ORIGIN
    events = store.apply({("shop", "web"): obj("shop", "web"), ("shop", "db"): obj("shop", "db")})
    assert [e.rv for e in events] == [ORIGIN + 1, ORIGIN + 2]
    assert store.resource_version == ORIGIN + 2


def test_two_stores_of_one_versioner_never_hand_out_the_same_version(versioner: Versioner) -> None:
    imports, clustersets = Store("serviceimports", versioner), Store("clustersets", versioner)
    first = imports.apply({("shop", "web"): obj("shop", "web")})
    second = clustersets.apply({("", "set-1"): {"metadata": {"name": "set-1"}}})
    assert second[0].rv == first[0].rv + 1
    assert imports.resource_version == clustersets.resource_version == second[0].rv


def test_the_default_origin_is_the_start_time_in_microseconds() -> None:
    import time

    before = int(time.time() * 1_000_000)
    assert Versioner().origin >= before


def test_changes_are_applied_in_key_order_whatever_order_they_are_given(store: Store) -> None:
    events = store.apply({("z", "a"): obj("z", "a"), ("a", "z"): obj("a", "z"), ("a", "b"): obj("a", "b")})
    assert [e.stored.key for e in events] == [("a", "b"), ("a", "z"), ("z", "a")]


def test_a_stored_object_is_a_stamped_copy_and_the_given_object_is_never_mutated(store: Store) -> None:
    given = obj("shop", "web")
    frozen = orjson.dumps(given)
    (event,) = store.apply({("shop", "web"): given})
    assert orjson.dumps(given) == frozen
    assert event.stored.obj["metadata"]["resourceVersion"] == str(event.rv)
    assert orjson.loads(event.stored.json)["metadata"]["resourceVersion"] == str(event.rv)


def test_added_then_modified_then_deleted_events_describe_an_objects_life(store: Store) -> None:
    (added,) = store.apply({("shop", "web"): obj("shop", "web")})
    (modified,) = store.apply({("shop", "web"): obj("shop", "web", port=8080)})
    (deleted,) = store.apply({("shop", "web"): None})
    assert [added.type, modified.type, deleted.type] == ["ADDED", "MODIFIED", "DELETED"]
    assert modified.previous is added.stored
    assert store.get(("shop", "web")) is None


def test_a_deleted_event_carries_the_last_state_stamped_with_the_deletion_version(store: Store) -> None:
    store.apply({("shop", "web"): obj("shop", "web", port=8080)})
    (deleted,) = store.apply({("shop", "web"): None})
    assert deleted.stored.obj["spec"]["ports"][0]["port"] == 8080
    assert deleted.stored.obj["metadata"]["resourceVersion"] == str(deleted.rv)
    assert deleted.stored.rv == deleted.rv == store.resource_version


def test_deleting_what_is_not_there_is_no_event_and_no_new_version(store: Store) -> None:
    assert store.apply({("shop", "ghost"): None}) == []
    assert store.resource_version == ORIGIN


def test_an_objects_json_is_encoded_once_and_reused(store: Store) -> None:
    (event,) = store.apply({("shop", "web"): obj("shop", "web", labels={"app": "web"})})
    assert event.stored.json is event.stored.json
    assert event.stored.metadata_json is event.stored.metadata_json
    assert orjson.loads(event.stored.metadata_json)["labels"] == {"app": "web"}


def test_an_object_is_kept_only_as_its_json_and_read_back_as_a_fresh_copy(store: Store) -> None:
    served = obj("shop", "web", labels={"app": "web"})
    (event,) = store.apply({("shop", "web"): served})
    copy = event.stored.obj
    assert copy == {**served, "metadata": {**served["metadata"], "resourceVersion": str(event.rv)}}
    copy["metadata"]["labels"]["app"] = "changed"
    assert event.stored.obj["metadata"]["labels"] == {"app": "web"}
    assert "resourceVersion" not in served["metadata"]  # the given object is not stamped


def with_conditions(name: str, second: str) -> dict[str, Any]:
    served = obj("shop", name)
    served["status"] = {"clusters": [{"cluster": name}], "conditions": [
        {"type": "Ready", "status": "True", "reason": "Ready", "lastTransitionTime": f"2026-01-01T00:00:{second}Z"}]}
    return served


def test_equal_conditions_of_stored_objects_are_one_copy_and_each_json_is_whole(store: Store) -> None:
    events = store.apply({("shop", n): with_conditions(n, s) for n, s in (("a", "01"), ("b", "01"), ("c", "02"))})
    a, b, c = (e.stored for e in events)
    for stored, name, second in ((a, "a", "01"), (b, "b", "01"), (c, "c", "02")):
        expected = with_conditions(name, second)
        expected["metadata"]["resourceVersion"] = str(stored.rv)
        assert stored.json == orjson.dumps(expected)
    assert a.end is b.end and a.end is not c.end and a.end is not None
    assert a.end.conditions == orjson.dumps(with_conditions("a", "01")["status"]["conditions"])
    assert a.obj == orjson.loads(a.json) and c.obj == orjson.loads(c.json)  # conditions parsed once, put back
    (plain,) = store.apply({("shop", "plain"): obj("shop", "plain")})
    assert plain.stored.end is None and plain.stored.json is plain.stored.own


@pytest.mark.parametrize("served", [
    obj("shop", "web", labels={"app": "web", "tier": "front"}),
    obj("shop", "bare"),
    {"metadata": {"name": "cluster-scoped"}, "status": {}},
], ids=["labelled", "unlabelled", "cluster-scoped without a spec"])
def test_what_selectors_read_of_a_stored_object_is_what_its_json_says(store: Store, served: dict[str, Any]) -> None:
    from mcs_apiserver.api.resources import SUPPORTED_FIELDS

    key = (served["metadata"].get("namespace", ""), served["metadata"]["name"])
    (event,) = store.apply({key: served})
    stored = event.stored
    for field, read in SUPPORTED_FIELDS["serviceimports"].items():
        assert read(stored.selectable) == read(stored.obj), field
    assert stored.selectable["metadata"].get("labels") == stored.obj["metadata"].get("labels")


# --- snapshots ----------------------------------------------------------------------------------


def test_the_current_snapshot_is_every_object_in_key_order_at_the_last_change(store: Store) -> None:
    store.apply({("b", "x"): obj("b", "x"), ("a", "y"): obj("a", "y"), ("a", "x"): obj("a", "x")})
    version, items = store.snapshot()  # type: ignore[misc]
    assert version == store.resource_version
    assert names(items) == [("a", "x"), ("a", "y"), ("b", "x")]


def test_a_snapshot_does_not_change_when_the_store_does(store: Store) -> None:
    store.apply({("shop", "web"): obj("shop", "web")})
    version, before = store.snapshot()  # type: ignore[misc]
    store.apply({("shop", "db"): obj("shop", "db"), ("shop", "web"): None})
    again = store.snapshot(version)
    assert again is not None and again[1] is before
    assert names(before) == [("shop", "web")]
    assert names(store.snapshot()[1]) == [("shop", "db")]  # type: ignore[index]


def test_a_snapshot_answers_for_every_version_until_the_next_change(store: Store, versioner: Versioner) -> None:
    store.apply({("shop", "web"): obj("shop", "web")})
    version, items = store.snapshot()  # type: ignore[misc]
    versioner.next()  # another resource changed: same state of this one
    later = versioner.current
    assert store.snapshot(later) == (version, items)
    store.apply({("shop", "db"): obj("shop", "db")})
    assert store.snapshot(later) == (version, items)
    assert store.snapshot(store.resource_version - 1) == (version, items)


def test_a_version_whose_state_was_never_kept_has_no_snapshot(store: Store) -> None:
    store.apply({("shop", "web"): obj("shop", "web")})
    store.snapshot()
    store.apply({("shop", "db"): obj("shop", "db")})
    middle = store.resource_version
    store.apply({("shop", "api"): obj("shop", "api")})
    assert store.snapshot(middle) is None


def test_only_the_most_recently_used_snapshots_are_kept(versioner: Versioner) -> None:
    store = Store("serviceimports", versioner, StoreSettings(snapshots_kept=2))
    store.apply({("shop", "a"): obj("shop", "a")})
    first, _ = store.snapshot()  # type: ignore[misc]
    store.apply({("shop", "b"): obj("shop", "b")})
    second, _ = store.snapshot()  # type: ignore[misc]
    assert store.snapshot(first) is not None  # a paginated list reads its snapshot again
    store.apply({("shop", "c"): obj("shop", "c")})
    store.snapshot()  # a third one: the least recently used goes
    assert store.snapshot(first) is not None
    assert store.snapshot(second) is None


def test_the_key_range_of_a_namespace_excludes_namespaces_it_is_a_prefix_of(store: Store) -> None:
    store.apply({(ns, "x"): obj(ns, "x") for ns in ("shop", "shop-2", "sho", "shop.a")})
    _, items = store.snapshot()  # type: ignore[misc]
    start, end = store.key_range(items, "shop")
    assert names(items[start:end]) == [("shop", "x")]
    assert store.key_range(items, None) == (0, 4)
    start, end = store.key_range(items, "nothing-here")
    assert start == end


# --- history and watches --------------------------------------------------------------------------


def test_a_watch_from_a_version_gets_the_history_after_it(store: Store) -> None:
    store.apply({("shop", "web"): obj("shop", "web")})
    since = store.resource_version
    store.apply({("shop", "db"): obj("shop", "db")})
    store.apply({("shop", "web"): None})
    _, backlog = store.watch(None, everything, since=since)
    assert [(e.type, e.stored.key) for e in backlog] == [("ADDED", ("shop", "db")), ("DELETED", ("shop", "web"))]


def test_a_watch_from_before_this_process_is_too_old(store: Store) -> None:
    with pytest.raises(TooOld) as caught:
        store.watch(None, everything, since=ORIGIN - 500)
    assert caught.value.oldest == ORIGIN
    assert str(caught.value) == f"too old resource version: {ORIGIN - 500} ({ORIGIN})"


def test_a_watch_from_a_version_newer_than_any_handed_out_is_too_large(store: Store) -> None:
    with pytest.raises(TooLarge) as caught:
        store.watch(None, everything, since=ORIGIN + 10)
    assert (caught.value.requested, caught.value.current) == (ORIGIN + 10, ORIGIN)


def test_the_history_is_bounded_and_the_oldest_usable_version_moves_with_it(
    versioner: Versioner,
) -> None:
    store = Store("serviceimports", versioner, StoreSettings(history_events=3))
    for i in range(5):
        store.apply({("shop", f"s{i}"): obj("shop", f"s{i}")})
    # Kept: the events at ORIGIN+3..ORIGIN+5, so a watch can start from ORIGIN+2 but not before.
    _, backlog = store.watch(None, everything, since=ORIGIN + 2)
    assert [e.rv for e in backlog] == [ORIGIN + 3, ORIGIN + 4, ORIGIN + 5]
    with pytest.raises(TooOld) as caught:
        store.watch(None, everything, since=ORIGIN + 1)
    assert caught.value.oldest == ORIGIN + 2


def test_watchers_receive_only_their_namespace_and_their_selection(store: Store) -> None:
    shop, _ = store.watch("shop", everything, since=None)
    fronts, _ = store.watch(None, labelled("tier", "front"), since=None)
    store.apply({
        ("shop", "web"): obj("shop", "web", labels={"tier": "front"}),
        ("shop", "db"): obj("shop", "db"),
        ("other", "ui"): obj("other", "ui", labels={"tier": "front"}),
    })
    assert [e.stored.key for e in drain(shop)] == [("shop", "db"), ("shop", "web")]
    assert [e.stored.key for e in drain(fronts)] == [("other", "ui"), ("shop", "web")]


def drain(watcher: Watcher) -> list[Event | None]:
    """What the watcher holds, None for its closing."""
    events, closed = watcher.take()
    return [*events, None] if closed else list(events)


def test_leaving_a_selection_is_a_deleted_with_the_previous_state_at_the_new_version(store: Store) -> None:
    store.apply({("shop", "web"): obj("shop", "web", labels={"tier": "front"})})
    fronts, _ = store.watch(None, labelled("tier", "front"), since=None)
    other, _ = store.watch("shop", labelled("tier", "front"), since=None)
    (change,) = store.apply({("shop", "web"): obj("shop", "web", labels={"tier": "back"})})
    (seen,) = drain(fronts)
    assert seen is not None and seen.type == "DELETED"
    assert seen.stored.obj["metadata"]["labels"] == {"tier": "front"}  # what the watcher knew
    assert seen.stored.obj["metadata"]["resourceVersion"] == str(change.rv)
    assert seen.rv == change.rv
    (also,) = drain(other)
    assert also is not None and also.stored is seen.stored  # encoded once for every watcher


def test_entering_a_selection_is_an_added_with_the_new_state(store: Store) -> None:
    store.apply({("shop", "web"): obj("shop", "web", labels={"tier": "back"})})
    fronts, _ = store.watch(None, labelled("tier", "front"), since=None)
    (change,) = store.apply({("shop", "web"): obj("shop", "web", labels={"tier": "front"})})
    (seen,) = drain(fronts)
    assert seen is not None and (seen.type, seen.stored) == ("ADDED", change.stored)


def test_changes_outside_a_selection_are_not_delivered(store: Store) -> None:
    store.apply({("shop", "web"): obj("shop", "web", labels={"tier": "back"})})
    fronts, _ = store.watch(None, labelled("tier", "front"), since=None)
    store.apply({("shop", "web"): obj("shop", "web", labels={"tier": "middle"})})
    store.apply({("shop", "web"): None})
    assert drain(fronts) == []


def test_a_single_object_watcher_sees_only_its_key(store: Store) -> None:
    web, _ = store.watch("shop", everything, since=None, key=("shop", "web"))
    store.apply({("shop", "web"): obj("shop", "web"), ("shop", "web2"): obj("shop", "web2")})
    assert [e.stored.key for e in drain(web)] == [("shop", "web")]  # type: ignore[union-attr]


def test_the_history_replay_translates_selector_transitions_too(store: Store) -> None:
    store.apply({("shop", "web"): obj("shop", "web", labels={"tier": "front"})})
    since = store.resource_version
    store.apply({("shop", "web"): obj("shop", "web", labels={"tier": "back"})})
    _, backlog = store.watch(None, labelled("tier", "front"), since=since)
    assert [(e.type, e.stored.obj["metadata"]["labels"]) for e in backlog] == [("DELETED", {"tier": "front"})]


def test_a_watcher_that_falls_too_far_behind_is_closed(versioner: Versioner) -> None:
    store = Store("serviceimports", versioner, StoreSettings(watch_queue_limit=2))
    slow, _ = store.watch(None, everything, since=None)
    store.apply({("shop", f"s{i}"): obj("shop", f"s{i}") for i in range(5)})
    store.apply({("shop", "later"): obj("shop", "later")})
    queued = drain(slow)
    assert [e.stored.key if e else None for e in queued] == [("shop", "s0"), ("shop", "s1"), None]
    assert slow.overflowed


def test_closing_the_watchers_ends_every_watch(store: Store) -> None:
    first, _ = store.watch(None, everything, since=None)
    second, _ = store.watch("shop", everything, since=None)
    store.close_watchers()
    assert drain(first) == [None] and drain(second) == [None]
    store.apply({("shop", "web"): obj("shop", "web")})
    assert drain(first) == [] and drain(second) == []  # unregistered: offered nothing more


def test_an_unwatched_watcher_gets_nothing_more(store: Store) -> None:
    watcher, _ = store.watch(None, everything, since=None)
    store.unwatch(watcher)
    store.apply({("shop", "web"): obj("shop", "web")})
    assert drain(watcher) == []


def test_initial_events_are_the_current_objects_the_watcher_selects(store: Store) -> None:
    store.apply({
        ("shop", "web"): obj("shop", "web", labels={"tier": "front"}),
        ("shop", "db"): obj("shop", "db"),
        ("other", "ui"): obj("other", "ui", labels={"tier": "front"}),
    })
    in_shop, _ = store.watch("shop", labelled("tier", "front"), since=None)
    assert names(store.initial_events(in_shop)) == [("shop", "web")]
    one, _ = store.watch("shop", everything, since=None, key=("shop", "db"))
    assert names(store.initial_events(one)) == [("shop", "db")]
    missing, _ = store.watch("shop", everything, since=None, key=("shop", "ghost"))
    assert store.initial_events(missing) == []
