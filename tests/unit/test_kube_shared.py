"""SharedCopies: one copy of each repeated JSON fragment, never a copy that is not equal."""

from __future__ import annotations

from mcs_apiserver.kube.shared import SharedCopies


def test_equal_fragments_share_the_first_copy() -> None:
    shared = SharedCopies()
    first = shared.of([{"name": "http", "protocol": "TCP", "port": 80}])
    again = shared.of([{"name": "http", "protocol": "TCP", "port": 80}])
    assert again is first
    assert shared.of([{"name": "http", "protocol": "TCP", "port": 81}]) is not first


def test_values_that_compare_equal_but_serialize_differently_are_not_shared() -> None:
    shared = SharedCopies()
    assert shared.of({"ready": 1}) == shared.of({"ready": True})
    assert shared.of({"ready": True})["ready"] is True
    shared.of({"port": 1})
    assert type(shared.of({"port": 1.0})["port"]) is float
    assert list(shared.of({"b": "2", "a": "1"})) == ["b", "a"]
    assert list(shared.of({"a": "1", "b": "2"})) == ["a", "b"]
    assert type(shared.of(("IPv4",))) is tuple and type(shared.of(["IPv4"])) is list


def test_what_is_not_json_is_handed_back_unshared() -> None:
    shared = SharedCopies()
    odd = [{1, 2}]
    assert shared.of(odd) is odd
    assert len(shared) == 0


def test_a_full_table_starts_over_and_still_hands_back_equal_values() -> None:
    shared = SharedCopies(limit=2)
    a, b = shared.of(["a"]), shared.of(["b"])
    c = shared.of(["c"])
    assert len(shared) == 1
    assert shared.of(["c"]) is c
    assert shared.of(["a"]) == a and shared.of(["b"]) == b
