"""The webhooks' window on the world (``webhooks.facts.AdmissionFacts``), answered from the live caches.

Every answer is a dict lookup in the member caches or the view engine: admission stays within its
few-millisecond budget and never calls a cluster.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from mcs_apiserver.contract import ServiceRecord
from mcs_apiserver.kube.types import ClusterProperty, ServiceExport
from mcs_apiserver.members.member import CLUSTER_PROPERTIES, NAMESPACES, SERVICES, MemberCache
from mcs_apiserver.views.clusterset import cluster_id_of, clusterset_of
from mcs_apiserver.views.engine import ViewEngine
from mcs_apiserver.views.imports import export_conflicts, make_contribution
from webhooks.facts import MemberIdentity, NotSynced


class LiveFacts:
    def __init__(self, members: Mapping[str, MemberCache], local: str, engine: ViewEngine) -> None:
        self.members = members
        self.local = local
        self.engine = engine

    @property
    def _local(self) -> MemberCache:
        return self.members[self.local]

    def cluster_properties(self) -> Mapping[str, ClusterProperty]:
        if not self._local.resource_synced(CLUSTER_PROPERTIES):
            raise NotSynced("this cluster's ClusterProperties have not been listed yet")
        return self._local.cluster_properties

    def kube_system_uid(self) -> str:
        if not self._local.resource_synced(NAMESPACES):
            raise NotSynced("this cluster's namespaces have not been listed yet")
        namespace = self._local.namespaces.get("kube-system")
        uid = (namespace or {}).get("metadata", {}).get("uid")
        if not uid:
            raise NotSynced("the kube-system namespace is not known yet")
        return uid

    def other_members(self) -> Sequence[MemberIdentity]:
        identities = []
        for name, member in self.members.items():
            if name == self.local or member.status.expired:
                continue
            synced = member.resource_synced(CLUSTER_PROPERTIES)
            props = member.cluster_properties
            identities.append(MemberIdentity(name, cluster_id_of(props) or "", clusterset_of(props) or "", synced))
        return identities

    def local_service(self, namespace: str, name: str) -> ServiceRecord | None:
        if not self._local.resource_synced(SERVICES):
            raise NotSynced("this cluster's Services have not been listed yet")
        return self._local.services.get((namespace, name))

    def export_conflicts(self, namespace: str, name: str, export: ServiceExport,
                         service: ServiceRecord) -> Sequence[tuple[str, str]]:
        membership = self.engine.membership
        if membership is None or membership.clusterset is None:
            raise NotSynced("the ClusterSet view has not been computed yet")
        cluster = membership.local_cluster
        if not cluster:
            return []
        candidate = make_contribution(cluster, self.local, export, service, self._local.ready_endpoints((namespace, name)))
        others = self.engine.contributions(self.members, (namespace, name))
        return [(c.reason, c.message) for c in export_conflicts(candidate, others)]
