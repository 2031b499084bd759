"""``mcs-apiserver local up|down|status|stop|start``: a ClusterSet of real control planes on one machine.

``up`` builds (or reuses) the upstream binaries, generates the PKI, starts one shared etcd and, per
member, a kube-apiserver and a kube-controller-manager on loopback and free ports, installs the
CRDs, creates its simulated Nodes and starts a kube-scheduler and a kwok for them, then runs
``mcs-apiserver install`` with the local runtime (ClusterProperties, identities, one mcs-apiserver
process per member with only those identities, its registration), and returns once
everything is ready (every APIService Available, every Node Ready with its Pod range). A failure at
any step stops everything that step and the earlier ones started, so a failed ``up`` never leaves a
process behind. The e2e tests use exactly this code.
"""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import aiohttp
import yaml

from mcs_apiserver.logs import Progress
from mcs_apiserver.local import apply as applier
from mcs_apiserver.local import controlplane, kubeconfig, network, nodes, processes
from mcs_apiserver.local import state as statefile
from mcs_apiserver.local.binaries import Binaries, ensure_binaries
from mcs_apiserver.install import plan as install_plan
from mcs_apiserver.install import run as installer
from mcs_apiserver.local.pki import WEBHOOK_CLIENT_NAME, LocalPKI
from mcs_apiserver.local.pki import generate as generate_pki
from mcs_apiserver.local.processes import ProcessRecord
from mcs_apiserver.local.report import ComponentStatus, StatusReport, node_doc
from mcs_apiserver.local.state import LocalState, MemberPorts
from mcs_apiserver.kube.client import ApiError, KubeClient, connection_from_files, wait_for

MANIFESTS = Path(__file__).resolve().parents[2] / "manifests"
ADMIN_KUBECONFIG = "kubeconfig"
READY_TIMEOUT = 180.0


class LocalClusterSetError(RuntimeError):
    """A local ClusterSet command cannot do what was asked; the message says why and what to do."""


@dataclass(frozen=True)
class UpOptions:
    state_dir: Path
    members: int = 3
    clusterset: str = "local"
    #: Simulated Nodes per member; 0 runs no kube-scheduler and no kwok.
    nodes: int = 2
    ip_family: network.IPFamily = "ipv4"
    #: Run ``mcs-apiserver install`` (local runtime) at the end; False leaves bare members (CRDs only).
    instances: bool = True
    #: Install the upstream ServiceImport CRD and the publisher RBAC, and run every instance with
    #: --publish-serviceimports and --publish-endpointslices.
    publish: bool = False


def member_name(index: int) -> str:
    return f"member-{index}"


def _free_ports(count: int) -> list[int]:
    """Ask the kernel for ``count`` distinct free loopback ports (held open until all are chosen)."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = (int(p) for p in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
        return low, high
    except (OSError, ValueError):
        return 32768, 60999


def free_dns_ports(count: int) -> list[int]:
    """``count`` loopback ports free for both UDP and TCP (DNS serves both on one port), chosen below
    the kernel's ephemeral range: the instance binds them seconds later, and a port from that range
    may meanwhile have become the local port of some outgoing connection (EADDRINUSE)."""
    low, _ = _ephemeral_range()
    candidates = list(range(max(1024, low - 12000), low))
    random.shuffle(candidates)
    ports: list[int] = []
    for port in candidates:
        if len(ports) == count:
            break
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp, \
                socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            try:
                udp.bind(("127.0.0.1", port))
                tcp.bind(("127.0.0.1", port))
            except OSError:
                continue
        ports.append(port)
    if len(ports) < count:
        raise LocalClusterSetError(f"no {count} free loopback ports for DNS below {low}")
    return ports


def _pki(state_dir: Path) -> LocalPKI:
    return LocalPKI(state_dir / "pki")


def admin_client(state_dir: Path, member: MemberPorts) -> KubeClient:
    pki = _pki(state_dir)
    connection = connection_from_files(
        f"https://127.0.0.1:{member.apiserver_port}",
        ca_file=str(pki.ca_cert), cert_file=str(pki.cert("admin")), key_file=str(pki.key("admin")),
    )
    return KubeClient(connection, user_agent="mcs-apiserver-local")


# --- up ----------------------------------------------------------------------------------------


def live_processes(state: LocalState) -> list[ProcessRecord]:
    return [record for record in state.processes if processes.alive(record)]


async def up(options: UpOptions, out: TextIO = sys.stderr) -> LocalState:
    """Bring the whole ClusterSet up; see the module docstring."""
    if options.members < 1:
        raise LocalClusterSetError("--members must be at least 1")
    if options.members > network.MAX_MEMBERS:
        raise LocalClusterSetError(
            f"--members must be at most {network.MAX_MEMBERS} (each has its own Pod and Service CIDR)")
    if not 0 <= options.nodes <= network.MAX_NODES:
        raise LocalClusterSetError(f"--nodes must be between 0 and {network.MAX_NODES}")
    if options.ip_family not in network.IP_FAMILIES:
        raise LocalClusterSetError(f"--ip-family must be one of {', '.join(network.IP_FAMILIES)}")
    state_dir = options.state_dir.resolve()
    with statefile.locked(state_dir):
        existing = statefile.load(state_dir)
        if existing is not None:
            running = live_processes(existing)
            if running:
                raise AlreadyRunning(state_dir, existing, running)
        progress = Progress(out)
        progress("checking the upstream binaries")
        binaries = await asyncio.to_thread(ensure_binaries, out=out)
        state = _plan(options)
        # A fresh ClusterSet: nothing of a previous one (etcd data, logs) may leak into it.
        for leftover in ("etcd", "logs"):
            shutil.rmtree(state_dir / leftover, ignore_errors=True)
        statefile.save(state_dir, state)
        try:
            await _bring_up(state_dir, state, binaries, progress, options.instances)
        except BaseException:
            progress("bring-up failed: stopping everything it started")
            _stop_all(state)
            statefile.save(state_dir, state)
            raise
        statefile.save(state_dir, state)
        progress(f"ClusterSet {options.clusterset!r} is up with {options.members} members")
        return state


class AlreadyRunning(LocalClusterSetError):
    def __init__(self, state_dir: Path, state: LocalState, running: list[ProcessRecord]) -> None:
        total = len(state.processes)
        if len(running) == total:
            message = (
                f"a local ClusterSet is already running in {state_dir} ({total} processes); nothing "
                f"was changed. Use it with: kubectl --kubeconfig {state_dir / ADMIN_KUBECONFIG} "
                f"get clusterproperties, or stop it with: mcs-apiserver local down --state-dir {state_dir}"
            )
        else:
            message = (
                f"a local ClusterSet in {state_dir} is partly running ({len(running)} of {total} "
                f"processes); nothing was changed. Stop it with: mcs-apiserver local down "
                f"--state-dir {state_dir}"
            )
        super().__init__(message)
        self.complete = len(running) == total


PORTS_PER_MEMBER = 5


def _plan(options: UpOptions) -> LocalState:
    ports = _free_ports(2 + PORTS_PER_MEMBER * options.members)
    dns_ports = free_dns_ports(options.members)
    members = []
    for i in range(1, options.members + 1):
        apiserver, controller_manager, mcs, scheduler, kwok = ports[2 + PORTS_PER_MEMBER * (i - 1):][:PORTS_PER_MEMBER]
        addresses = network.member_network(i, options.ip_family)
        members.append(MemberPorts(
            name=member_name(i),
            index=i,
            apiserver_port=apiserver,
            controller_manager_port=controller_manager,
            mcs_port=mcs,
            service_cidr=addresses.service_cidr,
            pod_cidr=addresses.pod_cidr,
            scheduler_port=scheduler,
            kwok_port=kwok,
            dns_port=dns_ports[i - 1],
        ))
    return LocalState(
        clusterset=options.clusterset,
        etcd_client_port=ports[0],
        etcd_peer_port=ports[1],
        members=members,
        nodes=options.nodes,
        ip_family=options.ip_family,
        publish=options.publish,
    )


async def _bring_up(state_dir: Path, state: LocalState, binaries: Binaries, progress: Progress,
                    instances: bool) -> None:
    progress("generating certificates")
    pki = generate_pki(
        state_dir / "pki",
        [(m.name, network.first_service_ip(m.service_cidr)) for m in state.members],
    )
    _write_kubeconfigs(state_dir, state, pki)

    progress(f"starting etcd on 127.0.0.1:{state.etcd_client_port}")
    _start(state_dir, state, "etcd", controlplane.etcd_argv(
        binaries, state_dir / "etcd" / "data", state.etcd_client_port, state.etcd_peer_port))
    async with aiohttp.ClientSession() as session:
        await _wait_process(state, "etcd", lambda: controlplane.etcd_healthy(session, state.etcd_client_port),
                            "etcd to be healthy")

    progress(f"starting {len(state.members)} kube-apiservers")
    for member in state.members:
        admission = controlplane.webhook_admission_config(state_dir / member.name, pki, member)
        _start(state_dir, state, f"{member.name}/kube-apiserver",
               controlplane.kube_apiserver_argv(binaries, pki, member, state.etcd_client_port, admission))
    await asyncio.gather(*(_wait_apiserver_ready(state_dir, state, m) for m in state.members))
    progress("kube-apiservers ready; starting controller managers and installing CRDs")

    for member in state.members:
        _start(state_dir, state, f"{member.name}/kube-controller-manager",
               controlplane.kube_controller_manager_argv(
                   binaries, pki, member, state_dir / member.name / "kube-controller-manager.kubeconfig"))
    await asyncio.gather(*(_bootstrap_member(state_dir, state, m) for m in state.members))
    await asyncio.gather(*(_wait_controller_manager(state, m) for m in state.members))
    progress("control planes ready, CRDs installed")

    if state.nodes:
        progress(f"starting kube-schedulers and kwok, {state.nodes} Nodes per member")
        for member in state.members:
            for component in NODE_COMPONENTS:
                _start(state_dir, state, f"{member.name}/{component}",
                       component_argv(state_dir, binaries, member, component))
            await _create_nodes(state_dir, state, member)

    await asyncio.gather(
        *(_wait_nodes(state_dir, state, m) for m in state.members if state.nodes),
        *(_wait_scheduler(state, m) for m in state.members if state.nodes),
    )
    if instances:
        progress(f"installing mcs-apiserver into {len(state.members)} members (mcs-apiserver install, local runtime)")
        await install_instances(state_dir, state, out=progress.out)
    progress(("every APIService is Available" if instances else "no instances (--no-instances)")
             + (", every Node Ready" if state.nodes else ""))


#: The components that exist only when members have Nodes, in start order.
NODE_COMPONENTS = ("kube-scheduler", "kwok")
KWOK_EXTRA_STAGES_FILE = "kwok-stages.yaml"


def component_argv(state_dir: Path, binaries: Binaries, member: MemberPorts, component: str) -> list[str]:
    """The command line of one of ``NODE_COMPONENTS`` (their kubeconfigs are written by ``up``)."""
    kubeconfig_path = state_dir / member.name / f"{component}.kubeconfig"
    if component == "kube-scheduler":
        return controlplane.kube_scheduler_argv(binaries, member, kubeconfig_path)
    return controlplane.kwok_argv(binaries, member, kubeconfig_path, state_dir / KWOK_EXTRA_STAGES_FILE)


async def _create_nodes(state_dir: Path, state: LocalState, member: MemberPorts) -> None:
    """Create the member's Nodes with a plain POST, as a kubelet registers itself: server-side apply
    cannot express a dual-stack Node (two ``InternalIP`` addresses share the list's merge key)."""
    client = admin_client(state_dir, member)
    try:
        for n in range(1, state.nodes + 1):
            node = nodes.node_object(member.name, member.index, n, state.ip_family)
            try:
                await client.json("POST", "/api/v1/nodes", body=node)
            except ApiError as error:
                if error.code != 409:
                    raise LocalClusterSetError(
                        f"{member.name} refused Node {node['metadata']['name']}: {error}") from error
    finally:
        await client.close()


async def _wait_scheduler(state: LocalState, member: MemberPorts) -> None:
    async with aiohttp.ClientSession() as session:
        await _wait_process(state, f"{member.name}/kube-scheduler", lambda: controlplane.https_ok(
            session, f"https://127.0.0.1:{member.scheduler_port}/healthz", False),
            f"{member.name}'s kube-scheduler to be healthy")


async def _wait_nodes(state_dir: Path, state: LocalState, member: MemberPorts) -> None:
    """Wait for kwok to be healthy and every Node to be Ready with its Pod range, so that a
    Deployment created the moment ``up`` returns gets pods with IPs at once."""
    async with aiohttp.ClientSession() as session:
        await _wait_process(state, f"{member.name}/kwok", lambda: controlplane.http_ok(
            session, f"http://127.0.0.1:{member.kwok_port}/healthz"), f"{member.name}'s kwok to be healthy")
    client = admin_client(state_dir, member)
    try:
        async def ready() -> bool:
            listed = await client.get("/api/v1/nodes")
            ours = [n for n in listed.get("items", []) if n["metadata"]["name"].startswith(member.name + "-node-")]
            docs = [node_doc(n) for n in ours]
            return len(docs) == state.nodes and all(d["ready"] and d["podCIDRs"] for d in docs)
        await _wait_process(state, f"{member.name}/kwok", ready,
                            f"{member.name}'s {state.nodes} Nodes to be Ready with a Pod range")
    finally:
        await client.close()


def instance_dir(state_dir: Path, member: MemberPorts) -> Path:
    """Where the installer's credentials for one local instance are written (mode 0600): its own
    ServiceAccount's kubeconfig, its members kubeconfig (one reader identity per member), and its
    cluster ID."""
    return state_dir / member.name / "mcs-apiserver"


PUBLISH_FLAGS = ("--publish-serviceimports", "--publish-endpointslices")


def instance_argv(state_dir: Path, member: MemberPorts, *extra: str, publish: bool = False) -> list[str]:
    """``mcs-apiserver serve`` for one member: local cluster = that member, members = all, each
    reached with the identity ``mcs-apiserver install`` made for it."""
    files = instance_dir(state_dir, member)
    pki = _pki(state_dir)
    return [
        sys.executable, "-m", "mcs_apiserver", "serve",
        "--bind-address=127.0.0.1",
        f"--secure-port={member.mcs_port}",
        f"--tls-cert-file={pki.cert('mcs-apiserver-serving')}",
        f"--tls-private-key-file={pki.key('mcs-apiserver-serving')}",
        f"--kubeconfig={files / 'kubeconfig'}",
        f"--member-kubeconfig={files / 'members.kubeconfig'}",
        f"--local-member={(files / 'cluster-id').read_text().strip()}",
        "--member-grace-period=60s",
        "--dns-bind-address=127.0.0.1",
        f"--dns-port={member.dns_port}",
        # kube-apiserver presents its webhook client certificate (controlplane.webhook_admission_config)
        f"--webhook-client-ca-file={pki.webhook_client_ca_cert}",
        f"--webhook-allowed-names={WEBHOOK_CLIENT_NAME}",
        *(PUBLISH_FLAGS if publish else ()),
        *extra,
    ]


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.parent.chmod(0o700)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.replace(tmp, path)


class InstanceRuntime:
    """The installer's ``local`` runtime: each member's instance is a process on this machine,
    behind an ExternalName Service to localhost, run with the installer's identities."""

    def __init__(self, state_dir: Path, state: LocalState) -> None:
        self.state_dir = state_dir
        self.state = state

    def port(self, context: str) -> int:
        return self.state.member(context).mcs_port

    def serving(self) -> install_plan.ServingCert:
        """The local PKI's serving certificate (the files the instances serve and reload, which
        the tests rotate), as a user with cert-manager brings their own."""
        pki = _pki(self.state_dir)
        return install_plan.ServingCert(pki.cert("mcs-apiserver-serving").read_bytes(),
                                        pki.key("mcs-apiserver-serving").read_bytes(), pki.mcs_ca_cert.read_bytes())

    async def start(self, installed: list[installer.Installed]) -> None:
        for item in installed:
            member = self.state.member(item.member.context)
            files = instance_dir(self.state_dir, member)
            wanted = {
                "kubeconfig": yaml.safe_dump(item.local_kubeconfig, sort_keys=False).encode(),
                "members.kubeconfig": yaml.safe_dump(item.members_kubeconfig, sort_keys=False).encode(),
                "cluster-id": item.member.cluster_id.encode(),
            }
            changed = [n for n, data in wanted.items() if not (files / n).is_file() or (files / n).read_bytes() != data]
            for file_name in changed:
                _write_private(files / file_name, wanted[file_name])
            name = f"{member.name}/mcs-apiserver"
            record = self.state.process(name)
            if record is not None and processes.alive(record):
                if not changed:
                    continue  # a second install: same credentials, the instance keeps running
                processes.stop(record)  # restarted with the new credentials
            _start(self.state_dir, self.state, name, instance_argv(self.state_dir, member, publish=self.state.publish))
        await asyncio.gather(*(_wait_instance_ready(self.state, self.state.member(i.member.context))
                               for i in installed))


async def _wait_instance_ready(state: LocalState, member: MemberPorts) -> None:
    name = f"{member.name}/mcs-apiserver"
    async with aiohttp.ClientSession() as session:
        await _wait_process(state, name, lambda: controlplane.https_ok(
            session, f"https://127.0.0.1:{member.mcs_port}/readyz", False), f"{name} to be ready")


async def install_instances(state_dir: Path, state: LocalState, out: TextIO = sys.stderr) -> None:
    """What ``local up`` ends with: ``mcs-apiserver install --runtime local`` into every member, with
    the admin kubeconfig (as a user installs with theirs), cluster ID = member name."""
    contexts = [m.name for m in state.members]
    await _install(state_dir, state, installer.Options(
        kubeconfig=state_dir / ADMIN_KUBECONFIG, contexts=contexts, clusterset=state.clusterset,
        cluster_ids={c: c for c in contexts}, timeout=READY_TIMEOUT), out, out)


async def _install(state_dir: Path, state: LocalState, options: installer.Options, out: TextIO, err: TextIO) -> None:
    """The installer with the local runtime; the instances then run with only the identities it
    creates. The caller holds the state lock."""
    await installer.install(options, runtime=InstanceRuntime(state_dir, state), out=out, err=err)
    statefile.save(state_dir, state)
    if options.dry_run:
        return
    # kubectl explain reads the aggregated OpenAPI v3, which kube-apiserver fetches from us
    # shortly after the APIService turns Available: wait for it, so explain works at once.
    for context in options.contexts:
        member = state.member(context)
        client = admin_client(state_dir, member)
        try:
            await _wait_process(state, f"{member.name}/mcs-apiserver", lambda: _openapi_aggregated(client),
                                f"{member.name}'s OpenAPI v3 to include {install_plan.APISERVICE_NAME}")
        finally:
            await client.close()


async def run_installer(state_dir: Path, options: installer.Options, uninstall: bool,
                        remove_cluster_properties: bool = False) -> None:
    """``mcs-apiserver install|uninstall --runtime local --state-dir DIR``: the contexts are member
    names of DIR/kubeconfig (or of any kubeconfig reaching the same members)."""
    state_dir = state_dir.resolve()
    with statefile.locked(state_dir):
        state = _require(state_dir)
        for context in options.contexts:
            state.member(context)  # a clear error for a context that is not a member
        if not uninstall:
            await _install(state_dir, state, options, sys.stdout, sys.stderr)
            return
        await installer.uninstall(options, remove_cluster_properties, runtime=InstanceRuntime(state_dir, state))
        for context in options.contexts:
            record = state.process(f"{context}/mcs-apiserver")
            if record is not None:
                processes.stop(record)
                state.processes.remove(record)
            shutil.rmtree(instance_dir(state_dir, state.member(context)), ignore_errors=True)
        statefile.save(state_dir, state)


GROUP_VERSION = "views.multicluster.x-k8s.io/v1alpha1"


async def _openapi_aggregated(client: KubeClient) -> bool:
    root = await client.get("/openapi/v3")
    return f"apis/{GROUP_VERSION}" in root.get("paths", {})


def _write_kubeconfigs(state_dir: Path, state: LocalState, pki: LocalPKI) -> None:
    contexts = [kubeconfig.KubeContext(m.name, f"https://127.0.0.1:{m.apiserver_port}") for m in state.members]
    kubeconfig.write(state_dir / ADMIN_KUBECONFIG, contexts, ca_file=pki.ca_cert, user="admin",
                     cert_file=pki.cert("admin"), key_file=pki.key("admin"))
    identities = {"kube-controller-manager": "system:kube-controller-manager",
                  "kube-scheduler": "system:kube-scheduler", "kwok": "system:kwok"}
    for member, context in zip(state.members, contexts):
        for component, user in identities.items():
            kubeconfig.write(state_dir / member.name / f"{component}.kubeconfig", [context],
                             ca_file=pki.ca_cert, user=user, cert_file=pki.cert(component),
                             key_file=pki.key(component))
    (state_dir / KWOK_EXTRA_STAGES_FILE).write_text(nodes.KWOK_EXTRA_STAGES)


def _start(state_dir: Path, state: LocalState, name: str, argv: list[str]) -> ProcessRecord:
    log = state_dir / "logs" / (name.replace("/", ".") + ".log")
    record, _ = processes.start(name, argv, log)
    state.replace_process(record)
    statefile.save(state_dir, state)
    return record


async def _wait_process(state: LocalState, name: str, probe, what: str, timeout: float = READY_TIMEOUT) -> None:
    """Wait for ``probe`` to succeed, failing fast (with the log's tail) if the process dies."""
    record = state.process(name)
    assert record is not None

    async def check() -> bool:
        if not processes.alive(record):
            raise LocalClusterSetError(
                f"{name} exited during start-up; the end of its log ({record.log}):\n"
                + processes.log_tail(record)
            )
        return await probe()

    deadline = time.monotonic() + timeout
    while True:
        try:
            if await check():
                return
        except LocalClusterSetError:
            raise
        except Exception:  # noqa: BLE001 - not ready yet (connection refused, 5xx...)
            pass
        if time.monotonic() > deadline:
            raise LocalClusterSetError(
                f"timed out after {timeout:.0f}s waiting for {what}; the end of {record.log}:\n"
                + processes.log_tail(record)
            )
        await asyncio.sleep(0.25)


async def _wait_apiserver_ready(state_dir: Path, state: LocalState, member: MemberPorts) -> None:
    client = admin_client(state_dir, member)
    try:
        async def ready() -> bool:
            status, body, _ = await client.request("GET", "/readyz", timeout=5)
            return status == 200 and body.strip() == b"ok"
        await _wait_process(state, f"{member.name}/kube-apiserver", ready,
                            f"{member.name}'s kube-apiserver to be ready")
    finally:
        await client.close()


async def _wait_controller_manager(state: LocalState, member: MemberPorts) -> None:
    async with aiohttp.ClientSession() as session:
        url = f"https://127.0.0.1:{member.controller_manager_port}/healthz"
        await _wait_process(state, f"{member.name}/kube-controller-manager",
                            lambda: controlplane.https_ok(session, url, False),
                            f"{member.name}'s kube-controller-manager to be healthy")


async def _bootstrap_member(state_dir: Path, state: LocalState, member: MemberPorts) -> None:
    """The CRDs, so that a member started ``--no-instances`` already takes ServiceExports and
    ClusterProperties (and, publishing, the upstream ServiceImport CRD and the publisher's RBAC);
    everything else is the installer's."""
    client = admin_client(state_dir, member)
    try:
        crds = applier.load_manifests(MANIFESTS / "crds")
        if state.publish:
            publish_crds, publish_rbac = publish_objects()
            crds += publish_crds
        await applier.apply(client, crds)
        for crd in crds:
            await wait_for(lambda name=crd["metadata"]["name"]: _crd_established(client, name),
                           timeout=60, what=f"CRD {crd['metadata']['name']} to be established")
        if state.publish:
            await applier.apply(client, publish_rbac)
    finally:
        await client.close()


def publish_objects() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The upstream ServiceImport CRD (mcs-api v0.5), and the RBAC that lets the instance's
    ServiceAccount publish (manifests/publish/)."""
    return (applier.load_manifests(MANIFESTS / "publish" / "serviceimports.multicluster.x-k8s.io.yaml"),
            applier.load_manifests(MANIFESTS / "publish" / "rbac.yaml"))


async def enable_publishing(state_dir: Path, member: str) -> None:
    """Install the upstream ServiceImport CRD and the publisher RBAC in one member (for a ClusterSet
    brought up without ``--publish``); restart its instance with ``PUBLISH_FLAGS`` afterwards."""
    state_dir = state_dir.resolve()
    state = _require(state_dir)
    client = admin_client(state_dir, state.member(member))
    try:
        crds, rbac = publish_objects()
        await applier.apply(client, crds + rbac)
        for crd in crds:
            await wait_for(lambda name=crd["metadata"]["name"]: _crd_established(client, name),
                           timeout=60, what=f"CRD {crd['metadata']['name']} to be established")
    finally:
        await client.close()


async def _crd_established(client: KubeClient, name: str) -> bool:
    crd = await client.get(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}")
    conditions = crd.get("status", {}).get("conditions", [])
    return any(c["type"] == "Established" and c["status"] == "True" for c in conditions)


# --- down, status, stop, start -------------------------------------------------------------------


def _stop_all(state: LocalState) -> list[str]:
    """Stop every recorded process, newest first (instances, then controllers, apiservers, etcd)."""
    failed = []
    for record in reversed(state.processes):
        if not processes.stop(record):
            failed.append(f"{record.name} (pid {record.pid})")
    return failed


def down(state_dir: Path, out: TextIO = sys.stderr) -> None:
    state_dir = state_dir.resolve()
    with statefile.locked(state_dir):
        state = statefile.load(state_dir)
        if state is None:
            print(f"no local ClusterSet in {state_dir}; nothing to stop", file=out)
            return
        running = live_processes(state)
        failed = _stop_all(state)
        if failed:
            raise LocalClusterSetError("could not stop: " + ", ".join(failed))
        statefile.remove(state_dir)
        print(f"stopped {len(running)} processes of the local ClusterSet in {state_dir}", file=out)


async def status(state_dir: Path) -> StatusReport | None:
    """Which processes run, whether each kube-apiserver is ready, and each member's Nodes."""
    state_dir = state_dir.resolve()
    state = statefile.load(state_dir)
    if state is None:
        return None
    report = StatusReport(state, state_dir / ADMIN_KUBECONFIG, [
        ComponentStatus(r.name, r.pid, processes.alive(r), r.log) for r in state.processes])
    for member in state.members:
        instance = next((c for c in report.components if c.name == f"{member.name}/mcs-apiserver"), None)
        if instance is not None and member.dns_port:
            instance.detail = f"https://127.0.0.1:{member.mcs_port}, DNS 127.0.0.1:{member.dns_port} (UDP, TCP)"
    await asyncio.gather(*(_member_status(state_dir, report, member) for member in state.members))
    return report


async def _member_status(state_dir: Path, report: StatusReport, member: MemberPorts) -> None:
    entry = next((c for c in report.components if c.name == f"{member.name}/kube-apiserver"), None)
    report.nodes[member.name] = None
    if entry is None or not entry.running:
        return
    client = admin_client(state_dir, member)
    try:
        code, body, _ = await client.request("GET", "/readyz", timeout=5)
        entry.detail = "readyz: " + (body.decode().strip() if code == 200 else f"HTTP {code}")
        listed = await client.get("/api/v1/nodes", timeout=5)
        report.nodes[member.name] = [node_doc(n) for n in listed.get("items", [])]
    except Exception as error:  # noqa: BLE001 - reported, not raised
        entry.detail = f"unreachable: {error}"
    finally:
        await client.close()


def _component_names(state: LocalState, member: str, component: str | None) -> list[str]:
    state.member(member)  # validates the name
    names = [p.name for p in state.processes if p.name.startswith(member + "/")]
    if component:
        names = [n for n in names if n == f"{member}/{component}"]
        if not names:
            raise LocalClusterSetError(f"{member} has no component {component!r}")
    return names


def stop_member(state_dir: Path, member: str, component: str | None = None) -> list[str]:
    """Stop one member's processes (all, or one component) and keep their records for ``start``."""
    state_dir = state_dir.resolve()
    with statefile.locked(state_dir):
        state = _require(state_dir)
        stopped = []
        for name in reversed(_component_names(state, member, component)):
            record = state.process(name)
            assert record is not None
            if processes.stop(record):
                stopped.append(name)
        return stopped


async def start_member(state_dir: Path, member: str, component: str | None = None) -> list[str]:
    """Restart stopped processes of one member with their recorded command lines and wait for them."""
    state_dir = state_dir.resolve()
    with statefile.locked(state_dir):
        state = _require(state_dir)
        ports = state.member(member)
        started = []
        for name in _component_names(state, member, component):
            record = state.process(name)
            assert record is not None
            if processes.alive(record):
                continue
            _start(state_dir, state, name, record.argv)
            started.append(name)
            if name.endswith("/kube-apiserver"):
                await _wait_apiserver_ready(state_dir, state, ports)
            elif name.endswith("/mcs-apiserver"):
                async with aiohttp.ClientSession() as session:
                    await _wait_process(state, name, lambda: controlplane.https_ok(
                        session, f"https://127.0.0.1:{ports.mcs_port}/readyz", False), f"{name} to be ready")
            elif name.endswith("/kube-scheduler"):
                await _wait_scheduler(state, ports)
        if any(name.endswith("/kwok") for name in started):
            await _wait_nodes(state_dir, state, ports)
        return started


async def restart_instance(state_dir: Path, member: str, *extra_args: str) -> None:
    """Restart one member's mcs-apiserver with extra ``serve`` flags (e.g. ``--export-conflict-policy=deny``),
    or with the defaults again when none are given; returns once it is ready."""
    state_dir = state_dir.resolve()
    with statefile.locked(state_dir):
        state = _require(state_dir)
        ports = state.member(member)
        name = f"{member}/mcs-apiserver"
        record = state.process(name)
        if record is not None:
            processes.stop(record)
        _start(state_dir, state, name, instance_argv(state_dir, ports, *extra_args, publish=state.publish))
        await _wait_instance_ready(state, ports)


def _require(state_dir: Path) -> LocalState:
    state = statefile.load(state_dir)
    if state is None:
        raise LocalClusterSetError(
            f"no local ClusterSet in {state_dir}; start one with: mcs-apiserver local up --state-dir {state_dir}")
    return state
