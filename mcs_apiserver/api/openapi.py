"""OpenAPI v2 (``/openapi/v2``) and v3 (``/openapi/v3``, ``/openapi/v3/apis/<g>/<v>``) documents.

kube-apiserver's aggregator fetches ``/openapi/v3`` (then ``/openapi/v2`` on 404) and merges what it
finds; ``kubectl explain`` reads the merged documents and finds our kinds through
``x-kubernetes-group-version-kind``.

One source: the schemas are derived from the TypedDicts of mcs_apiserver/kube/types.py (structure, types,
enums from ``Literal``, and each field's ``Doc``: description, required, list semantics, ...); the v3
document is built from them, and the v2 document is derived from the v3 one. Each is rendered like
kube-apiserver renders its own: in v3 a property that references a type and has its own description is
``{"allOf": [{"$ref": ...}], "description": ...}`` (a sibling of ``$ref`` is ignored in 3.0); in v2 the
description sits beside the ``$ref``.

Definitions are named like Kubernetes names them: ``io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta``
for the shared meta types, ``io.x-k8s.multicluster.views.v1alpha1.ServiceImport`` (reversed group, like
CRDs) for ours. Every document is serialized once, keys sorted, and kept as bytes with its hash/ETag.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
from dataclasses import dataclass
from importlib import metadata as importlib_metadata
from typing import Annotated, Any, Final, Literal, get_args, get_origin, get_type_hints

import orjson

from mcs_apiserver.kube import types as kt
from mcs_apiserver.api.discovery import RESOURCES, ResourceInfo
from mcs_apiserver.contract import GROUP, VERSION

__all__ = [
    "OpenAPIDocument",
    "openapi_v2",
    "openapi_v3_root",
    "openapi_v3_group_version",
    "v2_spec",
    "v3_spec",
    "etag_matches",
    "OPENAPI_V3_GROUP_VERSION_PATH",
    "OPENAPI_V3_ROOT_KEY",
    "META",
    "OURS",
]

META: Final = "io.k8s.apimachinery.pkg.apis.meta.v1."
RUNTIME: Final = "io.k8s.apimachinery.pkg.runtime."
#: Our definitions' prefix: the group reversed, as Kubernetes names CRD schemas.
OURS: Final = ".".join(reversed(GROUP.split("."))) + f".{VERSION}."

GV_PATH: Final = f"/apis/{GROUP}/{VERSION}"
#: Key of our group-version in the ``/openapi/v3`` root listing (no leading slash, as kube-apiserver).
OPENAPI_V3_ROOT_KEY: Final = f"apis/{GROUP}/{VERSION}"
OPENAPI_V3_GROUP_VERSION_PATH: Final = f"/openapi/v3/{OPENAPI_V3_ROOT_KEY}"

_SCHEMAS: Final = "#/components/schemas/"


# --- schemas, from the TypedDicts ------------------------------------------------------------------

#: Every published TypedDict, under the name Kubernetes gives it.
_NAMES: Final[dict[Any, str]] = {
    **{
        t: META + t.__name__
        for t in (kt.OwnerReference, kt.ManagedFieldsEntry, kt.ObjectMeta, kt.ListMeta, kt.Condition,
                  kt.APIResource, kt.APIResourceList, kt.WatchEvent)
    },
    **{
        t: OURS + t.__name__
        for t in (kt.ServiceImport, kt.ServiceImportSpec, kt.SessionAffinityConfig, kt.ClientIPConfig,
                  kt.ServiceImportStatus, kt.ClusterStatus, kt.ClusterSet, kt.ClusterSetStatus,
                  kt.ClusterSetMember)
    },
    kt.ServiceImportPort: OURS + "ServicePort",  # upstream's name
}
_KINDS: Final = {"ServiceImport": kt.ServiceImport, "ClusterSet": kt.ClusterSet}

#: The meta types whose Python value is a plain string or a free-form dict (``Doc(schema=...)`` names them).
_OPAQUE: Final[dict[str, dict[str, Any]]] = {
    META + "Time": {
        "type": "string",
        "format": "date-time",
        "description": "Time is a wrapper around time.Time which supports correct marshaling to YAML and JSON. "
        "Wrappers are provided for many of the factory methods that the time package offers.",
    },
    META + "FieldsV1": {
        "type": "object",
        "description": "FieldsV1 stores a set of fields in a data structure like a Trie, in JSON format.\n\n"
        "Each key is either a '.' representing the field itself, and will always map to an empty set, or a "
        "string representing a sub-field or item. The string will follow one of these four formats: "
        "'f:<name>', where <name> is the name of a field in a struct, or key in a map; 'v:<value>', where "
        "<value> is the exact json formatted value of a list item; 'i:<index>', where <index> is position "
        "of a item in a list; 'k:<keys>', where <keys> is a map of  a list item's key fields to their "
        "unique values. If a key maps to an empty Fields value, the field that key represents is part of "
        "the set.\n\nThe exact format is defined in sigs.k8s.io/structured-merge-diff",
    },
    RUNTIME + "RawExtension": {
        "type": "object",
        "description": "RawExtension is used to hold extensions in external versions.",
    },
}
_OPAQUE_BY_SHORT_NAME: Final = {name.rsplit(".", 1)[1]: name for name in _OPAQUE}

#: Extensions of a whole definition, which a TypedDict cannot carry.
_DEFINITION_EXTENSIONS: Final[dict[str, dict[str, Any]]] = {
    META + "OwnerReference": {"x-kubernetes-map-type": "atomic"},
    META + "APIResourceList": {"x-kubernetes-group-version-kind": [{"group": "", "kind": "APIResourceList",
                                                                    "version": "v1"}]},
    META + "WatchEvent": {"x-kubernetes-group-version-kind": [{"group": GROUP, "kind": "WatchEvent",
                                                               "version": VERSION}]},
}


def _description(typed_dict: Any) -> str:
    """A docstring as one line per paragraph, as Kubernetes descriptions are."""
    paragraphs = inspect.cleandoc(typed_dict.__doc__ or "").split("\n\n")
    return "\n\n".join(" ".join(p.split("\n")) for p in paragraphs)


def _gvk(kind: str) -> list[dict[str, str]]:
    return [{"group": GROUP, "kind": kind, "version": VERSION}]


def _type_schema(tp: Any, doc: kt.Doc | None) -> dict[str, Any]:
    """The schema of a Python type, before the field's own facts (description, ...) are added."""
    if doc is not None and doc.schema:
        return {"$ref": _SCHEMAS + _OPAQUE_BY_SHORT_NAME[doc.schema]}
    if tp in _NAMES:
        return {"$ref": _SCHEMAS + _NAMES[tp]}
    if tp is str:
        return {"type": "string"}
    if tp is bool:
        return {"type": "boolean"}
    if tp is int:
        return {"type": "integer", "format": doc.format if doc is not None and doc.format else "int32"}
    origin, args = get_origin(tp), get_args(tp)
    if origin is Literal:
        return {"type": "string", "enum": sorted(args)}
    if origin is list:
        (item,) = args
        # Kubernetes gives plain strings inside lists and maps the default "" (not enums).
        items = {"type": "string", "default": ""} if item is str else _type_schema(item, None)
        return {"type": "array", "items": items}
    if origin is dict and args == (str, str):
        return {"type": "object", "additionalProperties": {"type": "string", "default": ""}}
    raise TypeError(f"no OpenAPI schema for {tp!r}")


def _doc(hint: Any) -> tuple[Any, kt.Doc | None]:
    """``Annotated[T, Doc(...)]`` -> ``(T, Doc)``; any other type -> ``(type, None)``."""
    if get_origin(hint) is not Annotated:
        return hint, None
    tp, *extras = get_args(hint)
    return tp, next((e for e in extras if isinstance(e, kt.Doc)), None)


def _property(hint: Any) -> dict[str, Any]:
    """The schema of one TypedDict field."""
    tp, doc = _doc(hint)
    schema = _type_schema(tp, doc)
    if doc is None:
        return schema
    facts: dict[str, Any] = {"description": doc.description}
    if doc.default is not None:
        facts["default"] = doc.default
    if doc.max_items is not None:
        facts["maxItems"] = doc.max_items
    for key, value in (("list-type", doc.list_type), ("list-map-keys", list(doc.list_map_keys)),
                       ("patch-merge-key", doc.patch_merge_key), ("patch-strategy", doc.patch_strategy)):
        if value:
            facts["x-kubernetes-" + key] = value
    if "$ref" in schema:
        return {"allOf": [schema], **facts}
    return {**schema, **facts}


def _definition(typed_dict: Any) -> dict[str, Any]:
    properties: dict[str, Any] = {}
    required: list[str] = []
    for field, hint in get_type_hints(typed_dict, include_extras=True).items():
        properties[field] = _property(hint)
        if (doc := _doc(hint)[1]) is not None and doc.required:
            required.append(field)
    schema: dict[str, Any] = {"type": "object", "description": _description(typed_dict), "properties": properties}
    if required:
        schema["required"] = required
    return schema


def _list_definition(r: ResourceInfo) -> dict[str, Any]:
    return {
        "type": "object",
        "description": f"{r.list_kind} is a list of {r.kind}.",
        "properties": {
            "apiVersion": _property(kt.APIVersion),
            "items": {"type": "array", "description": f"List of {r.name}.",
                      "items": {"$ref": _SCHEMAS + OURS + r.kind}},
            "kind": _property(kt.Kind),
            "metadata": {"allOf": [{"$ref": _SCHEMAS + META + "ListMeta"}],
                         "description": f"Standard list metadata. More info: {kt.API_CONVENTIONS}#metadata"},
        },
        "required": ["items"],
        "x-kubernetes-group-version-kind": _gvk(r.list_kind),
    }


def _schemas() -> dict[str, dict[str, Any]]:
    """Every definition, in v3 form."""
    schemas: dict[str, dict[str, Any]] = {name: dict(schema) for name, schema in _OPAQUE.items()}
    for typed_dict, name in _NAMES.items():
        schemas[name] = {**_definition(typed_dict), **_DEFINITION_EXTENSIONS.get(name, {})}
    for r in RESOURCES:
        schemas[_NAMES[_KINDS[r.kind]]]["x-kubernetes-group-version-kind"] = _gvk(r.kind)
        schemas[OURS + r.list_kind] = _list_definition(r)
    return schemas


# --- parameters and paths ----------------------------------------------------------------------

_QUERY_PARAMETERS: Final[dict[str, tuple[str, str]]] = {
    "allowWatchBookmarks": (
        "boolean",
        'allowWatchBookmarks requests watch events with type "BOOKMARK". Servers that do not implement '
        "bookmarks may ignore this flag and bookmarks are sent at the server's discretion. Clients should not "
        "assume bookmarks are returned at any specific interval, nor may they assume the server will send any "
        "BOOKMARK event during a session. If this is not a watch, this field is ignored.",
    ),
    "continue": (
        "string",
        "The continue option should be set when retrieving more results from the server. Since this value is "
        "server defined, clients may only use the continue value from a previous query result with identical "
        "query parameters (except for the value of continue) and the server may reject a continue value it does "
        "not recognize. If the specified continue value is no longer valid, the server will respond with a 410 "
        "ResourceExpired error.\n\nThis field is not supported when watch is true.",
    ),
    "fieldSelector": (
        "string",
        "A selector to restrict the list of returned objects by their fields. Defaults to everything. Supported "
        "fields: metadata.name, metadata.namespace, and spec.type for serviceimports.",
    ),
    "labelSelector": (
        "string",
        "A selector to restrict the list of returned objects by their labels. Defaults to everything.",
    ),
    "limit": (
        "integer",
        "limit is a maximum number of responses to return for a list call. If more items exist, the server will "
        "set the `continue` field on the list metadata to a value that can be used with the same initial query "
        "to retrieve the next set of results.\n\nThis field is not supported when watch is true.",
    ),
    "pretty": ("string", "If 'true', then the output is pretty printed."),
    "resourceVersion": (
        "string",
        "resourceVersion sets a constraint on what resource versions a request may be served from. See "
        "https://kubernetes.io/docs/reference/using-api/api-concepts/#resource-versions for details.\n\n"
        "Defaults to unset",
    ),
    "resourceVersionMatch": (
        "string",
        "resourceVersionMatch determines how resourceVersion is applied to list calls. It is highly recommended "
        "that resourceVersionMatch be set for list calls where resourceVersion is set See "
        "https://kubernetes.io/docs/reference/using-api/api-concepts/#resource-versions for details.\n\n"
        "Defaults to unset",
    ),
    "sendInitialEvents": (
        "boolean",
        "`sendInitialEvents=true` may be set together with `watch=true`. In that case, the watch stream will "
        "begin with synthetic events to produce the current state of objects in the collection. Once all such "
        'events have been sent, a synthetic "Bookmark" event will be sent. The bookmark will report the '
        "ResourceVersion (RV) corresponding to the set of objects, and be marked with "
        '`"k8s.io/initial-events-end": "true"` annotation.',
    ),
    "timeoutSeconds": (
        "integer",
        "Timeout for the list/watch call. This limits the duration of the call, regardless of any activity or "
        "inactivity.",
    ),
    "watch": (
        "boolean",
        "Watch for changes to the described resources and return them as a stream of add, update, and remove "
        "notifications.",
    ),
}
_LIST_PARAMETERS: Final = (
    "allowWatchBookmarks",
    "continue",
    "fieldSelector",
    "labelSelector",
    "limit",
    "resourceVersion",
    "resourceVersionMatch",
    "sendInitialEvents",
    "timeoutSeconds",
    "watch",
)
_NAMESPACE_DESCRIPTION: Final = "object name and auth scope, such as for teams and projects"
_PRODUCES: Final = ("application/json", "application/json;stream=watch")


def _camel(group: str) -> str:
    """``views.multicluster.x-k8s.io`` -> ``ViewsMulticlusterXK8sIo``, as kube-apiserver names operations."""
    return "".join(part[:1].upper() + part[1:] for word in group.split(".") for part in word.split("-"))


#: Operation tag and operationId infix: ``viewsMulticlusterXK8sIo_v1alpha1``, ``ViewsMulticlusterXK8sIoV1alpha1``.
_TAG: Final = _camel(GROUP)[:1].lower() + _camel(GROUP)[1:] + "_" + VERSION
_OP_GROUP: Final = _camel(GROUP) + VERSION.capitalize()


def _operation(operation_id: str, description: str, response: str, media_types: tuple[str, ...],
               r: ResourceInfo | None = None, action: str = "") -> dict[str, Any]:
    content = {m: {"schema": {"$ref": _SCHEMAS + response}} for m in media_types}
    operation: dict[str, Any] = {
        "tags": [_TAG],
        "description": description,
        "operationId": operation_id,
        "responses": {"200": {"description": "OK", "content": content}, "401": {"description": "Unauthorized"}},
    }
    if r is not None:
        operation["x-kubernetes-action"] = action
        operation["x-kubernetes-group-version-kind"] = {"group": GROUP, "kind": r.kind, "version": VERSION}
    if action == "list":
        operation["parameters"] = [{"$ref": f"#/components/parameters/{n}"} for n in _LIST_PARAMETERS]
    return operation


def _path_item(operation: dict[str, Any], r: ResourceInfo, namespaced: bool, named: bool) -> dict[str, Any]:
    parameters: list[dict[str, Any]] = []
    if namespaced:
        parameters.append({"$ref": "#/components/parameters/namespace"})
    if named:
        parameters.append({"name": "name", "in": "path", "required": True, "description": f"name of the {r.kind}",
                           "schema": {"type": "string", "uniqueItems": True}})
    parameters.append({"$ref": "#/components/parameters/pretty"})
    return {"get": operation, "parameters": parameters}


def _paths() -> dict[str, Any]:
    paths: dict[str, Any] = {
        GV_PATH + "/": {"get": _operation(f"get{_OP_GROUP}APIResources", "get available resources",
                                          META + "APIResourceList", ("application/json",))}
    }
    for r in RESOURCES:
        list_op = functools.partial(_operation, description=f"list or watch objects of kind {r.kind}",
                                    response=OURS + r.list_kind, media_types=_PRODUCES, r=r, action="list")
        read_op = functools.partial(_operation, description=f"read the specified {r.kind}",
                                    response=OURS + r.kind, media_types=("application/json",), r=r, action="get")
        if r.namespaced:
            paths[f"{GV_PATH}/{r.name}"] = _path_item(list_op(f"list{_OP_GROUP}{r.kind}ForAllNamespaces"), r,
                                                      False, False)
            paths[f"{GV_PATH}/namespaces/{{namespace}}/{r.name}"] = _path_item(
                list_op(f"list{_OP_GROUP}Namespaced{r.kind}"), r, True, False)
            paths[f"{GV_PATH}/namespaces/{{namespace}}/{r.name}/{{name}}"] = _path_item(
                read_op(f"read{_OP_GROUP}Namespaced{r.kind}"), r, True, True)
        else:
            paths[f"{GV_PATH}/{r.name}"] = _path_item(list_op(f"list{_OP_GROUP}{r.kind}"), r, False, False)
            paths[f"{GV_PATH}/{r.name}/{{name}}"] = _path_item(read_op(f"read{_OP_GROUP}{r.kind}"), r, False, True)
    return paths


def _parameters() -> dict[str, Any]:
    parameters: dict[str, Any] = {
        name: {"name": name, "in": "query", "description": description,
               "schema": {"type": type_, "uniqueItems": True}}
        for name, (type_, description) in _QUERY_PARAMETERS.items()
    }
    parameters["namespace"] = {"name": "namespace", "in": "path", "required": True,
                               "description": _NAMESPACE_DESCRIPTION, "schema": {"type": "string", "uniqueItems": True}}
    return parameters


def _info() -> dict[str, str]:
    try:
        version = importlib_metadata.version("mcs-apiserver")
    except importlib_metadata.PackageNotFoundError:
        version = "unversioned"
    return {"title": "mcs-apiserver", "version": f"v{version}" if version[:1].isdigit() else version}


_SECURITY_SCHEME: Final = {"type": "apiKey", "name": "authorization", "in": "header",
                           "description": "Bearer Token authentication"}


def v3_spec() -> dict[str, Any]:
    """The OpenAPI 3.0 document for our group-version (a fresh dict)."""
    return {
        "openapi": "3.0.0",
        "info": _info(),
        "paths": _paths(),
        "components": {
            "schemas": _schemas(),
            "parameters": _parameters(),
            "securitySchemes": {"BearerToken": dict(_SECURITY_SCHEME)},
        },
        "security": [{"BearerToken": []}],
    }


# --- v2, from v3 -------------------------------------------------------------------------------


def _v2_refs(node: Any) -> Any:
    """References into ``#/definitions`` and ``#/parameters``; a described reference keeps its siblings
    beside ``$ref`` instead of wrapping it in ``allOf``."""
    if isinstance(node, list):
        return [_v2_refs(item) for item in node]
    if not isinstance(node, dict):
        return node
    if "allOf" in node:
        (target,) = node["allOf"]
        node = {**target, **{k: v for k, v in node.items() if k != "allOf"}}
    if "$ref" in node:
        ref = node["$ref"].replace(_SCHEMAS, "#/definitions/").replace("#/components/parameters/", "#/parameters/")
        node = {**node, "$ref": ref}
    return {key: _v2_refs(value) for key, value in node.items()}


def _v2_parameter(parameter: dict[str, Any]) -> dict[str, Any]:
    """A parameter's ``schema`` (type, uniqueItems) is inlined in v2."""
    if "$ref" in parameter:
        return _v2_refs(parameter)
    return {**{k: v for k, v in parameter.items() if k != "schema"}, **parameter["schema"]}


def _v2_operation(operation: dict[str, Any]) -> dict[str, Any]:
    ok = operation["responses"]["200"]
    media_types = list(ok["content"])
    result = {k: v for k, v in operation.items() if k != "responses"}
    result.update(
        # Resource handlers take any body type; the discovery document is JSON.
        consumes=["*/*"] if "x-kubernetes-action" in operation else ["application/json"],
        produces=media_types,
        schemes=["https"],
        responses={**operation["responses"], "200": {"description": ok["description"],
                                                     "schema": ok["content"][media_types[0]]["schema"]}},
    )
    return _v2_refs(result)


def v2_spec() -> dict[str, Any]:
    """The Swagger 2.0 document (a fresh dict), derived from :func:`v3_spec`."""
    v3 = v3_spec()
    components = v3["components"]
    paths = {
        path: {
            key: [_v2_parameter(p) for p in value] if key == "parameters" else _v2_operation(value)
            for key, value in item.items()
        }
        for path, item in v3["paths"].items()
    }
    return {
        "swagger": "2.0",
        "info": v3["info"],
        "paths": paths,
        "definitions": _v2_refs(components["schemas"]),
        "parameters": {name: _v2_parameter(p) for name, p in components["parameters"].items()},
        "securityDefinitions": components["securitySchemes"],
        "security": v3["security"],
    }


# --- serialized documents ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OpenAPIDocument:
    """A serialized document: ``body`` for the response, ``hash`` (upper-case hex SHA-512 of the body, as
    kube-openapi computes it) and ``etag`` (the quoted hash) for caching."""

    body: bytes
    hash: str

    @property
    def etag(self) -> str:
        return f'"{self.hash}"'

    def document(self) -> dict[str, Any]:
        doc: dict[str, Any] = orjson.loads(self.body)
        return doc


def _serialize(doc: dict[str, Any]) -> OpenAPIDocument:
    body = orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)
    return OpenAPIDocument(body, hashlib.sha512(body).hexdigest().upper())


@functools.cache
def openapi_v2() -> OpenAPIDocument:
    """``GET /openapi/v2``."""
    return _serialize(v2_spec())


@functools.cache
def openapi_v3_group_version() -> OpenAPIDocument:
    """``GET /openapi/v3/apis/views.multicluster.x-k8s.io/v1alpha1``.

    With ``?hash=`` equal to :attr:`OpenAPIDocument.hash`, kube-openapi answers with
    ``Cache-Control: public, immutable``; with another hash, a 301 to the current ``serverRelativeURL``.
    """
    return _serialize(v3_spec())


@functools.cache
def openapi_v3_root() -> OpenAPIDocument:
    """``GET /openapi/v3``, the root listing::

    {"paths": {"apis/<g>/<v>": {"serverRelativeURL": "/openapi/v3/apis/<g>/<v>?hash=H"}}}
    """
    url = f"{OPENAPI_V3_GROUP_VERSION_PATH}?hash={openapi_v3_group_version().hash}"
    return _serialize({"paths": {OPENAPI_V3_ROOT_KEY: {"serverRelativeURL": url}}})


def etag_matches(if_none_match: str | None, document: OpenAPIDocument) -> bool:
    """Whether an ``If-None-Match`` header names ``document`` (answer 304 Not Modified then)."""
    if not if_none_match:
        return False
    tags = {t.strip().removeprefix("W/") for t in if_none_match.split(",")}
    return "*" in tags or document.etag in tags
