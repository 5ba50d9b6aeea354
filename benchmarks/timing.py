"""Repeated wall-clock timing shared by the benchmarks (medians resist this machine's slow bursts)."""

from __future__ import annotations

import statistics
import time
from typing import Any, Callable

__all__ = ["median_time", "timed_median"]


def timed_median(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    """Run ``fn`` ``repeats`` times; return the median wall-clock seconds and the last result."""
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def median_time(fn: Callable[[], Any], repeats: int = 3) -> float:
    """Median wall-clock seconds of ``repeats`` runs of ``fn``."""
    return timed_median(fn, repeats)[0]
