"""The pure parts of the local ClusterSet: version pinning, go.mod generation, state, processes."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

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
        binaries.ensure_binaries(binaries.Versions("v1.37.2", "v3.7.3"))


def test_a_finished_build_is_found_only_once_both_stamps_exist(monkeypatch, tmp_path):
    monkeypatch.setenv("MCS_APISERVER_CACHE", str(tmp_path))
    versions = binaries.Versions("v9.9.9", "v3.9.9")
    assert binaries.find_binaries(versions) is None
    (tmp_path / "bin" / "kubernetes-v9.9.9").mkdir(parents=True)
    (tmp_path / "bin" / "kubernetes-v9.9.9" / binaries.STAMP).write_text("done")
    assert binaries.find_binaries(versions) is None
    (tmp_path / "bin" / "etcd-v3.9.9").mkdir(parents=True)
    (tmp_path / "bin" / "etcd-v3.9.9" / binaries.STAMP).write_text("done")
    found = binaries.find_binaries(versions)
    assert found is not None and found.etcd == tmp_path / "bin" / "etcd-v3.9.9" / "etcd"


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

    bins = Binaries(*(tmp_path / n for n in ("a", "c", "k", "e")))
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
