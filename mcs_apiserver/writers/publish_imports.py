"""The upstream ServiceImport (``serviceimports.multicluster.x-k8s.io``) equal to a served view. Pure.

Same name, namespace, spec (type, ClusterSetIPs, families, ports, affinity, policies), labels and
annotations as the view, plus our managed-by label. Status keeps what the upstream schema knows:
``clusters[].cluster`` and the conditions; our extra per-cluster fields would be pruned by the
CRD's structural schema and then look like a change on every comparison.
"""

from __future__ import annotations

from typing import Any

from mcs_apiserver.kube.types import ServiceImport

GROUP_VERSION = "multicluster.x-k8s.io/v1beta1"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "mcs-apiserver"
FIELD_MANAGER = "mcs-apiserver"


def desired_service_import(view: ServiceImport) -> dict[str, Any]:
    """The upstream object for the served view ``view``."""
    source = view.get("metadata") or {}
    metadata: dict[str, Any] = {
        "name": source.get("name"),
        "namespace": source.get("namespace"),
        "labels": {**(source.get("labels") or {}), MANAGED_BY_LABEL: MANAGED_BY},
    }
    if source.get("annotations"):
        metadata["annotations"] = dict(source.get("annotations") or {})
    status = view.get("status") or {}
    return {
        "apiVersion": GROUP_VERSION,
        "kind": "ServiceImport",
        "metadata": metadata,
        "spec": dict(view.get("spec") or {}),
        "status": {
            "clusters": [{"cluster": c["cluster"]} for c in status.get("clusters") or ()],
            "conditions": list(status.get("conditions") or ()),
        },
    }
