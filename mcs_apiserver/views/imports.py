"""ServiceImport derivation for one (namespace, name): KEP-1645's merge and conflict rules.

Input: the *contributions* of the eligible members for that key (a ServiceExport, the Service of the
same name in the same cluster, and its ready endpoint count). Output: a ``DerivedImport`` (everything
except the ClusterSetIP addresses, which depend on every other import, see ``ipalloc``), turned into
the served object by ``render_service_import`` (its conditions by ``import_conditions``).

The rules, and why:

* A cluster contributes only where its ServiceExport *and* a Service of the same name exist; a
  missing Service (``NoService``) or an ``ExternalName`` Service (``InvalidServiceType``) makes that
  export invalid and it is left out entirely, as if it were not exported.
* ``clusterIP: None`` gives ``Headless``, anything else (ClusterIP, NodePort, LoadBalancer)
  ``ClusterSetIP``.
* The contributions are ordered by *export age*: the ``exported-at`` annotation stamped by our
  mutating webhook (microseconds), else ``metadata.creationTimestamp`` (seconds); the cluster ID
  breaks ties. The oldest export is the *winner*: it decides every whole-service property, so a newer,
  conflicting export never changes the traffic of an existing import (KEP: raising a conflict must
  not change traffic).
* Ports are a union, merged by name first, then by (protocol, port); the result has unique names
  (the empty name included) and unique (protocol, port) pairs, and a port that would break that is
  dropped with ``PortConflict``: the older export's definition stays. Port sets that merge cleanly
  but differ also raise ``PortConflict`` (mcs-api: "the ports are not identical in all the
  constituent Services"), on every contributing export, while the import keeps the union: a client
  of a port that only some clusters serve must be told that only those can answer.
* ``ipFamilies`` conflict (``IPFamilyConflict``) when a cluster lacks a family the import serves,
  i.e. when an address of the import could reach only a subset of the backends (the KEP's wording);
  a cluster that has *more* families than the winner, or the same in another order, can be reached.

``Ready`` on the ServiceImport means a consumer can reach a backend through it: at least one ready
endpoint in some contributing cluster and, for ClusterSetIP, an address in every served family (an
address without endpoints would resolve and then drop traffic, so it is ``Pending``). No configured
range for any of the import's families gives ``IPFamilyNotSupported``; a dual-stack import with a
range for only one family is served single-stack.

The conflict detection is a single function (``derive_import``) used by both the views and the
admission webhook (``export_conflicts``), so the two can never disagree.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from operator import attrgetter
from typing import Any, Iterable, Mapping, NamedTuple, Sequence, cast

from mcs_apiserver.kube.types import (
    ClusterStatus,
    Condition,
    PortProtocol,
    ServiceImport,
    ServiceImportPort,
)
from mcs_apiserver.kube.shared import SharedCopies
from mcs_apiserver.kube.times import parse_time
from mcs_apiserver.views.clusterset import stable_uid
from mcs_apiserver.views.conditions import condition, stamp_transitions
from mcs_apiserver.contract import API_VERSION, ExportRecord, Key, ServiceRecord, export_record, service_record

CLUSTERSET_IP = "ClusterSetIP"
HEADLESS = "Headless"
IPV4 = "IPv4"
IPV6 = "IPv6"

# Conflict reasons (mcs-api ServiceExport ``Conflict`` condition), in the order they are listed.
TYPE_CONFLICT = "TypeConflict"
PORT_CONFLICT = "PortConflict"
SESSION_AFFINITY_CONFLICT = "SessionAffinityConflict"
SESSION_AFFINITY_CONFIG_CONFLICT = "SessionAffinityConfigConflict"
INTERNAL_TRAFFIC_POLICY_CONFLICT = "InternalTrafficPolicyConflict"
TRAFFIC_DISTRIBUTION_CONFLICT = "TrafficDistributionConflict"
IP_FAMILY_CONFLICT = "IPFamilyConflict"
LABELS_CONFLICT = "LabelsConflict"
ANNOTATIONS_CONFLICT = "AnnotationsConflict"
CONFLICT_REASONS = (
    TYPE_CONFLICT,
    PORT_CONFLICT,
    SESSION_AFFINITY_CONFLICT,
    SESSION_AFFINITY_CONFIG_CONFLICT,
    INTERNAL_TRAFFIC_POLICY_CONFLICT,
    TRAFFIC_DISTRIBUTION_CONFLICT,
    IP_FAMILY_CONFLICT,
    LABELS_CONFLICT,
    ANNOTATIONS_CONFLICT,
)
_REASON_RANK = {reason: rank for rank, reason in enumerate(CONFLICT_REASONS)}

# Validity reasons (ServiceExport ``Valid`` condition).
VALID = "Valid"
NO_SERVICE = "NoService"
INVALID_SERVICE_TYPE = "InvalidServiceType"

# ServiceImport ``Ready`` reasons.
READY = "Ready"
PENDING = "Pending"
IP_FAMILY_NOT_SUPPORTED = "IPFamilyNotSupported"
NO_CONFLICTS = "NoConflicts"

_UTC = timezone.utc
#: The fragments that imports repeat (ports, families, labels, conditions): one copy each, read-only.
_SHARED = SharedCopies()
_NO_LABELS: dict[str, str] = {}  # shared by every import without labels (or annotations): read-only
_NO_CONFLICTS: list[Conflict] = []  # shared by every import without conflicts: read-only
#: The age of an export whose timestamps cannot be read: younger than any real export.
_NEVER = datetime.max.replace(tzinfo=_UTC)


# --- export age --------------------------------------------------------------------------------


class Age(NamedTuple):
    """Sort key of an export: older first, cluster ID breaks ties. Compares as a tuple."""

    time: datetime
    cluster: str


def export_age(export: ExportRecord, cluster: str) -> tuple[Age, str]:
    """The export's age and the timestamp text it came from.

    ``exported-at`` (microseconds, stamped by our webhook) when present and readable, else
    ``creationTimestamp``; an export with neither sorts after every other ("" as text).
    """
    text = export.exported_at
    moment = parse_time(text)
    if moment is not None:
        return Age(moment, cluster), text  # type: ignore[return-value]
    text = export.creation_timestamp or ""
    moment = parse_time(text)
    if moment is None:
        return Age(_NEVER, cluster), text
    return Age(moment, cluster), text


# --- contributions -----------------------------------------------------------------------------


@dataclass(slots=True)
class Contribution:
    """What one cluster offers for one key. The records are shared, never mutated."""

    cluster: str  #: cluster ID
    member: str  #: member (connection) name
    export: ExportRecord
    service: ServiceRecord | None
    ready_endpoints: int
    exported_at: str  #: the timestamp text the age was read from
    age: Age


def make_contribution(
    cluster: str,
    member: str,
    export: ExportRecord | Mapping[str, Any],
    service: ServiceRecord | Mapping[str, Any] | None,
    ready_endpoints: int = 0,
) -> Contribution:
    """Build a Contribution, reading the export's age once. The member caches hand over records;
    JSON (an export being admitted, the objects tests build) becomes one the same way."""
    if not isinstance(export, ExportRecord):
        export = export_record(export)
    if service is not None and not isinstance(service, ServiceRecord):
        service = service_record(service)
    age, text = export_age(export, cluster)
    return Contribution(cluster, member, export, service, ready_endpoints, text, age)


class Validity(NamedTuple):
    """An export's ``Valid`` condition: can it back an import at all?"""

    valid: bool
    reason: str  #: Valid | NoService | InvalidServiceType
    message: str


def export_validity(contribution: Contribution) -> Validity:
    """Whether an export can back its import (the ServiceExport ``Valid`` condition)."""
    service = contribution.service
    where = f"{contribution.export.namespace}/{contribution.export.name}"
    if service is None:
        return Validity(False, NO_SERVICE, f"Service {where} does not exist in cluster {contribution.cluster}")
    if service.type == "ExternalName":
        return Validity(
            False,
            INVALID_SERVICE_TYPE,
            f"Service {where} in cluster {contribution.cluster} is of type ExternalName, which cannot be exported",
        )
    return Validity(True, VALID, "the Service is exported")


# --- conflicts ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Conflict:
    """One disagreement between a cluster's export and the served import."""

    reason: str  #: e.g. PortConflict
    field: str  #: e.g. "ports", "type", "exportedLabels"
    cluster: str  #: the cluster whose value is not served
    winner: str  #: the cluster whose value is served
    message: str


def _why(winner: Contribution, loser: Contribution) -> str:
    """Why ``winner``'s value is served: the part of a conflict message a person needs most."""
    if winner.age.time == loser.age.time:
        return (
            f"{winner.cluster} wins because both exported at {winner.exported_at or 'an unknown time'} "
            f"and its cluster ID sorts first"
        )
    return f"{winner.cluster} wins because it exported first ({winner.exported_at})"


def _show(value: Any) -> str:
    if value is None:
        return "unset"
    if isinstance(value, str):
        return value
    if isinstance(value, tuple):
        return "[" + ", ".join(value) + "]"
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


# --- per-service properties --------------------------------------------------------------------


def _families(service: ServiceRecord) -> tuple[str, ...] | None:
    """The Service's IP families; inferred from its cluster IPs if absent; None if unknown."""
    families = service.ip_families
    if families:
        return tuple(families)
    ips = [ip for ip in service.addresses if ip and ip != "None"]
    if ips:
        return tuple(IPV6 if ":" in ip else IPV4 for ip in ips)
    return None


#: (field, reason, normaliser of (Service, export)) of the simple whole-service properties.
#: The normalisers map the API server's defaults and absent fields to one value, so that an unset
#: field and its default never conflict.
_WHOLE_SERVICE = (
    ("type", TYPE_CONFLICT, lambda s, e: HEADLESS if s.cluster_ip == "None" else CLUSTERSET_IP),
    ("sessionAffinity", SESSION_AFFINITY_CONFLICT, lambda s, e: s.session_affinity or "None"),
    (
        "sessionAffinityConfig",
        SESSION_AFFINITY_CONFIG_CONFLICT,
        lambda s, e: s.session_affinity_config or None,
    ),
    (
        "internalTrafficPolicy",
        INTERNAL_TRAFFIC_POLICY_CONFLICT,
        lambda s, e: s.internal_traffic_policy or "Cluster",
    ),
    ("trafficDistribution", TRAFFIC_DISTRIBUTION_CONFLICT, lambda s, e: s.traffic_distribution or None),
    ("exportedLabels", LABELS_CONFLICT, lambda s, e: e.exported_labels or {}),
    ("exportedAnnotations", ANNOTATIONS_CONFLICT, lambda s, e: e.exported_annotations or {}),
)

_Port = tuple[str, str, int, "str | None"]  # name, protocol, port, appProtocol


def _port_text(port: _Port) -> str:
    return f"{port[2]}/{port[1]}"


def _name_text(name: str) -> str:
    return f"named {name}" if name else "unnamed"


def _merge_ports(valid: Sequence[Contribution], conflicts: list[Conflict]) -> list[ServiceImportPort]:
    """Union of the ports, oldest export first; appends a Conflict per port that cannot merge."""
    by_name: dict[str, tuple[_Port, Contribution]] = {}
    by_pair: dict[tuple[str, int], tuple[_Port, Contribution]] = {}
    merged: list[ServiceImportPort] = []
    for contribution in valid:
        for raw in contribution.service.ports or ():  # type: ignore[union-attr]
            number = raw.get("port")
            if not isinstance(number, int):
                continue
            name = raw.get("name") or ""
            protocol = raw.get("protocol") or "TCP"
            app = raw.get("appProtocol") or None
            port: _Port = (name, protocol, number, app)
            hit = by_name.get(name)
            if hit is not None:
                existing, owner = hit
                if existing == port or owner is contribution:
                    continue  # same port, or a malformed Service repeating a name
                label = f"port {name}" if name else "the unnamed port"
                if existing[1:3] != port[1:3]:
                    detail = (
                        f"{label} is {_port_text(existing)} in {owner.cluster} "
                        f"but {_port_text(port)} in {contribution.cluster}"
                    )
                else:
                    detail = (
                        f"{label} ({_port_text(port)}) has appProtocol {_show(existing[3])} in "
                        f"{owner.cluster} but {_show(port[3])} in {contribution.cluster}"
                    )
                conflicts.append(_port_conflict(owner, contribution, detail))
                continue
            pair = (protocol, number)
            hit = by_pair.get(pair)
            if hit is not None:
                existing, owner = hit
                if owner is contribution:
                    continue
                detail = (
                    f"port {_port_text(port)} is {_name_text(existing[0])} in {owner.cluster} "
                    f"but {_name_text(name)} in {contribution.cluster}"
                )
                conflicts.append(_port_conflict(owner, contribution, detail))
                continue
            by_name[name] = by_pair[pair] = (port, contribution)
            wire_protocol = cast(PortProtocol, protocol)  # kube-apiserver admits only TCP, UDP and SCTP
            out: ServiceImportPort = {"name": name, "protocol": wire_protocol} if name else {"protocol": wire_protocol}
            if app:
                out["appProtocol"] = app
            out["port"] = number
            merged.append(out)
    return merged


def _port_set(contribution: Contribution) -> frozenset[_Port]:
    ports = contribution.service.ports or ()  # type: ignore[union-attr]
    return frozenset(
        (p.get("name") or "", p.get("protocol") or "TCP", p["port"], p.get("appProtocol") or None)
        for p in ports
        if isinstance(p.get("port"), int)
    )


def _port_set_conflicts(valid: Sequence[Contribution], conflicts: list[Conflict]) -> None:
    """Append a PortConflict for each younger export whose port set differs from the oldest's.

    Skipped for a cluster that already has a PortConflict from the merge (one reason per cluster is
    enough: the message of the merge conflict is the more precise one).
    """
    winner = valid[0]
    expected = _port_set(winner)
    already = {c.cluster for c in conflicts if c.reason == PORT_CONFLICT}
    for other in valid[1:]:
        if other.cluster in already:
            continue
        ports = _port_set(other)
        if ports == expected:
            continue
        only_winner = ", ".join(sorted(_port_text(p) for p in expected - ports)) or "none"
        only_other = ", ".join(sorted(_port_text(p) for p in ports - expected)) or "none"
        conflicts.append(
            Conflict(
                PORT_CONFLICT,
                "ports",
                other.cluster,
                winner.cluster,
                f"ports: the port sets differ (only in {winner.cluster}: {only_winner}; only in "
                f"{other.cluster}: {only_other}); the import serves the union, so a port is answered "
                "only by the clusters that expose it",
            )
        )


def _port_conflict(owner: Contribution, loser: Contribution, detail: str) -> Conflict:
    return Conflict(
        PORT_CONFLICT, "ports", loser.cluster, owner.cluster, f"ports: {detail}; {_why(owner, loser)}"
    )


# --- derivation --------------------------------------------------------------------------------


class ClusterEntry(NamedTuple):
    """One exporting cluster of an import: an item of its ``status.clusters`` (``ClusterStatus``),
    kept as a tuple and made into the JSON object when the import is rendered."""

    cluster: str
    exported_at: str
    ready_endpoints: int
    conflicts: list[str] | None  #: the reasons of its conflicts, in reason order (None: none)

    def status(self) -> ClusterStatus:
        entry: ClusterStatus = {"cluster": self.cluster, "exportedAt": self.exported_at,
                                "readyEndpoints": self.ready_endpoints}
        if self.conflicts:
            entry["conflicts"] = self.conflicts
        return entry


@dataclass(slots=True)
class DerivedImport:
    """A ServiceImport before ClusterSetIP addresses and condition times are known.

    Its ports, spec extras, labels and annotations (and an empty ``conflicts``) are copies shared
    with every other import that has equal ones (``kube/shared.py``): never mutate them."""

    key: Key
    type: str  #: ClusterSetIP | Headless
    families: tuple[str, ...]  #: the winner's IP families, in its order
    ports: list[ServiceImportPort]
    spec_extras: dict[str, Any]  #: the winner's sessionAffinity etc., only those it sets
    labels: dict[str, str]
    annotations: dict[str, str]
    creation_timestamp: str | None
    age: Age  #: the winner's: the import's age, used to settle ClusterSetIP collisions
    winner: str  #: cluster ID of the oldest export
    clusters: tuple[ClusterEntry, ...]  #: sorted by cluster ID
    conflicts: list[Conflict] = field(default_factory=list)
    ready_endpoints: int = 0
    ready_clusters: int = 0


def derive_import(key: Key, contributions: Iterable[Contribution]) -> DerivedImport | None:
    """Merge the contributions for ``key`` by the KEP's rules; None if no valid export remains.

    Contributions must come from eligible members only, at most one per cluster. Pure.
    """
    valid = [c for c in contributions if c.service is not None and c.service.type != "ExternalName"]
    if not valid:
        return None
    conflicts: list[Conflict] = []
    if len(valid) > 1:
        valid.sort(key=_AGE)
    winner = valid[0]
    wservice: ServiceRecord = winner.service  # type: ignore[assignment]
    ports = _merge_ports(valid, conflicts)
    if len(valid) > 1:
        _port_set_conflicts(valid, conflicts)
    families = _SHARED.of(_families(wservice) or (IPV4,))

    if len(valid) > 1:
        _whole_service_conflicts(valid, conflicts)
        conflicts.sort(key=_conflict_order)
        ordered = sorted(valid, key=_CLUSTER)
    else:
        ordered = valid

    by_cluster: dict[str, list[str]] = {}
    for conflict in conflicts:
        reasons = by_cluster.setdefault(conflict.cluster, [])
        if conflict.reason not in reasons:
            reasons.append(conflict.reason)  # already in reason order: conflicts are sorted
    clusters: list[ClusterEntry] = []
    ready_endpoints = ready_clusters = 0
    for contribution in ordered:
        clusters.append(ClusterEntry(contribution.cluster, contribution.exported_at, contribution.ready_endpoints,
                                     by_cluster.get(contribution.cluster) if conflicts else None))
        if contribution.ready_endpoints > 0:
            ready_endpoints += contribution.ready_endpoints
            ready_clusters += 1

    extras: dict[str, Any] = {}
    for name, field_name in _SPEC_EXTRAS:
        value = getattr(wservice, field_name)
        if value:
            extras[name] = value
    labels = winner.export.exported_labels
    annotations = winner.export.exported_annotations
    return DerivedImport(
        key,
        HEADLESS if wservice.cluster_ip == "None" else CLUSTERSET_IP,
        families,
        _SHARED.of(ports),
        _SHARED.of(extras),
        labels or _NO_LABELS,  # type: ignore[arg-type] # shared by the records already
        annotations or _NO_LABELS,  # type: ignore[arg-type]
        winner.export.creation_timestamp,
        winner.age,
        winner.cluster,
        tuple(clusters),
        conflicts or _NO_CONFLICTS,
        ready_endpoints,
        ready_clusters,
    )


_AGE = attrgetter("age")
_CLUSTER = attrgetter("cluster")
#: (spec field, ServiceRecord field) of what the winner's Service sets on the import
_SPEC_EXTRAS = (("sessionAffinity", "session_affinity"), ("sessionAffinityConfig", "session_affinity_config"),
                ("internalTrafficPolicy", "internal_traffic_policy"), ("trafficDistribution", "traffic_distribution"))


def _conflict_order(conflict: Conflict) -> tuple[int, str]:
    return (_REASON_RANK[conflict.reason], conflict.cluster)


def _whole_service_conflicts(valid: Sequence[Contribution], conflicts: list[Conflict]) -> None:
    """Append a Conflict for every whole-service property where a younger export differs from the winner."""
    winner = valid[0]
    winner_values = [(f, r, norm, norm(winner.service, winner.export)) for f, r, norm in _WHOLE_SERVICE]
    winner_families = _families(winner.service)  # type: ignore[arg-type]
    for other in valid[1:]:
        service: ServiceRecord = other.service  # type: ignore[assignment]
        affinity_differs = False
        for field_name, reason, norm, expected in winner_values:
            if affinity_differs and field_name == "sessionAffinityConfig":
                continue  # moot when the affinity itself differs: one conflict, not two
            value = norm(service, other.export)
            if value != expected:
                affinity_differs = affinity_differs or field_name == "sessionAffinity"
                conflicts.append(
                    Conflict(
                        reason,
                        field_name,
                        other.cluster,
                        winner.cluster,
                        f"{field_name}: {_show(expected)} in {winner.cluster} but {_show(value)} in "
                        f"{other.cluster}; {_why(winner, other)}",
                    )
                )
        families = _families(service)
        if winner_families and families is not None:
            missing = [f for f in winner_families if f not in families]
            if missing:
                conflicts.append(
                    Conflict(
                        IP_FAMILY_CONFLICT,
                        "ipFamilies",
                        other.cluster,
                        winner.cluster,
                        f"ipFamilies: {_show(winner_families)} in {winner.cluster} but "
                        f"{_show(families)} in {other.cluster}, so its {', '.join(missing)} "
                        f"address cannot reach {other.cluster}; {_why(winner, other)}",
                    )
                )


def export_conflicts(candidate: Contribution, others: Iterable[Contribution]) -> list[Conflict]:
    """The conflicts ``candidate`` would take part in next to the other clusters' contributions.

    For the admission webhook: ``candidate`` is the ServiceExport being admitted (with its Service,
    in cluster ``candidate.cluster``), ``others`` the eligible clusters' current contributions for the
    same key (the candidate's own cluster is ignored there). Returns the conflicts where the
    candidate either loses (its value is not served) or wins against another cluster; empty if the
    candidate is invalid (it would not contribute at all). Same code as the views.
    """
    pool = [c for c in others if c.cluster != candidate.cluster]
    pool.append(candidate)
    derived = derive_import((candidate.export.namespace, candidate.export.name), pool)
    if derived is None:
        return []
    return [c for c in derived.conflicts if candidate.cluster in (c.cluster, c.winner)]


# --- ServiceExport status ---------------------------------------------------------------------


def export_conditions(
    contribution: Contribution,
    derived: DerivedImport | None,
    previous: Iterable[Condition] | None,
    now: str,
) -> list[Condition]:
    """The ``Valid``, ``Ready`` and ``Conflict`` conditions of a ServiceExport (mcs-api reasons).

    For the status writer, so that ``kubectl describe serviceexport`` tells what the views did with
    it. ``derived`` is the import of the export's key (None if there is none). ``Ready`` is
    ``Unknown``/``Pending`` while the export's cluster does not count (not a joined member), as the
    export itself is fine. ``Conflict`` is set on every export of a conflicting import, the KEP's
    recommendation, with the same reasons and message as the import's. ``previous`` keeps the
    ``lastTransitionTime`` of unchanged conditions. Pure.
    """
    validity = export_validity(contribution)
    valid = condition("Valid", validity.valid, validity.reason, validity.message)
    counted = derived is not None and any(c.cluster == contribution.cluster for c in derived.clusters)
    if not validity.valid:
        ready = condition("Ready", False, "Failed", f"the export cannot be used: {validity.message}")
    elif not counted or derived is None:
        ready = condition(
            "Ready",
            None,
            PENDING,
            f"cluster {contribution.cluster} does not take part in the ClusterSet yet "
            "(see kubectl get clusterset)",
        )
    else:
        ready = condition(
            "Ready",
            True,
            READY,
            f"exported: part of the {derived.type} ServiceImport of {len(derived.clusters)} clusters",
        )
    if counted and derived is not None and derived.conflicts:
        conflict = _conflict_condition(derived)
    else:
        conflict = condition("Conflict", False, NO_CONFLICTS, "no conflict with the other exports")
    return stamp_transitions([valid, ready, conflict], previous, now)


def _conflict_condition(derived: DerivedImport) -> Condition:
    reasons = sorted({c.reason for c in derived.conflicts}, key=_REASON_RANK.__getitem__)
    return condition("Conflict", True, ",".join(reasons), "; ".join(c.message for c in derived.conflicts))


# --- the served object -------------------------------------------------------------------------


def import_uid(clusterset: str, namespace: str, name: str) -> str:
    """Stable UID of a ServiceImport: the same on every instance, across restarts."""
    return stable_uid(f"serviceimport/{clusterset}/{namespace}/{name}")


def import_conditions(
    derived: DerivedImport,
    addresses: Mapping[str, str | None],
    previous: list[Condition] | None,
    now: str,
) -> list[Condition]:
    """The ``Ready`` and ``Conflict`` conditions of the served ServiceImport. Pure.

    ``addresses`` maps each IP family that has a configured ClusterSetIP range to the import's
    address in it (None if that range is full); families absent from it have no range. Ignored for
    Headless imports. ``previous`` are the conditions served before: each keeps its
    ``lastTransitionTime`` where its status did not change, and the very list comes back when
    nothing changed (else one copy shared with every import that has equal conditions).

    ``Ready`` is True when consumers can reach a backend through the import: at least one ready
    endpoint in some cluster and, for ClusterSetIP, an address in every served family. A ClusterSetIP
    import with an address but no ready endpoint is ``Pending``: DNS would answer, traffic would go
    nowhere.
    """
    ready: Condition
    if derived.type == CLUSTERSET_IP:
        served = [f for f in derived.families if f in addresses]
        full = [f for f in served if addresses[f] is None]
        if not served:
            ready = condition(
                "Ready",
                False,
                IP_FAMILY_NOT_SUPPORTED,
                f"no ClusterSetIP range is configured for {', '.join(derived.families)}"
                + (f" (configured: {', '.join(sorted(addresses))})" if addresses else ""),
            )
        elif full:
            ready = condition(
                "Ready", False, PENDING, f"the {', '.join(full)} ClusterSetIP range has no free address"
            )
        else:
            ready = _endpoints_condition(derived)
    else:
        ready = _endpoints_condition(derived)
    if derived.conflicts:
        conflict = _conflict_condition(derived)
    else:
        count = len(derived.clusters)
        conflict = condition(
            "Conflict",
            False,
            NO_CONFLICTS,
            "the exporting cluster is the only one" if count == 1 else f"all {count} exporting clusters agree",
        )
    conditions = stamp_transitions([ready, conflict], previous, now)
    return previous if previous is not None and conditions == previous else _SHARED.of(conditions)


def render_service_import(
    derived: DerivedImport,
    clusterset: str,
    addresses: Mapping[str, str | None],
    conditions: list[Condition],
) -> ServiceImport:
    """The served ServiceImport, a fresh tree over shared read-only fragments. Pure and cheap (a few
    microseconds), so that nothing needs to keep it: the same inputs give an equal object.

    ``addresses`` and ``conditions`` as given to and returned by ``import_conditions``."""
    namespace, name = derived.key
    metadata: dict[str, Any] = {
        "name": name,
        "namespace": namespace,
        "uid": import_uid(clusterset, namespace, name),
    }
    if derived.creation_timestamp:
        metadata["creationTimestamp"] = derived.creation_timestamp
    if derived.labels:
        metadata["labels"] = derived.labels
    if derived.annotations:
        metadata["annotations"] = derived.annotations

    spec: dict[str, Any] = {"type": derived.type}
    if derived.type == CLUSTERSET_IP:
        served = [f for f in derived.families if f in addresses]
        present = [ip for ip in (addresses[f] for f in served) if ip is not None]
        if present:
            spec["ips"] = present
        spec["ipFamilies"] = _SHARED.of(served or list(derived.families))
    else:
        spec["ipFamilies"] = _SHARED.of(list(derived.families))
    spec["ports"] = derived.ports
    spec.update(derived.spec_extras)
    return {
        "apiVersion": API_VERSION,
        "kind": "ServiceImport",
        "metadata": metadata,  # type: ignore[typeddict-item]
        "spec": spec,  # type: ignore[typeddict-item]
        "status": {"clusters": [c.status() for c in derived.clusters], "conditions": conditions},
    }


def _endpoints_condition(derived: DerivedImport) -> Condition:
    total = len(derived.clusters)
    if derived.ready_endpoints == 0:
        return condition("Ready", False, PENDING, f"none of the {total} exporting clusters has a ready endpoint")
    return condition(
        "Ready",
        True,
        READY,
        f"{derived.ready_endpoints} ready endpoints in {derived.ready_clusters} of {total} exporting clusters",
    )
