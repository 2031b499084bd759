"""The aiohttp middleware: authenticate, then authorize, every request kube-apiserver proxies to us.

It sits in front of every LIST and WATCH, so the common case (a known front-proxy certificate, a
cached decision) is a few dictionary lookups. Two kinds of route skip it:

* health (``/healthz``, ``/readyz``, ``/livez`` and below): kubelet probes carry no credentials;
* webhooks (``/webhooks/``): kube-apiserver calls admission webhooks as a plain TLS client, without
  its front-proxy certificate; the AdmissionReview body states the user, and the webhooks only
  judge what kube-apiserver is about to admit, they reveal nothing.

Exemption is decided by the *route that matched* (its registered path), not by the raw request
path: a path that merely starts like a webhook path can never reach another handler unchecked.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from mcs_apiserver.api.requestinfo import REQUEST_INFO, RequestInfoError, info_of
from mcs_apiserver.api.status import internal_error, status_response, unauthorized
from mcs_apiserver.auth.authenticate import Authenticator, UserInfo
from mcs_apiserver.auth.authorize import Authorizer, forbidden_status
from mcs_apiserver.auth.review import ReviewError
from mcs_apiserver.tls import peer_certificate_der

__all__ = ["ATTRIBUTES", "HEALTH_PATHS", "USER", "auth_middleware"]

log = logging.getLogger("mcs_apiserver.auth.middleware")

HEALTH_PATHS = ("/healthz", "/readyz", "/livez")
#: Where the middleware leaves who is asking and what for, for the handlers.
USER: web.RequestKey[UserInfo] = web.RequestKey("user", UserInfo)
#: The request info (``api.requestinfo``), under the name the handlers have always used.
ATTRIBUTES = REQUEST_INFO


def auth_middleware(
    authenticator: Authenticator,
    authorizer: Authorizer,
    *,
    exempt_prefixes: Iterable[str] = ("/webhooks/",),
) -> Middleware:
    """A middleware that answers 401/403 (``Status`` JSON) or calls the handler with
    ``request[USER]`` (:class:`~mcs_apiserver.auth.authenticate.UserInfo`) and
    ``request[ATTRIBUTES]`` (:class:`~mcs_apiserver.api.requestinfo.RequestInfo`) set.

    Exempt routes get neither. An authorizer that cannot decide gives 500 (see :class:`Authorizer`).
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
            return await handler(request)

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
