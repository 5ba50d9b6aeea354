"""Experiments E10 and E13 of THEORY.md 10: two finite-N facts about the Gaussian noise ``R`` itself.

* **E10** (OR1 Remark 3.7, OR1-CrossTermVariance): for fixed ``S`` (``N x M``) and ``R_ij ~ N(0, g/N)``,
  ``<S, R>_F | S ~ N(0, g ||S||_F^2 / N)``.  Over 2000 draws the sample variance is within 10% of
  ``g ||S||_F^2 / N``, and the tail bound ``P(|<S, R>_F| > eta) <= 2 exp(-N eta^2 / (2 ||S||_F^2))`` (``g <= 1``),
  taken at the ``eta`` that makes it 0.05, holds in frequency (binomial rule, THEORY.md 9.5).
* **E13** (Assumption 4.2 Gaussian instance, OR1 Example 2.5, Lemma 4.4): for ``R`` (``N x N``) iid
  ``N(0, 1/N)`` and a fixed ``v``, the frequency of ``||R v||_inf > d_1(N) ||v||_2`` with
  ``d_1(N) = 2 sqrt(2 log(2N) / N)`` is within the binomial threshold for ``d_2(N) = 1/N``; the union bound
  actually gives ``1/(8 N^3)``, asserted as well.

Known-bad variants: E10 ``fan-in-variance`` (variance ``g ||S||_F^2 / M``, the column count; pitfall 5),
E13 ``factor-2-dropped`` (``d_1 = sqrt(2 log(2N) / N)``).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from rmt.errors import InvalidParameterError
from verification.theorems.networks import gaussian_rectangular_split

from .acceptance import at_most, failure_frequency
from .result import ExperimentResult, ExperimentSize
from .seeding import child_rng, child_seed

__all__ = ["NoiseSize", "NOISE_SIZES", "run_e10", "run_e13"]

E10_G = 0.8
E10_SPIKES = (2.0, 1.0, 0.5)
E10_TAIL_PROBABILITY = 0.05
#: Entries drawn per batch (bounds the memory of the Monte-Carlo loops).
BATCH_ENTRIES = 4_000_000


@dataclass(frozen=True)
class NoiseSize:
    e10_n: tuple[int, ...]
    e10_draws: int
    e13_n: tuple[int, ...]
    e13_draws: int


NOISE_SIZES: dict[str, NoiseSize] = {
    "ci": NoiseSize(e10_n=(100, 200), e10_draws=2000, e13_n=(100, 400), e13_draws=500),
    "thorough": NoiseSize(e10_n=(100, 400, 800), e10_draws=2000, e13_n=(100, 400, 1600), e13_draws=1000),
}


def _size(size: ExperimentSize) -> NoiseSize:
    if size not in NOISE_SIZES:
        raise InvalidParameterError(f"size must be one of {sorted(NOISE_SIZES)}, got {size!r}")
    return NOISE_SIZES[size]


def _batched(rng: np.random.Generator, draws: int, shape: tuple[int, int], reduce) -> np.ndarray:
    """``reduce(Z)`` over ``draws`` standard Gaussian matrices ``Z`` of ``shape``, drawn in batches."""
    batch = max(1, BATCH_ENTRIES // (shape[0] * shape[1]))
    out = []
    for start in range(0, draws, batch):
        out.append(reduce(rng.standard_normal((min(batch, draws - start), *shape))))
    return np.concatenate(out)


@lru_cache(maxsize=4)
def _e10_draws(size: ExperimentSize, seed: int) -> tuple[tuple[int, int, np.ndarray, np.ndarray], ...]:
    grid = _size(size)
    out = []
    for n in grid.e10_n:
        m = n // 2
        S = gaussian_rectangular_split(n, m, E10_G, sigma=E10_SPIKES, seed=child_seed(seed, 10, n)).S
        scale = np.sqrt(E10_G / n)
        cross = _batched(child_rng(seed, 10, n, 1), grid.e10_draws, (n, m),
                         lambda Z: scale * np.einsum("bij,ij->b", Z, S))
        out.append((n, m, S, cross))
    return tuple(out)


def run_e10(size: ExperimentSize = "ci", seed: int = 0, mutation: str | None = None) -> ExperimentResult:
    """E10: variance and tail of the cross term ``<S, R>_F`` over 2000 noise draws."""
    if mutation not in (None, "fan-in-variance"):
        raise InvalidParameterError(f"mutation must be None or 'fan-in-variance', got {mutation!r}")
    assertions = []
    series: dict[str, list[float]] = {"N": [], "sample_variance": [], "predicted_variance": [], "tail_rate": []}
    for n, m, S, cross in _e10_draws(size, seed):
        frob2 = float(np.sum(S * S))
        predicted = E10_G * frob2 / (m if mutation else n)
        variance = float(np.var(cross, ddof=1))
        eta = np.sqrt(frob2 * 2.0 * np.log(2.0 / E10_TAIL_PROBABILITY) / n)
        failures = int(np.sum(np.abs(cross) > eta))
        assertions += [
            at_most(f"sample variance of <S,R>_F within 10%, N={n} M={m}", "trend", abs(variance / predicted - 1.0),
                    0.10, f"{variance:.4g} vs g ||S||_F^2 / N = {predicted:.4g}"),
            failure_frequency(f"tail P(|<S,R>_F| > eta) <= 2 exp(-N eta^2 / (2 ||S||_F^2)), N={n}", failures,
                              cross.size, E10_TAIL_PROBABILITY, f"eta = {eta:.4g}"),
        ]
        for key, value in (("N", n), ("sample_variance", variance), ("predicted_variance", predicted),
                           ("tail_rate", failures / cross.size)):
            series[key].append(float(value))
    return ExperimentResult("E10", "Cross-term variance <S,R>_F ~ N(0, g ||S||_F^2 / N)",
                            ("OR1 Remark 3.7",), size, series, (), tuple(assertions))


def e13_threshold(n: int, mutation: str | None = None) -> float:
    """``d_1(N) = 2 sqrt(2 log(2N) / N)`` (known-bad ``factor-2-dropped``: without the leading 2)."""
    return (1.0 if mutation else 2.0) * float(np.sqrt(2.0 * np.log(2.0 * n) / n))


@lru_cache(maxsize=4)
def _e13_draws(size: ExperimentSize, seed: int) -> tuple[tuple[int, float, np.ndarray], ...]:
    grid = _size(size)
    out = []
    for n in grid.e13_n:
        v = child_rng(seed, 13, n).standard_normal(n)
        sup = _batched(child_rng(seed, 13, n, 1), grid.e13_draws, (n, n),
                       lambda Z: np.max(np.abs(Z @ v), axis=1) / np.sqrt(n))
        out.append((n, float(np.linalg.norm(v)), sup))
    return tuple(out)


def run_e13(size: ExperimentSize = "ci", seed: int = 0, mutation: str | None = None) -> ExperimentResult:
    """E13: frequency of ``||R v||_inf > d_1(N) ||v||_2`` against ``d_2(N) = 1/N`` and ``1/(8 N^3)``."""
    if mutation not in (None, "factor-2-dropped"):
        raise InvalidParameterError(f"mutation must be None or 'factor-2-dropped', got {mutation!r}")
    assertions = []
    series: dict[str, list[float]] = {"N": [], "failure_rate": [], "max_ratio": []}
    for n, v_norm, sup in _e13_draws(size, seed):
        bound = e13_threshold(n, mutation) * v_norm
        failures = int(np.sum(sup > bound))
        assertions += [
            failure_frequency(f"||Rv||_inf > d_1(N) ||v||_2 vs d_2 = 1/N, N={n}", failures, sup.size, 1.0 / n),
            failure_frequency(f"||Rv||_inf > d_1(N) ||v||_2 vs union bound 1/(8N^3), N={n}", failures, sup.size,
                              1.0 / (8.0 * n**3)),
        ]
        for key, value in (("N", n), ("failure_rate", failures / sup.size), ("max_ratio", np.max(sup) / bound)):
            series[key].append(float(value))
    return ExperimentResult("E13", "Gaussian instance of Assumption 4.2: ||Rv||_inf <= d_1(N) ||v||_2",
                            ("Assumption 4.2", "OR1 Example 2.5", "Lemma 4.4"), size, series, (), tuple(assertions))
