"""``mcs-apiserver local ...`` and ``mcs-apiserver binaries ...`` subcommands."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from mcs_apiserver.local import cluster, network, report
from mcs_apiserver.local.binaries import BinariesError, Versions, describe, ensure_binaries, find_binaries
from mcs_apiserver.kube.client import ApiError

DEFAULT_STATE_DIR = Path(".local/clusterset")


def add_local_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="local_command", metavar="COMMAND", required=True)

    def state_dir(p: argparse.ArgumentParser) -> None:
        p.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR, metavar="DIR",
                       help="where the ClusterSet keeps its state, certificates, logs and kubeconfig "
                            f"(default: {DEFAULT_STATE_DIR})")

    up = sub.add_parser("up", help="start a local ClusterSet of real control planes",
                        description="Start N member control planes (etcd, kube-apiserver, "
                                    "kube-controller-manager with every default controller) on loopback, "
                                    "install the CRDs, give each member K simulated Nodes (kube-scheduler + "
                                    "kwok), run `mcs-apiserver install --runtime local` (ClusterProperties, "
                                    "least-privilege identities, one mcs-apiserver per member) and write DIR/kubeconfig with one context per member "
                                    "(member-1 ... member-N). Member i has Pod CIDR 10.i.0.0/16 and Service "
                                    "CIDR 10.(100+i).0.0/16 (IPv6: fd00:10:i::/48, fd00:96:i::/112). "
                                    "Returns when everything is ready.")
    up.add_argument("--members", type=int, default=3, metavar="N",
                    help=f"number of member clusters, at most {network.MAX_MEMBERS} (default: 3)")
    up.add_argument("--nodes", type=int, default=2, metavar="K",
                    help="simulated Nodes per member, run by kwok and scheduled by kube-scheduler; "
                         "0 runs neither (default: 2)")
    up.add_argument("--ip-family", choices=network.IP_FAMILIES, default="ipv4",
                    help="the address families of Pods, Services and Nodes (default: ipv4)")
    up.add_argument("--clusterset", default="local", metavar="NAME",
                    help="the ClusterSet name, the value of each member's clusterset.k8s.io (default: local)")
    up.add_argument("--publish", action="store_true",
                    help="install the upstream ServiceImport CRD (mcs-api v0.5.0) and run every instance with "
                         "--publish-serviceimports and --publish-endpointslices")
    up.add_argument("--no-instances", dest="instances", action="store_false",
                    help="only the control planes and the CRDs: no mcs-apiserver, no ClusterProperties "
                         "(then run: mcs-apiserver install --runtime local --state-dir DIR ...)")
    state_dir(up)
    up.set_defaults(func=_up)

    down = sub.add_parser("down", help="stop everything a local ClusterSet started")
    state_dir(down)
    down.set_defaults(func=_down)

    status = sub.add_parser("status", help="report the processes, CIDRs, Nodes and addresses of a local ClusterSet")
    status.add_argument("-o", "--output", choices=["text", "json"], default="text",
                        help="text for people, json for scripts (default: text)")
    state_dir(status)
    status.set_defaults(func=_status)

    for verb, func, help_text in (
        ("stop", _stop, "stop one member's processes (e.g. to see it become Unreachable)"),
        ("start", _start, "start one member's stopped processes again"),
    ):
        p = sub.add_parser(verb, help=help_text)
        p.add_argument("member", metavar="MEMBER", help="the member, e.g. member-2")
        p.add_argument("--component", choices=["kube-apiserver", "kube-controller-manager", "kube-scheduler",
                                               "kwok", "mcs-apiserver"],
                       help="only this component (default: all of the member's)")
        state_dir(p)
        p.set_defaults(func=func)


def add_binaries_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="binaries_command", metavar="COMMAND", required=True)
    build = sub.add_parser("build", help="build the pinned upstream binaries into the cache (reused when present)")
    build.add_argument("--rebuild", action="store_true", help="build again even if a finished build exists")
    build.set_defaults(func=_build)
    path = sub.add_parser("path", help="print where the binaries are (exit 1 if not built yet)")
    path.set_defaults(func=_path)


def _up(args: argparse.Namespace) -> int:
    options = cluster.UpOptions(state_dir=args.state_dir, members=args.members, clusterset=args.clusterset,
                                nodes=args.nodes, ip_family=args.ip_family, instances=args.instances,
                                publish=args.publish)
    try:
        state = asyncio.run(cluster.up(options))
    except cluster.AlreadyRunning as error:
        print(error, file=sys.stderr)
        return 0 if error.complete else 1
    except (cluster.LocalClusterSetError, BinariesError, ApiError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    kubeconfig_path = args.state_dir.resolve() / cluster.ADMIN_KUBECONFIG
    first = state.members[min(1, len(state.members) - 1)].name
    print(f"kubeconfig: {kubeconfig_path}")
    print("contexts:   " + ", ".join(m.name for m in state.members))
    print("try:")
    print(f"  export KUBECONFIG={kubeconfig_path}")
    print(f"  kubectl --context {first} get clusterproperties")
    dns_port = state.members[0].dns_port
    if dns_port:
        print(f"  dig @127.0.0.1 -p {dns_port} dns-version.clusterset.local TXT   # {state.members[0].name}'s DNS")
    return 0


def _down(args: argparse.Namespace) -> int:
    try:
        cluster.down(args.state_dir)
    except (cluster.LocalClusterSetError, RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


def _status(args: argparse.Namespace) -> int:
    observed = asyncio.run(cluster.status(args.state_dir))
    if observed is None:
        print(f"no local ClusterSet in {args.state_dir.resolve()}", file=sys.stderr)
        return 1
    doc = report.status_document(observed)
    print(json.dumps(doc, indent=2) if args.output == "json" else report.status_text(doc))
    return 0 if observed.healthy else 1


def _stop(args: argparse.Namespace) -> int:
    try:
        stopped = cluster.stop_member(args.state_dir, args.member, args.component)
    except (cluster.LocalClusterSetError, KeyError, RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print("stopped: " + (", ".join(stopped) or "nothing (already stopped)"))
    return 0


def _start(args: argparse.Namespace) -> int:
    try:
        started = asyncio.run(cluster.start_member(args.state_dir, args.member, args.component))
    except (cluster.LocalClusterSetError, KeyError, RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print("started: " + (", ".join(started) or "nothing (already running)"))
    return 0


def _build(args: argparse.Namespace) -> int:
    try:
        binaries = ensure_binaries(rebuild=args.rebuild)
    except BinariesError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(describe(binaries))
    return 0


def _path(args: argparse.Namespace) -> int:
    binaries = find_binaries()
    if binaries is None:
        versions = Versions.pinned()
        print(f"Kubernetes {versions.kubernetes}, etcd {versions.etcd}, kwok {versions.kwok} and CoreDNS "
              f"{versions.coredns} are not all built yet; run: mcs-apiserver binaries build", file=sys.stderr)
        return 1
    print(describe(binaries))
    return 0
