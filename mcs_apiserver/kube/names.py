"""Name checks: RFC 1123 DNS labels and subdomains, RFC 1035 labels (Service names).

One copy for the view engine, the admission webhooks and the label-selector parser: a name the
webhook admits must be one the views can serve, and a label key prefix must be checked the same way. The rules follow Kubernetes' ``k8s.io/apimachinery/pkg/util/validation``.
"""

from __future__ import annotations

import re

DNS1123_LABEL_MAX_LENGTH = 63
DNS1123_SUBDOMAIN_MAX_LENGTH = 253
DNS1035_LABEL_MAX_LENGTH = 63

#: The regular expressions of apimachinery, quoted as they are in its error messages.
DNS1123_LABEL_FMT = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
DNS1123_SUBDOMAIN_FMT = rf"{DNS1123_LABEL_FMT}(\.{DNS1123_LABEL_FMT})*"
_DNS1035_LABEL_FMT = r"[a-z]([-a-z0-9]*[a-z0-9])?"

_DNS1123_LABEL_RE = re.compile(DNS1123_LABEL_FMT)
DNS1123_SUBDOMAIN_RE = re.compile(DNS1123_SUBDOMAIN_FMT)
_DNS1035_LABEL_RE = re.compile(_DNS1035_LABEL_FMT)


_NOT_LABEL_CHARS_RE = re.compile(r"[^a-z0-9]+")


def is_dns1123_label(value: str) -> bool:
    """True if ``value`` is an RFC 1123 DNS label (<= 63 characters, lower case)."""
    return len(value) <= DNS1123_LABEL_MAX_LENGTH and _DNS1123_LABEL_RE.fullmatch(value) is not None


def is_dns1123_subdomain(value: str) -> bool:
    """True if ``value`` is an RFC 1123 DNS subdomain (<= 253 characters, lower case)."""
    return (
        len(value) <= DNS1123_SUBDOMAIN_MAX_LENGTH
        and DNS1123_SUBDOMAIN_RE.fullmatch(value) is not None
    )


def is_dns1035_label(value: str) -> bool:
    """True if ``value`` is an RFC 1035 DNS label (starts with a letter, <= 63 characters)."""
    return len(value) <= DNS1035_LABEL_MAX_LENGTH and _DNS1035_LABEL_RE.fullmatch(value) is not None


def suggest_dns1123_label(value: str) -> str:
    """A valid DNS label close to ``value`` (for hints in error messages), ``""`` if nothing is left.

    Like Submariner's sanitizer: lower-case, runs of other characters become one '-', leading and
    trailing '-' are dropped, and the result is cut to 63 characters.
    """
    label = _NOT_LABEL_CHARS_RE.sub("-", value.lower()).strip("-")[:DNS1123_LABEL_MAX_LENGTH]
    return label.rstrip("-")
