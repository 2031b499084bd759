"""The contract between the member caches (``mcs_apiserver.members``) and the view engine.

Data flows one way: members -> snapshots -> pure views -> HTTP. The member layer owns the caches and
the I/O; the view engine only ever reads them through the read-only ``MemberView`` protocol below,
so every function in ``mcs_apiserver.views`` can be unit tested with plain data. It sits below both
(and below the API, DNS and webhooks, which share its well-known names), so neither imports the other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Mapping, NamedTuple, Protocol, Sequence

from mcs_apiserver.kube.types import ClusterProperty, Namespace, Service, ServiceExport

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
    and tells the engine which keys changed. Objects inside are raw Kubernetes JSON and must never
    be mutated by readers.
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
    def exports(self) -> Mapping[Key, ServiceExport]: ...

    @property
    def services(self) -> Mapping[Key, Service]: ...

    def ready_endpoints(self, key: Key) -> int:
        """Number of ready endpoint addresses over the EndpointSlices of Service ``key``."""

    def ready_endpoint_slices(self, key: Key) -> Sequence[ReadyEndpoints]:
        """The ready endpoints of Service ``key``, one entry per EndpointSlice (IPv4/IPv6 slices only).

        Kept only while the member exports ``key`` (DNS needs them for exported Services alone);
        empty otherwise.
        """
