"""The contract between the member caches (``mcs_apiserver.members``) and the view engine.

Data flows one way: members -> snapshots -> pure views -> HTTP. The member layer owns the caches and
the I/O; the view engine only ever reads them through the read-only ``MemberView`` protocol below,
so every function in ``mcs_apiserver.views`` can be unit tested with plain data. It sits below both
(and below the API, DNS and webhooks, which share its well-known names), so neither imports the other.
"""

from __future__ import annotations

from dataclasses import dataclass
from sys import intern
from typing import Any, Literal, Mapping, NamedTuple, Protocol, Sequence

from mcs_apiserver.kube.shared import SharedCopies, interned
from mcs_apiserver.kube.types import ClusterProperty, Namespace

#: (namespace, name) of a ServiceExport / Service / ServiceImport.
Key = tuple[str, str]

#: Well-known ClusterProperty names (KEP-2149). ``id.k8s.io`` is the older name, read as an alias.
CLUSTER_ID_PROPERTY = "cluster.clusterset.k8s.io"
LEGACY_CLUSTER_ID_PROPERTY = "id.k8s.io"
CLUSTERSET_PROPERTY = "clusterset.k8s.io"

#: Stamped on ServiceExports by the mutating webhook on CREATE (RFC 3339 with microseconds).
EXPORTED_AT_ANNOTATION = "views.multicluster.x-k8s.io/exported-at"

GROUP = "views.multicluster.x-k8s.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"


IPFamily = Literal["IPv4", "IPv6"]


class SlicePort(NamedTuple):
    """One port of an EndpointSlice (what a pod listens on: headless SRV records use it, and the
    published MCS EndpointSlices copy it whole)."""

    name: str  #: "" when unnamed
    protocol: str
    port: int
    app_protocol: str | None = None  #: ``appProtocol``, e.g. ``kubernetes.io/h2c``


class Endpoint(NamedTuple):
    """One ready endpoint: its addresses, and the names DNS builds ``<hostname>.<clusterid>`` from."""

    addresses: tuple[str, ...]
    hostname: str | None  #: the endpoint's ``hostname`` (StatefulSet pods and headless Services set it)
    pod: str | None  #: ``targetRef.name`` when the target is a Pod


class ReadyEndpoints(NamedTuple):
    """The ready endpoints of one EndpointSlice, as compact tuples (an instance may hold many)."""

    family: IPFamily
    ports: tuple[SlicePort, ...]
    endpoints: tuple[Endpoint, ...]


#: What Services and exports repeat (port lists, IP families, affinity settings, exported labels):
#: one shared, read-only copy of each.
_SHARED = SharedCopies()


def _string_map(value: Any) -> bool:
    return isinstance(value, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in value.items())


class ServiceRecord(NamedTuple):
    """What the views and webhooks read of a Service: its ``spec`` fields, as kube-apiserver stored
    them (None where unset). One tuple instead of three dicts: the member caches hold one per
    Service of every member. Shared fragments (ports, families) are read-only."""

    type: str | None = None
    cluster_ip: str | None = None
    #: ``clusterIPs`` only when it is not just ``[cluster_ip]`` (see ``addresses``)
    cluster_ips: Sequence[str] | None = None
    ip_families: Sequence[str] | None = None
    ports: Sequence[Mapping[str, Any]] | None = None
    session_affinity: str | None = None
    session_affinity_config: Mapping[str, Any] | None = None
    internal_traffic_policy: str | None = None
    traffic_distribution: str | None = None

    @property
    def addresses(self) -> Sequence[str | None]:
        """``clusterIPs``, or ``[clusterIP]`` where that is all it holds (or it is unset)."""
        return self.cluster_ips or (self.cluster_ip,)


_SERVICE_FIELDS = (("type", True), ("clusterIP", False), ("clusterIPs", False), ("ipFamilies", True),
                   ("ports", True), ("sessionAffinity", True), ("sessionAffinityConfig", True),
                   ("internalTrafficPolicy", True), ("trafficDistribution", True))


def service_record(obj: Mapping[str, Any]) -> ServiceRecord:
    """The ``ServiceRecord`` of a Service's JSON. Low-cardinality strings are interned and repeated
    fragments shared; a Service's own addresses are not (an entry in the interpreter's table costs
    more than the string it would share)."""
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return ServiceRecord()
    values: list[Any] = []
    for name, shared in _SERVICE_FIELDS:
        value = spec.get(name)
        if value is not None and shared:
            if type(value) is str:
                value = intern(value)
            elif type(value) is list:
                value = _SHARED.of([{k: interned(v) for k, v in item.items()} if isinstance(item, dict)
                                    else interned(item) for item in value])
            else:
                value = _SHARED.of(value)
        values.append(value)
    record = ServiceRecord(*values)
    if isinstance(record.cluster_ips, list) and record.cluster_ips in ([], [record.cluster_ip]):
        record = record._replace(cluster_ips=None)  # the primary address alone: one string, no list
    return record


class ExportRecord(NamedTuple):
    """What the views, webhooks and status writer read of a ServiceExport, well formed: a part
    whose type is not its schema's (a CRD installed without one can hold ``spec: [{}]``) is left
    out, as if unset. ``resource_version``, ``uid`` and ``status`` are kept only for the exports of
    the instance's own cluster (its status writer's): for the others every status write would
    otherwise be a change."""

    namespace: str = ""
    name: str = ""
    creation_timestamp: str | None = None
    exported_at: str | None = None  #: the ``EXPORTED_AT_ANNOTATION``
    exported_labels: Mapping[str, str] | None = None
    exported_annotations: Mapping[str, str] | None = None
    resource_version: str | None = None
    uid: str | None = None
    status: Mapping[str, Any] | None = None


def export_record(obj: Mapping[str, Any], *, keep_status: bool = True) -> ExportRecord:
    """The ``ExportRecord`` of a ServiceExport's JSON (of any shape: what does not fit is dropped).
    Names, namespaces and creation times are interned: a Service and its export share their name and
    namespace, and thousands of exports a namespace and a creation second."""
    metadata = obj.get("metadata")
    if not isinstance(metadata, dict):
        metadata = {}
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        spec = {}

    def text(value: Any) -> str | None:
        return value if isinstance(value, str) else None

    annotations = metadata.get("annotations")
    stamp = text(annotations.get(EXPORTED_AT_ANNOTATION)) if _string_map(annotations) else None
    labels, extra = spec.get("exportedLabels"), spec.get("exportedAnnotations")
    status = obj.get("status") if keep_status else None
    return ExportRecord(
        interned(text(metadata.get("namespace")) or ""),
        interned(text(metadata.get("name")) or ""),
        interned(text(metadata.get("creationTimestamp"))),
        stamp,
        _SHARED.of(labels) if labels and _string_map(labels) else None,
        _SHARED.of(extra) if extra and _string_map(extra) else None,
        text(metadata.get("resourceVersion")) if keep_status else None,
        text(metadata.get("uid")) if keep_status else None,
        status if status and isinstance(status, dict) else None,
    )


@dataclass(frozen=True, slots=True)
class MemberStatus:
    """How the connection to one member is doing, as the member layer sees it.

    ``expired`` is set by the member layer once a member has been unreachable for longer than the
    grace period: from then on its exports no longer contribute to any ServiceImport.
    """

    connected: bool = False
    synced: bool = False
    last_sync: str | None = None  # RFC 3339, time of the last successful list or watch event
    message: str = ""
    expired: bool = False


class MemberView(Protocol):
    """Read-only view of one member cluster's caches.

    The mappings are live: the member layer mutates them between engine runs (never during one),
    and tells the engine which keys changed. Exports and Services are compact records of what is read
    (``ExportRecord``, ``ServiceRecord``), namespaces and ClusterProperties trimmed Kubernetes JSON;
    readers never mutate any of them.
    """

    @property
    def name(self) -> str:
        """The member's connection name (kubeconfig context), unique in this instance's config."""

    @property
    def status(self) -> MemberStatus: ...

    @property
    def cluster_properties(self) -> Mapping[str, ClusterProperty]:
        """ClusterProperties by name (cluster-scoped)."""

    @property
    def namespaces(self) -> Mapping[str, Namespace]: ...

    @property
    def exports(self) -> Mapping[Key, ExportRecord]: ...

    @property
    def services(self) -> Mapping[Key, ServiceRecord]: ...

    def ready_endpoints(self, key: Key) -> int:
        """Number of ready endpoint addresses over the EndpointSlices of Service ``key``."""

    def ready_endpoint_slices(self, key: Key) -> Sequence[ReadyEndpoints]:
        """The ready endpoints of Service ``key``, one entry per EndpointSlice (IPv4/IPv6 slices only).

        Kept only while the member exports ``key`` (DNS needs them for exported Services alone);
        empty otherwise.
        """
