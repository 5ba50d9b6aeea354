"""OR1 Theorem 3.20 (entrywise thresholding) and experiment E9 (THEORY.md 7.2, 10 E9).

``W = S + R`` (``N x M``), ``R_ij`` iid ``N(0, g/N)`` independent of ``S``;
``t_{N,delta} = sqrt(2 g log(2 N M / delta) / N)``; ``H_t(W)_ij = W_ij 1{|W_ij| > t}`` (strict).

* SOUND on the good event ``max_ij |R_ij| <= t``: the sandwich
  ``{|S_ij| > 2t} ⊆ supp H_t(W) ⊆ supp S`` (:func:`support_sandwich`).
* PROB(delta): ``P(max |R| > t) <= delta`` (Gaussian tail and a union over ``N M`` entries); under beta-min
  (``min_{supp S} |S| > 2t`` surely) exact recovery ``supp H_t(W) = supp S`` fails with probability ``<= delta``.

E9: ``N in {100, 400}``, ``M = N/2``, ``g in {0.2, 1}``, ``delta = 0.05``, ``S`` with 2% support (uniformly chosen
positions, random signs) and magnitudes ``3t`` (beta-min) or an even mix of ``3t`` and ``1.5t``.  Replicates:
``ci`` 200 per configuration, ``thorough`` 1000 (THEORY.md 10 leaves the count open).

Known-bad variants (``mutation``): ``half-threshold`` thresholds at ``t/2`` (the event ``max|R| <= t/2`` then fails
almost always); ``beta-factor-1`` claims ``{|S| > t} ⊆ supp H_t(W)`` (the factor 2 dropped; violated by ``1.5t``
entries).
"""

from __future__ import annotations

import itertools

import numpy as np

from rmt.errors import InvalidParameterError

from .acceptance import failure_frequency
from .result import AssertionOutcome, ExperimentResult
from .seeding import child_rng

__all__ = ["MUTATIONS", "threshold_level", "hard_threshold", "support_sandwich", "run_e9", "REPLICATES"]

MUTATIONS = ("half-threshold", "beta-factor-1")
REPLICATES = {"ci": 200, "thorough": 1000}
DELTA = 0.05
DENSITY = 0.02
CONFIGS = tuple(itertools.product((100, 400), (0.2, 1.0), ("beta-min", "mix")))


def threshold_level(g: float, N: int, M: int, delta: float) -> float:
    """``t_{N,delta} = sqrt(2 g log(2 N M / delta) / N)`` (OR1 Theorem 3.20); ``g = 0`` gives ``t = 0``."""
    if not (np.isfinite(g) and g >= 0):
        raise InvalidParameterError(f"g must be finite and >= 0, got {g!r}")
    if not 0.0 < delta < 1.0:
        raise InvalidParameterError(f"delta must lie in (0, 1), got {delta!r}")
    if int(N) < 1 or int(M) < 1:
        raise InvalidParameterError(f"N and M must be >= 1, got N={N!r}, M={M!r}")
    return float(np.sqrt(2.0 * g * np.log(2.0 * N * M / delta) / N))


def hard_threshold(W: np.ndarray, t: float) -> np.ndarray:
    """``H_t(W)_ij = W_ij 1{|W_ij| > t}`` (strict inequality)."""
    W = np.asarray(W, dtype=np.float64)
    return np.where(np.abs(W) > t, W, 0.0)


def support_sandwich(S: np.ndarray, W: np.ndarray, t: float, beta_factor: float = 2.0) -> tuple[bool, bool]:
    """``({|S| > beta_factor t} ⊆ supp H_t(W), supp H_t(W) ⊆ supp S)``; Theorem 3.20 has ``beta_factor = 2``."""
    kept = np.abs(W) > t
    return bool(np.all(kept[np.abs(S) > beta_factor * t])), bool(not np.any(kept & (S == 0)))


def _sparse_signal(rng: np.random.Generator, N: int, M: int, t: float, kind: str) -> np.ndarray:
    """2% support, random signs, magnitudes ``3t`` (beta-min) or alternately ``3t`` / ``1.5t`` (mix)."""
    count = max(1, int(round(DENSITY * N * M)))
    positions = rng.choice(N * M, size=count, replace=False)
    magnitude = np.full(count, 3.0 * t)
    if kind == "mix":
        magnitude[1::2] = 1.5 * t
    S = np.zeros(N * M)
    S[positions] = magnitude * rng.choice([-1.0, 1.0], size=count)
    return S.reshape(N, M)


def run_e9(size: str = "ci", seed: int = 0, mutation: str | None = None) -> ExperimentResult:
    """E9 (module docstring)."""
    if size not in REPLICATES:
        raise InvalidParameterError(f"size must be 'ci' or 'thorough', got {size!r}")
    if mutation is not None and mutation not in MUTATIONS:
        raise InvalidParameterError(f"mutation must be None or one of {MUTATIONS}, got {mutation!r}")
    reps = REPLICATES[size]
    beta_factor = 1.0 if mutation == "beta-factor-1" else 2.0
    assertions: list[AssertionOutcome] = []
    event_rate, recovery_rate = [], []
    for index, (N, g, kind) in enumerate(CONFIGS):
        M = N // 2
        t_true = threshold_level(g, N, M, DELTA)
        t = t_true / 2.0 if mutation == "half-threshold" else t_true
        signal_rng, noise_rng = child_rng(seed, 9, index, 0), child_rng(seed, 9, index, 1)
        event_fail = recovery_fail = sandwich_bad = 0
        for _ in range(reps):
            S = _sparse_signal(signal_rng, N, M, t_true, kind)
            R = np.sqrt(g / N) * noise_rng.standard_normal((N, M))     # drawn independently of S (pitfall 18)
            W = S + R
            event = float(np.abs(R).max()) <= t
            event_fail += not event
            if event:
                lower, upper = support_sandwich(S, W, t, beta_factor)
                sandwich_bad += not (lower and upper)
            recovery_fail += not np.array_equal(hard_threshold(W, t) != 0, S != 0)
        label = f"N={N}, M={M}, g={g}, {kind}"
        assertions.append(AssertionOutcome(
            name=f"{label}: OR1 Theorem 3.20 SOUND sandwich on {{max|R| <= t}} (beta factor {beta_factor:g})",
            kind="sound", value=float(sandwich_bad), threshold=0.0, ok=sandwich_bad == 0,
            detail=f"{sandwich_bad} violations in {reps - event_fail} replicates on the event; t = {t:.4g}"))
        assertions.append(failure_frequency(f"{label}: P(max|R| > t) <= delta", event_fail, reps, DELTA))
        if kind == "beta-min":
            assertions.append(failure_frequency(f"{label}: beta-min => P(supp H_t(W) != supp S) <= delta",
                                                recovery_fail, reps, DELTA))
        event_rate.append(event_fail / reps)
        recovery_rate.append(1.0 - recovery_fail / reps)
    result = ExperimentResult(
        experiment="E9", title="Entrywise hard thresholding at the noise level (sandwich, support recovery)",
        results=("OR1 Theorem 3.20",), size=size,
        series={"config_labels_index": [float(i) for i in range(len(CONFIGS))],
                "N": [float(c[0]) for c in CONFIGS], "g": [c[1] for c in CONFIGS],
                "beta_min": [1.0 if c[2] == "beta-min" else 0.0 for c in CONFIGS],
                "event_failure_rate": event_rate, "recovery_rate": recovery_rate},
        assertions=tuple(assertions))
    return result
