"""The objects the benchmarks create, and where they live.

Services have no selector on purpose: kube-controller-manager's endpointslice controller (20 QPS by
default) would otherwise spend minutes writing one empty EndpointSlice per Service while we measure.
"""

from __future__ import annotations

from typing import Any

from benchmarks.context import EXPORTS

#: The N exports of a round are spread over this many namespaces.
SPREAD = 20
PROPAGATION_NAMESPACE = "bench-propagation"
WEBHOOK_NAMESPACE = "bench-webhooks"


def spread_namespace(index: int) -> str:
    return f"bench-{index % SPREAD:02d}"


SPREAD_NAMESPACES = frozenset(spread_namespace(i) for i in range(SPREAD))
ALL_NAMESPACES = (*sorted(SPREAD_NAMESPACES), PROPAGATION_NAMESPACE, WEBHOOK_NAMESPACE)


def service_name(index: int) -> str:
    return f"svc-{index:05d}"


def namespace(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


def service(name: str, ns: str, index: int) -> dict[str, Any]:
    """A ClusterIP Service with one port, or two for odd ``index``."""
    ports = [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}]
    if index % 2:
        ports.append({"name": "grpc", "port": 9090, "protocol": "TCP", "appProtocol": "kubernetes.io/h2c"})
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns},
            "spec": {"type": "ClusterIP", "ports": ports}}


def service_export(name: str, ns: str) -> dict[str, Any]:
    return {"apiVersion": "multicluster.x-k8s.io/v1beta1", "kind": "ServiceExport",
            "metadata": {"name": name, "namespace": ns}}


def cluster_property(name: str, value: str) -> dict[str, Any]:
    return {"apiVersion": "about.k8s.io/v1beta1", "kind": "ClusterProperty",
            "metadata": {"name": name}, "spec": {"value": value}}


def services_path(ns: str) -> str:
    return f"/api/v1/namespaces/{ns}/services"


def exports_path(ns: str) -> str:
    return f"{EXPORTS}/namespaces/{ns}/serviceexports"


CLUSTER_PROPERTIES_PATH = "/apis/about.k8s.io/v1beta1/clusterproperties"
