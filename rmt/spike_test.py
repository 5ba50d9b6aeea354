"""How many singular values of a weight are spikes: a sequential Tracy–Widom test at a stated level.

The paper's count (``spike_test="paper"``, ALGORITHMS.md 1.5) is ``#{s_i > sigma_plus}`` with the BEMA
edge ``sigma_plus`` of ``beta_tw = 0.8``, i.e. the *20 %* Tracy–Widom quantile of the largest noise
eigenvalue: pure iid noise reports a "spike" in 62–99.7 % of draws (FINDINGS F8, F21).  The calibrated
count (``spike_test="calibrated"``, the default of :func:`rmt.fit.fit_mp`) comes from the test below,
whose family-wise false-alarm rate is ``alpha``.

Test (Kritchman & Nadler 2009, "Non-parametric detection of the number of signals: hypothesis testing
and random matrix theory", IEEE Trans. Signal Process. 57(10), 3930–3941, section IV)
------------------------------------------------------------------------------------------------------
``W`` is ``p x n`` (``p <= n``) with eigenvalues ``e_1 >= ... >= e_p`` of the Gram matrix (``e = s^2``).
For ``j = 0, 1, 2, ...`` test ``H_j``: "at most ``j`` spikes" against "more than ``j``":

1. deflate: the remaining spectrum ``e_{j+1} .. e_p`` is that of a ``(p - j) x (n - j)`` noise
   matrix under ``H_j`` (the ``j`` spike directions removed on both sides);
2. re-estimate the noise variance from that remaining bulk with the fit's own estimator
   (:func:`rmt.noise_variance.noise_variance` of ``lambda = e / (n - j)``, ``gamma_j = (p - j)/(n - j)``,
   BEMA by default): ``sigma2_j``;
3. Johnstone's edge law (2001, Ann. Statist. 29, Theorem 1; :func:`rmt.tracy_widom.wishart_edge_scaling`):
   under ``H_j``, ``(e_{j+1} - mu_j) / sigma_j ~ TW_1`` with ``mu_j, sigma_j`` of shape
   ``(p - j, n - j)`` and variance ``sigma2_j``;
4. p-value ``P_j = 1 - F_1((e_{j+1} - mu_j) / sigma_j)``; reject ``H_j`` (``e_{j+1}`` is a spike) iff
   ``e_{j+1} > mu_j + TW1_quantile(1 - alpha) sigma_j``, i.e. ``P_j < alpha``, and go on to ``j + 1``;
   stop at the first ``H_j`` kept.  The count is the number of rejections.

Why the family-wise rate is ``alpha``: the hypotheses are nested (``H_K`` true implies ``H_j`` true for
``j >= K``) and are tested in their fixed order, each at level ``alpha``; a false spike needs the first
true hypothesis ``H_K`` (``K`` = the true count) rejected, which has probability ``alpha``
(fixed-sequence principle, Maurer, Hothorn & Lehmacher 1995).  On pure noise that is
``P(count >= 1) = P(reject H_0) = alpha``.  The level is asymptotic (Tracy–Widom limit, a plug-in
variance), so the count is an **estimate**, never a sound bound.  Measured on pure noise of shapes 64 to
2048, square to 1:4 (FINDINGS F21), the size is 0.025–0.043 at ``alpha = 0.05`` (conservative: BEMA's
finite-``p`` variance sits slightly high); ``tests/rmt/test_spike_test.py`` asserts size ``<= alpha`` and
exact counts for planted spikes ``>= 1.5 theta_c`` by binomial acceptance.

Why BEMA rather than Kritchman–Nadler's mean of the remaining eigenvalues: BEMA's window ignores the top
``alpha_bema p`` eigenvalues, so the ``j`` spikes' share of the noise energy needs no correction, and the
re-fit on the ``p - j`` remaining eigenvalues removes the level shift that ``j`` spikes cause in a fit of
all ``p``.  The test stops after ``p - floor((1 - alpha_bema) p)`` spikes (more would reach into the
window the variance comes from) or when the deflated window is empty; then the last step run was a
rejection.  The fit's reported ``sigma2`` stays the BEMA fit of the whole spectrum (step ``j = 0``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .noise_variance import bema_window, noise_variance
from .tracy_widom import tw1_cdf, tw1_ppf, wishart_edge_scaling

__all__ = ["SPIKE_TESTS", "DEFAULT_SPIKE_ALPHA", "SpikeTestResult", "sequential_tw_test"]

#: ``fit_mp(spike_test=...)``: the test above, or the paper's ``#{s_i > sigma_plus}``.
SPIKE_TESTS = ("calibrated", "paper")
#: Default family-wise false-alarm rate of the calibrated test.
DEFAULT_SPIKE_ALPHA = 0.05


@dataclass(frozen=True)
class SpikeTestResult:
    """Outcome of :func:`sequential_tw_test`.

    ``pvalues[j]`` is the p-value of step ``j`` (the ``(j+1)``-th largest singular value); the first
    ``n_spikes`` are below ``alpha`` and, unless the test hit ``max_spikes``, one more (the value that
    stopped it) is not.  ``threshold`` (singular-value units) and ``noise_variance`` are those of the
    last step run: ``sqrt(mu_j + TW1_quantile(1 - alpha) sigma_j)`` and ``sigma2_j``.  ``capped``: every
    step run was a rejection (the cap ``max_spikes`` or an empty deflated window stopped the test).
    """

    n_spikes: int
    alpha: float
    pvalues: tuple[float, ...]
    threshold: float
    noise_variance: float
    max_spikes: int

    @property
    def capped(self) -> bool:
        return self.n_spikes > 0 and len(self.pvalues) == self.n_spikes


def _step(e_desc: np.ndarray, j: int, n: int, t_alpha: float, method: str, alpha_bema: float):
    """``(sigma2_j, threshold_j, p-value_j)`` of step ``j`` (module docstring, items 1-4)."""
    p_j, n_j = e_desc.size - j, n - j
    sigma2 = noise_variance(e_desc[j:][::-1] / n_j, p_j / n_j, method, alpha_bema)
    edge = wishart_edge_scaling(p_j, n_j, sigma2)
    pvalue = 1.0 - float(tw1_cdf((e_desc[j] - edge.center) / edge.scale))
    return sigma2, edge.center + t_alpha * edge.scale, pvalue


def sequential_tw_test(
    s_desc: np.ndarray, n: int, alpha: float = DEFAULT_SPIKE_ALPHA, *, method: str = "bema", alpha_bema: float = 0.25
) -> SpikeTestResult:
    """Count the spikes among the singular values ``s_desc`` (descending, ``p = len(s_desc) <= n``).

    See the module docstring for the test; ``method`` / ``alpha_bema`` choose the noise-variance
    estimator (:func:`rmt.noise_variance.noise_variance`).  The caller validates the arguments.
    """
    e_desc = np.asarray(s_desc, dtype=np.float64) ** 2
    p = e_desc.size
    max_spikes = p - bema_window(p, alpha_bema)[1]
    t_alpha = float(tw1_ppf(1.0 - alpha))
    pvalues: list[float] = []
    sigma2 = threshold = float("nan")
    n_spikes = 0
    while n_spikes < max_spikes:
        lo, hi = bema_window(p - n_spikes, alpha_bema)
        if hi - lo < 1:
            break
        sigma2, threshold, pvalue = _step(e_desc, n_spikes, n, t_alpha, method, alpha_bema)
        if not sigma2 > 0.0:
            break
        pvalues.append(pvalue)
        if not e_desc[n_spikes] > threshold:
            break
        n_spikes += 1
    return SpikeTestResult(
        n_spikes=n_spikes,
        alpha=float(alpha),
        pvalues=tuple(pvalues),
        threshold=float(np.sqrt(max(threshold, 0.0))) if np.isfinite(threshold) else float("nan"),
        noise_variance=float(sigma2),
        max_spikes=int(max_spikes),
    )
