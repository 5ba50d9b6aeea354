"""Cumulative sparsity grids (ALGORITHMS.md 2.2, 6.1).

Cumulative pipelines (classical RMT, Hybrid) walk the grid ``step, 2 step, ...`` below the target
``s`` and end exactly at ``s`` (the paper's grid is ``0.05, 0.10, ..., 0.70``).
"""

from __future__ import annotations

import math

from .arguments import check_sparsity
from .errors import PruningParameterError

__all__ = ["sparsity_grid"]


def sparsity_grid(target_sparsity: float, step: float = 0.05) -> list[float]:
    """``[step, 2 step, ..., s]``: the multiples of ``step`` strictly below ``s`` (rounded to 1e-10), then ``s``."""
    s = check_sparsity(target_sparsity)
    if not 0.0 < step < 1.0:
        raise PruningParameterError(f"grid_step: must lie in (0, 1), got {step!r}")
    return [round(step * i, 10) for i in range(1, math.ceil(s / step - 1e-9))] + [s]
