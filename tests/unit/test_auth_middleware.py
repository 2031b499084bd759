"""The auth middleware on a real TLS aiohttp server, with clients presenting real certificates.

kube-apiserver is played by its certificates (front-proxy client, client CA) and by scripted
TokenReview/SubjectAccessReview answers; everything between the socket and the handler is real.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from certs import pki
from mcs_apiserver.auth.settings import AuthSettings
from mcs_apiserver.auth.authenticate import Authenticator, TokenReviewer
from mcs_apiserver.auth.authorize import Authorizer
from mcs_apiserver.auth.config import AuthenticationConfig
from mcs_apiserver.auth.middleware import ATTRIBUTES, USER, auth_middleware
from mcs_apiserver.kube.client import ApiError
from mcs_apiserver.tls import ServerTLS

G = "views.multicluster.x-k8s.io"
P = f"/apis/{G}/v1alpha1"


class Cluster:
    """The local kube-apiserver as the reviews see it: alice and system:serviceaccount:ns:sa may do
    anything, nobody else anything; the token "good" belongs to the service account."""

    def __init__(self) -> None:
        self.reviews: list[dict[str, Any]] = []
        self.down = False

    async def json(self, method: str, path: str, *, body: Any = None, **_: Any) -> Any:
        self.reviews.append(body)
        if self.down:
            raise ApiError(503, None, "the server is currently unable to handle the request")
        if body["kind"] == "TokenReview":
            if body["spec"]["token"] != "good":
                return {**body, "status": {"authenticated": False}}
            return {**body, "status": {"authenticated": True, "user": {
                "username": "system:serviceaccount:ns:sa", "groups": ["system:serviceaccounts"]}}}
        allowed = body["spec"]["user"] in ("alice", "system:serviceaccount:ns:sa")
        return {**body, "status": {"allowed": allowed}}


class PKI:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.serving_ca = pki.new_ca("serving-ca")
        self.client_ca = pki.new_ca("client-ca")
        self.front_proxy_ca = pki.new_ca("front-proxy-ca")
        dns, ips = pki.serving_names("mcs-apiserver", "mcs-system")
        serving = pki.issue_serving_cert(self.serving_ca, common_name="mcs", dns_names=dns, ip_addresses=ips)
        pki.write_cert_key(serving, root / "tls.crt", root / "tls.key")

    def client(self, cert_key: pki.CertKey | None = None) -> ssl.SSLContext:
        context = ssl.create_default_context(cadata=self.serving_ca.cert_pem().decode())
        if cert_key is not None:
            name = f"client-{cert_key.cert.serial_number}"
            pki.write_cert_key(cert_key, self.root / f"{name}.crt", self.root / f"{name}.key")
            context.load_cert_chain(self.root / f"{name}.crt", self.root / f"{name}.key")
        return context

    def front_proxy(self, common_name: str = "front-proxy-client") -> ssl.SSLContext:
        return self.client(pki.issue_client_cert(self.front_proxy_ca, common_name=common_name))


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    return PKI(tmp_path_factory.mktemp("pki"))


#: Retries without waiting.
FAST = AuthSettings(review_first_retry_delay=0.0, config_first_backoff=0.001)


async def whoami(request: web.Request) -> web.Response:
    user, attributes = request[USER], request[ATTRIBUTES]
    return web.json_response({"user": user.name, "groups": list(user.groups), "extra": dict(user.extra),
                              "verb": attributes.verb})


async def unauthenticated(request: web.Request) -> web.Response:
    return web.json_response({"user": request.get("user")})


class Server:
    def __init__(self, port: int, cluster: Cluster) -> None:
        self.port = port
        self.cluster = cluster

    async def request(self, context: ssl.SSLContext, path: str, *, method: str = "GET",
                      headers: dict[str, str] | list[tuple[str, str]] | None = None) -> tuple[int, Any]:
        url = f"https://127.0.0.1:{self.port}{path}"
        async with aiohttp.ClientSession() as session, session.request(
            method, url, ssl=context, headers=headers
        ) as response:
            return response.status, await response.json()


@contextlib.asynccontextmanager
async def serving(tls: ServerTLS, config: AuthenticationConfig, **options: Any) -> AsyncIterator[Server]:
    """The middleware (``options`` go to :func:`auth_middleware`) on a TLS server with the health,
    webhook, non-resource and API routes, answering who the request is from."""
    cluster = Cluster()
    middleware = auth_middleware(Authenticator(lambda: config, TokenReviewer(cluster, settings=FAST)),
                                 Authorizer(cluster, settings=FAST), **options)
    app = web.Application(middlewares=[middleware])
    app.router.add_get("/healthz", unauthenticated)
    app.router.add_get("/readyz/{check}", unauthenticated)
    app.router.add_post("/webhooks/validate/serviceexports", unauthenticated)
    app.router.add_get("/openapi/v2", whoami)
    app.router.add_get("/metrics", whoami)
    app.router.add_route("*", P + "/{tail:.+}", whoami)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=tls.context)
    await site.start()
    try:
        yield Server(runner.addresses[0][1], cluster)
    finally:
        await runner.cleanup()


@pytest.fixture
async def server(certs: PKI) -> AsyncIterator[Server]:
    config = AuthenticationConfig(
        client_ca=(certs.client_ca.cert,),
        requestheader_ca=(certs.front_proxy_ca.cert,),
        allowed_names=frozenset({"front-proxy-client"}),
        username_headers=("X-Remote-User",),
        group_headers=("X-Remote-Group",),
        extra_headers_prefixes=("x-remote-extra-",),
    )
    tls = ServerTLS(certs.root / "tls.crt", certs.root / "tls.key", client_ca_pem=config.client_ca_bundle())
    async with serving(tls, config) as server:
        yield server


UNAUTHORIZED = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": "Unauthorized", "reason": "Unauthorized", "code": 401}
FORGED = {"X-Remote-User": "alice", "X-Remote-Group": "system:masters"}


async def test_a_front_proxy_certificate_with_headers_is_the_user_in_the_headers(server, certs):
    status, body = await server.request(certs.front_proxy(), f"{P}/serviceimports", headers=[
        ("X-Remote-User", "alice"), ("X-Remote-Group", "devs"), ("X-Remote-Group", "ops"),
        ("X-Remote-Extra-Acme.com%2Fteam", "blue")])
    assert status == 200
    assert body == {"user": "alice", "groups": ["devs", "ops", "system:authenticated"],
                    "extra": {"acme.com/team": ["blue"]}, "verb": "list"}


async def test_forged_identity_headers_without_a_certificate_get_401(server, certs):
    status, body = await server.request(certs.client(), f"{P}/serviceimports", headers=FORGED)
    assert (status, body) == (401, UNAUTHORIZED)
    assert server.cluster.reviews == []


async def test_forged_identity_headers_with_a_client_ca_certificate_are_ignored(server, certs):
    bob = pki.issue_client_cert(certs.client_ca, common_name="bob", organizations=["devs"])
    status, body = await server.request(certs.client(bob), f"{P}/namespaces/ns/serviceimports/x", headers=FORGED)
    assert status == 403
    assert body["message"] == (
        'serviceimports.views.multicluster.x-k8s.io "x" is forbidden: User "bob" cannot get resource '
        '"serviceimports" in API group "views.multicluster.x-k8s.io" in the namespace "ns"')
    assert server.cluster.reviews[0]["spec"]["user"] == "bob"
    assert server.cluster.reviews[0]["spec"]["groups"] == ["devs", "system:authenticated"]


async def test_a_client_ca_certificate_is_its_cn_and_organizations(server, certs):
    alice = pki.issue_client_cert(certs.client_ca, common_name="alice", organizations=["devs"])
    status, body = await server.request(certs.client(alice), f"{P}/serviceimports", headers={"X-Remote-User": "x"})
    assert status == 200
    assert (body["user"], body["groups"]) == ("alice", ["devs", "system:authenticated"])


async def test_a_front_proxy_certificate_whose_cn_is_not_allowed_gets_401(server, certs):
    status, body = await server.request(certs.front_proxy("not-the-aggregator"), f"{P}/serviceimports",
                                        headers=FORGED)
    assert (status, body) == (401, UNAUTHORIZED)


async def test_a_certificate_from_an_unknown_ca_gets_kube_apiservers_401_even_with_front_proxy_headers(server, certs):
    """The handshake accepts it, as kube-apiserver's does; the authenticator refuses it."""
    stranger = pki.issue_client_cert(pki.new_ca("front-proxy-ca"), common_name="front-proxy-client")
    status, body = await server.request(certs.client(stranger), f"{P}/serviceimports",
                                        headers={"X-Remote-User": "admin", "X-Remote-Group": "system:masters"})
    assert (status, body) == (401, UNAUTHORIZED)


async def test_a_bearer_token_is_checked_with_a_token_review(server, certs):
    status, body = await server.request(certs.client(), f"{P}/serviceimports?watch=true",
                                        headers={"Authorization": "Bearer good"})
    assert status == 200
    assert (body["user"], body["verb"]) == ("system:serviceaccount:ns:sa", "watch")
    status, body = await server.request(certs.client(), f"{P}/serviceimports",
                                        headers={"Authorization": "Bearer forged"})
    assert (status, body) == (401, UNAUTHORIZED)


async def test_a_denied_request_gets_kube_apiservers_403_status(server, certs):
    status, body = await server.request(certs.front_proxy(), f"{P}/clustersets", headers={"X-Remote-User": "bob"})
    assert status == 403
    assert body == {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": 'clustersets.views.multicluster.x-k8s.io is forbidden: User "bob" cannot list resource '
                   '"clustersets" in API group "views.multicluster.x-k8s.io" at the cluster scope',
        "reason": "Forbidden", "details": {"group": G, "kind": "clustersets"}, "code": 403}


async def test_an_authorizer_that_cannot_decide_gives_500_not_403(server, certs):
    server.cluster.down = True
    status, body = await server.request(certs.front_proxy(), f"{P}/clustersets", headers={"X-Remote-User": "bob"})
    assert status == 500
    assert body["reason"] == "InternalError"
    assert "SubjectAccessReview" in body["message"]


async def test_the_aggregator_reads_openapi_without_groups_and_without_a_review(server, certs):
    status, body = await server.request(certs.front_proxy(), "/openapi/v2",
                                        headers={"X-Remote-User": "system:aggregator"})
    assert (status, body["user"]) == (200, "system:aggregator")
    assert server.cluster.reviews == []


async def test_non_resource_paths_other_than_openapi_are_reviewed(server, certs):
    status, _ = await server.request(certs.front_proxy(), "/metrics", headers={"X-Remote-User": "bob"})
    assert status == 403
    assert server.cluster.reviews[0]["spec"]["nonResourceAttributes"] == {"path": "/metrics", "verb": "get"}


@pytest.mark.parametrize("path", ["/healthz", "/readyz/members-synced"])
async def test_health_paths_need_no_credentials(server, certs, path):
    assert await server.request(certs.client(), path) == (200, {"user": None})


async def test_webhooks_need_no_front_proxy_certificate(server, certs):
    status, body = await server.request(certs.client(), "/webhooks/validate/serviceexports", method="POST",
                                        headers=FORGED)
    assert (status, body) == (200, {"user": None})


async def test_a_path_that_only_starts_like_a_webhook_is_not_exempt(server, certs):
    _, writer = reader_writer = await asyncio.open_connection("127.0.0.1", server.port, ssl=certs.client())
    writer.write(f"GET /webhooks/../{P[1:]}/serviceimports HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                 "X-Remote-User: alice\r\n\r\n".encode())
    status_line = await reader_writer[0].readline()
    writer.close()
    assert status_line.split()[1] == b"401"


async def test_an_unknown_path_without_credentials_gets_401_not_404(server, certs):
    assert await server.request(certs.client(), "/nowhere") == (401, UNAUTHORIZED)


async def test_repeated_requests_are_decided_from_the_cache(server, certs):
    context = certs.front_proxy()
    for _ in range(5):
        status, _ = await server.request(context, f"{P}/serviceimports", headers={"X-Remote-User": "alice"})
        assert status == 200
    assert len(server.cluster.reviews) == 1


# --- webhook callers (serve --webhook-client-ca-file) -------------------------------------------------


@pytest.fixture
async def guarded(certs: PKI) -> AsyncIterator[tuple[Server, pki.CertKey]]:
    """A server that requires webhook callers to present a certificate of their own CA, named
    kube-apiserver-webhook-client; yields it with that CA."""
    from mcs_apiserver.auth.webhook_callers import WebhookCallers

    webhook_ca = pki.new_ca("webhook-client-ca")
    callers = WebhookCallers(webhook_ca.cert_pem(), ["kube-apiserver-webhook-client"])
    config = AuthenticationConfig(client_ca=(certs.client_ca.cert,), requestheader_ca=(certs.front_proxy_ca.cert,),
                                  allowed_names=frozenset({"front-proxy-client"}), username_headers=("X-Remote-User",))
    tls = ServerTLS(certs.root / "tls.crt", certs.root / "tls.key", client_ca_pem=config.client_ca_bundle(),
                    extra_client_ca_pem=callers.ca_pem)
    async with serving(tls, config, webhook_callers=callers) as server:
        yield server, webhook_ca


WEBHOOK_UNAUTHORIZED = {**UNAUTHORIZED,
                        "message": "Unauthorized: webhook calls must present a client certificate this server trusts"}


async def test_with_required_webhook_authentication_the_callers_certificate_gets_through(guarded, certs):
    server, webhook_ca = guarded
    caller = pki.issue_client_cert(webhook_ca, common_name="kube-apiserver-webhook-client")
    status, body = await server.request(certs.client(caller), "/webhooks/validate/serviceexports", method="POST")
    assert (status, body) == (200, {"user": None})


async def test_with_required_webhook_authentication_anyone_else_gets_401_and_learns_nothing(guarded, certs):
    server, webhook_ca = guarded
    strangers = [
        certs.client(),  # no certificate
        certs.client(pki.issue_client_cert(webhook_ca, common_name="someone-else")),  # name not allowed
        certs.client(pki.issue_client_cert(certs.client_ca, common_name="kube-apiserver-webhook-client")),  # other CA
        certs.front_proxy(),  # even the aggregator's certificate is not a webhook caller's
    ]
    for context in strangers:
        status, body = await server.request(context, "/webhooks/validate/serviceexports", method="POST")
        assert (status, body) == (401, WEBHOOK_UNAUTHORIZED)


async def test_with_required_webhook_authentication_health_probes_still_need_nothing(guarded, certs):
    server, _ = guarded
    assert await server.request(certs.client(), "/healthz") == (200, {"user": None})


@pytest.fixture
async def starting(certs: PKI) -> AsyncIterator[tuple[Server, list[bool]]]:
    """A server whose authentication config is not loaded until the test flips ``loaded[0]``."""
    loaded = [False]
    tls = ServerTLS(certs.root / "tls.crt", certs.root / "tls.key")
    config = AuthenticationConfig(client_ca=(certs.client_ca.cert,))
    async with serving(tls, config, loaded=lambda: loaded[0]) as server:
        yield server, loaded


async def test_before_the_authentication_config_is_loaded_a_request_gets_503_and_retry_after_never_500(
        starting, certs):
    server, loaded = starting
    url = f"https://127.0.0.1:{server.port}{P}/serviceimports"
    async with aiohttp.ClientSession() as session, session.get(
            url, ssl=certs.client(), headers={"Authorization": "Bearer good"}) as response:
        assert (response.status, response.headers["Retry-After"]) == (503, "1")
        body = await response.json()
    assert (body["reason"], body["code"], body["details"]) == ("ServiceUnavailable", 503, {"retryAfterSeconds": 1})
    assert server.cluster.reviews == []  # nothing asked of the cluster before
    assert (await server.request(certs.client(), "/healthz"))[0] == 200
    assert (await server.request(certs.client(), "/readyz/views"))[0] == 200
    assert (await server.request(certs.client(), "/webhooks/validate/serviceexports", method="POST"))[0] == 200
    loaded[0] = True
    status, body = await server.request(certs.client(), f"{P}/serviceimports", headers={"Authorization": "Bearer good"})
    assert (status, body["user"]) == (200, "system:serviceaccount:ns:sa")
