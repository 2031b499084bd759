"""Delegated authentication and authorization against the real kube-apiservers of the local ClusterSet.

The ConfigMap, the TokenReviews and the SubjectAccessReviews are the real ones; the front-proxy
client certificate is the one the member's kube-apiserver itself presents to aggregated servers.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from certs import pki
from mcs_apiserver.auth.authenticate import TokenReviewer, UserInfo
from mcs_apiserver.auth.authorize import Authorizer, request_attributes
from mcs_apiserver.auth.config import AuthenticationConfigWatcher
from mcs_apiserver.auth.wiring import Auth
from mcs_apiserver.auth.middleware import ATTRIBUTES, USER
from mcs_apiserver.local import cluster
from mcs_apiserver.kube.client import KubeClient
from mcs_apiserver.tls import ServerTLS

pytestmark = pytest.mark.e2e

G = "views.multicluster.x-k8s.io"
SAR_PATH = "/apis/authorization.k8s.io/v1/subjectaccessreviews"


@pytest.fixture
async def client(clusterset) -> AsyncIterator[KubeClient]:
    admin = cluster.admin_client(clusterset.state_dir, clusterset.state.members[0])
    yield admin
    await admin.close()


def pki_dir(clusterset) -> Path:
    return clusterset.state_dir / "pki"


@contextlib.asynccontextmanager
async def running(coroutine) -> AsyncIterator[None]:
    task = asyncio.create_task(coroutine)
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


class CountingClient:
    """The admin client, counting the SubjectAccessReviews it creates."""

    def __init__(self, client: KubeClient) -> None:
        self.client = client
        self.reviews = 0

    async def json(self, method: str, path: str, **kwargs: Any) -> Any:
        if path == SAR_PATH:
            self.reviews += 1
        return await self.client.json(method, path, **kwargs)


async def test_the_watcher_loads_the_real_configmap_and_trusts_its_cas_in_tls(clusterset, client):
    certs = pki_dir(clusterset)
    tls = ServerTLS(certs / "mcs-apiserver-serving.crt", certs / "mcs-apiserver-serving.key")
    watcher = AuthenticationConfigWatcher(client, tls=tls)
    async with running(watcher.run()):
        await asyncio.wait_for(watcher.wait_loaded(), 30)

    config = watcher.config
    assert pki.load_certificate(certs / "ca.crt") in config.client_ca
    assert config.requestheader_ca == (pki.load_certificate(certs / "front-proxy-ca.crt"),)
    assert config.allowed_names == frozenset({"front-proxy-client"})
    assert config.username_headers == ("X-Remote-User",)
    assert config.group_headers == ("X-Remote-Group",)
    assert config.extra_headers_prefixes == ("x-remote-extra-",)
    trusted = {c["subject"][0][0][1] for c in tls.current.get_ca_certs()}
    assert {"mcs-apiserver-local-cluster-ca", "mcs-apiserver-local-front-proxy-ca"} <= trusted


async def test_a_subject_access_review_allows_the_admin_and_denies_a_user_without_rbac(client):
    authorizer = Authorizer(client, allowed_groups=())  # no local shortcut: really ask
    attributes = request_attributes("GET", f"/apis/{G}/v1alpha1/namespaces/default/serviceimports", {})
    admin = UserInfo("kubernetes-admin", groups=("system:masters", "system:authenticated"))
    nobody = UserInfo(f"nobody-{secrets.token_hex(4)}", groups=("system:authenticated",))

    assert (await authorizer.authorize(admin, attributes)).allowed
    assert not (await authorizer.authorize(nobody, attributes)).allowed


async def test_a_denial_is_cached_until_its_ttl_even_after_rbac_changes(client):
    counting = CountingClient(client)
    authorizer = Authorizer(counting, ttl=1.0)
    user = UserInfo(f"bob-{secrets.token_hex(4)}", groups=("system:authenticated",))
    attributes = request_attributes("GET", f"/apis/{G}/v1alpha1/namespaces/default/serviceimports", {})
    role = f"auth-e2e-{secrets.token_hex(4)}"

    assert not (await authorizer.authorize(user, attributes)).allowed
    await client.json("POST", "/apis/rbac.authorization.k8s.io/v1/clusterroles", body={
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": role},
        "rules": [{"apiGroups": [G], "resources": ["serviceimports"], "verbs": ["get", "list", "watch"]}]})
    await client.json("POST", "/apis/rbac.authorization.k8s.io/v1/namespaces/default/rolebindings", body={
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": role},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user.name}]})
    try:
        assert not (await authorizer.authorize(user, attributes)).allowed
        assert counting.reviews == 1

        async with asyncio.timeout(15):
            while not (await authorizer.authorize(user, attributes)).allowed:
                await asyncio.sleep(0.2)
        assert counting.reviews >= 2
    finally:
        await client.json("DELETE", f"/apis/rbac.authorization.k8s.io/v1/namespaces/default/rolebindings/{role}")
        await client.json("DELETE", f"/apis/rbac.authorization.k8s.io/v1/clusterroles/{role}")


async def test_a_real_service_account_token_is_authenticated_by_token_review(client):
    name = f"auth-e2e-{secrets.token_hex(4)}"
    account = await client.json("POST", "/api/v1/namespaces/default/serviceaccounts", body={
        "apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name}})
    try:
        request = await client.json("POST", f"/api/v1/namespaces/default/serviceaccounts/{name}/token", body={
            "apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {"expirationSeconds": 600}})
        token = request["status"]["token"]
        reviewer = TokenReviewer(client)

        user = await reviewer.review(token)
        assert user is not None
        assert user.name == f"system:serviceaccount:default:{name}"
        assert user.uid == account["metadata"]["uid"]
        assert {"system:serviceaccounts", "system:serviceaccounts:default", "system:authenticated"} <= set(user.groups)
        assert await reviewer.review(token[:-4] + "AAAA") is None
    finally:
        await client.json("DELETE", f"/api/v1/namespaces/default/serviceaccounts/{name}")


async def test_the_real_front_proxy_certificate_and_headers_pass_the_whole_chain(clusterset, client):
    certs = pki_dir(clusterset)
    auth = Auth(client, certs / "mcs-apiserver-serving.crt", certs / "mcs-apiserver-serving.key")

    async def whoami(request: web.Request) -> web.Response:
        return web.json_response({"user": request[USER].name, "verb": request[ATTRIBUTES].verb})

    app = web.Application(middlewares=[auth.middleware])
    app.router.add_get(f"/apis/{G}/v1alpha1/{{tail:.+}}", whoami)
    runner = web.AppRunner(app)
    await runner.setup()
    await auth.start()
    try:
        await asyncio.wait_for(auth.watcher.wait_loaded(), 30)
        assert auth.loaded() == (True, "")
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=auth.tls.context)
        await site.start()
        port = runner.addresses[0][1]
        front_proxy = ssl.create_default_context(cafile=certs / "mcs-apiserver-ca.crt")
        front_proxy.load_cert_chain(certs / "front-proxy-client.crt", certs / "front-proxy-client.key")
        url = f"https://127.0.0.1:{port}/apis/{G}/v1alpha1/namespaces/default/serviceimports"

        async with aiohttp.ClientSession() as session:
            async with session.get(url, ssl=front_proxy, headers=[
                    ("X-Remote-User", "kubernetes-admin"), ("X-Remote-Group", "system:masters")]) as response:
                assert (response.status, await response.json()) == (200, {"user": "kubernetes-admin", "verb": "list"})
            async with session.get(url, ssl=front_proxy, headers={"X-Remote-User": "bob"}) as response:
                assert response.status == 403
                assert (await response.json())["message"] == (
                    'serviceimports.views.multicluster.x-k8s.io is forbidden: User "bob" cannot list resource '
                    '"serviceimports" in API group "views.multicluster.x-k8s.io" in the namespace "default"')
            no_cert = ssl.create_default_context(cafile=certs / "mcs-apiserver-ca.crt")
            async with session.get(url, ssl=no_cert, headers={"X-Remote-User": "kubernetes-admin"}) as response:
                assert response.status == 401
    finally:
        await auth.stop()
        await runner.cleanup()


async def test_until_the_authentication_config_is_loaded_requests_get_503_with_retry_after_and_health_works(
        clusterset, client):
    certs = pki_dir(clusterset)
    auth = Auth(client, certs / "mcs-apiserver-serving.crt", certs / "mcs-apiserver-serving.key")

    async def whoami(request: web.Request) -> web.Response:
        return web.json_response({"user": request[USER].name})

    async def alive(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application(middlewares=[auth.middleware])
    app.router.add_get("/healthz", alive)
    app.router.add_get("/metrics", whoami)
    app.router.add_get(f"/apis/{G}/v1alpha1/{{tail:.+}}", whoami)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=auth.tls.context)
    await site.start()  # serving, and the ConfigMap not read yet: what the first moments of serve are
    port = runner.addresses[0][1]
    no_cert = ssl.create_default_context(cafile=certs / "mcs-apiserver-ca.crt")
    front_proxy = ssl.create_default_context(cafile=certs / "mcs-apiserver-ca.crt")
    front_proxy.load_cert_chain(certs / "front-proxy-client.crt", certs / "front-proxy-client.key")
    admin = [("X-Remote-User", "kubernetes-admin"), ("X-Remote-Group", "system:masters")]
    base = f"https://127.0.0.1:{port}"
    imports = f"{base}/apis/{G}/v1alpha1/namespaces/default/serviceimports"
    try:
        assert auth.loaded()[0] is False
        async with aiohttp.ClientSession() as session:
            for url in (imports, f"{base}/metrics"):
                async with session.get(url, ssl=no_cert, headers=admin) as response:
                    assert response.status == 503, url  # not the 401 it gets once the config is loaded
                    assert response.headers["Retry-After"] == "1"
                    body = await response.json()
                    assert (body["kind"], body["reason"], body["code"]) == ("Status", "ServiceUnavailable", 503)
                    assert body["details"]["retryAfterSeconds"] == 1
            async with session.get(base + "/healthz", ssl=no_cert) as response:
                assert (response.status, await response.text()) == (200, "ok")
            # The handshake does not judge client certificates, so what the aggregator sends (its
            # front-proxy certificate, whose CA is not known yet) gets the same 503, never a 500.
            async with session.get(imports, ssl=front_proxy, headers=admin) as response:
                assert response.status == 503 and response.headers["Retry-After"] == "1"

            await auth.start()
            await asyncio.wait_for(auth.watcher.wait_loaded(), 30)
            async with session.get(imports, ssl=front_proxy, headers=admin) as response:
                assert (response.status, await response.json()) == (200, {"user": "kubernetes-admin"})
            async with session.get(imports, ssl=no_cert, headers=admin) as response:
                assert response.status == 401
    finally:
        await auth.stop()
        await runner.cleanup()
