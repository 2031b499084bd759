"""AdmissionReview v1 in, AdmissionReview v1 out.

``parse_review(body, content_type=...)`` turns the bytes kube-apiserver POSTs into an
``AdmissionRequest`` or raises ``ReviewError`` (an HTTP 4xx code, a Status reason and a message);
it never raises anything else, whatever the bytes. ``Decision`` is what a rule returns, and
``review_response(uid, decision)`` is the AdmissionReview that goes back.

Denials carry a ``metav1.Status``: 403 ``Forbidden`` for policy denials, 422 ``Invalid`` for an
invalid field value (with a ``details.causes`` entry naming the field), 503 ``ServiceUnavailable``
when the answer depends on a cache that has not synced yet (retry). kube-apiserver prefixes the
message with ``admission webhook "<name>" denied the request:`` and returns the code to the client.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any, Final, cast, get_args

import orjson

from mcs_apiserver.kube.status import failure
from mcs_apiserver.kube.types import AdmissionOperation, Status, StatusCause

__all__ = [
    "ADMISSION_API_VERSION",
    "MAX_BODY_BYTES",
    "AdmissionRequest",
    "Decision",
    "GroupVersionKind",
    "ReviewError",
    "allow",
    "check_content_type",
    "deny",
    "encode_response",
    "invalid",
    "parse_review",
    "review_response",
    "status_body",
    "unavailable",
]

ADMISSION_API_VERSION: Final = "admission.k8s.io/v1"
ADMISSION_KIND: Final = "AdmissionReview"

#: kube-apiserver's own limit on a request body (3 MiB). An AdmissionReview for an UPDATE carries the
#: object twice; ClusterProperties and ServiceExports are small, and the webhook configurations
#: should use matchConditions so that only the objects the rules care about are sent at all.
MAX_BODY_BYTES: Final = 3 * 1024 * 1024

OPERATIONS: Final = frozenset(get_args(AdmissionOperation))

_REASONS: Final = {
    400: "BadRequest",
    403: "Forbidden",
    413: "RequestEntityTooLarge",
    415: "UnsupportedMediaType",
    422: "Invalid",
    500: "InternalError",
    503: "ServiceUnavailable",
}

#: kube-apiserver truncates longer warnings; keep ours whole by cutting them ourselves, cleanly.
MAX_WARNING_LENGTH: Final = 1024


class ReviewError(Exception):
    """A request this webhook cannot read. ``code`` is the HTTP status to answer with."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    @property
    def reason(self) -> str:
        return _REASONS.get(self.code, "BadRequest")

    def status(self) -> Status:
        """The ``metav1.Status`` body to send with HTTP ``code``."""
        return status_body(self.code, self.message)


def status_body(code: int, message: str) -> Status:
    """The ``metav1.Status`` of a request this webhook could not answer (HTTP ``code``)."""
    return failure(code, _REASONS.get(code, "BadRequest"), message)


@dataclass(frozen=True, slots=True)
class GroupVersionKind:
    group: str
    version: str
    kind: str

    def __str__(self) -> str:
        return f"{self.group}/{self.version} {self.kind}" if self.group else f"{self.version} {self.kind}"


@dataclass(frozen=True, slots=True)
class AdmissionRequest:
    """The parts of ``AdmissionReview.request`` the rules use, type-checked.

    ``object`` is a dict for CREATE and UPDATE, None for DELETE; ``old_object`` is a dict for
    UPDATE, a dict or None otherwise. ``name`` is ``""`` when the client used ``generateName``
    (mutating webhooks see the object before the name is generated).
    """

    uid: str
    kind: GroupVersionKind
    operation: AdmissionOperation
    name: str = ""
    namespace: str = ""
    sub_resource: str = ""
    object: dict[str, Any] | None = None
    old_object: dict[str, Any] | None = None
    dry_run: bool = False
    user_info: dict[str, Any] = field(default_factory=dict)


def check_content_type(content_type: str | None) -> None:
    """Accept ``application/json`` (any parameters) and ``*/*+json``; a missing header is accepted."""
    if not content_type:
        return
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type == "application/json" or (media_type.startswith("application/") and media_type.endswith("+json")):
        return
    raise ReviewError(
        415, f"unsupported Content-Type {content_type[:100]!r}: an AdmissionReview must be sent as application/json"
    )


def parse_review(body: bytes, *, content_type: str | None = None, max_bytes: int = MAX_BODY_BYTES) -> AdmissionRequest:
    """Parse and check an ``admission.k8s.io/v1`` AdmissionReview request body.

    Raises ``ReviewError`` (400, 413 or 415) for anything that is not a well-formed review; never
    anything else.
    """
    check_content_type(content_type)
    if len(body) > max_bytes:
        raise ReviewError(413, f"request body is larger than {max_bytes} bytes")
    if not body.strip():
        raise ReviewError(400, "empty request body: expected an AdmissionReview")
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ReviewError(400, f"request body is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise ReviewError(400, f"expected a JSON object (an AdmissionReview), got {_type_name(doc)}")
    api_version = doc.get("apiVersion")
    if api_version != ADMISSION_API_VERSION:
        raise ReviewError(
            400,
            f"unsupported apiVersion {_short(api_version)}: this webhook speaks only "
            f'{ADMISSION_API_VERSION}; set admissionReviewVersions: ["v1"] in the webhook configuration',
        )
    if doc.get("kind") != ADMISSION_KIND:
        raise ReviewError(400, f"expected kind AdmissionReview, got {_short(doc.get('kind'))}")
    request = doc.get("request")
    if not isinstance(request, dict):
        raise ReviewError(400, "request: required: an AdmissionReview sent to a webhook must have a request object")

    uid = request.get("uid")
    if not isinstance(uid, str) or not uid:
        raise ReviewError(400, "request.uid: required: must be a non-empty string")
    kind = request.get("kind")
    if not isinstance(kind, dict):
        raise ReviewError(400, "request.kind: required: must be an object {group, version, kind}")
    gvk = GroupVersionKind(
        group=_opt_str(kind, "group", "request.kind.group"),
        version=_opt_str(kind, "version", "request.kind.version"),
        kind=_opt_str(kind, "kind", "request.kind.kind"),
    )
    if not gvk.kind:
        raise ReviewError(400, "request.kind.kind: required: must be a non-empty string")
    operation = request.get("operation")
    if not isinstance(operation, str) or operation not in OPERATIONS:
        raise ReviewError(
            400, f"request.operation: must be one of CREATE, UPDATE, DELETE, CONNECT, got {_short(operation)}"
        )
    obj = _opt_object(request, "object")
    old = _opt_object(request, "oldObject")
    if operation in ("CREATE", "UPDATE") and obj is None:
        raise ReviewError(400, f"request.object: required for a {operation} request")
    if operation == "UPDATE" and old is None:
        raise ReviewError(400, "request.oldObject: required for an UPDATE request")
    dry_run = request.get("dryRun")
    if dry_run is not None and not isinstance(dry_run, bool):
        raise ReviewError(400, f"request.dryRun: must be a boolean, got {_type_name(dry_run)}")
    user_info = request.get("userInfo")
    if user_info is not None and not isinstance(user_info, dict):
        raise ReviewError(400, f"request.userInfo: must be an object, got {_type_name(user_info)}")
    return AdmissionRequest(
        uid=uid,
        kind=gvk,
        operation=cast(AdmissionOperation, operation),
        name=_opt_str(request, "name", "request.name"),
        namespace=_opt_str(request, "namespace", "request.namespace"),
        sub_resource=_opt_str(request, "subResource", "request.subResource"),
        object=obj,
        old_object=old,
        dry_run=bool(dry_run),
        user_info=user_info or {},
    )


def _opt_str(container: dict[str, Any], key: str, path: str) -> str:
    value = container.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ReviewError(400, f"{path}: must be a string, got {_type_name(value)}")
    return value


def _opt_object(request: dict[str, Any], key: str) -> dict[str, Any] | None:
    value = request.get(key)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ReviewError(400, f"request.{key}: must be an object or null, got {_type_name(value)}")
    metadata = value.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        raise ReviewError(400, f"request.{key}.metadata: must be an object, got {_type_name(metadata)}")
    return value


def _type_name(value: object) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number"
    )


def _short(value: object) -> str:
    text = repr(value) if isinstance(value, str) else ("nothing" if value is None else _type_name(value))
    return text if len(text) <= 80 else text[:77] + "..."


# --- decisions and responses ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Decision:
    """What a rule decided. Build with ``allow``, ``deny``, ``invalid`` or ``unavailable``."""

    allowed: bool
    code: int = 200
    reason: str = ""
    message: str = ""
    causes: tuple[StatusCause, ...] = ()
    patch: tuple[dict[str, Any], ...] = ()
    warnings: tuple[str, ...] = ()


def allow(
    patch: tuple[dict[str, Any], ...] | list[dict[str, Any]] = (), warnings: tuple[str, ...] | list[str] = ()
) -> Decision:
    return Decision(allowed=True, patch=tuple(patch), warnings=tuple(warnings))


def deny(
    message: str, *, code: int = 403, reason: str | None = None, warnings: tuple[str, ...] | list[str] = ()
) -> Decision:
    """A policy denial (403 ``Forbidden`` unless told otherwise)."""
    return Decision(
        allowed=False,
        code=code,
        reason=reason or _REASONS.get(code, "Forbidden"),
        message=message,
        warnings=tuple(warnings),
    )


def invalid(message: str, *, field: str, value: object = None) -> Decision:
    """422 ``Invalid``: ``field`` (e.g. ``spec.value``) has a value that can never be accepted."""
    cause: StatusCause = {"reason": "FieldValueInvalid", "message": message, "field": field}
    return Decision(
        allowed=False, code=422, reason="Invalid", message=f"{field}: Invalid value: {message}", causes=(cause,)
    )


def unavailable(message: str, *, warnings: tuple[str, ...] | list[str] = ()) -> Decision:
    """503 ``ServiceUnavailable``: the answer depends on a cache that has not synced; retry later."""
    return deny(message, code=503, reason="ServiceUnavailable", warnings=warnings)


def review_response(uid: str, decision: Decision) -> dict[str, Any]:
    """The AdmissionReview (v1) answering request ``uid`` with ``decision``."""
    response: dict[str, Any] = {"uid": uid, "allowed": decision.allowed}
    if not decision.allowed:
        status: dict[str, Any] = {
            "status": "Failure",
            "code": decision.code,
            "reason": decision.reason,
            "message": decision.message,
        }
        if decision.causes:
            status["details"] = {"causes": list(decision.causes)}
        response["status"] = status
    elif decision.patch:
        response["patchType"] = "JSONPatch"
        response["patch"] = base64.b64encode(orjson.dumps(list(decision.patch))).decode("ascii")
    if decision.warnings:
        response["warnings"] = [_clean_warning(w) for w in decision.warnings]
    return {"apiVersion": ADMISSION_API_VERSION, "kind": ADMISSION_KIND, "response": response}


def encode_response(uid: str, decision: Decision) -> bytes:
    return orjson.dumps(review_response(uid, decision))


def _clean_warning(text: str) -> str:
    """Warnings travel as HTTP ``Warning`` headers: one line, printable, bounded."""
    text = "".join(ch if ch.isprintable() else " " for ch in text).strip()
    if len(text) > MAX_WARNING_LENGTH:
        text = text[: MAX_WARNING_LENGTH - 3] + "..."
    return text
