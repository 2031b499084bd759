"""Accept negotiation and includeObject (mcs_apiserver.api.negotiation)."""

from __future__ import annotations

import pytest

from mcs_apiserver.api.negotiation import (
    DISCOVERY_ROOT,
    GET,
    LIST,
    PLAIN,
    WATCH,
    IncludeObject,
    NotAcceptableError,
    Target,
    negotiate,
    parse_accept,
    parse_include_object,
)
from mcs_apiserver.kube.status import StatusError

KUBECTL_GET = (
    "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,"
    "application/json"
)
METADATA_CLIENT_LIST = (
    "application/vnd.kubernetes.protobuf;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,"
    "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json"
)
METADATA_CLIENT_GET = (
    "application/vnd.kubernetes.protobuf;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,"
    "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json"
)
AGGREGATOR = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"


def test_kubectl_get_gets_a_v1_table() -> None:
    chosen = negotiate(KUBECTL_GET, LIST)
    assert (chosen.target, chosen.api_version, chosen.content_type) == (
        Target.TABLE,
        "meta.k8s.io/v1",
        "application/json",
    )


def test_an_older_client_asking_only_for_v1beta1_tables_gets_v1beta1() -> None:
    chosen = negotiate("application/json;as=Table;v=v1beta1;g=meta.k8s.io", GET)
    assert chosen.api_version == "meta.k8s.io/v1beta1"


def test_the_metadata_client_skips_protobuf_and_gets_partial_object_metadata() -> None:
    assert negotiate(METADATA_CLIENT_LIST, LIST).target is Target.PARTIAL_OBJECT_METADATA_LIST
    assert negotiate(METADATA_CLIENT_GET, GET).target is Target.PARTIAL_OBJECT_METADATA
    assert negotiate(METADATA_CLIENT_GET, WATCH).target is Target.PARTIAL_OBJECT_METADATA


def test_a_non_list_partial_object_metadata_on_a_list_falls_through_to_plain_json() -> None:
    assert negotiate(METADATA_CLIENT_GET, LIST).target is Target.OBJECT


@pytest.mark.parametrize(
    "accept", [None, "", "   ", "*/*", "*", "application/*", "application/json", "application/json;charset=utf-8"]
)
def test_plain_and_wildcard_accepts_mean_the_object_as_json(accept: str | None) -> None:
    chosen = negotiate(accept, GET)
    assert chosen.target is Target.OBJECT
    assert chosen.api_version == "" and chosen.content_type == "application/json"


def test_protobuf_alone_is_not_acceptable() -> None:
    with pytest.raises(NotAcceptableError) as caught:
        negotiate("application/vnd.kubernetes.protobuf", GET)
    assert caught.value.code == 406
    assert caught.value.status["message"] == "only the following media types are accepted: application/json"


@pytest.mark.parametrize(
    "accept",
    [
        "application/yaml",
        "text/html",
        "application/cbor",
        "application/json;as=Table",  # no group/version: kube-apiserver refuses it too
        "application/json;as=Table;g=meta.k8s.io;v=v2",
        "application/json;as=Table;g=other.io;v=v1",
        "application/json;as=Flunder;g=meta.k8s.io;v=v1",
        "application/json;q=0",
        "application/json;stream=other",
        "application/json;sv=v1",
    ],
)
def test_unservable_clauses_alone_are_not_acceptable(accept: str) -> None:
    with pytest.raises(NotAcceptableError):
        negotiate(accept, GET)


def test_a_higher_q_value_wins_over_the_order_written() -> None:
    accept = "application/json;q=0.5, application/json;as=Table;g=meta.k8s.io;v=v1"
    assert negotiate(accept, LIST).target is Target.TABLE
    accept = "application/json;as=Table;g=meta.k8s.io;v=v1;q=0.2, application/json;q=0.9"
    assert negotiate(accept, LIST).target is Target.OBJECT


def test_a_specific_type_wins_over_a_wildcard_with_the_same_q() -> None:
    clauses = parse_accept("*/*, application/*, application/json;as=Table;g=meta.k8s.io;v=v1")
    assert [(c.type, c.subtype) for c in clauses] == [("application", "json"), ("application", "*"), ("*", "*")]


def test_q_zero_excludes_a_clause() -> None:
    accept = "application/json;as=Table;g=meta.k8s.io;v=v1;q=0, application/json;q=0.1"
    assert negotiate(accept, LIST).target is Target.OBJECT


def test_a_table_is_not_offered_where_the_endpoint_does_not_allow_it() -> None:
    assert negotiate(KUBECTL_GET, PLAIN).target is Target.OBJECT
    with pytest.raises(NotAcceptableError):
        negotiate("application/json;as=Table;v=v1;g=meta.k8s.io", PLAIN)


def test_the_aggregator_gets_aggregated_discovery_with_a_content_type_naming_it() -> None:
    chosen = negotiate(AGGREGATOR, DISCOVERY_ROOT)
    assert chosen.target is Target.API_GROUP_DISCOVERY_LIST
    assert chosen.api_version == "apidiscovery.k8s.io/v2"
    assert chosen.content_type == "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"


def test_a_pre_1_30_aggregator_gets_v2beta1() -> None:
    chosen = negotiate(AGGREGATOR.replace("v=v2", "v=v2beta1"), DISCOVERY_ROOT)
    assert chosen.version == "v2beta1"


def test_kubectl_discovery_accept_prefers_v2_then_falls_back_to_the_group_list() -> None:
    accept = f"{AGGREGATOR},{AGGREGATOR.replace('v=v2', 'v=v2beta1')},application/json"
    assert negotiate(accept, DISCOVERY_ROOT).version == "v2"
    assert negotiate(accept, PLAIN).target is Target.OBJECT


def test_only_aggregated_discovery_on_a_plain_endpoint_is_not_acceptable() -> None:
    with pytest.raises(NotAcceptableError):
        negotiate(AGGREGATOR, PLAIN)


def test_stream_watch_and_pretty_parameters_are_accepted() -> None:
    chosen = negotiate("application/json;stream=watch;pretty=1", WATCH)
    assert chosen.target is Target.OBJECT and chosen.pretty


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, IncludeObject.METADATA),
        ("", IncludeObject.METADATA),
        ("Metadata", IncludeObject.METADATA),
        ("None", IncludeObject.NONE),
        ("Object", IncludeObject.OBJECT),
    ],
)
def test_include_object_defaults_to_metadata(value: str | None, expected: IncludeObject) -> None:
    assert parse_include_object(value) is expected


def test_an_unknown_include_object_is_a_bad_request_with_kube_apiservers_message() -> None:
    with pytest.raises(StatusError) as caught:
        parse_include_object("object")
    assert caught.value.code == 400
    assert caught.value.status["message"] == 'unrecognized includeObject value: "object"'
