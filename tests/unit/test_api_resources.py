"""GET, LIST and WATCH of serviceimports and clustersets over real HTTP, as kubectl and client-go use them."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from aiohttp import web

from mcs_apiserver.api.app import build_app
from mcs_apiserver.api.continuetoken import encode_continue
from mcs_apiserver.api.resources import PREFIX, ApiSettings, Served
from mcs_apiserver.kube.status import CONTINUE_EXPIRED_MESSAGE
from mcs_apiserver.api.store import Store, StoreSettings, Versioner
from mcs_apiserver.metrics import Metrics

ORIGIN = 5_000
NOW = datetime(2026, 1, 2, tzinfo=UTC).timestamp()
CREATED = "2026-01-01T00:00:00Z"  # one day before NOW: AGE "24h"
GROUP_RESOURCE = "serviceimports.views.multicluster.x-k8s.io"

#: Bookmarks every 10 ms instead of every minute.
FAST_BOOKMARKS = ApiSettings(bookmark_interval=0.01)
ALL = f"{PREFIX}/serviceimports"
SHOP = f"{PREFIX}/namespaces/shop/serviceimports"
SETS = f"{PREFIX}/clustersets"

TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"
TABLE_V1BETA1 = "application/json;as=Table;v=v1beta1;g=meta.k8s.io"
METADATA_LIST = (
    "application/vnd.kubernetes.protobuf;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,"
    "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json"
)
METADATA = (
    "application/vnd.kubernetes.protobuf;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,"
    "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json"
)
#: A guard against a hung test, not a measurement.
READ_GUARD = 10


def service_import(
    namespace: str,
    name: str,
    *,
    labels: dict[str, str] | None = None,
    type_: str = "ClusterSetIP",
    ports: tuple[int, ...] = (80,),
    clusters: tuple[str, ...] = ("a",),
    conflict: str | None = None,
) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "name": name,
        "namespace": namespace,
        "uid": f"uid-{namespace}-{name}",
        "creationTimestamp": CREATED,
    }
    if labels:
        metadata["labels"] = labels
    conditions = [{"type": "Ready", "status": "True", "reason": "Ready"}]
    if conflict:
        conditions.append({"type": "Conflict", "status": "True", "reason": conflict})
    return {
        "apiVersion": "views.multicluster.x-k8s.io/v1alpha1",
        "kind": "ServiceImport",
        "metadata": metadata,
        "spec": {
            "type": type_,
            "ips": ["243.0.0.7"] if type_ == "ClusterSetIP" else [],
            "ipFamilies": ["IPv4"],
            "ports": [{"port": p, "protocol": "TCP"} for p in ports],
        },
        "status": {"clusters": [{"cluster": c} for c in clusters], "conditions": conditions},
    }


def cluster_set(name: str = "set-1") -> dict[str, Any]:
    return {
        "apiVersion": "views.multicluster.x-k8s.io/v1alpha1",
        "kind": "ClusterSet",
        "metadata": {"name": name, "uid": f"uid-{name}", "creationTimestamp": CREATED},
        "status": {
            "localCluster": "a",
            "members": [{"cluster": "a", "state": "Joined"}, {"cluster": "b", "state": "Syncing"}],
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }


INITIAL = {
    ("shop", "web"): service_import("shop", "web", labels={"app": "web", "tier": "front"}),
    ("shop", "db"): service_import("shop", "db", labels={"app": "db"}, type_="Headless", ports=(5432,)),
    ("shop", "api"): service_import("shop", "api", labels={"app": "api", "tier": "back"}, conflict="PortConflict"),
    ("shop-2", "web"): service_import("shop-2", "web", labels={"app": "web"}),
    ("tools", "cache"): service_import("tools", "cache"),
}


@dataclass
class World:
    versioner: Versioner
    imports: Store
    clustersets: Store
    client: Any
    metrics: Metrics

    def change(self, key: tuple[str, str], new: dict[str, Any] | None) -> int:
        store = self.clustersets if key[0] == "" else self.imports
        events = store.apply({key: new})
        return events[-1].rv


@pytest.fixture
async def world(aiohttp_client: Any, request: pytest.FixtureRequest) -> World:
    """The app over two stores, with the tuning of the test's ``settings`` marker (defaults otherwise)."""
    marker = request.node.get_closest_marker("settings")
    tuning: dict[str, Any] = marker.kwargs if marker else {}
    store_settings = tuning.get("store", StoreSettings())
    versioner = Versioner(ORIGIN)
    imports = Store("serviceimports", versioner, store_settings)
    clustersets = Store("clustersets", versioner, store_settings)
    imports.apply(INITIAL)
    clustersets.apply({("", "set-1"): cluster_set()})
    metrics = Metrics()
    app = build_app(Served({"serviceimports": imports, "clustersets": clustersets}), checks=[], metrics=metrics,
                    settings=tuning.get("api", ApiSettings()), clock=lambda: NOW)
    return World(versioner, imports, clustersets, await aiohttp_client(app), metrics)


async def fetch(world: World, path: str, accept: str | None = None, **params: Any) -> tuple[int, dict[str, Any]]:
    headers = {"Accept": accept} if accept else {}
    response = await world.client.get(path, params={k: str(v) for k, v in params.items()}, headers=headers)
    body = await response.read()
    assert response.headers["Content-Type"].startswith("application/json")
    return response.status, orjson.loads(body)


def item_keys(doc: dict[str, Any]) -> list[tuple[str, str]]:
    return [(i["metadata"].get("namespace", ""), i["metadata"]["name"]) for i in doc["items"]]


def registered_watchers(world: World) -> int:
    """Watchers the ServiceImport store still offers changes to (the store keeps no public count)."""
    return len(world.imports._watchers)


def assert_status(doc: dict[str, Any], code: int, reason: str) -> None:
    assert doc["kind"] == "Status" and doc["apiVersion"] == "v1"
    assert doc["status"] == "Failure"
    assert (doc["code"], doc["reason"]) == (code, reason)


# --- list ---------------------------------------------------------------------------------------


async def test_a_list_across_all_namespaces_has_every_import_in_key_order(world: World) -> None:
    code, doc = await fetch(world, ALL)
    assert code == 200
    assert doc["kind"] == "ServiceImportList"
    assert doc["apiVersion"] == "views.multicluster.x-k8s.io/v1alpha1"
    assert item_keys(doc) == sorted(INITIAL)
    assert doc["metadata"] == {"resourceVersion": str(world.versioner.current)}


async def test_a_list_in_one_namespace_has_only_that_namespace(world: World) -> None:
    code, doc = await fetch(world, SHOP)
    assert code == 200
    assert item_keys(doc) == [("shop", "api"), ("shop", "db"), ("shop", "web")]


async def test_a_cluster_scoped_list_has_the_clusterset(world: World) -> None:
    code, doc = await fetch(world, SETS)
    assert code == 200
    assert doc["kind"] == "ClusterSetList"
    assert [i["metadata"]["name"] for i in doc["items"]] == ["set-1"]
    assert doc["items"][0]["metadata"]["resourceVersion"] == str(world.clustersets.get(("", "set-1")).rv)


async def test_an_empty_list_has_an_empty_items_array_never_null(world: World) -> None:
    code, doc = await fetch(world, f"{PREFIX}/namespaces/empty/serviceimports")
    assert code == 200 and doc["items"] == []
    world.change(("", "set-1"), None)
    code, doc = await fetch(world, SETS)
    assert code == 200 and doc["items"] == []


async def test_a_list_body_is_the_stored_bytes_of_each_object_joined(world: World) -> None:
    response = await world.client.get(SHOP)
    body = await response.read()
    stored = [world.imports.get(k) for k in [("shop", "api"), ("shop", "db"), ("shop", "web")]]
    assert body.endswith(b',"items":[' + b",".join(s.json for s in stored) + b"]}")  # type: ignore[union-attr]


async def test_the_list_resource_version_is_the_latest_even_when_another_resource_changed_last(world: World) -> None:
    world.change(("", "set-1"), cluster_set())
    _, doc = await fetch(world, ALL)
    assert doc["metadata"]["resourceVersion"] == str(world.versioner.current)


# --- selectors ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("app=web", ["shop/web", "shop-2/web"]),
        ("app==web", ["shop/web", "shop-2/web"]),
        ("app!=web", ["shop/api", "shop/db", "tools/cache"]),
        ("app in (web,db)", ["shop/db", "shop/web", "shop-2/web"]),
        ("app notin (web,db)", ["shop/api", "tools/cache"]),
        ("tier", ["shop/api", "shop/web"]),
        ("!tier", ["shop/db", "shop-2/web", "tools/cache"]),
        ("app=web,tier=front", ["shop/web"]),
        ("app in (web), !tier", ["shop-2/web"]),
    ],
)
async def test_label_selectors_filter_the_list(world: World, selector: str, expected: list[str]) -> None:
    code, doc = await fetch(world, ALL, labelSelector=selector)
    assert code == 200
    assert [f"{ns}/{name}" for ns, name in item_keys(doc)] == expected


@pytest.mark.parametrize(
    ("path", "selector", "expected"),
    [
        (ALL, "metadata.name=web", ["shop/web", "shop-2/web"]),
        (ALL, "metadata.name==web", ["shop/web", "shop-2/web"]),
        (ALL, "metadata.name!=web", ["shop/api", "shop/db", "tools/cache"]),
        (ALL, "metadata.namespace=tools", ["tools/cache"]),
        (ALL, "spec.type=Headless", ["shop/db"]),
        (SHOP, "spec.type!=Headless", ["shop/api", "shop/web"]),
        (SHOP, "metadata.name=web,spec.type=ClusterSetIP", ["shop/web"]),
        (SETS, "metadata.name=set-1", ["/set-1"]),
        (SETS, "metadata.name=other", []),
        (SETS, "metadata.namespace=", ["/set-1"]),
    ],
)
async def test_field_selectors_filter_the_list(world: World, path: str, selector: str, expected: list[str]) -> None:
    code, doc = await fetch(world, path, fieldSelector=selector)
    assert code == 200
    assert [f"{ns}/{name}" for ns, name in item_keys(doc)] == expected


async def test_an_unsupported_field_selector_is_a_400_status(world: World) -> None:
    code, doc = await fetch(world, ALL, fieldSelector="spec.ports=80")
    assert code == 400
    assert_status(doc, 400, "BadRequest")
    assert doc["message"] == "field label not supported: spec.ports"
    code, doc = await fetch(world, SETS, fieldSelector="spec.type=Headless")
    assert code == 400 and doc["message"] == "field label not supported: spec.type"


async def test_a_malformed_label_selector_is_a_400_status(world: World) -> None:
    code, doc = await fetch(world, ALL, labelSelector="app in web")
    assert code == 400
    assert_status(doc, 400, "BadRequest")
    assert doc["message"].startswith("unable to parse requirement")


# --- limit and continue -------------------------------------------------------------------------


async def test_limit_and_continue_page_through_everything_with_a_remaining_item_count(world: World) -> None:
    code, first = await fetch(world, ALL, limit=2)
    assert code == 200
    assert item_keys(first) == [("shop", "api"), ("shop", "db")]
    assert first["metadata"]["remainingItemCount"] == 3
    token = first["metadata"]["continue"]
    _, second = await fetch(world, ALL, limit=2, **{"continue": token})
    assert item_keys(second) == [("shop", "web"), ("shop-2", "web")]
    assert second["metadata"]["remainingItemCount"] == 1
    _, last = await fetch(world, ALL, limit=2, **{"continue": second["metadata"]["continue"]})
    assert item_keys(last) == [("tools", "cache")]
    assert "continue" not in last["metadata"] and "remainingItemCount" not in last["metadata"]
    assert first["metadata"]["resourceVersion"] == second["metadata"]["resourceVersion"] == last["metadata"]["resourceVersion"]


async def test_a_limit_at_least_the_size_of_the_list_returns_one_page(world: World) -> None:
    _, doc = await fetch(world, SHOP, limit=3)
    assert len(doc["items"]) == 3
    assert doc["metadata"] == {"resourceVersion": str(world.versioner.current)}


async def test_the_next_page_comes_from_the_first_pages_snapshot_after_a_change(world: World) -> None:
    _, first = await fetch(world, ALL, limit=2)
    world.change(("shop", "web"), None)
    world.change(("shop", "zzz"), service_import("shop", "zzz"))
    world.change(("tools", "cache"), service_import("tools", "cache", ports=(9999,)))
    _, second = await fetch(world, ALL, limit=10, **{"continue": first["metadata"]["continue"]})
    assert item_keys(second) == [("shop", "web"), ("shop-2", "web"), ("tools", "cache")]
    assert second["items"][-1]["spec"]["ports"] == [{"port": 80, "protocol": "TCP"}]
    assert second["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]
    _, fresh = await fetch(world, ALL)
    assert ("shop", "zzz") in item_keys(fresh) and ("shop", "web") not in item_keys(fresh)


async def test_pagination_of_one_namespace_stays_in_that_namespace(world: World) -> None:
    _, first = await fetch(world, SHOP, limit=2)
    _, second = await fetch(world, SHOP, limit=2, **{"continue": first["metadata"]["continue"]})
    assert item_keys(first) + item_keys(second) == [("shop", "api"), ("shop", "db"), ("shop", "web")]
    assert "continue" not in second["metadata"]


async def test_pagination_with_a_selector_continues_but_leaves_the_remaining_count_unset(world: World) -> None:
    _, first = await fetch(world, ALL, limit=1, fieldSelector="metadata.name=web")
    assert item_keys(first) == [("shop", "web")]
    assert "remainingItemCount" not in first["metadata"]
    _, second = await fetch(world, ALL, limit=1, fieldSelector="metadata.name=web",
                            **{"continue": first["metadata"]["continue"]})
    assert item_keys(second) == [("shop-2", "web")]
    assert "continue" not in second["metadata"]


async def test_a_garbage_continue_token_is_a_400_status(world: World) -> None:
    code, doc = await fetch(world, ALL, limit=1, **{"continue": "not-a-token!"})
    assert code == 400
    assert_status(doc, 400, "BadRequest")
    assert doc["message"].startswith("invalid continue token")


async def test_a_continue_token_with_a_version_that_is_not_a_number_is_a_400_status(world: World) -> None:
    code, doc = await fetch(world, ALL, limit=1, **{"continue": encode_continue("abc", "shop/web")})
    assert code == 400
    assert_status(doc, 400, "BadRequest")


@pytest.mark.settings(store=StoreSettings(snapshots_kept=1))
async def test_an_expired_continue_token_is_a_410_expired_status(world: World) -> None:
    _, first = await fetch(world, ALL, limit=2)
    world.change(("shop", "zzz"), service_import("shop", "zzz"))
    await fetch(world, ALL)  # a newer snapshot pushes the first one out
    code, doc = await fetch(world, ALL, limit=2, **{"continue": first["metadata"]["continue"]})
    assert code == 410
    assert_status(doc, 410, "Expired")
    assert doc["message"] == CONTINUE_EXPIRED_MESSAGE


async def test_continue_with_a_resource_version_is_a_400_status(world: World) -> None:
    _, first = await fetch(world, ALL, limit=2)
    code, doc = await fetch(world, ALL, limit=2, resourceVersion=first["metadata"]["resourceVersion"],
                            **{"continue": first["metadata"]["continue"]})
    assert code == 400
    assert doc["message"] == "specifying resource version is not allowed when using continue"
    code, _ = await fetch(world, ALL, limit=2, resourceVersion="0", **{"continue": first["metadata"]["continue"]})
    assert code == 200


async def test_continue_with_a_resource_version_match_is_a_422_status(world: World) -> None:
    _, first = await fetch(world, ALL, limit=2)
    code, doc = await fetch(world, ALL, limit=2, resourceVersion="0", resourceVersionMatch="NotOlderThan",
                            **{"continue": first["metadata"]["continue"]})
    assert code == 422
    assert_status(doc, 422, "Invalid")


async def test_a_non_numeric_or_out_of_int64_limit_is_a_400_status(world: World) -> None:
    for limit in ("ten", "99999999999999999999", "1.5"):
        code, doc = await fetch(world, ALL, limit=limit)
        assert code == 400, limit
        assert_status(doc, 400, "BadRequest")
        assert "limit" in doc["message"]


async def test_a_negative_limit_lists_everything_like_kube_apiserver(world: World) -> None:
    code, everything = await fetch(world, ALL)
    code, doc = await fetch(world, ALL, limit=-1)
    assert code == 200
    assert [i["metadata"]["name"] for i in doc["items"]] == [i["metadata"]["name"] for i in everything["items"]]
    assert "continue" not in doc["metadata"]


async def test_a_negative_timeout_and_an_empty_field_selector_term_are_accepted_like_kube_apiserver(
        world: World) -> None:
    code, everything = await fetch(world, ALL)
    assert (await fetch(world, ALL, timeoutSeconds=-1)) == (200, everything)
    assert (await fetch(world, ALL, fieldSelector="==")) == (200, everything)
    code, doc = await fetch(world, ALL, fieldSelector="=x")
    assert code == 400 and doc["message"] == "field label not supported: "


# --- resourceVersion ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "params",
    [{}, {"resourceVersion": "0"}, {"resourceVersion": "0", "resourceVersionMatch": "NotOlderThan"},
     {"resourceVersion": str(ORIGIN + 1)}, {"resourceVersion": str(ORIGIN + 1), "resourceVersionMatch": "NotOlderThan"}],
)
async def test_unset_zero_and_not_older_than_lists_serve_the_latest_state(world: World, params: dict) -> None:
    world.change(("shop", "new"), service_import("shop", "new"))
    code, doc = await fetch(world, SHOP, **params)
    assert code == 200
    assert ("shop", "new") in item_keys(doc)
    assert doc["metadata"]["resourceVersion"] == str(world.versioner.current)


async def test_an_exact_list_serves_the_state_at_that_version(world: World) -> None:
    _, before = await fetch(world, SHOP)
    version = before["metadata"]["resourceVersion"]
    world.change(("shop", "new"), service_import("shop", "new"))
    code, doc = await fetch(world, SHOP, resourceVersion=version, resourceVersionMatch="Exact")
    assert code == 200
    assert item_keys(doc) == item_keys(before)
    assert doc["metadata"]["resourceVersion"] == version


async def test_an_exact_list_of_a_version_no_longer_kept_is_a_410_expired_status(world: World) -> None:
    code, doc = await fetch(world, SHOP, resourceVersion=str(ORIGIN - 10), resourceVersionMatch="Exact")
    assert code == 410
    assert_status(doc, 410, "Expired")
    assert doc["message"].startswith(f"too old resource version: {ORIGIN - 10}")


@pytest.mark.parametrize("match", ["", "NotOlderThan", "Exact"])
async def test_a_resource_version_newer_than_the_server_is_a_504_too_large(world: World, match: str) -> None:
    too_new = world.versioner.current + 100
    params: dict[str, str] = {"resourceVersion": str(too_new)}
    if match:
        params["resourceVersionMatch"] = match
    code, doc = await fetch(world, ALL, **params)
    assert code == 504
    assert_status(doc, 504, "Timeout")
    assert doc["message"] == f"Too large resource version: {too_new}, current: {world.versioner.current}"
    assert doc["details"]["causes"][0]["reason"] == "ResourceVersionTooLarge"


@pytest.mark.parametrize(
    "params",
    [
        {"resourceVersionMatch": "NotOlderThan"},
        {"resourceVersion": "0", "resourceVersionMatch": "Exact"},
        {"resourceVersion": "1", "resourceVersionMatch": "Newest"},
    ],
)
async def test_invalid_resource_version_match_combinations_are_422_invalid(world: World, params: dict) -> None:
    code, doc = await fetch(world, ALL, **params)
    assert code == 422
    assert_status(doc, 422, "Invalid")
    assert doc["details"]["causes"][0]["field"] == "resourceVersionMatch"


@pytest.mark.parametrize("version", ["abc", "-3"])
async def test_a_resource_version_that_is_not_ours_is_a_400_status(world: World, version: str) -> None:
    code, doc = await fetch(world, ALL, resourceVersion=version)
    assert code == 400
    assert_status(doc, 400, "BadRequest")


# --- get ----------------------------------------------------------------------------------------


async def test_get_returns_the_stored_object(world: World) -> None:
    response = await world.client.get(f"{SHOP}/web")
    assert response.status == 200
    assert response.headers["Content-Type"] == "application/json"
    assert await response.read() == world.imports.get(("shop", "web")).json  # type: ignore[union-attr]


async def test_get_of_a_cluster_scoped_object(world: World) -> None:
    code, doc = await fetch(world, f"{SETS}/set-1")
    assert code == 200
    assert doc["kind"] == "ClusterSet" and doc["status"]["localCluster"] == "a"


async def test_get_of_a_missing_object_is_a_404_with_kube_apiservers_message(world: World) -> None:
    code, doc = await fetch(world, f"{SHOP}/nope")
    assert code == 404
    assert doc == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": f'{GROUP_RESOURCE} "nope" not found',
        "reason": "NotFound",
        "details": {"name": "nope", "group": "views.multicluster.x-k8s.io", "kind": "serviceimports"},
        "code": 404,
    }


async def test_get_of_an_object_in_another_namespace_is_a_404(world: World) -> None:
    code, _ = await fetch(world, f"{PREFIX}/namespaces/tools/serviceimports/web")
    assert code == 404


# --- Table --------------------------------------------------------------------------------------


async def test_a_table_list_has_column_definitions_and_one_printed_row_per_object(world: World) -> None:
    code, doc = await fetch(world, SHOP, TABLE)
    assert code == 200
    assert (doc["kind"], doc["apiVersion"]) == ("Table", "meta.k8s.io/v1")
    columns = doc["columnDefinitions"]
    assert [c["name"] for c in columns if c["priority"] == 0] == ["Name", "Type", "IP", "Ports", "Clusters", "Age"]
    assert [c["name"] for c in columns if c["priority"] > 0] == ["Conflict", "Ready", "IP Families"]
    assert columns[0]["type"] == "string" and columns[0]["format"] == "name"
    assert [r["cells"] for r in doc["rows"]] == [
        ["api", "ClusterSetIP", "243.0.0.7", "80/TCP", "a", "24h", "PortConflict", "True", "IPv4"],
        ["db", "Headless", "<none>", "5432/TCP", "a", "24h", "<none>", "True", "IPv4"],
        ["web", "ClusterSetIP", "243.0.0.7", "80/TCP", "a", "24h", "<none>", "True", "IPv4"],
    ]
    assert doc["metadata"] == {"resourceVersion": str(world.versioner.current)}


async def test_a_table_row_carries_partial_object_metadata_by_default(world: World) -> None:
    _, doc = await fetch(world, SHOP, TABLE)
    row = doc["rows"][2]["object"]
    assert (row["kind"], row["apiVersion"]) == ("PartialObjectMetadata", "meta.k8s.io/v1")
    assert row["metadata"] == world.imports.get(("shop", "web")).obj["metadata"]  # type: ignore[union-attr]
    assert "spec" not in row


@pytest.mark.parametrize("include", ["None", "Metadata", "Object"])
async def test_include_object_chooses_what_each_row_carries(world: World, include: str) -> None:
    _, doc = await fetch(world, f"{SHOP}", TABLE, includeObject=include)
    row = doc["rows"][2]["object"]
    stored = world.imports.get(("shop", "web")).obj  # type: ignore[union-attr]
    if include == "None":
        assert row is None
    elif include == "Metadata":
        assert row == {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": stored["metadata"]}
    else:
        assert row == stored


async def test_an_unknown_include_object_is_a_400_status(world: World) -> None:
    code, doc = await fetch(world, SHOP, TABLE, includeObject="Everything")
    assert code == 400
    assert doc["message"] == 'unrecognized includeObject value: "Everything"'


async def test_a_v1beta1_table_differs_only_in_api_version(world: World) -> None:
    _, v1 = await fetch(world, SHOP, TABLE)
    _, beta = await fetch(world, SHOP, TABLE_V1BETA1)
    assert beta["apiVersion"] == "meta.k8s.io/v1beta1"
    assert beta["rows"][0]["object"]["apiVersion"] == "meta.k8s.io/v1beta1"
    assert [r["cells"] for r in beta["rows"]] == [r["cells"] for r in v1["rows"]]
    assert beta["columnDefinitions"] == v1["columnDefinitions"]


async def test_a_clusterset_table_counts_joined_members_and_lists_the_others_in_wide(world: World) -> None:
    _, doc = await fetch(world, SETS, TABLE)
    assert [c["name"] for c in doc["columnDefinitions"]] == ["Name", "Local", "Members", "Ready", "Age", "Not Joined"]
    assert doc["columnDefinitions"][-1]["priority"] == 1
    assert doc["rows"][0]["cells"] == ["set-1", "a", "1/2", "True", "24h", "b:Syncing"]


async def test_a_paginated_table_carries_continue_and_remaining_count(world: World) -> None:
    _, doc = await fetch(world, ALL, TABLE, limit=2)
    assert len(doc["rows"]) == 2
    assert doc["metadata"]["remainingItemCount"] == 3
    _, rest = await fetch(world, ALL, TABLE, limit=10, **{"continue": doc["metadata"]["continue"]})
    assert [r["cells"][0] for r in rest["rows"]] == ["web", "web", "cache"]


async def test_get_as_table_is_a_one_row_table_with_the_objects_version(world: World) -> None:
    code, doc = await fetch(world, f"{SHOP}/db", TABLE, includeObject="None")
    assert code == 200 and doc["kind"] == "Table"
    assert [r["cells"][0] for r in doc["rows"]] == ["db"]
    assert doc["rows"][0]["object"] is None
    assert doc["metadata"]["resourceVersion"] == str(world.imports.get(("shop", "db")).rv)  # type: ignore[union-attr]


# --- PartialObjectMetadata ----------------------------------------------------------------------


async def test_the_metadata_client_lists_partial_object_metadata(world: World) -> None:
    code, doc = await fetch(world, SHOP, METADATA_LIST, limit=2)
    assert code == 200
    assert (doc["kind"], doc["apiVersion"]) == ("PartialObjectMetadataList", "meta.k8s.io/v1")
    assert doc["metadata"]["remainingItemCount"] == 1 and doc["metadata"]["continue"]
    assert [i["kind"] for i in doc["items"]] == ["PartialObjectMetadata"] * 2
    assert doc["items"][0]["metadata"] == world.imports.get(("shop", "api")).obj["metadata"]  # type: ignore[union-attr]
    assert all(set(i) == {"kind", "apiVersion", "metadata"} for i in doc["items"])


async def test_the_metadata_client_gets_partial_object_metadata(world: World) -> None:
    code, doc = await fetch(world, f"{SETS}/set-1", METADATA)
    assert code == 200
    assert doc == {
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": world.clustersets.get(("", "set-1")).obj["metadata"],  # type: ignore[union-attr]
    }


async def test_an_accept_header_with_nothing_we_produce_is_a_406_status(world: World) -> None:
    code, doc = await fetch(world, ALL, "application/vnd.kubernetes.protobuf")
    assert code == 406
    assert_status(doc, 406, "NotAcceptable")


# --- watch --------------------------------------------------------------------------------------


async def open_watch(world: World, path: str, accept: str | None = None, **params: Any) -> Any:
    params = {"watch": "true", **params}
    headers = {"Accept": accept} if accept else {}
    response = await world.client.get(path, params={k: str(v) for k, v in params.items()}, headers=headers)
    assert response.status == 200, await response.text()
    assert response.headers["Content-Type"] == "application/json"
    assert response.headers.get("Transfer-Encoding") == "chunked"
    return response


async def next_event(response: Any) -> dict[str, Any]:
    line = await asyncio.wait_for(response.content.readline(), READ_GUARD)
    assert line.endswith(b"\n"), f"the watch ended instead: {line!r}"
    return orjson.loads(line)


async def rest_of(response: Any) -> list[dict[str, Any]]:
    """Every event until the server ends the watch."""
    body = await asyncio.wait_for(response.content.read(), READ_GUARD)
    return [orjson.loads(line) for line in body.splitlines()]


def summary(event: dict[str, Any]) -> tuple[str, str]:
    meta = event["object"]["metadata"]
    return event["type"], f"{meta.get('namespace', '')}/{meta.get('name', '')}"


async def test_a_watch_without_a_version_sends_every_object_as_added_then_live_events(world: World) -> None:
    response = await open_watch(world, SHOP)
    initial = [await next_event(response) for _ in range(3)]
    assert [summary(e) for e in initial] == [("ADDED", "shop/api"), ("ADDED", "shop/db"), ("ADDED", "shop/web")]
    assert initial[0]["object"] == world.imports.get(("shop", "api")).obj  # type: ignore[union-attr]
    rv = world.change(("shop", "web"), service_import("shop", "web", ports=(8080,)))
    world.change(("tools", "cache"), None)  # another namespace: not this watch's business
    world.change(("shop", "new"), service_import("shop", "new"))
    modified = await next_event(response)
    assert summary(modified) == ("MODIFIED", "shop/web")
    assert modified["object"]["metadata"]["resourceVersion"] == str(rv)
    assert modified["object"]["spec"]["ports"] == [{"port": 8080, "protocol": "TCP"}]
    assert summary(await next_event(response)) == ("ADDED", "shop/new")


async def test_a_watch_from_version_0_also_starts_with_the_current_objects(world: World) -> None:
    response = await open_watch(world, SETS, resourceVersion="0")
    assert summary(await next_event(response)) == ("ADDED", "/set-1")


async def test_a_watch_from_a_version_sends_only_what_happened_after_it(world: World) -> None:
    _, listed = await fetch(world, SHOP)
    world.change(("shop", "db"), None)
    world.change(("shop", "new"), service_import("shop", "new"))
    response = await open_watch(world, SHOP, resourceVersion=listed["metadata"]["resourceVersion"])
    assert summary(await next_event(response)) == ("DELETED", "shop/db")
    assert summary(await next_event(response)) == ("ADDED", "shop/new")
    world.change(("shop", "web"), None)
    assert summary(await next_event(response)) == ("DELETED", "shop/web")


async def test_a_watch_from_a_version_too_old_is_200_with_one_expired_error_event(world: World) -> None:
    response = await open_watch(world, ALL, resourceVersion=str(ORIGIN - 100))
    events = await rest_of(response)
    assert len(events) == 1 and events[0]["type"] == "ERROR"
    assert_status(events[0]["object"], 410, "Expired")
    assert events[0]["object"]["message"] == f"too old resource version: {ORIGIN - 100} ({ORIGIN})"
    assert registered_watchers(world) == 0


async def test_a_watch_from_a_version_newer_than_the_server_is_one_too_large_error_event(world: World) -> None:
    too_new = world.versioner.current + 1000
    response = await open_watch(world, ALL, resourceVersion=str(too_new))
    (event,) = await rest_of(response)
    assert event["type"] == "ERROR"
    assert_status(event["object"], 504, "Timeout")
    assert event["object"]["details"]["causes"][0]["reason"] == "ResourceVersionTooLarge"


async def test_a_change_that_leaves_a_label_selector_is_deleted_and_one_that_enters_is_added(world: World) -> None:
    response = await open_watch(world, ALL, labelSelector="tier=front", resourceVersion=str(world.versioner.current))
    left = world.change(("shop", "web"), service_import("shop", "web", labels={"app": "web", "tier": "back"}))
    deleted = await next_event(response)
    assert summary(deleted) == ("DELETED", "shop/web")
    assert deleted["object"]["metadata"]["labels"] == {"app": "web", "tier": "front"}
    assert deleted["object"]["metadata"]["resourceVersion"] == str(left)
    world.change(("shop", "db"), service_import("shop", "db", labels={"tier": "front"}))
    added = await next_event(response)
    assert summary(added) == ("ADDED", "shop/db")
    assert added["object"]["metadata"]["labels"] == {"tier": "front"}


async def test_a_deleted_event_carries_the_last_state_with_a_newer_version(world: World) -> None:
    before = world.imports.get(("shop", "api")).rv  # type: ignore[union-attr]
    response = await open_watch(world, SHOP, resourceVersion=str(world.versioner.current))
    rv = world.change(("shop", "api"), None)
    event = await next_event(response)
    assert summary(event) == ("DELETED", "shop/api")
    assert int(event["object"]["metadata"]["resourceVersion"]) == rv > before
    assert event["object"]["status"]["conditions"][1]["reason"] == "PortConflict"


@pytest.mark.settings(api=FAST_BOOKMARKS)
async def test_bookmarks_are_sent_when_allowed(world: World) -> None:
    response = await open_watch(world, SHOP, resourceVersion=str(world.versioner.current), allowWatchBookmarks="true")
    world.change(("", "set-1"), cluster_set())  # the version moves on without an event for this watch
    event = await next_event(response)
    assert event == {
        "type": "BOOKMARK",
        "object": {
            "kind": "ServiceImport",
            "apiVersion": "views.multicluster.x-k8s.io/v1alpha1",
            "metadata": {"resourceVersion": str(world.versioner.current)},
        },
    }


async def test_watch_list_sends_added_events_then_the_initial_events_end_bookmark(world: World) -> None:
    response = await open_watch(world, SHOP, sendInitialEvents="true", resourceVersionMatch="NotOlderThan",
                                allowWatchBookmarks="true", resourceVersion="")
    events = [await next_event(response) for _ in range(4)]
    assert [summary(e) for e in events[:3]] == [("ADDED", "shop/api"), ("ADDED", "shop/db"), ("ADDED", "shop/web")]
    bookmark = events[3]
    assert bookmark["type"] == "BOOKMARK"
    assert bookmark["object"]["metadata"] == {
        "resourceVersion": str(world.versioner.current),
        "annotations": {"k8s.io/initial-events-end": "true"},
    }
    world.change(("shop", "db"), None)
    assert summary(await next_event(response)) == ("DELETED", "shop/db")


async def test_watch_list_from_a_known_version_still_sends_the_current_state(world: World) -> None:
    response = await open_watch(world, SETS, sendInitialEvents="true", resourceVersionMatch="NotOlderThan",
                                allowWatchBookmarks="true", resourceVersion=str(ORIGIN))
    assert summary(await next_event(response)) == ("ADDED", "/set-1")
    assert (await next_event(response))["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}


async def test_watch_list_from_a_version_newer_than_the_server_is_a_504(world: World) -> None:
    code, doc = await fetch(world, SHOP, watch="true", sendInitialEvents="true", resourceVersionMatch="NotOlderThan",
                            allowWatchBookmarks="true", resourceVersion=str(world.versioner.current + 5))
    assert code == 504
    assert_status(doc, 504, "Timeout")


async def test_send_initial_events_false_starts_from_the_given_version_without_initial_state(world: World) -> None:
    since = world.versioner.current
    world.change(("shop", "db"), None)
    response = await open_watch(world, SHOP, sendInitialEvents="false", resourceVersionMatch="NotOlderThan",
                                resourceVersion=str(since))
    assert summary(await next_event(response)) == ("DELETED", "shop/db")


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"sendInitialEvents": "true", "allowWatchBookmarks": "true"}, "resourceVersionMatch"),
        ({"sendInitialEvents": "true", "resourceVersionMatch": "Exact", "allowWatchBookmarks": "true"},
         "resourceVersionMatch"),
        ({"sendInitialEvents": "true", "resourceVersionMatch": "NotOlderThan"}, "allowWatchBookmarks"),
        ({"resourceVersionMatch": "NotOlderThan", "resourceVersion": "0"}, "resourceVersionMatch"),
    ],
)
async def test_invalid_watch_list_options_are_a_422_invalid_status(world: World, params: dict, field: str) -> None:
    code, doc = await fetch(world, SHOP, watch="true", **params)
    assert code == 422
    assert_status(doc, 422, "Invalid")
    assert doc["details"]["causes"][0]["field"] == field


async def test_timeout_seconds_ends_the_watch_with_a_last_bookmark(world: World) -> None:
    response = await open_watch(world, SHOP, resourceVersion=str(world.versioner.current), timeoutSeconds=1,
                                allowWatchBookmarks="true")
    events = await rest_of(response)
    assert [e["type"] for e in events][-1:] == ["BOOKMARK"]
    assert registered_watchers(world) == 0


@pytest.mark.settings(api=FAST_BOOKMARKS)
async def test_timeout_seconds_ends_the_watch_without_bookmarks_unless_allowed(world: World) -> None:
    response = await open_watch(world, SETS, timeoutSeconds=1)
    events = await rest_of(response)
    assert [summary(e) for e in events] == [("ADDED", "/set-1")]


async def test_timeout_seconds_0_means_the_servers_default_not_an_immediate_end(world: World) -> None:
    response = await open_watch(world, SHOP, resourceVersion=str(world.versioner.current), timeoutSeconds=0)
    world.change(("shop", "db"), None)
    assert summary(await next_event(response)) == ("DELETED", "shop/db")


async def test_events_queued_when_the_timeout_expires_go_out_before_the_last_bookmark(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = web.StreamResponse.write
    armed = [True]

    async def slow_write(self: web.StreamResponse, data: bytes) -> None:
        await original(self, data)
        if armed[0] and b'"MODIFIED"' in data:
            armed[0] = False
            world.change(("shop", "db"), None)  # queued while this client is slow...
            await asyncio.sleep(1.2)  # ...until the watch's 1 s are over

    monkeypatch.setattr(web.StreamResponse, "write", slow_write)
    response = await open_watch(world, SHOP, resourceVersion=str(world.versioner.current), timeoutSeconds=1,
                                allowWatchBookmarks="true")
    world.change(("shop", "web"), service_import("shop", "web", ports=(1,)))
    events = await rest_of(response)
    assert [e["type"] for e in events] == ["MODIFIED", "DELETED", "BOOKMARK"]
    assert int(events[2]["object"]["metadata"]["resourceVersion"]) >= int(
        events[1]["object"]["metadata"]["resourceVersion"])


async def test_a_change_while_the_response_is_prepared_is_delivered_once_after_the_initial_state(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = web.StreamResponse.prepare

    async def prepare(self: web.StreamResponse, request: web.Request) -> Any:
        if request.query.get("watch"):
            world.change(("shop", "late"), service_import("shop", "late"))
        return await original(self, request)

    monkeypatch.setattr(web.StreamResponse, "prepare", prepare)
    response = await open_watch(world, SHOP, sendInitialEvents="true", resourceVersionMatch="NotOlderThan",
                                allowWatchBookmarks="true", timeoutSeconds=1)
    events = [e for e in await rest_of(response) if e["type"] != "BOOKMARK" or
              e["object"]["metadata"].get("annotations")]
    assert [summary(e) for e in events] == [
        ("ADDED", "shop/api"), ("ADDED", "shop/db"), ("ADDED", "shop/web"), ("BOOKMARK", "/"), ("ADDED", "shop/late")]
    versions = [int(e["object"]["metadata"]["resourceVersion"]) for e in events]
    assert versions[3] < versions[4]  # the bookmark does not claim an event that comes after it


async def test_a_watch_of_one_object_by_name_field_selector_sees_only_that_object(world: World) -> None:
    response = await open_watch(world, SHOP, fieldSelector="metadata.name=web", resourceVersion="0")
    assert summary(await next_event(response)) == ("ADDED", "shop/web")
    world.change(("shop", "db"), None)
    world.change(("shop-2", "web"), None)
    world.change(("shop", "web"), None)
    assert summary(await next_event(response)) == ("DELETED", "shop/web")


async def test_a_clusterset_watch_by_name_field_selector_sees_only_that_clusterset(world: World) -> None:
    response = await open_watch(world, SETS, fieldSelector="metadata.name=set-2", resourceVersion="0")
    world.change(("", "set-1"), cluster_set("set-1"))
    world.change(("", "set-2"), cluster_set("set-2"))
    assert summary(await next_event(response)) == ("ADDED", "/set-2")


async def test_a_watch_on_an_object_path_sees_only_that_object(world: World) -> None:
    response = await open_watch(world, f"{SHOP}/db")
    assert summary(await next_event(response)) == ("ADDED", "shop/db")
    world.change(("shop", "web"), None)
    world.change(("shop", "db"), None)
    assert summary(await next_event(response)) == ("DELETED", "shop/db")


async def test_a_table_watch_sends_one_row_tables_with_columns_only_in_the_first(world: World) -> None:
    response = await open_watch(world, SHOP, TABLE, fieldSelector="metadata.name!=db")
    first, second = await next_event(response), await next_event(response)
    assert first["type"] == "ADDED" and first["object"]["kind"] == "Table"
    assert [c["name"] for c in first["object"]["columnDefinitions"]][:2] == ["Name", "Type"]
    assert second["object"]["columnDefinitions"] == []
    assert [r["cells"][0] for r in (first["object"]["rows"] + second["object"]["rows"])] == ["api", "web"]
    rv = world.change(("shop", "web"), service_import("shop", "web", ports=(8443,)))
    live = await next_event(response)
    assert live["type"] == "MODIFIED"
    assert live["object"]["columnDefinitions"] == []
    assert live["object"]["rows"][0]["cells"][3] == "8443/TCP"
    assert live["object"]["rows"][0]["object"]["kind"] == "PartialObjectMetadata"
    assert live["object"]["metadata"]["resourceVersion"] == str(rv)


@pytest.mark.settings(api=FAST_BOOKMARKS)
async def test_a_table_watch_bookmark_is_an_empty_table(world: World) -> None:
    response = await open_watch(world, SHOP, TABLE, resourceVersion=str(world.versioner.current),
                                allowWatchBookmarks="1")
    event = await next_event(response)
    assert event["type"] == "BOOKMARK"
    assert event["object"]["kind"] == "Table" and event["object"]["rows"] == []
    assert event["object"]["metadata"]["resourceVersion"] == str(world.versioner.current)


async def test_the_metadata_client_watch_gets_partial_object_metadata_events(world: World) -> None:
    response = await open_watch(world, SHOP, METADATA, resourceVersion=str(world.versioner.current))
    world.change(("shop", "db"), None)
    event = await next_event(response)
    assert event["type"] == "DELETED"
    assert event["object"]["kind"] == "PartialObjectMetadata"
    assert event["object"]["apiVersion"] == "meta.k8s.io/v1"
    assert event["object"]["metadata"]["name"] == "db"
    assert "spec" not in event["object"]


@pytest.mark.settings(store=StoreSettings(watch_queue_limit=3))
async def test_a_watcher_that_falls_far_behind_is_closed(world: World) -> None:
    response = await open_watch(world, ALL, resourceVersion=str(world.versioner.current))
    world.imports.apply({("flood", f"s{i:02d}"): service_import("flood", f"s{i:02d}") for i in range(10)})
    events = await rest_of(response)
    assert [summary(e) for e in events] == [("ADDED", "flood/s00"), ("ADDED", "flood/s01"), ("ADDED", "flood/s02")]
    assert registered_watchers(world) == 0


async def test_closing_the_stores_watchers_ends_the_watch(world: World) -> None:
    response = await open_watch(world, SETS)
    assert summary(await next_event(response)) == ("ADDED", "/set-1")
    world.clustersets.close_watchers()
    assert await rest_of(response) == []


async def test_a_watch_the_client_abandons_is_unregistered(world: World) -> None:
    response = await open_watch(world, SHOP, resourceVersion=str(world.versioner.current))
    assert registered_watchers(world) == 1
    response.close()
    for i in range(200):  # the server notices when it next writes
        if registered_watchers(world) == 0:
            break
        world.change(("shop", "ping"), service_import("shop", "ping", ports=(i + 1,)))
        await asyncio.sleep(0.01)
    assert registered_watchers(world) == 0


async def test_a_bad_selector_on_a_watch_is_a_400_before_streaming(world: World) -> None:
    code, doc = await fetch(world, SHOP, watch="1", fieldSelector="status.clusters=a")
    assert code == 400
    assert_status(doc, 400, "BadRequest")


# --- verbs and paths ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "verb"),
    [
        ("POST", SHOP, "create"),
        ("PUT", f"{SHOP}/web", "update"),
        ("PATCH", f"{SHOP}/web", "patch"),
        ("DELETE", f"{SHOP}/web", "delete"),
        ("DELETE", SHOP, "deletecollection"),
        ("POST", SETS, "create"),
    ],
)
async def test_write_verbs_are_405_method_not_allowed(world: World, method: str, path: str, verb: str) -> None:
    response = await world.client.request(method, path, data=b"{}", headers={"Content-Type": "application/json"})
    doc = orjson.loads(await response.read())
    assert response.status == 405
    assert_status(doc, 405, "MethodNotAllowed")
    resource = "clustersets" if "clustersets" in path else "serviceimports"
    assert doc["message"] == f'{verb} is not supported on resources of kind "{resource}.views.multicluster.x-k8s.io"'
    assert world.imports.get(("shop", "web")) is not None


@pytest.mark.parametrize(
    "path",
    [
        f"{PREFIX}/flunders",
        f"{PREFIX}/namespaces/shop/flunders",
        f"{PREFIX}/namespaces/shop",
        f"{PREFIX}/namespaces/shop/clustersets",
        f"{PREFIX}/serviceimports/web",
        f"{SHOP}/web/status",
    ],
)
async def test_paths_that_name_nothing_we_serve_are_a_404_status(world: World, path: str) -> None:
    code, doc = await fetch(world, path)
    assert code == 404
    assert_status(doc, 404, "NotFound")
    assert doc["message"] == "the server could not find the requested resource"


async def test_a_large_list_is_gzipped_for_a_client_that_accepts_it(world: World) -> None:
    import gzip as gz

    world.imports.apply({("bulk", f"svc-{i:04d}"): service_import("bulk", f"svc-{i:04d}") for i in range(600)})
    plain = await world.client.get(ALL, headers={"Accept-Encoding": "identity"})
    plain_body = await plain.read()
    assert "Content-Encoding" not in plain.headers
    assert len(plain_body) > ApiSettings().gzip_threshold
    raw = await world.client.get(ALL, headers={"Accept-Encoding": "gzip, deflate"}, auto_decompress=False)
    assert raw.headers["Content-Encoding"] == "gzip"
    compressed = await raw.read()
    assert len(compressed) < len(plain_body) // 3
    assert orjson.loads(gz.decompress(compressed))["items"] == orjson.loads(plain_body)["items"]
    refused = await world.client.get(ALL, headers={"Accept-Encoding": "gzip;q=0"}, auto_decompress=False)
    assert "Content-Encoding" not in refused.headers


async def test_a_small_list_is_never_compressed(world: World) -> None:
    response = await world.client.get(ALL, headers={"Accept-Encoding": "gzip"}, auto_decompress=False)
    assert "Content-Encoding" not in response.headers
    assert orjson.loads(await response.read())["kind"] == "ServiceImportList"


@pytest.mark.parametrize("flag", ["t", "1", "true", "True", "T", "yes"])
async def test_every_true_spelling_of_watch_is_served_as_a_watch(world: World, flag: str) -> None:
    response = await open_watch(world, SHOP, watch=flag, timeoutSeconds=1)
    first = await next_event(response)
    assert first["type"] == "ADDED"
    response.close()


@pytest.mark.parametrize("flag", ["0", "false", "False", ""])
async def test_every_false_spelling_of_watch_is_served_as_a_list(world: World, flag: str) -> None:
    code, doc = await fetch(world, SHOP, watch=flag)
    assert code == 200
    assert doc["kind"] == "ServiceImportList"
