"""OpenAPI v2 and v3 documents (mcs_apiserver.api.openapi)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from mcs_apiserver.api.openapi import (
    META,
    OPENAPI_V3_GROUP_VERSION_PATH,
    OURS,
    etag_matches,
    openapi_v2,
    openapi_v3_group_version,
    openapi_v3_root,
    v2_spec,
    v3_spec,
)

GV = "/apis/views.multicluster.x-k8s.io/v1alpha1"
TOP_LEVEL_KINDS = ("ServiceImport", "ServiceImportList", "ClusterSet", "ClusterSetList")


def refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from refs(item)


def resolve(doc: dict, ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = doc
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def schemas(doc: dict) -> dict[str, dict]:
    return doc["definitions"] if "swagger" in doc else doc["components"]["schemas"]


def target(doc: dict, prop: dict) -> dict:
    """The schema a property points at (v2 ``$ref``, v3 ``allOf: [$ref]``), or the property itself."""
    if "$ref" in prop:
        return resolve(doc, prop["$ref"])
    if "allOf" in prop:
        return resolve(doc, prop["allOf"][0]["$ref"])
    return prop


@pytest.fixture(params=["v2", "v3"])
def doc(request: pytest.FixtureRequest) -> dict:
    return v2_spec() if request.param == "v2" else v3_spec()


def test_every_ref_resolves(doc: dict) -> None:
    found = list(refs(doc))
    assert len(found) > 30
    for ref in found:
        assert isinstance(resolve(doc, ref), dict), ref


def test_every_definition_is_used_or_is_a_top_level_kind(doc: dict) -> None:
    used = {ref.rsplit("/", 1)[1] for ref in refs(doc)}
    for name, schema in schemas(doc).items():
        assert name in used or "x-kubernetes-group-version-kind" in schema, name


def test_top_level_kinds_carry_their_group_version_kind(doc: dict) -> None:
    for kind in TOP_LEVEL_KINDS:
        schema = schemas(doc)[OURS + kind]
        assert schema["x-kubernetes-group-version-kind"] == [
            {"group": "views.multicluster.x-k8s.io", "kind": kind, "version": "v1alpha1"}
        ]


def test_every_property_has_a_description_for_kubectl_explain(doc: dict) -> None:
    for name, schema in schemas(doc).items():
        assert schema.get("description"), name
        for prop_name, prop in (schema.get("properties") or {}).items():
            assert prop.get("description"), f"{name}.{prop_name}"


def test_kubectl_explain_serviceimport_spec_ports_reaches_the_port_fields(doc: dict) -> None:
    root = schemas(doc)[OURS + "ServiceImport"]
    spec = target(doc, root["properties"]["spec"])
    ports = spec["properties"]["ports"]
    assert ports["type"] == "array" and "union" in ports["description"]
    port = target(doc, ports["items"])
    assert set(port["properties"]) == {"name", "protocol", "appProtocol", "port"}
    assert port["properties"]["port"]["format"] == "int32"
    assert port["required"] == ["port"]


def test_service_import_schema_has_every_upstream_field(doc: dict) -> None:
    spec = schemas(doc)[OURS + "ServiceImportSpec"]
    assert set(spec["properties"]) == {
        "ports",
        "ips",
        "type",
        "sessionAffinity",
        "sessionAffinityConfig",
        "ipFamilies",
        "internalTrafficPolicy",
        "trafficDistribution",
    }
    assert spec["properties"]["type"]["enum"] == ["ClusterSetIP", "Headless"]
    status = schemas(doc)[OURS + "ServiceImportStatus"]
    assert status["properties"]["conditions"]["x-kubernetes-list-map-keys"] == ["type"]
    cluster = target(doc, status["properties"]["clusters"]["items"])
    assert {"cluster", "exportedAt", "readyEndpoints", "conflicts"} <= set(cluster["properties"])


def test_cluster_set_member_states_are_enumerated(doc: dict) -> None:
    member = schemas(doc)[OURS + "ClusterSetMember"]
    assert set(member["properties"]["state"]["enum"]) == {
        "Joined",
        "Syncing",
        "Unreachable",
        "NotMember",
        "MissingID",
        "DuplicateID",
    }


def test_shared_types_are_named_like_kubernetes_names_them(doc: dict) -> None:
    names = set(schemas(doc))
    for kind in (
        "ObjectMeta",
        "ListMeta",
        "Condition",
        "ManagedFieldsEntry",
        "OwnerReference",
        "Time",
        "FieldsV1",
    ):
        assert META + kind in names
    assert schemas(doc)[META + "Time"] == {
        "type": "string",
        "format": "date-time",
        "description": schemas(doc)[META + "Time"]["description"],
    }
    assert OURS == "io.x-k8s.multicluster.views.v1alpha1."


def test_v3_wraps_described_references_in_all_of_and_v2_keeps_them_beside_ref() -> None:
    v2_meta = v2_spec()["definitions"][OURS + "ServiceImport"]["properties"]["metadata"]
    v3_meta = v3_spec()["components"]["schemas"][OURS + "ServiceImport"]["properties"]["metadata"]
    assert v2_meta["$ref"] == f"#/definitions/{META}ObjectMeta" and v2_meta["description"]
    assert v3_meta["allOf"] == [{"$ref": f"#/components/schemas/{META}ObjectMeta"}] and "$ref" not in v3_meta


@pytest.mark.parametrize(
    ("path", "action", "kind"),
    [
        (f"{GV}/serviceimports", "list", "ServiceImportList"),
        (f"{GV}/namespaces/{{namespace}}/serviceimports", "list", "ServiceImportList"),
        (f"{GV}/namespaces/{{namespace}}/serviceimports/{{name}}", "get", "ServiceImport"),
        (f"{GV}/clustersets", "list", "ClusterSetList"),
        (f"{GV}/clustersets/{{name}}", "get", "ClusterSet"),
    ],
)
def test_get_list_and_watch_paths_are_described(doc: dict, path: str, action: str, kind: str) -> None:
    item = doc["paths"][path]
    assert set(item) == {"get", "parameters"}, "only reads are served"
    op = item["get"]
    assert op["x-kubernetes-action"] == action
    assert op["x-kubernetes-group-version-kind"]["kind"] == kind.removesuffix("List")
    if "swagger" in doc:
        response = op["responses"]["200"]["schema"]
    else:
        response = op["responses"]["200"]["content"]["application/json"]["schema"]
    assert response["$ref"].endswith(OURS + kind)
    path_params = {resolve(doc, p["$ref"])["name"] if "$ref" in p else p["name"] for p in item["parameters"]}
    assert {"namespace", "name"} & path_params == {p for p in ("namespace", "name") if "{" + p + "}" in path}
    if action == "list":
        names = {resolve(doc, p["$ref"])["name"] for p in op["parameters"]}
        assert {
            "labelSelector",
            "fieldSelector",
            "limit",
            "continue",
            "resourceVersion",
            "resourceVersionMatch",
            "watch",
            "allowWatchBookmarks",
            "sendInitialEvents",
            "timeoutSeconds",
        } == names


def test_no_path_advertises_a_write_verb(doc: dict) -> None:
    for item in doc["paths"].values():
        assert not {"put", "post", "patch", "delete"} & set(item)


def test_v2_is_valid_swagger_2_0() -> None:
    import openapi_spec_validator as validator
    validator.validate(v2_spec())


def test_v3_is_valid_openapi_3_0() -> None:
    import openapi_spec_validator as validator
    validator.validate(v3_spec())


def test_serialized_documents_hash_like_kube_openapi() -> None:
    for document, spec in ((openapi_v2(), v2_spec()), (openapi_v3_group_version(), v3_spec())):
        assert orjson.loads(document.body) == spec
        assert document.hash == hashlib.sha512(document.body).hexdigest().upper()
        assert document.etag == f'"{document.hash}"'


def test_documents_are_serialized_once() -> None:
    assert openapi_v2() is openapi_v2()
    assert openapi_v3_group_version().body is openapi_v3_group_version().body


def test_the_v3_root_points_at_the_group_version_document_by_its_hash() -> None:
    root = openapi_v3_root().document()
    assert root == {
        "paths": {
            "apis/views.multicluster.x-k8s.io/v1alpha1": {
                "serverRelativeURL": f"{OPENAPI_V3_GROUP_VERSION_PATH}?hash={openapi_v3_group_version().hash}"
            }
        }
    }
    assert OPENAPI_V3_GROUP_VERSION_PATH == "/openapi/v3/apis/views.multicluster.x-k8s.io/v1alpha1"


def test_if_none_match_recognises_the_current_etag_only() -> None:
    document = openapi_v2()
    assert etag_matches(document.etag, document)
    assert etag_matches(f'"other", W/{document.etag}', document)
    assert etag_matches("*", document)
    assert not etag_matches('"other"', document)
    assert not etag_matches(None, document)
