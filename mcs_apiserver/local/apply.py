"""Server-side apply of manifests, so that ``local up`` and its bootstrap steps are idempotent.

Server-side apply (``PATCH`` with ``application/apply-patch+yaml``) creates what is missing and
converges what exists, in one request, with no read-modify-write race. JSON is valid YAML, so the
objects are sent as JSON.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

import yaml

from mcs_apiserver.kube.client import KubeClient

FIELD_MANAGER = "mcs-apiserver-local"

#: kind -> (API path prefix, plural, namespaced) for the kinds the local ClusterSet applies.
_RESOURCES: dict[tuple[str, str], tuple[str, str, bool]] = {
    ("v1", "Namespace"): ("/api/v1", "namespaces", False),
    ("v1", "Service"): ("/api/v1", "services", True),
    ("v1", "ServiceAccount"): ("/api/v1", "serviceaccounts", True),
    ("v1", "ConfigMap"): ("/api/v1", "configmaps", True),
    ("v1", "Secret"): ("/api/v1", "secrets", True),
    ("apiextensions.k8s.io/v1", "CustomResourceDefinition"):
        ("/apis/apiextensions.k8s.io/v1", "customresourcedefinitions", False),
    ("rbac.authorization.k8s.io/v1", "ClusterRole"):
        ("/apis/rbac.authorization.k8s.io/v1", "clusterroles", False),
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"):
        ("/apis/rbac.authorization.k8s.io/v1", "clusterrolebindings", False),
    ("rbac.authorization.k8s.io/v1", "Role"): ("/apis/rbac.authorization.k8s.io/v1", "roles", True),
    ("rbac.authorization.k8s.io/v1", "RoleBinding"):
        ("/apis/rbac.authorization.k8s.io/v1", "rolebindings", True),
    ("apiregistration.k8s.io/v1", "APIService"):
        ("/apis/apiregistration.k8s.io/v1", "apiservices", False),
    ("admissionregistration.k8s.io/v1", "ValidatingWebhookConfiguration"):
        ("/apis/admissionregistration.k8s.io/v1", "validatingwebhookconfigurations", False),
    ("admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration"):
        ("/apis/admissionregistration.k8s.io/v1", "mutatingwebhookconfigurations", False),
    ("about.k8s.io/v1beta1", "ClusterProperty"): ("/apis/about.k8s.io/v1beta1", "clusterproperties", False),
    ("about.k8s.io/v1alpha1", "ClusterProperty"):
        ("/apis/about.k8s.io/v1alpha1", "clusterproperties", False),
    ("multicluster.x-k8s.io/v1beta1", "ServiceExport"):
        ("/apis/multicluster.x-k8s.io/v1beta1", "serviceexports", True),
    ("multicluster.x-k8s.io/v1alpha1", "ServiceExport"):
        ("/apis/multicluster.x-k8s.io/v1alpha1", "serviceexports", True),
    ("discovery.k8s.io/v1", "EndpointSlice"): ("/apis/discovery.k8s.io/v1", "endpointslices", True),
    ("coordination.k8s.io/v1", "Lease"): ("/apis/coordination.k8s.io/v1", "leases", True),
}


def object_path(obj: dict[str, Any]) -> str:
    """The REST path of one object (``/apis/<group>/<version>/[namespaces/<ns>/]<plural>/<name>``)."""
    key = (obj["apiVersion"], obj["kind"])
    if key not in _RESOURCES:
        raise ValueError(f"don't know where to apply {obj['apiVersion']} {obj['kind']}")
    prefix, plural, namespaced = _RESOURCES[key]
    meta = obj["metadata"]
    if namespaced:
        return f"{prefix}/namespaces/{meta.get('namespace', 'default')}/{plural}/{meta['name']}"
    return f"{prefix}/{plural}/{meta['name']}"


def load_manifests(*paths: Path) -> list[dict[str, Any]]:
    """Every object of the YAML files (or directories of them, in name order) given."""
    objects: list[dict[str, Any]] = []
    for path in paths:
        files = sorted(path.glob("*.yaml")) if path.is_dir() else [path]
        for file in files:
            objects += [doc for doc in yaml.safe_load_all(file.read_text()) if doc]
    return objects


async def apply(client: KubeClient, objects: Iterable[dict[str, Any]]) -> None:
    for obj in objects:
        await client.json(
            "PATCH",
            object_path(obj),
            params={"fieldManager": FIELD_MANAGER, "force": "true"},
            body=obj,
            content_type="application/apply-patch+yaml",
        )
