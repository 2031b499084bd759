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

A client certificate is *requested* but not judged in the handshake, as Go's ``tls.RequestClientCert``
does for kube-apiserver: the authenticator verifies it (``auth.authenticate.verify_chain``), so a
certificate from another CA gets a 401 Status rather than a closed connection. Python's ``ssl`` has
no verify callback, so :func:`_defer_client_verification` sets OpenSSL's through ``ctypes``; a
self-check at start-up (a real handshake) proves it works, or the handshake keeps verifying, as
OpenSSL does by default, with one warning.
"""

from __future__ import annotations

import asyncio
import ctypes
import datetime
import functools
import logging
import os
import ssl
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

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
    """``--tls-min-version`` and ``--tls-cipher-suites`` (empty: OpenSSL's defaults), and the application
    protocols offered by ALPN, best first (empty: none, which a client takes as HTTP/1.1)."""

    min_version: str = "VersionTLS12"
    cipher_suites: tuple[str, ...] = ()
    alpn_protocols: tuple[str, ...] = ()


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
        defer_client_verification: bool = True,
    ) -> None:
        """``defer_client_verification``: accept any client certificate in the handshake, for the
        authenticator to judge (when this Python allows it, see :func:`_deferral_works`); False
        verifies them in the handshake against the client CAs, as OpenSSL does by default."""
        if options.min_version not in TLS_VERSIONS:
            raise TLSConfigError(f"--tls-min-version {options.min_version!r}: expected one of {', '.join(TLS_VERSIONS)}")
        tls12 = [CIPHER_SUITES[n] for n in options.cipher_suites if CIPHER_SUITES.get(n)]
        if options.cipher_suites and not tls12 and options.min_version == "VersionTLS12":
            raise TLSConfigError("--tls-cipher-suites names only TLS 1.3 suites, which are not configurable: "
                                 "add TLS 1.2 suites, or set --tls-min-version=VersionTLS13")
        self._min_version = TLS_VERSIONS[options.min_version]
        #: The OpenSSL names of the TLS 1.2 suites asked for; empty: OpenSSL's defaults.
        self._ciphers = ":".join(tls12)
        self._alpn = list(options.alpn_protocols)
        self._defer = defer_client_verification
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
        context.minimum_version = self._min_version
        if self._ciphers:
            context.set_ciphers(self._ciphers)
        context.load_cert_chain(self.cert_file, self.key_file)
        # No TLS 1.3 session tickets: kube-apiserver's clients never resume (Go's http.Transport has
        # no ClientSessionCache unless told), and with OpenSSL 3.0 issuing them is a third of a
        # handshake's CPU, more than half with a client certificate (the session, certificate
        # included, is encoded and decoded for each ticket): measured in BENCHMARKS.md, "Hostile clients".
        context.num_tickets = 0
        if self._alpn:
            context.set_alpn_protocols(self._alpn)
        context.verify_mode = ssl.CERT_OPTIONAL
        for pem in (client_ca_pem, self._extra_client_ca_pem):
            if pem:
                context.load_verify_locations(cadata=pem.decode("ascii"))
        if self._defer and _deferral_works():
            _defer_client_verification(context)
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


# --- a client certificate requested, verified later -----------------------------------------------

_SSL_VERIFY_PEER = 1
_VerifyCallback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int, ctypes.c_void_p)


@_VerifyCallback
def _accept_any_chain(_preverify_ok: int, _store_context: int | None) -> int:
    """OpenSSL's verify callback: every certificate of the chain is accepted, whatever OpenSSL
    found; the authenticator judges the certificate. (Kept referenced here: OpenSSL holds a raw
    pointer to it.)"""
    return 1


@functools.cache
def _libssl() -> ctypes.CDLL:
    """The libssl that ``_ssl`` is linked against (dlsym searches a library's dependencies):
    the same SSL_CTX functions the ``ssl`` module calls. AttributeError when _ssl does not export
    them (OpenSSL linked statically)."""
    import _ssl  # noqa: PLC0415

    lib = ctypes.CDLL(_ssl.__file__)
    lib.SSL_CTX_get_options.restype = ctypes.c_uint64
    lib.SSL_CTX_get_options.argtypes = [ctypes.c_void_p]
    lib.SSL_CTX_get_verify_mode.restype = ctypes.c_int
    lib.SSL_CTX_get_verify_mode.argtypes = [ctypes.c_void_p]
    lib.SSL_CTX_set_verify.restype = None
    lib.SSL_CTX_set_verify.argtypes = [ctypes.c_void_p, ctypes.c_int, _VerifyCallback]
    return lib


def _ssl_ctx_pointer(context: ssl.SSLContext) -> int:
    """The ``SSL_CTX *`` of a context: CPython's ``PySSLContext`` is ``{PyObject_HEAD; SSL_CTX *ctx;
    ...}`` (unchanged since Python 2.7). ValueError unless OpenSSL, asked through that pointer,
    reports the options and verify mode the Python object reports."""
    if sys.implementation.name != "cpython":
        raise ValueError(f"the layout of SSLContext is CPython's, not {sys.implementation.name}'s")
    pointer = ctypes.c_void_p.from_address(id(context) + object.__basicsize__).value
    lib = _libssl()
    if not pointer or lib.SSL_CTX_get_options(pointer) != int(context.options):
        raise ValueError("SSLContext's SSL_CTX pointer is not where CPython keeps it")
    if lib.SSL_CTX_get_verify_mode(pointer) != _SSL_VERIFY_PEER:
        raise ValueError("SSL_CTX_get_verify_mode does not report CERT_OPTIONAL as SSL_VERIFY_PEER")
    return pointer


def _defer_client_verification(context: ssl.SSLContext) -> None:
    """Keep requesting client certificates (``context`` must be ``CERT_OPTIONAL``) but accept any
    chain in the handshake. The handshake still proves that the client holds the certificate's key
    (CertificateVerify is checked whatever the callback says); the ``ssl`` module's own setters keep
    the callback (``verify_mode`` passes the current one on)."""
    _libssl().SSL_CTX_set_verify(_ssl_ctx_pointer(context), _SSL_VERIFY_PEER, _accept_any_chain)


@functools.cache
def _deferral_works() -> bool:
    """Whether :func:`_defer_client_verification` works here, proven once by a handshake in memory:
    a server context with the callback gets the certificate of a client whose CA it does not trust.
    Otherwise one warning, and the handshake verifies client certificates as before (a certificate
    from another CA gets a closed connection instead of a 401)."""
    try:
        with tempfile.TemporaryDirectory(prefix="mcs-apiserver-tls-check-") as tmp:
            server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            server.load_cert_chain(*_self_signed(Path(tmp), "server"))
            server.verify_mode = ssl.CERT_OPTIONAL
            server.load_verify_locations(cadata=_self_signed_pem("a CA the client's certificate is not from"))
            _defer_client_verification(server)
            client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            client.check_hostname = False
            client.verify_mode = ssl.CERT_NONE
            cert_file, key_file = _self_signed(Path(tmp), "client")
            client.load_cert_chain(cert_file, key_file)
            expected = x509.load_pem_x509_certificate(cert_file.read_bytes()).public_bytes(serialization.Encoding.DER)
            if _handshake(server, client) != expected:
                raise ValueError("the server did not get the client certificate")
    except (OSError, AttributeError, ValueError, ssl.SSLError) as error:
        log.warning("client certificates are verified in the TLS handshake: one from an unknown CA gets a "
                    "closed connection rather than a 401 Status", extra={"reason": str(error) or type(error).__name__})
        return False
    return True


def _handshake(server: ssl.SSLContext, client: ssl.SSLContext) -> bytes | None:
    """Run a handshake between two contexts in memory; the client certificate the server got."""
    to_server, to_client = ssl.MemoryBIO(), ssl.MemoryBIO()
    server_side = server.wrap_bio(to_server, to_client, server_side=True)
    client_side = client.wrap_bio(to_client, to_server, server_side=False)
    done = {"server": False, "client": False}
    for _ in range(10):
        for name, side in (("client", client_side), ("server", server_side)):
            if not done[name]:
                try:
                    side.do_handshake()
                    done[name] = True
                except ssl.SSLWantReadError:
                    pass
        if all(done.values()):
            return server_side.getpeercert(binary_form=True)
    raise ValueError("the handshake in memory did not complete")


def _self_signed_pem(name: str) -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    return _certificate(name, key).public_bytes(serialization.Encoding.PEM).decode("ascii")


def _self_signed(directory: Path, name: str) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    cert_file, key_file = directory / f"{name}.crt", directory / f"{name}.key"
    cert_file.write_bytes(_certificate(name, key).public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


def _certificate(name: str, key: ec.EllipticCurvePrivateKey) -> x509.Certificate:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    return (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))


def _check_ca_pem(pem: bytes) -> None:
    if pem:
        x509.load_pem_x509_certificates(pem)  # ValueError on garbage, before OpenSSL sees it


def peer_certificate_der(request: web.BaseRequest) -> bytes | None:
    """The DER of the client certificate of the connection, or None (no TLS, no certificate). The
    handshake proved that the client holds its key, not that anyone trusts it: that is the
    authenticator's question (see the module docstring)."""
    transport = request.transport
    if transport is None:
        return None
    ssl_object = transport.get_extra_info("ssl_object")
    if ssl_object is None:
        return None
    return ssl_object.getpeercert(binary_form=True)
