"""From the view to the zone: a ``ViewUpdater`` listener that re-derives the DNS input of the keys
that changed, and nothing else.

The served ServiceImports (``ViewEngine.imports``) already apply every rule of the view: only
eligible members' valid exports, conflicts settled, namespace sameness (an import exists only where
its namespace exists locally). DNS reads exactly those; for headless imports, it adds the ready
endpoints that the contributing clusters' member caches keep for their exported Services.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from mcs_apiserver.dns.records import ClusterEndpoints, ServiceInput, ServicePort
from mcs_apiserver.dns.zone import Zone
from mcs_apiserver.kube.shared import SharedCopies
from mcs_apiserver.views.engine import ViewEngine
from mcs_apiserver.contract import Key, MemberView, ReadyEndpoints


#: Imports repeat their port lists: one copy of each (read-only, as the inputs are).
_SHARED = SharedCopies()


class DnsFeed:
    def __init__(self, zone: Zone, engine: ViewEngine, members: Mapping[str, MemberView]) -> None:
        self.zone = zone
        self.engine = engine
        self.members = members

    def __call__(self, keys: Iterable[Key], membership: bool) -> None:
        """After a view run: update the names of ``keys`` (of every key when membership changed:
        cluster IDs may have moved)."""
        if membership:
            keys = set(keys) | set(self.engine.imports) | set(self.zone.keys)
        by_cluster = self._members_by_cluster()
        changed = False
        for key in keys:
            changed |= self.zone.update(key, self.service_input(key, by_cluster))
        if changed:
            self.zone.commit()

    def _members_by_cluster(self) -> dict[str, str]:
        membership = self.engine.membership
        if membership is None:
            return {}
        return {cluster: name for name, cluster in membership.eligible.items()}

    def service_input(self, key: Key, by_cluster: Mapping[str, str]) -> ServiceInput | None:
        """What DNS needs of the served import of ``key``; None if none is served here."""
        served = self.engine.imports.get(key)
        if served is None:
            return None
        spec = served.get("spec") or {}
        ports = _SHARED.of(tuple(ServicePort(p.get("name") or "", p.get("protocol") or "TCP", p["port"])
                                 for p in spec.get("ports") or () if isinstance(p.get("port"), int)))
        if spec.get("type") != "Headless":
            return ServiceInput(key[0], key[1], "ClusterSetIP", tuple(spec.get("ips") or ()), ports)
        clusters = []
        for status in (served.get("status") or {}).get("clusters") or ():
            cluster = status["cluster"]
            member = self.members.get(by_cluster.get(cluster, ""))
            slices = tuple(sorted(member.ready_endpoint_slices(key), key=_slice_order)) if member is not None else ()
            clusters.append(ClusterEndpoints(cluster, slices))
        return ServiceInput(key[0], key[1], "Headless", (), ports, tuple(clusters))


def _slice_order(slice_: ReadyEndpoints) -> tuple[str, tuple[str, ...]]:
    """A stable order of a Service's slices (the caches keep them in a set), so that the same
    endpoints are the same input; never compares None with a string, as sorting the tuples would."""
    return slice_.family, slice_.endpoints[0].addresses if slice_.endpoints else ()
