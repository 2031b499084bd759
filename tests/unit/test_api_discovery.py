"""Discovery documents (mcs_apiserver.api.discovery)."""

from __future__ import annotations

import orjson
import pytest

from mcs_apiserver.api.discovery import (
    api_group,
    api_group_discovery_list,
    api_group_list,
    api_resource_list,
    discovery_bytes,
    resource_info,
)


def by_name(resources: list[dict], key: str = "name") -> dict[str, dict]:
    return {r[key]: r for r in resources}


def test_the_resource_list_describes_both_resources_read_only() -> None:
    doc = api_resource_list()
    assert (doc["kind"], doc["apiVersion"], doc["groupVersion"]) == (
        "APIResourceList",
        "v1",
        "views.multicluster.x-k8s.io/v1alpha1",
    )
    resources = by_name(doc["resources"])
    assert resources["serviceimports"] == {
        "name": "serviceimports",
        "singularName": "serviceimport",
        "namespaced": True,
        "kind": "ServiceImport",
        "verbs": ["get", "list", "watch"],
        "shortNames": ["svcim", "svcimport"],
        "categories": ["multicluster"],
    }
    assert resources["clustersets"]["namespaced"] is False
    assert resources["clustersets"]["shortNames"] == ["cset"]


def test_no_subresource_is_published_without_its_parent() -> None:
    names = {r["name"] for r in api_resource_list()["resources"]}
    assert all(name.split("/")[0] in names for name in names)


def test_the_group_document_prefers_v1alpha1() -> None:
    doc = api_group()
    assert doc["kind"] == "APIGroup" and doc["name"] == "views.multicluster.x-k8s.io"
    assert doc["preferredVersion"] == {
        "groupVersion": "views.multicluster.x-k8s.io/v1alpha1",
        "version": "v1alpha1",
    }
    assert doc["versions"] == [doc["preferredVersion"]]


def test_group_list_items_carry_no_kind() -> None:
    doc = api_group_list()
    assert doc["kind"] == "APIGroupList"
    assert "kind" not in doc["groups"][0]
    assert doc["groups"][0]["name"] == "views.multicluster.x-k8s.io"


@pytest.mark.parametrize("version", ["v2", "v2beta1"])
def test_aggregated_discovery_lists_the_group_with_scope_and_response_kind(version: str) -> None:
    doc = api_group_discovery_list(version)
    assert doc["kind"] == "APIGroupDiscoveryList"
    assert doc["apiVersion"] == f"apidiscovery.k8s.io/{version}"
    (group,) = doc["items"]
    assert group["metadata"] == {"name": "views.multicluster.x-k8s.io"}
    (gv,) = group["versions"]
    assert gv["version"] == "v1alpha1" and gv["freshness"] == "Current"
    resources = by_name(gv["resources"], "resource")
    assert resources["serviceimports"]["scope"] == "Namespaced"
    assert resources["clustersets"]["scope"] == "Cluster"
    assert resources["serviceimports"]["responseKind"] == {
        "group": "views.multicluster.x-k8s.io",
        "version": "v1alpha1",
        "kind": "ServiceImport",
    }
    assert resources["clustersets"]["singularResource"] == "clusterset"
    assert resources["serviceimports"]["shortNames"] == ["svcim", "svcimport"]
    assert resources["clustersets"]["categories"] == ["multicluster"]
    assert resources["clustersets"]["verbs"] == ["get", "list", "watch"]


def test_an_unknown_aggregated_discovery_version_is_refused() -> None:
    with pytest.raises(ValueError):
        api_group_discovery_list("v1")


def test_aggregated_and_legacy_discovery_agree() -> None:
    legacy = by_name(api_resource_list()["resources"])
    aggregated = by_name(api_group_discovery_list()["items"][0]["versions"][0]["resources"], "resource")
    assert legacy.keys() == aggregated.keys()
    for name, resource in legacy.items():
        assert aggregated[name]["verbs"] == resource["verbs"]
        assert aggregated[name]["shortNames"] == resource["shortNames"]
        assert (aggregated[name]["scope"] == "Namespaced") is resource["namespaced"]


def test_serialized_documents_are_the_documents() -> None:
    assert orjson.loads(discovery_bytes("resources")) == api_resource_list()
    assert orjson.loads(discovery_bytes("group")) == api_group()
    assert orjson.loads(discovery_bytes("groups")) == api_group_list()
    assert orjson.loads(discovery_bytes("aggregated", "v2beta1")) == api_group_discovery_list("v2beta1")
    assert discovery_bytes("resources") is discovery_bytes("resources")
    with pytest.raises(ValueError):
        discovery_bytes("nope")


def test_resource_info_knows_the_served_resources_only() -> None:
    info = resource_info("serviceimports")
    assert info is not None and info.kind == "ServiceImport" and info.list_kind == "ServiceImportList"
    assert resource_info("services") is None
