"""AdmissionReview parsing and response building (webhooks.review)."""

from __future__ import annotations

import base64
import copy

import orjson
import pytest

from webhooks.review import (
    MAX_BODY_BYTES,
    Decision,
    ReviewError,
    allow,
    deny,
    invalid,
    parse_review,
    review_response,
    unavailable,
)
from webhooks.testing import admission_review, cluster_property


def good_review() -> dict:
    return admission_review("CREATE", cluster_property("cluster.clusterset.k8s.io", "cluster-1"))


def with_request(**changes: object) -> bytes:
    review = good_review()
    for key, value in changes.items():
        if value is _DELETE:
            del review["request"][key]
        else:
            review["request"][key] = value
    return orjson.dumps(review)


_DELETE = object()


# --- parsing: the happy path ------------------------------------------------------------------------------


def test_a_well_formed_review_is_parsed_into_typed_fields() -> None:
    review = admission_review(
        "UPDATE",
        {"metadata": {"name": "web", "namespace": "shop"}},
        {"metadata": {"name": "web", "namespace": "shop"}},
        group="multicluster.x-k8s.io",
        version="v1alpha1",
        kind="ServiceExport",
        resource="serviceexports",
        namespace="shop",
        uid="abc-123",
        dry_run=True,
    )
    request = parse_review(orjson.dumps(review), content_type="application/json; charset=utf-8")
    assert request.uid == "abc-123"
    assert (request.kind.group, request.kind.version, request.kind.kind) == (
        "multicluster.x-k8s.io",
        "v1alpha1",
        "ServiceExport",
    )
    assert request.operation == "UPDATE"
    assert (request.namespace, request.name) == ("shop", "web")
    assert request.dry_run is True
    assert request.object == {"metadata": {"name": "web", "namespace": "shop"}}
    assert request.old_object == request.object
    assert request.user_info["username"] == "admin"


def test_a_delete_review_has_no_object_but_keeps_the_old_one() -> None:
    old = cluster_property("clusterset.k8s.io", "set-a")
    request = parse_review(orjson.dumps(admission_review("DELETE", None, old)))
    assert request.object is None
    assert request.old_object == old
    assert request.name == "clusterset.k8s.io"


def test_a_missing_content_type_is_accepted_as_json() -> None:
    assert parse_review(orjson.dumps(good_review()), content_type=None).operation == "CREATE"


@pytest.mark.parametrize(
    "content_type", ["application/json", "Application/JSON;charset=UTF-8", "application/vnd.k8s+json"]
)
def test_json_content_types_are_accepted(content_type: str) -> None:
    assert parse_review(orjson.dumps(good_review()), content_type=content_type).uid


# --- parsing: everything else is a 4xx, never a crash -----------------------------------------------------

BAD_BODIES = [
    pytest.param(b"", "empty", id="an empty body"),
    pytest.param(b"   \n", "empty", id="a blank body"),
    pytest.param(b"{", "not valid JSON", id="truncated JSON"),
    pytest.param(b"\xff\xfe{}", "not valid JSON", id="bytes that are not UTF-8"),
    pytest.param(b"[" * 5000 + b"]" * 5000, "not valid JSON", id="JSON nested deeper than the parser allows"),
    pytest.param(b"[]", "JSON object", id="a JSON array"),
    pytest.param(b"null", "JSON object", id="JSON null"),
    pytest.param(
        orjson.dumps({**good_review(), "apiVersion": "admission.k8s.io/v1beta1"}),
        "admissionReviewVersions",
        id="an admission.k8s.io/v1beta1 review",
    ),
    pytest.param(orjson.dumps({**good_review(), "kind": "Pod"}), "AdmissionReview", id="the wrong kind"),
    pytest.param(
        orjson.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}), "request", id="no request"
    ),
    pytest.param(orjson.dumps({**good_review(), "request": [1]}), "request", id="a request that is an array"),
    pytest.param(with_request(uid=_DELETE), "request.uid", id="no uid"),
    pytest.param(with_request(uid=""), "request.uid", id="an empty uid"),
    pytest.param(with_request(uid=42), "request.uid", id="a uid that is a number"),
    pytest.param(with_request(kind=_DELETE), "request.kind", id="no kind"),
    pytest.param(with_request(kind="ClusterProperty"), "request.kind", id="a kind that is a string"),
    pytest.param(
        with_request(kind={"group": "about.k8s.io", "version": "v1beta1", "kind": 7}),
        "request.kind.kind",
        id="a kind.kind that is a number",
    ),
    pytest.param(
        with_request(kind={"group": "about.k8s.io", "version": "v1beta1"}), "request.kind.kind", id="no kind.kind"
    ),
    pytest.param(with_request(operation="PATCH"), "request.operation", id="an unknown operation"),
    pytest.param(with_request(operation=_DELETE), "request.operation", id="no operation"),
    pytest.param(with_request(object="yes"), "request.object", id="an object that is a string"),
    pytest.param(with_request(object=None), "request.object", id="a CREATE without an object"),
    pytest.param(with_request(object={"metadata": "x"}), "request.object.metadata", id="metadata that is a string"),
    pytest.param(with_request(operation="UPDATE"), "request.oldObject", id="an UPDATE without an oldObject"),
    pytest.param(with_request(dryRun="yes"), "request.dryRun", id="a dryRun that is a string"),
    pytest.param(with_request(name=["a"]), "request.name", id="a name that is an array"),
    pytest.param(with_request(namespace=1), "request.namespace", id="a namespace that is a number"),
    pytest.param(with_request(userInfo="admin"), "request.userInfo", id="a userInfo that is a string"),
]


@pytest.mark.parametrize("body, fragment", BAD_BODIES)
def test_a_malformed_review_is_a_400_with_a_message_naming_the_problem(body: bytes, fragment: str) -> None:
    with pytest.raises(ReviewError) as caught:
        parse_review(body)
    assert caught.value.code == 400
    assert caught.value.reason == "BadRequest"
    assert fragment in caught.value.message


def test_a_body_over_the_limit_is_a_413() -> None:
    body = orjson.dumps(good_review())
    with pytest.raises(ReviewError) as caught:
        parse_review(body, max_bytes=len(body) - 1)
    assert caught.value.code == 413
    assert parse_review(body, max_bytes=len(body)).uid  # exactly at the limit is fine


def test_the_default_limit_is_kube_apiservers_3_mib() -> None:
    assert MAX_BODY_BYTES == 3 * 1024 * 1024
    with pytest.raises(ReviewError) as caught:
        parse_review(b" " * (MAX_BODY_BYTES + 1))
    assert caught.value.code == 413


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/yaml", "application/x-www-form-urlencoded", "application/vnd.kubernetes.protobuf"],
)
def test_a_non_json_content_type_is_a_415(content_type: str) -> None:
    with pytest.raises(ReviewError) as caught:
        parse_review(orjson.dumps(good_review()), content_type=content_type)
    assert caught.value.code == 415
    assert caught.value.reason == "UnsupportedMediaType"


def test_a_review_error_becomes_a_kubernetes_status() -> None:
    status = ReviewError(413, "too big").status()
    assert status == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": "too big",
        "reason": "RequestEntityTooLarge",
        "code": 413,
    }


def test_parsing_does_not_modify_or_keep_a_reference_to_the_callers_data() -> None:
    review = good_review()
    snapshot = copy.deepcopy(review)
    parse_review(orjson.dumps(review))
    assert review == snapshot


# --- responses --------------------------------------------------------------------------------------------


def test_an_allowed_response_echoes_the_uid_and_carries_nothing_else() -> None:
    assert review_response("u-1", allow()) == {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "response": {"uid": "u-1", "allowed": True},
    }


def test_a_patch_is_sent_as_base64_json_patch() -> None:
    ops = [{"op": "add", "path": "/spec/value", "value": "x"}]
    response = review_response("u-2", allow(patch=ops))["response"]
    assert response["patchType"] == "JSONPatch"
    assert orjson.loads(base64.b64decode(response["patch"])) == ops


def test_a_policy_denial_is_a_403_forbidden_status() -> None:
    response = review_response("u-3", deny("create cluster.clusterset.k8s.io first"))["response"]
    assert response["allowed"] is False
    assert response["status"]["code"] == 403
    assert response["status"]["reason"] == "Forbidden"
    assert response["status"]["message"] == "create cluster.clusterset.k8s.io first"
    assert "patch" not in response


def test_an_invalid_value_is_a_422_naming_the_field() -> None:
    status = review_response("u-4", invalid("not a label", field="spec.value"))["response"]["status"]
    assert status["code"] == 422
    assert status["reason"] == "Invalid"
    assert status["message"] == "spec.value: Invalid value: not a label"
    assert status["details"]["causes"] == [
        {"reason": "FieldValueInvalid", "message": "not a label", "field": "spec.value"}
    ]


def test_a_not_synced_denial_is_a_retryable_503() -> None:
    status = review_response("u-5", unavailable("retry"))["response"]["status"]
    assert (status["code"], status["reason"]) == (503, "ServiceUnavailable")


def test_a_denial_never_carries_a_patch() -> None:
    decision = Decision(
        allowed=False, code=403, reason="Forbidden", message="no", patch=({"op": "remove", "path": "/x"},)
    )
    assert "patch" not in review_response("u", decision)["response"]


def test_warnings_are_sent_as_single_printable_lines_of_bounded_length() -> None:
    warnings = review_response("u-6", allow(warnings=["PortConflict:\nline two\x00", "x" * 5000]))["response"][
        "warnings"
    ]
    assert warnings[0] == "PortConflict: line two"
    assert len(warnings[1]) == 1024 and warnings[1].endswith("...")


@pytest.mark.parametrize("operation", [["CREATE"], {"op": "CREATE"}, 1, None, True])
def test_an_operation_of_the_wrong_type_is_a_400_not_a_crash(operation: object) -> None:
    body = orjson.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
        "uid": "u", "kind": {"group": "", "version": "v1", "kind": "Pod"}, "operation": operation}})
    with pytest.raises(ReviewError) as caught:
        parse_review(body)
    assert caught.value.code == 400
    assert "request.operation: must be one of CREATE, UPDATE, DELETE, CONNECT" in caught.value.message
