"""aiohttp handlers: one POST path per webhook, AdmissionReview v1 in and out.

Paths (``PATHS``)::

    POST /webhooks/validate/clusterproperties   validate_cluster_property
    POST /webhooks/mutate/clusterproperties     mutate_cluster_property
    POST /webhooks/validate/serviceexports      validate_service_export (with the conflict policy)
    POST /webhooks/mutate/serviceexports        mutate_service_export
    POST /webhooks/admit/serviceexports         admit_service_export: stamp + validate in one call
                                                (what manifests/webhooks.yaml registers)

``add_routes(app_or_router, facts, policy)`` registers them; ``make_handlers(...)`` returns the
handlers by path for callers that route themselves. Handlers are plain ``async def handler(request)``
closures: no per-request setup, sync rules over cached facts, orjson both ways.

Answers
    * A body that is not a readable AdmissionReview v1 gets the HTTP error of ``review.ReviewError``
      (400 malformed/wrong shape, 413 larger than ``max_body_bytes``, 415 not JSON) with a
      ``metav1.Status`` JSON body. kube-apiserver treats any non-200 as a failed call and applies the
      webhook's ``failurePolicy``.
    * A readable review gets HTTP 200 and an AdmissionReview response, allowed or denied.
    * A bug (an exception in a rule or in the facts) gets HTTP 500 with a Status body and is logged:
      the webhook could not decide, so the ``failurePolicy`` chosen by the cluster admin applies,
      rather than this code guessing an answer.

A kind the webhook does not handle (a group/kind other than its own, one of its kind's versions it
does not know, or a subresource) is **allowed unchanged, with a warning** naming the webhook and the
kind, except subresources, which are allowed silently. Such a request only arrives when the
webhook configuration's rules are wider than they should be (``resources: ["*"]``, a new CRD
version): denying would turn a configuration slip into an outage of unrelated writes, while a
warning makes the slip visible in every kubectl output. Subresources (``serviceexports/status``,
written by the instance's own status writer) have nothing to check or stamp here.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Final

import orjson
from aiohttp import web

from . import clusterproperty, serviceexport
from .facts import AdmissionFacts
from .review import (
    MAX_BODY_BYTES,
    AdmissionRequest,
    Decision,
    ReviewError,
    allow,
    check_content_type,
    encode_response,
    parse_review,
    status_body,
)
from mcs_apiserver.kube.times import utc_now

from .serviceexport import CONFLICT_POLICIES, ConflictPolicy

__all__ = [
    "MUTATE_CLUSTERPROPERTIES_PATH",
    "ADMIT_SERVICEEXPORTS_PATH",
    "MUTATE_SERVICEEXPORTS_PATH",
    "PATHS",
    "VALIDATE_CLUSTERPROPERTIES_PATH",
    "VALIDATE_SERVICEEXPORTS_PATH",
    "add_routes",
    "make_handlers",
]

log = logging.getLogger(__name__)

VALIDATE_CLUSTERPROPERTIES_PATH: Final = "/webhooks/validate/clusterproperties"
MUTATE_CLUSTERPROPERTIES_PATH: Final = "/webhooks/mutate/clusterproperties"
VALIDATE_SERVICEEXPORTS_PATH: Final = "/webhooks/validate/serviceexports"
MUTATE_SERVICEEXPORTS_PATH: Final = "/webhooks/mutate/serviceexports"
ADMIT_SERVICEEXPORTS_PATH: Final = "/webhooks/admit/serviceexports"
PATHS: Final = (
    VALIDATE_CLUSTERPROPERTIES_PATH,
    MUTATE_CLUSTERPROPERTIES_PATH,
    VALIDATE_SERVICEEXPORTS_PATH,
    MUTATE_SERVICEEXPORTS_PATH,
    ADMIT_SERVICEEXPORTS_PATH,
)

Handler = Callable[[web.Request], Awaitable[web.Response]]
Rule = Callable[[AdmissionRequest], Decision]

_CHUNK: Final = 64 * 1024


@dataclass(frozen=True, slots=True)
class _Webhook:
    path: str
    group: str
    kind: str
    versions: frozenset[str]
    rule: Rule


def make_handlers(
    facts: AdmissionFacts,
    policy: ConflictPolicy = "warn",
    *,
    now: Callable[[], datetime] = utc_now,
    max_body_bytes: int = MAX_BODY_BYTES,
) -> dict[str, Handler]:
    """The webhook handlers by path. ``policy`` is ``--export-conflict-policy`` (warn|deny)."""
    if policy not in CONFLICT_POLICIES:
        raise ValueError(f"export conflict policy must be one of {', '.join(CONFLICT_POLICIES)}, not {policy!r}")
    cp, se = clusterproperty, serviceexport
    webhooks = (
        _Webhook(
            VALIDATE_CLUSTERPROPERTIES_PATH,
            cp.GROUP,
            cp.KIND,
            cp.VERSIONS,
            lambda r: cp.validate_cluster_property(r, facts),
        ),
        _Webhook(
            MUTATE_CLUSTERPROPERTIES_PATH,
            cp.GROUP,
            cp.KIND,
            cp.VERSIONS,
            lambda r: cp.mutate_cluster_property(r, facts),
        ),
        _Webhook(
            VALIDATE_SERVICEEXPORTS_PATH,
            se.GROUP,
            se.KIND,
            se.VERSIONS,
            lambda r: se.validate_service_export(r, facts, policy=policy),
        ),
        _Webhook(
            MUTATE_SERVICEEXPORTS_PATH,
            se.GROUP,
            se.KIND,
            se.VERSIONS,
            lambda r: se.mutate_service_export(r, facts, now=now),
        ),
        _Webhook(
            ADMIT_SERVICEEXPORTS_PATH,
            se.GROUP,
            se.KIND,
            se.VERSIONS,
            lambda r: se.admit_service_export(r, facts, policy=policy, now=now),
        ),
    )
    return {w.path: _make_handler(w, max_body_bytes) for w in webhooks}


def add_routes(
    app_or_router: web.Application | web.UrlDispatcher,
    facts: AdmissionFacts,
    policy: ConflictPolicy = "warn",
    *,
    now: Callable[[], datetime] = utc_now,
    max_body_bytes: int = MAX_BODY_BYTES,
) -> None:
    """Register the four webhooks (POST only) on an aiohttp application or router."""
    router = app_or_router.router if isinstance(app_or_router, web.Application) else app_or_router
    for path, handler in make_handlers(facts, policy, now=now, max_body_bytes=max_body_bytes).items():
        router.add_post(path, handler)


def _make_handler(webhook: _Webhook, max_body_bytes: int) -> Handler:
    async def handler(request: web.Request) -> web.Response:
        try:
            check_content_type(request.headers.get("Content-Type"))
            review = parse_review(await _read_body(request, max_body_bytes), max_bytes=max_body_bytes)
        except ReviewError as exc:
            log.info("webhook %s: bad request: %s", webhook.path, exc.message)
            return _status_response(exc.code, exc.message)
        try:
            decision = _decide(webhook, review)
            body = encode_response(review.uid, decision)
        except Exception:
            log.exception("webhook %s: error deciding request %s", webhook.path, review.uid)
            return _status_response(500, f"internal error in the mcs-apiserver webhook {webhook.path}; see its log")
        if not decision.allowed:
            log.info(
                "webhook %s: denied %s %s %s: %s",
                webhook.path,
                review.operation,
                review.kind.kind,
                review.name,
                decision.message,
            )
        return web.Response(body=body, content_type="application/json")

    handler.__name__ = handler.__qualname__ = f"webhook{webhook.path.replace('/', '_')}"
    return handler


def _decide(webhook: _Webhook, review: AdmissionRequest) -> Decision:
    kind = review.kind
    if kind.group != webhook.group or kind.kind != webhook.kind or kind.version not in webhook.versions:
        warning = (
            f"the mcs-apiserver webhook {webhook.path} does not handle {kind}; the request was allowed unchanged: "
            "check the rules of the webhook configuration"
        )
        return allow(warnings=[warning])
    if review.sub_resource:
        return allow()
    return webhook.rule(review)


async def _read_body(request: web.Request, limit: int) -> bytes:
    """The body, read with our own limit (the application's ``client_max_size`` may be smaller)."""
    length = request.content_length
    if length is not None and length > limit:
        raise ReviewError(413, f"request body of {length} bytes is larger than the limit of {limit} bytes")
    buffer = bytearray()
    while chunk := await request.content.read(_CHUNK):
        buffer += chunk
        if len(buffer) > limit:
            raise ReviewError(413, f"request body is larger than the limit of {limit} bytes")
    return bytes(buffer)


def _status_response(code: int, message: str) -> web.Response:
    return web.Response(status=code, body=orjson.dumps(status_body(code, message)), content_type="application/json")
