"""Experiments E3 and E4 of THEORY.md 10: BBP outliers of a fixed-rank signal in Gaussian noise at fixed g.

* **E3** (OR1-BGN, OR1-BGN-g, Corollary 4.12 estimator): ``W = U diag(sigma) V^T + R`` (``N x N``, Haar
  ``U, V``, ``R_ij ~ N(0, g/N)``), spikes ``sigma in {3, 2, 1.5} sqrt(g)`` plus a subcritical ``0.5 sqrt(g)``.
  Outliers sit at ``sigma + g/sigma`` (raw bias ``g/sigma``); the inverse-BBP estimator
  ``sigma_hat = (s + sqrt(s^2 - 4g)) / 2`` (:func:`rmt.spikes.inverse_bbp`) is asserted per replicate within
  ``8 sqrt(g/N)`` of ``sigma``, its mean over replicates within ``3 sqrt(g/N)``; with >= 40 replicates the
  RMSE pooled over the spikes ``>= 2 sqrt(g)`` drops by ``>= 1.4x`` when ``N`` quadruples (expected 2x);
  the first non-outlier satisfies ``|s_4 - 2 sqrt(g)| <= 4 sqrt(g) N^(-2/3)``; at ``N >= 800`` the mean squared
  overlaps of both singular vectors are within 0.05 of ``1 - g/sigma^2`` (:func:`rmt.spikes.bbp_overlap`).
* **E4** ([ext] THEORY.md 8.5; OR1-MPBulkProp (iii), OR1-InverseD): ``N x M`` noise, ``g = 1``, spikes
  ``{3, 2, 1.5}`` and ``0.5 theta_c``; for spikes ``theta >= 1.2 theta_c``: ``|s_i - rho(theta_i)| <= 0.1``
  and ``|theta_hat_i - theta_i| <= 0.15`` (:class:`rmt.spikes.RectangularOutlierMap`); the first
  non-outlier stays within ``4 sqrt(g) min(N, M)^(-2/3)`` of the edge ``b_+``.

The top singular triplets come from one ``eigh`` of the ``min(N, M)`` Gram matrix per replicate.
Known-bad variants: E3 ``wrong-bbp-map`` (the estimator inverts ``sigma + 2g/sigma``, i.e.
``inverse_bbp(s, 2g)``), E4 ``square-map`` (the square maps ``theta + g/theta`` and its inverse used for a
rectangular matrix).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import scipy.linalg

from rmt.errors import InvalidParameterError
from rmt.spikes import RectangularOutlierMap, bbp_edge, bbp_location, bbp_overlap, inverse_bbp
from verification.theorems.networks import haar_frame

from .acceptance import at_least, at_most
from .result import ExperimentResult, ExperimentSize, fit_trend
from .seeding import child_rng

__all__ = ["BBPSize", "BBP_SIZES", "top_singular_triplets", "run_e3", "run_e4"]

#: E3 spikes in units of sqrt(g) (the last one is subcritical).
E3_SPIKES = (3.0, 2.0, 1.5, 0.5)
#: E4 supercritical spikes (g = 1) and the subcritical one as a fraction of theta_c.
E4_SPIKES = (3.0, 2.0, 1.5)
E4_SUBCRITICAL = 0.5
E4_G = 1.0


@dataclass(frozen=True)
class BBPSize:
    e3_n: tuple[int, ...]
    e3_g: tuple[float, ...]
    e3_reps: int
    e4_shapes: tuple[tuple[int, int], ...]
    e4_reps: int


BBP_SIZES: dict[str, BBPSize] = {
    "ci": BBPSize(e3_n=(200, 800), e3_g=(0.5, 1.0), e3_reps=40,
                  e4_shapes=((1000, 500), (500, 1000), (2000, 1000), (1000, 3000)), e4_reps=3),
    "thorough": BBPSize(e3_n=(200, 400, 800, 1600), e3_g=(0.5, 1.0), e3_reps=40,
                        e4_shapes=((1000, 500), (500, 1000), (2000, 1000), (1000, 3000)), e4_reps=10),
}


def _size(size: ExperimentSize) -> BBPSize:
    if size not in BBP_SIZES:
        raise InvalidParameterError(f"size must be one of {sorted(BBP_SIZES)}, got {size!r}")
    return BBP_SIZES[size]


def top_singular_triplets(W: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Top-``k`` singular values (descending) and left/right singular vectors of ``W`` from one symmetric
    eigen-decomposition of the smaller Gram matrix (``W^T W`` or ``W W^T``)."""
    n, m = W.shape
    small = min(n, m)
    gram = W.T @ W if m <= n else W @ W.T
    lam, vec = scipy.linalg.eigh(gram, subset_by_index=[small - k, small - 1])
    lam, vec = lam[::-1], vec[:, ::-1]
    s = np.sqrt(np.maximum(lam, 0.0))
    other = (W @ vec if m <= n else W.T @ vec) / s
    return (s, vec, other) if m > n else (s, other, vec)


@dataclass(frozen=True)
class SpikeDraws:
    """Per replicate: top singular values ``s`` (reps x k) and squared overlaps with the planted vectors."""

    s: np.ndarray
    overlap_u: np.ndarray
    overlap_v: np.ndarray


def _spiked_draws(seed: int, tag: tuple[int, ...], n: int, m: int, g: float, spikes: np.ndarray, reps: int,
                  k: int) -> SpikeDraws:
    s_all, ou, ov = [], [], []
    for rep in range(reps):
        rng = child_rng(seed, *tag, rep)
        U, V = haar_frame(rng, n, spikes.size), haar_frame(rng, m, spikes.size)
        W = (U * spikes) @ V.T + np.sqrt(g / n) * rng.standard_normal((n, m))
        s, u_hat, v_hat = top_singular_triplets(W, k)
        s_all.append(s)
        ou.append(np.einsum("ij,ij->j", U, u_hat[:, : spikes.size]) ** 2)
        ov.append(np.einsum("ij,ij->j", V, v_hat[:, : spikes.size]) ** 2)
    return SpikeDraws(np.array(s_all), np.array(ou), np.array(ov))


@lru_cache(maxsize=4)
def _e3_draws(size: ExperimentSize, seed: int) -> dict[tuple[int, float], SpikeDraws]:
    grid = _size(size)
    return {(n, g): _spiked_draws(seed, (3, n, gi), n, n, g, np.sqrt(g) * np.array(E3_SPIKES), grid.e3_reps,
                                  len(E3_SPIKES))
            for n in grid.e3_n for gi, g in enumerate(grid.e3_g)}


def run_e3(size: ExperimentSize = "ci", seed: int = 0, mutation: str | None = None) -> ExperimentResult:
    """E3: square BBP at fixed ``g``; inverse-BBP estimator accuracy, edge, overlaps and the RMSE trend."""
    if mutation not in (None, "wrong-bbp-map"):
        raise InvalidParameterError(f"mutation must be None or 'wrong-bbp-map', got {mutation!r}")
    grid = _size(size)
    draws = _e3_draws(size, seed)
    supercritical = [i for i, x in enumerate(E3_SPIKES) if x > 1.0]
    pooled_idx = [i for i, x in enumerate(E3_SPIKES) if x >= 2.0]
    assertions, rmse = [], {}
    series: dict[str, list[float]] = {k: [] for k in ("N", "g", "spike", "s_mean", "predicted_location",
                                                       "estimate_mean", "raw_bias", "rmse_sqrt_n_over_g")}
    for (n, g), d in draws.items():
        spikes = np.sqrt(g) * np.array(E3_SPIKES)
        est_g = 2.0 * g if mutation else g
        sup = spikes[supercritical]
        est = np.asarray(inverse_bbp(d.s[:, supercritical], est_g), dtype=np.float64)
        err = est - sup
        scale = np.sqrt(g / n)
        for j, sigma in enumerate(sup):
            label = f"N={n} g={g:g} sigma={sigma / np.sqrt(g):g}sqrt(g)"
            assertions += [
                at_most(f"per-rep |sigma_hat - sigma|, {label}", "trend", np.max(np.abs(err[:, j])), 8.0 * scale,
                        "8 sqrt(g/N)"),
                at_most(f"|mean sigma_hat - sigma|, {label}", "trend", abs(np.mean(err[:, j])), 3.0 * scale,
                        "3 sqrt(g/N)"),
            ]
            if n >= 800:
                target = float(bbp_overlap(sigma, g))
                for side, ov in (("u", d.overlap_u), ("v", d.overlap_v)):
                    assertions.append(at_most(f"overlap {side}, {label}", "trend", abs(np.mean(ov[:, j]) - target),
                                              0.05, f"mean {np.mean(ov[:, j]):.3f} vs 1 - g/sigma^2 = {target:.3f}"))
            series["N"].append(float(n))
            series["g"].append(g)
            series["spike"].append(float(sigma))
            series["s_mean"].append(float(np.mean(d.s[:, supercritical[j]])))
            series["predicted_location"].append(float(bbp_location(sigma, g)))
            series["estimate_mean"].append(float(np.mean(est[:, j])))
            series["raw_bias"].append(float(np.mean(d.s[:, supercritical[j]]) - sigma))
            series["rmse_sqrt_n_over_g"].append(float(np.sqrt(np.mean(err[:, j] ** 2)) / scale))
        edge_gap = np.abs(d.s[:, len(supercritical)] - bbp_edge(g))
        assertions.append(at_most(f"first non-outlier at the edge, N={n} g={g:g}", "trend", np.max(edge_gap),
                                  4.0 * np.sqrt(g) * n ** (-2.0 / 3.0), "|s_4 - 2 sqrt(g)| <= 4 sqrt(g) N^(-2/3)"))
        pooled = [supercritical.index(i) for i in pooled_idx]
        rmse[(n, g)] = float(np.sqrt(np.mean(err[:, pooled] ** 2)))
    trends = []
    for g in grid.e3_g:
        ns = [n for n in grid.e3_n if (n, g) in rmse]
        trends.append(fit_trend(np.log(ns), np.log([rmse[(n, g)] for n in ns]), "log N",
                                f"log pooled RMSE of sigma_hat (g={g:g})"))
        if grid.e3_reps >= 40:
            for n in ns:
                if (4 * n, g) in rmse:
                    ratio = rmse[(n, g)] / rmse[(4 * n, g)]
                    assertions.append(at_least(f"RMSE drop N={n}->{4 * n}, g={g:g}", "trend", ratio, 1.4,
                                               "pooled over spikes >= 2 sqrt(g); expected 2x"))
    return ExperimentResult("E3", "Square BBP at fixed g: outliers, inverse-BBP estimator, overlaps",
                            ("OR1-BGN", "OR1-BGN-g", "Corollary 4.12 (iii)"), size, series, tuple(trends),
                            tuple(assertions))


@lru_cache(maxsize=4)
def _e4_draws(size: ExperimentSize, seed: int) -> dict[tuple[int, int], SpikeDraws]:
    grid = _size(size)
    out = {}
    for n, m in grid.e4_shapes:
        spikes = np.array([*E4_SPIKES, E4_SUBCRITICAL * RectangularOutlierMap(E4_G, m / n).threshold])
        out[(n, m)] = _spiked_draws(seed, (4, n, m), n, m, E4_G, spikes, grid.e4_reps, spikes.size)
    return out


def run_e4(size: ExperimentSize = "ci", seed: int = 0, mutation: str | None = None) -> ExperimentResult:
    """E4: rectangular BBP (THEORY.md 8.5): outlier locations, inverse map, subcritical spike at the edge."""
    if mutation not in (None, "square-map"):
        raise InvalidParameterError(f"mutation must be None or 'square-map', got {mutation!r}")
    assertions = []
    series: dict[str, list[float]] = {k: [] for k in ("ratio", "spike", "s_mean", "predicted_location",
                                                       "estimate_mean")}
    for (n, m), d in _e4_draws(size, seed).items():
        law = RectangularOutlierMap(E4_G, m / n)
        location = (lambda t: bbp_location(t, E4_G)) if mutation else law.location
        inverse = (lambda y: inverse_bbp(y, E4_G)) if mutation else law.inverse
        spikes = np.array(E4_SPIKES)
        n_super = int(np.sum(spikes > law.threshold))
        for j, theta in enumerate(spikes):
            if theta < 1.2 * law.threshold:
                continue
            label = f"N={n} M={m} theta={theta:g} (theta_c={law.threshold:.3f})"
            s = d.s[:, j]
            est = np.asarray(inverse(s), dtype=np.float64)
            assertions += [
                at_most(f"location |s - rho(theta)|, {label}", "trend", np.max(np.abs(s - location(theta))), 0.1),
                at_most(f"inverse |theta_hat - theta|, {label}", "trend", np.max(np.abs(est - theta)), 0.15),
            ]
            for key, value in (("ratio", m / n), ("spike", theta), ("s_mean", np.mean(s)),
                               ("predicted_location", law.location(theta)), ("estimate_mean", np.mean(est))):
                series[key].append(float(value))
        k = min(n, m)
        assertions.append(at_most(f"subcritical spike at the edge, N={n} M={m}", "trend",
                                  np.max(np.abs(d.s[:, n_super] - law.edge)), 4.0 * np.sqrt(E4_G) * k ** (-2.0 / 3.0),
                                  "|s_{k+1} - b_+| <= 4 sqrt(g) min(N,M)^(-2/3)"))
    return ExperimentResult("E4", "Rectangular BBP: outlier map and its inverse [ext]",
                            ("THEORY 8.5", "OR1-MPBulkProp (iii)", "OR1-InverseD"), size, series, (),
                            tuple(assertions))
