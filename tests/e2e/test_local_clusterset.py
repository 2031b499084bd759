"""The local ClusterSet is made of real, working control planes, and cleans up after itself."""

from __future__ import annotations

import asyncio
import os

import pytest

from mcs_apiserver.local import cluster, controlplane, processes
from mcs_apiserver.local import state as statefile

pytestmark = pytest.mark.e2e


def test_every_member_answers_readyz_ok_through_kubectl(clusterset):
    for member in clusterset.members:
        assert clusterset.kubectl.run("get", "--raw", "/readyz", context=member).stdout.strip() == "ok"


def test_each_member_has_its_cluster_id_and_the_clusterset_name(clusterset):
    for member in clusterset.members:
        items = clusterset.kubectl.json("get", "clusterproperties", context=member)["items"]
        values = {item["metadata"]["name"]: item["spec"]["value"] for item in items}
        assert values == {"cluster.clusterset.k8s.io": member, "clusterset.k8s.io": "local"}


def test_kubectl_prints_the_cluster_properties_with_their_value_column(clusterset):
    out = clusterset.kubectl.run("get", "clusterproperties", context="member-2").stdout
    lines = out.splitlines()
    assert lines[0].split()[:2] == ["NAME", "VALUE"]
    assert any(line.split()[:2] == ["cluster.clusterset.k8s.io", "member-2"] for line in lines)
    assert any(line.split()[:2] == ["clusterset.k8s.io", "local"] for line in lines)


def test_cluster_properties_are_served_in_v1alpha1_and_v1beta1(clusterset):
    for version in ("v1alpha1", "v1beta1"):
        got = clusterset.kubectl.json(
            "get", f"clusterproperties.{version}.about.k8s.io", "clusterset.k8s.io", context="member-3")
        assert got["apiVersion"] == f"about.k8s.io/{version}"
        assert got["spec"]["value"] == "local"


def test_serviceexports_can_be_created_listed_and_found_by_short_name(clusterset):
    kubectl = clusterset.kubectl
    kubectl.run("create", "namespace", "foundation-e2e", context="member-1")
    kubectl.apply(
        "apiVersion: multicluster.x-k8s.io/v1alpha1\nkind: ServiceExport\n"
        "metadata: {name: web, namespace: foundation-e2e}\n", context="member-1")
    listed = [i for i in kubectl.json("get", "serviceexports", "-A", context="member-1")["items"]
              if i["metadata"]["namespace"] == "foundation-e2e"]
    assert [i["metadata"]["name"] for i in listed] == ["web"]
    assert listed[0]["apiVersion"] == "multicluster.x-k8s.io/v1beta1"  # the storage version is preferred
    assert "web" in kubectl.run("get", "svcex", "-n", "foundation-e2e", context="member-1").stdout
    kubectl.run("delete", "namespace", "foundation-e2e", "--wait=true", context="member-1", timeout=120)


def test_a_second_up_on_a_live_state_dir_says_so_and_changes_nothing(clusterset):
    before = statefile.load(clusterset.state_dir)
    with pytest.raises(cluster.AlreadyRunning) as raised:
        asyncio.run(cluster.up(cluster.UpOptions(state_dir=clusterset.state_dir)))
    assert raised.value.complete
    assert "already running" in str(raised.value)
    after = statefile.load(clusterset.state_dir)
    assert [(p.name, p.pid) for p in after.processes] == [(p.name, p.pid) for p in before.processes]
    assert all(processes.alive(p) for p in after.processes)


def test_a_stopped_member_apiserver_can_be_started_again_on_the_same_port(clusterset):
    stopped = cluster.stop_member(clusterset.state_dir, "member-3", "kube-apiserver")
    assert stopped == ["member-3/kube-apiserver"]
    failed = clusterset.kubectl.run("get", "--raw", "/readyz", context="member-3", check=False)
    assert failed.returncode != 0
    started = asyncio.run(cluster.start_member(clusterset.state_dir, "member-3", "kube-apiserver"))
    assert started == ["member-3/kube-apiserver"]
    assert clusterset.kubectl.run("get", "--raw", "/readyz", context="member-3").stdout.strip() == "ok"


def test_down_stops_every_process_of_a_clusterset(binaries, tmp_path):
    state = asyncio.run(cluster.up(cluster.UpOptions(state_dir=tmp_path, members=1, clusterset="solo")))
    records = list(state.processes)
    assert records and all(processes.alive(r) for r in records)
    cluster.down(tmp_path)
    assert not any(processes.alive(r) for r in records)
    assert statefile.load(tmp_path) is None
    cluster.down(tmp_path)  # down on a dead state dir is clean


def test_a_failed_up_leaves_no_process_behind(binaries, tmp_path, monkeypatch):
    def broken_argv(*args, **kwargs):
        return original(*args, **kwargs) + ["--no-such-flag"]

    original = controlplane.kube_apiserver_argv
    monkeypatch.setattr(controlplane, "kube_apiserver_argv", broken_argv)
    with pytest.raises(cluster.LocalClusterSetError, match="exited during start-up"):
        asyncio.run(cluster.up(cluster.UpOptions(state_dir=tmp_path, members=1)))
    state = statefile.load(tmp_path)
    assert state is not None and state.processes, "the failed up should have recorded what it started"
    assert not any(processes.alive(r) for r in state.processes)
    etcd = state.process("etcd")
    assert etcd is not None and not os.path.exists(f"/proc/{etcd.pid}/cmdline") or not processes.alive(etcd)
