"""Delegated authentication and authorization, as kube-apiserver expects of an aggregated API server.

``config`` watches ``kube-system/extension-apiserver-authentication`` (who may authenticate),
``authenticate`` turns a TLS peer certificate, ``X-Remote-*`` headers or a bearer token into a
:class:`UserInfo`, ``authorize`` asks SubjectAccessReviews, ``middleware`` puts both in front of
every request, and ``wiring.Auth`` builds them all (with the serving TLS) in the right order.
"""

from mcs_apiserver.auth.authenticate import Authenticator, TokenReviewer, UserInfo
from mcs_apiserver.auth.authorize import (
    Authorizer,
    Decision,
    RequestAttributes,
    request_attributes,
)
from mcs_apiserver.auth.config import AuthenticationConfig, AuthenticationConfigWatcher
from mcs_apiserver.auth.middleware import auth_middleware
from mcs_apiserver.auth.review import ReviewError
from mcs_apiserver.auth.wiring import Auth

__all__ = [
    "Auth",
    "AuthenticationConfig",
    "AuthenticationConfigWatcher",
    "Authenticator",
    "Authorizer",
    "Decision",
    "RequestAttributes",
    "ReviewError",
    "TokenReviewer",
    "UserInfo",
    "auth_middleware",
    "request_attributes",
]
