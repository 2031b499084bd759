"""ServerTLS against a real TLS aiohttp server on 127.0.0.1, with real certificates from certs.pki."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import uvloop
from aiohttp import web
from cryptography.hazmat.primitives import serialization

from certs import pki
from mcs_apiserver import tls as tls_module
from mcs_apiserver.tls import ServerTLS, TLSConfigError, peer_certificate_der


def key_pem(cert_key: pki.CertKey) -> bytes:
    """The private key as the PKI writes it: unencrypted PKCS#8 PEM."""
    return cert_key.key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


@pytest.fixture(scope="module")
def serving_ca() -> pki.CertKey:
    return pki.new_ca("serving-ca")


@pytest.fixture(scope="module")
def client_ca() -> pki.CertKey:
    return pki.new_ca("client-ca")


@pytest.fixture(scope="module")
def other_ca() -> pki.CertKey:
    return pki.new_ca("other-ca")


def serving_cert(ca: pki.CertKey) -> pki.CertKey:
    dns, ips = pki.serving_names("mcs-apiserver", "mcs-system")
    return pki.issue_serving_cert(ca, common_name="mcs-apiserver", dns_names=dns, ip_addresses=ips)


@pytest.fixture
def cert_files(tmp_path: Path, serving_ca: pki.CertKey) -> tuple[Path, Path, pki.CertKey]:
    cert_key = serving_cert(serving_ca)
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    pki.write_cert_key(cert_key, cert, key)
    return cert, key, cert_key


def client_context(tmp_path: Path, serving_ca: pki.CertKey, client: pki.CertKey | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cadata=serving_ca.cert_pem().decode())
    if client is not None:
        cert, key = tmp_path / f"client-{client.cert.serial_number}.crt", tmp_path / f"client-{client.cert.serial_number}.key"
        pki.write_cert_key(client, cert, key, overwrite=True)
        context.load_cert_chain(cert, key)
    return context


class Server:
    """A real HTTPS server whose one handler reports the client certificate it saw."""

    def __init__(self) -> None:
        self.calls = 0
        self.port = 0

    async def handler(self, request: web.Request) -> web.Response:
        self.calls += 1
        der = peer_certificate_der(request)
        return web.json_response({"peer": hashlib.sha256(der).hexdigest() if der else None})

    async def get(self, context: ssl.SSLContext) -> dict[str, str | None]:
        """One request on a brand-new connection."""
        async with aiohttp.ClientSession() as session, session.get(
            f"https://127.0.0.1:{self.port}/", ssl=context
        ) as response:
            assert response.status == 200
            return await response.json()


@contextlib.asynccontextmanager
async def serving(tls: ServerTLS) -> AsyncIterator[Server]:
    server = Server()
    app = web.Application()
    app.router.add_get("/", server.handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=tls.context)
    await site.start()
    server.port = runner.addresses[0][1]
    try:
        yield server
    finally:
        await runner.cleanup()


async def served_certificate(port: int, context: ssl.SSLContext) -> bytes:
    """The DER of the serving certificate a new connection is given."""
    _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context)
    try:
        der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        assert der is not None
        return der
    finally:
        writer.close()


def der(cert_key: pki.CertKey) -> bytes:
    from cryptography.hazmat.primitives.serialization import Encoding

    return cert_key.cert.public_bytes(Encoding.DER)


def sha(cert_key: pki.CertKey) -> str:
    return hashlib.sha256(der(cert_key)).hexdigest()


def test_the_context_accepts_tls_1_2_and_up_and_asks_for_optional_client_certificates(cert_files):
    cert, key, _ = cert_files
    tls = ServerTLS(cert, key)
    assert tls.context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert tls.context.verify_mode == ssl.CERT_OPTIONAL
    assert tls.current.verify_mode == ssl.CERT_OPTIONAL


async def test_a_client_without_a_certificate_is_served_and_has_no_peer_certificate(
    cert_files, tmp_path, serving_ca, client_ca
):
    cert, key, _ = cert_files
    tls = ServerTLS(cert, key, client_ca_pem=client_ca.cert_pem())
    async with serving(tls) as server:
        assert await server.get(client_context(tmp_path, serving_ca)) == {"peer": None}


async def test_a_client_certificate_from_a_trusted_ca_reaches_the_handler(
    cert_files, tmp_path, serving_ca, client_ca
):
    cert, key, _ = cert_files
    alice = pki.issue_client_cert(client_ca, common_name="alice")
    tls = ServerTLS(cert, key, client_ca_pem=client_ca.cert_pem())
    async with serving(tls) as server:
        assert await server.get(client_context(tmp_path, serving_ca, alice)) == {"peer": sha(alice)}


async def test_a_client_certificate_from_an_unknown_ca_reaches_the_handler_which_judges_it(
    cert_files, tmp_path, serving_ca, client_ca, other_ca
):
    """As kube-apiserver's handshake (Go's tls.RequestClientCert): the authenticator answers 401."""
    cert, key, _ = cert_files
    mallory = pki.issue_client_cert(other_ca, common_name="mallory")
    tls = ServerTLS(cert, key, client_ca_pem=client_ca.cert_pem())
    async with serving(tls) as server:
        assert await server.get(client_context(tmp_path, serving_ca, mallory)) == {"peer": sha(mallory)}


def test_under_uvloop_too_any_client_certificate_reaches_the_handler_after_a_context_change(
    cert_files, tmp_path, serving_ca, client_ca, other_ca
):
    """uvloop (what serve runs) drives TLS through SSLObject and MemoryBIO; the listening context's
    callback outlives the SNI callback's switch to a new context."""
    cert, key, _ = cert_files
    mallory = pki.issue_client_cert(other_ca, common_name="mallory")
    tls = ServerTLS(cert, key, client_ca_pem=client_ca.cert_pem())

    async def scenario() -> list[dict[str, str | None]]:
        async with serving(tls) as server:
            first = await server.get(client_context(tmp_path, serving_ca, mallory))
            tls.set_client_ca(serving_ca.cert_pem())  # a new context for the next handshakes
            return [first, await server.get(client_context(tmp_path, serving_ca, mallory))]

    assert uvloop.run(scenario()) == [{"peer": sha(mallory)}] * 2


def test_the_start_up_self_check_proves_the_deferred_verification_works_here():
    """Where it fails (another Python, OpenSSL linked statically), the server logs one warning and
    the handshake verifies, as the next tests do."""
    assert tls_module._deferral_works()


async def test_verifying_in_the_handshake_a_client_certificate_from_an_unknown_ca_fails_it(
    cert_files, tmp_path, serving_ca, client_ca, other_ca
):
    cert, key, _ = cert_files
    mallory = pki.issue_client_cert(other_ca, common_name="mallory")
    tls = ServerTLS(cert, key, client_ca_pem=client_ca.cert_pem(), defer_client_verification=False)
    async with serving(tls) as server:
        with pytest.raises((aiohttp.ClientError, ssl.SSLError, ConnectionError)):
            await server.get(client_context(tmp_path, serving_ca, mallory))
        assert server.calls == 0


async def test_verifying_in_the_handshake_client_cas_replaced_at_runtime_apply_to_the_next_handshake(
    cert_files, tmp_path, serving_ca, client_ca, other_ca
):
    cert, key, _ = cert_files
    alice = pki.issue_client_cert(client_ca, common_name="alice")
    bob = pki.issue_client_cert(other_ca, common_name="bob")
    tls = ServerTLS(cert, key, client_ca_pem=client_ca.cert_pem(), defer_client_verification=False)
    async with serving(tls) as server:
        with pytest.raises((aiohttp.ClientError, ssl.SSLError, ConnectionError)):
            await server.get(client_context(tmp_path, serving_ca, bob))

        tls.set_client_ca(other_ca.cert_pem())

        assert await server.get(client_context(tmp_path, serving_ca, bob)) == {"peer": sha(bob)}
        with pytest.raises((aiohttp.ClientError, ssl.SSLError, ConnectionError)):
            await server.get(client_context(tmp_path, serving_ca, alice))


async def test_a_certificate_rotated_on_disk_is_served_to_new_connections_without_a_restart(
    cert_files, tmp_path, serving_ca
):
    cert, key, first = cert_files
    tls = ServerTLS(cert, key, poll_interval=0.02)
    poller = asyncio.create_task(tls.run())
    context = client_context(tmp_path, serving_ca)
    try:
        async with serving(tls) as server:
            assert await served_certificate(server.port, context) == der(first)
            # a connection opened before the rotation, used after it
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port, ssl=context)

            second = serving_cert(serving_ca)
            pki.write_cert_key(second, cert, key, overwrite=True)
            for _ in range(200):
                if await served_certificate(server.port, context) == der(second):
                    break
                await asyncio.sleep(0.01)
            assert await served_certificate(server.port, context) == der(second)

            writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            assert (await reader.readline()).startswith(b"HTTP/1.1 200")
            assert writer.get_extra_info("ssl_object").getpeercert(binary_form=True) == der(first)
            writer.close()
    finally:
        poller.cancel()


async def test_a_half_written_certificate_is_logged_and_the_previous_one_kept(
    cert_files, tmp_path, serving_ca, caplog
):
    cert, key, first = cert_files
    tls = ServerTLS(cert, key)
    second = serving_cert(serving_ca)
    caplog.set_level(logging.WARNING, logger="mcs_apiserver.tls")
    async with serving(tls) as server:
        cert.write_bytes(second.cert_pem()[:200])  # the writer has not finished yet

        assert tls.reload() is False
        assert "keeping the current one" in caplog.text
        assert await served_certificate(server.port, client_context(tmp_path, serving_ca)) == der(first)

        pki.write_cert_key(second, cert, key, overwrite=True)
        assert tls.reload() is True
        assert await served_certificate(server.port, client_context(tmp_path, serving_ca)) == der(second)


async def test_a_new_certificate_with_the_old_key_is_refused_until_its_key_arrives(
    cert_files, tmp_path, serving_ca
):
    cert, key, first = cert_files
    tls = ServerTLS(cert, key)
    second = serving_cert(serving_ca)
    async with serving(tls) as server:
        cert.write_bytes(second.cert_pem())  # the key file is written a moment later
        assert tls.reload() is False
        assert await served_certificate(server.port, client_context(tmp_path, serving_ca)) == der(first)

        key.write_bytes(key_pem(second))
        assert tls.reload() is True
        assert await served_certificate(server.port, client_context(tmp_path, serving_ca)) == der(second)


def test_a_broken_certificate_is_logged_once_however_often_it_is_polled(cert_files, caplog):
    cert, key, _ = cert_files
    tls = ServerTLS(cert, key)
    caplog.set_level(logging.WARNING, logger="mcs_apiserver.tls")
    cert.write_bytes(b"-----BEGIN CERTIFICATE-----\ngarbage\n")
    for _ in range(5):
        assert tls.reload() is False
    assert len([r for r in caplog.records if r.name == "mcs_apiserver.tls"]) == 1


def test_an_unchanged_certificate_is_not_rebuilt(cert_files):
    cert, key, _ = cert_files
    tls = ServerTLS(cert, key)
    before = tls.current
    assert tls.reload() is False
    assert tls.current is before


def test_a_missing_certificate_at_start_up_is_a_clear_error(tmp_path):
    with pytest.raises(TLSConfigError, match=r"tls\.crt"):
        ServerTLS(tmp_path / "tls.crt", tmp_path / "tls.key")


def test_a_client_ca_bundle_that_is_not_pem_is_refused_and_the_trusted_cas_kept(cert_files, client_ca):
    cert, key, _ = cert_files
    tls = ServerTLS(cert, key, client_ca_pem=client_ca.cert_pem())
    before = tls.current
    with pytest.raises(ValueError):
        tls.set_client_ca(b"not a certificate")
    assert tls.current is before
    assert len(tls.current.get_ca_certs()) == 1
