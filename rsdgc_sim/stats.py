"""Robust summaries of repeated timings, torch-free (the profiler and the emulation both
report them)."""

from __future__ import annotations

from collections.abc import Sequence


def iqr(xs: Sequence[float]) -> float:
    """Interquartile range (linear interpolation between order statistics, as numpy's
    default percentile); 0 for fewer than two values."""
    s = sorted(xs)
    if len(s) < 2:
        return 0.0

    def q(p: float) -> float:
        pos = p * (len(s) - 1)
        lo = int(pos)
        hi = min(lo + 1, len(s) - 1)
        return s[lo] + (s[hi] - s[lo]) * (pos - lo)

    return float(q(0.75) - q(0.25))
