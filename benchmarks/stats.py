"""Latency samples and their summaries.

Percentiles interpolate linearly between order statistics (numpy's default), so a p99 over 30
samples is close to the maximum: the report says how many samples each figure rests on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


def percentile(samples: list[float], q: float) -> float:
    """The ``q``-th percentile (0-100) of ``samples``, interpolated."""
    if not samples:
        return math.nan
    ordered = sorted(samples)
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass(frozen=True)
class Summary:
    """p50/p99 of one series of durations, in seconds."""

    count: int
    p50: float
    p99: float
    total: float

    @classmethod
    def of(cls, samples: list[float]) -> Summary:
        return cls(
            count=len(samples),
            p50=percentile(samples, 50),
            p99=percentile(samples, 99),
            total=math.fsum(samples),
        )


def ms(seconds: float) -> str:
    """A duration for a table: milliseconds, with precision that matches the magnitude."""
    if math.isnan(seconds):
        return "n/a"
    value = seconds * 1000
    if value < 10:
        return f"{value:.2f} ms"
    if value < 100:
        return f"{value:.1f} ms"
    return f"{value:.0f} ms"


def ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else math.nan


def fmt_ratio(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.2f}"


def mib(num_bytes: float) -> str:
    return f"{num_bytes / 2**20:.1f} MiB"


def kib(num_bytes: float) -> str:
    return f"{num_bytes / 2**10:.2f} KiB"
