"""Structured, quiet logs: one line per event, ``text`` (key=value) or ``json``, warnings by default.

Nothing is logged per request; lifecycle events (listening, ready, member reachable/unreachable)
are INFO, trouble is WARNING.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import TextIO

import orjson

_STANDARD = set(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}


class _Formatter(logging.Formatter):
    def __init__(self, fmt: str) -> None:
        super().__init__()
        self.json = fmt == "json"

    def format(self, record: logging.LogRecord) -> str:
        fields = {k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")}
        when = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"
        message = record.getMessage()
        if record.exc_info:
            fields["error"] = self.formatException(record.exc_info)
        if self.json:
            return orjson.dumps({"ts": when, "level": record.levelname.lower(), "logger": record.name,
                                 "msg": message, **fields}, default=str).decode()
        extra = "".join(f" {k}={_quote(v)}" for k, v in fields.items())
        return f"{when} {record.levelname[0]} {record.name}: {message}{extra}"


def _quote(value: object) -> str:
    text = str(value)
    return orjson.dumps(text).decode() if (" " in text or "\n" in text or not text) else text


def configure(level: str = "warning", fmt: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Formatter(fmt))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    logging.getLogger("mcs_apiserver").setLevel(level.upper())
    logging.getLogger("webhooks").setLevel(level.upper())


class Progress:
    """Timestamped progress lines (on stderr, as a rule) for long operations: bringing up a local
    ClusterSet, installing, benchmarks; a slow step shows where the time goes."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.started = time.monotonic()

    def __call__(self, message: str) -> None:
        print(f"[{time.monotonic() - self.started:6.1f}s] {message}", file=self.out, flush=True)
