"""``mcs-apiserver certs ...``: make the certificates a deployment needs, kubeadm style.

    mcs-apiserver certs all --dir pki --service mcs-apiserver --namespace mcs-system
    mcs-apiserver certs client --dir pki --name admin --group system:masters
    mcs-apiserver certs ca-bundle --dir pki

Every sub-command reads and writes one directory: ``ca.crt``/``ca.key``, ``tls.crt``/``tls.key``
and ``<name>.crt``/``<name>.key``. A front-proxy CA is just another directory
(``certs ca --dir pki/front-proxy --name front-proxy-ca``). Nothing is overwritten without
``--force``; expected failures print one line to stderr and exit 1.
"""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Callable
from pathlib import Path

from cryptography import x509

from certs import pki

__all__ = ["add_arguments"]

Command = Callable[[argparse.Namespace], int]

DEFAULT_CA_NAME = "mcs-apiserver-ca"
DEFAULT_SERVICE = "mcs-apiserver"
DEFAULT_NAMESPACE = "mcs-system"


class CertsError(Exception):
    """An expected failure, reported as one line without a traceback."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``certs`` sub-commands to ``parser``; each sets ``func`` to its handler."""
    commands = parser.add_subparsers(dest="certs_command", metavar="COMMAND", required=True)

    ca = commands.add_parser("ca", help="create a CA (DIR/ca.crt, DIR/ca.key)")
    _add_dir(ca)
    ca.add_argument(
        "--name", default=DEFAULT_CA_NAME, help="common name of the CA (default: %(default)s)"
    )
    _add_force(ca)
    ca.set_defaults(func=_cmd_ca)

    serving = commands.add_parser(
        "serving", help="issue the serving certificate (DIR/tls.crt, DIR/tls.key) from DIR/ca.*"
    )
    _add_dir(serving)
    _add_service(serving)
    _add_force(serving)
    serving.set_defaults(func=_cmd_serving)

    client = commands.add_parser(
        "client", help="issue a client certificate (DIR/<name>.crt, DIR/<name>.key) from DIR/ca.*"
    )
    _add_dir(client)
    client.add_argument("--name", required=True, help="common name: the Kubernetes user name")
    client.add_argument(
        "--group",
        action="append",
        default=[],
        metavar="GROUP",
        help="a Kubernetes group (an O attribute); repeat for several, e.g. system:masters",
    )
    client.add_argument(
        "--out-prefix", metavar="NAME", help="file name without extension (default: the --name)"
    )
    _add_force(client)
    client.set_defaults(func=_cmd_client)

    bundle = commands.add_parser(
        "ca-bundle", help="print the base64 caBundle of DIR/ca.crt for APIService and webhooks"
    )
    _add_dir(bundle)
    bundle.set_defaults(func=_cmd_ca_bundle)

    everything = commands.add_parser(
        "all", help="create the CA and the serving certificate in one go, and print the caBundle"
    )
    _add_dir(everything)
    _add_service(everything)
    _add_force(everything)
    everything.set_defaults(func=_cmd_all)


def _add_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dir", required=True, type=Path, help="directory of the certificates")


def _add_force(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--force", action="store_true", help="overwrite existing files")


def _add_service(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--service",
        default=DEFAULT_SERVICE,
        help="name of the Service in front of mcs-apiserver (default: %(default)s)",
    )
    parser.add_argument(
        "--namespace", default=DEFAULT_NAMESPACE, help="its namespace (default: %(default)s)"
    )
    parser.add_argument(
        "--host",
        action="append",
        default=[],
        metavar="HOST",
        help="an extra DNS name or IP address for the serving certificate; repeat for several",
    )


def _reported(command: Callable[[argparse.Namespace], None]) -> Command:
    """Turn expected failures (existing files, a missing CA, bad input) into one line and exit 1."""

    @functools.wraps(command)
    def run(args: argparse.Namespace) -> int:
        try:
            command(args)
        except (CertsError, OSError, ValueError) as error:
            print(f"error: {error}", file=sys.stderr)
            return 1
        return 0

    return run


@_reported
def _cmd_ca(args: argparse.Namespace) -> None:
    _write_ca(args.dir, args.name, args.force)


@_reported
def _cmd_serving(args: argparse.Namespace) -> None:
    _write_serving(args.dir, _load_ca(args.dir), args)


@_reported
def _cmd_client(args: argparse.Namespace) -> None:
    prefix = args.out_prefix if args.out_prefix is not None else args.name
    if not prefix or prefix in (".", "..", "ca") or "/" in prefix or "\\" in prefix:
        raise CertsError(
            f"{prefix!r} cannot be a file name in {args.dir}; pick another with --out-prefix"
        )
    ca = _load_ca(args.dir)
    client = pki.issue_client_cert(ca, common_name=args.name, organizations=args.group)
    cert_path, key_path = args.dir / f"{prefix}.crt", args.dir / f"{prefix}.key"
    pki.write_cert_key(client, cert_path, key_path, overwrite=args.force)
    groups = ", groups " + ", ".join(args.group) if args.group else ""
    print(f"wrote {cert_path} and {key_path}: client certificate for user {args.name}{groups}")


@_reported
def _cmd_ca_bundle(args: argparse.Namespace) -> None:
    print(pki.ca_bundle(_load_ca_cert(args.dir)))


@_reported
def _cmd_all(args: argparse.Namespace) -> None:
    if not args.force:
        # Refuse before writing anything, so that a refusal never leaves a new CA behind.
        for name in ("ca.crt", "ca.key", "tls.crt", "tls.key"):
            if (args.dir / name).exists():
                raise pki.PKIFileExists(args.dir / name)
    ca = _write_ca(args.dir, DEFAULT_CA_NAME, args.force)
    _write_serving(args.dir, ca, args)
    print("caBundle for the APIService and the webhook configurations:")
    print(pki.ca_bundle(ca.cert))


def _write_ca(directory: Path, name: str, force: bool) -> pki.CertKey:
    ca = pki.new_ca(name)
    cert_path, key_path = directory / "ca.crt", directory / "ca.key"
    pki.write_cert_key(ca, cert_path, key_path, overwrite=force)
    print(f"wrote {cert_path} and {key_path}: CA {name}, valid until {_date(ca)}")
    return ca


def _write_serving(directory: Path, ca: pki.CertKey, args: argparse.Namespace) -> None:
    dns_names, ip_addresses = pki.serving_names(args.service, args.namespace, args.host)
    serving = pki.issue_serving_cert(
        ca,
        common_name=f"{args.service}.{args.namespace}.svc",
        dns_names=dns_names,
        ip_addresses=ip_addresses,
    )
    cert_path, key_path = directory / "tls.crt", directory / "tls.key"
    pki.write_cert_key(serving, cert_path, key_path, overwrite=args.force)
    names = ", ".join([*dns_names, *map(str, ip_addresses)])
    print(f"wrote {cert_path} and {key_path}: serving {names}; valid until {_date(serving)}")


def _load_ca(directory: Path) -> pki.CertKey:
    cert_path, key_path = directory / "ca.crt", directory / "ca.key"
    _require_ca_files(directory, cert_path, key_path)
    return pki.load_cert_key(cert_path, key_path)


def _load_ca_cert(directory: Path) -> x509.Certificate:
    cert_path = directory / "ca.crt"
    _require_ca_files(directory, cert_path)
    return pki.load_certificate(cert_path)


def _require_ca_files(directory: Path, *paths: Path) -> None:
    for path in paths:
        if not path.exists():
            raise CertsError(
                f"no CA in {directory} ({path} not found); "
                f"run `mcs-apiserver certs ca --dir {directory}` first"
            )


def _date(cert_key: pki.CertKey) -> str:
    return cert_key.cert.not_valid_after_utc.date().isoformat()
