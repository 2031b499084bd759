"""The address plan of the local ClusterSet, its simulated Nodes, and what ``local status`` reports."""

from __future__ import annotations

import ipaddress
import itertools
from pathlib import Path

import pytest
import yaml

from mcs_apiserver.local import controlplane, network, nodes, report
from mcs_apiserver.local.binaries import Binaries
from mcs_apiserver.local.pki import LocalPKI
from mcs_apiserver.local.processes import ProcessRecord
from mcs_apiserver.local.state import LocalState, MemberPorts

CLUSTERSET_IP_RANGES = [ipaddress.ip_network("243.0.0.0/16"), ipaddress.ip_network("fd00:243::/112")]


def _ranges(family: network.IPFamily, members: int) -> list[tuple[str, ipaddress.IPv4Network | ipaddress.IPv6Network]]:
    ranges = []
    for i in range(1, members + 1):
        plan = network.member_network(i, family)
        ranges += [(f"member-{i} pods", ipaddress.ip_network(c)) for c in plan.pod_cidrs]
        ranges += [(f"member-{i} services", ipaddress.ip_network(c)) for c in plan.service_cidrs]
    return ranges


@pytest.mark.parametrize("family", network.IP_FAMILIES)
def test_no_two_ranges_of_the_largest_clusterset_overlap_nor_meet_the_clusterset_ips(family):
    ranges = _ranges(family, network.MAX_MEMBERS)
    for (name_a, a), (name_b, b) in itertools.combinations(ranges, 2):
        assert not a.overlaps(b), f"{name_a} {a} overlaps {name_b} {b}"
    for name, cidr in ranges:
        assert not any(cidr.overlaps(c) for c in CLUSTERSET_IP_RANGES if c.version == cidr.version), name


def test_member_ranges_are_readable_from_the_member_number():
    plan = network.member_network(2)
    assert plan.pod_cidrs == ("10.2.0.0/16",) and plan.service_cidrs == ("10.102.0.0/16",)
    dual = network.member_network(12, "dual")
    assert dual.pod_cidr == "10.12.0.0/16,fd00:10:12::/48"
    assert dual.service_cidr == "10.112.0.0/16,fd00:96:12::/112"
    assert network.member_network(3, "ipv6").pod_cidrs == ("fd00:10:3::/48",)


@pytest.mark.parametrize("family", network.IP_FAMILIES)
def test_every_pod_range_holds_one_node_range_per_node_the_plan_allows(family):
    for cidr in network.member_network(network.MAX_MEMBERS, family).pod_cidrs:
        net = ipaddress.ip_network(cidr)
        mask = network.NODE_MASK_IPV4 if net.version == 4 else network.NODE_MASK_IPV6
        # kube-controller-manager refuses a node mask more than 16 bits longer than the cluster's
        assert 0 < mask - net.prefixlen <= 16
        assert 2 ** (mask - net.prefixlen) >= network.MAX_NODES


def test_node_addresses_are_distinct_across_members_and_outside_every_range():
    ranges = [r for _, r in _ranges("dual", network.MAX_MEMBERS)]
    seen = set()
    for member, node in itertools.product((1, 2, 57, network.MAX_MEMBERS), (1, 2, network.MAX_NODES)):
        for ip in network.node_ips(member, node, "dual"):
            address = ipaddress.ip_address(ip)
            assert address not in seen
            seen.add(address)
            assert not any(address in r for r in ranges if r.version == address.version)


def test_out_of_plan_members_nodes_and_families_are_refused():
    with pytest.raises(ValueError, match="outside 1..100"):
        network.member_network(101)
    with pytest.raises(ValueError, match="node number 0"):
        network.node_ips(1, 0)
    with pytest.raises(ValueError, match="unknown IP family 'ipv5'"):
        network.member_network(1, "ipv5")  # type: ignore[arg-type]


def test_the_kubernetes_service_ip_is_the_first_host_of_the_primary_service_range():
    assert network.first_service_ip("10.101.0.0/16") == "10.101.0.1"
    assert network.first_service_ip("fd00:96:1::/112,10.101.0.0/16") == "fd00:96:1::1"


def _member(family: network.IPFamily = "ipv4") -> MemberPorts:
    plan = network.member_network(2, family)
    return MemberPorts("member-2", 2, 10, 11, 12, plan.service_cidr, plan.pod_cidr, 13, 14)


def _binaries(tmp_path: Path) -> Binaries:
    return Binaries(*(tmp_path / n for n in ("a", "c", "s", "k", "e", "w", "stages.yaml", "d")))


def test_the_controller_manager_runs_every_default_controller_and_cuts_node_ranges_from_the_pod_cidr(tmp_path):
    argv = controlplane.kube_controller_manager_argv(_binaries(tmp_path), LocalPKI(tmp_path), _member("dual"),
                                                     tmp_path / "kcm.kubeconfig")
    flags = dict(arg.split("=", 1) for arg in argv[1:])
    assert flags["--controllers"] == "*"
    assert flags["--allocate-node-cidrs"] == "true"
    assert flags["--cluster-cidr"] == "10.2.0.0/16,fd00:10:2::/48"
    assert flags["--service-cluster-ip-range"] == "10.102.0.0/16,fd00:96:2::/112"
    assert flags["--node-cidr-mask-size-ipv4"] == "24" and flags["--node-cidr-mask-size-ipv6"] == "64"


def test_single_stack_members_get_the_single_node_mask_flag_that_kube_controller_manager_accepts():
    assert network.node_mask_flags("10.2.0.0/16") == ["--node-cidr-mask-size=24"]
    assert network.node_mask_flags("fd00:10:2::/48") == ["--node-cidr-mask-size=64"]


def test_kwok_manages_only_annotated_nodes_with_its_own_stages_and_ours(tmp_path):
    bins = _binaries(tmp_path)
    argv = controlplane.kwok_argv(bins, _member(), tmp_path / "kwok.kubeconfig", tmp_path / "extra.yaml")
    assert argv[0] == str(bins.kwok)
    assert f"--config={bins.kwok_stages}" in argv and f"--config={tmp_path / 'extra.yaml'}" in argv
    assert "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake" in argv
    assert "--server-address=127.0.0.1:14" in argv


def test_kwok_renews_leases_well_within_the_node_monitor_grace_period():
    renew = controlplane.NODE_LEASE_DURATION_SECONDS / 4
    grace = float(controlplane.NODE_MONITOR_GRACE_PERIOD.removesuffix("s"))
    assert grace >= 2 * controlplane.NODE_LEASE_DURATION_SECONDS and grace >= 4 * renew


def test_a_node_is_annotated_for_kwok_and_carries_its_planned_addresses():
    node = nodes.node_object("member-2", 2, 1, "dual")
    assert node["metadata"]["name"] == "member-2-node-1"
    assert node["metadata"]["annotations"] == {"kwok.x-k8s.io/node": "fake"}
    assert node["metadata"]["labels"]["kubernetes.io/hostname"] == "member-2-node-1"
    assert node["status"]["addresses"] == [
        {"type": "InternalIP", "address": "172.16.2.1"},
        {"type": "InternalIP", "address": "fd00:172:16:2::1"},
        {"type": "Hostname", "address": "member-2-node-1"},
    ]
    assert "spec" not in node  # no taint: ordinary workloads land on these Nodes


def test_our_kwok_stage_makes_running_pods_ready_again_and_leaves_pending_and_deleted_ones_alone():
    (stage,) = yaml.safe_load_all(nodes.KWOK_EXTRA_STAGES)
    assert stage["kind"] == "Stage" and stage["spec"]["resourceRef"] == {"apiGroup": "v1", "kind": "Pod"}
    expressions = {e["key"]: e for e in stage["spec"]["selector"]["matchExpressions"]}
    assert expressions[".metadata.deletionTimestamp"]["operator"] == "DoesNotExist"
    assert expressions[".status.phase"]["values"] == ["Running"]
    template = stage["spec"]["next"]["statusTemplate"]
    assert "type: Ready" in template and "type: ContainersReady" in template


def _report() -> report.StatusReport:
    member = _member()
    state = LocalState("local", 1, 2, [member], nodes=2, ip_family="ipv4")
    state.processes = [ProcessRecord("etcd", 100, 1, ["etcd"], "/logs/etcd.log")] + [
        ProcessRecord(f"member-2/{name}", 101 + i, 1, [name], f"/logs/member-2.{name}.log")
        for i, name in enumerate(["kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok",
                                  "mcs-apiserver"])
    ]
    components = [report.ComponentStatus(r.name, r.pid, r.name != "member-2/kwok", r.log) for r in state.processes]
    components[1].detail = "readyz: ok"
    node = {"metadata": {"name": "member-2-node-1"}, "spec": {"podCIDRs": ["10.2.0.0/24"]},
            "status": {"conditions": [{"type": "Ready", "status": "Unknown"}],
                       "addresses": [{"type": "InternalIP", "address": "172.16.2.1"},
                                     {"type": "Hostname", "address": "member-2-node-1"}]}}
    return report.StatusReport(state, Path("/state/kubeconfig"), components,
                               {"member-2": [report.node_doc(node)]})


def test_the_status_document_gives_each_member_its_context_components_cidrs_nodes_and_addresses():
    doc = report.status_document(_report())
    assert doc["components"] == {"etcd": {"pid": 100, "state": "running", "log": "/logs/etcd.log"}}
    (member,) = doc["members"]
    assert member["context"] == "member-2" and member["apiServer"] == "https://127.0.0.1:10"
    assert list(member["components"]) == ["kube-apiserver", "kube-controller-manager", "kube-scheduler",
                                          "kwok", "mcs-apiserver"]
    assert member["components"]["kwok"]["state"] == "stopped"
    assert member["components"]["kube-apiserver"]["detail"] == "readyz: ok"
    assert member["podCIDRs"] == ["10.2.0.0/16"] and member["serviceCIDRs"] == ["10.102.0.0/16"]
    assert member["nodes"] == [{"name": "member-2-node-1", "ready": False, "podCIDRs": ["10.2.0.0/24"],
                                "internalIPs": ["172.16.2.1"]}]
    assert member["addresses"] == {"kubeApiserver": "127.0.0.1:10", "mcsApiserver": "127.0.0.1:12"}
    assert not _report().healthy


def test_the_status_text_shows_cidrs_nodes_and_stopped_components():
    text = report.status_text(report.status_document(_report()))
    assert "pods 10.2.0.0/16  services 10.102.0.0/16" in text
    assert "node member-2-node-1" in text and "NotReady" in text
    assert any(line.split()[:2] == ["kwok", "stopped"] for line in text.splitlines())
