"""Opaque ``continue`` tokens for paginated lists (``limit`` + ``continue``).

A token is unpadded base64url of a small JSON document, in the spirit of kube-apiserver's own
(``{"v":"meta.k8s.io/v1","rv":N,"start":"key"}``)::

    {"v": "views.multicluster.x-k8s.io/v1alpha1", "rv": "<RV of the first page>", "start": "<last key served>"}

The next page serves the keys strictly greater than ``start`` from the snapshot at ``rv``. Clients treat
the token as opaque; anything that does not decode to exactly this shape is rejected with 400
``BadRequest`` (``invalid continue token: ...``), like kube-apiserver does.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Final

import orjson

from mcs_apiserver.kube.status import StatusError, bad_request
from mcs_apiserver.contract import API_VERSION

__all__ = ["ContinueToken", "ContinueTokenError", "encode_continue", "decode_continue", "MAX_TOKEN_LENGTH"]

#: Tokens longer than this are refused without decoding (keys are namespace/name: well under 1 KiB).
MAX_TOKEN_LENGTH: Final = 4096
_VERSION: Final = API_VERSION


class ContinueTokenError(StatusError):
    """A ``continue`` parameter that is not one of our tokens: 400 ``BadRequest``."""

    def __init__(self, why: str) -> None:
        super().__init__(bad_request(f"invalid continue token: {why}"))
        self.why = why


@dataclass(frozen=True, slots=True)
class ContinueToken:
    """Where the next page starts: the snapshot (``resource_version``) and the last key already served."""

    resource_version: str
    last_key: str

    def encode(self) -> str:
        return encode_continue(self.resource_version, self.last_key)


def encode_continue(resource_version: str, last_key: str) -> str:
    """The token for "the list at ``resource_version``, after ``last_key``"."""
    if not resource_version:
        raise ValueError("a continue token needs a resourceVersion")
    raw = orjson.dumps({"v": _VERSION, "rv": resource_version, "start": last_key})
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def decode_continue(token: str) -> ContinueToken:
    """Decode and validate a token; raises :class:`ContinueTokenError` for anything else."""
    if not token:
        raise ContinueTokenError("empty token")
    if len(token) > MAX_TOKEN_LENGTH:
        raise ContinueTokenError("token is too long")
    try:
        data = token.encode("ascii")
    except UnicodeEncodeError:
        raise ContinueTokenError("not base64url") from None
    data = data.rstrip(b"=")
    data += b"=" * (-len(data) % 4)
    try:
        raw = base64.b64decode(data, altchars=b"-_", validate=True)
    except (binascii.Error, ValueError):
        raise ContinueTokenError("not base64url") from None
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise ContinueTokenError("not a JSON document") from None
    if not isinstance(doc, dict):
        raise ContinueTokenError("not a JSON object")
    if doc.get("v") != _VERSION:
        raise ContinueTokenError(f"unknown version {doc.get('v')!r}, expected {_VERSION!r}")
    rv = doc.get("rv")
    start = doc.get("start")
    if not isinstance(rv, str) or not rv:
        raise ContinueTokenError("missing resourceVersion")
    if not isinstance(start, str):
        raise ContinueTokenError("missing start key")
    if set(doc) != {"v", "rv", "start"}:
        raise ContinueTokenError("unexpected fields")
    return ContinueToken(rv, start)
