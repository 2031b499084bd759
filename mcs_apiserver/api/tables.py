"""``meta.k8s.io`` Tables (``kubectl get``) and PartialObjectMetadata (the metadata client).

A Table carries column definitions and one row of *printed* cells per object; kubectl prints the cells
verbatim (header = column name upper-cased) and drops columns with ``priority > 0`` unless ``-o wide``.
The v1beta1 flavour differs only in ``apiVersion``, so every function takes ``api_version``
(``meta.k8s.io/v1`` or ``meta.k8s.io/v1beta1``, i.e. ``Negotiated.api_version``).

ServiceImport: NAME, TYPE, IP, PORTS, CLUSTERS, AGE; wide: CONFLICT, READY, IP FAMILIES.
ClusterSet: NAME, LOCAL, MEMBERS (joined/total), READY, AGE; wide: NOT JOINED.

AGE is ``duration.HumanDuration`` from k8s.io/apimachinery (what every built-in printer uses).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from mcs_apiserver.api.negotiation import IncludeObject
from mcs_apiserver.kube.times import parse_time

__all__ = [
    "human_duration",
    "translate_timestamp_since",
    "column_definitions",
    "table_row",
    "table_for",
    "table_for_event",
    "bookmark_table",
    "partial_object_metadata",
    "partial_object_metadata_head",
    "TABLE_V1",
]

TABLE_V1: Final = "meta.k8s.io/v1"

Obj = Mapping[str, Any]
Now = datetime | float


# --- AGE -------------------------------------------------------------------------------------


def human_duration(d: timedelta | float) -> str:
    """``k8s.io/apimachinery/pkg/util/duration.HumanDuration``: ~2-3 significant figures.

    ``<invalid>`` below -1s (clock skew up to 2s is tolerated as ``0s``); seconds up to 2m; ``XmYs`` below
    10m; minutes up to 3h; ``XhYm`` below 8h; hours up to 2d; ``XdYh`` below 8d; days up to 2y;
    ``XyYd`` below 8y; then years.
    """
    if isinstance(d, timedelta):
        micros = d // timedelta(microseconds=1)
        # Go's int(d.Seconds()) truncates toward zero.
        seconds = micros // 1_000_000 if micros >= 0 else -((-micros) // 1_000_000)
    else:
        seconds = int(d)
    if seconds < -1:
        return "<invalid>"
    if seconds < 0:
        return "0s"
    if seconds < 60 * 2:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 10:
        s = seconds % 60
        return f"{minutes}m" if s == 0 else f"{minutes}m{s}s"
    if minutes < 60 * 3:
        return f"{minutes}m"
    hours = seconds // 3600
    if hours < 8:
        m = minutes % 60
        return f"{hours}h" if m == 0 else f"{hours}h{m}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        h = hours % 24
        return f"{hours // 24}d" if h == 0 else f"{hours // 24}d{h}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        dy = (hours // 24) % 365
        return f"{hours // 24 // 365}y" if dy == 0 else f"{hours // 24 // 365}y{dy}d"
    return f"{hours // 24 // 365}y"


#: AGE parses the same creationTimestamps for every list and watch event: cache them.
_parse_time = functools.lru_cache(maxsize=32768)(parse_time)


def _as_datetime(now: Now) -> datetime:
    if isinstance(now, datetime):
        return now if now.tzinfo is not None else now.replace(tzinfo=UTC)
    return datetime.fromtimestamp(now, tz=UTC)


def translate_timestamp_since(timestamp: str | None, now: Now) -> str:
    """kubectl's ``translateTimestampSince``: ``<unknown>`` without a (parsable) timestamp."""
    if not timestamp:
        return "<unknown>"
    created = _parse_time(timestamp)
    if created is None:
        return "<unknown>"
    return human_duration(_as_datetime(now) - created)


# --- columns ---------------------------------------------------------------------------------

_NAME_DESCRIPTION: Final = (
    "Name must be unique within a namespace. Is required when creating resources, although some "
    "resources may allow a client to request the generation of an appropriate name automatically. Name "
    "is primarily intended for creation idempotence and configuration definition. Cannot be updated. "
    "More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names"
)
_AGE_DESCRIPTION: Final = (
    "CreationTimestamp is a timestamp representing the server time when this object was created. For a "
    "ServiceImport, the time of the oldest ServiceExport that contributes to it. Represented in RFC3339 "
    "form and is in UTC."
)


def _column(
    name: str, description: str, *, priority: int = 0, fmt: str = "", type_: str = "string"
) -> dict[str, Any]:
    return {"name": name, "type": type_, "format": fmt, "description": description, "priority": priority}


_SERVICE_IMPORT_COLUMNS: Final = (
    _column("Name", _NAME_DESCRIPTION, fmt="name"),
    _column(
        "Type",
        "How the service is imported: ClusterSetIP (one virtual IP for the ClusterSet) or Headless (DNS only).",
    ),
    _column("IP", "The ClusterSet virtual IPs (spec.ips), one per IP family."),
    _column("Ports", "The ports of the imported service, as port/protocol (spec.ports)."),
    _column("Clusters", "The IDs of the clusters that export this service (status.clusters)."),
    _column("Age", _AGE_DESCRIPTION),
    _column(
        "Conflict",
        "Why the exports of this service disagree (reason of the Conflict condition), if they do.",
        priority=1,
    ),
    _column("Ready", "Status of the Ready condition.", priority=1),
    _column("IP Families", "The IP families of the imported service (spec.ipFamilies).", priority=1),
)

_CLUSTER_SET_COLUMNS: Final = (
    _column("Name", "The ClusterSet, as named by the clusterset.k8s.io ClusterProperty.", fmt="name"),
    _column("Local", "The cluster ID of the cluster this server answers for (status.localCluster)."),
    _column("Members", "Members in state Joined / all members known to this server."),
    _column("Ready", "Status of the Ready condition."),
    _column("Age", _AGE_DESCRIPTION),
    _column(
        "Not Joined",
        "Members that are not Joined, as member:state (state is Syncing, Unreachable, NotMember, "
        "MissingID or DuplicateID).",
        priority=1,
    ),
)

_NONE: Final = "<none>"
#: How many cluster IDs CLUSTERS shows before summarising the rest.
MAX_CLUSTERS_SHOWN: Final = 3


def _condition(obj: Obj, kind: str) -> Mapping[str, Any] | None:
    conditions: Iterable[Mapping[str, Any]] = (obj.get("status") or {}).get("conditions") or ()
    for condition in conditions:
        if condition.get("type") == kind:
            return condition
    return None


def _ready(obj: Obj) -> str:
    condition = _condition(obj, "Ready")
    return condition.get("status", "Unknown") if condition else "Unknown"


def _ports(ports: Sequence[Mapping[str, Any]] | None) -> str:
    """kubectl's ``makePortString``: ``80/TCP,53/UDP``."""
    if not ports:
        return _NONE
    return ",".join(f"{p.get('port', 0)}/{p.get('protocol') or 'TCP'}" for p in ports)


def _clusters(clusters: Sequence[Mapping[str, Any]] | None) -> str:
    """Cluster IDs, the first few then ``+ N more...`` (like kubectl's ENDPOINTS column)."""
    if not clusters:
        return _NONE
    ids = [c.get("cluster", "") for c in clusters]
    if len(ids) <= MAX_CLUSTERS_SHOWN:
        return ",".join(ids)
    return ",".join(ids[:MAX_CLUSTERS_SHOWN]) + f" + {len(ids) - MAX_CLUSTERS_SHOWN} more..."


#: AGE of a creationTimestamp (``translate_timestamp_since`` at the table's moment)
Age = Callable[[str | None], str]


def _service_import_cells(obj: Obj, age: Age) -> list[Any]:
    metadata = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    conflict = _condition(obj, "Conflict")
    return [
        metadata.get("name", ""),
        spec.get("type") or _NONE,
        ",".join(spec.get("ips") or ()) or _NONE,
        _ports(spec.get("ports")),
        _clusters(status.get("clusters")),
        age(metadata.get("creationTimestamp")),
        (conflict.get("reason") or "True") if conflict and conflict.get("status") == "True" else _NONE,
        _ready(obj),
        ",".join(spec.get("ipFamilies") or ()) or _NONE,
    ]


def _cluster_set_cells(obj: Obj, age: Age) -> list[Any]:
    metadata = obj.get("metadata") or {}
    status = obj.get("status") or {}
    members = status.get("members") or ()
    joined = sum(1 for m in members if m.get("state") == "Joined")
    not_joined = ",".join(
        f"{m.get('cluster') or m.get('name', '')}:{m.get('state', 'Unknown')}"
        for m in members
        if m.get("state") != "Joined"
    )
    return [
        metadata.get("name", ""),
        status.get("localCluster") or _NONE,
        f"{joined}/{len(members)}",
        _ready(obj),
        age(metadata.get("creationTimestamp")),
        not_joined or _NONE,
    ]


_KINDS: Final[dict[str, tuple[tuple[dict[str, Any], ...], Callable[[Obj, Age], list[Any]]]]] = {
    "ServiceImport": (_SERVICE_IMPORT_COLUMNS, _service_import_cells),
    "ClusterSet": (_CLUSTER_SET_COLUMNS, _cluster_set_cells),
}
_ALIASES: Final = {"serviceimports": "ServiceImport", "clustersets": "ClusterSet"}


def _kind(kind: str) -> tuple[tuple[dict[str, Any], ...], Callable[[Obj, Age], list[Any]]]:
    try:
        return _KINDS[_ALIASES.get(kind, kind)]
    except KeyError:
        raise ValueError(f"no table for kind {kind!r}") from None


def column_definitions(kind: str) -> list[dict[str, Any]]:
    """The ``columnDefinitions`` for ``kind`` (``ServiceImport``/``ClusterSet``, or the resource name)."""
    return [dict(c) for c in _kind(kind)[0]]


# --- rows and tables -------------------------------------------------------------------------


def partial_object_metadata(obj: Obj, api_version: str = TABLE_V1) -> dict[str, Any]:
    """``{"kind":"PartialObjectMetadata","apiVersion":"meta.k8s.io/v1","metadata":{...}}`` (full metadata)."""
    return {"kind": "PartialObjectMetadata", "apiVersion": api_version, "metadata": obj.get("metadata") or {}}


@functools.cache
def partial_object_metadata_head(api_version: str) -> bytes:
    """The bytes of :func:`partial_object_metadata` up to its metadata: append the object's serialized
    metadata and ``b"}"``. Gets, lists and watches join stored bytes instead of encoding each object again."""
    return b'{"kind":"PartialObjectMetadata","apiVersion":"' + api_version.encode() + b'","metadata":'


def _list_meta(
    resource_version: str | None, continue_token: str | None, remaining_item_count: int | None
) -> dict[str, Any]:
    meta: dict[str, Any] = {}
    if resource_version:
        meta["resourceVersion"] = resource_version
    if continue_token:
        meta["continue"] = continue_token
    if remaining_item_count is not None:
        meta["remainingItemCount"] = remaining_item_count
    return meta


def _row_object(obj: Obj, include_object: IncludeObject, api_version: str) -> Any:
    if include_object is IncludeObject.METADATA:
        return partial_object_metadata(obj, api_version)
    if include_object is IncludeObject.OBJECT:
        return obj
    return None


def table_row(
    kind: str,
    obj: Obj,
    now: Now,
    include_object: IncludeObject = IncludeObject.METADATA,
    api_version: str = TABLE_V1,
    *,
    age: Age | None = None,
) -> dict[str, Any]:
    """One ``TableRow``: ``{"cells": [...], "object": <per include_object>}``. ``age``: the AGE of a
    creationTimestamp at ``now``, when the caller has one (a table shares one between its rows)."""
    cells = _kind(kind)[1]
    if age is None:
        age = functools.partial(translate_timestamp_since, now=now)
    return {"cells": cells(obj, age), "object": _row_object(obj, include_object, api_version)}


def table_for(
    kind: str,
    objects: Iterable[Obj],
    now: Now,
    include_object: IncludeObject = IncludeObject.METADATA,
    with_column_definitions: bool = True,
    *,
    api_version: str = TABLE_V1,
    resource_version: str | None = None,
    continue_token: str | None = None,
    remaining_item_count: int | None = None,
) -> dict[str, Any]:
    """A ``Table`` of ``objects``. For a list, pass the list's ``resource_version``/``continue_token``.

    Without column definitions (watch events after the first) ``columnDefinitions`` is ``[]``.
    """
    moment = _as_datetime(now)
    ages: dict[str | None, str] = {}  # objects created in the same second share their AGE

    def age(timestamp: str | None) -> str:
        found = ages.get(timestamp)
        if found is None:
            found = ages[timestamp] = translate_timestamp_since(timestamp, moment)
        return found

    rows = [table_row(kind, o, moment, include_object, api_version, age=age) for o in objects]
    return {
        "kind": "Table",
        "apiVersion": api_version,
        "metadata": _list_meta(resource_version, continue_token, remaining_item_count),
        "columnDefinitions": column_definitions(kind) if with_column_definitions else [],
        "rows": rows,
    }


def table_for_event(
    kind: str,
    obj: Obj,
    now: Now,
    include_object: IncludeObject = IncludeObject.METADATA,
    with_column_definitions: bool = False,
    *,
    api_version: str = TABLE_V1,
) -> dict[str, Any]:
    """The object of one watch event as a one-row Table whose ``metadata.resourceVersion`` is the
    object's (what kubectl -w resumes from). Pass ``with_column_definitions=True`` for the first event."""
    return table_for(
        kind,
        (obj,),
        now,
        include_object,
        with_column_definitions,
        api_version=api_version,
        resource_version=(obj.get("metadata") or {}).get("resourceVersion"),
    )


def bookmark_table(resource_version: str, api_version: str = TABLE_V1) -> dict[str, Any]:
    """The object of a BOOKMARK event on a Table watch: no rows, only the resourceVersion."""
    return {
        "kind": "Table",
        "apiVersion": api_version,
        "metadata": {"resourceVersion": resource_version},
        "columnDefinitions": [],
        "rows": [],
    }
