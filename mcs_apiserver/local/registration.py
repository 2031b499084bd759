"""Register one mcs-apiserver instance in its local member, from the same manifests a user applies.

The differences from a real deployment are only where the instance runs and who it is: the Service
is an ``ExternalName`` to ``localhost`` (kube-apiserver then dials ``localhost:<port>`` for the
APIService and the webhooks, with ServerName ``mcs-apiserver.mcs-system.svc``, which the serving
certificate covers), the caBundle is the local serving CA's, and the RBAC subjects are the user
``system:mcs-apiserver`` of the local client certificate instead of the ServiceAccount.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from mcs_apiserver.local.apply import load_manifests
from mcs_apiserver.local.pki import MCS_NAMESPACE, MCS_SERVICE, MCS_USER

APISERVICE_NAME = "v1alpha1.views.multicluster.x-k8s.io"
GROUP_VERSION = "views.multicluster.x-k8s.io/v1alpha1"


def _user_subjects(obj: dict[str, Any]) -> dict[str, Any]:
    obj = copy.deepcopy(obj)
    if "subjects" in obj:
        obj["subjects"] = [{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": MCS_USER}]
    return obj


def access_objects(manifests: Path) -> list[dict[str, Any]]:
    """Namespace and RBAC: what the instance may do, before it starts."""
    objects = load_manifests(manifests / "namespace.yaml", manifests / "rbac.yaml")
    return [_user_subjects(o) for o in objects if o["kind"] != "ServiceAccount"]


def publish_objects(manifests: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The upstream ServiceImport CRD, and the RBAC an instance needs to publish (local user subjects)."""
    crds = load_manifests(manifests / "publish" / "serviceimports.multicluster.x-k8s.io.yaml")
    rbac = load_manifests(manifests / "publish" / "rbac.yaml")
    return crds, [_user_subjects(o) for o in rbac]


def service(port: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": MCS_SERVICE, "namespace": MCS_NAMESPACE,
                     "labels": {"app.kubernetes.io/name": "mcs-apiserver"}},
        "spec": {"type": "ExternalName", "externalName": "localhost",
                 "ports": [{"name": "https", "port": port, "protocol": "TCP"}]},
    }


def registration_objects(manifests: Path, port: int, ca_bundle: str) -> list[dict[str, Any]]:
    """The APIService and the webhook configurations, pointed at this instance's port."""
    objects = load_manifests(manifests / "apiservice.yaml", manifests / "webhooks.yaml")
    registered = []
    for obj in copy.deepcopy(objects):
        if obj["kind"] == "APIService":
            obj["spec"]["caBundle"] = ca_bundle
            obj["spec"]["service"]["port"] = port
        else:
            for webhook in obj["webhooks"]:
                webhook["clientConfig"]["caBundle"] = ca_bundle
                webhook["clientConfig"]["service"]["port"] = port
        registered.append(obj)
    return registered
