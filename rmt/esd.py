"""Empirical spectral distributions and the Kolmogorov–Smirnov distance to a law (THEORY.md Definition 2.1).

* :func:`sv_esd` — the singular-value ESD ``nu_G = 1/min(N, M) sum_i delta_{s_i(G)}`` of an ``N x M``
  matrix (all ``min(N, M)`` singular values, zeros included).
* :func:`eig_esd` — the eigenvalue ESD ``mu_A = 1/M sum_i delta_{lambda_i(A)}`` of a symmetric PSD
  ``M x M`` matrix (``eigvalsh``); eigenvalues with ``|lambda| < 1e-9 lambda_max`` are clipped to exactly 0
  so that a rank deficiency shows up as an atom at zero.
* :class:`EmpiricalSpectrum` — the resulting equal-weight measure with its right-continuous CDF and its
  left limits (ties are counted with their multiplicity).
* :func:`ks_distance` — ``sup_x |F_n(x) - F(x)|`` for a law ``F`` that may itself have jumps (e.g. the
  Marchenko–Pastur atom at 0): both sides of every jump of either function are evaluated.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable

import numpy as np

from .errors import InvalidMatrixError, InvalidParameterError

__all__ = ["EmpiricalSpectrum", "sv_esd", "eig_esd", "ks_distance", "ZERO_CLIP_RELATIVE"]

#: Eigenvalues with ``|lambda| < ZERO_CLIP_RELATIVE * lambda_max`` are set to 0 (Definition 2.1).
ZERO_CLIP_RELATIVE = 1e-9


@dataclass(frozen=True, eq=False)
class EmpiricalSpectrum:
    """Equal-weight probability measure on ``values`` (sorted ascending, repeated values = ties).

    ``cdf(x) = #{v <= x} / n`` (right-continuous) and ``cdf_left(x) = #{v < x} / n`` (left limit).
    """

    values: np.ndarray

    def __post_init__(self) -> None:
        v = np.sort(np.asarray(self.values, dtype=np.float64).ravel())
        if v.size == 0:
            raise InvalidParameterError("EmpiricalSpectrum: values must not be empty")
        if not np.all(np.isfinite(v)):
            raise InvalidParameterError("EmpiricalSpectrum: values must be finite")
        v.setflags(write=False)
        object.__setattr__(self, "values", v)

    @property
    def size(self) -> int:
        return int(self.values.size)

    @property
    def weight(self) -> float:
        """Mass ``1/n`` of each value."""
        return 1.0 / self.values.size

    def cdf(self, x) -> np.ndarray:
        """``F_n(x) = #{v <= x} / n``."""
        return np.searchsorted(self.values, np.asarray(x, dtype=np.float64), side="right") / self.values.size

    def cdf_left(self, x) -> np.ndarray:
        """Left limit ``F_n(x-) = #{v < x} / n``."""
        return np.searchsorted(self.values, np.asarray(x, dtype=np.float64), side="left") / self.values.size

    def mass_at(self, x: float) -> float:
        """Mass of the atom at ``x`` (0 when ``x`` is not a value)."""
        return float(self.cdf(x) - self.cdf_left(x))

    def moment(self, k: int) -> float:
        """``int x^k d nu = mean(values**k)``."""
        return float(np.mean(self.values**k))


def _as_finite_matrix(name: str, a) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    if a.ndim != 2 or a.size == 0:
        raise InvalidMatrixError(f"{name} must be a non-empty 2-D matrix, got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise InvalidMatrixError(f"{name} contains NaN or Inf")
    return a


def sv_esd(G) -> EmpiricalSpectrum:
    """Singular-value ESD ``nu_G`` of an ``N x M`` matrix: its ``min(N, M)`` singular values, zeros
    included, each with weight ``1/min(N, M)`` (Definition 2.1)."""
    g = _as_finite_matrix("G", G)
    return EmpiricalSpectrum(np.linalg.svd(g, compute_uv=False))


def eig_esd(A, symmetry_rtol: float = 1e-10) -> EmpiricalSpectrum:
    """Eigenvalue ESD ``mu_A`` of a symmetric PSD ``M x M`` matrix (Definition 2.1).

    Eigenvalues come from ``numpy.linalg.eigvalsh``; those with ``|lambda| < 1e-9 lambda_max`` (rounding
    noise of a PSD matrix, including slightly negative ones) are set to exactly 0.  ``A`` must be square
    and symmetric to ``symmetry_rtol`` relative to ``max|A_ij|``.
    """
    a = _as_finite_matrix("A", A)
    if a.shape[0] != a.shape[1]:
        raise InvalidMatrixError(f"A must be square, got shape {a.shape}")
    scale = float(np.max(np.abs(a)))
    if np.max(np.abs(a - a.T)) > symmetry_rtol * scale:
        raise InvalidMatrixError("A must be symmetric (|A - A^T| exceeds symmetry_rtol * max|A|)")
    lam = np.linalg.eigvalsh(a)
    lam_max = float(np.max(np.abs(lam)))
    lam = np.where(np.abs(lam) < ZERO_CLIP_RELATIVE * lam_max, 0.0, lam)
    return EmpiricalSpectrum(lam)


def ks_distance(
    sample: EmpiricalSpectrum | np.ndarray,
    law_cdf: Callable[[np.ndarray], np.ndarray],
    jump_points: Iterable[float] = (),
) -> float:
    """Kolmogorov–Smirnov distance ``sup_x |F_n(x) - F(x)|`` between an empirical measure and a law.

    ``law_cdf`` is the right-continuous CDF ``F`` of the law (vectorized); ``jump_points`` lists the
    locations of its atoms (e.g. ``(0.0,)`` for the Marchenko–Pastur law with ``c > 1``).  Between two
    consecutive jump points of ``F_n`` or ``F`` the empirical CDF is constant and ``F`` is monotone, so the
    supremum is attained as a one-sided limit at a jump point: both ``|F_n(x) - F(x)|`` and
    ``|F_n(x-) - F(x-)|`` are evaluated there, with ``F(x-)`` taken as ``F`` at the next float below ``x``.
    """
    esd = sample if isinstance(sample, EmpiricalSpectrum) else EmpiricalSpectrum(sample)
    jumps = np.asarray(list(jump_points), dtype=np.float64)
    if jumps.size and not np.all(np.isfinite(jumps)):
        raise InvalidParameterError("ks_distance: jump_points must be finite")
    x = np.unique(np.concatenate([esd.values, jumps]))
    right = np.abs(esd.cdf(x) - np.asarray(law_cdf(x), dtype=np.float64))
    left = np.abs(esd.cdf_left(x) - np.asarray(law_cdf(np.nextafter(x, -np.inf)), dtype=np.float64))
    return float(max(np.max(right), np.max(left)))
