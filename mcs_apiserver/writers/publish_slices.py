"""MCS EndpointSlices for one import: the ready endpoints of every exporting cluster. Pure.

One group per (source cluster, address type, ports), split at ``MAX_ENDPOINTS`` like the
endpointslice controller. Labels: ``multicluster.kubernetes.io/service-name``,
``multicluster.kubernetes.io/source-cluster`` and ``endpointslice.kubernetes.io/managed-by`` =
``mcs-apiserver``; never ``kubernetes.io/service-name``, so kube-proxy and the endpointslice
controller never mix remote endpoints into a local Service. Names are derived (import, cluster,
family, a hash of the ports, index), so the same endpoints always land in the same slice and a
restart finds its own objects again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from typing import Any

from mcs_apiserver.contract import Key, ReadyEndpoints, SlicePort

SERVICE_NAME_LABEL = "multicluster.kubernetes.io/service-name"
SOURCE_CLUSTER_LABEL = "multicluster.kubernetes.io/source-cluster"
MANAGED_BY_LABEL = "endpointslice.kubernetes.io/managed-by"
MANAGED_BY = "mcs-apiserver"
MAX_ENDPOINTS = 100


def slice_name(name: str, cluster: str, address_type: str, ports_id: str, index: int) -> str:
    """A DNS subdomain name, at most 63 characters, unique per group and index."""
    digest = hashlib.sha256(f"{name}/{cluster}/{address_type}/{ports_id}".encode()).hexdigest()[:10]
    prefix = f"{name}-{cluster}"[:40].rstrip("-.")
    return f"{prefix}-{address_type.lower()}-{digest}-{index}"


def desired_endpoint_slices(
    key: Key, sources: Iterable[tuple[str, Sequence[ReadyEndpoints]]]
) -> dict[str, dict[str, Any]]:
    """The MCS EndpointSlices of import ``key``, by name.

    ``sources``: (cluster ID, that cluster's EndpointSlices of the exported Service) for each
    contributing cluster. A cluster without ready endpoints gets no slice.
    """
    namespace, name = key
    out: dict[str, dict[str, Any]] = {}
    for cluster, slices in sources:
        groups: dict[tuple[str, tuple], list[dict[str, Any]]] = {}
        for source in slices:
            group = groups.setdefault((source.family, source.ports), [])
            for ready in source.endpoints:
                endpoint: dict[str, Any] = {"addresses": list(ready.addresses), "conditions": {"ready": True}}
                if ready.hostname:
                    endpoint["hostname"] = ready.hostname
                group.append(endpoint)
        for (address_type, ports), endpoints in sorted(groups.items(), key=lambda g: (g[0][0], repr(g[0][1]))):
            if not endpoints:
                continue
            endpoints.sort(key=lambda e: (e["addresses"], e.get("hostname") or ""))
            wire_ports = [_port(p) for p in ports]
            ports_id = hashlib.sha256(repr(ports).encode()).hexdigest()[:8]
            for index in range(0, len(endpoints), MAX_ENDPOINTS):
                slice_ = slice_name(name, cluster, address_type, ports_id, index // MAX_ENDPOINTS)
                out[slice_] = {
                    "apiVersion": "discovery.k8s.io/v1",
                    "kind": "EndpointSlice",
                    "metadata": {
                        "name": slice_,
                        "namespace": namespace,
                        "labels": {
                            SERVICE_NAME_LABEL: name,
                            SOURCE_CLUSTER_LABEL: cluster,
                            MANAGED_BY_LABEL: MANAGED_BY,
                        },
                    },
                    "addressType": address_type,
                    "ports": wire_ports,
                    "endpoints": endpoints[index:index + MAX_ENDPOINTS],
                }
    return out


def _port(port: SlicePort) -> dict[str, Any]:
    out: dict[str, Any] = {"name": port.name, "protocol": port.protocol, "port": port.port}
    if port.app_protocol:
        out["appProtocol"] = port.app_protocol
    return out
