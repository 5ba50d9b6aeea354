"""MP noise-variance estimators of an ascending eigenvalue spectrum (ALGORITHMS.md 1.4).

Both estimators take the ``p`` eigenvalues ``lambda_i = s_i^2 / n`` (ascending, ``n``-normalised,
``gamma = p / n``) and return the entry variance ``sigma2`` of the iid noise they would come from:

* ``"bema"``: window ``lo = floor(alpha p)``, ``hi = floor((1 - alpha) p)`` (indices ``lo .. hi-1``),
  unit quantiles ``q_i = Q(i / p; gamma)`` of ``MarchenkoPastur(gamma, 1)`` and least squares through
  the origin ``sigma2 = sum_i q_i lambda_i / sum_i q_i^2``;
* ``"median"``: ``sigma2 = median(lambda) / Q(1/2; gamma)``.

:func:`rmt.fit.fit_mp` calls :func:`noise_variance` once on the whole spectrum; the spike test of
:mod:`rmt.spike_test` calls it again on each deflated spectrum (the top eigenvalues removed).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from .mp_law import MarchenkoPastur

__all__ = ["METHODS", "bema_window", "unit_quantiles", "least_squares_scale", "noise_variance"]

METHODS = ("bema", "median")


def bema_window(p: int, alpha_bema: float) -> tuple[int, int]:
    """Window ``(lo, hi) = (floor(alpha p), floor((1 - alpha) p))``, indices ``lo .. hi-1`` (section 1.4)."""
    return int(np.floor(alpha_bema * p)), int(np.floor((1.0 - alpha_bema) * p))


@lru_cache(maxsize=256)
def _cached_unit_quantiles(p: int, gamma: float, lo: int, hi: int) -> np.ndarray:
    q = MarchenkoPastur(gamma, 1.0).ppf(np.arange(lo, hi, dtype=np.float64) / p)
    q.setflags(write=False)
    return q


def unit_quantiles(levels: np.ndarray, gamma: float) -> np.ndarray:
    """``Q(u; gamma)``: quantiles of the unit-variance MP law ``MarchenkoPastur(gamma, 1)``."""
    return MarchenkoPastur(gamma, 1.0).ppf(np.asarray(levels, dtype=np.float64))


def least_squares_scale(q: np.ndarray, lam: np.ndarray) -> float:
    """Least squares through the origin: ``argmin_s sum (lam_i - s q_i)^2 = sum q lam / sum q^2``."""
    return float(np.dot(q, lam) / np.dot(q, q))


def noise_variance(lam_ascending: np.ndarray, gamma: float, method: str, alpha_bema: float) -> float:
    """``sigma2`` of ``method`` (``"bema"`` or ``"median"``, module docstring) from ascending ``lambda``.

    The caller has checked ``method`` and that the BEMA window ``bema_window(p, alpha_bema)`` is non-empty.
    """
    p = lam_ascending.size
    if method == "bema":
        lo, hi = bema_window(p, alpha_bema)
        return least_squares_scale(_cached_unit_quantiles(p, float(gamma), lo, hi), lam_ascending[lo:hi])
    return float(np.median(lam_ascending) / unit_quantiles(0.5, gamma))
