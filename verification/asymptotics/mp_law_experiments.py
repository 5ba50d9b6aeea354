"""Experiments E1, E2 and E12 of THEORY.md 10: the Marchenko–Pastur bulk at finite N.

* **E1** (Theorem 2.2, OR1-MPBulkProp (i)): for ``W`` (``N x M``, ``c = M/N``) with iid Gaussian or
  Rademacher``*sigma`` entries, the eigenvalue ESD of ``X = W^T W / N`` (zero atom included) and the
  singular-value ESD of ``W`` are within KS distance ``0.01 + 4 / min(N, M)`` of ``MP(c, sigma^2)`` and of
  its singular-value push-forward; the first moment is within 3% of ``sigma^2`` and the second within 5% of
  ``sigma^4 (1 + c)``.
* **E2** (Remark 2.3, THEORY.md 2.4): ``|lambda_max / lambda_+ - 1| <= 3 min(N, M)^(-2/3)``; for ``c != 1``
  ``|lambda_min,nonzero - lambda_-| <= lambda_+ min(N, M)^(-2/3)``; on the singular scale
  ``|s_1(W) / (s (sqrt N + sqrt M)) - 1| <= 3 min(N, M)^(-2/3)`` (implied by the first, measured on the SVD).
* **E12** (OR1-MPBulkProp (ii)): for ``W = S + R`` with ``rank S = r``, ``KS(nu_W, nu_R) <= r / min(N, M)``
  (SOUND, zero violations) and ``KS(nu_W, MP singular law) <= 0.01 + 4 / min(N, M) + r / min(N, M)``.

The eigenvalues of ``W^T W / N`` for ``M > N`` are the ``N`` eigenvalues of ``W W^T / N`` plus ``M - N``
exact zeros, and the singular values of ``W`` are ``sqrt(N lambda)`` over the ``min(N, M)`` eigenvalues of the
smaller Gram (Definition 2.1, EXACT relations), which is how both are computed: one ``eigvalsh`` of the
``min(N, M)`` Gram per matrix (an SVD per matrix tripled the cost on two shared cores).
E1 and E2 share the same simulated matrices (cached per ``(size, seed)``).

Known-bad variants: E1 ``sigma2-off-10pct`` (reference law ``MP(c, 1.1 sigma^2)``), E2
``edge-without-cross-term`` (``lambda_+ = sigma^2 (1 + c)`` instead of ``sigma^2 (1 + sqrt c)^2``), E12
``rank-bound-halved`` (``r / (2 min(N, M))``).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from rmt.errors import InvalidParameterError
from rmt.esd import eig_esd, ks_distance
from rmt.mp_law import MarchenkoPastur, MarchenkoPasturSingular, mp_edges, singular_edges
from rmt.spikes import RectangularOutlierMap
from verification.theorems.networks import gaussian_rectangular_split

from .acceptance import at_most, from_check
from .perturbation_inequalities import SplitSpectra, rank_ks_check
from .result import ExperimentResult, ExperimentSize, fit_trend
from .seeding import child_rng, child_seed

__all__ = ["MPLawSize", "MP_LAW_SIZES", "SpectrumRun", "mp_spectra", "run_e1", "run_e2", "run_e12"]

ENTRIES = ("gaussian", "rademacher")
#: Configuration whose spectra are kept in the series for the figure.
PLOTTED = (0.5, 1.0, "gaussian")


@dataclass(frozen=True)
class MPLawSize:
    """Grid of E1/E2 (``n_rows`` x ``ratios`` x ``sigma2s`` x entries x ``reps``) and of E12."""

    n_rows: tuple[int, ...]
    ratios: tuple[float, ...]
    sigma2s: tuple[float, ...]
    reps: int
    e12_shapes: tuple[tuple[int, int], ...]
    e12_ranks: tuple[int, ...]
    e12_reps: int


MP_LAW_SIZES: dict[str, MPLawSize] = {
    "ci": MPLawSize(n_rows=(200, 500), ratios=(0.25, 0.5, 1.0, 2.0, 4.0), sigma2s=(0.5, 1.0, 2.0), reps=1,
                    e12_shapes=((400, 200), (200, 400), (300, 300)), e12_ranks=(1, 5, 20), e12_reps=1),
    "thorough": MPLawSize(n_rows=(200, 500, 1000), ratios=(0.25, 0.5, 1.0, 2.0, 4.0), sigma2s=(0.5, 1.0, 2.0),
                          reps=3, e12_shapes=((1000, 500), (500, 1000), (800, 800)), e12_ranks=(1, 5, 20),
                          e12_reps=3),
}


def _size(size: ExperimentSize) -> MPLawSize:
    if size not in MP_LAW_SIZES:
        raise InvalidParameterError(f"size must be one of {sorted(MP_LAW_SIZES)}, got {size!r}")
    return MP_LAW_SIZES[size]


def _check_mutation(mutation: str | None, allowed: str) -> None:
    if mutation not in (None, allowed):
        raise InvalidParameterError(f"mutation must be None or {allowed!r}, got {mutation!r}")


@dataclass(frozen=True, eq=False)
class SpectrumRun:
    """One simulated ``W``: eigenvalues of ``W^T W / N`` (ascending, ``M`` of them, exact zeros for the
    rank deficit) and singular values of ``W`` (ascending, ``min(N, M)``)."""

    n: int
    m: int
    sigma2: float
    entries: str
    rep: int
    eigenvalues: np.ndarray
    singular_values: np.ndarray

    @property
    def ratio(self) -> float:
        return self.m / self.n

    @property
    def min_dim(self) -> int:
        return min(self.n, self.m)

    def label(self) -> str:
        return f"N={self.n} M={self.m} sigma2={self.sigma2:g} {self.entries} rep={self.rep}"


def _draw(rng: np.random.Generator, n: int, m: int, sigma2: float, entries: str) -> np.ndarray:
    scale = np.sqrt(sigma2)
    if entries == "gaussian":
        return scale * rng.standard_normal((n, m))
    return scale * rng.choice(np.array([-1.0, 1.0]), size=(n, m))


@lru_cache(maxsize=4)
def mp_spectra(size: ExperimentSize, seed: int) -> tuple[SpectrumRun, ...]:
    """The matrices of E1/E2 (cached: both experiments and their known-bad variants reuse them)."""
    grid = _size(size)
    runs = []
    for n in grid.n_rows:
        for ci, ratio in enumerate(grid.ratios):
            m = int(round(ratio * n))
            for si, sigma2 in enumerate(grid.sigma2s):
                for ei, entries in enumerate(ENTRIES):
                    for rep in range(grid.reps):
                        w = _draw(child_rng(seed, 1, n, ci, si, ei, rep), n, m, sigma2, entries)
                        small_gram = w.T @ w / n if m <= n else w @ w.T / n
                        nonzero = eig_esd(small_gram).values
                        eig = np.concatenate([np.zeros(max(0, m - n)), nonzero])
                        singular = np.sqrt(n * np.maximum(nonzero, 0.0))
                        runs.append(SpectrumRun(n, m, sigma2, entries, rep, eig, singular))
    return tuple(runs)


def _per_n_max(runs, values, n_rows) -> list[float]:
    return [float(max(v for r, v in zip(runs, values) if r.n == n)) for n in n_rows]


def _plotted_series(runs: tuple[SpectrumRun, ...]) -> dict[str, list[float]]:
    ratio, sigma2, entries = PLOTTED
    series: dict[str, list[float]] = {"plot_ratio": [ratio], "plot_sigma2": [sigma2]}
    for r in runs:
        if r.ratio == ratio and r.sigma2 == sigma2 and r.entries == entries and r.rep == 0:
            series[f"eig_N{r.n}"] = r.eigenvalues.tolist()
    return series


def ks_tolerance(min_dim: int) -> float:
    """E1's KS tolerance ``0.01 + 4 / min(N, M)``."""
    return 0.01 + 4.0 / min_dim


def edge_tolerance(min_dim: int) -> float:
    """E2's relative edge tolerance ``3 min(N, M)^(-2/3)``."""
    return 3.0 * min_dim ** (-2.0 / 3.0)


def run_e1(size: ExperimentSize = "ci", seed: int = 0, mutation: str | None = None) -> ExperimentResult:
    """E1: KS distance and moments of the eigenvalue and singular-value ESDs against the MP law."""
    _check_mutation(mutation, "sigma2-off-10pct")
    grid = _size(size)
    runs = mp_spectra(size, seed)
    assertions, ks_eig, ks_sv = [], [], []
    for r in runs:
        ref_sigma2 = r.sigma2 * (1.1 if mutation else 1.0)
        law = MarchenkoPastur(r.ratio, ref_sigma2)
        tol = ks_tolerance(r.min_dim)
        ks_eig.append(ks_distance(r.eigenvalues, law.cdf, jump_points=(0.0,)))
        ks_sv.append(ks_distance(r.singular_values, law.singular(r.n).cdf))
        mean = float(np.mean(r.eigenvalues))
        second = float(np.mean(r.eigenvalues**2))
        assertions += [
            at_most(f"KS eigenvalue ESD, {r.label()}", "trend", ks_eig[-1], tol, "0.01 + 4/min(N,M)"),
            at_most(f"KS singular-value ESD, {r.label()}", "trend", ks_sv[-1], tol, "0.01 + 4/min(N,M)"),
            at_most(f"first moment, {r.label()}", "trend", abs(mean / law.mean() - 1.0), 0.03,
                    f"mean {mean:.4g} vs sigma^2 {law.mean():.4g}"),
            at_most(f"second moment, {r.label()}", "trend", abs(second / law.moment(2) - 1.0), 0.05,
                    f"{second:.4g} vs sigma^4 (1 + c) {law.moment(2):.4g}"),
        ]
    max_eig, max_sv = _per_n_max(runs, ks_eig, grid.n_rows), _per_n_max(runs, ks_sv, grid.n_rows)
    series = {"N": [float(n) for n in grid.n_rows], "ks_eig_max": max_eig, "ks_sv_max": max_sv,
              **_plotted_series(runs)}
    trends = (fit_trend(np.log(grid.n_rows), np.log(max_eig), "log N", "log max KS (eigenvalue ESD)"),)
    return ExperimentResult("E1", "Marchenko-Pastur law at finite N (KS, moments; Gaussian and Rademacher)",
                            ("Theorem 2.2", "OR1-MPBulkProp (i)"), size, series, trends, tuple(assertions))


def run_e2(size: ExperimentSize = "ci", seed: int = 0, mutation: str | None = None) -> ExperimentResult:
    """E2: the top (and for ``c != 1`` the bottom non-zero) edge of the spectra of E1's matrices."""
    _check_mutation(mutation, "edge-without-cross-term")
    grid = _size(size)
    runs = mp_spectra(size, seed)
    assertions, rel_errors = [], []
    for r in runs:
        lam_minus, lam_plus = mp_edges(r.ratio, r.sigma2)
        sigma_plus = singular_edges(r.n, r.m, r.sigma2)[1]
        if mutation:
            lam_plus = r.sigma2 * (1.0 + r.ratio)
            sigma_plus = float(np.sqrt(r.n * lam_plus))
        tol = edge_tolerance(r.min_dim)
        rel_errors.append(float(r.eigenvalues[-1] / lam_plus - 1.0))
        assertions += [
            at_most(f"top edge lambda_max/lambda_+ - 1, {r.label()}", "trend", abs(rel_errors[-1]), tol,
                    "3 min(N,M)^(-2/3)"),
            at_most(f"singular edge s_1/sigma_+ - 1, {r.label()}", "trend",
                    abs(r.singular_values[-1] / sigma_plus - 1.0), tol, "3 min(N,M)^(-2/3)"),
        ]
        if r.m != r.n:
            smallest = float(r.eigenvalues[r.m - r.min_dim])  # first eigenvalue after the exact zeros
            assertions.append(at_most(f"bottom edge |lambda_min - lambda_-|, {r.label()}", "trend",
                                      abs(smallest - lam_minus), lam_plus * r.min_dim ** (-2.0 / 3.0),
                                      "lambda_+ min(N,M)^(-2/3)"))
    worst = _per_n_max(runs, np.abs(rel_errors), grid.n_rows)
    series = {"N": [float(n) for n in grid.n_rows], "edge_rel_error_max": worst,
              "min_dim": [float(r.min_dim) for r in runs], "edge_rel_error": rel_errors}
    trends = (fit_trend(np.log(grid.n_rows), np.log(worst), "log N", "log max |lambda_max/lambda_+ - 1|"),)
    return ExperimentResult("E2", "MP edges at finite N (eigenvalue and singular scale)",
                            ("Remark 2.3", "THEORY 2.4"), size, series, trends, tuple(assertions))


@lru_cache(maxsize=4)
def _signal_plus_noise(size: ExperimentSize, seed: int):
    grid = _size(size)
    out = []
    for (n, m) in grid.e12_shapes:
        edge = RectangularOutlierMap(g=1.0, ratio=m / n).edge
        for rank in grid.e12_ranks:
            spikes = edge * np.geomspace(3.0, 0.3, rank) if rank > 1 else np.array([3.0 * edge])
            for rep in range(grid.e12_reps):
                split = gaussian_rectangular_split(n, m, 1.0, sigma=spikes, seed=child_seed(seed, 12, n, m, rank, rep))
                out.append((n, m, rank, rep, split))
    return tuple(out)


def run_e12(size: ExperimentSize = "ci", seed: int = 0, mutation: str | None = None) -> ExperimentResult:
    """E12: ESD of ``S + R`` vs ESD of ``R`` (rank inequality, SOUND) and vs the MP singular law."""
    _check_mutation(mutation, "rank-bound-halved")
    assertions, series = [], {"rank": [], "min_dim": [], "ks_w_r": [], "ks_w_mp": []}
    for n, m, rank, rep, split in _signal_plus_noise(size, seed):
        label = f"N={n} M={m} r={rank} rep={rep}"
        spectra = SplitSpectra.from_matrices(split.S, split.R)
        check = rank_ks_check(spectra, rank, mutation="bound-halved" if mutation else None)
        law = MarchenkoPasturSingular(m / n, split.g / n, n)
        ks_mp = ks_distance(spectra.s_w, law.cdf)
        k = min(n, m)
        assertions += [
            from_check(f"KS(nu_W, nu_R) <= r/min(N,M), {label}", check, "OR1 Proposition 3.30 (ii)"),
            at_most(f"KS(nu_W, MP singular), {label}", "trend", ks_mp, ks_tolerance(k) + rank / k,
                    "0.01 + 4/min(N,M) + r/min(N,M)"),
        ]
        for key, value in (("rank", rank), ("min_dim", k), ("ks_w_r", check.realized), ("ks_w_mp", ks_mp)):
            series[key].append(float(value))
        if rank == max(_size(size).e12_ranks) and "sv_W" not in series:
            series.update(sv_W=spectra.s_w[::-1].tolist(), sv_R=spectra.s_r[::-1].tolist(),
                          plot_shape=[float(n), float(m)], plot_g=[split.g])
    return ExperimentResult("E12", "ESD of signal plus noise: rank inequality and persistent MP bulk",
                            ("OR1-MPBulkProp (ii)", "OR1-MPBulkProp (i)"), size, series, (), tuple(assertions))
