"""Latency percentiles, one rule for every section that reports p50/p99."""

from __future__ import annotations

import statistics


def p50_p99(samples: list[float]) -> tuple[float, float]:
    """(median, p99) of ``samples``; p99 is the nearest-rank sample, not an interpolation."""
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return statistics.median(ordered), p99
