"""Workloads on the local ClusterSet: real controllers and scheduler, kwok Nodes, real EndpointSlices,
and the views that follow them."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import subprocess
import sys

import pytest

from mcs_apiserver.local import cluster
from mcs_apiserver.local.state import MemberPorts
from tests.e2e.conftest import Kubectl
from tests.e2e.helpers import (
    IMAGE,
    deployment,
    eventually,
    namespace_in,
    service,
    service_export,
    statefulset,
)

pytestmark = pytest.mark.e2e

MEMBERS = ("member-1", "member-2", "member-3")
def _pods(kubectl, ns: str, context: str, app: str) -> list[dict]:
    return kubectl.json("get", "pods", "-n", ns, "-l", f"app={app}", context=context)["items"]


def _running_with_ips(kubectl, ns: str, context: str, app: str, count: int) -> list[dict] | None:
    pods = _pods(kubectl, ns, context, app)
    running = [p for p in pods if p["status"].get("phase") == "Running" and p["status"].get("podIP")
               and not p["metadata"].get("deletionTimestamp")]
    return running if len(running) == count == len(pods) else None


def _pod_ready(pod: dict) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in pod["status"].get("conditions", []))


def _import(kubectl, ns: str, name: str, context: str = "member-1") -> dict | None:
    proc = kubectl.run("get", "serviceimports", name, "-n", ns, "-o", "json", context=context, check=False)
    return json.loads(proc.stdout) if proc.returncode == 0 else None


def _ready_endpoints(kubectl, ns: str, name: str, context: str = "member-1") -> int | None:
    imported = _import(kubectl, ns, name, context)
    if imported is None:
        return None
    return sum(c.get("readyEndpoints", 0) for c in imported.get("status", {}).get("clusters", []))


def _import_ready(kubectl, ns: str, name: str, context: str = "member-1") -> str | None:
    imported = _import(kubectl, ns, name, context)
    conditions = (imported or {}).get("status", {}).get("conditions", [])
    return next((c["status"] for c in conditions if c["type"] == "Ready"), None)


def _pod_cidr_of(member: MemberPorts) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    return [ipaddress.ip_network(c) for c in member.pod_cidr.split(",")]


def _pod_cidr(clusterset, member: str) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    return _pod_cidr_of(clusterset.state.member(member))


@pytest.fixture
def ns(kubectl):
    with namespace_in(kubectl, "work", MEMBERS) as name:
        yield name


@pytest.fixture
def exported_deployment(kubectl, ns):
    """A 3-replica Deployment behind a Service exported from member-2, once its pods run."""
    kubectl.apply(deployment("web", ns, 3), "member-2")
    kubectl.apply(service("web", ns, selector={"app": "web"},
                          ports=[{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}]), "member-2")
    kubectl.apply(service_export("web", ns), "member-2")
    eventually(lambda: _running_with_ips(kubectl, ns, "member-2", "web", 3), timeout=60,
               what="3 Running pods with IPs in member-2")
    return ns


def test_every_member_has_its_nodes_ready_with_a_range_of_its_own_pod_cidr(clusterset, kubectl):
    for member in MEMBERS:
        nodes = kubectl.json("get", "nodes", context=member)["items"]
        assert len(nodes) == clusterset.state.nodes == 2
        for node in nodes:
            assert node["metadata"]["name"].startswith(member + "-node-")
            assert any(c["type"] == "Ready" and c["status"] == "True" for c in node["status"]["conditions"])
            (pod_range,) = node["spec"]["podCIDRs"]
            assert any(ipaddress.ip_network(pod_range).subnet_of(r) for r in _pod_cidr(clusterset, member))


def test_a_deployment_exported_from_member_2_gives_three_ready_endpoints_in_member_1(kubectl, exported_deployment):
    ns = exported_deployment
    pods = _running_with_ips(kubectl, ns, "member-2", "web", 3)
    assert pods and all(_pod_ready(p) and p["spec"]["nodeName"].startswith("member-2-node-") for p in pods)
    eventually(lambda: _ready_endpoints(kubectl, ns, "web") == 3, what="3 ready endpoints in member-1's import")
    assert _import_ready(kubectl, ns, "web") == "True"
    wide = kubectl.run("get", "serviceimports", "web", "-n", ns, "-o", "wide", context="member-1").stdout
    assert "member-2" in wide


def test_scaling_the_exported_deployment_to_zero_and_back_shows_in_the_import(kubectl, exported_deployment):
    ns = exported_deployment
    eventually(lambda: _ready_endpoints(kubectl, ns, "web") == 3, what="3 ready endpoints")
    kubectl.run("scale", "deployment", "web", "-n", ns, "--replicas=0", context="member-2")
    eventually(lambda: _ready_endpoints(kubectl, ns, "web") == 0, what="0 ready endpoints after scaling to 0")
    assert _import_ready(kubectl, ns, "web") == "False"
    kubectl.run("scale", "deployment", "web", "-n", ns, "--replicas=3", context="member-2")
    eventually(lambda: _ready_endpoints(kubectl, ns, "web") == 3, what="3 ready endpoints after scaling back")
    assert _import_ready(kubectl, ns, "web") == "True"


def test_a_statefulset_behind_a_headless_export_has_endpoints_with_their_hostnames(kubectl, ns):
    kubectl.apply(service("db", ns, headless=True, selector={"app": "db"}), "member-2")
    kubectl.apply(statefulset("db", ns, 2, "db"), "member-2")
    kubectl.apply(service_export("db", ns), "member-2")
    eventually(lambda: _running_with_ips(kubectl, ns, "member-2", "db", 2), timeout=60,
               what="2 Running StatefulSet pods")

    def endpoints() -> list[dict] | None:
        slices = kubectl.json("get", "endpointslices", "-n", ns, "-l", "kubernetes.io/service-name=db",
                              context="member-2")["items"]
        found = [e for s in slices for e in s.get("endpoints") or []]
        return found if len(found) == 2 and all(e["conditions"].get("ready") for e in found) else None

    found = eventually(endpoints, what="2 ready endpoints in db's EndpointSlices")
    assert sorted(e.get("hostname") for e in found) == ["db-0", "db-1"]
    pods = {p["metadata"]["name"]: p for p in _pods(kubectl, ns, "member-2", "db")}
    assert {name: (p["spec"].get("hostname"), p["spec"].get("subdomain")) for name, p in pods.items()} == {
        "db-0": ("db-0", "db"), "db-1": ("db-1", "db")}
    imported = eventually(lambda: _import(kubectl, ns, "db"), what="db imported in member-1")
    assert imported["spec"]["type"] == "Headless"
    eventually(lambda: _ready_endpoints(kubectl, ns, "db") == 2, what="2 ready endpoints in db's import")


def test_a_job_runs_to_completion_on_the_simulated_nodes(kubectl, ns):
    kubectl.apply(json.dumps({
        "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "once", "namespace": ns},
        "spec": {"completions": 2, "parallelism": 2, "template": {"spec": {
            "restartPolicy": "Never", "containers": [{"name": "job", "image": IMAGE}]}}},
    }), "member-3")

    def complete() -> dict | None:
        job = kubectl.json("get", "job", "once", "-n", ns, context="member-3")
        done = any(c["type"] == "Complete" and c["status"] == "True" for c in job["status"].get("conditions", []))
        return job if done else None

    job = eventually(complete, timeout=60, what="the Job to complete")
    assert job["status"]["succeeded"] == 2


def test_pods_of_different_members_never_share_an_ip(clusterset, kubectl, ns):
    for member in MEMBERS:
        kubectl.apply(deployment("spread", ns, 4), member)
    addresses: dict[str, str] = {}
    for member in MEMBERS:
        pods = eventually(lambda m=member: _running_with_ips(kubectl, ns, m, "spread", 4), timeout=60,
                          what=f"4 Running pods in {member}")
        for pod in pods:
            ip = pod["status"]["podIP"]
            assert ip not in addresses, f"{member}'s pod and {addresses[ip]}'s pod share {ip}"
            addresses[ip] = member
            assert any(ipaddress.ip_address(ip) in r for r in _pod_cidr(clusterset, member))
    assert len(addresses) == 12


def test_a_stopped_kwok_makes_its_pods_not_ready_and_starting_it_brings_them_back(clusterset, kubectl,
                                                                                  exported_deployment):
    """kwok is every kubelet of member-2: without it the Node Leases go stale, the node-lifecycle
    controller marks the Nodes Unknown and their pods NotReady, and the endpointslice controller
    turns their endpoints not ready. The pods keep running (phase Running, same IPs)."""
    ns = exported_deployment
    before = {p["metadata"]["name"]: p["status"]["podIP"] for p in _pods(kubectl, ns, "member-2", "web")}
    eventually(lambda: _ready_endpoints(kubectl, ns, "web") == 3, what="3 ready endpoints")
    assert cluster.stop_member(clusterset.state_dir, "member-2", "kwok") == ["member-2/kwok"]
    try:
        eventually(lambda: _ready_endpoints(kubectl, ns, "web") == 0, timeout=60,
                   what="0 ready endpoints once member-2's kwok is gone")
        nodes = kubectl.json("get", "nodes", context="member-2")["items"]
        assert all(next(c["status"] for c in n["status"]["conditions"] if c["type"] == "Ready") == "Unknown"
                   for n in nodes)
        pods = _pods(kubectl, ns, "member-2", "web")
        assert not any(_pod_ready(p) for p in pods)
        assert {p["metadata"]["name"]: p["status"]["podIP"] for p in pods} == before
        assert all(p["status"]["phase"] == "Running" for p in pods)
        assert _import_ready(kubectl, ns, "web") == "False"
    finally:
        started = asyncio.run(cluster.start_member(clusterset.state_dir, "member-2", "kwok"))
    assert started == ["member-2/kwok"]
    eventually(lambda: _ready_endpoints(kubectl, ns, "web") == 3, timeout=30,
               what="3 ready endpoints again once kwok is back")
    pods = _pods(kubectl, ns, "member-2", "web")
    assert all(_pod_ready(p) for p in pods)
    assert {p["metadata"]["name"]: p["status"]["podIP"] for p in pods} == before


def test_local_status_json_gives_each_member_its_components_cidrs_nodes_and_addresses(clusterset):
    proc = subprocess.run([sys.executable, "-m", "mcs_apiserver", "local", "status", "-o", "json",
                           "--state-dir", str(clusterset.state_dir)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["clusterset"] == "local" and doc["nodesPerMember"] == 2 and doc["ipFamily"] == "ipv4"
    assert doc["components"]["etcd"]["state"] == "running"
    assert [m["name"] for m in doc["members"]] == list(MEMBERS)
    all_ranges = []
    for member in doc["members"]:
        ports = clusterset.state.member(member["name"])
        assert member["context"] == member["name"]
        assert member["apiServer"] == f"https://127.0.0.1:{ports.apiserver_port}"
        assert member["addresses"]["mcsApiserver"] == f"127.0.0.1:{ports.mcs_port}"
        assert {name: c["state"] for name, c in member["components"].items()} == {
            name: "running" for name in ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok",
                                         "mcs-apiserver")}
        assert all(c["pid"] > 0 for c in member["components"].values())
        assert len(member["nodes"]) == 2 and all(n["ready"] and n["podCIDRs"] for n in member["nodes"])
        all_ranges += [ipaddress.ip_network(c) for c in member["podCIDRs"] + member["serviceCIDRs"]]
    assert len(all_ranges) == 6
    assert not any(a.overlaps(b) for i, a in enumerate(all_ranges) for b in all_ranges[i + 1:])


def test_a_dual_stack_clusterset_gives_nodes_pods_and_services_an_address_of_each_family(binaries, tmp_path):
    state = asyncio.run(cluster.up(cluster.UpOptions(state_dir=tmp_path, members=1, nodes=1, ip_family="dual")))
    try:
        kubectl = Kubectl(binaries.kubectl, tmp_path / cluster.ADMIN_KUBECONFIG, tmp_path / "kubectl-cache")
        (node,) = kubectl.json("get", "nodes")["items"]
        assert [ipaddress.ip_network(c).version for c in node["spec"]["podCIDRs"]] == [4, 6]
        kubectl.apply(deployment("web", "default", 2))
        kubectl.apply(service("web", "default", selector={"app": "web"}, ipFamilyPolicy="RequireDualStack"))
        pods = eventually(lambda: _running_with_ips(kubectl, "default", "member-1", "web", 2), timeout=60,
                          what="2 Running dual-stack pods")
        pod_ranges = _pod_cidr_of(state.member("member-1"))
        for pod in pods:
            ips = [ipaddress.ip_address(p["ip"]) for p in pod["status"]["podIPs"]]
            assert [ip.version for ip in ips] == [4, 6]
            assert all(any(ip in r for r in pod_ranges) for ip in ips)
        cluster_ips = kubectl.json("get", "service", "web")["spec"]["clusterIPs"]
        assert [ipaddress.ip_address(ip).version for ip in cluster_ips] == [4, 6]
        # one EndpointSlice per family, the same 2 pods in both: the import counts 2 endpoints, not 4
        kubectl.apply(service_export("web", "default"))
        eventually(lambda: _ready_endpoints(kubectl, "default", "web") == 2, timeout=60,
                   what="2 ready endpoints (each dual-stack pod once) in the import")
    finally:
        cluster.down(tmp_path)


def test_pods_wait_pending_while_the_scheduler_is_stopped_and_are_scheduled_once_it_starts(clusterset, kubectl, ns):
    assert cluster.stop_member(clusterset.state_dir, "member-3", "kube-scheduler") == ["member-3/kube-scheduler"]
    try:
        kubectl.apply(deployment("later", ns, 2), "member-3")
        pods = eventually(lambda: len(p := _pods(kubectl, ns, "member-3", "later")) == 2 and p,
                          what="2 pods created by the ReplicaSet")
        assert all(p["status"].get("phase") == "Pending" and not p["spec"].get("nodeName") for p in pods)
    finally:
        started = asyncio.run(cluster.start_member(clusterset.state_dir, "member-3", "kube-scheduler"))
    assert started == ["member-3/kube-scheduler"]
    pods = eventually(lambda: _running_with_ips(kubectl, ns, "member-3", "later", 2), timeout=60,
                      what="2 Running pods once the scheduler is back")
    assert all(p["spec"]["nodeName"].startswith("member-3-node-") for p in pods)
