"""``Accept`` header negotiation, the way kube-apiserver does it (``apiserver/pkg/endpoints/handlers/negotiation``).

The server only produces JSON; what varies is the *representation* (:class:`Target`):

- ``OBJECT``: the object or list itself (``application/json``, ``application/*``, ``*/*``);
- ``TABLE``: ``as=Table;g=meta.k8s.io;v=v1|v1beta1`` (``kubectl get``);
- ``PARTIAL_OBJECT_METADATA``: ``as=PartialObjectMetadata;g=meta.k8s.io;v=v1|v1beta1`` (get, watch);
- ``PARTIAL_OBJECT_METADATA_LIST``: ``as=PartialObjectMetadataList;...`` (metadata client lists);
- ``API_GROUP_DISCOVERY_LIST``: ``as=APIGroupDiscoveryList;g=apidiscovery.k8s.io;v=v2|v2beta1``.

Clauses are tried in order of q-value (``q=0`` never), then specificity, then as written (the order
``goautoneg`` gives). A clause that asks for something the server cannot produce (protobuf, YAML, CBOR,
a representation this endpoint does not offer, a missing ``g``/``v``) is skipped, so the next acceptable
clause wins; when none is left, :class:`NotAcceptableError` (406). Unlike kube-apiserver, a list
endpoint skips ``as=PartialObjectMetadata`` (non-list) instead of failing with 406, which is the more
useful behaviour for the metadata client, whose next clause is plain JSON.
"""

from __future__ import annotations

import enum
from collections.abc import Collection
from dataclasses import dataclass
from typing import Final

from mcs_apiserver.kube.status import StatusError, bad_request, not_acceptable

__all__ = [
    "Target",
    "Negotiated",
    "AcceptClause",
    "NotAcceptableError",
    "IncludeObject",
    "negotiate",
    "parse_accept",
    "parse_include_object",
    "ACCEPTED_MEDIA_TYPES",
    "GET",
    "LIST",
    "WATCH",
    "DISCOVERY_ROOT",
    "PLAIN",
    "META_GROUP",
    "DISCOVERY_GROUP",
]

META_GROUP: Final = "meta.k8s.io"
DISCOVERY_GROUP: Final = "apidiscovery.k8s.io"
JSON: Final = "application/json"

#: What a 406 lists as acceptable.
ACCEPTED_MEDIA_TYPES: Final = (JSON,)


class Target(enum.Enum):
    OBJECT = "Object"
    TABLE = "Table"
    PARTIAL_OBJECT_METADATA = "PartialObjectMetadata"
    PARTIAL_OBJECT_METADATA_LIST = "PartialObjectMetadataList"
    API_GROUP_DISCOVERY_LIST = "APIGroupDiscoveryList"


#: Which representations each kind of endpoint may answer with.
GET: Final = frozenset({Target.OBJECT, Target.TABLE, Target.PARTIAL_OBJECT_METADATA})
LIST: Final = frozenset({Target.OBJECT, Target.TABLE, Target.PARTIAL_OBJECT_METADATA_LIST})
#: Watch event objects: the object, a one-row Table, or a PartialObjectMetadata (the metadata client
#: asks for ``as=PartialObjectMetadata`` on watches, not the List kind).
WATCH: Final = GET
#: ``/apis``: the APIGroupList, or the aggregated APIGroupDiscoveryList.
DISCOVERY_ROOT: Final = frozenset({Target.OBJECT, Target.API_GROUP_DISCOVERY_LIST})
#: Everything else (``/apis/<g>``, ``/apis/<g>/<v>``, OpenAPI, Status errors): plain JSON only.
PLAIN: Final = frozenset({Target.OBJECT})

_VERSIONS: Final[dict[Target, tuple[str, frozenset[str]]]] = {
    Target.TABLE: (META_GROUP, frozenset({"v1", "v1beta1"})),
    Target.PARTIAL_OBJECT_METADATA: (META_GROUP, frozenset({"v1", "v1beta1"})),
    Target.PARTIAL_OBJECT_METADATA_LIST: (META_GROUP, frozenset({"v1", "v1beta1"})),
    Target.API_GROUP_DISCOVERY_LIST: (DISCOVERY_GROUP, frozenset({"v2", "v2beta1"})),
}
_BY_KIND: Final = {t.value: t for t in Target if t is not Target.OBJECT}


@dataclass(frozen=True, slots=True)
class Negotiated:
    """The representation chosen for the response."""

    target: Target
    group: str = ""  # meta.k8s.io / apidiscovery.k8s.io; "" for OBJECT
    version: str = ""  # v1 / v1beta1 / v2 / v2beta1; "" for OBJECT
    pretty: bool = False

    @property
    def api_version(self) -> str:
        """``apiVersion`` of the converted object (``meta.k8s.io/v1``); ``""`` for ``OBJECT``."""
        return f"{self.group}/{self.version}" if self.group else ""

    @property
    def content_type(self) -> str:
        """``Content-Type`` to answer with. kube-apiserver names the kind only for discovery documents."""
        if self.target is Target.API_GROUP_DISCOVERY_LIST:
            return f"{JSON};g={self.group};v={self.version};as={self.target.value}"
        return JSON


_PLAIN_JSON: Final = Negotiated(Target.OBJECT)


class NotAcceptableError(StatusError):
    """No clause of ``Accept`` can be served: 406 ``NotAcceptable``."""

    def __init__(self) -> None:
        super().__init__(not_acceptable(ACCEPTED_MEDIA_TYPES))


@dataclass(frozen=True, slots=True)
class AcceptClause:
    type: str
    subtype: str
    params: dict[str, str]
    q: float


def parse_accept(header: str) -> list[AcceptClause]:
    """``goautoneg.ParseAccept``: clauses sorted by q (descending), then specificity, stable otherwise."""
    clauses: list[AcceptClause] = []
    for part in header.split(","):
        pieces = part.strip(" ").split(";")
        media_range = pieces[0].split("/")
        mtype = media_range[0].strip(" ").lower()
        if len(media_range) == 1 and mtype == "*":
            subtype = "*"
        elif len(media_range) == 2:
            subtype = media_range[1].strip(" ").lower()
        else:
            continue
        params: dict[str, str] = {}
        q = 1.0
        for param in pieces[1:]:
            key, sep, value = param.partition("=")
            if not sep:
                continue
            key = key.strip(" ")
            if key == "q":
                try:
                    q = float(value.strip(" "))
                except ValueError:
                    q = 0.0
            else:
                params[key] = value.strip(" ")
        clauses.append(AcceptClause(mtype, subtype, params, q))
    clauses.sort(key=lambda c: (-c.q, c.type == "*", c.subtype == "*"))
    return clauses


def _accept_clause(clause: AcceptClause, allowed: Collection[Target]) -> Negotiated | None:
    if clause.q <= 0:
        return None
    if not (
        (clause.type == "application" and clause.subtype in ("json", "*"))
        or (clause.type == "*" and clause.subtype == "*")
    ):
        return None
    kind = group = version = ""
    pretty = False
    for key, value in clause.params.items():
        if key == "as":
            kind = value
        elif key == "g":
            group = value
        elif key == "v":
            version = value
        elif key == "pretty":
            pretty = value == "1"
        elif (key == "stream" and value and value != "watch") or (key == "sv" and value):
            return None  # another streaming format, or a server version: not ours
        # Anything else (charset, export, ...) is ignored, as kube-apiserver does.
    if not kind and not group and not version:
        return Negotiated(Target.OBJECT, pretty=pretty) if Target.OBJECT in allowed else None
    target = _BY_KIND.get(kind)
    if target is None or target not in allowed:
        return None
    want_group, versions = _VERSIONS[target]
    if group != want_group or version not in versions:
        return None
    return Negotiated(target, group, version, pretty)


def negotiate(accept: str | None, allowed: Collection[Target] = PLAIN) -> Negotiated:
    """Pick the representation for ``accept`` among ``allowed`` (one of the endpoint sets above).

    An absent or empty ``Accept`` means plain JSON. Raises :class:`NotAcceptableError`.
    """
    if not accept or not accept.strip():
        if Target.OBJECT in allowed:
            return _PLAIN_JSON
        raise NotAcceptableError()
    for clause in parse_accept(accept):
        chosen = _accept_clause(clause, allowed)
        if chosen is not None:
            return chosen
    raise NotAcceptableError()


class IncludeObject(enum.Enum):
    """``includeObject`` for Tables: what each row's ``object`` holds."""

    NONE = "None"
    METADATA = "Metadata"
    OBJECT = "Object"


_INCLUDE: Final = {p.value: p for p in IncludeObject}


def parse_include_object(value: str | None) -> IncludeObject:
    """``includeObject`` query parameter; absent or empty means ``Metadata``.

    Anything else is 400 ``unrecognized includeObject value: "x"`` (kube-apiserver's message).
    """
    if not value:
        return IncludeObject.METADATA
    policy = _INCLUDE.get(value)
    if policy is None:
        raise StatusError(bad_request(f'unrecognized includeObject value: "{value}"'))
    return policy
