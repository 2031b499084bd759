"""Command lines of the upstream components of one local member, and their readiness probes.

One etcd serves every member, each under its own key prefix: on a 2-core machine, N etcds cost
memory and fsyncs for nothing. Each member gets a kube-apiserver with the aggregation layer enabled,
a kube-controller-manager running every default controller (workloads, node IPAM from the member's
Pod CIDR, node lifecycle), and, when it has nodes, a kube-scheduler and one kwok that plays the
kubelet of all its simulated Nodes.
"""

from __future__ import annotations

import ssl
from pathlib import Path

import aiohttp

from mcs_apiserver.local.binaries import Binaries
from mcs_apiserver.local.network import node_mask_flags
from mcs_apiserver.local.pki import LocalPKI
from mcs_apiserver.local.state import MemberPorts

#: Every controller kube-controller-manager enables by default. Since Kubernetes 1.33 the cloud
#: controllers (service-lb, node-route, cloud-node-lifecycle) live only in cloud-controller-manager,
#: so the defaults are exactly the ones that make sense without a cloud.
CONTROLLERS = "*"

#: How often kwok renews each Node's Lease (a quarter of its duration), and how long
#: kube-controller-manager's node-lifecycle controller waits for a renewal before it marks a Node
#: Unknown and its pods NotReady. The upstream defaults (40 s and 50 s) would make a stopped kwok
#: show only after almost a minute; these keep the same 1:2 ratio at a scale where stopping kwok
#: shows in seconds.
NODE_LEASE_DURATION_SECONDS = 8
NODE_MONITOR_GRACE_PERIOD = "16s"
NODE_MONITOR_PERIOD = "2s"

#: The annotation kwok selects its Nodes by (kwok's own convention).
KWOK_NODE_ANNOTATION = ("kwok.x-k8s.io/node", "fake")


def etcd_argv(binaries: Binaries, data_dir: Path, client_port: int, peer_port: int) -> list[str]:
    client = f"http://127.0.0.1:{client_port}"
    peer = f"http://127.0.0.1:{peer_port}"
    return [
        str(binaries.etcd),
        "--name=local",
        f"--data-dir={data_dir}",
        f"--listen-client-urls={client}",
        f"--advertise-client-urls={client}",
        f"--listen-peer-urls={peer}",
        f"--initial-advertise-peer-urls={peer}",
        f"--initial-cluster=local={peer}",
        # A throwaway development store: durability is not worth an fsync per write here.
        "--unsafe-no-fsync=true",
        "--quota-backend-bytes=8589934592",
        "--log-level=warn",
    ]


def kube_apiserver_argv(binaries: Binaries, pki: LocalPKI, member: MemberPorts, etcd_port: int) -> list[str]:
    return [
        str(binaries.kube_apiserver),
        f"--etcd-servers=http://127.0.0.1:{etcd_port}",
        f"--etcd-prefix=/{member.name}/registry",
        "--bind-address=127.0.0.1",
        "--advertise-address=127.0.0.1",
        f"--secure-port={member.apiserver_port}",
        f"--tls-cert-file={pki.cert(member.name + '-apiserver')}",
        f"--tls-private-key-file={pki.key(member.name + '-apiserver')}",
        f"--client-ca-file={pki.ca_cert}",
        f"--service-cluster-ip-range={member.service_cidr}",
        f"--service-account-issuer=https://{member.name}.clusterset.local",
        f"--service-account-key-file={pki.path('service-account.pub')}",
        f"--service-account-signing-key-file={pki.path('service-account.key')}",
        "--authorization-mode=RBAC",
        "--allow-privileged=true",
        # Loopback addresses are refused in Endpoints, and no pod could reach this one anyway:
        # the kubernetes Service keeps no endpoints.
        "--endpoint-reconciler-type=none",
        # The aggregation layer: kube-apiserver proxies /apis/views.multicluster.x-k8s.io to the
        # instance with this client certificate and X-Remote-* headers.
        f"--requestheader-client-ca-file={pki.front_proxy_ca_cert}",
        "--requestheader-allowed-names=front-proxy-client",
        "--requestheader-username-headers=X-Remote-User",
        "--requestheader-group-headers=X-Remote-Group",
        "--requestheader-extra-headers-prefix=X-Remote-Extra-",
        f"--proxy-client-cert-file={pki.cert('front-proxy-client')}",
        f"--proxy-client-key-file={pki.key('front-proxy-client')}",
        "--profiling=false",
        "--event-ttl=1h",
    ]


def kube_controller_manager_argv(
    binaries: Binaries, pki: LocalPKI, member: MemberPorts, kubeconfig: Path
) -> list[str]:
    return [
        str(binaries.kube_controller_manager),
        f"--kubeconfig={kubeconfig}",
        f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}",
        "--bind-address=127.0.0.1",
        f"--secure-port={member.controller_manager_port}",
        f"--controllers={CONTROLLERS}",
        f"--service-account-private-key-file={pki.path('service-account.key')}",
        f"--root-ca-file={pki.ca_cert}",
        "--use-service-account-credentials=true",
        "--leader-elect=false",
        f"--cluster-name={member.name}",
        # Node IPAM: one range per Node out of the member's Pod CIDR; kwok takes pod IPs from it.
        "--allocate-node-cidrs=true",
        f"--cluster-cidr={member.pod_cidr}",
        *node_mask_flags(member.pod_cidr),
        f"--service-cluster-ip-range={member.service_cidr}",
        f"--node-monitor-grace-period={NODE_MONITOR_GRACE_PERIOD}",
        f"--node-monitor-period={NODE_MONITOR_PERIOD}",
        "--profiling=false",
    ]


def kube_scheduler_argv(binaries: Binaries, member: MemberPorts, kubeconfig: Path) -> list[str]:
    return [
        str(binaries.kube_scheduler),
        f"--kubeconfig={kubeconfig}",
        f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}",
        "--bind-address=127.0.0.1",
        f"--secure-port={member.scheduler_port}",
        "--leader-elect=false",
        "--profiling=false",
    ]


def kwok_argv(binaries: Binaries, member: MemberPorts, kubeconfig: Path, extra_stages: Path) -> list[str]:
    """kwok for every Node of the member that carries kwok's annotation: kwok's own "fast" stages
    (from its module, kept in the binary cache) plus ours (see ``nodes.KWOK_EXTRA_STAGES``)."""
    key, value = KWOK_NODE_ANNOTATION
    return [
        str(binaries.kwok),
        f"--kubeconfig={kubeconfig}",
        f"--config={binaries.kwok_stages}",
        f"--config={extra_stages}",
        f"--manage-nodes-with-annotation-selector={key}={value}",
        f"--node-lease-duration-seconds={NODE_LEASE_DURATION_SECONDS}",
        f"--server-address=127.0.0.1:{member.kwok_port}",
        # kwok logs every Lease renewal and status patch at INFO: keep its log to what went wrong.
        "--v=WARN",
    ]


async def etcd_healthy(session: aiohttp.ClientSession, port: int) -> bool:
    async with session.get(f"http://127.0.0.1:{port}/health", timeout=aiohttp.ClientTimeout(total=3)) as r:
        return r.status == 200 and b'"health":"true"' in (await r.read()).replace(b" ", b"")


async def https_ok(session: aiohttp.ClientSession, url: str, ssl_context: ssl.SSLContext | bool) -> bool:
    """GET ``url`` and report whether it answered 200 ``ok`` (readyz/healthz style)."""
    async with session.get(url, ssl=ssl_context, timeout=aiohttp.ClientTimeout(total=5)) as response:
        return response.status == 200


async def http_ok(session: aiohttp.ClientSession, url: str) -> bool:
    """GET a plain-HTTP health endpoint (kwok's ``/healthz``) and report whether it answered 200."""
    async with session.get(url, timeout=aiohttp.ClientTimeout(total=5)) as response:
        return response.status == 200
