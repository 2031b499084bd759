"""The PKI of an mcs-apiserver instance: CA, serving and client certificates, caBundles.

An aggregated API server and its admission webhooks are reached by kube-apiserver over TLS, and
kube-apiserver only trusts them through the ``caBundle`` of the APIService and webhook
configurations. So every deployment needs a small private CA, a serving certificate whose names
cover the in-cluster Service DNS names, and the base64 PEM of that CA. Client certificates (an
admin, or the front-proxy client that kube-apiserver presents to us) come from the same kind of CA.

This module is the whole of that PKI, in the shape kubeadm gives it (``ca.crt``/``ca.key``,
``tls.crt``/``tls.key``), built on ``cryptography`` only; ``certs.cli`` is its command line.
Private keys never touch the disk with more than mode 0600, and no file is ever replaced unless the
caller says so: a silently regenerated CA would invalidate every caBundle already applied.
"""

from __future__ import annotations

import base64
import datetime
import errno
import ipaddress
import os
import re
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeAlias

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = [
    "CertKey",
    "IPAddress",
    "KeyKind",
    "PKIFileExists",
    "PrivateKey",
    "PublicKey",
    "ca_bundle",
    "issue_client_cert",
    "issue_serving_cert",
    "load_cert_key",
    "load_certificate",
    "new_ca",
    "new_private_key",
    "serving_names",
    "write_cert_key",
    "write_private_key",
    "write_public_key",
]

#: The key types kube-apiserver, Go's crypto/tls and service-account token signing all accept.
PrivateKey: TypeAlias = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
PublicKey: TypeAlias = ec.EllipticCurvePublicKey | rsa.RSAPublicKey
IPAddress: TypeAlias = ipaddress.IPv4Address | ipaddress.IPv6Address
KeyKind: TypeAlias = Literal["ecdsa", "rsa"]
StrPath: TypeAlias = str | os.PathLike[str]

#: Certificates start this far in the past, so that a peer whose clock runs a little behind ours
#: does not reject a certificate we have just issued as "not yet valid".
CLOCK_SKEW = datetime.timedelta(minutes=5)

#: The Kubernetes default cluster domain; other domains are covered by passing extra hosts.
_CLUSTER_DOMAIN = "cluster.local"

_PRIVATE_MODE = 0o600
_PUBLIC_MODE = 0o644

_DNS_LABEL = r"(?!-)[a-z0-9-]{1,63}(?<!-)"
_DNS_LABEL_RE = re.compile(_DNS_LABEL)
_DNS_NAME_RE = re.compile(rf"(\*\.)?{_DNS_LABEL}(\.{_DNS_LABEL})*")


class PKIFileExists(FileExistsError):
    """A PKI file is already there and the caller did not ask to replace it.

    Refusing is the safe default: replacing ``ca.crt`` breaks every caBundle already applied to a
    cluster, and replacing a key breaks every certificate issued for it.
    """

    def __init__(self, path: Path) -> None:
        self.message = f"{path} already exists; pass --force to overwrite it"
        super().__init__(errno.EEXIST, self.message, str(path))

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True, slots=True)
class CertKey:
    """A certificate and its private key: what a CA signs with, and what a TLS endpoint serves."""

    cert: x509.Certificate
    key: PrivateKey

    def cert_pem(self) -> bytes:
        """The certificate as PEM: what kube-apiserver flags and TLS Secrets take."""
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def key_pem(self) -> bytes:
        """The private key as unencrypted PKCS#8 PEM: what TLS Secrets (``tls.key``) take."""
        return _private_key_pem(self.key)


def new_private_key(kind: KeyKind = "ecdsa") -> PrivateKey:
    """Generate a private key.

    ECDSA P-256 is the default: small, fast, and accepted by every TLS stack Kubernetes uses.
    RSA 2048 is there for consumers that insist on it (some service-account token verifiers).
    """
    if kind == "ecdsa":
        return ec.generate_private_key(ec.SECP256R1())
    if kind == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    raise ValueError(f"unknown key kind {kind!r}: expected 'ecdsa' or 'rsa'")


def new_ca(common_name: str, *, valid_days: int = 3650, key: PrivateKey | None = None) -> CertKey:
    """Create a self-signed CA.

    ``path_length=0``: this CA signs leaf certificates only, never intermediate CAs, so a leaked
    leaf key can never be used to mint further certificates trusted through our caBundle.
    """
    key = key if key is not None else new_private_key()
    name = _common_name(common_name)
    not_before, not_after = _validity(valid_days)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            _key_usage(digital_signature=True, key_cert_sign=True, crl_sign=True), critical=True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return CertKey(cert=cert, key=key)


def serving_names(
    service: str, namespace: str, extra_hosts: Iterable[str] = ()
) -> tuple[list[str], list[IPAddress]]:
    """The DNS names and IP addresses a serving certificate for ``service`` in ``namespace`` needs.

    kube-apiserver dials an APIService or webhook backend as ``<svc>.<ns>.svc``; the shorter and
    longer forms cover in-cluster clients, and loopback covers the local ClusterSet, where the
    backend is reached through an ExternalName Service pointing at localhost. Each extra host is
    classified as an IP address or a DNS name (wildcards allowed), and duplicates are dropped.
    """
    for what, value in (("service", service), ("namespace", namespace)):
        if not _DNS_LABEL_RE.fullmatch(value):
            raise ValueError(f"{what} name {value!r} is not a DNS label (RFC 1123)")
    dns_names = [
        service,
        f"{service}.{namespace}",
        f"{service}.{namespace}.svc",
        f"{service}.{namespace}.svc.{_CLUSTER_DOMAIN}",
        "localhost",
    ]
    ip_addresses: list[IPAddress] = [
        ipaddress.IPv4Address("127.0.0.1"),
        ipaddress.IPv6Address("::1"),
    ]
    for host in extra_hosts:
        parsed = _parse_host(host)
        if isinstance(parsed, str):
            if parsed not in dns_names:
                dns_names.append(parsed)
        elif parsed not in ip_addresses:
            ip_addresses.append(parsed)
    return dns_names, ip_addresses


def issue_serving_cert(
    ca: CertKey,
    *,
    common_name: str,
    dns_names: Sequence[str],
    ip_addresses: Sequence[IPAddress],
    valid_days: int = 365,
    key: PrivateKey | None = None,
) -> CertKey:
    """Issue a TLS server certificate signed by ``ca``.

    Go's TLS client (kube-apiserver's) ignores the common name and matches only the
    SubjectAlternativeName, so at least one DNS name or IP address is required.
    """
    if not dns_names and not ip_addresses:
        raise ValueError("a serving certificate needs at least one DNS name or IP address")
    key = key if key is not None else new_private_key()
    san = x509.SubjectAlternativeName(
        [x509.DNSName(name) for name in dns_names]
        + [x509.IPAddress(address) for address in ip_addresses]
    )
    builder = (
        _leaf_builder(ca, key, _common_name(common_name), valid_days)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(san, critical=False)
    )
    return CertKey(cert=builder.sign(ca.key, hashes.SHA256()), key=key)


def issue_client_cert(
    ca: CertKey,
    *,
    common_name: str,
    organizations: Iterable[str] = (),
    valid_days: int = 365,
    key: PrivateKey | None = None,
) -> CertKey:
    """Issue a TLS client certificate signed by ``ca``.

    Kubernetes x509 authentication takes the user name from the CN and one group from each O
    attribute, so each organization becomes its own O (``system:masters`` makes an admin).
    The certificate is for clientAuth only: a client certificate must not be usable to serve.
    """
    if not common_name:
        raise ValueError("a client certificate needs a common name (the Kubernetes user name)")
    key = key if key is not None else new_private_key()
    subject = x509.Name(
        [x509.NameAttribute(NameOID.ORGANIZATION_NAME, org) for org in organizations]
        + [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    )
    builder = _leaf_builder(ca, key, subject, valid_days).add_extension(
        x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
    )
    return CertKey(cert=builder.sign(ca.key, hashes.SHA256()), key=key)


def ca_bundle(*certs: x509.Certificate) -> str:
    """The base64 of the concatenated PEMs: the value ``caBundle`` fields of an APIService and of
    webhook configurations expect (a ``[]byte`` field, hence base64 in YAML and JSON)."""
    if not certs:
        raise ValueError("a caBundle needs at least one certificate")
    pem = b"".join(cert.public_bytes(serialization.Encoding.PEM) for cert in certs)
    return base64.b64encode(pem).decode("ascii")


def write_cert_key(
    cert_key: CertKey, cert_path: StrPath, key_path: StrPath, *, overwrite: bool = False
) -> None:
    """Write a certificate (mode 0644) and its key (mode 0600).

    Both paths are checked before either is written, so a refusal never leaves a new key next to an
    old certificate.
    """
    cert_file, key_file = Path(cert_path), Path(key_path)
    if not overwrite:
        for path in (cert_file, key_file):
            if path.exists():
                raise PKIFileExists(path)
    write_private_key(cert_key.key, key_file, overwrite=overwrite)
    _write_atomic(cert_file, cert_key.cert_pem(), _PUBLIC_MODE, overwrite=overwrite)


def write_private_key(key: PrivateKey, path: StrPath, *, overwrite: bool = False) -> None:
    """Write a private key as PKCS#8 PEM with mode 0600 (e.g. a service-account signing key)."""
    _write_atomic(Path(path), _private_key_pem(key), _PRIVATE_MODE, overwrite=overwrite)


def write_public_key(
    key: PrivateKey | PublicKey, path: StrPath, *, overwrite: bool = False
) -> None:
    """Write the public half of ``key`` as SubjectPublicKeyInfo PEM, mode 0644.

    This is the form ``--service-account-key-file`` takes, to verify the tokens that the private
    key signs.
    """
    if isinstance(key, (ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey)):
        key = key.public_key()
    pem = key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    _write_atomic(Path(path), pem, _PUBLIC_MODE, overwrite=overwrite)


def load_certificate(path: StrPath) -> x509.Certificate:
    """Load the first PEM certificate of a file."""
    data = Path(path).read_bytes()
    try:
        return x509.load_pem_x509_certificate(data)
    except ValueError:
        raise ValueError(f"{path}: not a PEM certificate") from None


def load_cert_key(cert_path: StrPath, key_path: StrPath) -> CertKey:
    """Load a certificate and its unencrypted private key, and check that they belong together.

    A mismatched pair would otherwise only show up later, as a failed TLS handshake or as
    certificates that no peer can verify.
    """
    cert = load_certificate(cert_path)
    key = _load_private_key(Path(key_path))
    if _spki(cert.public_key()) != _spki(key.public_key()):
        raise ValueError(f"{key_path} is not the private key of the certificate {cert_path}")
    return CertKey(cert=cert, key=key)


def _load_private_key(path: Path) -> PrivateKey:
    data = path.read_bytes()
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        raise ValueError(f"{path}: not an unencrypted PEM private key") from None
    if not isinstance(key, (ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey)):
        raise ValueError(f"{path}: only RSA and ECDSA private keys are supported")
    return key


def _leaf_builder(
    ca: CertKey, key: PrivateKey, subject: x509.Name, valid_days: int
) -> x509.CertificateBuilder:
    """What serving and client certificates share: a non-CA leaf, chained to ``ca`` by key id.

    The leaf never outlives its CA: past the CA's expiry it could not be verified anyway.
    """
    ca_constraints = _basic_constraints(ca.cert)
    if ca_constraints is None or not ca_constraints.ca:
        raise ValueError(f"{ca.cert.subject.rfc4514_string()} is not a CA certificate")
    not_before, not_after = _validity(valid_days)
    not_after = min(not_after, ca.cert.not_valid_after_utc)
    # keyEncipherment is an RSA key-exchange usage: RFC 8813 forbids it for EC keys.
    key_encipherment = isinstance(key, rsa.RSAPrivateKey)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            _key_usage(digital_signature=True, key_encipherment=key_encipherment), critical=True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(_authority_key_identifier(ca), critical=False)
    )


def _authority_key_identifier(ca: CertKey) -> x509.AuthorityKeyIdentifier:
    # Reuse the CA's own SubjectKeyIdentifier when it has one (a CA made elsewhere may compute it
    # differently), so that chain building by key identifier finds the CA.
    try:
        ski = ca.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    except x509.ExtensionNotFound:
        return x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key())
    return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)


def _basic_constraints(cert: x509.Certificate) -> x509.BasicConstraints | None:
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        return None


def _common_name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _key_usage(
    *,
    digital_signature: bool = False,
    key_encipherment: bool = False,
    key_cert_sign: bool = False,
    crl_sign: bool = False,
) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=False,
        key_encipherment=key_encipherment,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=key_cert_sign,
        crl_sign=crl_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _validity(valid_days: int) -> tuple[datetime.datetime, datetime.datetime]:
    if valid_days < 1:
        raise ValueError(f"valid_days must be at least 1, got {valid_days}")
    now = datetime.datetime.now(datetime.timezone.utc)
    return now - CLOCK_SKEW, now + datetime.timedelta(days=valid_days)


def _parse_host(host: str) -> str | IPAddress:
    host = host.strip()
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    name = host.lower()
    if len(name) > 253 or not _DNS_NAME_RE.fullmatch(name):
        raise ValueError(f"host {host!r} is neither an IP address nor a DNS name")
    return name


def _private_key_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _spki(key: CertificatePublicKeyTypes) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _write_atomic(path: Path, data: bytes, mode: int, *, overwrite: bool) -> None:
    """Write ``data`` to ``path`` so that no reader ever sees a partial file.

    The temporary file is created with ``mode`` from the start (never world-readable, even briefly,
    for a key), then moved into place: ``os.replace`` when overwriting, ``os.link`` otherwise, which
    fails if the file appeared meanwhile instead of clobbering it.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{secrets.token_hex(8)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if overwrite:
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path)
            except FileExistsError:
                raise PKIFileExists(path) from None
    finally:
        tmp.unlink(missing_ok=True)
