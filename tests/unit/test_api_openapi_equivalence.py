"""The OpenAPI documents keep saying the same thing (mcs_apiserver.api.openapi).

``openapi_essentials.json`` beside this file holds what kubectl and the aggregator read from our documents,
in a form shared by v2 and v3: for every definition and every property under it (through ``items`` and
``additionalProperties``), its type, format, description, enum, required list, default, maxItems, reference
and ``x-kubernetes-*`` extensions (GVK included); for every path, its operation id, action, GVK, response
kind, media types and parameters. Both documents must match it, so v2 and v3 cannot drift apart and a
refactoring cannot change what ``kubectl explain`` shows.

After a deliberate change of the schemas, rewrite the file and review its diff::

    python3 -m tests.unit.test_api_openapi_equivalence
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from mcs_apiserver.api.openapi import v2_spec, v3_spec

ESSENTIALS = Path(__file__).with_name("openapi_essentials.json")
_SCALARS = ("type", "format", "description", "default", "maxItems", "uniqueItems")
_SETS = ("enum", "required")


def _ref_name(ref: str) -> str:
    return ref.rsplit("/", 1)[1]


def _schema_entries(node: dict[str, Any], path: str, out: dict[str, Any]) -> None:
    entry: dict[str, Any] = {}
    if "$ref" in node:
        entry["ref"] = _ref_name(node["$ref"])
    elif "allOf" in node:  # v3: a described reference
        (only,) = node["allOf"]
        entry["ref"] = _ref_name(only["$ref"])
    for key in _SCALARS:
        if key in node:
            entry[key] = node[key]
    for key in _SETS:
        if key in node:
            entry[key] = sorted(node[key])
    for key, value in node.items():
        if key.startswith("x-kubernetes-"):
            entry[key] = value
    leftovers = set(node) - set(entry) - {"$ref", "allOf", "properties", "items", "additionalProperties"}
    assert not leftovers - {"ref"}, f"{path}: keys this test does not compare: {sorted(leftovers)}"
    out[path] = entry
    for name, prop in (node.get("properties") or {}).items():
        _schema_entries(prop, f"{path}.{name}", out)
    if "items" in node:
        _schema_entries(node["items"], f"{path}[]", out)
    if "additionalProperties" in node:
        _schema_entries(node["additionalProperties"], f"{path}{{}}", out)


def _parameter(doc: dict[str, Any], param: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in param:
        node: Any = doc
        for part in param["$ref"][2:].split("/"):
            node = node[part]
        param = node
    type_ = param["schema"]["type"] if "schema" in param else param["type"]
    return {"name": param["name"], "in": param["in"], "required": param.get("required", False), "type": type_,
            "description": param.get("description", "")}


def _operations(doc: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if method == "parameters":
                continue
            response = op["responses"]["200"]
            if "content" in response:  # v3
                media_types = sorted(response["content"])
                schema = response["content"][media_types[0]]["schema"]
            else:
                media_types = sorted(op["produces"])
                schema = response["schema"]
            out[f"{method.upper()} {path}"] = {
                "operationId": op["operationId"],
                "description": op["description"],
                "tags": op["tags"],
                "action": op.get("x-kubernetes-action"),
                "gvk": op.get("x-kubernetes-group-version-kind"),
                "response": _ref_name(schema["$ref"]),
                "mediaTypes": media_types,
                "parameters": [_parameter(doc, p) for p in op.get("parameters", [])],
                "pathParameters": [_parameter(doc, p) for p in item.get("parameters", [])],
            }
    return out


def essentials(doc: dict[str, Any]) -> dict[str, Any]:
    """What matters in one document (v2 or v3), in a form shared by both."""
    definitions = doc["definitions"] if "swagger" in doc else doc["components"]["schemas"]
    schema_entries: dict[str, Any] = {}
    for name, schema in definitions.items():
        _schema_entries(schema, name, schema_entries)
    return {"definitions": schema_entries, "operations": _operations(doc), "title": doc["info"]["title"]}


@pytest.mark.parametrize("version", ["v2", "v3"])
def test_each_document_says_what_it_said_before(version: str) -> None:
    doc = v2_spec() if version == "v2" else v3_spec()
    expected = orjson.loads(ESSENTIALS.read_bytes())
    actual = essentials(doc)
    assert actual["definitions"].keys() == expected["definitions"].keys()
    for path, entry in expected["definitions"].items():
        assert actual["definitions"][path] == entry, path
    assert actual == expected


def test_v2_and_v3_say_the_same_thing() -> None:
    assert essentials(v2_spec()) == essentials(v3_spec())


def test_the_essentials_see_a_changed_description_and_a_lost_extension() -> None:
    doc = v3_spec()
    before = essentials(doc)
    schemas = doc["components"]["schemas"]
    spec = next(s for name, s in schemas.items() if name.endswith(".ServiceImportSpec"))
    spec["properties"]["ports"]["description"] = "changed"
    del spec["properties"]["ports"]["x-kubernetes-list-type"]
    after = essentials(doc)
    changed = {k for k in before["definitions"] if before["definitions"][k] != after["definitions"][k]}
    assert changed == {"io.x-k8s.multicluster.views.v1alpha1.ServiceImportSpec.ports"}


if __name__ == "__main__":
    option = orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS
    ESSENTIALS.write_bytes(orjson.dumps(essentials(v3_spec()), option=option) + b"\n")
    print(f"wrote {ESSENTIALS}")
