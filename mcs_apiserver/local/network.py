"""The address plan of a local ClusterSet: every member its own Pod, Service and node ranges.

MCS assumes a flat network across the ClusterSet (routed pod IPs, KEP-1645 "Cluster IP ranges"), so
no two members may share a Pod or Service range, and neither may overlap the ClusterSetIP range
(``243.0.0.0/16``, ``fd00:243::/112`` by default). Member ``i`` (1-based) gets, per IP family:

=========  ======================  =======================  ========================
family     Pod CIDR                Service CIDR             node InternalIPs
=========  ======================  =======================  ========================
IPv4       ``10.<i>.0.0/16``       ``10.<100+i>.0.0/16``    ``172.16.<i>.<n>``
IPv6       ``fd00:10:<i>::/48``    ``fd00:96:<i>::/112``    ``fd00:172:16:<i>::<n>``
=========  ======================  =======================  ========================

(``<i>`` is written in decimal digits inside IPv6 hextets, so member-12 has ``fd00:10:12::/48``:
easy to read, still one distinct range per member.) kube-controller-manager's node IPAM cuts one
``/24`` (IPv4) or ``/64`` (IPv6) per node out of the member's Pod CIDR, and kwok gives each pod an
address from its node's range. ``dual`` lists IPv4 first, the primary family, as Kubernetes does.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Literal, get_args

IPFamily = Literal["ipv4", "ipv6", "dual"]
IP_FAMILIES: tuple[str, ...] = get_args(IPFamily)

#: Member indexes fit one octet of the IPv4 plan without the Pod and Service ranges meeting.
MAX_MEMBERS = 100
#: Node addresses are the last octet of a /24 per member; a 2-core machine runs far fewer anyway.
MAX_NODES = 250
#: The size of each Node's Pod range (kube-controller-manager's defaults, made explicit).
NODE_MASK_IPV4 = 24
NODE_MASK_IPV6 = 64


@dataclass(frozen=True)
class MemberNetwork:
    """One member's ranges, primary family first."""

    pod_cidrs: tuple[str, ...]
    service_cidrs: tuple[str, ...]

    @property
    def pod_cidr(self) -> str:
        """As Kubernetes flags take it (``--cluster-cidr``): comma-separated, primary first."""
        return ",".join(self.pod_cidrs)

    @property
    def service_cidr(self) -> str:
        """As ``--service-cluster-ip-range`` takes it."""
        return ",".join(self.service_cidrs)


def _families(family: IPFamily) -> tuple[int, ...]:
    if family not in IP_FAMILIES:
        raise ValueError(f"unknown IP family {family!r}; choose one of {', '.join(IP_FAMILIES)}")
    return {"ipv4": (4,), "ipv6": (6,), "dual": (4, 6)}[family]


def _check_index(index: int) -> None:
    if not 1 <= index <= MAX_MEMBERS:
        raise ValueError(f"member index {index} is outside 1..{MAX_MEMBERS}")


def member_network(index: int, family: IPFamily = "ipv4") -> MemberNetwork:
    """The ranges of member ``index`` (1-based)."""
    _check_index(index)
    pods, services = [], []
    for version in _families(family):
        if version == 4:
            pods.append(f"10.{index}.0.0/16")
            services.append(f"10.{100 + index}.0.0/16")
        else:
            pods.append(f"fd00:10:{index}::/48")
            services.append(f"fd00:96:{index}::/112")
    return MemberNetwork(tuple(pods), tuple(services))


def node_ips(index: int, node: int, family: IPFamily = "ipv4") -> list[str]:
    """The InternalIPs of node ``node`` (1-based) of member ``index``, primary family first."""
    _check_index(index)
    if not 1 <= node <= MAX_NODES:
        raise ValueError(f"node number {node} is outside 1..{MAX_NODES}")
    return [f"172.16.{index}.{node}" if version == 4 else f"fd00:172:16:{index}::{node}"
            for version in _families(family)]


def node_mask_flags(pod_cidr: str) -> list[str]:
    """kube-controller-manager's node-range size flags for a ``--cluster-cidr``: it refuses the
    per-family flags unless the cluster is dual-stack, and the single one when it is."""
    versions = [ipaddress.ip_network(c.strip()).version for c in pod_cidr.split(",")]
    if len(versions) > 1:
        return [f"--node-cidr-mask-size-ipv4={NODE_MASK_IPV4}", f"--node-cidr-mask-size-ipv6={NODE_MASK_IPV6}"]
    return [f"--node-cidr-mask-size={NODE_MASK_IPV4 if versions[0] == 4 else NODE_MASK_IPV6}"]


def first_service_ip(service_cidr: str) -> str:
    """The address kube-apiserver gives the ``kubernetes`` Service: the first host of the primary
    Service range (its serving certificate must carry it)."""
    network = ipaddress.ip_network(service_cidr.split(",")[0].strip())
    return str(network.network_address + 1)
