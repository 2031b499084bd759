"""May this user do this: request attributes like kube-apiserver's, decided by SubjectAccessReview.

An aggregated API server has no RBAC of its own: it asks the local kube-apiserver, with the same
attributes kube-apiserver would have used had it served the request itself, so that the RBAC rules
people write for ``serviceimports.views.multicluster.x-k8s.io`` just work. The attributes are the
request info (``mcs_apiserver.kube.requestinfo``), which follows kube's ``RequestInfoFactory``
exactly (verbs list/watch/deletecollection, namespaces, subresources, ``fieldSelector=metadata.name=``
naming the object).

Decisions are cached 10 seconds, allow and deny alike (kube's delegating authorizer defaults), and
concurrent identical questions share one review.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from mcs_apiserver.kube.requestinfo import RequestInfo, RequestInfoError, request_info
from mcs_apiserver.kube.status import forbidden
from mcs_apiserver.auth.authenticate import UserInfo
from mcs_apiserver.auth.cache import ExpiringCache
from mcs_apiserver.auth.review import ReviewError, create_review
from mcs_apiserver.auth.settings import AuthSettings
from mcs_apiserver.kube.types import Status
from mcs_apiserver.kube.client import KubeClient

__all__ = [
    "DEFAULT_ALLOWED_GROUPS",
    "DEFAULT_ALLOWED_PATHS",
    "Authorizer",
    "Decision",
    "RequestAttributes",
    "RequestInfoError",
    "forbidden_status",
    "request_attributes",
]

log = logging.getLogger("mcs_apiserver.auth.authorize")

SUBJECT_ACCESS_REVIEW_PATH = "/apis/authorization.k8s.io/v1/subjectaccessreviews"

#: Non-resource paths any authenticated user may GET without asking. Health paths are kube's
#: delegated defaults; OpenAPI because the aggregator fetches it as ``system:aggregator`` with no
#: groups at all, and what it publishes is public to every authenticated user anyway
#: (``system:discovery``); ``/version`` as kube's ``system:public-info-viewer`` grants it. A trailing ``*`` makes a prefix, as in kube's path authorizer.
DEFAULT_ALLOWED_PATHS = (
    "/healthz", "/healthz/*", "/readyz", "/readyz/*", "/livez", "/livez/*", "/openapi", "/openapi/*",
    "/version",
)
#: Superusers, decided locally as kube-apiserver's delegating authorizer does.
DEFAULT_ALLOWED_GROUPS = ("system:masters",)

#: The request attributes authorization decides on: kube's RequestInfo, computed once per request by
#: ``mcs_apiserver.kube.requestinfo`` (its equality and hash cover exactly the authorization fields).
RequestAttributes = RequestInfo
request_attributes = request_info


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    #: The authorizer's explanation (SubjectAccessReview ``status.reason``), shown on a 403.
    reason: str = ""


_ALLOW = Decision(True)


class Authorizer:
    """Delegated authorization: local shortcuts, then a cached SubjectAccessReview.

    A review that cannot be made (kube-apiserver unreachable, our identity lacks
    ``system:auth-delegator``) raises ``ReviewError``: there is no decision, and kube-apiserver
    answers such an authorizer error (``DecisionNoOpinion`` plus an error) with 500 Internal Server
    Error, not 403, so that a client retries instead of concluding it lacks permission. Errors are
    never cached.
    """

    def __init__(
        self,
        client: KubeClient,
        *,
        ttl: float = 10.0,
        max_entries: int = 8192,
        allowed_paths: Iterable[str] = DEFAULT_ALLOWED_PATHS,
        allowed_groups: Iterable[str] = DEFAULT_ALLOWED_GROUPS,
        settings: AuthSettings = AuthSettings(),
    ) -> None:
        self.client = client
        self.settings = settings
        paths = tuple(allowed_paths)
        self._exact_paths = frozenset(p for p in paths if not p.endswith("*"))
        self._path_prefixes = tuple(p[:-1] for p in paths if p.endswith("*"))
        self._allowed_groups = frozenset(allowed_groups)
        self._cache: ExpiringCache[tuple[Any, ...], Decision] = ExpiringCache(ttl, max_entries)

    async def authorize(self, user: UserInfo, attributes: RequestAttributes) -> Decision:
        """Allow or deny ``attributes`` for an authenticated ``user``; ``ReviewError`` if unknown."""
        if not attributes.resource_request and (
            attributes.path in self._exact_paths or attributes.path.startswith(self._path_prefixes)
        ):
            return _ALLOW
        for group in user.groups:
            if group in self._allowed_groups:
                return _ALLOW
        extra = tuple(sorted(user.extra.items())) if user.extra else ()
        key = (user.name, user.uid, user.groups, extra, attributes)
        return await self._cache.get(key, lambda: self._review(user, attributes))

    async def _review(self, user: UserInfo, attributes: RequestAttributes) -> Decision:
        spec: dict[str, Any] = {"user": user.name, "groups": list(user.groups)}
        if user.uid:
            spec["uid"] = user.uid
        if user.extra:
            spec["extra"] = {key: list(values) for key, values in user.extra.items()}
        if attributes.resource_request:
            fields = {
                "namespace": attributes.namespace, "verb": attributes.verb, "group": attributes.api_group,
                "version": attributes.api_version, "resource": attributes.resource,
                "subresource": attributes.subresource, "name": attributes.name,
            }
            spec["resourceAttributes"] = {k: v for k, v in fields.items() if v}
        else:
            spec["nonResourceAttributes"] = {"path": attributes.path, "verb": attributes.verb}
        review = {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": spec}
        status = (await create_review(self.client, SUBJECT_ACCESS_REVIEW_PATH, review, self.settings)).get("status") or {}
        if status.get("allowed") and status.get("denied"):
            raise ReviewError("the SubjectAccessReview answer both allows and denies")
        decision = Decision(bool(status.get("allowed")), str(status.get("reason") or ""))
        if not decision.allowed:
            log.debug("forbidden", extra={"user": user.name, "verb": attributes.verb, "path": attributes.path,
                                          "reason": decision.reason})
        return decision


def forbidden_status(user: UserInfo, attributes: RequestAttributes, reason: str = "") -> Status:
    """The 403 ``Status`` kube-apiserver would answer, word for word, e.g.::

        serviceimports.views.multicluster.x-k8s.io "x" is forbidden: User "bob" cannot get resource
        "serviceimports" in API group "views.multicluster.x-k8s.io" in the namespace "ns"
    """
    if not attributes.resource_request:
        return forbidden(user=user.name, verb=attributes.verb, path=attributes.path, reason=reason)
    return forbidden(
        user=user.name, verb=attributes.verb, resource=attributes.resource, group=attributes.api_group,
        name=attributes.name, namespace=attributes.namespace, subresource=attributes.subresource, reason=reason,
    )
