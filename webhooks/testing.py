"""``StaticFacts``: a plain in-memory ``AdmissionFacts`` for tests and experiments.

Set the attributes to what the world should look like; set one to ``NOT_SYNCED`` to make the
matching method raise ``NotSynced``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, cast

from mcs_apiserver.contract import ServiceRecord, service_record
from mcs_apiserver.kube.types import ClusterProperty, Service, ServiceExport

from .facts import MemberIdentity, NotSynced

__all__ = ["NOT_SYNCED", "StaticFacts", "admission_review", "cluster_property"]

NOT_SYNCED: Final = object()

ConflictsFn = Callable[[str, str, ServiceExport, ServiceRecord], Sequence[tuple[str, str]]]


def cluster_property(name: str, value: str | None, *, version: str = "v1beta1") -> ClusterProperty:
    """A ClusterProperty object; ``value=None`` gives one without ``spec``."""
    obj: dict[str, Any] = {
        "apiVersion": f"about.k8s.io/{version}",
        "kind": "ClusterProperty",
        "metadata": {"name": name},
    }
    if value is not None:
        obj["spec"] = {"value": value}
    return obj  # type: ignore[return-value]


@dataclass
class StaticFacts:
    """``properties`` maps ClusterProperty names to values (or to whole objects); ``services`` keys to
    Services (JSON, or the records the member caches keep)."""

    properties: Mapping[str, Any] | object = field(default_factory=dict)
    uid: str | object = "721ab723-13bc-11e5-aec2-42010af0021e"
    members: Sequence[MemberIdentity] = ()
    services: Mapping[tuple[str, str], Service | ServiceRecord] | object = field(default_factory=dict)
    conflicts: ConflictsFn | Sequence[tuple[str, str]] | object = ()
    calls: list[tuple[str, tuple[Any, ...]]] = field(default_factory=list)

    def cluster_properties(self) -> Mapping[str, ClusterProperty]:
        self.calls.append(("cluster_properties", ()))
        if self.properties is NOT_SYNCED:
            raise NotSynced("the local cluster's ClusterProperties have not been listed yet")
        assert isinstance(self.properties, Mapping)
        return {
            name: cast(ClusterProperty, value) if isinstance(value, dict) else cluster_property(name, value)
            for name, value in self.properties.items()
        }

    def kube_system_uid(self) -> str:
        self.calls.append(("kube_system_uid", ()))
        if self.uid is NOT_SYNCED:
            raise NotSynced("the kube-system namespace has not been listed yet")
        assert isinstance(self.uid, str)
        return self.uid

    def other_members(self) -> Sequence[MemberIdentity]:
        self.calls.append(("other_members", ()))
        return list(self.members)

    def local_service(self, namespace: str, name: str) -> ServiceRecord | None:
        self.calls.append(("local_service", (namespace, name)))
        if self.services is NOT_SYNCED:
            raise NotSynced("the local Services have not been listed yet")
        assert isinstance(self.services, Mapping)
        found = self.services.get((namespace, name))
        return service_record(found) if isinstance(found, Mapping) else found

    def export_conflicts(
        self, namespace: str, name: str, export: ServiceExport, service: ServiceRecord
    ) -> Sequence[tuple[str, str]]:
        self.calls.append(("export_conflicts", (namespace, name, export, service)))
        if self.conflicts is NOT_SYNCED:
            raise NotSynced("the members' exports have not been listed yet")
        if callable(self.conflicts):
            return self.conflicts(namespace, name, export, service)
        return list(self.conflicts)  # type: ignore[call-overload]


def admission_review(
    operation: str,
    obj: Mapping[str, Any] | None,
    old: Mapping[str, Any] | None = None,
    *,
    group: str = "about.k8s.io",
    version: str = "v1beta1",
    kind: str = "ClusterProperty",
    resource: str = "clusterproperties",
    namespace: str = "",
    name: str | None = None,
    uid: str = "705ab4f5-6393-11e8-b7cc-42010a800002",
    dry_run: bool = False,
    sub_resource: str = "",
) -> dict[str, Any]:
    """An ``admission.k8s.io/v1`` AdmissionReview request as kube-apiserver sends it."""
    source = obj if obj is not None else old
    if name is None:
        name = ((source or {}).get("metadata") or {}).get("name", "")
    request: dict[str, Any] = {
        "uid": uid,
        "kind": {"group": group, "version": version, "kind": kind},
        "resource": {"group": group, "version": version, "resource": resource},
        "requestKind": {"group": group, "version": version, "kind": kind},
        "requestResource": {"group": group, "version": version, "resource": resource},
        "name": name,
        "operation": operation,
        "userInfo": {"username": "admin", "groups": ["system:masters", "system:authenticated"]},
        "object": obj,
        "oldObject": old,
        "dryRun": dry_run,
        "options": {"apiVersion": "meta.k8s.io/v1", "kind": f"{operation.title()}Options"},
    }
    if namespace:
        request["namespace"] = namespace
    if sub_resource:
        request["subResource"] = sub_resource
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request}
