"""The serving TLS context: certificates reloaded from disk and client CAs replaced at runtime.

kube-apiserver reaches this server over TLS and authenticates *itself* with a front-proxy client
certificate, so the server must ask for client certificates (``CERT_OPTIONAL``: kubelet probes and
token-bearing clients have none) and trust the client CA and the requestheader CA of the local
cluster. Both the CA bundles (from a ConfigMap) and the serving certificate (a Secret volume,
cert-manager, ...) change while the process runs, and a restart would cut every open WATCH.

Python cannot swap the certificate of a listening ``SSLContext``, but the SNI callback runs at the
start of every handshake and may hand the connection another context. So the listening context
carries a callback that gives every new connection the newest good context; connections already
open keep theirs. A certificate that fails to load (half-written file, key of another
certificate) is logged and the previous context stays in use.
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web
from cryptography import x509

__all__ = ["ServerTLS", "TLSConfigError", "TLSOptions", "peer_certificate_der", "parse_cipher_suites",
           "TLS_VERSIONS", "CIPHER_SUITES"]

log = logging.getLogger("mcs_apiserver.tls")

#: How often certificate files are checked for changes: cert-manager and kubelet rotate Secret
#: volumes well ahead of expiry, so a few seconds of delay never matters.
DEFAULT_POLL_INTERVAL = 5.0


#: ``--tls-min-version`` values, named as kube's (Go's crypto/tls constants). Below TLS 1.2 is not offered.
TLS_VERSIONS: dict[str, ssl.TLSVersion] = {
    "VersionTLS12": ssl.TLSVersion.TLSv1_2,
    "VersionTLS13": ssl.TLSVersion.TLSv1_3,
}

#: ``--tls-cipher-suites`` names (Go's, as kube's flag takes them) -> OpenSSL names. The TLS 1.3
#: suites are accepted for compatibility but, as in Go, not configurable: TLS 1.3 always offers them.
CIPHER_SUITES: dict[str, str | None] = {
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": "ECDHE-ECDSA-AES128-GCM-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": "ECDHE-RSA-AES128-GCM-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": "ECDHE-ECDSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": "ECDHE-RSA-AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-ECDSA-CHACHA20-POLY1305",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305": "ECDHE-ECDSA-CHACHA20-POLY1305",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA": "ECDHE-ECDSA-AES128-SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA": "ECDHE-RSA-AES128-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA": "ECDHE-ECDSA-AES256-SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA": "ECDHE-RSA-AES256-SHA",
    "TLS_RSA_WITH_AES_128_GCM_SHA256": "AES128-GCM-SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384": "AES256-GCM-SHA384",
    "TLS_RSA_WITH_AES_128_CBC_SHA": "AES128-SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA": "AES256-SHA",
    "TLS_AES_128_GCM_SHA256": None,
    "TLS_AES_256_GCM_SHA384": None,
    "TLS_CHACHA20_POLY1305_SHA256": None,
}


@dataclass(frozen=True)
class TLSOptions:
    """``--tls-min-version`` and ``--tls-cipher-suites`` (empty: OpenSSL's defaults)."""

    min_version: str = "VersionTLS12"
    cipher_suites: tuple[str, ...] = ()


def parse_cipher_suites(text: str) -> tuple[str, ...]:
    """A comma-separated list of Go cipher suite names; an unknown name is an error that lists the
    known ones."""
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    unknown = [n for n in names if n not in CIPHER_SUITES]
    if unknown:
        raise ValueError(f"unknown cipher suite(s) {', '.join(unknown)}; known: {', '.join(CIPHER_SUITES)}")
    return names


class TLSConfigError(ValueError):
    """The serving certificate cannot be loaded at start-up; the message names the file and why."""


@dataclass(frozen=True, slots=True)
class _Inputs:
    """What a context is built from. A file is identified by (inode, size, mtime): an atomic
    rename (Secret volumes swap a symlink) changes the inode, an in-place write the size or mtime."""

    cert_stamp: tuple[int, int, int]
    key_stamp: tuple[int, int, int]
    client_ca_pem: bytes


def _stamp(path: Path) -> tuple[int, int, int]:
    st = os.stat(path)  # follows symlinks, as a Secret volume needs
    return (st.st_ino, st.st_size, st.st_mtime_ns)


class ServerTLS:
    """The server-side TLS configuration of one listening socket.

    Pass :attr:`context` to the listener once; then :meth:`set_client_ca` (new CA bundles) and
    :meth:`reload` (certificate files changed; :meth:`run` calls it periodically) take effect on the
    next handshake.
    """

    def __init__(
        self,
        cert_file: str | os.PathLike[str],
        key_file: str | os.PathLike[str],
        *,
        client_ca_pem: bytes = b"",
        extra_client_ca_pem: bytes = b"",
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        options: TLSOptions = TLSOptions(),
    ) -> None:
        if options.min_version not in TLS_VERSIONS:
            raise TLSConfigError(f"--tls-min-version {options.min_version!r}: expected one of {', '.join(TLS_VERSIONS)}")
        tls12 = [CIPHER_SUITES[n] for n in options.cipher_suites if CIPHER_SUITES.get(n)]
        if options.cipher_suites and not tls12 and options.min_version == "VersionTLS12":
            raise TLSConfigError("--tls-cipher-suites names only TLS 1.3 suites, which are not configurable: "
                                 "add TLS 1.2 suites, or set --tls-min-version=VersionTLS13")
        self._options = options
        self.cert_file = Path(cert_file)
        self.key_file = Path(key_file)
        self.poll_interval = poll_interval
        _check_ca_pem(client_ca_pem)
        _check_ca_pem(extra_client_ca_pem)
        #: Trusted besides the cluster's CAs, whatever they become: the webhook callers' CA.
        self._extra_client_ca_pem = extra_client_ca_pem
        self._client_ca_pem = client_ca_pem
        try:
            inputs = self._inputs()
            self._current = self._build(client_ca_pem)
        except (OSError, ssl.SSLError) as error:
            raise TLSConfigError(
                f"cannot load the serving certificate {self.cert_file} with key {self.key_file}: {error}"
            ) from None
        self._loaded = inputs
        self._failed: _Inputs | None = None
        self._unreadable: str | None = None
        #: The context to listen with: its SNI callback moves every handshake to :attr:`current`.
        self.context: ssl.SSLContext = self._current
        self.context.sni_callback = self._select_context

    @property
    def current(self) -> ssl.SSLContext:
        """The context new connections get."""
        return self._current

    def _select_context(
        self, ssl_object: ssl.SSLObject | ssl.SSLSocket, server_name: str | None, _: ssl.SSLContext
    ) -> None:
        ssl_object.context = self._current

    def set_client_ca(self, pem: bytes) -> None:
        """Trust exactly these CA certificates (PEM) for client certificates from now on.

        Raises ``ValueError`` when ``pem`` holds no valid certificate (b"" trusts none); the
        caller, not the next poll, is the one who can fix that.
        """
        _check_ca_pem(pem)
        self._client_ca_pem = pem
        self.reload()

    def reload(self) -> bool:
        """Rebuild the context if the certificate files or the client CAs changed.

        Returns whether new connections now get a new context. A failure keeps the old one and is
        logged once per distinct set of inputs, so a broken file does not flood the log.
        """
        try:
            inputs = self._inputs()
        except OSError as error:
            if str(error) != self._unreadable:
                self._warn("cannot read the serving certificate files; keeping the current ones", error)
                self._unreadable = str(error)
            return False
        self._unreadable = None
        if inputs == self._loaded or inputs == self._failed:
            return False
        try:
            context = self._build(inputs.client_ca_pem)
        except (OSError, ssl.SSLError) as error:
            self._warn("cannot load the new serving certificate; keeping the current one", error)
            self._failed = inputs
            return False
        certificate_changed = (inputs.cert_stamp, inputs.key_stamp) != (self._loaded.cert_stamp, self._loaded.key_stamp)
        self._current, self._loaded, self._failed = context, inputs, None
        if certificate_changed:
            log.info("serving certificate reloaded", extra=self._describe_certificate())
        else:
            log.info("client CA bundle updated", extra={"client_cas": inputs.client_ca_pem.count(b"-----BEGIN")})
        return True

    async def run(self) -> None:
        """Poll the certificate files every :attr:`poll_interval` seconds, until cancelled."""
        while True:
            await asyncio.sleep(self.poll_interval)
            self.reload()

    def _inputs(self) -> _Inputs:
        return _Inputs(_stamp(self.cert_file), _stamp(self.key_file), self._client_ca_pem)

    def _build(self, client_ca_pem: bytes) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = TLS_VERSIONS[self._options.min_version]
        tls12 = [CIPHER_SUITES[n] for n in self._options.cipher_suites if CIPHER_SUITES.get(n)]
        if tls12:
            context.set_ciphers(":".join(tls12))
        context.load_cert_chain(self.cert_file, self.key_file)
        context.verify_mode = ssl.CERT_OPTIONAL
        for pem in (client_ca_pem, self._extra_client_ca_pem):
            if pem:
                context.load_verify_locations(cadata=pem.decode("ascii"))
        return context

    def _warn(self, message: str, error: Exception) -> None:
        log.warning(message, extra={"cert_file": str(self.cert_file), "key_file": str(self.key_file),
                                    "reason": str(error)})

    def _describe_certificate(self) -> dict[str, str]:
        fields = {"cert_file": str(self.cert_file)}
        try:
            cert = x509.load_pem_x509_certificate(self.cert_file.read_bytes())
        except (OSError, ValueError):
            return fields  # it loaded a moment ago; a concurrent rewrite only costs the details
        fields["subject"] = cert.subject.rfc4514_string()
        fields["not_after"] = cert.not_valid_after_utc.isoformat()
        return fields


def _check_ca_pem(pem: bytes) -> None:
    if pem:
        x509.load_pem_x509_certificates(pem)  # ValueError on garbage, before OpenSSL sees it


def peer_certificate_der(request: web.BaseRequest) -> bytes | None:
    """The DER of the client certificate the TLS handshake verified, or None (no TLS, no cert)."""
    transport = request.transport
    if transport is None:
        return None
    ssl_object = transport.get_extra_info("ssl_object")
    if ssl_object is None:
        return None
    return ssl_object.getpeercert(binary_form=True)
