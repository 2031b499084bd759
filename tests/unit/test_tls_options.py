"""``--tls-min-version`` and ``--tls-cipher-suites``, checked with real handshakes."""

from __future__ import annotations

import ssl

import aiohttp
import pytest

from certs import pki
from mcs_apiserver.tls import CIPHER_SUITES, ServerTLS, TLSConfigError, TLSOptions, parse_cipher_suites
from tests.unit.test_tls import client_context, serving, serving_cert


@pytest.fixture
def ca() -> pki.CertKey:
    return pki.new_ca("options-ca")


@pytest.fixture
def files(tmp_path, ca):
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    pki.write_cert_key(serving_cert(ca), cert, key)
    return cert, key


def capped(context: ssl.SSLContext, version: ssl.TLSVersion) -> ssl.SSLContext:
    context.maximum_version = version
    return context


async def test_tls_1_3_as_minimum_refuses_a_tls_1_2_client_and_serves_a_tls_1_3_one(files, tmp_path, ca):
    tls = ServerTLS(*files, options=TLSOptions(min_version="VersionTLS13"))
    async with serving(tls) as server:
        assert (await server.get(client_context(tmp_path, ca)))["peer"] is None
        with pytest.raises(aiohttp.ClientConnectorError):
            await server.get(capped(client_context(tmp_path, ca), ssl.TLSVersion.TLSv1_2))


async def test_the_named_cipher_suites_are_the_only_tls_1_2_ones_offered(files, tmp_path, ca):
    tls = ServerTLS(*files, options=TLSOptions(cipher_suites=("TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",)))
    async with serving(tls) as server:
        allowed = capped(client_context(tmp_path, ca), ssl.TLSVersion.TLSv1_2)
        allowed.set_ciphers("ECDHE-ECDSA-AES256-GCM-SHA384")
        await server.get(allowed)
        other = capped(client_context(tmp_path, ca), ssl.TLSVersion.TLSv1_2)
        other.set_ciphers("ECDHE-ECDSA-AES128-GCM-SHA256")
        with pytest.raises(aiohttp.ClientConnectorError):
            await server.get(other)


def test_unknown_cipher_suites_are_refused_with_the_known_names():
    with pytest.raises(ValueError, match="unknown cipher suite\\(s\\) TLS_FOO; known: TLS_ECDHE"):
        parse_cipher_suites("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, TLS_FOO")
    assert parse_cipher_suites(" TLS_AES_128_GCM_SHA256 ,") == ("TLS_AES_128_GCM_SHA256",)


def test_every_tls_1_2_suite_name_maps_to_a_cipher_openssl_knows():
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    for name, openssl in CIPHER_SUITES.items():
        if openssl:
            context.set_ciphers(openssl)  # raises SSLError for an unknown name


def test_only_tls_1_3_suites_with_tls_1_2_allowed_is_refused_as_kube_would_serve_nothing(files):
    with pytest.raises(TLSConfigError, match="only TLS 1.3 suites"):
        ServerTLS(*files, options=TLSOptions(cipher_suites=("TLS_AES_128_GCM_SHA256",)))
    with pytest.raises(TLSConfigError, match="--tls-min-version 'VersionTLS11'"):
        ServerTLS(*files, options=TLSOptions(min_version="VersionTLS11"))
