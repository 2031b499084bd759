"""Fixtures several unit-test modules share."""

from __future__ import annotations

import ssl

import pytest


@pytest.fixture(scope="module")
def localhost_tls(tmp_path_factory: pytest.TempPathFactory) -> tuple[ssl.SSLContext, str]:
    """A server context with a certificate for localhost from a fresh CA, and that CA (PEM) for clients:
    one per test module, so a module may set its context up further (ALPN) without touching another's."""
    from certs import pki

    tmp = tmp_path_factory.mktemp("tls")
    ca = pki.new_ca("unit-test-ca")
    pki.write_cert_key(pki.issue_serving_cert(ca, common_name="localhost", dns_names=["localhost"], ip_addresses=[]),
                       tmp / "tls.crt", tmp / "tls.key")
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(tmp / "tls.crt", tmp / "tls.key")
    return server, ca.cert_pem().decode()
