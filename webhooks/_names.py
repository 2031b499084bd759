"""DNS name checks used by the webhooks (same rules as ``mcs_apiserver.views.names``).

Kept private and minimal on purpose: the view engine owns the canonical helpers
(``mcs_apiserver.views.names``, same function names and semantics), and the lead may replace this
module's import with that one once the view engine lands. The tests of the webhooks pin the
behaviour, so the swap cannot change an admission answer silently.

``re.fullmatch`` (never ``match`` with ``$``, which accepts a trailing newline).
"""

from __future__ import annotations

import re

DNS1123_LABEL_MAX_LENGTH = 63
DNS1035_LABEL_MAX_LENGTH = 63

_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_LABEL_RE = re.compile(_LABEL)
_DNS1123_SUBDOMAIN_RE = re.compile(rf"{_LABEL}(\.{_LABEL})*")
_DNS1035_LABEL_RE = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
_NOT_LABEL_CHARS_RE = re.compile(r"[^a-z0-9]+")


def is_dns1123_label(value: str) -> bool:
    """True if ``value`` is an RFC 1123 DNS label (<= 63 characters, lower case)."""
    return len(value) <= DNS1123_LABEL_MAX_LENGTH and _DNS1123_LABEL_RE.fullmatch(value) is not None


def is_dns1123_subdomain(value: str) -> bool:
    """True if ``value`` is an RFC 1123 DNS subdomain (<= 253 characters, lower case)."""
    return len(value) <= 253 and _DNS1123_SUBDOMAIN_RE.fullmatch(value) is not None


def is_dns1035_label(value: str) -> bool:
    """True if ``value`` is an RFC 1035 DNS label (starts with a letter, <= 63 characters)."""
    return len(value) <= DNS1035_LABEL_MAX_LENGTH and _DNS1035_LABEL_RE.fullmatch(value) is not None


def suggest_dns1123_label(value: str) -> str:
    """A valid DNS label close to ``value`` (for hints), or ``""`` when nothing usable is left.

    Like Submariner's sanitizer: lower-case, runs of other characters become one '-', then leading
    and trailing '-' are dropped and the result is cut to 63 characters.
    """
    label = _NOT_LABEL_CHARS_RE.sub("-", value.lower()).strip("-")[:DNS1123_LABEL_MAX_LENGTH]
    return label.rstrip("-")
