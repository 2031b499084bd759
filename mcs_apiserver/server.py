"""``mcs-apiserver serve``: one instance, for one local cluster, watching every member.

Wiring, in the order data flows: member caches (``members``) report changes to the view updater,
which runs the view engine (``views``) and feeds the stores (``api.store``) that the HTTP layer
serves; the webhooks read the same caches through ``LiveFacts``. Authentication and authorization
follow kube-apiserver's delegation (``auth``); TLS certificates are reloaded on change (``tls``).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import re
import signal
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from aiohttp import web

from mcs_apiserver import logs
from mcs_apiserver.admission_facts import LiveFacts
from mcs_apiserver.api.app import HealthCheck, build_app
from mcs_apiserver.api.resources import Served
from mcs_apiserver.api.store import Store, Versioner
from mcs_apiserver.members.client import (
    ApiError,
    Connection,
    KubeClient,
    connection_from_kubeconfig,
    connection_in_cluster,
    kubeconfig_contexts,
)
from mcs_apiserver.members.member import MemberCache
from mcs_apiserver.leader import LeaseElector
from mcs_apiserver.metrics import Metrics
from mcs_apiserver.status_writer import StatusWriter
from mcs_apiserver.updater import ViewUpdater
from mcs_apiserver.views.engine import ViewEngine
from mcs_apiserver.views.ipalloc import DEFAULT_CLUSTERSET_IP_CIDRS
from mcs_apiserver.writers.publisher import Publisher

log = logging.getLogger("mcs_apiserver.server")

USER_AGENT = "mcs-apiserver"
LEASE_NAME = "mcs-apiserver-status-writer"


class ConfigError(ValueError):
    """The flags do not describe a runnable instance; the message says what to change."""


def parse_duration(text: str) -> float:
    """A Go-style duration (``90s``, ``5m``, ``1h30m``) or plain seconds, as kube flags take them."""
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise argparse.ArgumentTypeError(f"invalid duration {text!r}: use e.g. 30s, 5m or 1h")
    scale = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    return sum(float(n) * scale[u] for n, u in parts)


@dataclass
class ServeOptions:
    tls_cert_file: Path
    tls_private_key_file: Path
    secure_port: int = 8443
    bind_address: str = "0.0.0.0"
    kubeconfig: Path | None = None
    context: str | None = None
    member_kubeconfigs: list[Path] = field(default_factory=list)
    local_member: str | None = None
    clusterset_ip_cidrs: list[str] = field(default_factory=lambda: list(DEFAULT_CLUSTERSET_IP_CIDRS))
    export_conflict_policy: str = "warn"
    member_grace_period: float = 300.0
    shutdown_delay: float = 0.0
    leader_elect_namespace: str = "mcs-system"
    publish_serviceimports: bool = False
    publish_endpointslices: bool = False
    log_level: str = "info"
    log_format: str = "text"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("serving")
    g.add_argument("--secure-port", type=int, default=8443, help="the port to serve HTTPS on (default: 8443)")
    g.add_argument("--bind-address", default="0.0.0.0",
                   help="the IP address to listen on (default: 0.0.0.0; 127.0.0.1 for loopback only)")
    g.add_argument("--tls-cert-file", type=Path, required=True,
                   help="serving certificate (PEM, with chain); reloaded when it changes on disk")
    g.add_argument("--tls-private-key-file", type=Path, required=True, help="key of --tls-cert-file (PEM)")
    g.add_argument("--shutdown-delay-duration", type=parse_duration, default=0.0, metavar="DURATION",
                   help="on SIGTERM, keep serving (unready) this long before closing, so load balancers "
                        "stop sending traffic first (default: 0s)")
    c = parser.add_argument_group("clusters")
    c.add_argument("--kubeconfig", type=Path,
                   help="kubeconfig of the LOCAL cluster, the one that proxies requests to this instance "
                        "(default: the in-cluster service account)")
    c.add_argument("--context", help="context of --kubeconfig to use (default: its current context)")
    c.add_argument("--member-kubeconfig", type=Path, action="append", default=[], metavar="PATH",
                   help="kubeconfig whose every context is one member cluster, named after the context; "
                        "repeatable. The local cluster should be one of them (see --local-member)")
    c.add_argument("--local-member", metavar="NAME",
                   help="which member is the local cluster (default: the member whose server URL is the "
                        "local cluster's, or 'local' if none: then the local cluster is added as a member)")
    c.add_argument("--member-grace-period", type=parse_duration, default=300.0, metavar="DURATION",
                   help="how long an unreachable member's last known exports keep counting (default: 5m)")
    v = parser.add_argument_group("views and admission")
    v.add_argument("--clusterset-ip-cidr", default=",".join(DEFAULT_CLUSTERSET_IP_CIDRS), metavar="CIDR[,CIDR]",
                   help="ranges ClusterSetIPs are allocated from, at most one per IP family "
                        f"(default: {','.join(DEFAULT_CLUSTERSET_IP_CIDRS)})")
    v.add_argument("--leader-elect-namespace", default="mcs-system", metavar="NAMESPACE",
                   help="namespace of the Lease that picks the one replica writing ServiceExport "
                        "conditions (default: mcs-system)")
    v.add_argument("--export-conflict-policy", choices=["warn", "deny"], default="warn",
                   help="a ServiceExport that conflicts with other clusters' exports is admitted with a "
                        "warning (warn, default) or refused (deny)")
    p = parser.add_argument_group("publishing (opt-in, by the Lease holder, into the local cluster only)")
    p.add_argument("--publish-serviceimports", action="store_true",
                   help="also write the views as upstream serviceimports.multicluster.x-k8s.io objects "
                        "(the mcs-api v0.5 CRD must be installed), for CoreDNS multicluster, Gateway API "
                        "and the mcs-api conformance suite")
    p.add_argument("--publish-endpointslices", action="store_true",
                   help="also write MCS EndpointSlices (multicluster.kubernetes.io/service-name, "
                        "multicluster.kubernetes.io/source-cluster) with the ready endpoints of every "
                        "exporting cluster")
    o = parser.add_argument_group("logging")
    o.add_argument("--log-level", choices=["debug", "info", "warning", "error"], default="info")
    o.add_argument("--log-format", choices=["text", "json"], default="text")
    parser.set_defaults(func=_serve)


def options_from_args(args: argparse.Namespace) -> ServeOptions:
    return ServeOptions(
        tls_cert_file=args.tls_cert_file,
        tls_private_key_file=args.tls_private_key_file,
        secure_port=args.secure_port,
        bind_address=args.bind_address,
        kubeconfig=args.kubeconfig,
        context=args.context,
        member_kubeconfigs=list(args.member_kubeconfig),
        local_member=args.local_member,
        clusterset_ip_cidrs=[c.strip() for c in args.clusterset_ip_cidr.split(",") if c.strip()],
        export_conflict_policy=args.export_conflict_policy,
        member_grace_period=args.member_grace_period,
        shutdown_delay=args.shutdown_delay_duration,
        leader_elect_namespace=args.leader_elect_namespace,
        publish_serviceimports=args.publish_serviceimports,
        publish_endpointslices=args.publish_endpointslices,
        log_level=args.log_level,
        log_format=args.log_format,
    )


def _serve(args: argparse.Namespace) -> int:
    options = options_from_args(args)
    logs.configure(options.log_level, options.log_format)
    try:
        asyncio.run(serve(options))
    except ConfigError as error:
        log.error("%s", error)
        return 2
    return 0


async def _connections(options: ServeOptions) -> tuple[Connection, dict[str, Connection], str]:
    """The local cluster's connection, every member's, and the local member's name."""
    if options.kubeconfig is not None:
        local = await connection_from_kubeconfig(str(options.kubeconfig), options.context)
    else:
        try:
            local = connection_in_cluster()
        except Exception as error:  # noqa: BLE001 - explained below
            raise ConfigError(f"no --kubeconfig given and not running in a cluster ({error}); "
                              "pass --kubeconfig for the local cluster") from None
    members: dict[str, Connection] = {}
    for path in options.member_kubeconfigs:
        names, _ = kubeconfig_contexts(str(path))
        for name in names:
            if name in members:
                raise ConfigError(f"member {name!r} appears twice (context names must be unique across "
                                  "--member-kubeconfig files)")
            members[name] = await connection_from_kubeconfig(str(path), name)
    local_name = options.local_member
    if local_name is None:
        local_name = next((n for n, c in members.items() if c.host == local.host), "local")
    if local_name not in members:
        if options.local_member is not None and members:
            raise ConfigError(f"--local-member {local_name!r} is not a context of the member kubeconfigs "
                              f"(members: {', '.join(members)})")
        members[local_name] = local
    return local, members, local_name


async def serve(options: ServeOptions, *, ready: asyncio.Event | None = None,
                stop: asyncio.Event | None = None) -> None:
    """Run until SIGTERM/SIGINT (or ``stop`` is set), then shut down gracefully."""
    from mcs_apiserver.auth.wiring import Auth  # noqa: PLC0415 - keeps `--help` fast
    from webhooks import add_routes as add_webhook_routes  # noqa: PLC0415

    local_connection, connections, local_name = await _connections(options)
    local_client = KubeClient(local_connection, user_agent=USER_AGENT)
    metrics = Metrics()
    versioner = Versioner()
    imports, clustersets = Store("serviceimports", versioner), Store("clustersets", versioner)
    try:
        engine = ViewEngine(local_name, options.clusterset_ip_cidrs)
    except ValueError as error:
        raise ConfigError(f"--clusterset-ip-cidr: {error}") from None
    members: dict[str, MemberCache] = {}
    updater = ViewUpdater(engine, members, imports, clustersets, on_run=metrics.observe_engine_run)
    for name, connection in connections.items():
        members[name] = MemberCache(name, KubeClient(connection, user_agent=USER_AGENT), updater,
                                    grace_period=options.member_grace_period, local=name == local_name)
    metrics.add_members(members)

    auth = Auth(local_client, options.tls_cert_file, options.tls_private_key_file)
    writer = StatusWriter(engine, members[local_name], local_client)
    updater.listeners.append(
        lambda keys, membership: writer.mark(members[local_name].exports.keys() if membership else keys))
    def members_settled() -> tuple[bool, str]:
        waiting = [n for n, m in members.items() if not m.settled]
        return (not waiting, "waiting for the first sync of " + ", ".join(sorted(waiting)) if waiting else "")

    leadership = [writer.leadership_changed]
    publisher: Publisher | None = None
    if options.publish_serviceimports or options.publish_endpointslices:
        publisher = Publisher(engine, members, local_client, imports=options.publish_serviceimports,
                              slices=options.publish_endpointslices,
                              ready=lambda: members_settled()[0] and updater.runs > 0)
        updater.listeners.append(publisher.mark)
        leadership.append(publisher.leadership_changed)
    elector = LeaseElector(local_client, options.leader_elect_namespace, LEASE_NAME,
                           on_change=lambda leading: [change(leading) for change in leadership] and None)
    shutting_down = False

    checks = [
        HealthCheck("members-synced", members_settled),
        HealthCheck("views", lambda: (updater.runs > 0, "the views have not been computed yet")),
        HealthCheck("authentication-config", auth.loaded),
        HealthCheck("shutdown", lambda: (not shutting_down, "shutting down")),
    ]
    app = build_app(Served({"serviceimports": imports, "clustersets": clustersets}), checks=checks,
                    metrics=metrics, middlewares=[auth.middleware])
    add_webhook_routes(app, LiveFacts(members, local_name, engine), options.export_conflict_policy)

    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=5)
    await runner.setup()
    await auth.start()
    for member in members.values():
        member.start()
    background = [asyncio.create_task(writer.run(), name="status-writer"),
                  asyncio.create_task(elector.run(), name="leader-election"),
                  asyncio.create_task(metrics.measure_loop_lag(), name="loop-lag")]
    if publisher is not None:
        background.append(asyncio.create_task(publisher.run(), name="publisher"))
    if not options.publish_serviceimports:
        background.append(asyncio.create_task(
            _watch_upstream_crd(local_client, engine, lambda: updater.membership_changed(local_name)),
            name="upstream-crd"))
    site = web.TCPSite(runner, options.bind_address, options.secure_port, ssl_context=auth.tls.context,
                       backlog=1024, reuse_address=True)
    try:
        await site.start()
    except OSError as error:
        await _shutdown(runner, auth, members, local_client, imports, clustersets)
        raise ConfigError(f"cannot listen on {options.bind_address}:{options.secure_port}: {error}") from None
    log.info("serving on https://%s:%d", options.bind_address, options.secure_port,
             extra={"local_member": local_name, "members": ",".join(sorted(members))})

    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):
            pass
    ready_logged = asyncio.create_task(_log_ready(checks, ready))
    await stop.wait()
    shutting_down = True
    log.info("shutting down")
    ready_logged.cancel()
    if options.shutdown_delay:
        await asyncio.sleep(options.shutdown_delay)
    for task in background:
        task.cancel()
    await asyncio.gather(*background, return_exceptions=True)  # the elector releases its Lease
    await _shutdown(runner, auth, members, local_client, imports, clustersets)


UPSTREAM_CRD_PATH = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/serviceimports.multicluster.x-k8s.io"


async def _watch_upstream_crd(client: KubeClient, engine: ViewEngine, changed: Callable[[], None],
                              period: float = 10.0) -> None:
    """Tell the views whether the upstream ServiceImport CRD is installed (by something else: this
    instance does not publish), so that the ClusterSet's status can name the clash."""
    while True:
        try:
            await client.get(UPSTREAM_CRD_PATH, timeout=10)
            installed = True
        except ApiError as error:
            installed = False if error.code == 404 else engine.upstream_clash  # 403: cannot tell
        except (aiohttp.ClientError, OSError, asyncio.TimeoutError):
            installed = engine.upstream_clash
        if installed != engine.upstream_clash:
            engine.upstream_clash = installed
            changed()
        await asyncio.sleep(period)


async def _log_ready(checks: list[HealthCheck], ready: asyncio.Event | None) -> None:
    while not all(c.check()[0] for c in checks):
        await asyncio.sleep(0.1)
    log.info("ready")
    if ready is not None:
        ready.set()


async def _shutdown(runner: web.AppRunner, auth, members: Mapping[str, MemberCache], local_client: KubeClient,
                    *stores: Store) -> None:
    for store in stores:
        store.close_watchers()  # watches end cleanly; clients reconnect elsewhere
    await runner.cleanup()
    await auth.stop()
    await asyncio.gather(*(m.stop() for m in members.values()), return_exceptions=True)
    await local_client.close()
