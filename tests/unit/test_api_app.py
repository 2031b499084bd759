"""The aiohttp application: discovery, OpenAPI, health, metrics, and errors that always leave as a Status."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from aiohttp import web

from mcs_apiserver.api.app import HealthCheck, build_app
from mcs_apiserver.api.openapi import (
    OPENAPI_V3_GROUP_VERSION_PATH,
    openapi_v2,
    openapi_v3_group_version,
)
from mcs_apiserver.api.resources import PREFIX, Served
from mcs_apiserver.api.store import Store, Versioner
from mcs_apiserver.metrics import Metrics

GROUP = "views.multicluster.x-k8s.io"
AGGREGATED = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
AGGREGATED_BETA = "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList"
#: What a 1.30+ aggregator sends: aggregated first, plain JSON as the fallback.
AGGREGATOR_ACCEPT = f"{AGGREGATED},{AGGREGATED_BETA},application/json"


class Checks:
    """Readiness checks whose outcome a test can flip."""

    def __init__(self) -> None:
        self.views = (True, "")
        self.members = (True, "")

    def list(self) -> list[HealthCheck]:
        return [HealthCheck("views", lambda: self.views), HealthCheck("members-synced", lambda: self.members)]


@pytest.fixture
def checks() -> Checks:
    return Checks()


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


@pytest.fixture
def stores() -> dict[str, Store]:
    versioner = Versioner(100)
    imports = Store("serviceimports", versioner)
    imports.apply({("shop", "web"): {"metadata": {"namespace": "shop", "name": "web"}, "spec": {"type": "Headless"}}})
    return {"serviceimports": imports, "clustersets": Store("clustersets", versioner)}


@pytest.fixture
def app(stores: dict[str, Store], checks: Checks, metrics: Metrics) -> web.Application:
    return build_app(Served(stores), checks=checks.list(), metrics=metrics)


@pytest.fixture
async def client(aiohttp_client: Any, app: web.Application) -> Any:
    return await aiohttp_client(app)


async def json_of(response: Any) -> dict[str, Any]:
    return orjson.loads(await response.read())


def assert_status(doc: dict[str, Any], code: int, reason: str) -> None:
    assert (doc["kind"], doc["apiVersion"], doc["status"]) == ("Status", "v1", "Failure")
    assert (doc["code"], doc["reason"]) == (code, reason)


# --- discovery ----------------------------------------------------------------------------------


async def test_apis_with_the_aggregated_accept_header_is_an_api_group_discovery_list(client: Any) -> None:
    response = await client.get("/apis", headers={"Accept": AGGREGATOR_ACCEPT})
    assert response.status == 200
    assert response.headers["Content-Type"] == AGGREGATED
    doc = await json_of(response)
    assert (doc["kind"], doc["apiVersion"]) == ("APIGroupDiscoveryList", "apidiscovery.k8s.io/v2")
    (group,) = doc["items"]
    assert group["metadata"]["name"] == GROUP
    resources = {r["resource"]: r for r in group["versions"][0]["resources"]}
    assert resources["serviceimports"]["scope"] == "Namespaced"
    assert resources["clustersets"]["scope"] == "Cluster"
    assert resources["serviceimports"]["responseKind"] == {"group": GROUP, "version": "v1alpha1", "kind": "ServiceImport"}


async def test_apis_for_a_pre_1_30_aggregator_is_the_v2beta1_discovery_list(client: Any) -> None:
    response = await client.get("/apis", headers={"Accept": AGGREGATED_BETA})
    assert response.headers["Content-Type"] == AGGREGATED_BETA
    assert (await json_of(response))["apiVersion"] == "apidiscovery.k8s.io/v2beta1"


@pytest.mark.parametrize("accept", [None, "application/json", "*/*"])
async def test_apis_with_a_plain_accept_header_is_an_api_group_list(client: Any, accept: str | None) -> None:
    response = await client.get("/apis", headers={"Accept": accept} if accept else {})
    assert response.status == 200
    assert response.headers["Content-Type"] == "application/json"
    doc = await json_of(response)
    assert doc["kind"] == "APIGroupList"
    assert [g["name"] for g in doc["groups"]] == [GROUP]
    assert doc["groups"][0]["preferredVersion"] == {"groupVersion": f"{GROUP}/v1alpha1", "version": "v1alpha1"}


async def test_apis_asking_only_for_an_unknown_discovery_version_is_a_406_status(client: Any) -> None:
    response = await client.get("/apis", headers={"Accept": "application/json;g=apidiscovery.k8s.io;v=v3;as=APIGroupDiscoveryList"})
    assert response.status == 406
    assert_status(await json_of(response), 406, "NotAcceptable")


async def test_the_group_and_the_group_version_are_discoverable(client: Any) -> None:
    group = await json_of(await client.get(f"/apis/{GROUP}"))
    assert group["kind"] == "APIGroup" and group["name"] == GROUP
    response = await client.get(PREFIX)
    assert response.status == 200
    resources = await json_of(response)
    assert (resources["kind"], resources["groupVersion"]) == ("APIResourceList", f"{GROUP}/v1alpha1")
    by_name = {r["name"]: r for r in resources["resources"]}
    assert set(by_name) == {"serviceimports", "clustersets"}
    assert by_name["serviceimports"]["verbs"] == ["get", "list", "watch"]
    assert by_name["clustersets"]["namespaced"] is False
    assert by_name["serviceimports"]["shortNames"] == ["svcim", "svcimport"]


# --- OpenAPI ------------------------------------------------------------------------------------


async def test_openapi_v2_carries_an_etag_and_answers_304_when_it_matches(client: Any) -> None:
    response = await client.get("/openapi/v2")
    assert response.status == 200
    etag = response.headers["ETag"]
    assert etag == openapi_v2().etag
    doc = await json_of(response)
    assert doc["swagger"] == "2.0"
    again = await client.get("/openapi/v2", headers={"If-None-Match": etag})
    assert again.status == 304
    assert await again.read() == b""
    assert again.headers["ETag"] == etag
    stale = await client.get("/openapi/v2", headers={"If-None-Match": '"something-else"'})
    assert stale.status == 200


async def test_openapi_v3_root_points_at_the_group_version_document_by_hash(client: Any) -> None:
    root = await json_of(await client.get("/openapi/v3"))
    url = root["paths"][f"apis/{GROUP}/v1alpha1"]["serverRelativeURL"]
    assert url == f"{OPENAPI_V3_GROUP_VERSION_PATH}?hash={openapi_v3_group_version().hash}"
    response = await client.get(url)
    assert response.status == 200
    assert response.headers["Cache-Control"] == "public, immutable"
    assert (await json_of(response))["openapi"].startswith("3.")


async def test_openapi_v3_with_an_outdated_hash_redirects_to_the_current_one(client: Any) -> None:
    response = await client.get(f"{OPENAPI_V3_GROUP_VERSION_PATH}?hash=OLD", allow_redirects=False)
    assert response.status == 301
    assert response.headers["Location"] == f"{OPENAPI_V3_GROUP_VERSION_PATH}?hash={openapi_v3_group_version().hash}"


async def test_openapi_v3_answers_304_to_its_etag_weak_or_strong(client: Any) -> None:
    etag = openapi_v3_group_version().etag
    assert (await client.get(OPENAPI_V3_GROUP_VERSION_PATH, headers={"If-None-Match": etag})).status == 304
    assert (await client.get(OPENAPI_V3_GROUP_VERSION_PATH, headers={"If-None-Match": f"W/{etag}"})).status == 304
    plain = await client.get(OPENAPI_V3_GROUP_VERSION_PATH)
    assert plain.status == 200 and "Cache-Control" not in plain.headers


# --- health -------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/healthz", "/livez"])
async def test_healthz_and_livez_answer_ok(client: Any, path: str) -> None:
    response = await client.get(path)
    assert (response.status, await response.text()) == (200, "ok")
    verbose = await client.get(path, params={"verbose": ""})
    assert await verbose.text() == f"[+]ping ok\n{path[1:]} check passed\n"


async def test_liveness_does_not_depend_on_readiness(client: Any, checks: Checks) -> None:
    checks.views = (False, "not yet")
    assert (await client.get("/livez")).status == 200


async def test_readyz_is_ok_when_every_check_passes_and_lists_them_when_verbose(client: Any) -> None:
    response = await client.get("/readyz")
    assert (response.status, await response.text()) == (200, "ok")
    verbose = await client.get("/readyz", params={"verbose": "1"})
    assert await verbose.text() == "[+]views ok\n[+]members-synced ok\nreadyz check passed\n"


async def test_readyz_fails_with_500_naming_each_failed_check(client: Any, checks: Checks) -> None:
    checks.members = (False, "waiting for the first sync of b")
    response = await client.get("/readyz")
    assert response.status == 500
    assert await response.text() == (
        "[+]views ok\n[-]members-synced failed: waiting for the first sync of b\nreadyz check failed\n"
    )


async def test_one_readiness_check_can_be_asked_for_by_name(client: Any, checks: Checks) -> None:
    checks.members = (False, "waiting")
    assert (await client.get("/readyz/views")).status == 200
    failing = await client.get("/readyz/members-synced")
    assert failing.status == 500
    assert "[-]members-synced failed: waiting" in await failing.text()
    unknown = await client.get("/readyz/nothing")
    assert unknown.status == 404
    assert_status(await json_of(unknown), 404, "NotFound")


async def test_a_check_that_raises_is_a_500_internal_error_status(
    aiohttp_client: Any, stores: dict[str, Store]
) -> None:
    def broken() -> tuple[bool, str]:
        raise RuntimeError("boom")

    app = build_app(Served(stores), checks=[HealthCheck("broken", broken)], metrics=Metrics())
    client = await aiohttp_client(app)
    response = await client.get("/readyz")
    assert response.status == 500
    doc = await json_of(response)
    assert_status(doc, 500, "InternalError")
    assert doc["message"] == "Internal error occurred: RuntimeError"


# --- metrics ------------------------------------------------------------------------------------


def labels(verb: str, resource: str = "", scope: str = "", subresource: str = "", **extra: str) -> dict[str, str]:
    """The kube-apiserver label set of one of our resources (or of no resource, when empty)."""
    ours = bool(resource)
    return {"verb": verb, "dry_run": "", "group": GROUP if ours else "", "version": "v1alpha1" if ours else "",
            "resource": resource, "subresource": subresource, "scope": scope,
            "component": "apiserver" if ours else "", **extra}


async def test_metrics_count_requests_with_kube_apiservers_labels_and_code(client: Any, metrics: Metrics) -> None:
    assert (await client.get(f"{PREFIX}/serviceimports")).status == 200
    assert (await client.get(f"{PREFIX}/namespaces/shop/serviceimports")).status == 200
    assert (await client.get(f"{PREFIX}/namespaces/shop/serviceimports/web")).status == 200
    assert (await client.get(f"{PREFIX}/namespaces/shop/serviceimports/nope")).status == 404
    assert (await client.post(f"{PREFIX}/namespaces/shop/serviceimports")).status == 405
    assert (await client.patch(f"{PREFIX}/namespaces/shop/serviceimports/web", data=b"{}",
                               headers={"Content-Type": "application/apply-patch+yaml"})).status == 405
    assert (await client.get(f"{PREFIX}/flunders")).status == 404
    assert (await client.get("/apis/views.multicluster.x-k8s.io/v9/serviceimports")).status == 404
    assert (await client.get("/readyz/views")).status == 200
    assert (await client.get("/some/probe/path")).status == 404
    assert (await client.request("TRACE", "/some/trace/path")).status == 404
    response = await client.get("/metrics")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    text = await response.text()

    def count(**wanted: str) -> float | None:
        return metrics.registry.get_sample_value("apiserver_request_total", wanted)

    assert count(**labels("LIST", "serviceimports", "cluster"), code="200") == 1
    assert count(**labels("LIST", "serviceimports", "namespace"), code="200") == 1
    assert count(**labels("GET", "serviceimports", "resource"), code="200") == 1
    assert count(**labels("GET", "serviceimports", "resource"), code="404") == 1
    assert count(**labels("POST", "serviceimports", "resource"), code="405") == 1
    assert count(**labels("APPLY", "serviceimports", "resource"), code="405") == 1
    assert count(**labels("LIST"), code="404") == 2  # an unknown resource, an unknown version
    assert count(**labels("GET"), code="404") == 1  # an unknown path
    assert count(**labels("GET", subresource="/readyz/{check}"), code="200") == 1  # the route, not the check
    assert count(**labels("other"), code="404") == 1
    assert metrics.registry.get_sample_value("apiserver_request_duration_seconds_count",
                                             labels("LIST", "serviceimports", "cluster")) == 1
    for unbounded in ("flunders", "v9", "/some/", "TRACE"):
        assert unbounded not in text


async def test_metrics_gauge_open_watches_and_leave_them_out_of_latency(
    client: Any, metrics: Metrics, stores: dict[str, Store]
) -> None:
    response = await client.get(f"{PREFIX}/serviceimports", params={"watch": "1", "timeoutSeconds": "1"})
    assert response.status == 200
    assert metrics.registry.get_sample_value("apiserver_registered_watchers", {"resource": "serviceimports"}) == 1
    await asyncio.wait_for(response.read(), 10)
    await asyncio.sleep(0)  # let the handler finish its bookkeeping after the last byte
    for _ in range(100):
        if metrics.registry.get_sample_value("apiserver_registered_watchers", {"resource": "serviceimports"}) == 0:
            break
        await asyncio.sleep(0.01)
    assert metrics.registry.get_sample_value("apiserver_registered_watchers", {"resource": "serviceimports"}) == 0
    assert metrics.registry.get_sample_value(
        "apiserver_request_total", {**labels("WATCH", "serviceimports", "cluster"), "code": "200"}) == 1
    assert metrics.registry.get_sample_value(
        "apiserver_request_duration_seconds_count", labels("WATCH", "serviceimports", "cluster")) is None


async def test_the_metrics_endpoint_exposes_engine_runs(client: Any, metrics: Metrics) -> None:
    metrics.observe_engine_run(0.002, 7)
    text = await (await client.get("/metrics")).text()
    assert "mcs_view_engine_run_seconds_count 1.0" in text
    assert "mcs_view_objects_changed_total 7.0" in text


# --- errors -------------------------------------------------------------------------------------


async def test_an_unknown_path_is_a_404_status(client: Any) -> None:
    response = await client.get("/api/v1/pods")
    assert response.status == 404
    doc = await json_of(response)
    assert_status(doc, 404, "NotFound")
    assert doc["message"] == "the server could not find the requested resource"


async def test_a_method_a_route_does_not_take_is_a_405_status(client: Any) -> None:
    response = await client.post("/apis", data=b"{}")
    assert response.status == 405
    assert_status(await json_of(response), 405, "MethodNotAllowed")


async def test_an_unexpected_error_is_a_500_internal_error_status_and_serving_goes_on(
    aiohttp_client: Any, app: web.Application
) -> None:
    async def broken(request: web.Request) -> web.Response:
        raise KeyError("secret detail")

    app.router.add_get("/broken", broken)
    client = await aiohttp_client(app)
    response = await client.get("/broken")
    assert response.status == 500
    doc = await json_of(response)
    assert_status(doc, 500, "InternalError")
    assert "secret detail" not in doc["message"]
    assert (await client.get("/healthz")).status == 200


async def test_a_body_over_the_size_limit_is_a_413_status(aiohttp_client: Any, stores: dict[str, Store]) -> None:
    app = build_app(Served(stores), checks=[], metrics=Metrics(), client_max_size=16)

    async def echo(request: web.Request) -> web.Response:
        return web.Response(body=await request.read())

    app.router.add_post("/echo", echo)
    client = await aiohttp_client(app)
    response = await client.post("/echo", data=b"x" * 64)
    assert response.status == 413
    assert_status(await json_of(response), 413, "RequestEntityTooLarge")


async def test_middlewares_given_to_build_app_run_inside_the_status_errors(
    aiohttp_client: Any, stores: dict[str, Store]
) -> None:
    from mcs_apiserver.kube.status import StatusError, unauthorized

    @web.middleware
    async def deny(request: web.Request, handler: Any) -> web.StreamResponse:
        if request.path.startswith("/apis/"):
            raise StatusError(unauthorized())
        return await handler(request)

    client = await aiohttp_client(build_app(Served(stores), checks=[], metrics=Metrics(), middlewares=[deny]))
    response = await client.get(f"{PREFIX}/serviceimports")
    assert response.status == 401
    assert_status(await json_of(response), 401, "Unauthorized")
    assert (await client.get("/healthz")).status == 200


async def test_admission_metrics_are_labelled_by_the_webhook_paths_served_and_other_for_the_rest(
    aiohttp_client: Any, stores: dict[str, Store]
) -> None:
    metrics = Metrics()
    app = build_app(Served(stores), checks=[], metrics=metrics, webhook_paths=["/webhooks/validate-things"])

    async def answer(request: web.Request) -> web.Response:
        return web.json_response({})

    app.router.add_post("/webhooks/validate-things", answer)
    app.router.add_post("/webhooks/{tail:.+}", answer)
    client = await aiohttp_client(app)
    assert (await client.post("/webhooks/validate-things", data=b"{}")).status == 200
    assert (await client.post("/webhooks/made-up", data=b"{}")).status == 200

    def answered(webhook: str) -> float | None:
        return metrics.registry.get_sample_value("mcs_admission_duration_seconds_count",
                                                 {"webhook": webhook, "code": "200"})

    assert answered("/webhooks/validate-things") == 1
    assert answered("other") == 1
    assert answered("/webhooks/made-up") is None
