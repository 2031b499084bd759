"""The aiohttp application: routes for discovery, OpenAPI, health, metrics and the resources.

Authentication and authorization come in as middlewares (``mcs_apiserver.auth``); the webhooks add
their own routes. Every error any handler raises leaves as a ``Status``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from aiohttp import web

from mcs_apiserver.api import negotiation
from mcs_apiserver.kube import status
from mcs_apiserver.api.discovery import discovery_bytes
from mcs_apiserver.api.negotiation import Target
from mcs_apiserver.api.openapi import (
    OPENAPI_V3_GROUP_VERSION_PATH,
    OpenAPIDocument,
    etag_matches,
    openapi_v2,
    openapi_v3_group_version,
    openapi_v3_root,
)
from mcs_apiserver.api.discovery import RESOURCES
from mcs_apiserver.api.limits import ConnectionGuard, Limiter
from mcs_apiserver.api.resources import PREFIX, ApiSettings, ResourceHandler, Served
from mcs_apiserver.kube.status import StatusError, status_response
from mcs_apiserver.metrics import Metrics
from mcs_apiserver.kube.requestinfo import RequestInfoError, info_of
from mcs_apiserver.version import version_info
from mcs_apiserver.contract import GROUP, VERSION

log = logging.getLogger("mcs_apiserver.api")

JSON = "application/json"


@dataclass
class HealthCheck:
    """One named readiness check (``/readyz/<name>``): a callable giving (ok, detail)."""

    name: str
    check: Callable[[], tuple[bool, str]]


@web.middleware
async def request_info_middleware(request: web.Request, handler):
    """Compute the request info once (``mcs_apiserver.kube.requestinfo``); a path kube-apiserver cannot
    classify gets its 500."""
    try:
        info_of(request)
    except RequestInfoError as error:
        return status_response(status.internal_error(f"failed to create RequestInfo: {error}"))
    return await handler(request)


@web.middleware
async def status_errors(request: web.Request, handler):
    """Turn every failure into a ``Status``: ours, aiohttp's (404, 405, 413) and unexpected ones."""
    try:
        return await handler(request)
    except StatusError as error:
        return status_response(error)
    except web.HTTPRequestEntityTooLarge as error:
        return status_response(status.too_large(error.text or "request body too large"))
    except web.HTTPNotFound:
        return status_response(status.not_found())
    except web.HTTPMethodNotAllowed as error:
        return status_response(status.failure(405, "MethodNotAllowed",
                                             f"the server does not allow this method on the requested resource ({error.method})"))
    except web.HTTPException:
        raise
    except (ConnectionResetError, web.HTTPClientError):
        raise
    except Exception as error:  # noqa: BLE001 - log it, answer 500, keep serving
        log.exception("unhandled error serving %s %s", request.method, request.path)
        return status_response(status.internal_error(type(error).__name__))


WEBHOOK_PREFIX = "/webhooks/"
_RESOURCES = frozenset(r.name for r in RESOURCES)


#: kube-apiserver's metric verbs (``endpoints/metrics.CleanVerb``) by request info verb; any other
#: method of a non-resource request is "other", as kube's, so a made-up method is no new label value.
_METRIC_VERBS = {"get": "GET", "list": "LIST", "watch": "WATCH", "create": "POST", "update": "PUT",
                 "patch": "PATCH", "delete": "DELETE", "deletecollection": "DELETECOLLECTION"}
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT"})
APPLY_PATCH = "application/apply-patch+yaml"
#: Non-resource paths kube-apiserver labels by path (in ``subresource``, as its health handlers do).
_LABELLED_PATHS = frozenset({"/healthz", "/livez", "/readyz", "/readyz/{check}"})


def request_labels(request: web.Request) -> tuple[str, str, str, str, str, str, str, str]:
    """kube-apiserver's labels of ``apiserver_request_*``: (verb, dry_run, group, version, resource,
    subresource, scope, component), read from the request info.

    Cardinality stays bounded: group, version, resource and scope are set for the resources we serve
    only, a non-resource path only for the health endpoints (the route, not the raw path), and any
    other request gets empty labels, never its path.
    """
    info = info_of(request)
    query = request.query.getall("dryRun", [])
    dry_run = "" if not query else "All" if set(query) == {"All"} else "invalid"
    if not info.resource_request:
        verb = request.method if request.method in _METHODS else "other"
        route = request.match_info.route.resource
        path = route.canonical if route is not None and route.canonical in _LABELLED_PATHS else ""
        return verb, dry_run, "", "", "", path, "", ""
    verb = _METRIC_VERBS.get(info.verb, "other")
    if verb == "PATCH" and request.content_type == APPLY_PATCH:
        verb = "APPLY"
    if info.api_group != GROUP or info.api_version != VERSION or info.resource not in _RESOURCES \
            or info.subresource:
        return verb, dry_run, "", "", "", "", "", ""
    # kube's CleanScope: one object (or a create), one namespace, or the whole cluster.
    scope = "resource" if info.name or info.verb == "create" else "namespace" if info.namespace else "cluster"
    return verb, dry_run, GROUP, VERSION, info.resource, "", scope, "apiserver"


def metrics_middleware(metrics: Metrics, webhook_paths: frozenset[str]):
    """Count every request by kube-apiserver's labels and code (:func:`request_labels`), time the
    non-watch ones, gauge open watches.

    ``webhook_paths`` are the admission paths served beside the API (handed in by the server, so that
    this layer does not import the webhooks); any other path under ``/webhooks/`` is labelled "other".
    """

    @web.middleware
    async def record(request: web.Request, handler):
        if request.path.startswith(WEBHOOK_PREFIX):
            # Label by path only for the paths we serve: an unknown path must not create a label value.
            path = request.path if request.path in webhook_paths else "other"

            def done(code: int, seconds: float) -> None:
                metrics.admission.labels(path, str(code)).observe(seconds)
        else:
            labels = request_labels(request)
            watching = metrics.watchers.labels(labels[4]) if labels[0] == "WATCH" else None
            if watching is not None:
                watching.inc()

            def done(code: int, seconds: float) -> None:
                if watching is not None:
                    watching.dec()
                else:
                    metrics.request_duration.labels(*labels).observe(seconds)
                metrics.requests.labels(*labels, str(code)).inc()

        code = 500
        started = time.perf_counter()
        try:
            response = await handler(request)
            code = response.status
            return response
        except web.HTTPException as error:
            code = error.status
            raise
        except asyncio.CancelledError:
            # The client went away (the runner cancels its handler): a watch ends so, normally; any
            # other request is recorded as nginx's 499 "client closed request".
            code = 200 if request.path.startswith(PREFIX) and info_of(request).long_running else 499
            raise
        finally:
            done(code, time.perf_counter() - started)

    return record


def _document(doc: OpenAPIDocument, request: web.Request, *, immutable: bool = False) -> web.Response:
    headers = {"ETag": doc.etag, "Vary": "Accept"}
    if immutable:
        headers["Cache-Control"] = "public, immutable"
    if etag_matches(request.headers.get("If-None-Match"), doc):
        return web.Response(status=304, headers=headers)
    return web.Response(body=doc.body, content_type=JSON, headers=headers)


async def apis(request: web.Request) -> web.Response:
    """``/apis``: the aggregator asks for aggregated discovery; answer it (or the APIGroupList)."""
    chosen = negotiation.negotiate(request.headers.get("Accept"), negotiation.DISCOVERY_ROOT)
    if chosen.target is Target.API_GROUP_DISCOVERY_LIST:
        return web.Response(body=discovery_bytes("aggregated", chosen.version),
                            headers={"Content-Type": chosen.content_type})
    return web.Response(body=discovery_bytes("groups"), content_type=JSON)


async def api_group(request: web.Request) -> web.Response:
    return web.Response(body=discovery_bytes("group"), content_type=JSON)


async def api_resources(request: web.Request) -> web.Response:
    return web.Response(body=discovery_bytes("resources"), content_type=JSON)


async def openapi_v2_handler(request: web.Request) -> web.Response:
    return _document(openapi_v2(), request)


async def openapi_v3_root_handler(request: web.Request) -> web.Response:
    return _document(openapi_v3_root(), request)


async def openapi_v3_gv_handler(request: web.Request) -> web.Response:
    doc = openapi_v3_group_version()
    wanted = request.query.get("hash")
    if wanted and wanted != doc.hash:
        # kube-openapi redirects an outdated hash to the current document.
        raise web.HTTPMovedPermanently(f"{OPENAPI_V3_GROUP_VERSION_PATH}?hash={doc.hash}")
    return _document(doc, request, immutable=bool(wanted))


async def version(request: web.Request) -> web.Response:
    """``GET /version``, as kube-apiserver's (``pythonVersion`` for ``goVersion``)."""
    return web.json_response(version_info())


def health_routes(checks: Iterable[HealthCheck]) -> list[web.RouteDef]:
    """``/healthz`` and ``/livez`` (the process serves), ``/readyz`` (every check passes), each with
    ``?verbose`` and per-check subpaths, in kube-apiserver's format."""
    ready_checks = list(checks)

    async def alive(request: web.Request) -> web.Response:
        if "verbose" in request.query:
            return web.Response(text="[+]ping ok\n" + f"{request.path.strip('/')} check passed\n")
        return web.Response(text="ok")

    async def readyz(request: web.Request) -> web.Response:
        name = request.match_info.get("check")
        selected = [c for c in ready_checks if name is None or c.name == name]
        if name is not None and not selected:
            raise StatusError(status.not_found())
        results = [(c.name, *c.check()) for c in selected]
        ok = all(passed for _, passed, _ in results)
        if "verbose" in request.query or not ok:
            lines = [f"[{'+' if passed else '-'}]{n} {'ok' if passed else 'failed: ' + detail}"
                     for n, passed, detail in results]
            lines.append("readyz check passed" if ok else "readyz check failed")
            return web.Response(text="\n".join(lines) + "\n", status=200 if ok else 500)
        return web.Response(text="ok")

    return [
        web.get("/healthz", alive), web.get("/livez", alive),
        web.get("/readyz", readyz), web.get("/readyz/{check}", readyz),
    ]


def build_app(served: Served, *, checks: Iterable[HealthCheck], metrics: Metrics,
              middlewares: Iterable = (), client_max_size: int = 3 * 1024 * 1024,
              limiter: Limiter | None = None, guard: ConnectionGuard | None = None,
              user_of: Callable[[web.Request], str] = lambda request: "",
              webhook_paths: Iterable[str] = (), settings: ApiSettings = ApiSettings(),
              clock: Callable[[], float] = time.time) -> web.Application:
    """The application. ``middlewares`` (authentication and authorization) run after the in-flight
    limits of ``limiter`` and before its watch limits, which count watches per ``user_of``; a
    request's body is read only once they let it through (``guard``)."""
    chain: list = [guard.middleware] if guard is not None else []
    chain += [request_info_middleware, metrics_middleware(metrics, frozenset(webhook_paths)), status_errors]
    if limiter is not None:
        chain.append(limiter.inflight)
    chain += list(middlewares)
    if guard is not None:
        chain.append(guard.admission_gate())  # bodies are read only from here on
    if limiter is not None:
        chain.append(limiter.watches(user_of))
        metrics.add_limiter(limiter)
    app = web.Application(middlewares=chain, client_max_size=client_max_size)
    resources = ResourceHandler(served, settings=settings, clock=clock)
    app.add_routes(health_routes(checks))
    app.add_routes([
        web.get("/metrics", metrics.handler),
        web.get("/version", version),
        web.get("/apis", apis),
        web.get(f"/apis/{GROUP}", api_group),
        web.get(PREFIX, api_resources),
        web.get("/openapi/v2", openapi_v2_handler),
        web.get("/openapi/v3", openapi_v3_root_handler),
        web.get(OPENAPI_V3_GROUP_VERSION_PATH, openapi_v3_gv_handler),
        # The bound coroutine method, not the instance: aiohttp wraps (and deprecates) handlers that
        # are not coroutine functions.
        web.route("*", PREFIX + "/{tail:.+}", resources.__call__),
    ])
    return app
