"""TypedDicts for the Kubernetes JSON this project reads and writes.

Member clusters are read as raw JSON (the generated client models are far too slow for thousands of
objects), so these TypedDicts are the only "schema" the code has: they document which fields we rely
on, and let a type checker catch a misspelt key. Every field is optional (``total=False``) because the
API server omits empty fields.
"""

from __future__ import annotations

from typing import Any, TypedDict


class OwnerReference(TypedDict, total=False):
    apiVersion: str
    kind: str
    name: str
    uid: str
    controller: bool
    blockOwnerDeletion: bool


class ObjectMeta(TypedDict, total=False):
    name: str
    generateName: str
    namespace: str
    uid: str
    resourceVersion: str
    generation: int
    creationTimestamp: str
    deletionTimestamp: str
    labels: dict[str, str]
    annotations: dict[str, str]
    ownerReferences: list[OwnerReference]
    finalizers: list[str]
    managedFields: list[dict[str, Any]]


class ListMeta(TypedDict, total=False):
    resourceVersion: str
    # Spelt "continue" on the wire; a keyword in Python, so lists are built as plain dicts.
    remainingItemCount: int


class Condition(TypedDict, total=False):
    type: str
    status: str  # "True" | "False" | "Unknown"
    reason: str
    message: str
    lastTransitionTime: str
    observedGeneration: int


# --- core/v1 Service -------------------------------------------------------------------------


class ServicePort(TypedDict, total=False):
    name: str
    protocol: str
    appProtocol: str
    port: int
    targetPort: int | str
    nodePort: int


class ClientIPConfig(TypedDict, total=False):
    timeoutSeconds: int


class SessionAffinityConfig(TypedDict, total=False):
    clientIP: ClientIPConfig


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


# --- views.multicluster.x-k8s.io (what this project serves) ------------------------------------


class ServiceImportPort(TypedDict, total=False):
    name: str
    protocol: str
    appProtocol: str
    port: int


class ServiceImportSpec(TypedDict, total=False):
    type: str  # ClusterSetIP | Headless
    ips: list[str]
    ipFamilies: list[str]
    ports: list[ServiceImportPort]
    sessionAffinity: str
    sessionAffinityConfig: SessionAffinityConfig
    internalTrafficPolicy: str
    trafficDistribution: str


class ClusterStatus(TypedDict, total=False):
    """One exporting cluster. ``cluster`` is upstream's field; the rest are this project's additions."""

    cluster: str
    exportedAt: str
    readyEndpoints: int
    conflicts: list[str]


class ServiceImportStatus(TypedDict, total=False):
    clusters: list[ClusterStatus]
    conditions: list[Condition]


class ServiceImport(TypedDict, total=False):
    apiVersion: str
    kind: str
    metadata: ObjectMeta
    spec: ServiceImportSpec
    status: ServiceImportStatus


class ClusterSetMember(TypedDict, total=False):
    cluster: str  # the member's cluster ID ("" when it has none)
    name: str  # the member's connection name (kubeconfig context) in this instance's configuration
    state: str  # Joined | Syncing | Unreachable | NotMember | MissingID | DuplicateID
    lastSyncTime: str
    exports: int
    message: str


class ClusterSetStatus(TypedDict, total=False):
    localCluster: str
    members: list[ClusterSetMember]
    conditions: list[Condition]


class ClusterSet(TypedDict, total=False):
    apiVersion: str
    kind: str
    metadata: ObjectMeta
    status: ClusterSetStatus
