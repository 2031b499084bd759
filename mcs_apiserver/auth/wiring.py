"""Everything a server needs for TLS, authentication and authorization, built in the right order.

One object, so that ``server.py`` need not know that the ConfigMap watcher feeds both the TLS
client CAs and the authenticator, or that both reviews go to the local cluster.
"""

from __future__ import annotations

import asyncio
import contextlib
import os

from mcs_apiserver.auth.authenticate import Authenticator, TokenReviewer
from mcs_apiserver.auth.authorize import Authorizer
from mcs_apiserver.auth.config import AuthenticationConfigWatcher
from mcs_apiserver.auth.middleware import auth_middleware
from mcs_apiserver.auth.settings import AuthSettings
from mcs_apiserver.auth.webhook_callers import WebhookCallers
from mcs_apiserver.kube.client import KubeClient
from mcs_apiserver.tls import ServerTLS, TLSOptions

__all__ = ["Auth"]


class Auth:
    """Serving TLS + delegated authentication and authorization against the local cluster.

    ``client`` is the LOCAL cluster (the one whose kube-apiserver proxies to us); it needs the
    Role ``extension-apiserver-authentication-reader`` (kube-system) and the ClusterRole
    ``system:auth-delegator``. Listen with :attr:`tls` ``.context``, add :attr:`middleware`, and
    :meth:`start` before serving; :meth:`loaded` is the readiness check.
    """

    def __init__(
        self, client: KubeClient, cert_file: str | os.PathLike[str], key_file: str | os.PathLike[str],
        *, webhook_callers: WebhookCallers | None = None, tls_options: TLSOptions = TLSOptions(),
        settings: AuthSettings = AuthSettings(),
    ) -> None:
        """``webhook_callers``: require webhook calls to present a client certificate they accept
        (its CA is trusted by the TLS handshake besides the cluster's own CAs); ``tls_options``:
        ``--tls-min-version`` and ``--tls-cipher-suites``."""
        extra_ca = webhook_callers.ca_pem if webhook_callers is not None else b""
        # raises TLSConfigError: nothing to serve with
        self.tls = ServerTLS(cert_file, key_file, extra_client_ca_pem=extra_ca, options=tls_options)
        self.watcher = AuthenticationConfigWatcher(client, tls=self.tls, settings=settings)
        self.authenticator = Authenticator(lambda: self.watcher.config, TokenReviewer(client, settings=settings))
        self.authorizer = Authorizer(client, settings=settings)
        self.middleware = auth_middleware(self.authenticator, self.authorizer, webhook_callers=webhook_callers,
                                          loaded=lambda: self.watcher.loaded)
        self._webhook_callers = webhook_callers
        self._tasks: list[asyncio.Task[None]] = []

    def trusts(self, der: bytes) -> bool:
        """Whether a client certificate is one we trust: the front-proxy's, a client CA's, or a
        webhook caller's (see ``api.limits.ConnectionGuard``: their connections go first)."""
        return self.authenticator.trusts(der) or (
            self._webhook_callers is not None and self._webhook_callers.allows(der))

    def loaded(self) -> tuple[bool, str]:
        """Readiness: until the ConfigMap is read, no front-proxy request can be authenticated."""
        if self.watcher.loaded:
            return True, ""
        return False, (f"ConfigMap {self.watcher.namespace}/{self.watcher.name} not loaded yet")

    async def start(self) -> None:
        """Start watching the ConfigMap and the certificate files (returns at once)."""
        self._tasks = [
            asyncio.create_task(self.watcher.run(), name="auth-config-watcher"),
            asyncio.create_task(self.tls.run(), name="tls-reloader"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
