"""metav1.Status errors (mcs_apiserver.kube.status)."""

from __future__ import annotations

import orjson
import pytest

from mcs_apiserver.kube import status as s

GROUP = "views.multicluster.x-k8s.io"


def test_forbidden_reads_exactly_like_kube_apiservers_authorization_failure() -> None:
    st = s.forbidden(user="bob", verb="get", resource="serviceimports", group=GROUP, name="x", namespace="ns")
    assert st["message"] == (
        'serviceimports.views.multicluster.x-k8s.io "x" is forbidden: User "bob" cannot get resource '
        '"serviceimports" in API group "views.multicluster.x-k8s.io" in the namespace "ns"'
    )
    assert st["code"] == 403 and st["reason"] == "Forbidden"
    assert st["details"] == {"name": "x", "group": "views.multicluster.x-k8s.io", "kind": "serviceimports"}


def test_forbidden_on_a_collection_at_cluster_scope_has_no_name() -> None:
    st = s.forbidden(user="bob", verb="list", resource="clustersets", group=GROUP)
    assert st["message"] == (
        'clustersets.views.multicluster.x-k8s.io is forbidden: User "bob" cannot list resource '
        '"clustersets" in API group "views.multicluster.x-k8s.io" at the cluster scope'
    )
    assert "name" not in st["details"]


def test_forbidden_on_a_path_and_with_an_authorizer_reason() -> None:
    st = s.forbidden(user="system:anonymous", verb="get", path="/openapi/v2", reason="no RBAC policy matched")
    assert (
        st["message"] == 'forbidden: User "system:anonymous" cannot get path "/openapi/v2": no RBAC policy matched'
    )
    assert st["details"] == {}


def test_forbidden_on_a_subresource_names_resource_slash_subresource() -> None:
    st = s.forbidden(user="u", verb="get", resource="serviceimports", group=GROUP, subresource="status", namespace="n")
    assert 'cannot get resource "serviceimports/status"' in st["message"]


def test_not_found_names_the_qualified_resource_and_the_name() -> None:
    st = s.not_found("serviceimports", "x", group=GROUP)
    assert st == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'serviceimports.views.multicluster.x-k8s.io "x" not found',
        "reason": "NotFound",
        "details": {"name": "x", "group": "views.multicluster.x-k8s.io", "kind": "serviceimports"},
        "code": 404,
    }


def test_not_found_without_a_resource_is_the_generic_unknown_path_answer() -> None:
    assert s.not_found()["message"] == "the server could not find the requested resource"


def test_status_fields_are_serialized_in_kube_apiservers_order() -> None:
    assert list(s.not_found("serviceimports", "x", group=GROUP)) == [
        "kind",
        "apiVersion",
        "metadata",
        "status",
        "message",
        "reason",
        "details",
        "code",
    ]


def test_bad_request_has_no_details_like_errors_new_bad_request() -> None:
    st = s.bad_request("nope")
    assert "details" not in st
    assert (st["code"], st["reason"], st["message"]) == (400, "BadRequest", "nope")


def test_method_not_allowed_names_the_verb_and_the_qualified_resource() -> None:
    st = s.method_not_allowed("serviceimports", "create", group=GROUP)
    assert st["code"] == 405 and st["reason"] == "MethodNotAllowed"
    assert (
        st["message"]
        == 'create is not supported on resources of kind "serviceimports.views.multicluster.x-k8s.io"'
    )


@pytest.mark.parametrize(
    ("status", "code", "reason"),
    [
        (s.unauthorized(), 401, "Unauthorized"),
        (s.not_acceptable(), 406, "NotAcceptable"),
        (s.expired("too old"), 410, "Expired"),
        (s.continue_expired(), 410, "Expired"),
        (s.too_old_resource_version(5, 17), 410, "Expired"),
        (s.too_large("1 MiB"), 413, "RequestEntityTooLarge"),
        (s.internal_error(RuntimeError("boom")), 500, "InternalError"),
    ],
)
def test_each_builder_sets_the_code_and_reason_kube_apiserver_uses(status: dict, code: int, reason: str) -> None:
    assert (status["code"], status["reason"], status["status"]) == (code, reason, "Failure")


def test_messages_match_apimachinery_wording() -> None:
    assert s.not_acceptable()["message"] == "only the following media types are accepted: application/json"
    assert s.too_old_resource_version(5, 17)["message"] == "too old resource version: 5 (17)"
    assert s.too_large("limit is 3145728")["message"] == "Request entity too large: limit is 3145728"
    internal = s.internal_error("boom")
    assert internal["message"] == "Internal error occurred: boom"
    assert internal["details"] == {"causes": [{"message": "boom"}]}


def test_invalid_lists_every_cause_in_the_message_and_in_details() -> None:
    causes = [
        s.field_invalid("spec.type", "Other", "must be ClusterSetIP or Headless"),
        s.field_invalid("sendInitialEvents", True, "not supported"),
    ]
    st = s.invalid("ServiceImport", "web", causes, group=GROUP)
    assert st["code"] == 422 and st["reason"] == "Invalid"
    assert st["message"] == (
        'ServiceImport.views.multicluster.x-k8s.io "web" is invalid: [spec.type: Invalid value: "Other": '
        "must be ClusterSetIP or Headless, sendInitialEvents: Invalid value: true: not supported]"
    )
    assert st["details"]["causes"][0] == {
        "reason": "FieldValueInvalid",
        "message": 'Invalid value: "Other": must be ClusterSetIP or Headless',
        "field": "spec.type",
    }
    assert st["details"]["kind"] == "ServiceImport"


def test_invalid_with_one_cause_has_no_brackets() -> None:
    st = s.invalid("ListOptions", "", [s.field_invalid("resourceVersionMatch", "x", "")], group="meta.k8s.io")
    assert st["message"] == 'ListOptions.meta.k8s.io "" is invalid: resourceVersionMatch: Invalid value: "x"'


def test_a_status_error_carries_its_status_and_code() -> None:
    err = s.StatusError(s.not_found("clustersets", "x", group=GROUP))
    assert err.code == 404 and err.reason == "NotFound"
    assert str(err) == 'clustersets.views.multicluster.x-k8s.io "x" not found'


def test_status_response_answers_with_the_status_code_and_json_body() -> None:
    st = s.forbidden(user="bob", verb="watch", resource="serviceimports", group=GROUP, namespace="ns")
    response = s.status_response(st, headers={"Warning": '299 - "x"'})
    assert response.status == 403
    assert response.content_type == "application/json"
    assert isinstance(response.body, bytes)
    assert orjson.loads(response.body) == st
    assert response.headers["Warning"] == '299 - "x"'


def test_status_response_accepts_a_status_error() -> None:
    response = s.status_response(s.StatusError(s.too_large("1 MiB")))
    assert response.status == 413
