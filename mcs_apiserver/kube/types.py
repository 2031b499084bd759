"""TypedDicts for the Kubernetes JSON this project reads and writes.

Member clusters are read as raw JSON (the generated client models are far too slow for thousands of
objects), so these TypedDicts are the only "schema" the code has: they document which fields we rely
on, and let a type checker catch a misspelt key. Every field is optional (``total=False``) because the
API server omits empty fields.

The types this server publishes (ServiceImport, ClusterSet and the meta/v1 types they use) are also the
source of its OpenAPI schemas (mcs_apiserver/api/openapi.py): a class docstring is the definition's
description, a ``Doc`` in ``Annotated`` says what a field's Python type cannot (its description, format,
default and ``x-kubernetes-*`` list semantics), and a ``Literal`` is an enum.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal, TypedDict


@dataclass(frozen=True, slots=True)
class Doc:
    """What the OpenAPI schema of a field says beyond its type (read by mcs_apiserver/api/openapi.py).

    ``required`` puts the field in the schema's ``required`` list: the API always sets it. The TypedDict
    still lets it be missing, because objects are built step by step (a condition gets its
    ``lastTransitionTime`` last) and members' objects are read as they come.
    ``schema`` names a meta type that has no TypedDict of its own (``Time``, ``FieldsV1``,
    ``RawExtension``): the field's schema is then a reference to it.
    """

    description: str
    format: str = ""
    default: str | None = None
    max_items: int | None = None
    required: bool = False
    schema: str = ""
    list_type: str = ""
    list_map_keys: tuple[str, ...] = ()
    patch_merge_key: str = ""
    patch_strategy: str = ""


API_CONVENTIONS = "https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md"
_NAMES_DOC = "https://kubernetes.io/docs/concepts/overview/working-with-objects/names"

APIVersion = Annotated[
    str,
    Doc(
        "APIVersion defines the versioned schema of this representation of an object. Servers should convert "
        "recognized schemas to the latest internal value, and may reject unrecognized values. More info: "
        f"{API_CONVENTIONS}#resources"
    ),
]
Kind = Annotated[
    str,
    Doc(
        "Kind is a string value representing the REST resource this object represents. Servers may infer this "
        "from the endpoint the client submits requests to. Cannot be updated. In CamelCase. More info: "
        f"{API_CONVENTIONS}#types-kinds"
    ),
]


# --- meta/v1 -----------------------------------------------------------------------------------


class OwnerReference(TypedDict, total=False):
    """OwnerReference contains enough information to let you identify an owning object. An owning object
    must be in the same namespace as the dependent, or be cluster-scoped, so there is no namespace field."""

    apiVersion: Annotated[str, Doc("API version of the referent.", required=True)]
    kind: Annotated[str, Doc(f"Kind of the referent. More info: {API_CONVENTIONS}#types-kinds", required=True)]
    name: Annotated[str, Doc(f"Name of the referent. More info: {_NAMES_DOC}#names", required=True)]
    uid: Annotated[str, Doc(f"UID of the referent. More info: {_NAMES_DOC}#uids", required=True)]
    controller: Annotated[bool, Doc("If true, this reference points to the managing controller.")]
    blockOwnerDeletion: Annotated[
        bool,
        Doc(
            'If true, AND if the owner has the "foregroundDeletion" finalizer, then the owner cannot be '
            "deleted from the key-value store until this reference is removed. Defaults to false."
        ),
    ]


class ManagedFieldsEntry(TypedDict, total=False):
    """ManagedFieldsEntry is a workflow-id, a FieldSet and the group version of the resource that the
    fieldset applies to."""

    apiVersion: Annotated[
        str,
        Doc(
            "APIVersion defines the version of this resource that this field set applies to. The format "
            'is "group/version" just like the top-level APIVersion field. It is necessary to track the '
            "version of a field set because it cannot be automatically converted."
        ),
    ]
    fieldsType: Annotated[
        str,
        Doc(
            "FieldsType is the discriminator for the different fields format and version. There is "
            'currently only one possible value: "FieldsV1"'
        ),
    ]
    fieldsV1: Annotated[
        dict[str, Any],
        Doc('FieldsV1 holds the first JSON version format as described in the "FieldsV1" type.', schema="FieldsV1"),
    ]
    manager: Annotated[str, Doc("Manager is an identifier of the workflow managing these fields.")]
    operation: Annotated[
        str,
        Doc(
            "Operation is the type of operation which lead to this ManagedFieldsEntry being created. "
            "The only valid values for this field are 'Apply' and 'Update'."
        ),
    ]
    subresource: Annotated[
        str,
        Doc(
            "Subresource is the name of the subresource used to update that object, or empty string if "
            "the object was updated through the main resource. The value of this field is used to "
            "distinguish between managers, even if they share the same name."
        ),
    ]
    time: Annotated[
        str,
        Doc(
            "Time is the timestamp of when the ManagedFields entry was added. The timestamp will also be "
            "updated if a field is added, the manager changes any of the owned fields value or removes a "
            "field. The timestamp does not update when a field is removed from the entry because another "
            "manager took it over.",
            schema="Time",
        ),
    ]


class ObjectMeta(TypedDict, total=False):
    """ObjectMeta is metadata that all persisted resources must have, which includes all objects users
    must create."""

    name: Annotated[
        str,
        Doc(
            "Name must be unique within a namespace. Is required when creating resources, although some "
            "resources may allow a client to request the generation of an appropriate name automatically. "
            "Name is primarily intended for creation idempotence and configuration definition. Cannot be "
            f"updated. More info: {_NAMES_DOC}#names"
        ),
    ]
    generateName: Annotated[
        str,
        Doc(
            "GenerateName is an optional prefix, used by the server, to generate a unique name ONLY IF the "
            "Name field has not been provided."
        ),
    ]
    namespace: Annotated[
        str,
        Doc(
            "Namespace defines the space within which each name must be unique. An empty namespace is "
            'equivalent to the "default" namespace, but "default" is the canonical representation. Not '
            "all objects are required to be scoped to a namespace - the value of this field for those "
            "objects will be empty. More info: "
            "https://kubernetes.io/docs/concepts/overview/working-with-objects/namespaces"
        ),
    ]
    selfLink: Annotated[
        str, Doc("Deprecated: selfLink is a legacy read-only field that is no longer populated by the system.")
    ]
    uid: Annotated[
        str,
        Doc(
            "UID is the unique in time and space value for this object. For the views served here it is "
            "derived from the object's identity, so it is stable across servers and restarts. More info: "
            f"{_NAMES_DOC}#uids"
        ),
    ]
    resourceVersion: Annotated[
        str,
        Doc(
            "An opaque value that represents the internal version of this object that can be used by "
            "clients to determine when objects have changed. May be used for optimistic concurrency, "
            "change detection, and the watch operation on a resource or set of resources. Clients must "
            "treat these values as opaque and passed unmodified back to the server. More info: "
            f"{API_CONVENTIONS}#concurrency-control-and-consistency"
        ),
    ]
    generation: Annotated[
        int, Doc("A sequence number representing a specific generation of the desired state.", format="int64")
    ]
    creationTimestamp: Annotated[
        str,
        Doc(
            "CreationTimestamp is a timestamp representing the server time when this object was created. "
            "For a ServiceImport: when the oldest contributing ServiceExport was created. Represented in "
            f"RFC3339 form and is in UTC. More info: {API_CONVENTIONS}#metadata",
            schema="Time",
        ),
    ]
    deletionTimestamp: Annotated[
        str,
        Doc(
            "DeletionTimestamp is RFC 3339 date and time at which this resource will be deleted. Views "
            "served by this API are never deleted this way.",
            schema="Time",
        ),
    ]
    deletionGracePeriodSeconds: Annotated[
        int,
        Doc(
            "Number of seconds allowed for this object to gracefully terminate before it will be removed "
            "from the system. Only set when deletionTimestamp is also set.",
            format="int64",
        ),
    ]
    labels: Annotated[
        dict[str, str],
        Doc(
            "Map of string keys and values that can be used to organize and categorize (scope and select) "
            "objects. For a ServiceImport: the exportedLabels of the winning ServiceExport. More info: "
            "https://kubernetes.io/docs/concepts/overview/working-with-objects/labels"
        ),
    ]
    annotations: Annotated[
        dict[str, str],
        Doc(
            "Annotations is an unstructured key value map stored with a resource that may be set by "
            "external tools to store and retrieve arbitrary metadata. For a ServiceImport: the "
            "exportedAnnotations of the winning ServiceExport. More info: "
            "https://kubernetes.io/docs/concepts/overview/working-with-objects/annotations"
        ),
    ]
    ownerReferences: Annotated[
        list[OwnerReference],
        Doc(
            "List of objects depended by this object. If ALL objects in the list have been deleted, this "
            "object will be garbage collected.",
            list_type="map",
            list_map_keys=("uid",),
            patch_merge_key="uid",
            patch_strategy="merge",
        ),
    ]
    finalizers: Annotated[
        list[str], Doc("Must be empty before the object is deleted from the registry.", list_type="set")
    ]
    managedFields: Annotated[
        list[ManagedFieldsEntry],
        Doc(
            "ManagedFields maps workflow-id and version to the set of fields that are managed by that "
            "workflow. This is mostly for internal housekeeping, and users typically shouldn't need to set "
            "or understand this field.",
            list_type="atomic",
        ),
    ]


# Functional form: "continue" is a Python keyword.
ListMeta = TypedDict(
    "ListMeta",
    {
        "continue": Annotated[
            str,
            Doc(
                "continue may be set if the user set a limit on the number of items returned, and indicates "
                "that the server has more data available. The value is opaque and may be used to issue "
                "another request to the endpoint that served this list to retrieve the next set of available "
                "objects."
            ),
        ],
        "remainingItemCount": Annotated[
            int,
            Doc(
                "remainingItemCount is the number of subsequent items in the list which are not included in "
                "this list response.",
                format="int64",
            ),
        ],
        "resourceVersion": Annotated[
            str,
            Doc(
                "String that identifies the server's internal version of this object that can be used by "
                "clients to determine when objects have changed. Value must be treated as opaque by clients "
                "and passed unmodified back to the server. More info: "
                f"{API_CONVENTIONS}#concurrency-control-and-consistency"
            ),
        ],
        "selfLink": Annotated[
            str, Doc("Deprecated: selfLink is a legacy read-only field that is no longer populated by the system.")
        ],
    },
    total=False,
)
ListMeta.__doc__ = (
    "ListMeta describes metadata that synthetic resources must have, including lists and various status "
    "objects. A resource may have only one of {ObjectMeta, ListMeta}."
)


class Condition(TypedDict, total=False):
    """Condition contains details for one aspect of the current state of this API Resource."""

    type: Annotated[
        str, Doc("type of condition in CamelCase or in foo.example.com/CamelCase.", default="", required=True)
    ]
    status: Annotated[
        Literal["True", "False", "Unknown"], Doc("status of the condition, one of True, False, Unknown.", required=True)
    ]
    lastTransitionTime: Annotated[
        str,
        Doc(
            "lastTransitionTime is the last time the condition transitioned from one status to another.",
            schema="Time",
            required=True,
        ),
    ]
    reason: Annotated[
        str,
        Doc(
            "reason contains a programmatic identifier indicating the reason for the condition's last "
            "transition. The value should be a CamelCase string. This field may not be empty.",
            default="",
            required=True,
        ),
    ]
    message: Annotated[
        str,
        Doc(
            "message is a human readable message indicating details about the transition. This may be an "
            "empty string.",
            default="",
            required=True,
        ),
    ]
    observedGeneration: Annotated[
        int,
        Doc(
            "observedGeneration represents the .metadata.generation that the condition was set based upon.",
            format="int64",
        ),
    ]


class APIResource(TypedDict, total=False):
    """APIResource specifies the name of a resource and whether it is namespaced."""

    name: Annotated[str, Doc("name is the plural name of the resource.", default="", required=True)]
    singularName: Annotated[str, Doc("singularName is the singular name of the resource.", default="", required=True)]
    namespaced: Annotated[bool, Doc("namespaced indicates if a resource is namespaced or not.", required=True)]
    group: Annotated[
        str,
        Doc(
            "group is the preferred group of the resource. Empty implies the group of the containing " "resource list."
        ),
    ]
    version: Annotated[
        str,
        Doc(
            "version is the preferred version of the resource. Empty implies the version of the "
            "containing resource list."
        ),
    ]
    kind: Annotated[
        str,
        Doc(
            "kind is the kind for the resource (e.g. 'Foo' is the kind for a resource 'foo')", default="", required=True
        ),
    ]
    verbs: Annotated[
        list[str],
        Doc(
            "verbs is a list of supported kube verbs (this includes get, list, watch, create, update, "
            "patch, delete, deletecollection, and proxy)",
            required=True,
        ),
    ]
    shortNames: Annotated[
        list[str], Doc("shortNames is a list of suggested short names of the resource.", list_type="atomic")
    ]
    categories: Annotated[
        list[str],
        Doc("categories is a list of the grouped resources this resource belongs to (e.g. 'all')", list_type="atomic"),
    ]
    storageVersionHash: Annotated[
        str,
        Doc(
            "The hash value of the storage version, the version this resource is converted to when "
            "written to the data store."
        ),
    ]


class APIResourceList(TypedDict, total=False):
    """APIResourceList is a list of APIResource, it is used to expose the name of the resources supported
    in a specific group and version, and if the resource is namespaced."""

    apiVersion: APIVersion
    kind: Kind
    groupVersion: Annotated[
        str, Doc("groupVersion is the group and version this APIResourceList is for.", default="", required=True)
    ]
    resources: Annotated[
        list[APIResource],
        Doc(
            "resources contains the name of the resources and if they are namespaced.",
            list_type="atomic",
            required=True,
        ),
    ]


class WatchEvent(TypedDict, total=False):
    """Event represents a single event to a watched resource."""

    type: Annotated[str, Doc("ADDED, MODIFIED, DELETED, BOOKMARK or ERROR.", default="", required=True)]
    object: Annotated[
        dict[str, Any],
        Doc(
            "Object is:\n * If Type is Added or Modified: the new state of the object.\n * If Type is "
            "Deleted: the state of the object immediately before deletion.\n * If Type is Error: *Status "
            "is recommended; other types may make sense\n   depending on context.",
            schema="RawExtension",
            required=True,
        ),
    ]


# --- core/v1 Service -------------------------------------------------------------------------


class ServicePort(TypedDict, total=False):
    name: str
    protocol: str
    appProtocol: str
    port: int
    targetPort: int | str
    nodePort: int


class ClientIPConfig(TypedDict, total=False):
    """ClientIPConfig represents the configurations of Client IP based session affinity."""

    timeoutSeconds: Annotated[
        int,
        Doc(
            "timeoutSeconds specifies the seconds of ClientIP type session sticky time. The value must be "
            '>0 && <=86400(for 1 day) if ServiceAffinity == "ClientIP". Default value is 10800(for 3 hours).'
        ),
    ]


class SessionAffinityConfig(TypedDict, total=False):
    """SessionAffinityConfig represents the configurations of session affinity."""

    clientIP: Annotated[
        ClientIPConfig, Doc("clientIP contains the configurations of Client IP based session affinity.")
    ]


class ServiceSpec(TypedDict, total=False):
    type: str  # ClusterIP | NodePort | LoadBalancer | ExternalName
    clusterIP: str
    clusterIPs: list[str]
    ipFamilies: list[str]
    ipFamilyPolicy: str
    ports: list[ServicePort]
    selector: dict[str, str]
    sessionAffinity: str
    sessionAffinityConfig: SessionAffinityConfig
    internalTrafficPolicy: str
    trafficDistribution: str
    externalName: str


class Service(TypedDict, total=False):
    apiVersion: str
    kind: str
    metadata: ObjectMeta
    spec: ServiceSpec


# --- discovery.k8s.io/v1 EndpointSlice ---------------------------------------------------------


class EndpointConditions(TypedDict, total=False):
    ready: bool
    serving: bool
    terminating: bool


class Endpoint(TypedDict, total=False):
    addresses: list[str]
    conditions: EndpointConditions
    hostname: str
    nodeName: str
    zone: str


class EndpointSlice(TypedDict, total=False):
    apiVersion: str
    kind: str
    metadata: ObjectMeta
    addressType: str
    endpoints: list[Endpoint]
    ports: list[ServicePort]


# --- core/v1 Namespace -------------------------------------------------------------------------


class NamespaceStatus(TypedDict, total=False):
    phase: str  # Active | Terminating


class Namespace(TypedDict, total=False):
    apiVersion: str
    kind: str
    metadata: ObjectMeta
    status: NamespaceStatus


# --- multicluster.x-k8s.io ServiceExport -------------------------------------------------------


class ServiceExportSpec(TypedDict, total=False):
    exportedLabels: dict[str, str]
    exportedAnnotations: dict[str, str]


class ServiceExportStatus(TypedDict, total=False):
    conditions: list[Condition]


class ServiceExport(TypedDict, total=False):
    apiVersion: str
    kind: str
    metadata: ObjectMeta
    spec: ServiceExportSpec
    status: ServiceExportStatus


# --- about.k8s.io ClusterProperty --------------------------------------------------------------


class ClusterPropertySpec(TypedDict, total=False):
    value: str


class ClusterProperty(TypedDict, total=False):
    apiVersion: str
    kind: str
    metadata: ObjectMeta
    spec: ClusterPropertySpec


# --- meta/v1 Status ----------------------------------------------------------------------------


class StatusCause(TypedDict, total=False):
    reason: str
    message: str
    field: str


class StatusDetails(TypedDict, total=False):
    name: str
    group: str
    kind: str
    uid: str
    causes: list[StatusCause]
    retryAfterSeconds: int


class Status(TypedDict, total=False):
    kind: str
    apiVersion: str
    metadata: dict[str, Any]
    status: str
    message: str
    reason: str
    details: StatusDetails
    code: int


# --- watch events and admission (the verbs of the wire) ----------------------------------------

#: ``metav1.WatchEvent.type``: what a watch stream carries (ERROR with a Status, BOOKMARK with a version).
WatchEventType = Literal["ADDED", "MODIFIED", "DELETED", "BOOKMARK", "ERROR"]
#: The watch event types that change an object (the ones a cache applies and a store emits).
ObjectEventType = Literal["ADDED", "MODIFIED", "DELETED"]
#: ``admission.k8s.io/v1`` ``AdmissionRequest.operation``.
AdmissionOperation = Literal["CREATE", "UPDATE", "DELETE", "CONNECT"]


# --- views.multicluster.x-k8s.io (what this project serves) ------------------------------------


PortProtocol = Literal["TCP", "UDP", "SCTP"]
MemberStateName = Literal["Joined", "Syncing", "Unreachable", "NotMember", "MissingID", "DuplicateID"]


class ServiceImportPort(TypedDict, total=False):
    """ServicePort represents the port on which the service is exposed."""

    name: Annotated[
        str,
        Doc(
            "The name of this port within the service. This must be a DNS_LABEL. All ports within a "
            "ServiceSpec must have unique names. This maps to the 'Name' field in EndpointPort objects. "
            "Optional if only one ServicePort is defined on this service."
        ),
    ]
    protocol: Annotated[
        PortProtocol,
        Doc('The IP protocol for this port. Supports "TCP", "UDP", and "SCTP". Default is TCP.', default="TCP"),
    ]
    appProtocol: Annotated[
        str,
        Doc(
            "The application protocol for this port. This is used as a hint for implementations to offer "
            "richer behavior for protocols that they understand. Un-prefixed names are reserved for IANA "
            "standard service names (as per RFC-6335 and https://www.iana.org/assignments/service-names); "
            "other protocols should use implementation-defined prefixed names such as "
            "mycompany.com/my-custom-protocol."
        ),
    ]
    port: Annotated[int, Doc("The port that will be exposed by this service.", required=True)]


class ServiceImportSpec(TypedDict, total=False):
    """ServiceImportSpec describes an imported service and the information necessary to consume it.
    Field names are the upstream multicluster.x-k8s.io ServiceImport's."""

    ports: Annotated[
        list[ServiceImportPort],
        Doc(
            "The union of the ports exported by every cluster: merged by name, then by protocol and "
            "port. When clusters disagree the oldest export wins and a PortConflict is reported.",
            list_type="atomic",
            required=True,
        ),
    ]
    ips: Annotated[
        list[str],
        Doc(
            "The ClusterSet virtual IPs, one per IP family and in the order of ipFamilies. Set only for "
            "type ClusterSetIP; chosen deterministically so every member cluster computes the same "
            "address.",
            max_items=2,
        ),
    ]
    type: Annotated[
        Literal["ClusterSetIP", "Headless"],
        Doc(
            "type defines the type of this service. Must be ClusterSetIP or Headless. A Service with "
            'clusterIP "None" is imported as Headless (DNS only, no virtual IP); any other as '
            "ClusterSetIP.",
            required=True,
        ),
    ]
    sessionAffinity: Annotated[
        Literal["ClientIP", "None"],
        Doc(
            'Supports "ClientIP" and "None". Used to maintain session affinity. Enable client IP '
            "based session affinity. Must be ClientIP or None. Defaults to None. Ignored when type is "
            "Headless. More info: "
            "https://kubernetes.io/docs/concepts/services-networking/service/#virtual-ips-and-service-proxies"
        ),
    ]
    sessionAffinityConfig: Annotated[
        SessionAffinityConfig, Doc("sessionAffinityConfig contains session affinity configuration.")
    ]
    ipFamilies: Annotated[
        list[Literal["IPv4", "IPv6"]],
        Doc(
            "IPFamilies identifies all the IPFamilies assigned for this ServiceImport. If there are two "
            "families, they must be different (IPv4 and IPv6).",
            max_items=2,
            list_type="atomic",
        ),
    ]
    internalTrafficPolicy: Annotated[
        Literal["Cluster", "Local"],
        Doc(
            "InternalTrafficPolicy describes how nodes distribute service traffic they receive on the "
            'ClusterSetIP. If set to "Local", the proxy will assume that pods only want to talk to '
            "endpoints of the service on the same node as the pod, dropping the traffic if there are no "
            'local endpoints. The default value, "Cluster", uses the standard behavior of routing to '
            "all endpoints evenly."
        ),
    ]
    trafficDistribution: Annotated[
        str,
        Doc(
            "TrafficDistribution offers a way to express preferences for how traffic is distributed to "
            "Service endpoints (e.g. PreferClose), as the Service field of the same name."
        ),
    ]


class ClusterStatus(TypedDict, total=False):
    """ClusterStatus contains service configuration mapped to a specific source cluster."""

    cluster: Annotated[
        str,
        Doc(
            "cluster is the name of the exporting cluster: its cluster ID (the value of its "
            "cluster.clusterset.k8s.io ClusterProperty). Must be a valid RFC-1123 DNS label.",
            default="",
            required=True,
        ),
    ]
    # The fields below are this project's additions to upstream's ClusterStatus.
    exportedAt: Annotated[
        str,
        Doc(
            "When this cluster exported the service: the views.multicluster.x-k8s.io/exported-at "
            "annotation of its ServiceExport (its creationTimestamp when missing). The oldest export "
            "wins conflicts.",
            schema="Time",
        ),
    ]
    readyEndpoints: Annotated[int, Doc("Number of ready endpoint addresses of the exported Service in this cluster.")]
    conflicts: Annotated[
        list[str],
        Doc("Conflict reasons that concern this cluster's export (e.g. PortConflict), if any.", list_type="atomic"),
    ]


class ServiceImportStatus(TypedDict, total=False):
    """ServiceImportStatus describes derived state of an imported service."""

    clusters: Annotated[
        list[ClusterStatus],
        Doc(
            "clusters is the list of exporting clusters from which this service was derived.",
            list_type="map",
            list_map_keys=("cluster",),
        ),
    ]
    conditions: Annotated[
        list[Condition],
        Doc(
            "Current state of the import. Ready (True with reason Ready; False or Unknown with reason "
            "Pending or IPFamilyNotSupported) and, when the exporting clusters disagree on a property of the "
            "service, Conflict (True; the reason names the kind of conflict, e.g. PortConflict or "
            "TypeConflict, and the message names the field, the winning cluster and why it won).",
            list_type="map",
            list_map_keys=("type",),
        ),
    ]


class ServiceImport(TypedDict, total=False):
    """ServiceImport describes a service imported from the clusters of a ClusterSet: the multi-cluster
    service formed by every ServiceExport of the same namespace and name. It is computed live from the
    ServiceExports, Services and EndpointSlices of every member cluster and served read-only; it exists in
    every member cluster where its namespace exists (namespace sameness)."""

    apiVersion: APIVersion
    kind: Kind
    metadata: Annotated[ObjectMeta, Doc(f"Standard object's metadata. More info: {API_CONVENTIONS}#metadata")]
    spec: Annotated[ServiceImportSpec, Doc("spec defines the behavior of a ServiceImport.")]
    status: Annotated[
        ServiceImportStatus,
        Doc(
            "status contains information about the exported services that form the multi-cluster "
            "service referenced by this ServiceImport."
        ),
    ]


class ClusterSetMember(TypedDict, total=False):
    """ClusterSetMember is one cluster as seen by this server."""

    cluster: Annotated[
        str, Doc("The member's cluster ID (cluster.clusterset.k8s.io ClusterProperty); empty when it has none.")
    ]
    name: Annotated[str, Doc("The member's connection name (kubeconfig context) in this server's configuration.")]
    state: Annotated[
        MemberStateName,
        Doc(
            "Joined: member of this ClusterSet and synced. Syncing: connected, caches not yet synced. "
            "Unreachable: the connection failed; its last known exports are kept for a grace period. "
            "NotMember: its clusterset.k8s.io differs from the local one. MissingID: it has no cluster "
            "ID. DuplicateID: another member uses the same cluster ID (both are excluded from imports)."
        ),
    ]
    lastSyncTime: Annotated[
        str, Doc("Time of the last successful list or watch event from this member.", schema="Time")
    ]
    exports: Annotated[int, Doc("Number of ServiceExports this member contributes.")]
    message: Annotated[str, Doc("A human readable explanation of the state.")]


class ClusterSetStatus(TypedDict, total=False):
    """ClusterSetStatus is the observed state of a ClusterSet."""

    localCluster: Annotated[
        str,
        Doc(
            "The cluster ID of the cluster this server answers for (its cluster.clusterset.k8s.io " "ClusterProperty)."
        ),
    ]
    members: Annotated[
        list[ClusterSetMember],
        Doc("Every cluster this server is configured to watch, member or not, with its state.", list_type="atomic"),
    ]
    conditions: Annotated[
        list[Condition],
        Doc(
            "Current state of the ClusterSet as seen from the local cluster: Ready is True when every "
            "member is Joined and synced.",
            list_type="map",
            list_map_keys=("type",),
        ),
    ]


class ClusterSet(TypedDict, total=False):
    """ClusterSet describes the set of clusters this cluster belongs to, as named by the clusterset.k8s.io
    ClusterProperty (KEP-2149): which clusters are members, under which cluster ID, and whether each is
    reachable and synced. Computed live and served read-only."""

    apiVersion: APIVersion
    kind: Kind
    metadata: Annotated[ObjectMeta, Doc(f"Standard object's metadata. More info: {API_CONVENTIONS}#metadata")]
    status: Annotated[ClusterSetStatus, Doc("status of the ClusterSet as seen from the local cluster.")]


class VersionInfo(TypedDict):
    """``GET /version``: kube-apiserver's ``version.Info``, with ``pythonVersion`` for ``goVersion``
    (mcs_apiserver/version.py)."""

    major: str
    minor: str
    gitVersion: str
    gitCommit: str
    gitTreeState: str
    pythonVersion: str
    compiler: str
    platform: str
