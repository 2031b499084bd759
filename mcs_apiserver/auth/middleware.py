"""The aiohttp middleware: authenticate, then authorize, every request kube-apiserver proxies to us.

It sits in front of every LIST and WATCH, so the common case (a known front-proxy certificate, a
cached decision) is a few dictionary lookups. Two kinds of route skip it:

* health (``/healthz``, ``/readyz``, ``/livez`` and below): kubelet probes carry no credentials;
* webhooks (``/webhooks/``): kube-apiserver calls admission webhooks without its front-proxy
  certificate; the AdmissionReview body states the user. When the server is given
  ``webhook_callers`` (``serve --webhook-client-ca-file``), a webhook call must present a client
  certificate those accept, or it gets 401 before anything else happens
  (``auth.webhook_callers``).

Exemption is decided by the *route that matched* (its registered path), not by the raw request
path: a path that merely starts like a webhook path can never reach another handler unchecked.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from mcs_apiserver.kube.requestinfo import REQUEST_INFO, RequestInfoError, info_of
from mcs_apiserver.kube.status import (internal_error, retry_after_headers, service_unavailable, status_response,
                                       unauthorized)
from mcs_apiserver.auth.authenticate import Authenticator, UserInfo
from mcs_apiserver.auth.authorize import Authorizer, forbidden_status
from mcs_apiserver.auth.review import ReviewError
from mcs_apiserver.auth.webhook_callers import WebhookCallers
from mcs_apiserver.tls import peer_certificate_der

__all__ = ["ATTRIBUTES", "HEALTH_PATHS", "USER", "auth_middleware"]

log = logging.getLogger("mcs_apiserver.auth.middleware")

HEALTH_PATHS = ("/healthz", "/readyz", "/livez")
WEBHOOK_PREFIX = "/webhooks/"
#: Says what is missing, and nothing about what the webhook would have answered.
WEBHOOK_UNAUTHORIZED = "Unauthorized: webhook calls must present a client certificate this server trusts"
#: The 503 before the authentication config is loaded.
STARTING = "the server is starting: authentication is not configured yet, please try again"
#: Where the middleware leaves who is asking and what for, for the handlers.
USER: web.RequestKey[UserInfo] = web.RequestKey("user", UserInfo)
#: The request info (``api.requestinfo``), under the name the handlers have always used.
ATTRIBUTES = REQUEST_INFO


def auth_middleware(
    authenticator: Authenticator,
    authorizer: Authorizer,
    *,
    exempt_prefixes: Iterable[str] = ("/webhooks/",),
    webhook_callers: WebhookCallers | None = None,
    loaded: Callable[[], bool] = lambda: True,
) -> Middleware:
    """A middleware that answers 401/403 (``Status`` JSON) or calls the handler with
    ``request[USER]`` (:class:`~mcs_apiserver.auth.authenticate.UserInfo`) and
    ``request[ATTRIBUTES]`` (:class:`~mcs_apiserver.kube.requestinfo.RequestInfo`) set.

    Exempt routes get neither. An authorizer that cannot decide gives 500 (see :class:`Authorizer`).
    Until ``loaded()`` (the ConfigMap with the client and front-proxy CAs is read at start-up), a
    request that needs authentication gets 503 ``ServiceUnavailable`` with ``Retry-After: 1``, as
    kube-apiserver answers what it cannot serve *yet*: a 401 would be a wrong answer, and clients
    retry a 503. (A front-proxy certificate cannot even complete the TLS handshake before its CA is
    known; the aggregator answers that with 503 itself.) Health routes never wait.
    """
    health = frozenset(HEALTH_PATHS)
    unchecked_prefixes = (*exempt_prefixes, *(path + "/" for path in HEALTH_PATHS))
    last_error = ""

    @web.middleware
    async def authenticate_and_authorize(request: web.Request, handler: Handler) -> web.StreamResponse:
        nonlocal last_error
        resource = request.match_info.route.resource
        if resource is not None and (
            resource.canonical in health or resource.canonical.startswith(unchecked_prefixes)
        ):
            if (webhook_callers is not None and resource.canonical.startswith(WEBHOOK_PREFIX)
                    and not webhook_callers.allows(peer_certificate_der(request))):
                return status_response(unauthorized(WEBHOOK_UNAUTHORIZED))
            return await handler(request)

        if not loaded():
            refusal = service_unavailable(STARTING)
            return status_response(refusal, headers=retry_after_headers(refusal))
        user = await authenticator.authenticate(peer_certificate_der(request), request.headers)
        if user is None:
            return status_response(unauthorized())
        try:
            attributes = info_of(request)
        except RequestInfoError as error:
            return status_response(internal_error(f"failed to create RequestInfo: {error}"))
        request[USER] = user
        try:
            decision = await authorizer.authorize(user, attributes)
        except ReviewError as error:
            if str(error) != last_error:  # one line per distinct failure, not one per request
                log.warning("cannot authorize requests; answering 500", extra={"reason": str(error)})
                last_error = str(error)
            return status_response(internal_error(error))
        if not decision.allowed:
            return status_response(forbidden_status(user, attributes, decision.reason))
        return await handler(request)

    return authenticate_and_authorize
