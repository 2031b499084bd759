"""Who is asking: front proxy, then client certificate, then bearer token, in kube-apiserver's order.

Almost every request reaches us through kube-apiserver's aggregator, which presents its
front-proxy client certificate and states the real user in ``X-Remote-*`` headers. Those headers
are believed only when the TLS peer certificate was issued by the requestheader CA (and has an
allowed CN): from anyone else they are ignored, or any client could claim to be anyone. Then, as
in kube-apiserver's delegating authenticator, a certificate from the client CA stands for its CN
(user) and O (groups), and a bearer token is checked with a TokenReview. There is no anonymous
user: what none of these authenticates is answered 401.

The certificate and header logic is pure (:func:`authenticate`); :class:`Authenticator` adds what
the hot path needs: certificate checks done once per certificate, and cached TokenReviews.
"""

from __future__ import annotations

import datetime
import hashlib
import logging
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import unquote

from cryptography import x509
from cryptography.x509 import verification
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from multidict import MultiMapping

from mcs_apiserver.auth.cache import ExpiringCache
from mcs_apiserver.auth.config import AuthenticationConfig
from mcs_apiserver.auth.review import ReviewError, create_review
from mcs_apiserver.auth.settings import AuthSettings
from mcs_apiserver.kube.client import KubeClient

__all__ = [
    "Authenticator",
    "TokenReviewer",
    "UserInfo",
    "VerifiedPeer",
    "authenticate",
    "bearer_token",
    "front_proxy_user",
    "verify_chain",
    "verify_peer",
]

log = logging.getLogger("mcs_apiserver.auth.authenticate")

AUTHENTICATED = "system:authenticated"
UNAUTHENTICATED = "system:unauthenticated"
ANONYMOUS = "system:anonymous"
#: The extra key kube-apiserver gives x509 users: which credential authenticated them (audit).
CREDENTIAL_ID = "authentication.kubernetes.io/credential-id"

TOKEN_REVIEW_PATH = "/apis/authentication.k8s.io/v1/tokenreviews"

Headers = MultiMapping[str]
"""Request headers with case-insensitive names and repeated values: aiohttp's ``request.headers``."""


@dataclass(frozen=True, slots=True)
class UserInfo:
    """An authenticated user, as SubjectAccessReviews and AdmissionReviews carry it."""

    name: str
    uid: str = ""
    groups: tuple[str, ...] = ()
    extra: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


def authenticated_user(
    name: str, uid: str = "", groups: tuple[str, ...] = (), extra: Mapping[str, tuple[str, ...]] | None = None
) -> UserInfo:
    """A :class:`UserInfo` with ``system:authenticated`` added, as kube-apiserver's
    AuthenticatedGroupAdder does: not for the anonymous user (a front proxy may forward one), and
    not twice."""
    if name != ANONYMOUS and AUTHENTICATED not in groups and UNAUTHENTICATED not in groups:
        groups = (*groups, AUTHENTICATED)
    return UserInfo(name, uid, groups, extra or {})


@dataclass(frozen=True, slots=True)
class VerifiedPeer:
    """What a TLS client certificate proves under one :class:`AuthenticationConfig`.

    The TLS handshake accepts any client certificate (``mcs_apiserver.tls``), as Go's
    ``tls.RequestClientCert`` does, so this is the only check: worth computing once per
    certificate, not per request.
    """

    #: Issued by a requestheader CA, usable for client auth, CN allowed: its headers are believed.
    front_proxy: bool
    #: The CN/O user when issued by a client CA (and usable for client auth).
    client_user: UserInfo | None
    #: When the chain (leaf and issuing CA) that proved it is valid.
    not_before: float
    not_after: float

    def valid_at(self, now: float) -> bool:
        """Still valid: a keep-alive connection can outlive the certificate it was opened with."""
        return self.not_before <= now <= self.not_after


def verify_peer(der: bytes, config: AuthenticationConfig) -> VerifiedPeer | None:
    """Classify a peer certificate; None when it proves nothing under ``config``.

    The TLS handshake verified nothing (see :class:`VerifiedPeer`): :func:`verify_chain` does all of
    it, once against the requestheader CAs and once against the client CAs. The extended key usage
    must allow client authentication when the certificate has one, as Go's verifier requires (a
    certificate without the extension is valid for any usage).
    """
    try:
        cert = x509.load_der_x509_certificate(der)
        if not allows_client_auth(cert):
            return None
        name = common_name(cert)
        windows = []
        front_proxy = False
        if not config.allowed_names or name in config.allowed_names:
            window = verify_chain(cert, config.requestheader_ca)
            if window is not None:
                front_proxy = True
                windows.append(window)
        client_user = None
        window = verify_chain(cert, config.client_ca) if name else None
        if window is not None:
            windows.append(window)
            organizations = tuple(
                str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
            )
            credential = "X509SHA256=" + hashlib.sha256(der).hexdigest()
            client_user = authenticated_user(name, "", organizations, {CREDENTIAL_ID: (credential,)})
        if not windows:
            return None
        return VerifiedPeer(
            front_proxy=front_proxy,
            client_user=client_user,
            not_before=max(w[0] for w in windows),
            not_after=min(w[1] for w in windows),
        )
    except ValueError:  # a malformed certificate or extension
        return None


#: What a CA must have, beyond a valid signature and validity period: basic constraints (the one
#: requirement ``cryptography`` insists on). Go, and so kube-apiserver, asks no more of a trust
#: anchor: no key usage (an ``openssl req -x509`` CA has none), nor critical basic constraints.
_CA_POLICY = verification.ExtensionPolicy.permit_all().require_present(
    x509.BasicConstraints, verification.Criticality.AGNOSTIC, None)


def verify_chain(cert: x509.Certificate, cas: Sequence[x509.Certificate]) -> tuple[float, float] | None:
    """When ``cert`` and the CA of ``cas`` that issued it are both valid (POSIX seconds, from and
    until), or None: not issued by one of them (a self-signed certificate, another CA, an
    intermediate we were not given), no moment when both are valid, or a critical extension nobody
    understands.

    Only direct issuance by a configured CA counts (Python gives us the leaf alone, not the chain
    the client sent): kube-apiserver's front-proxy and client certificates are issued directly.
    ``cryptography``'s RFC 5280 path validation checks signature, validity and the CA's
    constraints; the leaf's extensions are Go's business, not the Web PKI's (no SAN needed), so any
    are allowed there but unknown critical ones, and :func:`allows_client_auth` checks the usage.
    The path is validated at the moment nearest to now when the leaf is valid, so the answer can be
    cached per certificate; the caller compares the window it returns with the time of each request.
    """
    if not cas:
        return None
    not_before, not_after = cert.not_valid_before_utc, cert.not_valid_after_utc
    at = min(max(datetime.datetime.now(datetime.timezone.utc), not_before), not_after)
    verifier = (verification.PolicyBuilder()
                .store(verification.Store(list(cas)))
                .time(at)
                .extension_policies(ca_policy=_CA_POLICY, ee_policy=verification.ExtensionPolicy.permit_all())
                .build_client_verifier())
    try:
        chain = verifier.verify(cert, []).chain
    except verification.VerificationError:
        return None
    return (max(c.not_valid_before_utc for c in chain).timestamp(),
            min(c.not_valid_after_utc for c in chain).timestamp())


def allows_client_auth(cert: x509.Certificate) -> bool:
    try:
        usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return True
    return ExtendedKeyUsageOID.CLIENT_AUTH in usages or ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE in usages


def common_name(cert: x509.Certificate) -> str:
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[-1].value) if names else ""  # Go keeps the last CN attribute


def front_proxy_user(headers: Headers, config: AuthenticationConfig) -> UserInfo | None:
    """The user a verified front proxy states in its headers, or None when it states none.

    User: the first non-empty username header (in configured order). Groups: every non-empty
    value of every group header, one group per header line (never comma-split). Extra: every
    header starting with a prefix, key lower-cased then %-unescaped. UID only if configured.
    """
    name = _first_value(headers, config.username_headers)
    if not name:
        return None
    groups = tuple(value for header in config.group_headers for value in headers.getall(header, ()) if value)
    extra: dict[str, list[str]] = {}
    for prefix in config.extra_headers_prefixes:
        for header, value in headers.items():
            lower = header.lower()
            if lower.startswith(prefix):
                extra.setdefault(_unescape_extra_key(lower[len(prefix):]), []).append(value)
    return authenticated_user(
        name,
        _first_value(headers, config.uid_headers),
        groups,
        {key: tuple(values) for key, values in extra.items()},
    )


def _first_value(headers: Headers, names: tuple[str, ...]) -> str:
    for name in names:
        value = headers.get(name)  # the first line, like Go's Header.Get
        if value:
            return value
    return ""


_BAD_ESCAPE = re.compile(r"%(?![0-9a-fA-F]{2})")


def _unescape_extra_key(key: str) -> str:
    """Go's ``url.PathUnescape``, keeping the key as it is when an escape is malformed (kube
    records malformed keys rather than dropping them)."""
    if "%" not in key or _BAD_ESCAPE.search(key):
        return key
    return unquote(key)


def authenticate(
    peer_der: bytes | None,
    headers: Headers,
    config: AuthenticationConfig,
    *,
    now: float | None = None,
    verify: Callable[[bytes, AuthenticationConfig], VerifiedPeer | None] = verify_peer,
) -> UserInfo | None:
    """The user the TLS peer certificate (and, for a front proxy, its headers) proves, or None.

    Front proxy first; a front proxy that states no user falls through to the client-CA check,
    exactly as kube-apiserver's union authenticator does. ``verify`` lets a caller cache
    :func:`verify_peer`.
    """
    if peer_der is None:
        return None
    peer = verify(peer_der, config)
    if peer is None or not peer.valid_at(time.time() if now is None else now):
        return None
    if peer.front_proxy:
        user = front_proxy_user(headers, config)
        if user is not None:
            return user
    return peer.client_user


def bearer_token(headers: Headers) -> str | None:
    """The token of ``Authorization: Bearer <token>`` (scheme case-insensitive), as kube parses it."""
    authorization = (headers.get("Authorization") or "").strip()
    parts = authorization.split(" ", 2)
    if len(parts) < 2 or parts[0].lower() != "bearer" or not parts[1]:
        return None
    return parts[1]


class TokenReviewer:
    """Bearer tokens checked by the local kube-apiserver (TokenReview), answers cached ``ttl`` s.

    Both "authenticated" and "not authenticated" are cached (kube's delegating authenticator does
    the same, 10 s each); failures are not. Tokens are keyed by their SHA-256, not kept as such.
    """

    def __init__(self, client: KubeClient, *, ttl: float = 10.0, max_entries: int = 4096,
                 settings: AuthSettings = AuthSettings()) -> None:
        self.client = client
        self.settings = settings
        self._cache: ExpiringCache[bytes, UserInfo | None] = ExpiringCache(ttl, max_entries)

    async def review(self, token: str) -> UserInfo | None:
        """The token's user, None if kube-apiserver says it is not valid; ``ReviewError`` if unknown."""
        key = hashlib.sha256(token.encode()).digest()
        return await self._cache.get(key, lambda: self._create(token))

    async def _create(self, token: str) -> UserInfo | None:
        review = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": token}}
        answer = await create_review(self.client, TOKEN_REVIEW_PATH, review, self.settings)
        status = answer.get("status") or {}
        user = status.get("user") or {}
        if not status.get("authenticated") or not user.get("username"):
            log.debug("token not authenticated", extra={"reason": status.get("error", "")})
            return None
        extra = {str(k): tuple(v or ()) for k, v in (user.get("extra") or {}).items()}
        return authenticated_user(user["username"], user.get("uid", ""), tuple(user.get("groups") or ()), extra)


class Authenticator:
    """Authenticates requests against the current configuration, fast enough for every request.

    ``config`` is called per request (e.g. ``lambda: watcher.config``), so a new ConfigMap applies
    at once. Certificate checks are cached per certificate until the configuration changes.
    """

    def __init__(
        self,
        config: Callable[[], AuthenticationConfig],
        tokens: TokenReviewer | None = None,
        *,
        max_certificates: int = 1024,
    ) -> None:
        self._config = config
        self._tokens = tokens
        self._max_certificates = max_certificates
        self._peers: dict[bytes, VerifiedPeer | None] = {}
        self._peers_config: AuthenticationConfig | None = None
        self._last_review_error = ""

    async def authenticate(self, peer_der: bytes | None, headers: Headers) -> UserInfo | None:
        """The request's user, or None: answer 401."""
        user = authenticate(peer_der, headers, self._config(), verify=self._verify)
        if user is not None or self._tokens is None:
            return user
        token = bearer_token(headers)
        if token is None:
            return None
        try:
            return await self._tokens.review(token)
        except ReviewError as error:
            if str(error) != self._last_review_error:  # one line per distinct failure, not per request
                log.warning("cannot check a bearer token; answering 401", extra={"reason": str(error)})
                self._last_review_error = str(error)
            return None

    def trusts(self, der: bytes) -> bool:
        """Whether a request could be authenticated with this client certificate alone (the
        connection guard serves such clients before strangers)."""
        peer = self._verify(der, self._config())
        return peer is not None and peer.valid_at(time.time())

    def _verify(self, der: bytes, config: AuthenticationConfig) -> VerifiedPeer | None:
        if config is not self._peers_config:
            self._peers.clear()
            self._peers_config = config
        try:
            return self._peers[der]
        except KeyError:
            pass
        if len(self._peers) >= self._max_certificates:
            del self._peers[next(iter(self._peers))]
        peer = self._peers[der] = verify_peer(der, config)
        return peer
