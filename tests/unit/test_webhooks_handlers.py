"""The aiohttp webhook handlers, driven with real AdmissionReview JSON over HTTP."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

import jsonpatch
import orjson
import pytest
from aiohttp import web

from webhooks import PATHS, add_routes, make_handlers
from mcs_apiserver.contract import EXPORTED_AT_ANNOTATION
from webhooks.testing import NOT_SYNCED, StaticFacts, admission_review, cluster_property

NOW = datetime(2026, 11, 23, 18, 55, 0, 123456, tzinfo=UTC)
UID = "721ab723-13bc-11e5-aec2-42010af0021e"
VALIDATE_CP = "/webhooks/validate/clusterproperties"
MUTATE_CP = "/webhooks/mutate/clusterproperties"
VALIDATE_SE = "/webhooks/validate/serviceexports"
MUTATE_SE = "/webhooks/mutate/serviceexports"
ADMIT_SE = "/webhooks/admit/serviceexports"


def make_app(facts: Any = None, policy: str = "warn", **options: Any) -> web.Application:
    app = web.Application()
    add_routes(app, facts if facts is not None else StaticFacts(), policy, now=lambda: NOW, **options)  # type: ignore[arg-type]
    return app


@pytest.fixture
async def client(aiohttp_client: Any) -> Any:
    return await aiohttp_client(make_app())


def export_review(operation: str = "CREATE", obj: dict | None = None, old: dict | None = None, **kw: Any) -> dict:
    if obj is None and operation != "DELETE":
        obj = {
            "apiVersion": "multicluster.x-k8s.io/v1beta1",
            "kind": "ServiceExport",
            "metadata": {"name": "web", "namespace": "shop"},
        }
    return admission_review(
        operation,
        obj,
        old,
        group="multicluster.x-k8s.io",
        kind="ServiceExport",
        resource="serviceexports",
        namespace="shop",
        **kw,
    )


async def post(client: Any, path: str, review: dict) -> tuple[int, dict]:
    resp = await client.post(path, data=orjson.dumps(review), headers={"Content-Type": "application/json"})
    return resp.status, orjson.loads(await resp.read())


# --- routes -----------------------------------------------------------------------------------------------


def test_every_webhook_path_is_registered_for_post() -> None:
    app = make_app()
    routes = {(r.method, r.resource.canonical) for r in app.router.routes()}  # type: ignore[union-attr]
    assert routes == {("POST", p) for p in (VALIDATE_CP, MUTATE_CP, VALIDATE_SE, MUTATE_SE, ADMIT_SE)}
    assert set(PATHS) == {VALIDATE_CP, MUTATE_CP, VALIDATE_SE, MUTATE_SE, ADMIT_SE}


def test_add_routes_also_takes_a_router() -> None:
    app = web.Application()
    add_routes(app.router, StaticFacts())
    assert len(list(app.router.routes())) == len(PATHS)


def test_an_unknown_conflict_policy_is_refused_at_startup() -> None:
    with pytest.raises(ValueError, match="warn, deny"):
        make_handlers(StaticFacts(), "strict")  # type: ignore[arg-type]


async def test_a_get_is_not_allowed(client: Any) -> None:
    resp = await client.get(VALIDATE_CP)
    assert resp.status == 405


# --- decisions over HTTP ----------------------------------------------------------------------------------


async def test_a_valid_cluster_id_is_admitted(client: Any) -> None:
    review = admission_review("CREATE", cluster_property("cluster.clusterset.k8s.io", "east"), uid="u-1")
    status, body = await post(client, VALIDATE_CP, review)
    assert status == 200
    assert body == {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "response": {"uid": "u-1", "allowed": True},
    }


async def test_a_subdomain_cluster_id_is_denied_with_422(client: Any) -> None:
    review = admission_review("CREATE", cluster_property("cluster.clusterset.k8s.io", "east.example.com"))
    status, body = await post(client, VALIDATE_CP, review)
    assert status == 200
    response = body["response"]
    assert response["allowed"] is False
    assert response["status"]["code"] == 422
    assert response["status"]["reason"] == "Invalid"
    assert "single DNS label" in response["status"]["message"]


async def test_joining_without_an_id_is_denied_with_an_actionable_message(client: Any) -> None:
    status, body = await post(
        client, VALIDATE_CP, admission_review("CREATE", cluster_property("clusterset.k8s.io", "s"))
    )
    assert status == 200
    assert body["response"]["status"]["code"] == 403
    assert "create cluster.clusterset.k8s.io first" in body["response"]["status"]["message"]


async def test_the_cluster_id_default_patch_applies_to_give_the_kube_system_uid(client: Any) -> None:
    obj = {
        "apiVersion": "about.k8s.io/v1beta1",
        "kind": "ClusterProperty",
        "metadata": {"name": "cluster.clusterset.k8s.io"},
    }
    status, body = await post(client, MUTATE_CP, admission_review("CREATE", obj))
    assert status == 200
    response = body["response"]
    assert response["allowed"] is True and response["patchType"] == "JSONPatch"
    patched = jsonpatch.apply_patch(obj, orjson.loads(base64.b64decode(response["patch"])))
    assert patched == {**obj, "spec": {"value": UID}}


async def test_the_exported_at_patch_applies_to_give_the_expected_object(client: Any) -> None:
    review = export_review()
    obj = review["request"]["object"]
    status, body = await post(client, MUTATE_SE, review)
    assert status == 200
    patch = orjson.loads(base64.b64decode(body["response"]["patch"]))
    assert jsonpatch.apply_patch(obj, patch) == {
        **obj,
        "metadata": {**obj["metadata"], "annotations": {EXPORTED_AT_ANNOTATION: "2026-11-23T18:55:00.123456Z"}},
    }


async def test_an_externalname_export_and_conflicts_are_admitted_with_warnings(aiohttp_client: Any) -> None:
    facts = StaticFacts(
        services={
            ("shop", "web"): {"spec": {"type": "ExternalName"}},
            ("shop", "api"): {"spec": {"type": "ClusterIP"}},
        },
        conflicts=[("PortConflict", "east exposes 443/TCP as 'https'")],
    )
    client = await aiohttp_client(make_app(facts))
    _, external = await post(client, VALIDATE_SE, export_review())
    assert external["response"]["allowed"] is True
    assert external["response"]["warnings"][0].startswith("InvalidServiceType: ")
    api = {"metadata": {"name": "api", "namespace": "shop"}}
    _, warned = await post(client, VALIDATE_SE, export_review(obj=api))
    assert warned["response"] == {
        "uid": warned["response"]["uid"],
        "allowed": True,
        "warnings": ["PortConflict: east exposes 443/TCP as 'https'"],
    }


async def test_the_deny_policy_turns_conflicts_into_denials(aiohttp_client: Any) -> None:
    facts = StaticFacts(
        services={("shop", "web"): {"spec": {"type": "ClusterIP"}}}, conflicts=[("TypeConflict", "Headless in east")]
    )
    client = await aiohttp_client(make_app(facts, "deny"))
    _, body = await post(client, VALIDATE_SE, export_review())
    assert body["response"]["allowed"] is False
    assert "TypeConflict: Headless in east" in body["response"]["status"]["message"]


@pytest.mark.parametrize(
    "path, review",
    [
        (VALIDATE_CP, admission_review("CREATE", cluster_property("cluster.clusterset.k8s.io", "a.b"))),
        (VALIDATE_CP, admission_review("CREATE", cluster_property("clusterset.k8s.io", "s"))),
        (MUTATE_CP, admission_review("CREATE", cluster_property("cluster.clusterset.k8s.io", None))),
        (MUTATE_SE, export_review()),
        (VALIDATE_SE, export_review(obj={"metadata": {"name": "Web"}})),
    ],
)
async def test_dry_run_gets_the_same_answer(client: Any, path: str, review: dict) -> None:
    _, real = await post(client, path, review)
    review["request"]["dryRun"] = True
    _, dry = await post(client, path, review)
    assert dry == real


# --- what the webhook does not handle ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "path, group, version, kind",
    [
        (VALIDATE_CP, "", "v1", "Pod"),
        (VALIDATE_CP, "multicluster.x-k8s.io", "v1beta1", "ServiceExport"),
        (MUTATE_SE, "about.k8s.io", "v1beta1", "ClusterProperty"),
        (VALIDATE_SE, "multicluster.x-k8s.io", "v1alpha2", "ServiceExport"),
        (MUTATE_CP, "about.k8s.io", "v1", "ClusterProperty"),
    ],
)
async def test_a_kind_the_webhook_does_not_handle_is_allowed_unchanged_with_a_warning(
    client: Any, path: str, group: str, version: str, kind: str
) -> None:
    # A ClusterProperty ID with an invalid value and no spec: it would be denied or patched if handled.
    obj = {"metadata": {"name": "Web"}}
    status, body = await post(client, path, admission_review("CREATE", obj, group=group, version=version, kind=kind))
    assert status == 200
    response = body["response"]
    assert response["allowed"] is True and "patch" not in response
    assert path in response["warnings"][0] and kind in response["warnings"][0]
    assert "webhook configuration" in response["warnings"][0]


async def test_a_subresource_request_is_allowed_silently(client: Any) -> None:
    obj = {"metadata": {"name": "Web", "namespace": "shop"}, "status": {"conditions": []}}
    for path in (VALIDATE_SE, MUTATE_SE):
        _, body = await post(client, path, export_review("UPDATE", obj, obj, sub_resource="status"))
        assert body["response"] == {"uid": body["response"]["uid"], "allowed": True}


# --- bad requests -----------------------------------------------------------------------------------------


def assert_status(status: int, body: dict, code: int, fragment: str) -> None:
    assert status == code
    assert body["kind"] == "Status" and body["apiVersion"] == "v1" and body["status"] == "Failure"
    assert body["code"] == code
    assert fragment in body["message"]


@pytest.mark.parametrize(
    "data, fragment",
    [
        (b"{not json", "not valid JSON"),
        (b"", "empty"),
        (
            orjson.dumps({"apiVersion": "admission.k8s.io/v1beta1", "kind": "AdmissionReview", "request": {}}),
            "admissionReviewVersions",
        ),
        (
            orjson.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {"uid": 1}}),
            "request.uid",
        ),
    ],
)
async def test_a_malformed_body_gets_400_with_a_status(client: Any, data: bytes, fragment: str) -> None:
    resp = await client.post(VALIDATE_CP, data=data, headers={"Content-Type": "application/json"})
    assert_status(resp.status, orjson.loads(await resp.read()), 400, fragment)


async def test_a_non_json_content_type_gets_415(client: Any) -> None:
    review = admission_review("CREATE", cluster_property("cluster.clusterset.k8s.io", "a"))
    resp = await client.post(VALIDATE_CP, data=orjson.dumps(review), headers={"Content-Type": "text/yaml"})
    assert_status(resp.status, orjson.loads(await resp.read()), 415, "application/json")


async def test_an_oversized_body_gets_413(aiohttp_client: Any) -> None:
    client = await aiohttp_client(make_app(max_body_bytes=10_000))
    review = admission_review("CREATE", cluster_property("other.example.com", "x" * 20_000))
    resp = await client.post(MUTATE_CP, data=orjson.dumps(review), headers={"Content-Type": "application/json"})
    assert_status(resp.status, orjson.loads(await resp.read()), 413, "10000 bytes")


async def test_an_oversized_chunked_body_without_a_length_gets_413(aiohttp_client: Any) -> None:
    client = await aiohttp_client(make_app(max_body_bytes=100_000))

    async def chunks() -> Any:
        for _ in range(50):
            yield b" " * 10_000

    resp = await client.post(VALIDATE_SE, data=chunks(), headers={"Content-Type": "application/json"})
    assert_status(resp.status, orjson.loads(await resp.read()), 413, "100000 bytes")


async def test_a_review_over_the_default_3_mib_gets_413(client: Any) -> None:
    resp = await client.post(
        VALIDATE_CP, data=b" " * (3 * 1024 * 1024 + 1), headers={"Content-Type": "application/json"}
    )
    assert resp.status == 413


async def test_a_large_review_under_the_limit_is_not_cut_by_aiohttps_default_1_mib(client: Any) -> None:
    review = admission_review("CREATE", cluster_property("notes.example.com", "x" * (2 * 1024 * 1024)))
    status, body = await post(client, VALIDATE_CP, review)
    assert status == 200 and body["response"]["allowed"] is True


class ExplodingFacts(StaticFacts):
    def cluster_properties(self) -> Any:
        raise RuntimeError("cache exploded")


async def test_an_error_while_deciding_gets_500_and_the_server_keeps_serving(aiohttp_client: Any) -> None:
    client = await aiohttp_client(make_app(ExplodingFacts()))
    review = admission_review("CREATE", cluster_property("clusterset.k8s.io", "s"))
    resp = await client.post(VALIDATE_CP, data=orjson.dumps(review), headers={"Content-Type": "application/json"})
    body = orjson.loads(await resp.read())
    assert_status(resp.status, body, 500, VALIDATE_CP)
    assert body["reason"] == "InternalError"
    assert "cache exploded" not in body["message"]
    status, ok = await post(client, VALIDATE_CP, admission_review("CREATE", cluster_property("other", "x")))
    assert status == 200 and ok["response"]["allowed"] is True


async def test_unsynced_facts_give_a_retryable_denial_not_an_error(aiohttp_client: Any) -> None:
    client = await aiohttp_client(make_app(StaticFacts(properties=NOT_SYNCED, uid=NOT_SYNCED)))
    _, body = await post(
        client, MUTATE_CP, admission_review("CREATE", cluster_property("cluster.clusterset.k8s.io", None))
    )
    assert body["response"]["allowed"] is False and body["response"]["status"]["code"] == 503


async def test_one_admit_call_stamps_the_export_and_warns_about_conflicts(aiohttp_client: Any) -> None:
    seen: list[dict] = []

    def conflicts(namespace: str, name: str, export: dict, service: dict) -> list[tuple[str, str]]:
        seen.append(export)
        return [("PortConflict", "east exposes 443/TCP as 'https'")]

    facts = StaticFacts(services={("shop", "web"): {"spec": {"type": "ClusterIP"}}}, conflicts=conflicts)
    client = await aiohttp_client(make_app(facts))
    review = export_review()
    status, body = await post(client, ADMIT_SE, review)
    response = body["response"]
    assert status == 200 and response["allowed"] is True
    patched = jsonpatch.apply_patch(review["request"]["object"], orjson.loads(base64.b64decode(response["patch"])))
    assert patched["metadata"]["annotations"][EXPORTED_AT_ANNOTATION] == "2026-11-23T18:55:00.123456Z"
    assert response["warnings"] == ["PortConflict: east exposes 443/TCP as 'https'"]
    # the conflict check judged the export as it will be stored, stamp included
    assert seen[0]["metadata"]["annotations"][EXPORTED_AT_ANNOTATION] == "2026-11-23T18:55:00.123456Z"


async def test_the_admit_call_stamps_an_externalname_export_and_warns(aiohttp_client: Any) -> None:
    facts = StaticFacts(services={("shop", "web"): {"spec": {"type": "ExternalName", "externalName": "x.example"}}})
    client = await aiohttp_client(make_app(facts))
    status, body = await post(client, ADMIT_SE, export_review())
    response = body["response"]
    assert status == 200 and response["allowed"] is True and "patch" in response
    assert any("ExternalName" in w and "will not be imported" in w for w in response["warnings"])


async def test_the_admit_call_denies_conflicts_in_deny_mode(aiohttp_client: Any) -> None:
    facts = StaticFacts(services={("shop", "web"): {"spec": {"type": "ClusterIP"}}},
                        conflicts=[("TypeConflict", "Headless in east")])
    client = await aiohttp_client(make_app(facts, "deny"))
    status, body = await post(client, ADMIT_SE, export_review())
    assert status == 200 and body["response"]["allowed"] is False
    assert "TypeConflict" in body["response"]["status"]["message"]
