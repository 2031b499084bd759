"""Plain-data members and object builders, for tests (ours and other layers') and dry runs.

``InMemoryMember`` implements the ``MemberView`` protocol with ordinary dicts, so the view engine can
be exercised without a cluster (exports and Services stored in it as JSON become the records the
member caches keep, as they would there). The builders make the minimal Kubernetes JSON the views
read, with the defaults kube-apiserver would fill in (e.g. ``sessionAffinity: None``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, Iterable, Mapping, TypeVar

from mcs_apiserver.kube.types import ClusterProperty, Namespace, Service, ServiceExport
from mcs_apiserver.contract import (
    CLUSTER_ID_PROPERTY,
    CLUSTERSET_PROPERTY,
    EXPORTED_AT_ANNOTATION,
    Endpoint,
    ExportRecord,
    Key,
    MemberStatus,
    ReadyEndpoints,
    ServiceRecord,
    SlicePort,
    export_record,
    service_record,
)

JOINED = MemberStatus(connected=True, synced=True, last_sync="2026-01-01T00:00:00Z")

R = TypeVar("R", ExportRecord, ServiceRecord)


class Records(dict[Key, R], Generic[R]):
    """A dict of records that turns the JSON stored in it (``m.services[key] = service(...)``) into
    its record, as the member caches do on the way in."""

    def __init__(self, record: Callable[[Mapping[str, Any]], R]) -> None:
        super().__init__()
        self._record = record

    def __setitem__(self, key: Key, value: R | Mapping[str, Any]) -> None:
        super().__setitem__(key, value if isinstance(value, tuple) else self._record(value))


@dataclass
class InMemoryMember:
    """A member cluster held in plain dicts (implements ``MemberView``)."""

    name: str
    status: MemberStatus = JOINED
    cluster_properties: dict[str, ClusterProperty] = field(default_factory=dict)
    namespaces: dict[str, Namespace] = field(default_factory=dict)
    exports: Records[ExportRecord] = field(default_factory=lambda: Records(export_record))
    services: Records[ServiceRecord] = field(default_factory=lambda: Records(service_record))
    endpoints: dict[Key, int] = field(default_factory=dict)
    slices: dict[Key, tuple[ReadyEndpoints, ...]] = field(default_factory=dict)

    def ready_endpoints(self, key: Key) -> int:
        return self.endpoints.get(key, 0)

    def ready_endpoint_slices(self, key: Key) -> tuple[ReadyEndpoints, ...]:
        return self.slices.get(key, ()) if key in self.exports else ()

    # -- conveniences for tests --

    def set_property(self, name: str, value: str, created: str = "2026-01-01T00:00:00Z") -> None:
        self.cluster_properties[name] = cluster_property(name, value, created)

    def add_namespace(self, *names: str) -> None:
        for name in names:
            self.namespaces[name] = namespace(name)

    def export(
        self,
        key: Key,
        service: Service | None,
        exported_at: str | None = None,
        created: str = "2026-01-01T00:00:00Z",
        ready: int = 0,
        labels: dict[str, str] | None = None,
        annotations: dict[str, str] | None = None,
        slices: tuple[ReadyEndpoints, ...] = (),
    ) -> None:
        """Export ``key`` (with ``service`` as its Service, None = no Service) and add its namespace.

        ``slices``: its ready endpoints; they set ``ready`` to their address count when given."""
        self.namespaces.setdefault(key[0], namespace(key[0]))
        self.exports[key] = service_export(key, exported_at, created, labels, annotations)
        if service is None:
            self.services.pop(key, None)
        else:
            self.services[key] = service
        self.slices[key] = slices
        if slices:
            ready = sum(len(e.addresses) for s in slices for e in s.endpoints)
        self.endpoints[key] = ready

    def unexport(self, key: Key) -> None:
        self.exports.pop(key, None)
        self.services.pop(key, None)
        self.endpoints.pop(key, None)
        self.slices.pop(key, None)


def member(
    name: str,
    cluster_id: str | None = None,
    clusterset: str | None = "set-1",
    status: MemberStatus = JOINED,
    namespaces: Iterable[str] = ("default",),
) -> InMemoryMember:
    """A member with ID ``cluster_id`` (default: its name) in ``clusterset`` (None: in none)."""
    m = InMemoryMember(name=name, status=status)
    m.set_property(CLUSTER_ID_PROPERTY, cluster_id if cluster_id is not None else name)
    if clusterset is not None:
        m.set_property(CLUSTERSET_PROPERTY, clusterset)
    m.add_namespace(*namespaces)
    return m


def cluster_property(name: str, value: str, created: str = "2026-01-01T00:00:00Z") -> ClusterProperty:
    return {
        "apiVersion": "about.k8s.io/v1beta1",
        "kind": "ClusterProperty",
        "metadata": {"name": name, "creationTimestamp": created},
        "spec": {"value": value},
    }


def namespace(name: str) -> Namespace:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}, "status": {"phase": "Active"}}


def service_export(
    key: Key,
    exported_at: str | None = None,
    created: str = "2026-01-01T00:00:00Z",
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
) -> ServiceExport:
    metadata: dict[str, Any] = {"namespace": key[0], "name": key[1], "creationTimestamp": created}
    if exported_at is not None:
        metadata["annotations"] = {EXPORTED_AT_ANNOTATION: exported_at}
    export: dict[str, Any] = {
        "apiVersion": "multicluster.x-k8s.io/v1beta1",
        "kind": "ServiceExport",
        "metadata": metadata,
    }
    spec: dict[str, Any] = {}
    if labels:
        spec["exportedLabels"] = labels
    if annotations:
        spec["exportedAnnotations"] = annotations
    if spec:
        export["spec"] = spec
    return export  # type: ignore[return-value]


def port(number: int, name: str = "", protocol: str = "TCP", app_protocol: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"port": number, "protocol": protocol, "targetPort": number}
    if name:
        out["name"] = name
    if app_protocol:
        out["appProtocol"] = app_protocol
    return out


def service(
    key: Key,
    ports: Iterable[dict[str, Any]] = (),
    type_: str = "ClusterIP",
    headless: bool = False,
    families: Iterable[str] = ("IPv4",),
    **spec_fields: Any,
) -> Service:
    """A Service as kube-apiserver returns it (defaults filled in); ``spec_fields`` override."""
    families = list(families)
    spec: dict[str, Any] = {
        "type": type_,
        "ports": [dict(p) for p in ports],
        "sessionAffinity": "None",
        "ipFamilies": families,
        "ipFamilyPolicy": "SingleStack" if len(families) == 1 else "PreferDualStack",
        "internalTrafficPolicy": "Cluster",
    }
    if type_ == "ExternalName":
        spec = {"type": type_, "externalName": "example.com", "sessionAffinity": "None"}
    elif headless:
        spec["clusterIP"] = "None"
        spec["clusterIPs"] = ["None"]
    else:
        spec["clusterIP"] = "10.96.0.10"
        spec["clusterIPs"] = ["10.96.0.10"]
    spec.update(spec_fields)
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"namespace": key[0], "name": key[1], "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": spec,  # type: ignore[typeddict-item]
    }


def ready_slice(
    *endpoints: tuple[str, str | None, str | None] | str,
    family: str = "IPv4",
    ports: Iterable[tuple[str, str, int]] = (("http", "TCP", 8080),),
) -> ReadyEndpoints:
    """One EndpointSlice's ready endpoints: each an address, or (address, hostname, pod name)."""
    built = []
    for endpoint in endpoints:
        address, hostname, pod = (endpoint, None, None) if isinstance(endpoint, str) else endpoint
        built.append(Endpoint((address,), hostname, pod))
    return ReadyEndpoints(family, tuple(SlicePort(*p) for p in ports), tuple(built))  # type: ignore[arg-type]
