"""What the admission decisions need to know about the world: the ``AdmissionFacts`` protocol.

The webhooks never talk to a cluster. Every decision is a pure function of the AdmissionReview and
of a facts object that answers a handful of questions from the view engine's in-memory caches
(``mcs_apiserver.views``). This module is that narrow interface; the lead wires the real view to it,
and the tests use ``webhooks.testing.StaticFacts``.

Every method is synchronous and must be cheap (a dict lookup, a cached value): they run on the
event loop inside an admission request whose budget is a few milliseconds.

Not synced yet
    A method that cannot answer because its cache has not been listed yet raises ``NotSynced``
    (with a short, human-readable reason). Each rule decides what is safe in that case and says so
    in its docstring; in short, a rule whose answer depends on the missing fact denies with a
    503 ``ServiceUnavailable`` ("retry in a few seconds"), unless the request cannot break an
    invariant, in which case it is allowed (with a warning when something was not checked).
    ``other_members()`` never raises: it reports per member whether its ClusterProperties are known.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple, Protocol, runtime_checkable

from mcs_apiserver.contract import ServiceRecord
from mcs_apiserver.kube.types import ClusterProperty, ServiceExport

__all__ = ["AdmissionFacts", "Conflict", "MemberIdentity", "NotSynced"]


class NotSynced(Exception):
    """A fact is not known yet because the cache behind it has not synced.

    ``str(exc)`` is shown to people inside a denial or warning, so keep it short and concrete
    ("the local cluster's ClusterProperties have not been listed yet").
    """


class MemberIdentity(NamedTuple):
    """Another member of this instance's configuration, as the view sees it.

    ``member``: the connection name (kubeconfig context), unique in this instance's configuration.
    ``cluster_id``: its effective cluster ID (``cluster.clusterset.k8s.io``, else ``id.k8s.io``),
    ``""`` when it has none. ``clusterset``: its ``clusterset.k8s.io`` value, ``""`` when it is in no
    ClusterSet. ``synced``: True once the view has listed that member's ClusterProperties at least
    once; the two values are then real (possibly last-known, for a member that is now unreachable).
    When False, ``cluster_id`` and ``clusterset`` mean nothing.
    """

    member: str
    cluster_id: str
    clusterset: str
    synced: bool = True


class Conflict(NamedTuple):
    """One export conflict: a standard ``Conflict`` condition reason (``PortConflict``,
    ``TypeConflict``, ...; the reasons of sigs.k8s.io/mcs-api) and a message that names the field, the winning
    cluster and why."""

    reason: str
    message: str


@runtime_checkable
class AdmissionFacts(Protocol):
    """Everything the ClusterProperty and ServiceExport rules read. All methods are sync and cheap."""

    def cluster_properties(self) -> Mapping[str, ClusterProperty]:
        """This (local) cluster's ClusterProperties by name, from the local member's cache.

        Raises ``NotSynced`` until the local cluster's ClusterProperties have been listed once.
        Objects must not be mutated.
        """
        ...

    def kube_system_uid(self) -> str:
        """``metadata.uid`` of this cluster's ``kube-system`` Namespace.

        Raises ``NotSynced`` while it is not known (namespaces not listed yet).
        """
        ...

    def other_members(self) -> Sequence[MemberIdentity]:
        """Every member of this instance's configuration except the local cluster.

        Never raises: a member whose ClusterProperties were never listed has ``synced=False``.
        A member that was listed once and is now unreachable keeps its last known values, for as
        long as the view still counts it (a member dropped after the grace period is left out, so
        that its stale ID does not block a join: KEP-2149 lets an ID be reused once its holder left).
        """
        ...

    def local_service(self, namespace: str, name: str) -> ServiceRecord | None:
        """What is read of this cluster's Service ``namespace/name``, or None when it does not exist.

        Raises ``NotSynced`` until the local Services have been listed once.
        """
        ...

    def export_conflicts(
        self, namespace: str, name: str, export: ServiceExport, service: ServiceRecord
    ) -> Sequence[tuple[str, str]]:
        """Conflicts that this cluster would have with the rest of the ClusterSet if it exported
        ``service`` through ``export`` (the export as it would be stored: the request's object, not
        the cached one). Empty when there is none. Items are ``(reason, message)`` (``Conflict``
        is a convenient NamedTuple for them).

        Called only when the local Service exists. Raises ``NotSynced`` while the view cannot tell
        (it should do so only until the first sync of the members it can reach, never forever
        because one member is dead: an unreachable member counts with its last known exports).
        """
        ...
