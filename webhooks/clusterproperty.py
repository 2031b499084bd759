"""Admission rules for ClusterProperty (``about.k8s.io`` v1alpha1/v1beta1, cluster-scoped).

Pure functions of (request, facts). The upstream CRD (sigs.k8s.io/about-api) checks none of this:

``cluster.clusterset.k8s.io`` and its alias ``id.k8s.io`` (the cluster ID)
    * ``spec.value`` must be an RFC 1123 DNS **label**, not merely a subdomain as KEP-2149 allows:
      multicluster DNS consumers (CoreDNS multicluster, this project) address a cluster as one
      label in ``<hostname>.<clusterid>.<svc>.<ns>.svc.clusterset.local``. Checked when a value is
      set or changed, never on an update that keeps the value (an object from before the webhook
      must stay updatable, e.g. to remove a finalizer). 422 ``Invalid``.
    * While ``clusterset.k8s.io`` exists, the cluster's **effective** ID (``cluster.clusterset.k8s.io``
      if present, else ``id.k8s.io``) cannot change or disappear, and the two properties, when both
      exist, must agree. So deleting one of two agreeing properties is allowed; deleting the only
      one, changing its value, or creating a disagreeing alias is denied (403) with "delete
      clusterset.k8s.io first to leave the ClusterSet". Outside a ClusterSet the values may change;
      a disagreement between the two names is then only a warning.

``clusterset.k8s.io`` (membership)
    * CREATE needs a cluster ID ("create cluster.clusterset.k8s.io first"), one that is a DNS label
      and not contradicted by the other ID property, and that no OTHER member of that ClusterSet
      already uses (compared case-insensitively, as DNS does). Members whose ClusterProperties the
      view has never listed cannot be checked: the join is then refused with 503 and names them
      (retry when they have synced, or remove them from the member configuration). An ID collision
      would mark both clusters ``DuplicateID`` and drop them from every import, so refusing a join
      that cannot be checked is the safe side: joining is rare and can be retried.
    * The value is immutable (403); leaving = DELETE, always allowed.

Mutating: a ``cluster.clusterset.k8s.io`` created without a value (no ``spec``, ``spec: null``, no
``spec.value``, ``null`` or ``""``) gets the kube-system namespace UID, KEP-2149's recommendation.

Other ClusterProperties are allowed untouched. ``dryRun`` changes nothing: same answer.

Not synced (``facts.NotSynced``): a request whose answer depends on this cluster's ClusterProperties
(creating or deleting an ID property or changing its value, creating ``clusterset.k8s.io``) or on the
kube-system UID (defaulting) is denied with 503 ``ServiceUnavailable``: retryable, never a wrong
admission. Requests that keep the value, format errors, and deletions of ``clusterset.k8s.io`` need
no facts and are answered at once.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from mcs_apiserver.kube.names import DNS1123_LABEL_MAX_LENGTH, is_dns1123_label, is_dns1123_subdomain, suggest_dns1123_label
from mcs_apiserver.contract import CLUSTER_ID_PROPERTY, CLUSTERSET_PROPERTY, LEGACY_CLUSTER_ID_PROPERTY
from .facts import AdmissionFacts, NotSynced
from .review import AdmissionRequest, Decision, allow, deny, invalid, unavailable

__all__ = [
    "CLUSTER_ID_NAMES",
    "GROUP",
    "KIND",
    "VERSIONS",
    "cluster_id_problem",
    "effective_cluster_id",
    "mutate_cluster_property",
    "validate_cluster_property",
]

GROUP: Final = "about.k8s.io"
KIND: Final = "ClusterProperty"
VERSIONS: Final = frozenset({"v1alpha1", "v1beta1"})

#: Names that carry the cluster ID, in order of precedence.
CLUSTER_ID_NAMES: Final = (CLUSTER_ID_PROPERTY, LEGACY_CLUSTER_ID_PROPERTY)

_LEAVE_FIRST: Final = f"delete {CLUSTERSET_PROPERTY} first to leave the ClusterSet"
_RETRY: Final = "retry in a few seconds"

_Props = Mapping[str, Any]


# --- helpers ----------------------------------------------------------------------------------------------


def _value(obj: Any) -> Any:
    """``spec.value`` of a ClusterProperty-shaped dict, or None (absent, or not an object)."""
    if not isinstance(obj, dict):
        return None
    spec = obj.get("spec")
    return spec.get("value") if isinstance(spec, dict) else None


def _name(request: AdmissionRequest) -> str:
    for obj in (request.object, request.old_object):
        if obj is not None:
            metadata = obj.get("metadata") or {}
            name = metadata.get("name")
            if isinstance(name, str) and name:
                return name
    return request.name


def effective_cluster_id(properties: _Props) -> str:
    """The cluster ID a set of ClusterProperties gives: ``cluster.clusterset.k8s.io``'s value if it
    has one, else ``id.k8s.io``'s, else ``""``."""
    for name in CLUSTER_ID_NAMES:
        value = _value(properties.get(name))
        if isinstance(value, str) and value:
            return value
    return ""


def cluster_id_problem(value: str) -> str:
    """Why ``value`` cannot be a cluster ID, with a valid example; ``""`` when it can."""
    if is_dns1123_label(value):
        return ""
    suggestion = suggest_dns1123_label(value) or "cluster-1"
    if "." in value and is_dns1123_subdomain(value):
        why = (
            f"{value!r} is a DNS subdomain, but a cluster ID must be a single DNS label: multicluster DNS "
            "(CoreDNS multicluster, mcs-apiserver) addresses a cluster as one label in "
            "<hostname>.<clusterid>.<svc>.<ns>.svc.clusterset.local, so a dotted ID cannot be resolved"
        )
    elif len(value) > DNS1123_LABEL_MAX_LENGTH:
        why = (
            f"a cluster ID must be an RFC 1123 DNS label of at most {DNS1123_LABEL_MAX_LENGTH} characters, "
            f"this one has {len(value)}"
        )
    else:
        why = (
            f"{_quote(value)} is not an RFC 1123 DNS label: a cluster ID must consist of lower case "
            "alphanumeric characters or '-', start and end with an alphanumeric character and be at most "
            f"{DNS1123_LABEL_MAX_LENGTH} characters, because DNS consumers address the cluster by this single label"
        )
    return (
        f"{why}; use e.g. {suggestion!r}, or create {CLUSTER_ID_PROPERTY} without spec.value to get the "
        "kube-system namespace UID"
    )


def _quote(value: str) -> str:
    return repr(value) if len(value) <= 80 else repr(value[:77] + "...")


def _with(properties: _Props, name: str, obj: Any) -> dict[str, Any]:
    """``properties`` with ``name`` set to ``obj`` (removed when None)."""
    result = dict(properties)
    if obj is None:
        result.pop(name, None)
    else:
        result[name] = obj
    return result


def _disagreement(properties: _Props) -> str:
    """A message when both ID properties have (different) values, else ``""``."""
    values = [_value(properties.get(name)) for name in CLUSTER_ID_NAMES]
    if all(isinstance(v, str) and v for v in values) and values[0] != values[1]:
        return (
            f"{CLUSTER_ID_PROPERTY}={values[0]!r} and {LEGACY_CLUSTER_ID_PROPERTY}={values[1]!r} disagree; "
            f"{CLUSTER_ID_PROPERTY} wins: {LEGACY_CLUSTER_ID_PROPERTY} must be absent or have the same value"
        )
    return ""


# --- validating -------------------------------------------------------------------------------------------


def validate_cluster_property(request: AdmissionRequest, facts: AdmissionFacts) -> Decision:
    """The validating webhook's decision for a ClusterProperty request."""
    if request.sub_resource or request.operation == "CONNECT":
        return allow()
    name = _name(request)
    if name in CLUSTER_ID_NAMES:
        return _validate_cluster_id(request, name, facts)
    if name == CLUSTERSET_PROPERTY:
        return _validate_clusterset(request, facts)
    return allow()


def _validate_cluster_id(request: AdmissionRequest, name: str, facts: AdmissionFacts) -> Decision:
    new_value = _value(request.object)
    old_value = _value(request.old_object)
    if request.operation == "UPDATE" and new_value == old_value:
        return allow()
    if request.operation in ("CREATE", "UPDATE"):
        if not isinstance(new_value, str) or not new_value:
            return invalid("a cluster ID must be a non-empty string", field="spec.value")
        problem = cluster_id_problem(new_value)
        if problem:
            return invalid(problem, field="spec.value")
    try:
        current = facts.cluster_properties()
    except NotSynced as exc:
        return unavailable(f"cannot check whether this cluster is in a ClusterSet ({exc}); {_RETRY}")
    # The request's own objects are fresher than the cache for the property being changed.
    old_obj = None if request.operation == "CREATE" else (request.old_object or current.get(name))
    before = _with(current, name, old_obj)
    after = _with(current, name, request.object if request.operation != "DELETE" else None)
    if CLUSTERSET_PROPERTY not in current:
        disagreement = _disagreement(after)
        return allow(warnings=[disagreement] if disagreement else [])
    clusterset = _value(current.get(CLUSTERSET_PROPERTY))
    id_before, id_after = effective_cluster_id(before), effective_cluster_id(after)
    member_of = f"this cluster is a member of ClusterSet {clusterset!r} ({CLUSTERSET_PROPERTY} exists)"
    if id_after != id_before:
        if not id_before:
            return deny(
                f"cannot give this cluster an ID while it is already in a ClusterSet without one: {member_of}; "
                f"{_LEAVE_FIRST}, then create {name}, then create {CLUSTERSET_PROPERTY} again "
                "(which checks that the ID is unique in the ClusterSet)"
            )
        if request.operation == "DELETE":
            action = f"cannot delete {name}"
        elif request.operation == "UPDATE":
            action = f"cannot change {name} from {old_value!r} to {new_value!r}"
        else:
            action = f"cannot create {name} with value {new_value!r}"
        return deny(
            f"{action}: {member_of}, and its cluster ID {id_before!r} must exist and stay unchanged for the "
            f"whole membership; {_LEAVE_FIRST}"
        )
    disagreement = _disagreement(after)
    if disagreement:
        return deny(f"{member_of}: {disagreement}")
    return allow()


def _validate_clusterset(request: AdmissionRequest, facts: AdmissionFacts) -> Decision:
    new_value = _value(request.object)
    if request.operation == "DELETE":
        return allow()
    if request.operation == "UPDATE":
        old_value = _value(request.old_object)
        if new_value == old_value:
            return allow()
        return deny(
            f"{CLUSTERSET_PROPERTY} is immutable during the membership: to move this cluster from ClusterSet "
            f"{old_value!r} to {new_value!r}, delete {CLUSTERSET_PROPERTY} (leave) and create it again "
            "with the new value"
        )
    if not isinstance(new_value, str) or not new_value:
        return invalid("the ClusterSet name must be a non-empty string", field="spec.value")
    try:
        current = facts.cluster_properties()
    except NotSynced as exc:
        return unavailable(f"cannot check this cluster's ID before it joins ClusterSet {new_value!r} ({exc}); {_RETRY}")
    cluster_id = effective_cluster_id(current)
    if not cluster_id:
        return deny(
            f"this cluster has no cluster ID, and a ClusterSet member must have one: create {CLUSTER_ID_PROPERTY} "
            "first (without spec.value it gets the kube-system namespace UID), then create "
            f"{CLUSTERSET_PROPERTY} (if you have just created it, {_RETRY})"
        )
    problem = cluster_id_problem(cluster_id)
    if problem:
        return deny(f"this cluster's ID cannot join a ClusterSet: {problem}; change {CLUSTER_ID_PROPERTY} first")
    disagreement = _disagreement(current)
    if disagreement:
        return deny(f"this cluster has two cluster IDs: {disagreement}; then create {CLUSTERSET_PROPERTY}")
    members = facts.other_members()
    folded = cluster_id.casefold()
    taken = sorted(
        m.member for m in members if m.synced and m.clusterset == new_value and m.cluster_id.casefold() == folded
    )
    if taken:
        return deny(
            f"cluster ID {cluster_id!r} is already used in ClusterSet {new_value!r} by member "
            f"{', '.join(map(repr, taken))}; cluster IDs must be unique within a ClusterSet: give this cluster "
            f"another {CLUSTER_ID_PROPERTY} (allowed while it is not a member), then create {CLUSTERSET_PROPERTY}"
        )
    unknown = sorted(m.member for m in members if not m.synced)
    if unknown:
        return unavailable(
            f"cannot check that cluster ID {cluster_id!r} is unique in ClusterSet {new_value!r}: the ClusterProperties "
            f"of member {', '.join(map(repr, unknown))} have not been read yet; {_RETRY} (see kubectl get clustersets), "
            "or remove unreachable members from the mcs-apiserver member configuration"
        )
    return allow()


# --- mutating ---------------------------------------------------------------------------------------------


def mutate_cluster_property(request: AdmissionRequest, facts: AdmissionFacts) -> Decision:
    """The mutating webhook's decision: default the cluster ID to the kube-system namespace UID."""
    if request.operation != "CREATE" or request.sub_resource or _name(request) != CLUSTER_ID_PROPERTY:
        return allow()
    obj = request.object or {}
    spec = obj.get("spec")
    value = spec.get("value") if isinstance(spec, dict) else None
    if value not in (None, ""):
        return allow()
    try:
        uid = facts.kube_system_uid()
    except NotSynced as exc:
        return unavailable(
            f"cannot default spec.value of {CLUSTER_ID_PROPERTY} to the kube-system namespace UID ({exc}); "
            f"{_RETRY}, or set spec.value"
        )
    if isinstance(spec, dict):
        return allow(patch=[{"op": "add", "path": "/spec/value", "value": uid}])
    return allow(patch=[{"op": "add", "path": "/spec", "value": {"value": uid}}])
