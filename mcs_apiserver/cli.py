"""The ``mcs-apiserver`` command: one binary, subcommands like kubeadm's."""

from __future__ import annotations

import argparse
import sys
from typing import Awaitable

from mcs_apiserver.local.cli import add_binaries_arguments, add_local_arguments
from mcs_apiserver.version import version_line


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mcs-apiserver",
        description="Kubernetes Multi-Cluster Services, made real: an aggregated API server serving "
                    "live ServiceImport and ClusterSet views (views.multicluster.x-k8s.io/v1alpha1) "
                    "computed from every member cluster, plus the admission webhooks of KEP-1645 and "
                    "KEP-2149.",
    )
    parser.add_argument("--version", action="version", version=version_line(),
                        help="print the version (and git commit, when known) and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    from certs.cli import add_arguments as add_certs_arguments
    from mcs_apiserver.install import run as install_run
    from mcs_apiserver.install.cli import add_install_arguments, add_uninstall_arguments
    from mcs_apiserver.local import cluster as local_cluster
    from mcs_apiserver.server import add_arguments as add_serve_arguments

    add_serve_arguments(sub.add_parser(
        "serve", help="run one instance: the aggregated API, the admission webhooks and multicluster DNS",
        description="Serve views.multicluster.x-k8s.io/v1alpha1 (ServiceImports and the ClusterSet, "
                    "computed live from every member cluster) and the admission webhooks, over TLS, "
                    "to the local cluster's kube-apiserver."))

    add_certs_arguments(sub.add_parser(
        "certs", help="create the CA, serving and client certificates and the caBundle",
        description="Create the PKI an instance needs: a CA, a serving certificate for "
                    "<service>.<namespace>.svc, client certificates, and the caBundle for manifests."))
    def local_runtime(args: argparse.Namespace, options: install_run.Options, uninstall: bool) -> Awaitable[None]:
        return local_cluster.run_installer(args.state_dir, options, uninstall,
                                           getattr(args, "remove_cluster_properties", False))

    add_install_arguments(sub.add_parser(
        "install", help="install a ClusterSet into clusters: one command for every member",
        description="In every member (a context of your kubeconfig): the CRDs, the namespace and RBAC, one "
                    "read-only identity per instance, the members kubeconfig built from them, serving "
                    "certificates and caBundles, the ClusterProperties, the manifests; then wait until every "
                    "APIService is Available. Idempotent: run it again to converge, or to add a member."),
        local_runtime)
    add_uninstall_arguments(sub.add_parser(
        "uninstall", help="remove what install applied (webhooks first)",
        description="Remove everything install applied, webhooks first, so that no cluster is left with a "
                    "fail-closed webhook and no server. The CRDs stay (deleting them deletes every "
                    "ServiceExport); the ClusterProperties stay unless --remove-cluster-properties."),
        local_runtime)
    add_local_arguments(sub.add_parser(
        "local", help="a local ClusterSet of real control planes (up, down, status, stop, start)",
        description="Run a ClusterSet of real Kubernetes control planes on this machine, with "
                    "simulated Nodes (kwok) and one mcs-apiserver instance per member."))
    add_binaries_arguments(sub.add_parser(
        "binaries", help="build the pinned upstream Kubernetes, etcd, kwok and CoreDNS binaries",
        description="Build kube-apiserver, kube-controller-manager, kube-scheduler, kubectl, etcd, kwok "
                    "(with its fast node and pod stages) and coredns from their Go modules into "
                    "~/.cache/mcs-apiserver (or $MCS_APISERVER_CACHE)."))
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
