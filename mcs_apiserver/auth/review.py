"""Creating TokenReview and SubjectAccessReview objects in the local kube-apiserver.

A review is a POST whose answer is the same object with a ``status``. A request is waiting on it,
so transient failures (connection reset, 429, 5xx: the API server restarting) are retried a couple
of times quickly, like kube-apiserver's webhook authenticator/authorizer retry with backoff;
anything else fails at once with a message that says which permission is missing.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp

from mcs_apiserver.auth.settings import AuthSettings
from mcs_apiserver.kube.client import ApiError, KubeClient

__all__ = ["ReviewError", "create_review"]

_PERMISSION_HINT = (
    "; the identity of this server needs the ClusterRole system:auth-delegator "
    "(a ClusterRoleBinding to it) to create TokenReviews and SubjectAccessReviews"
)


class ReviewError(Exception):
    """The review could not be created: no decision is known."""


class _TransientReviewError(ReviewError):
    """Worth another try: the API server may answer in a moment."""


async def create_review(client: KubeClient, path: str, review: dict[str, Any],
                        settings: AuthSettings) -> dict[str, Any]:
    """POST ``review`` to ``path`` and return the answer (which holds the ``status``)."""
    delay = settings.review_first_retry_delay
    for _ in range(settings.review_attempts - 1):
        try:
            return await _post(client, path, review, settings.review_timeout)
        except _TransientReviewError:
            await asyncio.sleep(delay)
            delay *= 2
    return await _post(client, path, review, settings.review_timeout)


async def _post(client: KubeClient, path: str, review: dict[str, Any], timeout: float) -> dict[str, Any]:
    kind = review.get("kind", "review")
    try:
        answer = await client.json("POST", path, body=review, timeout=timeout)
    except ApiError as error:
        message = f"creating a {kind} failed: {error}"
        if error.code == 429 or error.code >= 500:
            raise _TransientReviewError(message) from error
        raise ReviewError(message + (_PERMISSION_HINT if error.code == 403 else "")) from error
    except (TimeoutError, aiohttp.ClientError) as error:
        raise _TransientReviewError(f"creating a {kind} failed: {error!r}") from error
    if not isinstance(answer, dict):
        raise ReviewError(f"creating a {kind} returned {type(answer).__name__}, not an object")
    return answer
