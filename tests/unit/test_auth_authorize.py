"""Authorization: request attributes like kube-apiserver's RequestInfo, SubjectAccessReviews, 403s."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from multidict import MultiDict

from mcs_apiserver.auth.settings import AuthSettings
from mcs_apiserver.auth.authenticate import UserInfo
from mcs_apiserver.auth.authorize import (
    Authorizer,
    Decision,
    RequestAttributes,
    RequestInfoError,
    forbidden_status,
    request_attributes,
)
from mcs_apiserver.auth.review import ReviewError
from mcs_apiserver.kube.client import ApiError

G = "views.multicluster.x-k8s.io"
V = "v1alpha1"
P = f"/apis/{G}/{V}"


def attrs(method: str, path: str, **query: str) -> RequestAttributes:
    return request_attributes(method, path, MultiDict(query))


def resource(verb: str, path: str, **fields: str) -> RequestAttributes:
    return RequestAttributes(verb=verb, path=path, resource_request=True, api_group=G, api_version=V, **fields)


# --- request attributes --------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path", "query", "expected"), [
    ("GET", f"{P}/namespaces/ns/serviceimports/x", {},
     resource("get", f"{P}/namespaces/ns/serviceimports/x", namespace="ns", resource="serviceimports", name="x")),
    ("GET", f"{P}/namespaces/ns/serviceimports", {},
     resource("list", f"{P}/namespaces/ns/serviceimports", namespace="ns", resource="serviceimports")),
    ("GET", f"{P}/serviceimports", {"watch": "true"},
     resource("watch", f"{P}/serviceimports", resource="serviceimports")),
    ("GET", f"{P}/serviceimports", {"watch": "1"},
     resource("watch", f"{P}/serviceimports", resource="serviceimports")),
    ("GET", f"{P}/serviceimports", {"watch": "false"},
     resource("list", f"{P}/serviceimports", resource="serviceimports")),
    ("GET", f"{P}/serviceimports", {"watch": "0"},
     resource("list", f"{P}/serviceimports", resource="serviceimports")),
    ("HEAD", f"{P}/clustersets/local", {},
     resource("get", f"{P}/clustersets/local", resource="clustersets", name="local")),
    ("GET", f"{P}/namespaces/ns/serviceimports/x/status", {},
     resource("get", f"{P}/namespaces/ns/serviceimports/x/status", namespace="ns", resource="serviceimports",
              name="x", subresource="status")),
    ("POST", f"{P}/namespaces/ns/serviceimports", {},
     resource("create", f"{P}/namespaces/ns/serviceimports", namespace="ns", resource="serviceimports")),
    ("PUT", f"{P}/clustersets/local", {},
     resource("update", f"{P}/clustersets/local", resource="clustersets", name="local")),
    ("PATCH", f"{P}/clustersets/local", {},
     resource("patch", f"{P}/clustersets/local", resource="clustersets", name="local")),
    ("DELETE", f"{P}/clustersets/local", {},
     resource("delete", f"{P}/clustersets/local", resource="clustersets", name="local")),
    ("DELETE", f"{P}/namespaces/ns/serviceimports", {},
     resource("deletecollection", f"{P}/namespaces/ns/serviceimports", namespace="ns",
              resource="serviceimports")),
    ("GET", f"{P}/watch/namespaces/ns/serviceimports", {},
     resource("watch", f"{P}/watch/namespaces/ns/serviceimports", namespace="ns", resource="serviceimports")),
    ("OPTIONS", f"{P}/clustersets", {},
     resource("", f"{P}/clustersets", resource="clustersets")),
])
def test_resource_requests_get_kube_apiserver_verbs_and_attributes(method, path, query, expected):
    assert attrs(method, path, **query) == expected


def test_namespaces_themselves_are_a_resource_with_their_own_subresources():
    assert attrs("PUT", "/api/v1/namespaces/ns/finalize") == RequestAttributes(
        verb="update", path="/api/v1/namespaces/ns/finalize", resource_request=True, api_version="v1",
        namespace="ns", resource="namespaces", name="ns", subresource="finalize")
    assert attrs("GET", "/api/v1/namespaces").resource == "namespaces"
    assert attrs("GET", "/api/v1/namespaces").verb == "list"


@pytest.mark.parametrize(("selector", "name"), [
    ("metadata.name=x", "x"),
    ("metadata.name==x", "x"),
    ("metadata.namespace=ns,metadata.name=x", "x"),
    ("metadata.name!=x", ""),
    ("metadata.name=a\\,b", "a,b"),
    ("metadata.name=..", ""),
    ("metadata.name=a%2Fb", ""),
    ("metadata.name=x,broken", ""),  # a selector that does not parse names nothing
    ("spec.type=Headless", ""),
])
def test_a_list_pinned_to_one_name_by_field_selector_is_authorized_for_that_name(selector, name):
    assert attrs("GET", f"{P}/serviceimports", fieldSelector=selector).name == name
    assert attrs("GET", f"{P}/serviceimports", fieldSelector=selector).verb == "list"


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/apis"),
    ("GET", f"/apis/{G}"),
    ("GET", P),
    ("GET", "/api/v1"),
    ("GET", "/openapi/v3/apis/views.multicluster.x-k8s.io/v1alpha1"),
    ("POST", "/metrics"),
    ("GET", "/"),
])
def test_other_paths_are_non_resource_requests_with_the_lower_cased_method_as_verb(method, path):
    assert attrs(method, path) == RequestAttributes(verb=method.lower(), path=path)


def test_a_special_verb_without_a_resource_is_an_error():
    with pytest.raises(RequestInfoError, match="unable to determine kind and namespace"):
        attrs("GET", f"{P}/watch")


# --- forbidden messages --------------------------------------------------------------------------

BOB = UserInfo("bob", groups=("system:authenticated",))


@pytest.mark.parametrize(("attributes", "message"), [
    (attrs("GET", f"{P}/namespaces/ns/serviceimports/x"),
     ('serviceimports.views.multicluster.x-k8s.io "x" is forbidden: User "bob" cannot get resource '
     '"serviceimports" in API group "views.multicluster.x-k8s.io" in the namespace "ns"')),
    (attrs("GET", f"{P}/namespaces/ns/serviceimports"),
     ('serviceimports.views.multicluster.x-k8s.io is forbidden: User "bob" cannot list resource '
     '"serviceimports" in API group "views.multicluster.x-k8s.io" in the namespace "ns"')),
    (attrs("GET", f"{P}/serviceimports", watch="true"),
     ('serviceimports.views.multicluster.x-k8s.io is forbidden: User "bob" cannot watch resource '
     '"serviceimports" in API group "views.multicluster.x-k8s.io" at the cluster scope')),
    (attrs("GET", f"{P}/clustersets/local"),
     ('clustersets.views.multicluster.x-k8s.io "local" is forbidden: User "bob" cannot get resource '
     '"clustersets" in API group "views.multicluster.x-k8s.io" at the cluster scope')),
    (attrs("GET", f"{P}/namespaces/ns/serviceimports/x/status"),
     ('serviceimports.views.multicluster.x-k8s.io "x" is forbidden: User "bob" cannot get resource '
     '"serviceimports/status" in API group "views.multicluster.x-k8s.io" in the namespace "ns"')),
    (attrs("GET", "/metrics"), 'forbidden: User "bob" cannot get path "/metrics"'),
])
def test_forbidden_messages_are_word_for_word_kube_apiserver(attributes, message):
    status = forbidden_status(BOB, attributes)
    assert status["message"] == message
    assert (status["code"], status["reason"]) == (403, "Forbidden")


def test_the_authorizer_reason_is_appended_to_the_forbidden_message():
    status = forbidden_status(BOB, attrs("GET", "/metrics"), 'RBAC: clusterrole "x" not found')
    assert status["message"] == 'forbidden: User "bob" cannot get path "/metrics": RBAC: clusterrole "x" not found'


def test_a_forbidden_object_names_itself_in_the_details():
    status = forbidden_status(BOB, attrs("GET", f"{P}/clustersets/local"))
    assert status["details"] == {"name": "local", "group": G, "kind": "clustersets"}


# --- SubjectAccessReviews ------------------------------------------------------------------------


class ReviewClient:
    def __init__(self, answer: Callable[[dict[str, Any]], Any]) -> None:
        self.answer = answer
        self.specs: list[dict[str, Any]] = []

    async def json(self, method: str, path: str, *, body: Any = None, **_: Any) -> Any:
        assert (method, path) == ("POST", "/apis/authorization.k8s.io/v1/subjectaccessreviews")
        assert (body["apiVersion"], body["kind"]) == ("authorization.k8s.io/v1", "SubjectAccessReview")
        self.specs.append(body["spec"])
        await asyncio.sleep(0)
        result = self.answer(body)
        if isinstance(result, Exception):
            raise result
        return result


def rbac(body: dict[str, Any]) -> dict[str, Any]:
    """Alice may do anything; nobody else may do anything."""
    allowed = body["spec"]["user"] == "alice"
    return {**body, "status": {"allowed": allowed, **({} if allowed else {"reason": "no RBAC rule"})}}


ALICE = UserInfo("alice", "uid-1", ("devs", "system:authenticated"),
                 {"authentication.kubernetes.io/credential-id": ("X509SHA256=ab",)})


#: Retries without waiting.
FAST = AuthSettings(review_first_retry_delay=0.0, config_first_backoff=0.001)


async def test_a_resource_request_is_reviewed_with_the_user_and_its_attributes():
    client = ReviewClient(rbac)
    decision = await Authorizer(client, settings=FAST).authorize(ALICE, attrs("GET", f"{P}/namespaces/ns/serviceimports/x"))
    assert decision == Decision(True)
    assert client.specs == [{
        "user": "alice", "uid": "uid-1", "groups": ["devs", "system:authenticated"],
        "extra": {"authentication.kubernetes.io/credential-id": ["X509SHA256=ab"]},
        "resourceAttributes": {"namespace": "ns", "verb": "get", "group": G, "version": V,
                               "resource": "serviceimports", "name": "x"},
    }]


async def test_a_non_resource_request_is_reviewed_by_path_and_verb():
    client = ReviewClient(rbac)
    decision = await Authorizer(client, settings=FAST).authorize(BOB, attrs("GET", "/metrics"))
    assert decision == Decision(False, "no RBAC rule")
    assert client.specs == [{"user": "bob", "groups": ["system:authenticated"],
                             "nonResourceAttributes": {"path": "/metrics", "verb": "get"}}]


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/readyz/members-synced", "/livez"])
async def test_health_paths_are_allowed_without_a_review(path):
    client = ReviewClient(rbac)
    assert (await Authorizer(client, settings=FAST).authorize(BOB, attrs("GET", path))).allowed
    assert client.specs == []


@pytest.mark.parametrize("path", ["/openapi/v2", "/openapi/v3", f"/openapi/v3/apis/{G}/{V}"])
async def test_the_aggregator_fetches_openapi_with_no_groups_without_a_review(path):
    client = ReviewClient(rbac)
    aggregator = UserInfo("system:aggregator")
    assert (await Authorizer(client, settings=FAST).authorize(aggregator, attrs("GET", path))).allowed
    assert client.specs == []


async def test_a_resource_path_that_looks_like_an_allowed_path_is_still_reviewed():
    client = ReviewClient(rbac)
    decision = await Authorizer(client, settings=FAST).authorize(BOB, attrs("GET", "/api/v1/namespaces/healthz"))
    assert not decision.allowed
    assert len(client.specs) == 1


async def test_system_masters_are_allowed_without_a_review():
    client = ReviewClient(rbac)
    admin = UserInfo("system:kube-aggregator", groups=("system:masters", "system:authenticated"))
    assert (await Authorizer(client, settings=FAST).authorize(admin, attrs("DELETE", f"{P}/clustersets/local"))).allowed
    assert client.specs == []


async def test_allow_and_deny_decisions_are_cached_per_question():
    client = ReviewClient(rbac)
    authorizer = Authorizer(client, settings=FAST)
    for _ in range(3):
        assert (await authorizer.authorize(ALICE, attrs("GET", f"{P}/serviceimports"))).allowed
        assert not (await authorizer.authorize(BOB, attrs("GET", f"{P}/serviceimports"))).allowed
    assert len(client.specs) == 2
    await authorizer.authorize(BOB, attrs("GET", f"{P}/serviceimports", watch="1"))
    assert len(client.specs) == 3  # another verb is another question


async def test_a_cached_decision_expires_after_its_ttl():
    client = ReviewClient(rbac)
    authorizer = Authorizer(client, settings=FAST, ttl=0.05)
    await authorizer.authorize(BOB, attrs("GET", "/metrics"))
    await asyncio.sleep(0.08)
    await authorizer.authorize(BOB, attrs("GET", "/metrics"))
    assert len(client.specs) == 2


async def test_the_decision_cache_is_bounded_and_drops_the_oldest_first():
    client = ReviewClient(rbac)
    authorizer = Authorizer(client, settings=FAST, max_entries=2)
    for path in ("/a", "/b", "/c"):
        await authorizer.authorize(BOB, attrs("GET", path))
    await authorizer.authorize(BOB, attrs("GET", "/c"))
    assert len(client.specs) == 3
    await authorizer.authorize(BOB, attrs("GET", "/a"))
    assert len(client.specs) == 4


async def test_concurrent_identical_questions_share_one_review():
    client = ReviewClient(rbac)
    authorizer = Authorizer(client, settings=FAST)
    decisions = await asyncio.gather(*(authorizer.authorize(ALICE, attrs("GET", f"{P}/serviceimports"))
                                       for _ in range(100)))
    assert all(d.allowed for d in decisions)
    assert len(client.specs) == 1


async def test_a_review_that_fails_is_an_error_and_is_not_cached():
    failures = [ApiError(500, None, "down")] * 3
    client = ReviewClient(lambda body: failures.pop() if failures else rbac(body))
    authorizer = Authorizer(client, settings=FAST)
    with pytest.raises(ReviewError, match="SubjectAccessReview"):
        await authorizer.authorize(ALICE, attrs("GET", "/metrics"))
    assert (await authorizer.authorize(ALICE, attrs("GET", "/metrics"))).allowed


async def test_an_answer_that_both_allows_and_denies_is_an_error():
    client = ReviewClient(lambda body: {**body, "status": {"allowed": True, "denied": True}})
    with pytest.raises(ReviewError, match="both allows and denies"):
        await Authorizer(client, settings=FAST).authorize(ALICE, attrs("GET", "/metrics"))
