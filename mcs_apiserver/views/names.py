"""Name checks: RFC 1123 DNS labels and subdomains, RFC 1035 labels, Service names.

They live here, not in the webhooks, because the view engine and the admission webhooks must agree
on what a valid cluster ID or Service name is: a name the webhook admits must be one the views can
serve, and vice versa. The rules and the wording of the errors follow Kubernetes'
``k8s.io/apimachinery/pkg/util/validation`` so that a person sees the messages they already know.

Each check comes in two forms: ``*_errors(value) -> list[str]`` (empty when valid, for messages)
and ``is_*(value) -> bool`` (for the hot path).
"""

from __future__ import annotations

import re

DNS1123_LABEL_MAX_LENGTH = 63
DNS1123_SUBDOMAIN_MAX_LENGTH = 253
DNS1035_LABEL_MAX_LENGTH = 63

_DNS1123_LABEL_FMT = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_SUBDOMAIN_FMT = rf"{_DNS1123_LABEL_FMT}(\.{_DNS1123_LABEL_FMT})*"
_DNS1035_LABEL_FMT = r"[a-z]([-a-z0-9]*[a-z0-9])?"

_DNS1123_LABEL_RE = re.compile(_DNS1123_LABEL_FMT)
_DNS1123_SUBDOMAIN_RE = re.compile(_DNS1123_SUBDOMAIN_FMT)
_DNS1035_LABEL_RE = re.compile(_DNS1035_LABEL_FMT)


_NOT_LABEL_CHARS_RE = re.compile(r"[^a-z0-9]+")


def _max_len_error(length: int) -> str:
    return f"must be no more than {length} characters"


def dns1123_label_errors(value: str) -> list[str]:
    """Why ``value`` is not an RFC 1123 DNS label (cluster IDs, namespace names); empty if it is."""
    errors: list[str] = []
    if len(value) > DNS1123_LABEL_MAX_LENGTH:
        errors.append(_max_len_error(DNS1123_LABEL_MAX_LENGTH))
    if not _DNS1123_LABEL_RE.fullmatch(value):
        errors.append(
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
            "and must start and end with an alphanumeric character (e.g. 'my-name', or '123-abc')"
        )
    return errors


def dns1123_subdomain_errors(value: str) -> list[str]:
    """Why ``value`` is not an RFC 1123 DNS subdomain (most object names); empty if it is."""
    errors: list[str] = []
    if len(value) > DNS1123_SUBDOMAIN_MAX_LENGTH:
        errors.append(_max_len_error(DNS1123_SUBDOMAIN_MAX_LENGTH))
    if not _DNS1123_SUBDOMAIN_RE.fullmatch(value):
        errors.append(
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, "
            "'-' or '.', and must start and end with an alphanumeric character "
            "(e.g. 'example.com')"
        )
    return errors


def dns1035_label_errors(value: str) -> list[str]:
    """Why ``value`` is not an RFC 1035 DNS label (must start with a letter); empty if it is."""
    errors: list[str] = []
    if len(value) > DNS1035_LABEL_MAX_LENGTH:
        errors.append(_max_len_error(DNS1035_LABEL_MAX_LENGTH))
    if not _DNS1035_LABEL_RE.fullmatch(value):
        errors.append(
            "a DNS-1035 label must consist of lower case alphanumeric characters or '-', "
            "start with an alphabetic character, and end with an alphanumeric character "
            "(e.g. 'my-name', or 'abc-123')"
        )
    return errors


def service_name_errors(value: str) -> list[str]:
    """Why ``value`` cannot name a Service (and so cannot name a ServiceExport); empty if it can.

    Kubernetes validates Service names as DNS-1035 labels: unlike most objects they must start with
    a letter, because the name becomes a DNS label and an environment-variable prefix.
    """
    return dns1035_label_errors(value)


def is_dns1123_label(value: str) -> bool:
    """True if ``value`` is an RFC 1123 DNS label (<= 63 characters, lower case)."""
    return len(value) <= DNS1123_LABEL_MAX_LENGTH and _DNS1123_LABEL_RE.fullmatch(value) is not None


def is_dns1123_subdomain(value: str) -> bool:
    """True if ``value`` is an RFC 1123 DNS subdomain (<= 253 characters, lower case)."""
    return (
        len(value) <= DNS1123_SUBDOMAIN_MAX_LENGTH
        and _DNS1123_SUBDOMAIN_RE.fullmatch(value) is not None
    )


def is_dns1035_label(value: str) -> bool:
    """True if ``value`` is an RFC 1035 DNS label (starts with a letter, <= 63 characters)."""
    return len(value) <= DNS1035_LABEL_MAX_LENGTH and _DNS1035_LABEL_RE.fullmatch(value) is not None


def is_valid_service_name(value: str) -> bool:
    """True if ``value`` can name a Service (a DNS-1035 label)."""
    return is_dns1035_label(value)


def suggest_dns1123_label(value: str) -> str:
    """A valid DNS label close to ``value`` (for hints in error messages), ``""`` if nothing is left.

    Like Submariner's sanitizer: lower-case, runs of other characters become one '-', leading and
    trailing '-' are dropped, and the result is cut to 63 characters.
    """
    label = _NOT_LABEL_CHARS_RE.sub("-", value.lower()).strip("-")[:DNS1123_LABEL_MAX_LENGTH]
    return label.rstrip("-")
