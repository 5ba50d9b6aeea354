"""Deterministic perturbation inequalities behind the collapse corollaries (THEORY.md 7.3, 7.4) — SOUND.

Each function evaluates one inequality exactly on a split ``W = S + R`` (signal ``S``, noise ``R``) whose
spectra are computed once (:class:`SplitSpectra`) and returns
:class:`verification.theorems.check_outcomes.CheckOutcome` (``realized <= bound`` up to the THEORY.md 0.3 tolerance).
They hold for *every* pair of matrices, so the hypothesis property tests
and experiments E5 and E12 allow zero violations.  Singular values are ``numpy.linalg.svd`` values
(descending, ``min(N, M)`` of them).

* Corollary 4.10: ``||R||_op <= ||R||_F``; Weyl ``max_i |s_i(S+R) - s_i(S)| <= ||R||_op``;
  Eckart–Young tail ``sum_{i>k} s_i(S+R)^2 <= 2 ||R||_F^2 + 2 sum_{i>k} s_i(S)^2``;
  counting ``nu_W((eps, inf)) <= ||W||_F^2 / (min(N, M) eps^2)``.
* Corollary 4.11, explicit Wedin form [ext]: if ``||R||_op < delta_k / 2`` (``delta_k = sigma_k(S) -
  sigma_{k+1}(S)``), the top-``k`` singular projectors satisfy
  ``max(||P_hat_U - P_U||_op, ||P_hat_V - P_V||_op) <= ||R||_op / (s_k(S+R) - sigma_{k+1}(S))
  <= ||R||_op / (delta_k - ||R||_op)``.
* OR1 Proposition 3.30 (ii): ``sup_x |nu_W((-inf, x]) - nu_R((-inf, x])| <= rank(S) / min(N, M)``.

``mutation`` selects a known-bad variant (the bound halved) used to show that the checks have teeth.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from certs.results import theory_tolerance
from rmt.errors import InvalidParameterError
from verification.theorems.check_outcomes import CheckOutcome, inequality

__all__ = [
    "MUTATIONS",
    "SplitSpectra",
    "projector_distance",
    "spectral_cdf_gap",
    "operator_frobenius_check",
    "weyl_check",
    "eckart_young_tail_check",
    "counting_check",
    "wedin_checks",
    "rank_ks_check",
]

#: Known-bad variants understood by every check here.
MUTATIONS = ("bound-halved",)

#: Relative float slack on singular values used when comparing two computed spectra (THEORY.md 0.3).
SPECTRUM_RTOL = 1e-9


def _factor(mutation: str | None) -> float:
    if mutation is None:
        return 1.0
    if mutation not in MUTATIONS:
        raise InvalidParameterError(f"mutation must be None or one of {MUTATIONS}, got {mutation!r}")
    return 0.5


@dataclass(frozen=True, eq=False)
class SplitSpectra:
    """``W = S + R`` with the singular values (descending) of ``W``, ``S`` and ``R`` and the singular
    vectors of ``W`` and ``S`` (``None`` unless requested: they cost a full SVD each)."""

    S: np.ndarray
    R: np.ndarray
    s_w: np.ndarray
    s_s: np.ndarray
    s_r: np.ndarray
    u_w: np.ndarray | None = None
    v_w: np.ndarray | None = None
    u_s: np.ndarray | None = None
    v_s: np.ndarray | None = None

    @property
    def W(self) -> np.ndarray:
        return self.S + self.R

    @property
    def r_op(self) -> float:
        return float(self.s_r[0])

    @classmethod
    def from_matrices(cls, S, R, vectors: bool = False) -> "SplitSpectra":
        """Spectra of an arbitrary pair (``vectors``: also the singular vectors of ``W`` and ``S``)."""
        S, R = np.asarray(S, dtype=np.float64), np.asarray(R, dtype=np.float64)
        if S.shape != R.shape or S.ndim != 2:
            raise InvalidParameterError(f"S and R must be matrices of one shape, got {S.shape} and {R.shape}")
        s_r = np.linalg.svd(R, compute_uv=False)
        if not vectors:
            return cls(S, R, np.linalg.svd(S + R, compute_uv=False), np.linalg.svd(S, compute_uv=False), s_r)
        u_w, s_w, vt_w = np.linalg.svd(S + R, full_matrices=False)
        u_s, s_s, vt_s = np.linalg.svd(S, full_matrices=False)
        return cls(S, R, s_w, s_s, s_r, u_w, vt_w.T, u_s, vt_s.T)

    @classmethod
    def from_factors(cls, U, sigma, V, R, vectors: bool = False) -> "SplitSpectra":
        """``S = U diag(sigma) V^T`` with orthonormal ``U``, ``V`` and non-increasing ``sigma >= 0``: the
        spectrum and the singular vectors of ``S`` are taken from the factors (no SVD of ``S``)."""
        sigma = np.asarray(sigma, dtype=np.float64)
        R = np.asarray(R, dtype=np.float64)
        if np.any(np.diff(sigma) > 0) or np.any(sigma < 0):
            raise InvalidParameterError("sigma must be non-negative and non-increasing")
        S = (U * sigma) @ V.T
        s_s = np.zeros(min(R.shape))
        s_s[: sigma.size] = sigma
        s_r = np.linalg.svd(R, compute_uv=False)
        if not vectors:
            return cls(S, R, np.linalg.svd(S + R, compute_uv=False), s_s, s_r, u_s=U, v_s=V)
        u_w, s_w, vt_w = np.linalg.svd(S + R, full_matrices=False)
        return cls(S, R, s_w, s_s, s_r, u_w, vt_w.T, U, V)


def projector_distance(Q1: np.ndarray, Q2: np.ndarray) -> float:
    """``||Q1 Q1^T - Q2 Q2^T||_op`` for two ``n x k`` matrices with orthonormal columns (same ``k``).

    Equals the sine of the largest principal angle, computed stably as ``||Q2 - Q1 (Q1^T Q2)||_op``.
    """
    if Q1.shape != Q2.shape:
        raise InvalidParameterError(f"projector_distance needs equal shapes, got {Q1.shape} and {Q2.shape}")
    return float(np.linalg.norm(Q2 - Q1 @ (Q1.T @ Q2), 2))


def spectral_cdf_gap(a: np.ndarray, b: np.ndarray, shift: float = 0.0) -> float:
    """``sup_x (F_a(x) - F_b(x + shift))`` for the equal-weight empirical CDFs of ``a`` and ``b``.

    ``F_a`` jumps only at the values of ``a`` and ``F_b(x + shift)`` is non-decreasing, so the supremum is
    attained at a value of ``a``.  With ``shift = 0`` and both orders, ``max(gap(a, b), gap(b, a))`` is the
    Kolmogorov–Smirnov distance; a ``shift`` ``>= 2 x`` the rounding error of the values makes the
    comparison robust to rounding (if every computed value is within ``e`` of the exact one, the exact
    ``sup (F_a - F_b) <= t`` implies the computed ``gap(a, b, 2 e) <= t``).
    """
    a = np.sort(np.asarray(a, dtype=np.float64))
    b = np.sort(np.asarray(b, dtype=np.float64))
    fa = np.searchsorted(a, a, side="right") / a.size
    fb = np.searchsorted(b, a + shift, side="right") / b.size
    return float(max(0.0, np.max(fa - fb)))


def operator_frobenius_check(sp: SplitSpectra, mutation: str | None = None) -> CheckOutcome:
    """``||R||_op <= ||R||_F`` (Corollary 4.10)."""
    return inequality(sp.r_op, _factor(mutation) * float(np.linalg.norm(sp.R)))


def weyl_check(sp: SplitSpectra, mutation: str | None = None) -> CheckOutcome:
    """Weyl: ``max_i |s_i(S + R) - s_i(S)| <= ||R||_op`` (Corollary 4.10 (ii))."""
    return inequality(float(np.max(np.abs(sp.s_w - sp.s_s))), _factor(mutation) * sp.r_op,
                      scale=max(sp.s_w[0], sp.s_s[0]))


def eckart_young_tail_check(sp: SplitSpectra, k: int, mutation: str | None = None) -> CheckOutcome:
    """``sum_{i>k} s_i(S+R)^2 <= 2 ||R||_F^2 + 2 sum_{i>k} s_i(S)^2`` (Corollary 4.10 (iii))."""
    bound = 2.0 * float(np.sum(sp.R * sp.R)) + 2.0 * float(np.sum(sp.s_s[k:] ** 2))
    return inequality(float(np.sum(sp.s_w[k:] ** 2)), _factor(mutation) * bound, scale=float(np.sum(sp.s_w**2)))


def counting_check(sp: SplitSpectra, eps: float, mutation: str | None = None) -> CheckOutcome:
    """``nu_W((eps, inf)) <= ||W||_F^2 / (min(N, M) eps^2)`` (Corollary 4.10 (iv))."""
    W = sp.W
    return inequality(float(np.mean(sp.s_w > eps)), _factor(mutation) * float(np.sum(W * W)) / (sp.s_w.size * eps**2))


def wedin_checks(sp: SplitSpectra, k: int, mutation: str | None = None) -> tuple[CheckOutcome, CheckOutcome] | None:
    """Explicit Wedin bounds for the top-``k`` singular projectors (Corollary 4.11, [ext]).

    Returns ``None`` when the hypothesis ``||R||_op < delta_k / 2`` fails (no claim; ``delta_k = sigma_k -
    sigma_{k+1}`` of ``S``), else the checks of
    ``d_k := max(||P_hat_U - P_U||_op, ||P_hat_V - P_V||_op) <= ||R||_op / (s_k(W) - sigma_{k+1})`` and
    ``d_k <= ||R||_op / (delta_k - ||R||_op)``.  Needs the singular vectors (``vectors=True``).
    """
    if sp.u_w is None or sp.u_s is None:
        raise InvalidParameterError("wedin_checks needs SplitSpectra built with vectors=True")
    if not 1 <= k < sp.s_w.size:
        raise InvalidParameterError(f"k must lie in [1, {sp.s_w.size - 1}], got {k}")
    sigma_next = float(sp.s_s[k])
    gap = float(sp.s_s[k - 1]) - sigma_next
    if not sp.r_op < gap / 2.0:
        return None
    dist = max(projector_distance(sp.u_s[:, :k], sp.u_w[:, :k]), projector_distance(sp.v_s[:, :k], sp.v_w[:, :k]))
    factor = _factor(mutation)
    return (inequality(dist, factor * sp.r_op / (float(sp.s_w[k - 1]) - sigma_next)),
            inequality(dist, factor * sp.r_op / (gap - sp.r_op)))


def rank_ks_check(sp: SplitSpectra, rank: int, mutation: str | None = None) -> CheckOutcome:
    """OR1 Proposition 3.30 (ii): ``KS(nu_{S+R}, nu_R) <= rank / min(N, M)`` for ``rank >= rank(S)``.

    The realised value is the KS distance of the computed spectra, but the verdict compares CDFs shifted by
    ``2 e`` with ``e = SPECTRUM_RTOL * max(1, ||S+R||_op, ||R||_op)`` (see :func:`spectral_cdf_gap`), so
    singular values that coincide in exact arithmetic cannot fake a violation by rounding.
    """
    s_w, s_r = sp.s_w, sp.s_r
    bound = _factor(mutation) * rank / s_w.size
    shift = 2.0 * SPECTRUM_RTOL * max(1.0, float(s_w[0]), float(s_r[0]))
    ks = max(spectral_cdf_gap(s_w, s_r), spectral_cdf_gap(s_r, s_w))
    robust = max(spectral_cdf_gap(s_w, s_r, shift), spectral_cdf_gap(s_r, s_w, shift))
    tol = theory_tolerance(robust, bound)
    return CheckOutcome(bound=bound, realized=ks, ok=robust <= bound + tol, tol=tol)
