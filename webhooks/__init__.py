"""Admission webhooks for ClusterProperty (KEP-2149) and ServiceExport (KEP-1645).

AdmissionReview in, decisions out. The rules are pure functions of the request and of an
``AdmissionFacts`` object (``webhooks.facts``), which the view engine implements; ``add_routes``
puts the four webhooks on an aiohttp application.

Public surface::

    from webhooks import add_routes, AdmissionFacts, MemberIdentity, NotSynced
"""

from __future__ import annotations

from .facts import AdmissionFacts, Conflict, MemberIdentity, NotSynced
from .handlers import (
    MUTATE_CLUSTERPROPERTIES_PATH,
    MUTATE_SERVICEEXPORTS_PATH,
    PATHS,
    VALIDATE_CLUSTERPROPERTIES_PATH,
    VALIDATE_SERVICEEXPORTS_PATH,
    add_routes,
    make_handlers,
)
from .review import MAX_BODY_BYTES, AdmissionRequest, Decision, ReviewError, parse_review, review_response
from .serviceexport import ConflictPolicy

__all__ = [
    "MAX_BODY_BYTES",
    "MUTATE_CLUSTERPROPERTIES_PATH",
    "MUTATE_SERVICEEXPORTS_PATH",
    "PATHS",
    "VALIDATE_CLUSTERPROPERTIES_PATH",
    "VALIDATE_SERVICEEXPORTS_PATH",
    "AdmissionFacts",
    "AdmissionRequest",
    "Conflict",
    "ConflictPolicy",
    "Decision",
    "MemberIdentity",
    "NotSynced",
    "ReviewError",
    "add_routes",
    "make_handlers",
    "parse_review",
    "review_response",
]
