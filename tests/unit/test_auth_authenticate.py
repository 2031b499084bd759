"""Authentication: front proxy, client certificate and bearer token, in kube-apiserver's order."""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from multidict import CIMultiDict

from certs import pki
from mcs_apiserver.auth.settings import AuthSettings
from mcs_apiserver.auth.authenticate import (
    Authenticator,
    TokenReviewer,
    UserInfo,
    authenticate,
    bearer_token,
)
from mcs_apiserver.auth.config import AuthenticationConfig
from mcs_apiserver.auth.review import ReviewError
from mcs_apiserver.kube.client import ApiError


@pytest.fixture(scope="module")
def front_proxy_ca() -> pki.CertKey:
    return pki.new_ca("front-proxy-ca")


@pytest.fixture(scope="module")
def client_ca() -> pki.CertKey:
    return pki.new_ca("client-ca")


@pytest.fixture(scope="module")
def config(front_proxy_ca, client_ca) -> AuthenticationConfig:
    return AuthenticationConfig(
        client_ca=(client_ca.cert,),
        requestheader_ca=(front_proxy_ca.cert,),
        allowed_names=frozenset({"front-proxy-client"}),
        username_headers=("X-Remote-User",),
        group_headers=("X-Remote-Group",),
        extra_headers_prefixes=("x-remote-extra-",),
    )


@pytest.fixture(scope="module")
def proxy(front_proxy_ca) -> bytes:
    return der(pki.issue_client_cert(front_proxy_ca, common_name="front-proxy-client"))


@pytest.fixture(scope="module")
def alice(client_ca) -> bytes:
    return der(pki.issue_client_cert(client_ca, common_name="alice", organizations=["devs", "ops"]))


def der(cert_key: pki.CertKey) -> bytes:
    return cert_key.cert.public_bytes(Encoding.DER)


def headers(*pairs: tuple[str, str]) -> CIMultiDict[str]:
    return CIMultiDict(pairs)


FORGED = (("X-Remote-User", "system:admin"), ("X-Remote-Group", "system:masters"))


# --- front proxy ---------------------------------------------------------------------------------


def test_a_front_proxy_certificate_makes_the_headers_the_user(config, proxy):
    user = authenticate(proxy, headers(("X-Remote-User", "bob"), ("X-Remote-Group", "devs"),
                                       ("X-Remote-Group", "system:authenticated")), config)
    assert user == UserInfo("bob", "", ("devs", "system:authenticated"), {})


def test_header_names_are_case_insensitive(config, proxy):
    user = authenticate(proxy, headers(("x-remote-user", "bob"), ("x-REMOTE-group", "devs")), config)
    assert user is not None
    assert (user.name, user.groups) == ("bob", ("devs", "system:authenticated"))


def test_the_first_non_empty_username_header_wins(config, proxy):
    two_headers = replace(config, username_headers=("X-Remote-User", "X-User"))
    user = authenticate(proxy, headers(("X-Remote-User", ""), ("X-User", "carol")), two_headers)
    assert user is not None and user.name == "carol"


def test_each_group_header_line_is_one_group_and_empty_ones_are_dropped(config, proxy):
    user = authenticate(proxy, headers(("X-Remote-User", "bob"), ("X-Remote-Group", "a,b"),
                                       ("X-Remote-Group", ""), ("X-Remote-Group", "c")), config)
    assert user is not None and user.groups == ("a,b", "c", "system:authenticated")


def test_extra_headers_are_lower_cased_and_unescaped_and_keep_every_value(config, proxy):
    user = authenticate(proxy, headers(
        ("X-Remote-User", "bob"),
        ("X-Remote-Extra-Acme.com%2FProject", "Blue"),
        ("X-Remote-Extra-Scopes", "read"),
        ("x-remote-extra-scopes", "write"),
        ("X-Remote-Extra-Bad%zz", "kept"),
        ("X-Other", "ignored"),
    ), config)
    assert user is not None
    assert user.extra == {"acme.com/project": ("Blue",), "scopes": ("read", "write"), "bad%zz": ("kept",)}


def test_the_uid_header_counts_only_when_configured(config, proxy):
    request = headers(("X-Remote-User", "bob"), ("X-Remote-Uid", "1234"))
    user = authenticate(proxy, request, config)
    assert user is not None and user.uid == ""
    with_uid = replace(config, uid_headers=("X-Remote-Uid",))
    user = authenticate(proxy, request, with_uid)
    assert user is not None and user.uid == "1234"


def test_a_front_proxy_may_forward_the_anonymous_user_who_does_not_become_authenticated(config, proxy):
    user = authenticate(proxy, headers(("X-Remote-User", "system:anonymous"),
                                       ("X-Remote-Group", "system:unauthenticated")), config)
    assert user == UserInfo("system:anonymous", "", ("system:unauthenticated",), {})


def test_a_front_proxy_cn_outside_the_allowed_names_authenticates_no_one(config, front_proxy_ca):
    impostor = der(pki.issue_client_cert(front_proxy_ca, common_name="not-the-proxy"))
    assert authenticate(impostor, headers(*FORGED), config) is None


def test_with_no_allowed_names_any_cn_from_the_requestheader_ca_is_a_front_proxy(config, front_proxy_ca):
    any_name = replace(config, allowed_names=frozenset())
    other = der(pki.issue_client_cert(front_proxy_ca, common_name="some-proxy"))
    user = authenticate(other, headers(("X-Remote-User", "bob")), any_name)
    assert user is not None and user.name == "bob"


def test_a_front_proxy_that_names_no_user_authenticates_no_one(config, proxy):
    assert authenticate(proxy, headers(("X-Remote-Group", "system:masters")), config) is None


def test_a_requestheader_ca_certificate_not_meant_for_client_auth_is_no_front_proxy(config, front_proxy_ca):
    serving_only = pki.issue_serving_cert(front_proxy_ca, common_name="front-proxy-client",
                                          dns_names=["localhost"], ip_addresses=[])
    assert authenticate(der(serving_only), headers(*FORGED), config) is None


def test_without_a_requestheader_ca_the_headers_are_never_believed(config, proxy):
    no_front_proxy = AuthenticationConfig(client_ca=config.client_ca, username_headers=("X-Remote-User",))
    assert authenticate(proxy, headers(*FORGED), no_front_proxy) is None


# --- client certificates and forged headers --------------------------------------------------------


def test_forged_headers_without_a_certificate_authenticate_no_one(config):
    assert authenticate(None, headers(*FORGED), config) is None


def test_forged_headers_with_a_client_ca_certificate_are_ignored_for_the_certificate_user(config, alice):
    user = authenticate(alice, headers(*FORGED), config)
    assert user is not None
    assert user.name == "alice"
    assert user.groups == ("devs", "ops", "system:authenticated")
    assert user.extra == {"authentication.kubernetes.io/credential-id":
                          ("X509SHA256=" + hashlib.sha256(alice).hexdigest(),)}


def test_when_both_cas_are_one_the_front_proxy_headers_win_and_the_cn_is_the_fallback(front_proxy_ca):
    shared = AuthenticationConfig(client_ca=(front_proxy_ca.cert,), requestheader_ca=(front_proxy_ca.cert,),
                                  username_headers=("X-Remote-User",))
    cert = der(pki.issue_client_cert(front_proxy_ca, common_name="front-proxy-client"))
    with_headers = authenticate(cert, headers(("X-Remote-User", "bob")), shared)
    without_headers = authenticate(cert, headers(), shared)
    assert with_headers is not None and with_headers.name == "bob"
    assert without_headers is not None and without_headers.name == "front-proxy-client"


def test_a_certificate_from_an_unknown_ca_authenticates_no_one(config):
    stranger = der(pki.issue_client_cert(pki.new_ca("other-ca"), common_name="alice"))
    assert authenticate(stranger, headers(*FORGED), config) is None


def test_an_expired_certificate_authenticates_no_one(config, alice, proxy):
    next_year = time.time() + 400 * 86400
    assert authenticate(alice, headers(), config, now=next_year) is None
    assert authenticate(proxy, headers(("X-Remote-User", "bob")), config, now=next_year) is None


# The TLS handshake accepts any client certificate (mcs_apiserver.tls), as kube-apiserver's does: these
# are the certificates a hostile client can present, each proving nothing, as the handshake would judge.


HOUR = datetime.timedelta(hours=1)
CLIENT_AUTH = (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), False)


def _certificate(issuer: pki.CertKey | None, *, name: str = "front-proxy-client", issuer_name: str | None = None,
                 extensions: tuple[tuple[x509.ExtensionType, bool], ...] = (),
                 valid: tuple[datetime.timedelta, datetime.timedelta] = (-HOUR, HOUR)) -> bytes:
    """A client certificate signed by ``issuer`` (its own key when None: self-signed)."""
    key = pki.new_private_key()
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (x509.CertificateBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
               .issuer_name(issuer.cert.subject if issuer is not None and issuer_name is None
                            else x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer_name or name)]))
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now + valid[0]).not_valid_after(now + valid[1]))
    for extension, critical in extensions:
        builder = builder.add_extension(extension, critical=critical)
    return builder.sign(issuer.key if issuer is not None else key, hashes.SHA256()).public_bytes(Encoding.DER)


@pytest.mark.parametrize("make", [
    pytest.param(lambda ca: _certificate(None, extensions=(CLIENT_AUTH,)), id="self-signed"),
    pytest.param(lambda ca: _certificate(None, issuer_name="front-proxy-ca", extensions=(CLIENT_AUTH,)),
                 id="self-signed in the name of the CA"),
    pytest.param(lambda ca: _certificate(pki.new_ca("front-proxy-ca"), extensions=(CLIENT_AUTH,)),
                 id="another CA of the same name"),
    pytest.param(lambda ca: _certificate(_intermediate(ca), extensions=(CLIENT_AUTH,)),
                 id="issued by an intermediate of the CA, which the server does not trust"),
    pytest.param(lambda ca: _certificate(ca, extensions=(CLIENT_AUTH,), valid=(-48 * HOUR, -HOUR)), id="expired"),
    pytest.param(lambda ca: _certificate(ca, extensions=(CLIENT_AUTH,), valid=(HOUR, 48 * HOUR)), id="not yet valid"),
    pytest.param(lambda ca: _certificate(ca, extensions=((x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                                                          False),)), id="serverAuth only"),
    pytest.param(lambda ca: _certificate(ca, extensions=(CLIENT_AUTH, (x509.UnrecognizedExtension(
        x509.ObjectIdentifier("1.3.6.1.4.1.99999.1"), b"\x05\x00"), True))), id="an unknown critical extension"),
])
def test_a_hostile_front_proxy_certificate_authenticates_no_one(config, front_proxy_ca, make):
    assert authenticate(make(front_proxy_ca), headers(*FORGED), config) is None


def _intermediate(ca: pki.CertKey) -> pki.CertKey:
    """A CA issued by ``ca``: the server trusts ``ca`` alone, so what it issues proves nothing."""
    key = pki.new_private_key()
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "intermediate")]))
            .issuer_name(ca.cert.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - HOUR).not_valid_after(now + HOUR)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(ca.key, hashes.SHA256()))
    return pki.CertKey(cert, key)


def test_a_certificate_is_no_better_than_its_ca_and_an_expired_ca_proves_nothing(front_proxy_ca):
    key = pki.new_private_key()
    now = datetime.datetime.now(datetime.timezone.utc)
    expired = pki.CertKey((x509.CertificateBuilder().subject_name(front_proxy_ca.cert.subject)
                           .issuer_name(front_proxy_ca.cert.subject).public_key(key.public_key())
                           .serial_number(x509.random_serial_number())
                           .not_valid_before(now - 48 * HOUR).not_valid_after(now - HOUR)
                           .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                           .sign(key, hashes.SHA256())), key)
    config = AuthenticationConfig(requestheader_ca=(expired.cert,), username_headers=("X-Remote-User",))
    proxy = _certificate(expired, extensions=(CLIENT_AUTH,), valid=(-48 * HOUR, HOUR))
    assert authenticate(proxy, headers(*FORGED), config) is None


def test_a_ca_without_key_usage_as_openssl_makes_them_is_trusted_as_go_trusts_it():
    key = pki.new_private_key()
    now = datetime.datetime.now(datetime.timezone.utc)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "openssl-ca")])
    ca = pki.CertKey((x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                      .serial_number(x509.random_serial_number())
                      .not_valid_before(now - HOUR).not_valid_after(now + 48 * HOUR)
                      .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=False)
                      .sign(key, hashes.SHA256())), key)
    config = AuthenticationConfig(client_ca=(ca.cert,))
    user = authenticate(_certificate(ca, name="carol"), headers(), config)
    assert user is not None and user.name == "carol"


def test_bytes_that_are_not_a_certificate_authenticate_no_one(config):
    assert authenticate(b"\x30\x03garbage", headers(*FORGED), config) is None


# --- bearer tokens ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("authorization", "token"), [
    ("Bearer abc.def", "abc.def"),
    ("bearer abc", "abc"),
    ("  Bearer abc  ", "abc"),
    ("Bearer abc extra", "abc"),
    ("Basic YWxpY2U6cHc=", None),
    ("Bearer", None),
    ("Bearer  abc", None),  # kube refuses a token after two spaces
    ("", None),
])
def test_bearer_tokens_are_parsed_like_kube_apiserver(authorization, token):
    assert bearer_token(headers(("Authorization", authorization))) == token


class ReviewClient:
    """Answers each POSTed review with ``answer(body)`` (raised if it is an exception)."""

    def __init__(self, answer: Callable[[dict[str, Any]], Any]) -> None:
        self.answer = answer
        self.bodies: list[dict[str, Any]] = []

    async def json(self, method: str, path: str, *, body: Any = None, **_: Any) -> Any:
        assert (method, path) == ("POST", "/apis/authentication.k8s.io/v1/tokenreviews")
        self.bodies.append(body)
        await asyncio.sleep(0)
        result = self.answer(body)
        if isinstance(result, Exception):
            raise result
        return result


def token_answer(body: dict[str, Any]) -> dict[str, Any]:
    if body["spec"]["token"] != "good":
        return {**body, "status": {"authenticated": False, "error": "invalid bearer token"}}
    return {**body, "status": {"authenticated": True, "user": {
        "username": "system:serviceaccount:ns:sa", "uid": "u-1",
        "groups": ["system:serviceaccounts", "system:serviceaccounts:ns", "system:authenticated"],
        "extra": {"authentication.kubernetes.io/pod-name": ["p"]}}}}


#: Retries without waiting.
FAST = AuthSettings(review_first_retry_delay=0.0, config_first_backoff=0.001)


async def test_a_valid_token_is_the_user_kube_apiserver_says_it_is():
    client = ReviewClient(token_answer)
    user = await TokenReviewer(client, settings=FAST).review("good")
    assert user == UserInfo("system:serviceaccount:ns:sa", "u-1",
                            ("system:serviceaccounts", "system:serviceaccounts:ns", "system:authenticated"),
                            {"authentication.kubernetes.io/pod-name": ("p",)})
    assert client.bodies == [{"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
                              "spec": {"token": "good"}}]


async def test_token_answers_good_and_bad_are_cached():
    client = ReviewClient(token_answer)
    reviewer = TokenReviewer(client, settings=FAST)
    for _ in range(3):
        assert await reviewer.review("good") is not None
        assert await reviewer.review("bad") is None
    assert len(client.bodies) == 2


async def test_concurrent_requests_with_one_token_cause_one_review():
    client = ReviewClient(token_answer)
    reviewer = TokenReviewer(client, settings=FAST)
    users = await asyncio.gather(*(reviewer.review("good") for _ in range(50)))
    assert {u.name for u in users if u} == {"system:serviceaccount:ns:sa"}
    assert len(client.bodies) == 1


async def test_a_failed_review_is_not_cached_and_transient_errors_are_retried():
    answers: list[Any] = [ApiError(503, None, "unavailable"), ApiError(503, None, "unavailable"),
                          ApiError(503, None, "unavailable")]
    client = ReviewClient(lambda body: answers.pop(0) if answers else token_answer(body))
    reviewer = TokenReviewer(client, settings=FAST)
    with pytest.raises(ReviewError):
        await reviewer.review("good")
    assert len(client.bodies) == 3
    assert await reviewer.review("good") is not None


async def test_a_forbidden_review_says_which_cluster_role_is_missing():
    client = ReviewClient(lambda body: ApiError(403, {"kind": "Status", "message": "tokenreviews is forbidden"}))
    with pytest.raises(ReviewError, match="system:auth-delegator"):
        await TokenReviewer(client, settings=FAST).review("good")
    assert len(client.bodies) == 1  # a permission error is not worth retrying


async def test_the_authenticator_tries_the_token_when_no_certificate_proves_anything(config):
    authenticator = Authenticator(lambda: config, TokenReviewer(ReviewClient(token_answer), settings=FAST))
    user = await authenticator.authenticate(None, headers(("Authorization", "Bearer good")))
    assert user is not None and user.name == "system:serviceaccount:ns:sa"
    assert await authenticator.authenticate(None, headers(("Authorization", "Bearer bad"))) is None
    assert await authenticator.authenticate(None, headers()) is None


async def test_a_front_proxy_user_wins_over_a_bearer_token(config, proxy):
    client = ReviewClient(token_answer)
    authenticator = Authenticator(lambda: config, TokenReviewer(client, settings=FAST))
    user = await authenticator.authenticate(proxy, headers(("X-Remote-User", "bob"), ("Authorization", "Bearer good")))
    assert user is not None and user.name == "bob"
    assert client.bodies == []


async def test_an_unreachable_token_review_answers_401_and_is_logged_once(config, caplog):
    client = ReviewClient(lambda body: ApiError(500, None, "etcd is down"))
    authenticator = Authenticator(lambda: config, TokenReviewer(client, settings=FAST))
    caplog.set_level(logging.WARNING, logger="mcs_apiserver.auth.authenticate")
    for _ in range(3):
        assert await authenticator.authenticate(None, headers(("Authorization", "Bearer good"))) is None
    assert len(caplog.records) == 1


async def test_a_new_configuration_applies_to_a_certificate_already_seen(config, proxy):
    current = [config]
    authenticator = Authenticator(lambda: current[0])
    request = headers(("X-Remote-User", "bob"))
    assert await authenticator.authenticate(proxy, request) is not None
    current[0] = AuthenticationConfig(client_ca=config.client_ca, username_headers=config.username_headers)
    assert await authenticator.authenticate(proxy, request) is None



def test_the_authenticator_trusts_the_certificates_a_request_could_be_authenticated_with(config, proxy, alice):
    """What the connection guard asks: whose connections go before strangers'."""
    authenticator = Authenticator(lambda: config)
    assert authenticator.trusts(proxy) and authenticator.trusts(alice)
    assert not authenticator.trusts(der(pki.issue_client_cert(pki.new_ca("other-ca"), common_name="alice")))
