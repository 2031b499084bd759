"""Small helpers shared by the e2e tests: manifests as text, polling, unique namespaces."""

from __future__ import annotations

import contextlib
import itertools
import json
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")

_counter = itertools.count()


def unique_namespace(prefix: str) -> str:
    return f"{prefix}-{next(_counter)}-{uuid.uuid4().hex[:5]}"


@contextlib.contextmanager
def namespace_in(kubectl: Any, prefix: str, members: Iterable[str]) -> Iterator[str]:
    """A fresh namespace in each of ``members``, deleted from them afterwards (without waiting)."""
    name, members = unique_namespace(prefix), tuple(members)
    for member in members:
        kubectl.apply(namespace(name), member)
    try:
        yield name
    finally:
        for member in members:
            kubectl.run("delete", "namespace", name, "--wait=false", context=member, check=False)


def eventually(probe: Callable[[], T], *, timeout: float = 30.0, interval: float = 0.2,
               what: str = "the condition") -> T:
    """Poll ``probe`` until it returns something truthy without raising; fail with the last state."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            last = probe()
            if last:
                return last
        except AssertionError as error:
            last = error
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}; last: {last!r}")
        time.sleep(interval)


def service(name: str, namespace: str, *, ports: list[dict[str, Any]] | None = None,
            headless: bool = False, service_type: str | None = None, **spec: Any) -> str:
    body: dict[str, Any] = {"ports": ports or [{"name": "http", "port": 80, "protocol": "TCP"}]}
    if headless:
        body["clusterIP"] = "None"
    if service_type:
        body["type"] = service_type
    body.update(spec)
    return json.dumps({"apiVersion": "v1", "kind": "Service",
                       "metadata": {"name": name, "namespace": namespace}, "spec": body})


def external_name_service(name: str, namespace: str) -> str:
    return json.dumps({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": namespace},
                       "spec": {"type": "ExternalName", "externalName": "example.com"}})


def service_export(name: str, namespace: str, *, version: str = "v1beta1", labels: dict | None = None) -> str:
    spec = {"exportedLabels": labels} if labels else {}
    return json.dumps({"apiVersion": f"multicluster.x-k8s.io/{version}", "kind": "ServiceExport",
                       "metadata": {"name": name, "namespace": namespace}, "spec": spec})


def endpoint_slice(service_name: str, namespace: str, addresses: list[str], *, ready: bool = True,
                   name: str | None = None) -> str:
    return json.dumps({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": name or f"{service_name}-manual", "namespace": namespace,
                     "labels": {"kubernetes.io/service-name": service_name,
                                "endpointslice.kubernetes.io/managed-by": "e2e.mcs-apiserver"}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        "endpoints": [{"addresses": [a], "conditions": {"ready": ready}} for a in addresses],
    })


def namespace(name: str) -> str:
    return json.dumps({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})


#: Nothing runs it: kwok plays the kubelet, so any image name works; this one is what Kubernetes uses.
IMAGE = "registry.k8s.io/pause:3.10"


def deployment(name: str, ns: str, replicas: int) -> str:
    labels = {"app": name}
    return json.dumps({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": ns},
        "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                 "template": {"metadata": {"labels": labels},
                              "spec": {"containers": [{"name": "web", "image": IMAGE,
                                                       "ports": [{"containerPort": 8080}]}]}}},
    })


def statefulset(name: str, ns: str, replicas: int, service_name: str) -> str:
    labels = {"app": name}
    return json.dumps({
        "apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": name, "namespace": ns},
        "spec": {"replicas": replicas, "serviceName": service_name, "selector": {"matchLabels": labels},
                 "template": {"metadata": {"labels": labels},
                              "spec": {"containers": [{"name": "db", "image": IMAGE}]}}},
    })
