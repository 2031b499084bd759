"""The PKI (``certs.pki``) and its command line (``certs.cli``), checked with cryptography."""

from __future__ import annotations

import argparse
import base64
import datetime
import ipaddress
import os
import ssl
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from certs import cli, pki


def key_pem(cert_key: pki.CertKey) -> bytes:
    """The private key as the PKI writes it: unencrypted PKCS#8 PEM."""
    return cert_key.key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


SERVICE_DNS_NAMES = [
    "mcs-apiserver",
    "mcs-apiserver.mcs-system",
    "mcs-apiserver.mcs-system.svc",
    "mcs-apiserver.mcs-system.svc.cluster.local",
    "localhost",
]
LOOPBACK = [ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1")]


def issued_by(cert: x509.Certificate, ca_cert: x509.Certificate) -> bool:
    """Whether ``ca_cert``'s key signed ``cert`` (and the names match)."""
    try:
        cert.verify_directly_issued_by(ca_cert)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True



@pytest.fixture(scope="module")
def ca() -> pki.CertKey:
    return pki.new_ca("test-ca")


@pytest.fixture(scope="module")
def serving(ca: pki.CertKey) -> pki.CertKey:
    dns_names, ip_addresses = pki.serving_names("mcs-apiserver", "mcs-system")
    return pki.issue_serving_cert(
        ca,
        common_name="mcs-apiserver.mcs-system.svc",
        dns_names=dns_names,
        ip_addresses=ip_addresses,
    )


@pytest.fixture
def usual_umask() -> Iterator[None]:
    """File modes are asserted exactly, so run with the usual umask whatever the caller's is."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def verify_signature(cert: x509.Certificate, issuer_key: pki.PublicKey) -> None:
    """Raise InvalidSignature unless ``issuer_key`` signed ``cert``."""
    hash_algorithm = cert.signature_hash_algorithm
    assert hash_algorithm is not None
    if isinstance(issuer_key, rsa.RSAPublicKey):
        issuer_key.verify(
            cert.signature, cert.tbs_certificate_bytes, padding.PKCS1v15(), hash_algorithm
        )
    else:
        issuer_key.verify(cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(hash_algorithm))


def extension(cert: x509.Certificate, kind: type[x509.ExtensionType]) -> x509.Extension:
    return cert.extensions.get_extension_for_class(kind)


def key_usage(cert: x509.Certificate) -> x509.KeyUsage:
    value = extension(cert, x509.KeyUsage).value
    assert isinstance(value, x509.KeyUsage)
    return value


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def tls_handshake(
    client_context: ssl.SSLContext, server_context: ssl.SSLContext, server_hostname: str
) -> dict[str, Any]:
    """Run a TLS handshake in memory; return the client certificate as the server saw it."""
    client_in, client_out, server_in, server_out = (ssl.MemoryBIO() for _ in range(4))
    client = client_context.wrap_bio(client_in, client_out, server_hostname=server_hostname)
    server = server_context.wrap_bio(server_in, server_out, server_side=True)
    client_done = server_done = False
    for _ in range(10):
        if not client_done:
            try:
                client.do_handshake()
                client_done = True
            except ssl.SSLWantReadError:
                pass
        server_in.write(client_out.read())
        if not server_done:
            try:
                server.do_handshake()
                server_done = True
            except ssl.SSLWantReadError:
                pass
        client_in.write(server_out.read())
        if client_done and server_done:
            peer = server.getpeercert()
            assert peer is not None
            return peer
    raise AssertionError("the TLS handshake did not finish")


def strict_context(purpose: int, ca: pki.CertKey) -> ssl.SSLContext:
    """A context that trusts ``ca`` and verifies as strictly as Python 3.13+ does by default."""
    context = ssl.SSLContext(purpose)
    context.verify_mode = ssl.CERT_REQUIRED
    context.verify_flags |= ssl.VERIFY_X509_STRICT
    context.load_verify_locations(cadata=ca.cert_pem().decode())
    return context


def run_certs(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="mcs-apiserver certs")
    cli.add_arguments(parser)
    args = parser.parse_args(list(argv))
    return args.func(args)


# --- keys -------------------------------------------------------------------------------------


def test_new_private_key_makes_p256_ecdsa_by_default_and_rsa_2048_on_request() -> None:
    default = pki.new_private_key()
    rsa_key = pki.new_private_key("rsa")
    assert isinstance(default, ec.EllipticCurvePrivateKey)
    assert isinstance(default.curve, ec.SECP256R1)
    assert isinstance(rsa_key, rsa.RSAPrivateKey)
    assert rsa_key.key_size == 2048


def test_an_unknown_key_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown key kind 'dsa'"):
        pki.new_private_key("dsa")  # type: ignore[arg-type]


# --- CA ---------------------------------------------------------------------------------------


def test_ca_is_self_signed_and_can_only_sign_leaf_certificates(ca: pki.CertKey) -> None:
    cert = ca.cert
    assert cert.subject == cert.issuer
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "test-ca"
    verify_signature(cert, ca.key.public_key())
    constraints = extension(cert, x509.BasicConstraints)
    assert constraints.critical
    assert constraints.value == x509.BasicConstraints(ca=True, path_length=0)


def test_ca_key_usage_is_certificate_and_crl_signing(ca: pki.CertKey) -> None:
    assert extension(ca.cert, x509.KeyUsage).critical
    usage = key_usage(ca.cert)
    assert usage.key_cert_sign and usage.crl_sign and usage.digital_signature
    assert not usage.key_encipherment


def test_ca_has_a_subject_key_identifier_of_its_public_key(ca: pki.CertKey) -> None:
    ski = extension(ca.cert, x509.SubjectKeyIdentifier).value
    assert ski == x509.SubjectKeyIdentifier.from_public_key(ca.key.public_key())


def test_ca_is_valid_from_five_minutes_ago_for_the_requested_days() -> None:
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = pki.new_ca("short-lived", valid_days=30).cert
    skew = now - cert.not_valid_before_utc
    assert datetime.timedelta(minutes=4) < skew <= datetime.timedelta(minutes=5, seconds=2)
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert lifetime == datetime.timedelta(days=30, minutes=5)


def test_ca_uses_the_key_it_is_given() -> None:
    key = pki.new_private_key("rsa")
    ca = pki.new_ca("rsa-ca", key=key)
    assert ca.key is key
    verify_signature(ca.cert, key.public_key())


def test_each_certificate_gets_a_fresh_random_serial() -> None:
    serials = {pki.new_ca("same").cert.serial_number for _ in range(5)}
    assert len(serials) == 5
    assert all(serial > 2**64 for serial in serials)


def test_a_lifetime_shorter_than_a_day_is_refused() -> None:
    with pytest.raises(ValueError, match="valid_days must be at least 1"):
        pki.new_ca("never", valid_days=0)


# --- serving ----------------------------------------------------------------------------------


def test_serving_names_cover_the_service_dns_names_and_loopback() -> None:
    dns_names, ip_addresses = pki.serving_names("mcs-apiserver", "mcs-system")
    assert dns_names == SERVICE_DNS_NAMES
    assert ip_addresses == LOOPBACK


def test_extra_hosts_are_classified_as_ip_addresses_or_dns_names_without_duplicates() -> None:
    dns_names, ip_addresses = pki.serving_names(
        "svc",
        "ns",
        ["10.0.0.7", "fd00::7", "API.Example.com", "*.example.org", "localhost", "127.0.0.1"],
    )
    assert dns_names[5:] == ["api.example.com", "*.example.org"]
    assert dns_names.count("localhost") == 1
    assert ip_addresses[2:] == [ipaddress.ip_address("10.0.0.7"), ipaddress.ip_address("fd00::7")]
    assert ip_addresses.count(ipaddress.ip_address("127.0.0.1")) == 1


@pytest.mark.parametrize(
    "host", ["bad host", "https://example.com", "", "-leading.example.com", "a..b"]
)
def test_a_host_that_is_neither_an_ip_nor_a_dns_name_is_refused(host: str) -> None:
    with pytest.raises(ValueError, match="neither an IP address nor a DNS name"):
        pki.serving_names("svc", "ns", [host])


@pytest.mark.parametrize(
    ("service", "namespace"), [("My_Svc", "ns"), ("svc", "a.b"), ("", "ns"), ("svc\n", "ns")]
)
def test_a_service_or_namespace_that_is_not_a_dns_label_is_refused(
    service: str, namespace: str
) -> None:
    with pytest.raises(ValueError, match="is not a DNS label"):
        pki.serving_names(service, namespace)


def test_serving_certificate_covers_the_service_dns_names_and_loopback(
    serving: pki.CertKey,
) -> None:
    san = extension(serving.cert, x509.SubjectAlternativeName).value
    assert isinstance(san, x509.SubjectAlternativeName)
    assert san.get_values_for_type(x509.DNSName) == SERVICE_DNS_NAMES
    assert san.get_values_for_type(x509.IPAddress) == LOOPBACK


def test_serving_certificate_is_signed_by_the_ca_and_by_no_other(
    ca: pki.CertKey, serving: pki.CertKey
) -> None:
    assert serving.cert.issuer == ca.cert.subject
    verify_signature(serving.cert, ca.key.public_key())
    with pytest.raises(InvalidSignature):
        verify_signature(serving.cert, pki.new_ca("test-ca").key.public_key())


def test_serving_certificate_is_a_leaf_for_server_auth_only(serving: pki.CertKey) -> None:
    constraints = extension(serving.cert, x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca is False
    assert list(extension(serving.cert, x509.ExtendedKeyUsage).value) == [
        ExtendedKeyUsageOID.SERVER_AUTH
    ]
    usage = key_usage(serving.cert)
    assert usage.digital_signature and not usage.key_cert_sign and not usage.crl_sign


def test_serving_certificate_points_to_the_ca_by_key_identifier(
    ca: pki.CertKey, serving: pki.CertKey
) -> None:
    aki = extension(serving.cert, x509.AuthorityKeyIdentifier).value
    ca_ski = extension(ca.cert, x509.SubjectKeyIdentifier).value
    assert isinstance(aki, x509.AuthorityKeyIdentifier)
    assert aki.key_identifier == ca_ski.digest


def test_serving_certificate_is_valid_from_five_minutes_ago_for_a_year(
    serving: pki.CertKey,
) -> None:
    lifetime = serving.cert.not_valid_after_utc - serving.cert.not_valid_before_utc
    assert lifetime == datetime.timedelta(days=365, minutes=5)
    assert serving.cert.not_valid_before_utc < datetime.datetime.now(datetime.timezone.utc)


def test_a_leaf_never_outlives_its_ca() -> None:
    short_ca = pki.new_ca("short", valid_days=10)
    leaf = pki.issue_serving_cert(
        short_ca, common_name="x", dns_names=["x"], ip_addresses=[], valid_days=365
    )
    assert leaf.cert.not_valid_after_utc == short_ca.cert.not_valid_after_utc


def test_a_serving_certificate_without_any_name_is_refused(ca: pki.CertKey) -> None:
    with pytest.raises(ValueError, match="at least one DNS name or IP address"):
        pki.issue_serving_cert(ca, common_name="x", dns_names=[], ip_addresses=[])


def test_issuing_from_a_certificate_that_is_not_a_ca_is_refused(serving: pki.CertKey) -> None:
    with pytest.raises(ValueError, match="is not a CA certificate"):
        pki.issue_client_cert(serving, common_name="mallory")


@pytest.mark.parametrize(("kind", "expected"), [("rsa", True), ("ecdsa", False)])
def test_key_encipherment_is_set_only_for_rsa_leaf_keys(
    ca: pki.CertKey, kind: pki.KeyKind, expected: bool
) -> None:
    key = pki.new_private_key(kind)
    server = pki.issue_serving_cert(ca, common_name="x", dns_names=["x"], ip_addresses=[], key=key)
    client = pki.issue_client_cert(ca, common_name="x", key=key)
    assert key_usage(server.cert).key_encipherment is expected
    assert key_usage(client.cert).key_encipherment is expected
    assert key_usage(client.cert).digital_signature


def test_an_rsa_ca_signs_certificates_that_verify_with_its_public_key() -> None:
    rsa_ca = pki.new_ca("rsa-ca", key=pki.new_private_key("rsa"))
    leaf = pki.issue_client_cert(rsa_ca, common_name="someone")
    verify_signature(leaf.cert, rsa_ca.key.public_key())
    assert issued_by(leaf.cert, rsa_ca.cert)


@pytest.mark.parametrize("hostname", ["mcs-apiserver.mcs-system.svc", "localhost", "127.0.0.1"])
def test_a_tls_client_trusting_the_ca_accepts_the_serving_certificate(
    tmp_path: Path, ca: pki.CertKey, serving: pki.CertKey, hostname: str
) -> None:
    pki.write_cert_key(serving, tmp_path / "tls.crt", tmp_path / "tls.key")
    admin = pki.issue_client_cert(ca, common_name="admin", organizations=["system:masters"])
    pki.write_cert_key(admin, tmp_path / "admin.crt", tmp_path / "admin.key")
    server_context = strict_context(ssl.PROTOCOL_TLS_SERVER, ca)
    server_context.load_cert_chain(tmp_path / "tls.crt", tmp_path / "tls.key")
    client_context = strict_context(ssl.PROTOCOL_TLS_CLIENT, ca)
    client_context.load_cert_chain(tmp_path / "admin.crt", tmp_path / "admin.key")

    peer = tls_handshake(client_context, server_context, hostname)

    assert (("organizationName", "system:masters"),) in peer["subject"]
    assert (("commonName", "admin"),) in peer["subject"]


def test_a_tls_client_rejects_the_serving_certificate_for_a_name_it_does_not_cover(
    tmp_path: Path, ca: pki.CertKey, serving: pki.CertKey
) -> None:
    pki.write_cert_key(serving, tmp_path / "tls.crt", tmp_path / "tls.key")
    server_context = strict_context(ssl.PROTOCOL_TLS_SERVER, ca)
    server_context.verify_mode = ssl.CERT_NONE
    server_context.load_cert_chain(tmp_path / "tls.crt", tmp_path / "tls.key")
    client_context = strict_context(ssl.PROTOCOL_TLS_CLIENT, ca)

    with pytest.raises(ssl.SSLCertVerificationError, match="Hostname mismatch"):
        tls_handshake(client_context, server_context, "other.mcs-system.svc")


# --- client -----------------------------------------------------------------------------------


def test_client_certificate_carries_the_user_as_cn_and_one_organization_per_group(
    ca: pki.CertKey,
) -> None:
    cert = pki.issue_client_cert(
        ca, common_name="alice", organizations=["system:masters", "devs"]
    ).cert
    assert [a.value for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)] == ["alice"]
    organizations = cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    assert [a.value for a in organizations] == ["system:masters", "devs"]
    assert len(cert.subject.rdns) == 3


def test_client_certificate_is_a_leaf_for_client_auth_only(ca: pki.CertKey) -> None:
    cert = pki.issue_client_cert(ca, common_name="front-proxy-client").cert
    assert list(extension(cert, x509.ExtendedKeyUsage).value) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert extension(cert, x509.BasicConstraints).value.ca is False
    with pytest.raises(x509.ExtensionNotFound):
        extension(cert, x509.SubjectAlternativeName)
    verify_signature(cert, ca.key.public_key())


def test_a_client_certificate_without_a_common_name_is_refused(ca: pki.CertKey) -> None:
    with pytest.raises(ValueError, match="needs a common name"):
        pki.issue_client_cert(ca, common_name="")


# --- caBundle ---------------------------------------------------------------------------------


def test_ca_bundle_decodes_to_the_concatenated_pems(ca: pki.CertKey) -> None:
    other = pki.new_ca("front-proxy-ca")
    decoded = base64.b64decode(pki.ca_bundle(ca.cert, other.cert), validate=True)
    assert decoded == ca.cert_pem() + other.cert_pem()
    assert x509.load_pem_x509_certificates(decoded) == [ca.cert, other.cert]


def test_ca_bundle_needs_a_certificate() -> None:
    with pytest.raises(ValueError, match="at least one certificate"):
        pki.ca_bundle()


# --- files ------------------------------------------------------------------------------------


def test_private_keys_are_written_with_mode_0600_and_certificates_0644(
    tmp_path: Path, usual_umask: None, serving: pki.CertKey
) -> None:
    pki.write_cert_key(serving, tmp_path / "tls.crt", tmp_path / "tls.key")
    pki.write_private_key(serving.key, tmp_path / "sa.key")
    pki.write_public_key(serving.key, tmp_path / "sa.pub")
    assert mode(tmp_path / "tls.key") == 0o600
    assert mode(tmp_path / "sa.key") == 0o600
    assert mode(tmp_path / "tls.crt") == 0o644
    assert mode(tmp_path / "sa.pub") == 0o644


def test_overwriting_a_world_readable_key_file_leaves_it_0600(
    tmp_path: Path, usual_umask: None, ca: pki.CertKey
) -> None:
    key_path = tmp_path / "ca.key"
    key_path.write_text("old")
    key_path.chmod(0o644)
    pki.write_private_key(ca.key, key_path, overwrite=True)
    assert mode(key_path) == 0o600
    assert key_path.read_bytes() == key_pem(ca)


def test_written_files_load_back_to_the_same_certificate_and_key(
    tmp_path: Path, serving: pki.CertKey
) -> None:
    pki.write_cert_key(serving, tmp_path / "tls.crt", tmp_path / "tls.key")
    loaded = pki.load_cert_key(tmp_path / "tls.crt", tmp_path / "tls.key")
    assert loaded.cert == serving.cert
    assert key_pem(loaded) == key_pem(serving)
    assert pki.load_certificate(tmp_path / "tls.crt") == serving.cert


def test_keys_are_written_as_unencrypted_pkcs8(serving: pki.CertKey) -> None:
    pem = key_pem(serving)
    assert pem.startswith(b"-----BEGIN PRIVATE KEY-----\n")
    loaded = serialization.load_pem_private_key(pem, password=None)
    assert loaded.public_key() == serving.key.public_key()


def test_parent_directories_are_created(tmp_path: Path, ca: pki.CertKey) -> None:
    pki.write_cert_key(ca, tmp_path / "a" / "b" / "ca.crt", tmp_path / "c" / "ca.key")
    assert (tmp_path / "a" / "b" / "ca.crt").read_bytes() == ca.cert_pem()
    assert (tmp_path / "c" / "ca.key").read_bytes() == key_pem(ca)


def test_existing_files_are_not_overwritten_without_overwrite(
    tmp_path: Path, ca: pki.CertKey, serving: pki.CertKey
) -> None:
    pki.write_cert_key(ca, tmp_path / "ca.crt", tmp_path / "ca.key")
    with pytest.raises(pki.PKIFileExists) as refused:
        pki.write_cert_key(serving, tmp_path / "ca.crt", tmp_path / "ca.key")
    assert isinstance(refused.value, FileExistsError)
    expected = f"{tmp_path / 'ca.crt'} already exists; pass --force to overwrite it"
    assert str(refused.value) == expected
    assert refused.value.filename == str(tmp_path / "ca.crt")
    assert (tmp_path / "ca.crt").read_bytes() == ca.cert_pem()
    assert (tmp_path / "ca.key").read_bytes() == key_pem(ca)


def test_refusing_to_overwrite_the_certificate_does_not_write_the_key(
    tmp_path: Path, serving: pki.CertKey
) -> None:
    (tmp_path / "tls.crt").write_text("someone else's")
    with pytest.raises(pki.PKIFileExists, match="tls.crt already exists"):
        pki.write_cert_key(serving, tmp_path / "tls.crt", tmp_path / "tls.key")
    assert not (tmp_path / "tls.key").exists()


def test_a_file_that_appears_after_the_check_is_still_not_overwritten(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ca: pki.CertKey
) -> None:
    key_path = tmp_path / "ca.key"
    key_path.write_text("written meanwhile by someone else")
    monkeypatch.setattr(Path, "exists", lambda self: False)
    with pytest.raises(pki.PKIFileExists):
        pki.write_cert_key(ca, tmp_path / "ca.crt", key_path)
    monkeypatch.undo()
    assert key_path.read_text() == "written meanwhile by someone else"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ca.key"]


@pytest.mark.parametrize("write", [pki.write_private_key, pki.write_public_key])
def test_key_files_are_not_overwritten_without_overwrite(
    tmp_path: Path, ca: pki.CertKey, write: Callable[[pki.PrivateKey, Path], None]
) -> None:
    path = tmp_path / "sa.key"
    path.write_text("keep me")
    with pytest.raises(pki.PKIFileExists):
        write(ca.key, path)
    assert path.read_text() == "keep me"


def test_overwrite_replaces_existing_files_and_leaves_no_temporary_files(
    tmp_path: Path, ca: pki.CertKey, serving: pki.CertKey
) -> None:
    pki.write_cert_key(ca, tmp_path / "x.crt", tmp_path / "x.key")
    with pytest.raises(pki.PKIFileExists):
        pki.write_cert_key(serving, tmp_path / "x.crt", tmp_path / "x.key")
    pki.write_cert_key(serving, tmp_path / "x.crt", tmp_path / "x.key", overwrite=True)
    assert (tmp_path / "x.crt").read_bytes() == serving.cert_pem()
    assert (tmp_path / "x.key").read_bytes() == key_pem(serving)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.crt", "x.key"]


def test_public_key_file_holds_the_public_half_of_the_key(tmp_path: Path) -> None:
    key = pki.new_private_key("rsa")
    pki.write_public_key(key, tmp_path / "sa.pub")
    pki.write_public_key(key.public_key(), tmp_path / "again.pub")
    loaded = serialization.load_pem_public_key((tmp_path / "sa.pub").read_bytes())
    assert loaded == key.public_key()
    assert (tmp_path / "again.pub").read_bytes() == (tmp_path / "sa.pub").read_bytes()


def test_loading_a_key_that_does_not_match_the_certificate_is_refused(
    tmp_path: Path, ca: pki.CertKey, serving: pki.CertKey
) -> None:
    pki.write_cert_key(ca, tmp_path / "ca.crt", tmp_path / "ca.key")
    pki.write_private_key(serving.key, tmp_path / "other.key")
    with pytest.raises(ValueError, match="other.key is not the private key of the certificate"):
        pki.load_cert_key(tmp_path / "ca.crt", tmp_path / "other.key")


def test_loading_a_file_that_is_not_a_certificate_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "ca.crt").write_text("not a certificate")
    with pytest.raises(ValueError, match=r"ca\.crt: not a PEM certificate"):
        pki.load_certificate(tmp_path / "ca.crt")


def test_loading_an_encrypted_key_is_refused_with_the_file_name(
    tmp_path: Path, ca: pki.CertKey
) -> None:
    pki.write_cert_key(ca, tmp_path / "ca.crt", tmp_path / "ignored.key")
    (tmp_path / "ca.key").write_bytes(
        ca.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
    )
    with pytest.raises(ValueError, match=r"ca\.key: not an unencrypted PEM private key"):
        pki.load_cert_key(tmp_path / "ca.crt", tmp_path / "ca.key")


# --- command line -----------------------------------------------------------------------------


def test_certs_ca_writes_a_ca_with_the_given_name(
    tmp_path: Path, usual_umask: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_certs("ca", "--dir", str(tmp_path), "--name", "my-ca") == 0
    ca = pki.load_cert_key(tmp_path / "ca.crt", tmp_path / "ca.key")
    assert ca.cert.subject.rfc4514_string() == "CN=my-ca"
    assert extension(ca.cert, x509.BasicConstraints).value.ca is True
    assert mode(tmp_path / "ca.key") == 0o600
    assert f"wrote {tmp_path / 'ca.crt'} and {tmp_path / 'ca.key'}" in capsys.readouterr().out


def test_certs_serving_issues_tls_files_signed_by_the_ca_in_the_dir(tmp_path: Path) -> None:
    assert run_certs("ca", "--dir", str(tmp_path)) == 0
    assert run_certs(
        "serving", "--dir", str(tmp_path), "--service", "api", "--namespace", "mcs",
        "--host", "api.example.com", "--host", "192.0.2.10",
    ) == 0
    ca = pki.load_certificate(tmp_path / "ca.crt")
    tls = pki.load_cert_key(tmp_path / "tls.crt", tmp_path / "tls.key")
    assert issued_by(tls.cert, ca)
    san = extension(tls.cert, x509.SubjectAlternativeName).value
    assert "api.mcs.svc" in san.get_values_for_type(x509.DNSName)
    assert "api.example.com" in san.get_values_for_type(x509.DNSName)
    assert ipaddress.ip_address("192.0.2.10") in san.get_values_for_type(x509.IPAddress)


def test_certs_serving_without_a_ca_tells_to_run_certs_ca_first(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_certs("serving", "--dir", str(tmp_path)) == 1
    err = capsys.readouterr().err
    assert f"run `mcs-apiserver certs ca --dir {tmp_path}` first" in err
    assert "Traceback" not in err
    assert not (tmp_path / "tls.crt").exists()


def test_certs_client_writes_an_admin_certificate_with_its_groups(tmp_path: Path) -> None:
    run_certs("ca", "--dir", str(tmp_path))
    assert run_certs(
        "client", "--dir", str(tmp_path), "--name", "admin", "--group", "system:masters"
    ) == 0
    admin = pki.load_cert_key(tmp_path / "admin.crt", tmp_path / "admin.key")
    assert admin.cert.subject.rfc4514_string() == "CN=admin,O=system:masters"
    assert list(extension(admin.cert, x509.ExtendedKeyUsage).value) == [
        ExtendedKeyUsageOID.CLIENT_AUTH
    ]
    assert issued_by(admin.cert, pki.load_certificate(tmp_path / "ca.crt"))


def test_certs_client_out_prefix_names_the_files(tmp_path: Path) -> None:
    run_certs("ca", "--dir", str(tmp_path))
    assert run_certs(
        "client", "--dir", str(tmp_path), "--name", "system:kube-proxy", "--out-prefix", "proxy"
    ) == 0
    assert pki.load_certificate(tmp_path / "proxy.crt").subject.rfc4514_string() == (
        "CN=system:kube-proxy"
    )


@pytest.mark.parametrize("prefix", ["../escape", "ca", ""])
def test_certs_client_refuses_a_file_name_outside_the_dir_or_over_the_ca(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], prefix: str
) -> None:
    run_certs("ca", "--dir", str(tmp_path / "pki"))
    ca_pem = (tmp_path / "pki" / "ca.crt").read_bytes()
    assert run_certs(
        "client", "--dir", str(tmp_path / "pki"), "--name", "x", "--out-prefix", prefix, "--force"
    ) == 1
    assert "pick another with --out-prefix" in capsys.readouterr().err
    assert not (tmp_path / "escape.crt").exists()
    assert (tmp_path / "pki" / "ca.crt").read_bytes() == ca_pem


def test_certs_ca_bundle_prints_the_base64_of_ca_crt(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_certs("ca", "--dir", str(tmp_path))
    capsys.readouterr()
    assert run_certs("ca-bundle", "--dir", str(tmp_path)) == 0
    out = capsys.readouterr().out
    assert base64.b64decode(out.strip(), validate=True) == (tmp_path / "ca.crt").read_bytes()


def test_certs_all_creates_the_ca_and_serving_certificate_and_prints_the_ca_bundle(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_certs(
        "all", "--dir", str(tmp_path), "--service", "mcs-apiserver", "--namespace", "mcs-system"
    ) == 0
    ca = pki.load_cert_key(tmp_path / "ca.crt", tmp_path / "ca.key")
    tls = pki.load_cert_key(tmp_path / "tls.crt", tmp_path / "tls.key")
    assert issued_by(tls.cert, ca.cert)
    san = extension(tls.cert, x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == SERVICE_DNS_NAMES
    out_lines = capsys.readouterr().out.splitlines()
    assert "caBundle" in out_lines[-2]
    assert out_lines[-1] == pki.ca_bundle(ca.cert)


def test_certs_commands_refuse_to_overwrite_without_force_and_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_certs("ca", "--dir", str(tmp_path))
    ca_pem = (tmp_path / "ca.crt").read_bytes()
    capsys.readouterr()
    assert run_certs("ca", "--dir", str(tmp_path)) == 1
    err = capsys.readouterr().err
    assert err == f"error: {tmp_path / 'ca.crt'} already exists; pass --force to overwrite it\n"
    assert (tmp_path / "ca.crt").read_bytes() == ca_pem


def test_certs_force_replaces_the_ca(tmp_path: Path) -> None:
    run_certs("ca", "--dir", str(tmp_path))
    old = pki.load_certificate(tmp_path / "ca.crt")
    assert run_certs("ca", "--dir", str(tmp_path), "--force") == 0
    assert pki.load_certificate(tmp_path / "ca.crt") != old


def test_certs_all_refuses_before_writing_anything_when_a_file_exists(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "tls.crt").write_text("keep me")
    assert run_certs("all", "--dir", str(tmp_path)) == 1
    assert "tls.crt already exists; pass --force" in capsys.readouterr().err
    assert not (tmp_path / "ca.crt").exists()
    assert not (tmp_path / "ca.key").exists()
    assert (tmp_path / "tls.crt").read_text() == "keep me"


def test_certs_serving_reports_a_bad_host_without_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_certs("ca", "--dir", str(tmp_path))
    assert run_certs("serving", "--dir", str(tmp_path), "--host", "not a host") == 1
    assert capsys.readouterr().err == (
        "error: host 'not a host' is neither an IP address nor a DNS name\n"
    )


def test_certs_without_a_sub_command_is_a_usage_error() -> None:
    with pytest.raises(SystemExit) as exited:
        run_certs()
    assert exited.value.code == 2
