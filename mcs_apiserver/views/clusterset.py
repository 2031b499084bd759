"""ClusterSet membership: who is a member, under which cluster ID, and whose exports count.

Every instance sees every member, but only its *local* member decides which ClusterSet it is in
(the value of the local ``clusterset.k8s.io`` ClusterProperty, KEP-2149). Each other member is then
classified by what it says about itself, so that every instance of the same ClusterSet reaches the
same verdict from the same data:

========== ========================================================== =====================
state      when                                                       its exports count?
========== ========================================================== =====================
Syncing    never synced: nothing is known about it yet                no
MissingID  no ``cluster.clusterset.k8s.io`` (nor the ``id.k8s.io``    no
           alias)
NotMember  its ``clusterset.k8s.io`` is missing or names another set  no
DuplicateID two or more live members of this set share its cluster ID no (all of them)
Unreachable disconnected after having synced, within the grace period yes (last known)
Unreachable expired (the grace period is over)                        no
Syncing    connected again and re-listing after having synced         yes (last known)
Joined     connected and synced                                       yes
========== ========================================================== =====================

The checks apply in the order of the table: an identity problem is shown before a connection
problem because it is the one a person has to fix. An expired member does not take part in
duplicate detection: KEP-2149 allows an ID to be reused once its previous holder has left, and a
dead member must not lock a live one out.

Members that re-list after a reconnect keep contributing their last known exports, like
unreachable ones: dropping them for the seconds a re-list takes would make every ServiceImport
they back flap.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Mapping, cast

from mcs_apiserver.kube.types import (
    ClusterProperty,
    ClusterSet,
    ClusterSetMember,
    ClusterSetStatus,
    Condition,
    MemberStateName,
    ObjectMeta,
)
from mcs_apiserver.views.conditions import condition, stamp_transitions
from mcs_apiserver.contract import (
    API_VERSION,
    CLUSTER_ID_PROPERTY,
    CLUSTERSET_PROPERTY,
    GROUP,
    LEGACY_CLUSTER_ID_PROPERTY,
    MemberView,
)

#: Namespace of every uuid5 this project derives, so that our UIDs never collide with another
#: tool's uuid5s of the same names.
UID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_DNS, GROUP)
_UID_NAMESPACE_BYTES = UID_NAMESPACE.bytes


class MemberState(StrEnum):
    JOINED = "Joined"
    SYNCING = "Syncing"
    UNREACHABLE = "Unreachable"
    NOT_MEMBER = "NotMember"
    MISSING_ID = "MissingID"
    DUPLICATE_ID = "DuplicateID"


#: Order of the problem states in the ClusterSet's ``Ready`` reason: the worst first.
_PROBLEM_ORDER = (
    MemberState.DUPLICATE_ID,
    MemberState.MISSING_ID,
    MemberState.NOT_MEMBER,
    MemberState.UNREACHABLE,
    MemberState.SYNCING,
)


@dataclass(frozen=True, slots=True)
class MemberInfo:
    """The verdict on one member."""

    name: str  #: connection name (kubeconfig context)
    cluster_id: str | None
    state: MemberState
    contributes: bool  #: whether its exports count towards ServiceImports
    message: str = ""


@dataclass(frozen=True, slots=True)
class Membership:
    """Who is in the local member's ClusterSet.

    ``clusterset`` is None when the local member has no ``clusterset.k8s.io`` property (or has not
    synced yet): then there is no ClusterSet and no ServiceImport is served.
    """

    clusterset: str | None
    local_cluster: str | None
    members: tuple[MemberInfo, ...] = ()  #: sorted by cluster ID, then name
    eligible: Mapping[str, str] = field(default_factory=dict)  #: member name -> cluster ID


def _property_value(props: Mapping[str, ClusterProperty], name: str) -> str | None:
    prop = props.get(name)
    if prop is None:
        return None
    value = (prop.get("spec") or {}).get("value")
    return value or None  # the CRD requires minLength 1; treat "" as absent


def cluster_id_of(props: Mapping[str, ClusterProperty]) -> str | None:
    """The cluster ID a member declares: ``cluster.clusterset.k8s.io``, else the ``id.k8s.io`` alias."""
    value = _property_value(props, CLUSTER_ID_PROPERTY)
    if value is None:
        value = _property_value(props, LEGACY_CLUSTER_ID_PROPERTY)
    return value


def clusterset_of(props: Mapping[str, ClusterProperty]) -> str | None:
    """The ClusterSet a member declares itself part of (``clusterset.k8s.io``)."""
    return _property_value(props, CLUSTERSET_PROPERTY)


def stable_uid(name: str) -> str:
    """``str(uuid.uuid5(UID_NAMESPACE, name))``, four times faster (it is computed per import).

    Derived UIDs make an object's identity survive restarts and agree between instances.
    """
    digest = bytearray(hashlib.sha1(_UID_NAMESPACE_BYTES + name.encode()).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    text = digest.hex()
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def clusterset_uid(name: str) -> str:
    """Stable UID of the ClusterSet object: every instance and every restart computes the same."""
    return stable_uid(f"clusterset/{name}")


def _has_synced(member: MemberView) -> bool:
    status = member.status
    return status.synced or status.last_sync is not None


def derive_membership(members: Mapping[str, MemberView], local: str) -> Membership:
    """Classify every member against the local member's ClusterSet. Pure."""
    local_member = members.get(local)
    if local_member is None or not _has_synced(local_member):
        return Membership(clusterset=None, local_cluster=None)
    clusterset = clusterset_of(local_member.cluster_properties)
    local_id = cluster_id_of(local_member.cluster_properties)
    if clusterset is None:
        return Membership(clusterset=None, local_cluster=local_id)

    ids: dict[str, str | None] = {}
    candidates: dict[str, list[str]] = {}  # cluster ID -> live members of this set using it
    for name, member in members.items():
        if not _has_synced(member):
            continue
        props = member.cluster_properties
        cid = cluster_id_of(props)
        ids[name] = cid
        if cid is not None and clusterset_of(props) == clusterset and not member.status.expired:
            candidates.setdefault(cid, []).append(name)

    infos: list[MemberInfo] = []
    eligible: dict[str, str] = {}
    for name, member in members.items():
        info = _classify(name, member, ids.get(name), clusterset, candidates)
        infos.append(info)
        if info.contributes and info.cluster_id is not None:
            eligible[name] = info.cluster_id
    infos.sort(key=lambda i: (i.cluster_id or "", i.name))
    return Membership(
        clusterset=clusterset,
        local_cluster=local_id,
        members=tuple(infos),
        eligible=dict(sorted(eligible.items())),
    )


def _with_detail(message: str, detail: str) -> str:
    return f"{message}: {detail}" if detail else message


def _classify(
    name: str,
    member: MemberView,
    cid: str | None,
    clusterset: str,
    candidates: Mapping[str, list[str]],
) -> MemberInfo:
    status = member.status
    if not _has_synced(member):
        return MemberInfo(
            name, None, MemberState.SYNCING, False, _with_detail("waiting for the first sync", status.message)
        )
    if cid is None:
        return MemberInfo(
            name,
            None,
            MemberState.MISSING_ID,
            False,
            f"no {CLUSTER_ID_PROPERTY} ClusterProperty (nor {LEGACY_CLUSTER_ID_PROPERTY}); "
            f"create {CLUSTER_ID_PROPERTY} in {name} to give it a cluster ID",
        )
    theirs = clusterset_of(member.cluster_properties)
    if theirs is None:
        return MemberInfo(
            name,
            cid,
            MemberState.NOT_MEMBER,
            False,
            f"no {CLUSTERSET_PROPERTY} ClusterProperty: not a member of ClusterSet {clusterset}",
        )
    if theirs != clusterset:
        return MemberInfo(
            name,
            cid,
            MemberState.NOT_MEMBER,
            False,
            f"{CLUSTERSET_PROPERTY} is {theirs}: a member of another ClusterSet than {clusterset}",
        )
    sharing = candidates.get(cid, [])
    if len(sharing) > 1 and name in sharing:
        others = ", ".join(sorted(n for n in sharing if n != name))
        return MemberInfo(
            name, cid, MemberState.DUPLICATE_ID, False, f"cluster ID {cid} is also used by {others}"
        )
    since = f" since {status.last_sync}" if status.last_sync else ""
    if status.expired:
        return MemberInfo(
            name,
            cid,
            MemberState.UNREACHABLE,
            False,
            _with_detail(
                f"unreachable{since} for longer than the grace period; its exports are no longer served",
                status.message,
            ),
        )
    if not status.connected:
        return MemberInfo(
            name,
            cid,
            MemberState.UNREACHABLE,
            True,
            _with_detail(
                f"unreachable{since}; its last known exports are served until the grace period ends",
                status.message,
            ),
        )
    if not status.synced:
        return MemberInfo(
            name,
            cid,
            MemberState.SYNCING,
            True,
            _with_detail("re-syncing; its last known exports are served meanwhile", status.message),
        )
    return MemberInfo(name, cid, MemberState.JOINED, True, status.message)


def build_clusterset(
    membership: Membership,
    members: Mapping[str, MemberView],
    local: str,
    previous: ClusterSet | None,
    now: str,
    upstream_clash: bool = False,
) -> ClusterSet | None:
    """The ClusterSet object served in the local cluster, or None when there is no ClusterSet.

    ``previous`` is the object served before (if any): its conditions' ``lastTransitionTime`` are
    kept where the status did not change. ``upstream_clash``: the upstream ServiceImport CRD is
    installed in the local cluster and this instance does not publish to it (then an
    ``UpstreamServiceImportClash`` condition says which name to use). Pure.
    """
    if membership.clusterset is None:
        return None
    name = membership.clusterset
    metadata: ObjectMeta = {"name": name, "uid": clusterset_uid(name)}
    local_member = members.get(local)
    if local_member is not None:
        prop = local_member.cluster_properties.get(CLUSTERSET_PROPERTY) or {}
        created = (prop.get("metadata") or {}).get("creationTimestamp")
        if created:
            metadata["creationTimestamp"] = created

    entries: list[ClusterSetMember] = []
    for info in membership.members:
        state = cast(MemberStateName, str(info.state))  # MemberState's values are exactly the wire's
        entry: ClusterSetMember = {"cluster": info.cluster_id or "", "name": info.name, "state": state}
        member = members.get(info.name)
        if member is not None:
            if member.status.last_sync:
                entry["lastSyncTime"] = member.status.last_sync
            entry["exports"] = len(member.exports)
        else:
            entry["exports"] = 0
        if info.message:
            entry["message"] = info.message
        entries.append(entry)

    previous_conditions = ((previous or {}).get("status") or {}).get("conditions")
    wanted = [_ready_condition(membership)]
    if upstream_clash:
        wanted.append(upstream_clash_condition())
    conditions = stamp_transitions(wanted, previous_conditions, now)
    status: ClusterSetStatus = {}
    if membership.local_cluster:
        status["localCluster"] = membership.local_cluster
    status["members"] = entries
    status["conditions"] = conditions
    return {"apiVersion": API_VERSION, "kind": "ClusterSet", "metadata": metadata, "status": status}


UPSTREAM_SERVICEIMPORTS = "serviceimports.multicluster.x-k8s.io"
VIEW_SERVICEIMPORTS = "serviceimports.views.multicluster.x-k8s.io"


def upstream_clash_condition() -> Condition:
    """Why ``kubectl get serviceimports`` may show something else than the views, and what to type."""
    return condition(
        "UpstreamServiceImportClash",
        True,
        "UpstreamCRDInstalled",
        f"the CRD {UPSTREAM_SERVICEIMPORTS} is installed in this cluster by something else and this instance "
        f"does not publish to it, so `kubectl get serviceimports` may list those objects instead of the "
        f"ClusterSet's imports: use `kubectl get {VIEW_SERVICEIMPORTS}` for the live views, or run "
        "mcs-apiserver with --publish-serviceimports so that both show the same objects",
    )


def _ready_condition(membership: Membership) -> Condition:
    total = len(membership.members)
    not_joined = [i for i in membership.members if i.state is not MemberState.JOINED]
    if not not_joined:
        return condition("Ready", True, "AllMembersJoined", f"all {total} members joined")
    states = {i.state for i in not_joined}
    reason = ",".join(str(s) for s in _PROBLEM_ORDER if s in states)
    listing = "; ".join(
        f"{i.name} ({i.state}{': ' + i.message if i.message else ''})" for i in not_joined
    )
    joined = total - len(not_joined)
    return condition("Ready", False, reason, f"{joined} of {total} members joined; not joined: {listing}")
