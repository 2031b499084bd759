"""OpenAPI v2 (``/openapi/v2``) and v3 (``/openapi/v3``, ``/openapi/v3/apis/<g>/<v>``) documents.

kube-apiserver's aggregator fetches ``/openapi/v3`` (then ``/openapi/v2`` on 404) and merges what it
finds; ``kubectl explain`` reads the merged documents and finds our kinds through
``x-kubernetes-group-version-kind``. Schemas are written once below in a neutral form (``$ref`` is the
bare definition name) and rendered for each version:

- v2: ``#/definitions/<name>``, a property that references a type keeps its own ``description``
  beside the ``$ref`` (as kube-apiserver does);
- v3: ``#/components/schemas/<name>``, such a property becomes ``{"allOf": [{"$ref": ...}],
  "description": ..., "default": {}}`` (as kube-apiserver does; a sibling of ``$ref`` is ignored in 3.0).

Definitions are named like Kubernetes names them: ``io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta``
for the shared meta types, ``io.x-k8s.multicluster.views.v1alpha1.ServiceImport`` (reversed group, like
CRDs) for ours. Every document is serialized once, keys sorted, and kept as bytes with its hash/ETag.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from importlib import metadata as importlib_metadata
from typing import Any, Final

import orjson

from mcs_apiserver.api.discovery import RESOURCES, ResourceInfo
from mcs_apiserver.views.model import GROUP, VERSION

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

_API_CONVENTIONS: Final = "https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md"


# --- neutral schema helpers --------------------------------------------------------------------


def _ref(name: str, description: str = "", *, default: Any = None) -> dict[str, Any]:
    schema: dict[str, Any] = {"$ref": name}
    if description:
        schema["description"] = description
    if default is not None:
        schema["default"] = default
    return schema


def _string(
    description: str, *, fmt: str = "", enum: list[str] | None = None, default: str | None = None
) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string", "description": description}
    if fmt:
        schema["format"] = fmt
    if enum:
        schema["enum"] = enum
    if default is not None:
        schema["default"] = default
    return schema


def _integer(description: str, fmt: str = "int32") -> dict[str, Any]:
    return {"type": "integer", "format": fmt, "description": description}


def _boolean(description: str) -> dict[str, Any]:
    return {"type": "boolean", "description": description}


def _array(
    items: dict[str, Any], description: str, *, max_items: int | None = None, **extensions: Any
) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "array", "description": description, "items": items}
    if max_items is not None:
        schema["maxItems"] = max_items
    for key, value in extensions.items():
        schema["x-kubernetes-" + key.replace("_", "-")] = value
    return schema


def _string_map(description: str) -> dict[str, Any]:
    return {
        "type": "object",
        "description": description,
        "additionalProperties": {"type": "string", "default": ""},
    }


def _object(
    description: str,
    properties: dict[str, Any],
    *,
    required: list[str] | None = None,
    gvk: tuple[str, str, str] | None = None,
    **extensions: Any,
) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "description": description, "properties": properties}
    if required:
        schema["required"] = required
    if gvk is not None:
        group, version, kind = gvk
        schema["x-kubernetes-group-version-kind"] = [{"group": group, "kind": kind, "version": version}]
    for key, value in extensions.items():
        schema["x-kubernetes-" + key.replace("_", "-")] = value
    return schema


def _api_version() -> dict[str, Any]:
    return _string(
        "APIVersion defines the versioned schema of this representation of an object. Servers should convert "
        "recognized schemas to the latest internal value, and may reject unrecognized values. More info: "
        f"{_API_CONVENTIONS}#resources"
    )


def _kind() -> dict[str, Any]:
    return _string(
        "Kind is a string value representing the REST resource this object represents. Servers may infer this "
        "from the endpoint the client submits requests to. Cannot be updated. In CamelCase. More info: "
        f"{_API_CONVENTIONS}#types-kinds"
    )


# --- meta/v1 -----------------------------------------------------------------------------------


def _meta_definitions() -> dict[str, dict[str, Any]]:
    return {
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
        META + "ManagedFieldsEntry": _object(
            "ManagedFieldsEntry is a workflow-id, a FieldSet and the group version of the resource that the "
            "fieldset applies to.",
            {
                "apiVersion": _string(
                    "APIVersion defines the version of this resource that this field set applies to. The format "
                    'is "group/version" just like the top-level APIVersion field. It is necessary to track the '
                    "version of a field set because it cannot be automatically converted."
                ),
                "fieldsType": _string(
                    "FieldsType is the discriminator for the different fields format and version. There is "
                    'currently only one possible value: "FieldsV1"'
                ),
                "fieldsV1": _ref(
                    META + "FieldsV1",
                    'FieldsV1 holds the first JSON version format as described in the "FieldsV1" type.',
                ),
                "manager": _string("Manager is an identifier of the workflow managing these fields."),
                "operation": _string(
                    "Operation is the type of operation which lead to this ManagedFieldsEntry being created. "
                    "The only valid values for this field are 'Apply' and 'Update'."
                ),
                "subresource": _string(
                    "Subresource is the name of the subresource used to update that object, or empty string if "
                    "the object was updated through the main resource. The value of this field is used to "
                    "distinguish between managers, even if they share the same name."
                ),
                "time": _ref(
                    META + "Time",
                    "Time is the timestamp of when the ManagedFields entry was added. The timestamp will also be "
                    "updated if a field is added, the manager changes any of the owned fields value or removes a "
                    "field. The timestamp does not update when a field is removed from the entry because another "
                    "manager took it over.",
                ),
            },
        ),
        META + "OwnerReference": _object(
            "OwnerReference contains enough information to let you identify an owning object. An owning object "
            "must be in the same namespace as the dependent, or be cluster-scoped, so there is no namespace field.",
            {
                "apiVersion": _string("API version of the referent."),
                "blockOwnerDeletion": _boolean(
                    'If true, AND if the owner has the "foregroundDeletion" finalizer, then the owner cannot be '
                    "deleted from the key-value store until this reference is removed. Defaults to false."
                ),
                "controller": _boolean("If true, this reference points to the managing controller."),
                "kind": _string(f"Kind of the referent. More info: {_API_CONVENTIONS}#types-kinds"),
                "name": _string(
                    "Name of the referent. More info: "
                    "https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names"
                ),
                "uid": _string(
                    "UID of the referent. More info: "
                    "https://kubernetes.io/docs/concepts/overview/working-with-objects/names#uids"
                ),
            },
            required=["apiVersion", "kind", "name", "uid"],
            map_type="atomic",
        ),
        META + "ObjectMeta": _object(
            "ObjectMeta is metadata that all persisted resources must have, which includes all objects users "
            "must create.",
            {
                "annotations": _string_map(
                    "Annotations is an unstructured key value map stored with a resource that may be set by "
                    "external tools to store and retrieve arbitrary metadata. For a ServiceImport: the "
                    "exportedAnnotations of the winning ServiceExport. More info: "
                    "https://kubernetes.io/docs/concepts/overview/working-with-objects/annotations"
                ),
                "creationTimestamp": _ref(
                    META + "Time",
                    "CreationTimestamp is a timestamp representing the server time when this object was created. "
                    "For a ServiceImport: when the oldest contributing ServiceExport was created. Represented in "
                    f"RFC3339 form and is in UTC. More info: {_API_CONVENTIONS}#metadata",
                ),
                "deletionGracePeriodSeconds": _integer(
                    "Number of seconds allowed for this object to gracefully terminate before it will be removed "
                    "from the system. Only set when deletionTimestamp is also set.",
                    "int64",
                ),
                "deletionTimestamp": _ref(
                    META + "Time",
                    "DeletionTimestamp is RFC 3339 date and time at which this resource will be deleted. Views "
                    "served by this API are never deleted this way.",
                ),
                "finalizers": _array(
                    {"type": "string", "default": ""},
                    "Must be empty before the object is deleted from the registry.",
                    list_type="set",
                ),
                "generateName": _string(
                    "GenerateName is an optional prefix, used by the server, to generate a unique name ONLY IF the "
                    "Name field has not been provided."
                ),
                "generation": _integer(
                    "A sequence number representing a specific generation of the desired state.", "int64"
                ),
                "labels": _string_map(
                    "Map of string keys and values that can be used to organize and categorize (scope and select) "
                    "objects. For a ServiceImport: the exportedLabels of the winning ServiceExport. More info: "
                    "https://kubernetes.io/docs/concepts/overview/working-with-objects/labels"
                ),
                "managedFields": _array(
                    _ref(META + "ManagedFieldsEntry"),
                    "ManagedFields maps workflow-id and version to the set of fields that are managed by that "
                    "workflow. This is mostly for internal housekeeping, and users typically shouldn't need to set "
                    "or understand this field.",
                    list_type="atomic",
                ),
                "name": _string(
                    "Name must be unique within a namespace. Is required when creating resources, although some "
                    "resources may allow a client to request the generation of an appropriate name automatically. "
                    "Name is primarily intended for creation idempotence and configuration definition. Cannot be "
                    "updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names"
                ),
                "namespace": _string(
                    "Namespace defines the space within which each name must be unique. An empty namespace is "
                    'equivalent to the "default" namespace, but "default" is the canonical representation. Not '
                    "all objects are required to be scoped to a namespace - the value of this field for those "
                    "objects will be empty. More info: "
                    "https://kubernetes.io/docs/concepts/overview/working-with-objects/namespaces"
                ),
                "ownerReferences": _array(
                    _ref(META + "OwnerReference"),
                    "List of objects depended by this object. If ALL objects in the list have been deleted, this "
                    "object will be garbage collected.",
                    list_type="map",
                    list_map_keys=["uid"],
                    patch_merge_key="uid",
                    patch_strategy="merge",
                ),
                "resourceVersion": _string(
                    "An opaque value that represents the internal version of this object that can be used by "
                    "clients to determine when objects have changed. May be used for optimistic concurrency, "
                    "change detection, and the watch operation on a resource or set of resources. Clients must "
                    "treat these values as opaque and passed unmodified back to the server. More info: "
                    f"{_API_CONVENTIONS}#concurrency-control-and-consistency"
                ),
                "selfLink": _string(
                    "Deprecated: selfLink is a legacy read-only field that is no longer populated by the system."
                ),
                "uid": _string(
                    "UID is the unique in time and space value for this object. For the views served here it is "
                    "derived from the object's identity, so it is stable across servers and restarts. More info: "
                    "https://kubernetes.io/docs/concepts/overview/working-with-objects/names#uids"
                ),
            },
        ),
        META + "ListMeta": _object(
            "ListMeta describes metadata that synthetic resources must have, including lists and various status "
            "objects. A resource may have only one of {ObjectMeta, ListMeta}.",
            {
                "continue": _string(
                    "continue may be set if the user set a limit on the number of items returned, and indicates "
                    "that the server has more data available. The value is opaque and may be used to issue another "
                    "request to the endpoint that served this list to retrieve the next set of available objects."
                ),
                "remainingItemCount": _integer(
                    "remainingItemCount is the number of subsequent items in the list which are not included in "
                    "this list response.",
                    "int64",
                ),
                "resourceVersion": _string(
                    "String that identifies the server's internal version of this object that can be used by "
                    "clients to determine when objects have changed. Value must be treated as opaque by clients "
                    "and passed unmodified back to the server. More info: "
                    f"{_API_CONVENTIONS}#concurrency-control-and-consistency"
                ),
                "selfLink": _string(
                    "Deprecated: selfLink is a legacy read-only field that is no longer populated by the system."
                ),
            },
        ),
        META + "Condition": _object(
            "Condition contains details for one aspect of the current state of this API Resource.",
            {
                "lastTransitionTime": _ref(
                    META + "Time",
                    "lastTransitionTime is the last time the condition transitioned from one status to another.",
                ),
                "message": _string(
                    "message is a human readable message indicating details about the transition. This may be an "
                    "empty string.",
                    default="",
                ),
                "observedGeneration": _integer(
                    "observedGeneration represents the .metadata.generation that the condition was set based upon.",
                    "int64",
                ),
                "reason": _string(
                    "reason contains a programmatic identifier indicating the reason for the condition's last "
                    "transition. The value should be a CamelCase string. This field may not be empty.",
                    default="",
                ),
                "status": _string(
                    "status of the condition, one of True, False, Unknown.", enum=["False", "True", "Unknown"]
                ),
                "type": _string("type of condition in CamelCase or in foo.example.com/CamelCase.", default=""),
            },
            required=["type", "status", "lastTransitionTime", "reason", "message"],
        ),
        META + "APIResource": _object(
            "APIResource specifies the name of a resource and whether it is namespaced.",
            {
                "categories": _array(
                    {"type": "string", "default": ""},
                    "categories is a list of the grouped resources this resource belongs to (e.g. 'all')",
                    list_type="atomic",
                ),
                "group": _string(
                    "group is the preferred group of the resource. Empty implies the group of the containing "
                    "resource list."
                ),
                "kind": _string(
                    "kind is the kind for the resource (e.g. 'Foo' is the kind for a resource 'foo')", default=""
                ),
                "name": _string("name is the plural name of the resource.", default=""),
                "namespaced": _boolean("namespaced indicates if a resource is namespaced or not."),
                "shortNames": _array(
                    {"type": "string", "default": ""},
                    "shortNames is a list of suggested short names of the resource.",
                    list_type="atomic",
                ),
                "singularName": _string("singularName is the singular name of the resource.", default=""),
                "storageVersionHash": _string(
                    "The hash value of the storage version, the version this resource is converted to when "
                    "written to the data store."
                ),
                "verbs": _array(
                    {"type": "string", "default": ""},
                    "verbs is a list of supported kube verbs (this includes get, list, watch, create, update, "
                    "patch, delete, deletecollection, and proxy)",
                ),
                "version": _string(
                    "version is the preferred version of the resource. Empty implies the version of the "
                    "containing resource list."
                ),
            },
            required=["name", "singularName", "namespaced", "kind", "verbs"],
        ),
        META + "APIResourceList": _object(
            "APIResourceList is a list of APIResource, it is used to expose the name of the resources supported "
            "in a specific group and version, and if the resource is namespaced.",
            {
                "apiVersion": _api_version(),
                "groupVersion": _string(
                    "groupVersion is the group and version this APIResourceList is for.", default=""
                ),
                "kind": _kind(),
                "resources": _array(
                    _ref(META + "APIResource"),
                    "resources contains the name of the resources and if they are namespaced.",
                    list_type="atomic",
                ),
            },
            required=["groupVersion", "resources"],
            gvk=("", "v1", "APIResourceList"),
        ),
        RUNTIME + "RawExtension": {
            "type": "object",
            "description": "RawExtension is used to hold extensions in external versions.",
        },
        META + "WatchEvent": _object(
            "Event represents a single event to a watched resource.",
            {
                "object": _ref(
                    RUNTIME + "RawExtension",
                    "Object is:\n * If Type is Added or Modified: the new state of the object.\n * If Type is "
                    "Deleted: the state of the object immediately before deletion.\n * If Type is Error: *Status "
                    "is recommended; other types may make sense\n   depending on context.",
                ),
                "type": _string("ADDED, MODIFIED, DELETED, BOOKMARK or ERROR.", default=""),
            },
            required=["type", "object"],
            gvk=(GROUP, VERSION, "WatchEvent"),
        ),
    }


# --- views.multicluster.x-k8s.io/v1alpha1 ----------------------------------------------------


def _list_kind(kind: str, plural: str) -> dict[str, Any]:
    return _object(
        f"{kind}List is a list of {kind}.",
        {
            "apiVersion": _api_version(),
            "items": _array(_ref(OURS + kind), f"List of {plural}."),
            "kind": _kind(),
            "metadata": _ref(META + "ListMeta", f"Standard list metadata. More info: {_API_CONVENTIONS}#metadata"),
        },
        required=["items"],
        gvk=(GROUP, VERSION, kind + "List"),
    )


def _our_definitions() -> dict[str, dict[str, Any]]:
    conditions = _array(
        _ref(META + "Condition"),
        "",  # filled in per type below
        list_type="map",
        list_map_keys=["type"],
    )
    import_conditions = dict(
        conditions,
        description="Current state of the import. Ready (True with reason Ready; False or Unknown with reason "
        "Pending or IPFamilyNotSupported) and, when the exporting clusters disagree on a property of the "
        "service, Conflict (True; the reason names the kind of conflict, e.g. PortConflict or TypeConflict, and "
        "the message names the field, the winning cluster and why it won).",
    )
    clusterset_conditions = dict(
        conditions,
        description="Current state of the ClusterSet as seen from the local cluster: Ready is True when every "
        "member is Joined and synced.",
    )
    return {
        OURS + "ServiceImport": _object(
            "ServiceImport describes a service imported from the clusters of a ClusterSet: the multi-cluster "
            "service formed by every ServiceExport of the same namespace and name. It is computed live from the "
            "ServiceExports, Services and EndpointSlices of every member cluster and served read-only; it "
            "exists in every member cluster where its namespace exists (namespace sameness).",
            {
                "apiVersion": _api_version(),
                "kind": _kind(),
                "metadata": _ref(
                    META + "ObjectMeta", f"Standard object's metadata. More info: {_API_CONVENTIONS}#metadata"
                ),
                "spec": _ref(OURS + "ServiceImportSpec", "spec defines the behavior of a ServiceImport."),
                "status": _ref(
                    OURS + "ServiceImportStatus",
                    "status contains information about the exported services that form the multi-cluster "
                    "service referenced by this ServiceImport.",
                ),
            },
            gvk=(GROUP, VERSION, "ServiceImport"),
        ),
        OURS + "ServiceImportList": _list_kind("ServiceImport", "serviceimports"),
        OURS + "ServiceImportSpec": _object(
            "ServiceImportSpec describes an imported service and the information necessary to consume it. "
            "Field names are the upstream multicluster.x-k8s.io ServiceImport's.",
            {
                "ports": _array(
                    _ref(OURS + "ServicePort"),
                    "The union of the ports exported by every cluster: merged by name, then by protocol and "
                    "port. When clusters disagree the oldest export wins and a PortConflict is reported.",
                    list_type="atomic",
                ),
                "ips": _array(
                    {"type": "string", "default": ""},
                    "The ClusterSet virtual IPs, one per IP family and in the order of ipFamilies. Set only for "
                    "type ClusterSetIP; chosen deterministically so every member cluster computes the same "
                    "address.",
                    max_items=2,
                ),
                "type": _string(
                    "type defines the type of this service. Must be ClusterSetIP or Headless. A Service with "
                    'clusterIP "None" is imported as Headless (DNS only, no virtual IP); any other as ClusterSetIP.',
                    enum=["ClusterSetIP", "Headless"],
                ),
                "sessionAffinity": _string(
                    'Supports "ClientIP" and "None". Used to maintain session affinity. Enable client IP '
                    "based session affinity. Must be ClientIP or None. Defaults to None. Ignored when type is "
                    "Headless. More info: "
                    "https://kubernetes.io/docs/concepts/services-networking/service/#virtual-ips-and-service-proxies",
                    enum=["ClientIP", "None"],
                ),
                "sessionAffinityConfig": _ref(
                    OURS + "SessionAffinityConfig",
                    "sessionAffinityConfig contains session affinity configuration.",
                ),
                "ipFamilies": _array(
                    {"type": "string", "enum": ["IPv4", "IPv6"]},
                    "IPFamilies identifies all the IPFamilies assigned for this ServiceImport. If there are two "
                    "families, they must be different (IPv4 and IPv6).",
                    max_items=2,
                    list_type="atomic",
                ),
                "internalTrafficPolicy": _string(
                    "InternalTrafficPolicy describes how nodes distribute service traffic they receive on the "
                    'ClusterSetIP. If set to "Local", the proxy will assume that pods only want to talk to '
                    "endpoints of the service on the same node as the pod, dropping the traffic if there are no "
                    'local endpoints. The default value, "Cluster", uses the standard behavior of routing to '
                    "all endpoints evenly.",
                    enum=["Cluster", "Local"],
                ),
                "trafficDistribution": _string(
                    "TrafficDistribution offers a way to express preferences for how traffic is distributed to "
                    "Service endpoints (e.g. PreferClose), as the Service field of the same name."
                ),
            },
            required=["ports", "type"],
        ),
        OURS + "ServicePort": _object(
            "ServicePort represents the port on which the service is exposed.",
            {
                "name": _string(
                    "The name of this port within the service. This must be a DNS_LABEL. All ports within a "
                    "ServiceSpec must have unique names. This maps to the 'Name' field in EndpointPort objects. "
                    "Optional if only one ServicePort is defined on this service."
                ),
                "protocol": _string(
                    'The IP protocol for this port. Supports "TCP", "UDP", and "SCTP". Default is TCP.',
                    enum=["SCTP", "TCP", "UDP"],
                    default="TCP",
                ),
                "appProtocol": _string(
                    "The application protocol for this port. This is used as a hint for implementations to offer "
                    "richer behavior for protocols that they understand. Un-prefixed names are reserved for IANA "
                    "standard service names (as per RFC-6335 and https://www.iana.org/assignments/service-names); "
                    "other protocols should use implementation-defined prefixed names such as "
                    "mycompany.com/my-custom-protocol."
                ),
                "port": _integer("The port that will be exposed by this service."),
            },
            required=["port"],
        ),
        OURS + "SessionAffinityConfig": _object(
            "SessionAffinityConfig represents the configurations of session affinity.",
            {
                "clientIP": _ref(
                    OURS + "ClientIPConfig",
                    "clientIP contains the configurations of Client IP based session affinity.",
                ),
            },
        ),
        OURS + "ClientIPConfig": _object(
            "ClientIPConfig represents the configurations of Client IP based session affinity.",
            {
                "timeoutSeconds": _integer(
                    "timeoutSeconds specifies the seconds of ClientIP type session sticky time. The value must be "
                    '>0 && <=86400(for 1 day) if ServiceAffinity == "ClientIP". Default value is 10800(for 3 hours).'
                ),
            },
        ),
        OURS + "ServiceImportStatus": _object(
            "ServiceImportStatus describes derived state of an imported service.",
            {
                "clusters": _array(
                    _ref(OURS + "ClusterStatus"),
                    "clusters is the list of exporting clusters from which this service was derived.",
                    list_type="map",
                    list_map_keys=["cluster"],
                ),
                "conditions": import_conditions,
            },
        ),
        OURS + "ClusterStatus": _object(
            "ClusterStatus contains service configuration mapped to a specific source cluster.",
            {
                "cluster": _string(
                    "cluster is the name of the exporting cluster: its cluster ID (the value of its "
                    "cluster.clusterset.k8s.io ClusterProperty). Must be a valid RFC-1123 DNS label.",
                    default="",
                ),
                "exportedAt": _ref(
                    META + "Time",
                    "When this cluster exported the service: the views.multicluster.x-k8s.io/exported-at "
                    "annotation of its ServiceExport (its creationTimestamp when missing). The oldest export "
                    "wins conflicts.",
                ),
                "readyEndpoints": _integer(
                    "Number of ready endpoint addresses of the exported Service in this cluster."
                ),
                "conflicts": _array(
                    {"type": "string", "default": ""},
                    "Conflict reasons that concern this cluster's export (e.g. PortConflict), if any.",
                    list_type="atomic",
                ),
            },
            required=["cluster"],
        ),
        OURS + "ClusterSet": _object(
            "ClusterSet describes the set of clusters this cluster belongs to, as named by the clusterset.k8s.io "
            "ClusterProperty (KEP-2149): which clusters are members, under which cluster ID, and whether each is "
            "reachable and synced. Computed live and served read-only.",
            {
                "apiVersion": _api_version(),
                "kind": _kind(),
                "metadata": _ref(
                    META + "ObjectMeta", f"Standard object's metadata. More info: {_API_CONVENTIONS}#metadata"
                ),
                "status": _ref(
                    OURS + "ClusterSetStatus", "status of the ClusterSet as seen from the local cluster."
                ),
            },
            gvk=(GROUP, VERSION, "ClusterSet"),
        ),
        OURS + "ClusterSetList": _list_kind("ClusterSet", "clustersets"),
        OURS + "ClusterSetStatus": _object(
            "ClusterSetStatus is the observed state of a ClusterSet.",
            {
                "localCluster": _string(
                    "The cluster ID of the cluster this server answers for (its cluster.clusterset.k8s.io "
                    "ClusterProperty)."
                ),
                "members": _array(
                    _ref(OURS + "ClusterSetMember"),
                    "Every cluster this server is configured to watch, member or not, with its state.",
                    list_type="atomic",
                ),
                "conditions": clusterset_conditions,
            },
        ),
        OURS + "ClusterSetMember": _object(
            "ClusterSetMember is one cluster as seen by this server.",
            {
                "cluster": _string(
                    "The member's cluster ID (cluster.clusterset.k8s.io ClusterProperty); empty when it has none."
                ),
                "name": _string(
                    "The member's connection name (kubeconfig context) in this server's configuration."
                ),
                "state": _string(
                    "Joined: member of this ClusterSet and synced. Syncing: connected, caches not yet synced. "
                    "Unreachable: the connection failed; its last known exports are kept for a grace period. "
                    "NotMember: its clusterset.k8s.io differs from the local one. MissingID: it has no cluster "
                    "ID. DuplicateID: another member uses the same cluster ID (both are excluded from imports).",
                    enum=["DuplicateID", "Joined", "MissingID", "NotMember", "Syncing", "Unreachable"],
                ),
                "lastSyncTime": _ref(
                    META + "Time", "Time of the last successful list or watch event from this member."
                ),
                "exports": _integer("Number of ServiceExports this member contributes."),
                "message": _string("A human readable explanation of the state."),
            },
        ),
    }


def _definitions() -> dict[str, dict[str, Any]]:
    return {**_meta_definitions(), **_our_definitions()}


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


@dataclass(frozen=True, slots=True)
class _Operation:
    path: str
    operation_id: str
    action: str  # get | list
    description: str
    resource: ResourceInfo
    path_params: tuple[str, ...]  # "namespace", "name"
    response: str  # definition name


def _operations() -> list[_Operation]:
    ops: list[_Operation] = []
    for r in RESOURCES:
        if r.namespaced:
            ops.append(
                _Operation(
                    f"{GV_PATH}/{r.name}",
                    f"list{_OP_GROUP}{r.kind}ForAllNamespaces",
                    "list",
                    f"list or watch objects of kind {r.kind}",
                    r,
                    (),
                    OURS + r.list_kind,
                )
            )
            ops.append(
                _Operation(
                    f"{GV_PATH}/namespaces/{{namespace}}/{r.name}",
                    f"list{_OP_GROUP}Namespaced{r.kind}",
                    "list",
                    f"list or watch objects of kind {r.kind}",
                    r,
                    ("namespace",),
                    OURS + r.list_kind,
                )
            )
            ops.append(
                _Operation(
                    f"{GV_PATH}/namespaces/{{namespace}}/{r.name}/{{name}}",
                    f"read{_OP_GROUP}Namespaced{r.kind}",
                    "get",
                    f"read the specified {r.kind}",
                    r,
                    ("namespace", "name"),
                    OURS + r.kind,
                )
            )
        else:
            ops.append(
                _Operation(
                    f"{GV_PATH}/{r.name}",
                    f"list{_OP_GROUP}{r.kind}",
                    "list",
                    f"list or watch objects of kind {r.kind}",
                    r,
                    (),
                    OURS + r.list_kind,
                )
            )
            ops.append(
                _Operation(
                    f"{GV_PATH}/{r.name}/{{name}}",
                    f"read{_OP_GROUP}{r.kind}",
                    "get",
                    f"read the specified {r.kind}",
                    r,
                    ("name",),
                    OURS + r.kind,
                )
            )
    return ops


def _path_param_description(name: str, r: ResourceInfo) -> str:
    return _NAMESPACE_DESCRIPTION if name == "namespace" else f"name of the {r.kind}"


# --- rendering ---------------------------------------------------------------------------------


def _render(schema: Any, prefix: str, v3: bool) -> Any:
    """Turn neutral ``$ref``s into ``prefix + name`` (v3: wrap a described reference in ``allOf``)."""
    if isinstance(schema, list):
        return [_render(item, prefix, v3) for item in schema]
    if not isinstance(schema, dict):
        return schema
    if "$ref" in schema:
        target = {"$ref": prefix + schema["$ref"]}
        siblings = {k: v for k, v in schema.items() if k != "$ref"}
        if not siblings:
            return target
        if v3:
            return {"allOf": [target], **siblings}
        return {**target, **siblings}
    return {key: _render(value, prefix, v3) for key, value in schema.items()}


def _info() -> dict[str, str]:
    try:
        version = importlib_metadata.version("mcs-apiserver")
    except importlib_metadata.PackageNotFoundError:
        version = "unversioned"
    return {"title": "mcs-apiserver", "version": f"v{version}" if version[:1].isdigit() else version}


def _gvk(r: ResourceInfo) -> dict[str, str]:
    return {"group": GROUP, "kind": r.kind, "version": VERSION}


def v2_spec() -> dict[str, Any]:
    """The Swagger 2.0 document (a fresh dict)."""
    parameters: dict[str, Any] = {}
    for name, (type_, description) in _QUERY_PARAMETERS.items():
        param: dict[str, Any] = {
            "name": name,
            "in": "query",
            "type": type_,
            "uniqueItems": True,
            "description": description,
        }
        parameters[name] = param
    parameters["namespace"] = {
        "name": "namespace",
        "in": "path",
        "required": True,
        "type": "string",
        "uniqueItems": True,
        "description": _NAMESPACE_DESCRIPTION,
    }
    paths: dict[str, Any] = {
        GV_PATH + "/": {
            "get": {
                "description": "get available resources",
                "consumes": ["application/json"],
                "produces": ["application/json"],
                "schemes": ["https"],
                "tags": [_TAG],
                "operationId": f"get{_OP_GROUP}APIResources",
                "responses": {
                    "200": {"description": "OK", "schema": {"$ref": f"#/definitions/{META}APIResourceList"}},
                    "401": {"description": "Unauthorized"},
                },
            }
        }
    }
    for op in _operations():
        path_parameters: list[dict[str, Any]] = []
        for p in op.path_params:
            if p == "namespace":
                path_parameters.append({"$ref": "#/parameters/namespace"})
            else:
                path_parameters.append(
                    {
                        "name": "name",
                        "in": "path",
                        "required": True,
                        "type": "string",
                        "uniqueItems": True,
                        "description": _path_param_description(p, op.resource),
                    }
                )
        path_parameters.append({"$ref": "#/parameters/pretty"})
        operation: dict[str, Any] = {
            "description": op.description,
            "consumes": ["*/*"],
            "produces": list(_PRODUCES) if op.action == "list" else ["application/json"],
            "schemes": ["https"],
            "tags": [_TAG],
            "operationId": op.operation_id,
            "responses": {
                "200": {"description": "OK", "schema": {"$ref": f"#/definitions/{op.response}"}},
                "401": {"description": "Unauthorized"},
            },
            "x-kubernetes-action": op.action,
            "x-kubernetes-group-version-kind": _gvk(op.resource),
        }
        if op.action == "list":
            operation["parameters"] = [{"$ref": f"#/parameters/{n}"} for n in _LIST_PARAMETERS]
        paths[op.path] = {"get": operation, "parameters": path_parameters}
    return {
        "swagger": "2.0",
        "info": _info(),
        "paths": paths,
        "definitions": _render(_definitions(), "#/definitions/", v3=False),
        "parameters": parameters,
        "securityDefinitions": {
            "BearerToken": {
                "type": "apiKey",
                "name": "authorization",
                "in": "header",
                "description": "Bearer Token authentication",
            }
        },
        "security": [{"BearerToken": []}],
    }


def v3_spec() -> dict[str, Any]:
    """The OpenAPI 3.0 document for our group-version (a fresh dict)."""
    parameters: dict[str, Any] = {}
    for name, (type_, description) in _QUERY_PARAMETERS.items():
        parameters[name] = {
            "name": name,
            "in": "query",
            "description": description,
            "schema": {"type": type_, "uniqueItems": True},
        }
    parameters["namespace"] = {
        "name": "namespace",
        "in": "path",
        "required": True,
        "description": _NAMESPACE_DESCRIPTION,
        "schema": {"type": "string", "uniqueItems": True},
    }

    def content(ref: str, media_types: tuple[str, ...]) -> dict[str, Any]:
        return {m: {"schema": {"$ref": f"#/components/schemas/{ref}"}} for m in media_types}

    paths: dict[str, Any] = {
        GV_PATH + "/": {
            "get": {
                "tags": [_TAG],
                "description": "get available resources",
                "operationId": f"get{_OP_GROUP}APIResources",
                "responses": {
                    "200": {
                        "description": "OK",
                        "content": content(META + "APIResourceList", ("application/json",)),
                    },
                    "401": {"description": "Unauthorized"},
                },
            }
        }
    }
    for op in _operations():
        path_parameters: list[dict[str, Any]] = []
        for p in op.path_params:
            if p == "namespace":
                path_parameters.append({"$ref": "#/components/parameters/namespace"})
            else:
                path_parameters.append(
                    {
                        "name": "name",
                        "in": "path",
                        "required": True,
                        "description": _path_param_description(p, op.resource),
                        "schema": {"type": "string", "uniqueItems": True},
                    }
                )
        path_parameters.append({"$ref": "#/components/parameters/pretty"})
        media_types = _PRODUCES if op.action == "list" else ("application/json",)
        operation: dict[str, Any] = {
            "tags": [_TAG],
            "description": op.description,
            "operationId": op.operation_id,
            "responses": {
                "200": {"description": "OK", "content": content(op.response, media_types)},
                "401": {"description": "Unauthorized"},
            },
            "x-kubernetes-action": op.action,
            "x-kubernetes-group-version-kind": _gvk(op.resource),
        }
        if op.action == "list":
            operation["parameters"] = [{"$ref": f"#/components/parameters/{n}"} for n in _LIST_PARAMETERS]
        paths[op.path] = {"get": operation, "parameters": path_parameters}
    return {
        "openapi": "3.0.0",
        "info": _info(),
        "paths": paths,
        "components": {
            "schemas": _render(_definitions(), "#/components/schemas/", v3=True),
            "parameters": parameters,
            "securitySchemes": {
                "BearerToken": {
                    "type": "apiKey",
                    "name": "authorization",
                    "in": "header",
                    "description": "Bearer Token authentication",
                }
            },
        },
        "security": [{"BearerToken": []}],
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
