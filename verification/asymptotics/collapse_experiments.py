"""Experiment E5 of THEORY.md 10: the collapse regime ``g_N = N^(-3/2)`` (``g_N N -> 0``).

Corollaries 4.9–4.12 and OR1-BGN-Varying with ``g_inf = 0``: ``W = U diag(3, 2, 1) V^T + R`` with Haar
``U, V`` (``N x 3``) and ``R_ij ~ N(0, g_N / N)``.  Measured against ``N``:

* SOUND on every replicate (zero violations; :mod:`.perturbation_inequalities`): ``||R||_op <= ||R||_F``,
  Weyl ``|s_i(W) - sigma_i| <= ||R||_op``, Eckart–Young tail, counting bound at ``eps = 0.1``, the explicit
  Wedin bounds for the top-1/2/3 projectors, and the inverse-BBP identity ``0 <= s_i - sigma_hat_i <= 2 g / s_i``
  (Corollary 4.12, EXACT facts);
* calibrated finite-N tolerances: ``|  ||R||_op / (2 sqrt(g_N)) - 1 | <= 3 N^(-2/3)`` (E2's edge rule),
  ``| ||R||_F^2 / (g_N M) - 1 | <= 5 sqrt(2 / (N M))`` (Corollary 4.9 key fact, THEORY.md 12) and the bulk edge
  ``|s_4(W) / (2 sqrt(g_hat)) - 1| <= 3 N^(-2/3)`` with ``g_hat = ||R||_F^2 / M``;
* decay trends: least-squares slope of ``log(mean over replicates)`` on ``log N`` for ``||R||_op``
  (predicted exponent ``-3/4``), ``max_i |s_i - sigma_i|`` (``-5/4``: fluctuation ``sqrt(g_N / N)`` dominates the
  bias ``g_N / sigma``), tail energy ``sum_{i>3} s_i^2`` (``-1/2``: it is ``~ g_N N``), the largest projector
  distance (``-3/4``), the inverse-BBP error (``-5/4``) and ``nu_W((0.1, inf))`` (``-1``: it equals ``3/N``).
  THEORY.md 10 states these predictions without a tolerance; the rule used here is *the fitted slope is at
  most half the predicted exponent* (i.e. the decay is at least half as fast as predicted).

Known-bad variant ``no-collapse``: ``g_N = 1`` for every ``N`` (the noise does not shrink, as without the
regulariser); the SOUND inequalities still hold but the decay trends fail.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from rmt.errors import InvalidParameterError
from rmt.spikes import inverse_bbp
from verification.theorems.check_outcomes import inequality
from verification.theorems.networks import haar_frame

from .acceptance import at_most, from_check
from .perturbation_inequalities import (
    SplitSpectra,
    counting_check,
    eckart_young_tail_check,
    operator_frobenius_check,
    projector_distance,
    wedin_checks,
    weyl_check,
)
from .result import ExperimentResult, ExperimentSize, fit_trend
from .seeding import child_rng

__all__ = ["CollapseSize", "COLLAPSE_SIZES", "SPIKES", "collapse_scale", "run_e5"]

SPIKES = np.array([3.0, 2.0, 1.0])
COUNT_EPS = 0.1
#: quantity -> predicted exponent of its decay in N.
PREDICTED_EXPONENTS = {
    "r_op": -0.75,
    "spike_error": -1.25,
    "tail_energy": -0.5,
    "projector_distance": -0.75,
    "estimator_error": -1.25,
    "mass_above_eps": -1.0,
}


@dataclass(frozen=True)
class CollapseSize:
    n: tuple[int, ...]
    reps: int


COLLAPSE_SIZES: dict[str, CollapseSize] = {
    "ci": CollapseSize(n=(100, 200, 400), reps=5),
    "thorough": CollapseSize(n=(100, 400, 1600), reps=10),
}


def collapse_scale(n: int) -> float:
    """``g_N = N^(-3/2)``."""
    return float(n) ** -1.5


@lru_cache(maxsize=4)
def _draws(size: ExperimentSize, seed: int, collapsing: bool) -> dict[int, tuple[float, tuple[SplitSpectra, ...]]]:
    if size not in COLLAPSE_SIZES:
        raise InvalidParameterError(f"size must be one of {sorted(COLLAPSE_SIZES)}, got {size!r}")
    grid = COLLAPSE_SIZES[size]
    out = {}
    for n in grid.n:
        g = collapse_scale(n) if collapsing else 1.0
        reps = []
        for rep in range(grid.reps):
            rng = child_rng(seed, 5, n, rep)
            U, V = haar_frame(rng, n, SPIKES.size), haar_frame(rng, n, SPIKES.size)
            reps.append(SplitSpectra.from_factors(U, SPIKES, V, np.sqrt(g / n) * rng.standard_normal((n, n)),
                                                  vectors=True))
        out[n] = (g, tuple(reps))
    return out


def _sound_rows(sp: SplitSpectra, g: float, label: str) -> tuple[list, float]:
    """The SOUND assertions of one replicate and its largest projector distance."""
    rows = [from_check(f"||R||_op <= ||R||_F, {label}", operator_frobenius_check(sp)),
            from_check(f"Weyl |s_i(W) - sigma_i| <= ||R||_op, {label}", weyl_check(sp)),
            from_check(f"Eckart-Young tail k=3, {label}", eckart_young_tail_check(sp, SPIKES.size)),
            from_check(f"counting nu_W((0.1,inf)), {label}", counting_check(sp, COUNT_EPS))]
    worst = 0.0
    for k in range(1, SPIKES.size + 1):
        worst = max(worst, projector_distance(sp.u_s[:, :k], sp.u_w[:, :k]),
                    projector_distance(sp.v_s[:, :k], sp.v_w[:, :k]))
        checks = wedin_checks(sp, k)
        if checks is not None:  # hypothesis ||R||_op < delta_k / 2 holds
            rows += [from_check(f"Wedin top-{k} projectors / (s_k(W) - sigma_k+1), {label}", checks[0]),
                     from_check(f"Wedin top-{k} projectors / (delta_k - ||R||_op), {label}", checks[1])]
    s = sp.s_w[: SPIKES.size]
    outliers = s[s >= 2.0 * np.sqrt(g)]
    shrink = outliers - np.asarray(inverse_bbp(outliers, g), dtype=np.float64)
    for i, (y, d) in enumerate(zip(outliers, shrink)):
        rows += [from_check(f"0 <= s_{i + 1} - sigma_hat_{i + 1}, {label}", inequality(-d, 0.0, scale=y)),
                 from_check(f"s_{i + 1} - sigma_hat_{i + 1} <= 2g/s_{i + 1}, {label}",
                            inequality(d, 2.0 * g / y, scale=y))]
    return rows, worst


def run_e5(size: ExperimentSize = "ci", seed: int = 0, mutation: str | None = None) -> ExperimentResult:
    """E5: spectral collapse with fixed spikes as ``g_N = N^(-3/2)`` (SOUND inequalities and decay trends)."""
    if mutation not in (None, "no-collapse"):
        raise InvalidParameterError(f"mutation must be None or 'no-collapse', got {mutation!r}")
    draws = _draws(size, seed, mutation is None)
    assertions = []
    means: dict[str, list[float]] = {k: [] for k in PREDICTED_EXPONENTS}
    series: dict[str, list[float]] = {"N": [], "g_N": [], "predicted_r_op": []}
    for n, (g, reps) in draws.items():
        per_rep: dict[str, list[float]] = {k: [] for k in PREDICTED_EXPONENTS}
        edge_dev, frob_dev, bulk_dev = [], [], []
        for rep, sp in enumerate(reps):
            rows, proj = _sound_rows(sp, g, f"N={n} rep={rep}")
            assertions += rows
            s = sp.s_w
            estimate = np.asarray(inverse_bbp(s[: SPIKES.size], g), dtype=np.float64)
            g_hat = float(np.sum(sp.R**2)) / n
            for key, value in (("r_op", sp.r_op), ("spike_error", np.max(np.abs(s[: SPIKES.size] - SPIKES))),
                               ("tail_energy", np.sum(s[SPIKES.size:] ** 2)), ("projector_distance", proj),
                               ("estimator_error", np.max(np.abs(estimate - SPIKES))),
                               ("mass_above_eps", np.mean(s > COUNT_EPS))):
                per_rep[key].append(float(value))
            edge_dev.append(abs(sp.r_op / (2.0 * np.sqrt(g)) - 1.0))
            frob_dev.append(abs(g_hat / g - 1.0))
            bulk_dev.append(abs(s[SPIKES.size] / (2.0 * np.sqrt(g_hat)) - 1.0))
        edge_tol = 3.0 * n ** (-2.0 / 3.0)
        assertions += [
            at_most(f"||R||_op vs 2 sqrt(g_N), N={n}", "trend", max(edge_dev), edge_tol, "3 N^(-2/3) relative"),
            at_most(f"||R||_F^2 / (g_N M) - 1, N={n}", "trend", max(frob_dev), 5.0 * np.sqrt(2.0 / (n * n)),
                    "5 sqrt(2/(NM)) (Corollary 4.9)"),
            at_most(f"bulk edge s_4 vs 2 sqrt(g_hat), N={n}", "trend", max(bulk_dev), edge_tol, "3 N^(-2/3) relative"),
        ]
        for key, values in per_rep.items():
            means[key].append(float(np.mean(values)))
        series["N"].append(float(n))
        series["g_N"].append(g)
        series["predicted_r_op"].append(2.0 * float(np.sqrt(g)))
        series[f"sv_N{n}"] = sp.s_w.tolist()
    series.update({f"mean_{k}": v for k, v in means.items()})
    trends = []
    log_n = np.log(series["N"])
    for key, exponent in PREDICTED_EXPONENTS.items():
        fit = fit_trend(log_n, np.log(np.maximum(means[key], 1e-300)), "log N", f"log mean {key}")
        trends.append(fit)
        assertions.append(at_most(f"decay slope of {key}", "trend", fit.slope, exponent / 2.0,
                                  f"predicted exponent {exponent:g}; rule: slope <= half of it"))
    return ExperimentResult("E5", "Collapse regime g_N = N^(-3/2): Weyl/Wedin (SOUND) and vanishing noise",
                            ("Corollary 4.9", "Corollary 4.10", "Corollary 4.11", "Corollary 4.12",
                             "OR1-BGN-Varying (g_inf = 0)"), size, series, tuple(trends), tuple(assertions))
