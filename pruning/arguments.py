"""Argument checks shared by every pruning method (ALGORITHMS.md 0.2: sparsity is a fraction in [0, 1))."""

from __future__ import annotations

from .errors import PruningParameterError

__all__ = ["check_sparsity"]


def check_sparsity(target_sparsity: float, label: str = "target_sparsity") -> float:
    """``target_sparsity`` as a float in ``[0, 1)``; anything else (NaN included) is a typed error naming ``label``."""
    try:
        s = float(target_sparsity)
    except (TypeError, ValueError) as exc:
        raise PruningParameterError(f"{label}: must be a number in [0, 1), got {target_sparsity!r}") from exc
    if not 0.0 <= s < 1.0:
        raise PruningParameterError(f"{label}: must lie in [0, 1), got {target_sparsity!r}")
    return s
