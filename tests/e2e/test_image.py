"""The image (Containerfile, ``make image``) runs as one member's instance of the local ClusterSet.

The image is built the way CI can build it, from a Debian base made by mmdebstrap (no registry), and
cached between runs (image/build.py): cold, the first test here takes minutes; warm, seconds. It then
runs as a kubelet would run it for manifests/deployment.yaml: the image's entrypoint, environment and
user, the Deployment's arguments, a read-only root filesystem with an in-memory /tmp, the serving
certificate and the members kubeconfig (inline credentials, as a Secret holds them) mounted read-only,
in the host's network so that it reaches the member's kube-apiserver on loopback. It replaces member-1's
local process on the same port, so the APIService and the webhooks registered there call it.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dns.message
import dns.query
import pytest
import yaml

from image import build
from mcs_apiserver.local import cluster, processes
from mcs_apiserver.local import state as statefile
from mcs_apiserver.local.pki import WEBHOOK_CLIENT_NAME, LocalPKI
from mcs_apiserver.contract import EXPORTED_AT_ANNOTATION
from tests.e2e.helpers import eventually, namespace, service, service_export, unique_namespace

pytestmark = pytest.mark.e2e

# member-1: other tests restart its instance too (test_admission), none holds on to its process
MEMBER = "member-1"
OTHER = "member-2"
USER = "65532:65532"
APISERVICE = "v1alpha1.views.multicluster.x-k8s.io"
DEPLOYMENT = cluster.MANIFESTS / "deployment.yaml"
SERVING_DIR = "/etc/mcs-apiserver/serving"
MEMBERS_DIR = "/etc/mcs-apiserver/members"
DEVICES = ("null", "zero", "random", "urandom")


@dataclass
class Rootfs:
    """A working container of the image, mounted: its root directory and the image's config."""

    path: Path
    config: dict


@pytest.fixture(scope="module")
def image() -> build.Built:
    built = build.build("debian")
    print(f"\nimage {built.name}: {built.size / 2**20:.0f} MiB ({'built' if built.built else 'cached'})")
    return built


@pytest.fixture(scope="module")
def rootfs(image: build.Built) -> Iterator[Rootfs]:
    container = subprocess.run(build.buildah_argv("from", "--pull-never", image.name),
                               capture_output=True, text=True, check=True).stdout.strip()
    try:
        path = Path(subprocess.run(build.buildah_argv("mount", container),
                                   capture_output=True, text=True, check=True).stdout.strip())
        inspected = json.loads(subprocess.run(build.buildah_argv("inspect", "--type", "image", image.name),
                                              capture_output=True, text=True, check=True).stdout)
        # The mount points a kubelet would create (in the container, not the image).
        for directory in (SERVING_DIR, MEMBERS_DIR, "/tmp", "/proc", "/dev"):
            (path / directory.lstrip("/")).mkdir(parents=True, exist_ok=True)
        for device in DEVICES:
            (path / "dev" / device).touch()
        yield Rootfs(path, inspected["OCIv1"]["config"])
    finally:
        subprocess.run(build.buildah_argv("rm", container), capture_output=True)


def test_the_image_runs_serve_as_a_non_root_user_and_holds_no_compiler_and_no_pip(rootfs: Rootfs) -> None:
    assert rootfs.config["Entrypoint"] == ["mcs-apiserver", "serve"]
    assert rootfs.config["User"] == USER
    env = dict(entry.split("=", 1) for entry in rootfs.config["Env"])
    bin_dirs = [rootfs.path / d.lstrip("/") for d in env["PATH"].split(":")]
    assert (rootfs.path / "opt/mcs-apiserver/bin/mcs-apiserver").is_file()
    for tool in ("cc", "gcc", "c++", "g++", "clang", "ld", "pip", "pip3"):
        assert not any((d / tool).exists() for d in bin_dirs), f"{tool} is in the image"
    assert not list((rootfs.path / "opt/mcs-apiserver/lib").glob("python3*/site-packages/pip"))


def test_the_image_tells_the_commit_it_was_built_from(rootfs: Rootfs, tmp_path: Path) -> None:
    head = subprocess.run(["git", "-C", str(build.ROOT), "rev-parse", "HEAD"], capture_output=True, text=True,
                          check=True).stdout.strip()
    env = dict(entry.split("=", 1) for entry in rootfs.config["Env"])
    assert env["MCS_APISERVER_GIT_COMMIT"] == head
    assert rootfs.config["Labels"]["org.opencontainers.image.revision"] == head
    (tmp_path / "serving").mkdir()
    (tmp_path / "members").mkdir()
    proc = subprocess.run(sandbox_argv(rootfs, tmp_path / "serving", tmp_path / "members", [
        "mcs-apiserver", "--version"]), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert f", commit {head[:12]} " in proc.stdout  # what /version and mcs_apiserver_build_info show too


def deployment_args() -> list[str]:
    deployment = yaml.safe_load(DEPLOYMENT.read_text())
    return deployment["spec"]["template"]["spec"]["containers"][0]["args"]


def sandbox_argv(rootfs: Rootfs, serving: Path, members: Path, command: list[str]) -> list[str]:
    """``command`` (the image's entrypoint and arguments), as the image's user and with its environment, in
    its root made read-only (in a mount namespace of its own, so that nothing leaks to the host), with
    /tmp in memory and the secrets bind-mounted read-only, as a kubelet runs the Deployment's pods."""
    env = [*rootfs.config["Env"], "HOME=/"]
    script = "\n".join([
        "set -eu",
        'root="$1"; shift',
        'mount --bind "$root" "$root"',
        'mount -o remount,bind,ro "$root"',
        'mount -t tmpfs -o size=16m,mode=1777 tmpfs "$root/tmp"',
        'mount -t proc proc "$root/proc"',
        *(f'mount --bind /dev/{d} "$root/dev/{d}"' for d in DEVICES),
        f'mount --bind -o ro {serving} "$root{SERVING_DIR}"',
        f'mount --bind -o ro {members} "$root{MEMBERS_DIR}"',
        f'exec chroot --userspec={USER} "$root" "$@"',
    ])
    return ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", script, "sh", str(rootfs.path),
            "/usr/bin/env", "-i", *env, *command]


def apiservice_available(kubectl, context: str) -> str:
    service = kubectl.json("get", "apiservice", APISERVICE, context=context)
    return next(c["status"] for c in service["status"]["conditions"] if c["type"] == "Available")


def test_serve_from_the_image_with_a_read_only_root_serves_a_members_apiservice_and_webhooks(
        clusterset, kubectl, rootfs: Rootfs, tmp_path: Path) -> None:
    member = clusterset.state.member(MEMBER)
    installed = cluster.instance_dir(clusterset.state_dir, member)  # what `install` made for member-1
    serving, members = tmp_path / "serving", tmp_path / "members"
    serving.mkdir()
    members.mkdir()
    pki = LocalPKI(clusterset.state_dir / "pki")
    (serving / "tls.crt").write_bytes(pki.cert("mcs-apiserver-serving").read_bytes())
    (serving / "tls.key").write_bytes(pki.key("mcs-apiserver-serving").read_bytes())
    # local up makes kube-apiserver present a webhook client certificate (README "Webhook callers")
    (serving / "webhook-client-ca.crt").write_bytes(pki.webhook_client_ca_cert.read_bytes())
    (members / "kubeconfig").write_bytes((installed / "members.kubeconfig").read_bytes())
    (members / "local.kubeconfig").write_bytes((installed / "kubeconfig").read_bytes())
    for file in (serving / "tls.key", members / "kubeconfig", members / "local.kubeconfig"):
        os.chown(file, 65532, 65532)
        file.chmod(0o400)
    args = [a for a in deployment_args() if not a.startswith(("--secure-port=", "--dns-port="))] + [
        f"--secure-port={member.mcs_port}", "--bind-address=127.0.0.1",
        # the host's network: the member's own DNS port on loopback, not the pod's 5353 on every address
        f"--dns-port={member.dns_port}", "--dns-bind-address=127.0.0.1",
        # what the Deployment's commented webhook-caller lines turn on, as local up does for its instances
        f"--webhook-client-ca-file={SERVING_DIR}/webhook-client-ca.crt",
        f"--webhook-allowed-names={WEBHOOK_CLIENT_NAME}",
        # in a pod the local cluster is the in-cluster service account; here its token, as installed
        f"--kubeconfig={MEMBERS_DIR}/local.kubeconfig", f"--local-member={MEMBER}"]
    ns = unique_namespace("image")
    log = tmp_path / "image.log"
    proc: subprocess.Popen | None = None

    cluster.stop_member(clusterset.state_dir, MEMBER, "mcs-apiserver")
    try:
        local = statefile.load(clusterset.state_dir).process(f"{MEMBER}/mcs-apiserver")
        assert local is not None and not processes.alive(local)
        eventually(lambda: apiservice_available(kubectl, MEMBER) == "False", timeout=60,
                   what=f"{MEMBER}'s APIService to turn unavailable without its instance")
        # what the README says of a member whose every replica is down
        kubectl.apply(namespace(ns), context=MEMBER)
        down = kubectl.run("get", "--raw", "/apis/views.multicluster.x-k8s.io/v1alpha1/serviceimports",
                           context=MEMBER, check=False)
        assert down.returncode != 0 and "the server is currently unable to handle the request" in down.stderr
        refused = kubectl.run("delete", "clusterproperty", "cluster.clusterset.k8s.io", "--dry-run=server",
                              context=MEMBER, check=False)
        assert refused.returncode != 0 and "failed calling webhook" in refused.stderr, refused.stderr
        kubectl.apply(service_export("unchecked", ns), context=MEMBER)  # failurePolicy Ignore: admitted
        unchecked = kubectl.json("get", "serviceexport", "unchecked", "-n", ns, context=MEMBER)
        assert EXPORTED_AT_ANNOTATION not in unchecked["metadata"].get("annotations", {})

        # the sandbox: the root is read-only, /tmp and the secrets are there, for the image's user only
        probe = subprocess.run(sandbox_argv(rootfs, serving, members, [
            "/bin/sh", "-c", f"id -u; touch /tmp/probe; head -c1 {MEMBERS_DIR}/kubeconfig; echo; touch /opt/probe"]),
            capture_output=True, text=True, timeout=30)
        assert probe.returncode != 0 and "Read-only file system" in probe.stderr, probe.stderr
        assert probe.stdout.split() == ["65532", "a"], probe.stdout  # "apiVersion: ..." was readable

        with log.open("wb") as out:
            proc = subprocess.Popen(sandbox_argv(rootfs, serving, members, [*rootfs.config["Entrypoint"], *args]),
                                    stdout=out, stderr=subprocess.STDOUT, start_new_session=True)

        def available() -> bool:
            if proc is None or proc.poll() is not None:  # fail at once, not at the timeout
                pytest.fail(f"the image's serve exited with {proc and proc.returncode}:\n{log.read_text()[-3000:]}")
            return apiservice_available(kubectl, MEMBER) == "True"

        eventually(available, timeout=120, interval=1, what=f"{MEMBER}'s APIService to be Available from the image")

        # the views: an export in another member is imported into this one through the image's instance
        kubectl.apply(namespace(ns), context=OTHER)
        kubectl.apply(service("web", ns), context=OTHER)
        kubectl.apply(service_export("web", ns), context=OTHER)
        listed = eventually(
            lambda: f"{ns} " in (out := kubectl.run("get", "serviceimports", "-A", context=MEMBER).stdout) and out,
            timeout=60, what="the ServiceImport through the image")
        assert "ClusterSetIP" in listed and OTHER in listed
        # and its DNS answers the import's name with the import's ClusterSetIP
        ip = kubectl.json("get", "serviceimport", "web", "-n", ns, context=MEMBER)["spec"]["ips"][0]
        query = dns.message.make_query(f"web.{ns}.svc.clusterset.local.", "A")
        answer = eventually(lambda: dns.query.udp(query, "127.0.0.1", port=member.dns_port, timeout=3).answer,
                            what="the image's DNS to answer")
        assert [rd.to_text() for rrset in answer for rd in rrset] == [ip]
        # the webhooks, on the same port: exports are stamped, membership invariants enforced
        kubectl.apply(service_export("stamped", ns), context=MEMBER)
        stamped = kubectl.json("get", "serviceexport", "stamped", "-n", ns, context=MEMBER)
        assert EXPORTED_AT_ANNOTATION in stamped["metadata"]["annotations"]
        denied = kubectl.run("delete", "clusterproperty", "cluster.clusterset.k8s.io", "--dry-run=server",
                             context=MEMBER, check=False)
        assert denied.returncode != 0 and "denied the request" in denied.stderr, denied.stderr
        assert proc.poll() is None, log.read_text()[-3000:]
        # it logs as the Deployment asks (--log-format=json), and none of it is an error
        records = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
        assert records and not [r for r in records if r.get("level") in ("error", "critical")], records[-5:]
    finally:
        if proc is not None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        asyncio.run(cluster.start_member(clusterset.state_dir, MEMBER, "mcs-apiserver"))
        for context in (MEMBER, OTHER):
            kubectl.run("delete", "namespace", ns, "--wait=false", context=context, check=False)
    eventually(lambda: apiservice_available(kubectl, MEMBER) == "True", timeout=60,
               what=f"{MEMBER}'s APIService to be Available again from its local instance")
