"""``mcs-apiserver serve``: one instance, for one local cluster, watching every member.

Wiring, in the order data flows: member caches (``members``) report changes to the view updater,
which runs the view engine (``views``) and feeds the stores (``api.store``) that the HTTP layer
serves, and the DNS zone (``dns``) that answers ``clusterset.local``; the webhooks read the same
caches through ``LiveFacts``. Authentication and authorization
follow kube-apiserver's delegation (``auth``); TLS certificates are reloaded on change (``tls``).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import re
import signal
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import dns.exception
import dns.name
import uvloop
import aiohttp
from aiohttp import web

from mcs_apiserver import logs
from mcs_apiserver.admission_facts import LiveFacts
from mcs_apiserver.dns.feed import DnsFeed
from mcs_apiserver.dns.responder import Responder
from mcs_apiserver.dns.server import DnsOptions, DnsServer
from mcs_apiserver.dns.zone import DEFAULT_TTL, DEFAULT_ZONE, Zone
from mcs_apiserver.api.app import HealthCheck, build_app
from mcs_apiserver.api.http2 import ALPN_PROTOCOLS, Http2Settings, http2_factory
from mcs_apiserver.api.limits import ConnectionGuard, GuardedSite, Limiter, Limits, return_free_memory, runner_options, tune_process
from mcs_apiserver.api.resources import ApiSettings, Served
from mcs_apiserver.api.store import Store, StoreSettings, Versioner
from mcs_apiserver.kube.client import (
    ApiError,
    Connection,
    KubeClient,
    connection_from_kubeconfig,
    connection_in_cluster,
    kubeconfig_contexts,
)
from mcs_apiserver.members.member import MemberCache
from mcs_apiserver.members.reflector import MemberSettings
from mcs_apiserver.writers.lease import LeaseElector
from mcs_apiserver.metrics import Metrics
from mcs_apiserver.writers.events import EventRecorder, EventSettings
from mcs_apiserver.writers.status import StatusWriter, WriterSettings
from mcs_apiserver.tls import TLS_VERSIONS, TLSOptions, parse_cipher_suites
from mcs_apiserver.updater import ViewUpdater
from mcs_apiserver.views.engine import ViewEngine
from mcs_apiserver.views.ipalloc import DEFAULT_CLUSTERSET_IP_CIDRS
from mcs_apiserver.writers.publisher import Publisher

if TYPE_CHECKING:
    from mcs_apiserver.auth.settings import AuthSettings
    from mcs_apiserver.auth.webhook_callers import WebhookCallers

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


@dataclass(frozen=True, slots=True)
class Settings:
    """The tuning of every layer in one object, handed down from :func:`serve` (the flags are in
    :class:`ServeOptions`; these are the constants a user never needs to change, in one place)."""

    store: StoreSettings = StoreSettings()
    api: ApiSettings = ApiSettings()
    #: None: ``AuthSettings()`` (imported when serving: the auth package is slow to import for ``--help``).
    auth: AuthSettings | None = None
    members: MemberSettings = MemberSettings()
    writer: WriterSettings = WriterSettings()
    events: EventSettings = EventSettings()


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
    dns_port: int = 5353  #: 0: no DNS
    dns_bind_address: str = "0.0.0.0"
    dns_zone: str = DEFAULT_ZONE
    dns_ttl: int = DEFAULT_TTL
    tls: TLSOptions = field(default_factory=TLSOptions)

    limits: Limits = field(default_factory=Limits)
    webhook_client_ca_file: Path | None = None
    webhook_allowed_names: list[str] = field(default_factory=list)


def _dns_ttl(text: str) -> int:
    seconds = parse_duration(text)
    if not 0 <= seconds <= 3600 or seconds != int(seconds):
        raise argparse.ArgumentTypeError(f"invalid TTL {text!r}: whole seconds from 0s to 1h")
    return int(seconds)


def _dns_zone(text: str) -> str:
    try:
        name = dns.name.from_text(text)
    except dns.exception.DNSException as error:
        raise argparse.ArgumentTypeError(f"invalid zone {text!r}: {error}") from None
    if name == dns.name.root:
        raise argparse.ArgumentTypeError("the zone cannot be the root")
    return name.to_text(omit_final_dot=True).lower()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("serving")
    g.add_argument("--secure-port", type=int, default=8443, help="the port to serve HTTPS on (default: 8443)")
    g.add_argument("--bind-address", default="0.0.0.0",
                   help="the IP address to listen on (default: 0.0.0.0; 127.0.0.1 for loopback only)")
    g.add_argument("--tls-cert-file", type=Path, required=True,
                   help="serving certificate (PEM, with chain); reloaded when it changes on disk")
    g.add_argument("--tls-private-key-file", type=Path, required=True, help="key of --tls-cert-file (PEM)")
    g.add_argument("--tls-min-version", choices=list(TLS_VERSIONS), default="VersionTLS12",
                   help="the lowest TLS version served, as kube-apiserver's flag (default: VersionTLS12)")
    g.add_argument("--tls-cipher-suites", type=_cipher_suites, default=(), metavar="NAMES",
                   help="comma-separated TLS 1.2 cipher suites, by their Go names as kube-apiserver's flag "
                        "(e.g. TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256); default: OpenSSL's. TLS 1.3 "
                        "suites are accepted and, as in Go, not configurable")
    g.add_argument("--shutdown-delay-duration", type=parse_duration, default=0.0, metavar="DURATION",
                   help="on SIGTERM, keep serving (unready) this long before closing, so load balancers "
                        "stop sending traffic first (default: 0s)")
    _add_limit_arguments(parser)
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
    v.add_argument("--webhook-client-ca-file", type=Path, metavar="PATH",
                   help="require webhook callers to present a client certificate issued by a CA in this file "
                        "(kube-apiserver does so when its AdmissionConfiguration gives a kubeconfig for this "
                        "webhook host; see manifests/webhooks.yaml); others get 401. Default: any TLS client")
    v.add_argument("--webhook-allowed-names", default="", metavar="NAME[,NAME]",
                   help="with --webhook-client-ca-file: the common names accepted (default: any name that CA issued)")
    v.add_argument("--export-conflict-policy", choices=["warn", "deny"], default="warn",
                   help="a ServiceExport that conflicts with other clusters' exports is admitted with a "
                        "warning (warn, default) or refused (deny)")
    d = parser.add_argument_group("multicluster DNS")
    d.add_argument("--dns-port", type=int, default=5353, metavar="PORT",
                   help="serve DNS for --dns-zone on this port, UDP and TCP (default: 5353; 0: no DNS)")
    d.add_argument("--dns-bind-address", default="0.0.0.0", metavar="IP",
                   help="the IP address to serve DNS on (default: 0.0.0.0)")
    d.add_argument("--dns-zone", type=_dns_zone, default=DEFAULT_ZONE, metavar="ZONE",
                   help=f"the zone answered from the view (default: {DEFAULT_ZONE})")
    d.add_argument("--dns-ttl", type=_dns_ttl, default=DEFAULT_TTL, metavar="DURATION",
                   help=f"TTL of the answers and of negative caching (default: {DEFAULT_TTL}s, at most 1h)")
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


def _add_limit_arguments(parser: argparse.ArgumentParser) -> None:
    d = Limits()
    g = parser.add_argument_group("limits (see mcs_apiserver/api/limits.py; 0 disables a count limit)")
    g.add_argument("--max-requests-inflight", type=int, default=d.max_requests_inflight, metavar="N",
                   help="read-only requests (get, list) served at once; more get 429 with Retry-After "
                        f"(default: {d.max_requests_inflight}, as kube-apiserver)")
    g.add_argument("--max-mutating-requests-inflight", type=int, default=d.max_mutating_requests_inflight,
                   metavar="N", help="other requests (the webhooks' AdmissionReviews) served at once; more get "
                                     f"429 (default: {d.max_mutating_requests_inflight}, as kube-apiserver)")
    g.add_argument("--max-watches", type=int, default=d.max_watches, metavar="N",
                   help=f"watches open at once, all users together; more get 429 (default: {d.max_watches})")
    g.add_argument("--max-watches-per-user", type=int, default=d.max_watches_per_user, metavar="N",
                   help=f"watches open at once by one user; more get 429 (default: {d.max_watches_per_user})")
    g.add_argument("--request-header-timeout", type=parse_duration, default=d.request_header_timeout,
                   metavar="DURATION", help="a connection must finish its TLS handshake and each request's "
                                            "headers within this, or it is closed (default: 10s)")
    g.add_argument("--request-body-timeout", type=parse_duration, default=d.request_body_timeout,
                   metavar="DURATION", help="a request body must be received (and answered) within this, "
                                            "or the request gets 408 and its connection is closed (default: 10s)")
    g.add_argument("--max-request-body-bytes", type=int, default=d.max_request_body_bytes, metavar="BYTES",
                   help="largest AdmissionReview accepted; larger gets 413 (default: "
                        f"{d.max_request_body_bytes}: an UPDATE of the largest object etcd stores). Other paths: "
                        "64 KiB")
    g.add_argument("--max-request-body-bytes-inflight", type=int, default=d.max_request_body_bytes_inflight,
                   metavar="BYTES", help="body bytes all requests being received may reserve together; more get "
                                         f"429 (default: {d.max_request_body_bytes_inflight}, 32 MiB)")
    g.add_argument("--http2-max-streams-per-connection", type=int, default=d.http2_max_streams_per_connection,
                   metavar="N", help="HTTP/2 streams (requests, watches) a client may open at once on one connection "
                                     "(kube-apiserver's transports open another connection beyond it); 0 turns "
                                     f"HTTP/2 off: HTTP/1.1 only (default: {d.http2_max_streams_per_connection}, "
                                     "as kube-apiserver)")


def _limits_from_args(args: argparse.Namespace) -> Limits:
    for name in ("max_requests_inflight", "max_mutating_requests_inflight", "max_watches", "max_watches_per_user",
                 "max_request_body_bytes", "max_request_body_bytes_inflight", "http2_max_streams_per_connection"):
        if getattr(args, name) < 0:
            raise ConfigError(f"--{name.replace('_', '-')} must not be negative")
    for name in ("request_header_timeout", "request_body_timeout"):
        if getattr(args, name) <= 0:
            raise ConfigError(f"--{name.replace('_', '-')} must be longer than 0s, e.g. 10s")
    return Limits(
        max_requests_inflight=args.max_requests_inflight,
        max_mutating_requests_inflight=args.max_mutating_requests_inflight,
        max_watches=args.max_watches,
        max_watches_per_user=args.max_watches_per_user,
        request_header_timeout=args.request_header_timeout,
        request_body_timeout=args.request_body_timeout,
        max_request_body_bytes=args.max_request_body_bytes,
        max_request_body_bytes_inflight=args.max_request_body_bytes_inflight,
        http2_max_streams_per_connection=args.http2_max_streams_per_connection,
    )


def _cipher_suites(text: str) -> tuple[str, ...]:
    try:
        return parse_cipher_suites(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def options_from_args(args: argparse.Namespace) -> ServeOptions:
    return ServeOptions(
        tls=TLSOptions(min_version=args.tls_min_version, cipher_suites=args.tls_cipher_suites),
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
        dns_port=args.dns_port,
        dns_bind_address=args.dns_bind_address,
        dns_zone=args.dns_zone,
        dns_ttl=args.dns_ttl,
        limits=_limits_from_args(args),
        webhook_client_ca_file=args.webhook_client_ca_file,
        webhook_allowed_names=[n.strip() for n in args.webhook_allowed_names.split(",") if n.strip()],
    )


def _serve(args: argparse.Namespace) -> int:
    logs.configure(args.log_level, args.log_format)
    try:
        options = options_from_args(args)
        uvloop.run(serve(options))  # measured: about 3x the UDP answers per second of asyncio's own loop
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
                stop: asyncio.Event | None = None, settings: Settings = Settings()) -> None:
    """Run until SIGTERM/SIGINT (or ``stop`` is set), then shut down gracefully."""
    from mcs_apiserver.auth.middleware import USER  # noqa: PLC0415 - keeps `--help` fast
    from mcs_apiserver.auth.settings import AuthSettings  # noqa: PLC0415
    from mcs_apiserver.auth.wiring import Auth  # noqa: PLC0415
    from webhooks import PATHS as WEBHOOK_PATHS  # noqa: PLC0415
    from webhooks import add_routes as add_webhook_routes  # noqa: PLC0415

    tune_process()
    local_connection, connections, local_name = await _connections(options)
    local_client = KubeClient(local_connection, user_agent=USER_AGENT)
    metrics = Metrics()
    versioner = Versioner()
    imports = Store("serviceimports", versioner, settings.store)
    clustersets = Store("clustersets", versioner, settings.store)
    try:
        engine = ViewEngine(local_name, options.clusterset_ip_cidrs)
    except ValueError as error:
        raise ConfigError(f"--clusterset-ip-cidr: {error}") from None
    members: dict[str, MemberCache] = {}
    updater = ViewUpdater(engine, members, imports, clustersets, on_run=metrics.observe_engine_run)
    for name, connection in connections.items():
        members[name] = MemberCache(name, KubeClient(connection, user_agent=USER_AGENT), updater,
                                    grace_period=options.member_grace_period, local=name == local_name,
                                    settings=settings.members)
    metrics.add_members(members)

    limits = options.limits
    http2 = None
    if limits.http2_max_streams_per_connection:
        http2 = http2_factory(Http2Settings(max_streams=limits.http2_max_streams_per_connection,
                                            header_timeout=limits.request_header_timeout))
    # h2 is offered by ALPN exactly when a connection that chooses it can be served so.
    tls_options = replace(options.tls, alpn_protocols=ALPN_PROTOCOLS if http2 is not None else ())
    auth = Auth(local_client, options.tls_cert_file, options.tls_private_key_file,
                webhook_callers=_webhook_callers(options), tls_options=tls_options,
                settings=settings.auth or AuthSettings())
    # reportingInstance: the host name, which is the Pod's name in a Deployment.
    events = EventRecorder(local_client, socket.gethostname(), settings.events)
    writer = StatusWriter(engine, members[local_name], local_client, settings.writer, events)
    updater.listeners.append(
        lambda keys, membership: writer.mark(members[local_name].exports.keys() if membership else keys))
    zone = Zone(options.dns_zone, options.dns_ttl)
    zone.ready = False  # SERVFAIL until the first view: never a false NXDOMAIN
    dns_server = None
    if options.dns_port:
        updater.listeners.append(DnsFeed(zone, engine, members))
        dns_server = DnsServer(Responder(zone), DnsOptions(options.dns_port, options.dns_bind_address))
        dns_server.stats.names = lambda: len(zone.names)
        metrics.registry.register(dns_server.stats)

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
    guard = ConnectionGuard(limits.request_header_timeout, http2=http2, trusts=auth.trusts)
    app = build_app(Served({"serviceimports": imports, "clustersets": clustersets}), checks=checks,
                    metrics=metrics, middlewares=[auth.middleware], limiter=Limiter(options.limits), guard=guard,
                    user_of=lambda request: request[USER].name if USER in request else "",
                    webhook_paths=WEBHOOK_PATHS, settings=settings.api)
    add_webhook_routes(app, LiveFacts(members, local_name, engine), options.export_conflict_policy,
                       max_body_bytes=options.limits.max_request_body_bytes)

    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=5,
                           **runner_options())
    await runner.setup()
    await auth.start()
    for member in members.values():
        member.start()
    background = [asyncio.create_task(writer.run(), name="status-writer"),
                  asyncio.create_task(events.run(), name="event-recorder"),
                  asyncio.create_task(elector.run(), name="leader-election"),
                  asyncio.create_task(metrics.measure_loop_lag(), name="loop-lag"),
                  asyncio.create_task(return_free_memory(), name="return-free-memory")]
    if publisher is not None:
        background.append(asyncio.create_task(publisher.run(), name="publisher"))
    if not options.publish_serviceimports:
        background.append(asyncio.create_task(
            _watch_upstream_crd(local_client, engine, lambda: updater.membership_changed(local_name)),
            name="upstream-crd"))
    site = GuardedSite(runner, options.bind_address, options.secure_port, guard=guard,
                       ssl_context=auth.tls.context, backlog=1024, reuse_address=True)
    try:
        await site.start()
    except OSError as error:
        await _shutdown(runner, auth, members, local_client, imports, clustersets)
        raise ConfigError(f"cannot listen on {options.bind_address}:{options.secure_port}: {error}") from None
    if dns_server is not None:
        try:
            await dns_server.start()
        except OSError as error:
            await _shutdown(runner, auth, members, local_client, imports, clustersets)
            raise ConfigError(f"cannot serve DNS on {options.dns_bind_address}:{options.dns_port}: {error} "
                              "(choose another --dns-port, or 0 for no DNS)") from None
    log.info("serving on https://%s:%d", options.bind_address, options.secure_port,
             extra={"local_member": local_name, "members": ",".join(sorted(members))})

    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):
            pass
    ready_logged = asyncio.create_task(_log_ready(checks, ready, zone))
    await stop.wait()
    shutting_down = True
    log.info("shutting down")
    ready_logged.cancel()
    if options.shutdown_delay:
        await asyncio.sleep(options.shutdown_delay)
    for task in background:
        task.cancel()
    await asyncio.gather(*background, return_exceptions=True)  # the elector releases its Lease
    if dns_server is not None:
        await dns_server.stop()
    await _shutdown(runner, auth, members, local_client, imports, clustersets)


def _webhook_callers(options: ServeOptions) -> WebhookCallers | None:
    from mcs_apiserver.auth.webhook_callers import WebhookCallers  # noqa: PLC0415

    if options.webhook_client_ca_file is None:
        if options.webhook_allowed_names:
            raise ConfigError("--webhook-allowed-names needs --webhook-client-ca-file")
        return None
    try:
        return WebhookCallers(options.webhook_client_ca_file.read_bytes(), options.webhook_allowed_names)
    except (OSError, ValueError) as error:
        raise ConfigError(f"--webhook-client-ca-file {options.webhook_client_ca_file}: {error}") from None


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


async def _log_ready(checks: list[HealthCheck], ready: asyncio.Event | None, zone: Zone) -> None:
    """Log "ready" once every check passes; DNS answers as soon as the members and views are (the
    first two checks), whatever the HTTP side still waits for."""
    while not all(c.check()[0] for c in checks):
        if not zone.ready and all(c.check()[0] for c in checks[:2]):
            zone.ready = True
        await asyncio.sleep(0.1)
    zone.ready = True
    freeze_heap()
    log.info("ready")
    if ready is not None:
        ready.set()


def freeze_heap() -> None:
    """Move everything alive at start-up (modules, the Kubernetes client's classes, the first view
    of every member) out of the cyclic garbage collector's sight (``gc.freeze``).

    The collector's oldest generation traverses every container object in the process each time it
    runs: measured in a serving instance, a 250 ms pause during a burst of connections, every
    request waiting behind it. What exists at start-up is never cyclic garbage; reference counting
    still frees it when it goes. Later collections traverse only what was made since.
    """
    gc.collect()
    gc.freeze()


async def _shutdown(runner: web.AppRunner, auth, members: Mapping[str, MemberCache], local_client: KubeClient,
                    *stores: Store) -> None:
    for store in stores:
        store.close_watchers()  # watches end cleanly; clients reconnect elsewhere
    await runner.cleanup()
    await auth.stop()
    await asyncio.gather(*(m.stop() for m in members.values()), return_exceptions=True)
    await local_client.close()
