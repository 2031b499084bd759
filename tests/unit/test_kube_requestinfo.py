"""The request info: computed once per request, read by authorization, limits, metrics and handlers."""

from __future__ import annotations

import pytest
from multidict import MultiDict

from mcs_apiserver.kube.requestinfo import ListOptions, RequestInfo, parse_bool, request_info

G = "views.multicluster.x-k8s.io"
P = f"/apis/{G}/v1alpha1"


def info(method: str, path: str, **query: str) -> RequestInfo:
    return request_info(method, path, MultiDict(query))


@pytest.mark.parametrize("value", ["t", "T", "1", "true", "TRUE", "yes"])
def test_a_query_boolean_is_true_unless_empty_zero_or_false(value: str) -> None:
    assert parse_bool(value)
    assert info("GET", f"{P}/serviceimports", watch=value).verb == "watch"


@pytest.mark.parametrize("value", ["", "0", "false", "False", "FALSE"])
def test_a_query_boolean_is_false_when_empty_zero_or_false(value: str) -> None:
    assert not parse_bool(value)
    assert info("GET", f"{P}/serviceimports", watch=value).verb == "list"


def test_list_options_are_decoded_once_with_int64_numbers() -> None:
    got = info("GET", f"{P}/namespaces/shop/serviceimports", limit="-1", timeoutSeconds="-1",
               labelSelector="a=b", fieldSelector="spec.type=Headless", allowWatchBookmarks="1",
               sendInitialEvents="true", resourceVersion="5", resourceVersionMatch="NotOlderThan")
    assert got.options == ListOptions(
        label_selector="a=b", field_selector="spec.type=Headless", field_terms=(("spec.type", "=", "Headless"),),
        resource_version="5", resource_version_match="NotOlderThan", limit=-1, timeout_seconds=-1,
        allow_watch_bookmarks=True, send_initial_events=True)
    assert got.options_error == ""
    assert (got.verb, got.namespace, got.resource) == ("list", "shop", "serviceimports")


@pytest.mark.parametrize("query", [{"limit": "99999999999999999999"}, {"limit": "ten"},
                                   {"timeoutSeconds": "-9223372036854775809"}, {"fieldSelector": "a"}])
def test_options_that_do_not_decode_are_kept_as_an_error_for_the_handler(query: dict[str, str]) -> None:
    got = info("GET", f"{P}/serviceimports", **query)
    assert got.verb == "list"
    assert got.options_error


def test_options_that_do_not_decode_still_leave_a_watch_a_watch() -> None:
    got = info("GET", f"{P}/serviceimports", watch="t", limit="x")
    assert got.verb == "watch" and got.options.watch and got.options_error


def test_a_field_selector_on_the_name_pins_the_name_but_keeps_a_collection_request() -> None:
    got = info("GET", f"{P}/namespaces/shop/serviceimports", fieldSelector="metadata.name=web", watch="1")
    assert (got.verb, got.name, got.name_from_selector) == ("watch", "web", True)
    named = info("GET", f"{P}/namespaces/shop/serviceimports/web")
    assert (named.verb, named.name, named.name_from_selector) == ("get", "web", False)


def test_a_named_get_with_watch_is_a_watch() -> None:
    assert info("GET", f"{P}/namespaces/shop/serviceimports/web", watch="true").verb == "watch"


def test_equality_covers_the_authorization_attributes_only() -> None:
    first = info("GET", f"{P}/serviceimports", limit="10")
    second = info("GET", f"{P}/serviceimports", limit="10", **{"continue": "abc"})
    assert first == second and hash(first) == hash(second)
    assert first != info("GET", f"{P}/serviceimports", watch="1")


@pytest.mark.parametrize(("method", "path", "read_only"), [
    ("GET", f"{P}/serviceimports", True), ("GET", "/healthz", True), ("POST", "/webhooks/admit/serviceexports", False),
    ("DELETE", f"{P}/serviceimports", False), ("PUT", f"{P}/clustersets/x", False),
])
def test_read_only_and_mutating_requests_are_told_apart_by_verb(method: str, path: str, read_only: bool) -> None:
    assert info(method, path).read_only is read_only


def test_only_watches_are_long_running() -> None:
    assert info("GET", f"{P}/serviceimports", watch="1").long_running
    assert not info("GET", f"{P}/serviceimports").long_running
