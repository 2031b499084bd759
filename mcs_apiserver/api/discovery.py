"""Discovery documents for ``views.multicluster.x-k8s.io/v1alpha1``.

- ``GET /apis/<g>/<v>``: :func:`api_resource_list` (``APIResourceList``; also the aggregator's
  availability probe and its fallback when aggregated discovery is not offered);
- ``GET /apis/<g>``: :func:`api_group`; ``GET /apis`` (plain): :func:`api_group_list`;
- ``GET /apis`` with ``Accept: application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList``
  (or ``v2beta1``, pre-1.30 aggregators): :func:`api_group_discovery_list`, which the aggregator merges
  into the cluster's aggregated discovery.

The documents never change while the process lives, so each is also available pre-serialized
(:func:`discovery_bytes`), ready for ``web.Response(body=...)``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Final

import orjson

from mcs_apiserver.contract import API_VERSION, GROUP, VERSION

__all__ = [
    "RESOURCES",
    "ResourceInfo",
    "resource_info",
    "api_resource_list",
    "api_group",
    "api_group_list",
    "api_group_discovery_list",
    "discovery_bytes",
    "VERBS",
    "CATEGORIES",
]

#: The only verbs served; every other verb is 405 MethodNotAllowed.
VERBS: Final = ("get", "list", "watch")
CATEGORIES: Final = ("multicluster",)


@dataclass(frozen=True, slots=True)
class ResourceInfo:
    """Static facts about one served resource."""

    name: str  # plural, as in URLs
    singular: str
    kind: str
    namespaced: bool
    short_names: tuple[str, ...]

    @property
    def list_kind(self) -> str:
        return self.kind + "List"


#: Served resources, in discovery order.
RESOURCES: Final = (
    ResourceInfo("clustersets", "clusterset", "ClusterSet", False, ("cset",)),
    ResourceInfo("serviceimports", "serviceimport", "ServiceImport", True, ("svcim", "svcimport")),
)
_BY_NAME: Final = {r.name: r for r in RESOURCES}


def resource_info(resource: str) -> ResourceInfo | None:
    """The :class:`ResourceInfo` for a plural resource name, or ``None`` (-> 404)."""
    return _BY_NAME.get(resource)


def api_resource_list() -> dict[str, Any]:
    """``APIResourceList`` for ``/apis/views.multicluster.x-k8s.io/v1alpha1``."""
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": API_VERSION,
        "resources": [
            {
                "name": r.name,
                "singularName": r.singular,
                "namespaced": r.namespaced,
                "kind": r.kind,
                "verbs": list(VERBS),
                "shortNames": list(r.short_names),
                "categories": list(CATEGORIES),
            }
            for r in RESOURCES
        ],
    }


def _group_body() -> dict[str, Any]:
    version = {"groupVersion": API_VERSION, "version": VERSION}
    return {"name": GROUP, "versions": [version], "preferredVersion": dict(version)}


def api_group() -> dict[str, Any]:
    """``APIGroup`` for ``/apis/views.multicluster.x-k8s.io``."""
    return {"kind": "APIGroup", "apiVersion": "v1", **_group_body()}


def api_group_list() -> dict[str, Any]:
    """``APIGroupList`` for a plain ``/apis`` (items carry no kind/apiVersion, as kube-apiserver sends)."""
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": [_group_body()]}


def api_group_discovery_list(version: str = "v2") -> dict[str, Any]:
    """Aggregated discovery (``apidiscovery.k8s.io/v2`` or ``v2beta1``: same shape) for ``/apis``.

    The list field is ``items``, one ``APIGroupDiscovery`` per group.
    """
    if version not in ("v2", "v2beta1"):
        raise ValueError(f"unknown apidiscovery version {version!r}")
    return {
        "kind": "APIGroupDiscoveryList",
        "apiVersion": f"apidiscovery.k8s.io/{version}",
        "metadata": {},
        "items": [
            {
                "metadata": {"name": GROUP},
                "versions": [
                    {
                        "version": VERSION,
                        "resources": [
                            {
                                "resource": r.name,
                                "responseKind": {"group": GROUP, "version": VERSION, "kind": r.kind},
                                "scope": "Namespaced" if r.namespaced else "Cluster",
                                "singularResource": r.singular,
                                "verbs": list(VERBS),
                                "shortNames": list(r.short_names),
                                "categories": list(CATEGORIES),
                            }
                            for r in RESOURCES
                        ],
                        "freshness": "Current",
                    }
                ],
            }
        ],
    }


@functools.cache
def discovery_bytes(document: str, version: str = "v2") -> bytes:
    """Serialized documents, computed once: ``document`` is ``"resources"``, ``"group"``, ``"groups"`` or
    ``"aggregated"`` (with ``version`` ``v2``/``v2beta1``)."""
    if document == "resources":
        return orjson.dumps(api_resource_list())
    if document == "group":
        return orjson.dumps(api_group())
    if document == "groups":
        return orjson.dumps(api_group_list())
    if document == "aggregated":
        return orjson.dumps(api_group_discovery_list(version))
    raise ValueError(f"unknown discovery document {document!r}")
