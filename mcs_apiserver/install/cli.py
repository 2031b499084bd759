"""``mcs-apiserver install`` and ``mcs-apiserver uninstall``."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path
from typing import Awaitable, Callable

from mcs_apiserver.install import plan, run
from mcs_apiserver.kube.client import ApiError

#: Runs the installer with the local runtime for a local ClusterSet's state directory (given by the
#: ``cli`` layer, which may import ``local``): (args, options, uninstall) -> awaitable.
LocalHook = Callable[[argparse.Namespace, run.Options, bool], Awaitable[None]]


def _cluster_ids(values: list[str]) -> dict[str, str]:
    ids = {}
    for value in values:
        context, sep, cluster_id = value.partition("=")
        if not sep or not context or not cluster_id:
            raise argparse.ArgumentTypeError(f"--cluster-id {value!r}: expected CONTEXT=ID")
        ids[context] = cluster_id
    return ids


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--context", dest="contexts", action="append", default=[], metavar="CONTEXT",
                   help="a member cluster, as a context of the kubeconfig (repeat: once per member)")
    p.add_argument("--kubeconfig", type=Path, metavar="FILE",
                   default=Path(os.environ.get("KUBECONFIG", "~/.kube/config").split(os.pathsep)[0]).expanduser(),
                   help="the kubeconfig with an admin identity in every member (default: $KUBECONFIG or "
                        "~/.kube/config)")
    p.add_argument("--cluster-id", dest="cluster_ids", action="append", default=[], metavar="CONTEXT=ID",
                   help="the cluster ID (cluster.clusterset.k8s.io, a DNS label) of a member; default: the one it "
                        "has, else its kube-system namespace UID")
    p.add_argument("--clusterset", default="clusterset", metavar="NAME",
                   help="the ClusterSet name (clusterset.k8s.io) (default: clusterset)")
    p.add_argument("--runtime", choices=plan.RUNTIMES, default="deployment",
                   help="deployment: the manifests' Deployment runs the instances; local: processes of the "
                        "local ClusterSet in --state-dir (what `local up` uses) (default: deployment)")
    p.add_argument("--state-dir", type=Path, default=Path(".local/clusterset"), metavar="DIR",
                   help="--runtime local only: the local ClusterSet (default: .local/clusterset)")


def add_install_arguments(parser: argparse.ArgumentParser, local_hook: LocalHook) -> None:
    _common(parser)
    parser.add_argument("--dry-run", action="store_true",
                        help="print what would be applied in each member (YAML, Secrets redacted), change nothing")
    parser.add_argument("--timeout", type=float, default=run.AVAILABLE_TIMEOUT, metavar="SECONDS",
                        help=f"how long to wait for every APIService to be Available (default: "
                             f"{run.AVAILABLE_TIMEOUT:.0f})")
    parser.set_defaults(func=lambda args: _main(args, local_hook, uninstall=False))


def add_uninstall_arguments(parser: argparse.ArgumentParser, local_hook: LocalHook) -> None:
    _common(parser)
    parser.add_argument("--remove-cluster-properties", action="store_true",
                        help="also delete clusterset.k8s.io and cluster.clusterset.k8s.io (leave the ClusterSet)")
    parser.set_defaults(func=lambda args: _main(args, local_hook, uninstall=True))


def _main(args: argparse.Namespace, local_hook: LocalHook, uninstall: bool) -> int:
    try:
        options = run.Options(kubeconfig=args.kubeconfig, contexts=args.contexts, clusterset=args.clusterset,
                              cluster_ids=_cluster_ids(args.cluster_ids),
                              dry_run=getattr(args, "dry_run", False),
                              timeout=getattr(args, "timeout", run.AVAILABLE_TIMEOUT))
        if args.runtime == "local":
            asyncio.run(local_hook(args, options, uninstall))
        elif uninstall:
            asyncio.run(run.uninstall(options, args.remove_cluster_properties))
        else:
            asyncio.run(run.install(options))
    except (argparse.ArgumentTypeError, plan.PlanError, run.InstallError, ApiError, OSError, KeyError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0
