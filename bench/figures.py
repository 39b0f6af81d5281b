"""What the benchmarks share for their figures (run as `python bench/NAME.py`, so this
folder is on the import path)."""

from __future__ import annotations


def percentile(samples: list[float], p: float) -> float:
    """The p-th percentile of `samples`, nearest rank."""
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]
