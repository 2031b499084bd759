"""``metav1.Status`` errors, built the way kube-apiserver builds them (``k8s.io/apimachinery/pkg/api/errors``).

Every builder returns a plain :class:`~mcs_apiserver.kube.types.Status` dict whose ``code`` is also the
HTTP status to answer with. Field order and omitted-when-empty fields follow Go's JSON encoding of
``metav1.Status`` (``kind, apiVersion, metadata, status, message, reason, details, code``), so that our
errors are byte-for-byte what clients are used to.

Code deeper in the stack raises :class:`StatusError`; the HTTP layer turns it into a response with
:func:`status_response`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import orjson
from aiohttp import web

from mcs_apiserver.kube.types import Status, StatusCause, StatusDetails

__all__ = [
    "StatusError",
    "failure",
    "bad_request",
    "request_timeout",
    "retry_after_headers",
    "too_many_requests",
    "service_unavailable",
    "unauthorized",
    "forbidden",
    "not_found",
    "method_not_allowed",
    "not_acceptable",
    "expired",
    "too_old_resource_version",
    "continue_expired",
    "invalid",
    "field_invalid",
    "too_large",
    "internal_error",
    "status_response",
    "CONTINUE_EXPIRED_MESSAGE",
]


class StatusError(Exception):
    """An error that already knows the ``Status`` (and so the HTTP code) it must be answered with."""

    def __init__(self, status: Status) -> None:
        super().__init__(status.get("message", ""))
        self.status = status

    @property
    def code(self) -> int:
        return int(self.status.get("code", 500))

    @property
    def reason(self) -> str:
        return self.status.get("reason", "")


def _qualified(resource: str, group: str) -> str:
    """``schema.GroupResource.String()``: ``resource.group``, or ``resource`` for the core group."""
    return f"{resource}.{group}" if group else resource


def _details(
    *, name: str = "", group: str = "", kind: str = "", causes: Sequence[StatusCause] | None = None
) -> StatusDetails:
    details: StatusDetails = {}
    if name:
        details["name"] = name
    if group:
        details["group"] = group
    if kind:
        details["kind"] = kind
    if causes:
        details["causes"] = list(causes)
    return details


def failure(code: int, reason: str, message: str, details: StatusDetails | None = None) -> Status:
    """A ``Failure`` Status with HTTP ``code``, for the errors the builders below do not name."""
    status: Status = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure"}
    if message:
        status["message"] = message
    if reason:
        status["reason"] = reason
    if details is not None:
        status["details"] = details
    status["code"] = code
    return status


def _quote(value: str) -> str:
    """Go's ``%q`` for the strings that appear in messages (JSON escaping is the same for these)."""
    return orjson.dumps(value).decode()


# --- 4xx ---------------------------------------------------------------------------------------


def bad_request(message: str) -> Status:
    """400 ``BadRequest`` (``errors.NewBadRequest``): malformed parameters, selectors, tokens."""
    return failure(400, "BadRequest", message)


def unauthorized(message: str = "Unauthorized") -> Status:
    """401 ``Unauthorized``, as the authentication filter answers it."""
    return failure(401, "Unauthorized", message)


def forbidden(
    *,
    user: str,
    verb: str,
    resource: str = "",
    group: str = "",
    name: str = "",
    namespace: str = "",
    subresource: str = "",
    path: str = "",
    reason: str = "",
) -> Status:
    """403 ``Forbidden`` exactly as the authorization filter phrases it.

    A resource request (``resource`` given)::

        serviceimports.views.multicluster.x-k8s.io "x" is forbidden: User "bob" cannot get resource
        "serviceimports" in API group "views.multicluster.x-k8s.io" in the namespace "ns"

    A non-resource request (``path`` given, no ``resource``)::

        forbidden: User "bob" cannot get path "/openapi/v2"

    ``reason`` (the authorizer's explanation, if any) is appended after ``": "``.
    """
    if resource:
        full = f"{resource}/{subresource}" if subresource else resource
        if namespace:
            scope = f"in the namespace {_quote(namespace)}"
        else:
            scope = "at the cluster scope"
        why = f"User {_quote(user)} cannot {verb} resource {_quote(full)} in API group {_quote(group)} {scope}"
    else:
        why = f"User {_quote(user)} cannot {verb} path {_quote(path)}"
    if reason:
        why = f"{why}: {reason}"
    if not resource:
        return failure(403, "Forbidden", f"forbidden: {why}", _details())
    qualified = _qualified(resource, group)
    if name:
        message = f"{qualified} {_quote(name)} is forbidden: {why}"
    else:
        message = f"{qualified} is forbidden: {why}"
    return failure(403, "Forbidden", message, _details(name=name, group=group, kind=resource))


def not_found(resource: str = "", name: str = "", *, group: str = "") -> Status:
    """404 ``NotFound``.

    With a resource: ``serviceimports.views.multicluster.x-k8s.io "x" not found`` (``errors.NewNotFound``;
    ``details.kind`` is the *resource*, as in kube-apiserver). Without: the generic answer for an
    unknown path, ``the server could not find the requested resource``.
    """
    if not resource:
        return failure(404, "NotFound", "the server could not find the requested resource", _details())
    message = f"{_qualified(resource, group)} {_quote(name)} not found"
    return failure(404, "NotFound", message, _details(name=name, group=group, kind=resource))


def method_not_allowed(resource: str, verb: str, *, group: str = "") -> Status:
    """405 ``MethodNotAllowed`` (``errors.NewMethodNotSupported``), e.g. for ``create``/``delete``::

    create is not supported on resources of kind "serviceimports.views.multicluster.x-k8s.io"
    """
    message = f"{verb} is not supported on resources of kind {_quote(_qualified(resource, group))}"
    return failure(405, "MethodNotAllowed", message, _details(group=group, kind=resource))


def not_acceptable(accepted: Iterable[str] = ("application/json",)) -> Status:
    """406 ``NotAcceptable``: no clause of ``Accept`` names something this endpoint can produce."""
    message = "only the following media types are accepted: " + ", ".join(accepted)
    return failure(406, "NotAcceptable", message)


def expired(message: str) -> Status:
    """410 with reason ``Expired`` (``errors.NewResourceExpired``): what reflectors relist on."""
    return failure(410, "Expired", message)


def too_old_resource_version(requested: str | int, oldest: str | int) -> Status:
    """410 ``Expired`` for a watch/list from a resourceVersion the server no longer has.

    Same text as the watch cache: ``too old resource version: 5 (17)``.
    """
    return expired(f"too old resource version: {requested} ({oldest})")


#: kube-apiserver's message when a ``continue`` token refers to a compacted resourceVersion.
CONTINUE_EXPIRED_MESSAGE = (
    "The provided continue parameter is too old to display a consistent list result. "
    "You can start a new list without the continue parameter."
)


def continue_expired() -> Status:
    """410 ``Expired`` for a ``continue`` token whose snapshot is gone (clients then relist from scratch)."""
    return expired(CONTINUE_EXPIRED_MESSAGE)


def _value_repr(value: Any) -> str:
    """How ``field.Error.ErrorBody`` shows a bad value: ``%q`` for strings, ``%v`` for scalars, JSON else."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, str):
        return _quote(value)
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def field_invalid(field: str, value: Any, detail: str) -> StatusCause:
    """A ``FieldValueInvalid`` cause (``field.Invalid``)."""
    message = f"Invalid value: {_value_repr(value)}"
    if detail:
        message = f"{message}: {detail}"
    return {"reason": "FieldValueInvalid", "message": message, "field": field}


def invalid(kind: str, name: str, causes: Sequence[StatusCause], *, group: str = "") -> Status:
    """422 ``Invalid`` (``errors.NewInvalid``) with one cause per field error.

    Message: ``ServiceImport.views.multicluster.x-k8s.io "x" is invalid: spec.type: Invalid value: ...``;
    several causes are listed as ``[a, b]`` like ``utilerrors.Aggregate``. Build causes with
    :func:`field_invalid`. kube-apiserver rejects an unsupported ``sendInitialEvents`` the same way, with kind
    ``ListOptions`` and group ``meta.k8s.io``.
    """
    qualified = f"{kind}.{group}" if group else kind
    messages: list[str] = []
    for cause in causes:
        text = f"{cause.get('field', '')}: {cause.get('message', '')}"
        if text not in messages:
            messages.append(text)
    if not messages:
        message = f"{qualified} {_quote(name)} is invalid"
    elif len(messages) == 1:
        message = f"{qualified} {_quote(name)} is invalid: {messages[0]}"
    else:
        message = f"{qualified} {_quote(name)} is invalid: [{', '.join(messages)}]"
    return failure(422, "Invalid", message, _details(name=name, group=group, kind=kind, causes=causes))


def invalid_params(field: str, value: Any, detail: str) -> Status:
    """422 for bad list/watch options, as kube-apiserver's ListOptions validation answers:
    ``ListOptions.meta.k8s.io "" is invalid: <field>: Invalid value: ...``."""
    return invalid("ListOptions", "", [field_invalid(field, value, detail)], group="meta.k8s.io")


def too_large_resource_version(requested: int, current: int) -> Status:
    """504 ``Timeout`` for a resourceVersion newer than anything this server has seen; kube-apiserver
    answers the same after waiting for its cache (cause ``ResourceVersionTooLarge``, retry after 1 s)."""
    message = f"Too large resource version: {requested}, current: {current}"
    details = _details(causes=[{"reason": "ResourceVersionTooLarge", "message": message}])
    details["retryAfterSeconds"] = 1
    return failure(504, "Timeout", message, details)


def too_large(message: str) -> Status:
    """413 ``RequestEntityTooLarge`` (``errors.NewRequestEntityTooLargeError``)."""
    return failure(413, "RequestEntityTooLarge", f"Request entity too large: {message}")


def too_many_requests(message: str = "Too many requests, please try again later.", retry_after: int = 1) -> Status:
    """429 ``TooManyRequests`` with ``retryAfterSeconds``, as kube-apiserver's max-in-flight filter
    answers (with a ``Retry-After`` header: see :func:`retry_after_headers`)."""
    details: StatusDetails = {"retryAfterSeconds": retry_after}
    return failure(429, "TooManyRequests", message, details)


def request_timeout(message: str) -> Status:
    """408 ``Timeout``: the client did not send its request (body) in time."""
    return failure(408, "Timeout", message)


def retry_after_headers(status: Status) -> dict[str, str]:
    """The ``Retry-After`` header a Status with ``details.retryAfterSeconds`` goes out with."""
    seconds = (status.get("details") or {}).get("retryAfterSeconds")
    return {"Retry-After": str(seconds)} if seconds else {}


# --- 5xx ---------------------------------------------------------------------------------------


def internal_error(error: BaseException | str) -> Status:
    """500 ``InternalError`` (``errors.NewInternalError``): ``Internal error occurred: <err>``."""
    text = str(error)
    return failure(
        500,
        "InternalError",
        f"Internal error occurred: {text}",
        _details(causes=[{"message": text}]),
    )


def service_unavailable(message: str, retry_after: int = 1) -> Status:
    """503 ``ServiceUnavailable`` (``errors.NewServiceUnavailable``) with ``retryAfterSeconds``: not
    able to answer *yet* (send it with :func:`retry_after_headers`)."""
    details: StatusDetails = {"retryAfterSeconds": retry_after}
    return failure(503, "ServiceUnavailable", message, details)


# --- HTTP --------------------------------------------------------------------------------------


def status_response(status: Status | StatusError, *, headers: Mapping[str, str] | None = None) -> web.Response:
    """An aiohttp response carrying ``status`` as JSON, with the HTTP code taken from ``status.code``."""
    if isinstance(status, StatusError):
        status = status.status
    return web.Response(
        body=orjson.dumps(status),
        status=int(status.get("code", 500)),
        content_type="application/json",
        headers=headers,
    )
