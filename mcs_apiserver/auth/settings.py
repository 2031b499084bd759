"""Tuning of delegated authentication and authorization (``serve`` hands it in; tests shorten it)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["AuthSettings"]


@dataclass(frozen=True, slots=True)
class AuthSettings:
    #: TokenReview / SubjectAccessReview: tries, the delay before the second (doubled each time), and
    #: the timeout of one call. A 429 or 5xx answer, or no answer, is retried.
    review_attempts: int = 3
    review_first_retry_delay: float = 0.2
    review_timeout: float = 10.0
    #: The watch of the extension-apiserver-authentication ConfigMap: its server-side timeout (the watch
    #: is re-opened this often even when nothing happens, which bounds how long a silently dead
    #: connection goes unnoticed) and the delay after errors, doubling from the first up to the maximum
    #: (a down API server is not hammered).
    config_watch_timeout: int = 300
    config_first_backoff: float = 0.5
    config_max_backoff: float = 30.0
