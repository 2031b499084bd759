"""Kubernetes time formats: ``metav1.Time`` (seconds) and ``metav1.MicroTime`` (microseconds).

One place for them because views (condition times), members (last sync), webhooks (the
``exported-at`` stamp), writers (Lease times) and tables (ages) must all read and write the same text.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Final

__all__ = ["format_epoch", "format_micro_time", "format_time", "parse_micro_time", "parse_time", "utc_now"]

_MICRO_TIME_RE: Final = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z")


def utc_now() -> datetime:
    """The default clock: an aware datetime in UTC."""
    return datetime.now(timezone.utc)


def format_time(moment: datetime) -> str:
    """RFC 3339 with second precision and a ``Z``, as ``metav1.Time`` is serialised."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def format_epoch(epoch: float) -> str:
    """``format_time`` of a Unix timestamp (what monotonic-free clocks such as ``time.time`` give)."""
    return format_time(datetime.fromtimestamp(epoch, timezone.utc))


def format_micro_time(moment: datetime) -> str:
    """RFC 3339 with microseconds and a ``Z``, as ``metav1.MicroTime`` is serialised (Lease times,
    and the ``exported-at`` stamp, which must order two exports made in the same second)."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: object) -> datetime | None:
    """An RFC 3339 timestamp as an aware datetime (UTC if no offset), None if unreadable."""
    if not isinstance(text, str) or not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment


def parse_micro_time(value: object) -> datetime | None:
    """The moment in a value of exactly ``format_micro_time``'s format, None for anything else."""
    if not isinstance(value, str) or _MICRO_TIME_RE.fullmatch(value) is None:
        return None
    try:
        return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
    except ValueError:  # e.g. month 13
        return None
