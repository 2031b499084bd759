"""The pure parts of the local ClusterSet: version pinning, go.mod generation, state, processes."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
import yaml

from mcs_apiserver.local import binaries, controlplane, processes
from mcs_apiserver.local import state as statefile
from mcs_apiserver.local.apply import object_path
from mcs_apiserver.local.state import LocalState, MemberPorts

KUBERNETES_GO_MOD = """
module k8s.io/kubernetes

go 1.26.0

require (
\tk8s.io/api v0.0.0
\tgithub.com/google/uuid v1.6.0
)

replace (
\tk8s.io/api => ./staging/src/k8s.io/api
\tk8s.io/client-go => ./staging/src/k8s.io/client-go
\tk8s.io/kube-aggregator => ./staging/src/k8s.io/kube-aggregator
)
"""


def test_every_staging_replace_becomes_the_published_v0_twin_of_the_release():
    assert binaries.staging_replacements(KUBERNETES_GO_MOD, "v1.37.2") == [
        ("k8s.io/api", "v0.37.2"),
        ("k8s.io/client-go", "v0.37.2"),
        ("k8s.io/kube-aggregator", "v0.37.2"),
    ]


def test_a_go_mod_without_staging_replaces_is_refused_clearly():
    with pytest.raises(binaries.BinariesError, match="no staging replace"):
        binaries.staging_replacements("module k8s.io/kubernetes\n", "v1.37.2")


def test_the_pinned_versions_are_a_recent_kubernetes_and_an_etcd_release():
    versions = binaries.Versions.pinned()
    major, minor = versions.kubernetes.removeprefix("v").split(".")[:2]
    assert (int(major), int(minor)) >= (1, 35)
    assert versions.etcd.startswith("v3.")


def test_version_ldflags_stamp_the_release_into_component_base_and_client_go():
    flags = binaries.kubernetes_version_ldflags("v1.37.2")
    assert "-X k8s.io/component-base/version.gitVersion=v1.37.2" in flags
    assert "-X k8s.io/client-go/pkg/version.gitMinor=37" in flags


def test_the_cache_lives_outside_the_repository_and_honours_the_override(monkeypatch, tmp_path):
    monkeypatch.delenv("MCS_APISERVER_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert binaries.cache_root() == tmp_path / "xdg" / "mcs-apiserver"
    monkeypatch.setenv("MCS_APISERVER_CACHE", str(tmp_path / "elsewhere"))
    assert binaries.cache_root() == tmp_path / "elsewhere"


def test_a_missing_go_toolchain_is_reported_with_what_to_do(monkeypatch, tmp_path):
    monkeypatch.setenv("MCS_APISERVER_CACHE", str(tmp_path))
    monkeypatch.setenv("PATH", str(tmp_path))  # no `go` here
    with pytest.raises(binaries.BinariesError, match="Go is not installed"):
        binaries.ensure_binaries(binaries.Versions("v1.37.2", "v3.7.3", "v0.8.0", "v1.14.7"))


def _fake_build(directory, names, stamp=None):
    directory.mkdir(parents=True, exist_ok=True)
    for name in names:
        (directory / name).write_text("binary")
    (directory / binaries.STAMP).write_text(
        stamp if stamp is not None else json.dumps({"version": "x", "files": list(names)}))


def test_a_finished_build_is_found_only_once_every_stamp_lists_its_files(monkeypatch, tmp_path):
    monkeypatch.setenv("MCS_APISERVER_CACHE", str(tmp_path))
    versions = binaries.Versions("v9.9.9", "v3.9.9", "v0.9.9", "v1.99.9")
    assert binaries.find_binaries(versions) is None
    _fake_build(tmp_path / "bin" / "kubernetes-v9.9.9", binaries.KUBERNETES_COMMANDS)
    _fake_build(tmp_path / "bin" / "etcd-v3.9.9", ["etcd"])
    _fake_build(tmp_path / "bin" / "kwok-v0.9.9", ["kwok", binaries.KWOK_STAGES])
    assert binaries.find_binaries(versions) is None  # no coredns yet
    _fake_build(tmp_path / "bin" / "coredns-v1.99.9", ["coredns"])
    found = binaries.find_binaries(versions)
    assert found is not None and found.etcd == tmp_path / "bin" / "etcd-v3.9.9" / "etcd"
    assert found.kube_scheduler == tmp_path / "bin" / "kubernetes-v9.9.9" / "kube-scheduler"
    assert found.kwok_stages == tmp_path / "bin" / "kwok-v0.9.9" / "stages.yaml"
    assert found.coredns == tmp_path / "bin" / "coredns-v1.99.9" / "coredns"


def test_a_kubernetes_build_stamped_before_the_scheduler_existed_misses_only_the_scheduler(tmp_path):
    old = ("kube-apiserver", "kube-controller-manager", "kubectl")
    _fake_build(tmp_path, old, stamp="kubernetes v1.37.2\n")  # the stamp of earlier versions
    assert binaries.missing(tmp_path, binaries.KUBERNETES_COMMANDS) == ("kube-scheduler",)
    (tmp_path / "kube-scheduler").write_text("binary")
    assert binaries.missing(tmp_path, binaries.KUBERNETES_COMMANDS) == ()


def test_a_build_without_a_stamp_is_not_trusted_and_a_deleted_file_is_noticed(tmp_path):
    (tmp_path / "etcd").write_text("binary")
    assert binaries.missing(tmp_path, ("etcd",)) == ("etcd",)
    _fake_build(tmp_path, ["etcd"])
    assert binaries.missing(tmp_path, ("etcd",)) == ()
    (tmp_path / "etcd").unlink()
    assert binaries.missing(tmp_path, ("etcd",)) == ("etcd",)


def test_finishing_a_partial_build_adds_its_files_to_the_stamped_build(tmp_path):
    final, partial = tmp_path / "kubernetes", tmp_path / "kubernetes.partial"
    _fake_build(final, ("kube-apiserver", "kubectl"), stamp="kubernetes v1.37.2\n")
    partial.mkdir()
    (partial / "kube-scheduler").write_text("new")
    binaries._finish(partial, final, ("kube-scheduler",), "kubernetes v1.37.2")
    assert not partial.exists()
    assert json.loads((final / binaries.STAMP).read_text())["files"] == ["kube-apiserver", "kube-scheduler", "kubectl"]
    assert (final / "kube-apiserver").read_text() == "binary"


def test_kwoks_fast_node_and_pod_stages_are_read_from_its_module(tmp_path):
    for stage_dir, names in (("kustomize/stage/node/fast", ["node-initialize"]),
                             ("kustomize/stage/pod/fast", ["pod-delete", "pod-ready"])):
        (tmp_path / stage_dir).mkdir(parents=True)
        (tmp_path / stage_dir / "kustomization.yaml").write_text("kind: Kustomization\n")
        for name in names:
            (tmp_path / stage_dir / f"{name}.yaml").write_text(f"kind: Stage\nmetadata:\n  name: {name}\n")
    stages = list(yaml.safe_load_all(binaries.kwok_stages(tmp_path)))
    assert [s["metadata"]["name"] for s in stages] == ["node-initialize", "pod-delete", "pod-ready"]
    assert all(s["kind"] == "Stage" for s in stages)


def test_a_kwok_module_without_stages_is_refused_clearly(tmp_path):
    (tmp_path / "kustomize/stage/node/fast").mkdir(parents=True)
    with pytest.raises(binaries.BinariesError, match="no Stage objects"):
        binaries.kwok_stages(tmp_path)


def _state() -> LocalState:
    return LocalState(
        clusterset="local", etcd_client_port=1, etcd_peer_port=2,
        members=[MemberPorts("member-1", 1, 10, 11, 12, "10.101.0.0/16")],
    )


def test_the_state_file_round_trips_with_its_process_records(tmp_path):
    state = _state()
    state.processes.append(processes.ProcessRecord("etcd", 42, 7, ["etcd"], "/tmp/etcd.log"))
    statefile.save(tmp_path, state)
    loaded = statefile.load(tmp_path)
    assert loaded == state
    assert loaded.member("member-1").apiserver_port == 10
    with pytest.raises(KeyError, match="member-1"):
        loaded.member("member-9")


def test_the_state_dir_lock_refuses_a_second_holder(tmp_path):
    with statefile.locked(tmp_path):
        with pytest.raises(RuntimeError, match="another mcs-apiserver local command"):
            with statefile.locked(tmp_path):
                pass


def test_a_started_process_is_alive_until_stopped_and_logs_to_its_file(tmp_path):
    record, _ = processes.start("sleeper", [sys.executable, "-c", "print('hello', flush=True); import time; time.sleep(60)"],
                                tmp_path / "sleeper.log")
    try:
        assert processes.alive(record)
        deadline = time.monotonic() + 10
        while "hello" not in (tmp_path / "sleeper.log").read_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "hello" in processes.log_tail(record)
    finally:
        assert processes.stop(record, timeout=5)
    assert not processes.alive(record)


def test_a_process_that_ignores_sigterm_is_killed(tmp_path):
    code = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); time.sleep(60)"
    record, _ = processes.start("stubborn", [sys.executable, "-c", code], tmp_path / "stubborn.log")
    deadline = time.monotonic() + 10
    while "ready" not in (tmp_path / "stubborn.log").read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert processes.stop(record, timeout=0.5)
    assert not processes.alive(record)


def test_a_reused_pid_is_not_taken_for_our_process():
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        record = processes.ProcessRecord("other", proc.pid, 1, [], "/dev/null")  # wrong start time
        assert not processes.alive(record)
        assert processes.stop(record)  # nothing is signalled
        assert proc.poll() is None
    finally:
        proc.kill()
        proc.wait()


def test_the_kube_apiserver_enables_the_aggregation_layer_on_loopback(tmp_path):
    from mcs_apiserver.local.binaries import Binaries
    from mcs_apiserver.local.pki import LocalPKI

    bins = Binaries(*(tmp_path / n for n in ("a", "c", "s", "k", "e", "w", "ws", "d")))
    argv = controlplane.kube_apiserver_argv(bins, LocalPKI(tmp_path), _state().members[0], 2379)
    flags = dict(arg.split("=", 1) for arg in argv[1:])
    assert flags["--bind-address"] == "127.0.0.1"
    assert flags["--secure-port"] == "10"
    assert flags["--requestheader-allowed-names"] == "front-proxy-client"
    assert flags["--requestheader-client-ca-file"] != flags["--client-ca-file"]
    assert flags["--etcd-prefix"] == "/member-1/registry"
    assert flags["--authorization-mode"] == "RBAC"


def test_object_paths_follow_the_rest_layout_for_cluster_and_namespaced_kinds():
    assert object_path({"apiVersion": "about.k8s.io/v1beta1", "kind": "ClusterProperty",
                        "metadata": {"name": "clusterset.k8s.io"}}) == \
        "/apis/about.k8s.io/v1beta1/clusterproperties/clusterset.k8s.io"
    assert object_path({"apiVersion": "v1", "kind": "Service",
                        "metadata": {"name": "s", "namespace": "n"}}) == "/api/v1/namespaces/n/services/s"
    with pytest.raises(ValueError, match="don't know"):
        object_path({"apiVersion": "x/v1", "kind": "Nope", "metadata": {"name": "n"}})
