"""Finite-N Gaussian results of OR1 Section 3 as Monte-Carlo checks (THEORY.md 7.2, 9.5).

Setting (OR1 Assumptions 3.1, 3.3): ``X(s) = lambda(W_3 lambda((S_2 + R_2) nu_s))``, ``nu_s = lambda(W_1 s)``,
``R_2`` iid ``N(0, g/N)`` (``N`` rows), drawn ``draws`` times independently of the fixed ``W_1, S_2, W_3``
and inputs (pitfall 18).  Per draw and sample we record the logit deviation
``dev_s = ||X(s, alpha_{S_2}) - X(s, alpha_{W_2})||_inf`` and the SOUND core ``||W_3||_inf ||R_2 nu_s||_inf``.

* OR1 Lemma 3.13: ``tau_N(s) = 2 sqrt2 a(N, s)``, ``a(N, s) = ||W_3||_inf ||W_1 s||_2 sqrt(log(2N)/N)``;
  ``P(dev_s > tau_N(s)) <= 1/N`` per sample (``g <= 1``, pitfall 8).  SOUND core:
  ``dev_s <= ||W_3||_inf ||R_2 nu_s||_inf``.
* OR1 Corollary 3.14: on ``{dev_s <= tau_N(s) for all s in T'}`` (probability ``>= 1 - |T'|/N``),
  ``|acc_W - acc_S| <= #{s : |deltaX(s, alpha_W)| <= 2 tau_N(s)} / |T'|``.
* OR1 Lemma 3.15: ``P(|L_unreg(S) - L_unreg(W)| > (4 sqrt2/|T|) sum_s a(N, s)) <= |T|/N``; SOUND on the
  Lemma 3.13 event (CE is 2-Lipschitz in the ℓ∞ norm of the logits, pitfall 4).
* OR1 Theorem 3.16: ``tau_{N,delta}(s) = ||W_3||_inf ||W_1 s||_2 sqrt(2 g log(2N|T|/delta)/N)`` (Corollary 5.10 with
  ``L_s = ||W_3||_inf`` and ``v_s = W_1 s``: :func:`rmt.budgets.gaussian_budget_bound`); the event
  ``{dev_s <= tau_{N,delta}(s) for all s}`` fails with probability ``<= delta``; on it
  ``|dL_unreg| <= (2/|T|) sum_s tau_{N,delta}(s)``; with ``|<S_2, R_2>_F| <= eta`` also
  ``L(S) <= L(W) - lambda ||R_2||_F^2 + (2/|T|) sum_s tau_{N,delta}(s) + 2 lambda eta``, which fails with probability
  ``<= delta + 2 exp(-N eta^2 / (2 ||S_2||_F^2))`` (OR1 Remark 3.7 with ``B_N = ||S_2||_F``).

Frequencies use the binomial rule of THEORY.md 9.5 (false-alarm rate ``1e-6`` per assertion; ``|T| 1e-6`` for the
per-sample Lemma 3.13 rows, which test the worst of ``|T|`` per-sample counts).  Because ``||W_3||_inf`` overstates the
Lipschitz constant of the head many times, the logit-level frequencies are far below their ``delta`` (observed
``max dev / tau`` about 0.03-0.1) and cannot detect wrong constants; the *noise events* of the proofs
(``||R_2 nu_s||_inf`` against the same thresholds with ``L = 1``, ``||nu_s||_2``) are checked as well and do.  SOUND
parts allow zero violations (THEORY.md 0.3 tolerance).  ``mutation`` selects a known-bad variant
(:data:`MUTATIONS`) that the tests show is caught.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from certs.classification import accuracy, cross_entropy_per_sample, true_margins
from rmt.budgets import gaussian_budget_bound
from rmt.errors import InvalidParameterError

from .acceptance import failure_frequency
from .embedded_network import activate, method_g_constant
from .result import AssertionOutcome
from .seeding import child_rng

__all__ = ["MUTATIONS", "GaussianDraws", "draw_gaussian_noise", "perturbation_thresholds",
           "confidence_thresholds", "default_eta", "finite_n_outcomes"]

#: Known-bad variants: ``w3-entry-max`` uses ``max_ij |W_3|`` for ``||W_3||_inf`` in the SOUND core (pitfall 1);
#: ``tau-over-sqrtN`` divides every threshold by ``sqrt(N)`` (variance ``g/N^2``, a wrong normalisation);
#: ``no-union-bound`` drops the union over rows and samples in Theorem 3.16 (``log(2/delta)``).
MUTATIONS = ("w3-entry-max", "tau-over-sqrtN", "no-union-bound")


@dataclass(frozen=True, eq=False)
class GaussianDraws:
    """Per-draw quantities for ``draws`` fresh ``R_2`` (arrays ``(draws, |T|)`` or ``(draws,)``)."""

    deviation: np.ndarray
    noise_products: np.ndarray
    w3_norm: float
    w3_entry_max: float
    ce_structured: float
    ce_dense: np.ndarray
    acc_structured: float
    acc_dense: np.ndarray
    margins_dense: np.ndarray
    penalty_change: np.ndarray
    removed_sq: np.ndarray
    cross: np.ndarray
    structured_sq: float
    input_norms: np.ndarray
    path_norms: np.ndarray
    N: int
    g: float


def draw_gaussian_noise(W1: np.ndarray, S2: np.ndarray, W3: np.ndarray, X: np.ndarray, labels: np.ndarray,
                        g: float, draws: int, seed: int, activation: str = "relu") -> GaussianDraws:
    """Monte-Carlo of ``draws`` independent ``R_2 = sqrt(g/N) Z`` (fixed stream ``child_rng(seed, draws, N)``); holds
    the ``draws x N x N`` noise in memory at once, so it is meant for small ``N`` (tests use ``N <= 64``)."""
    N = S2.shape[0]
    if not (np.isfinite(g) and 0.0 < g):
        raise InvalidParameterError(f"g must be finite and > 0, got {g!r}")
    if int(draws) < 1:
        raise InvalidParameterError(f"draws must be a positive integer, got {draws!r}")
    nu = activate(X @ W1.T, activation)                                      # (T, N)

    def head(pre: np.ndarray) -> np.ndarray:
        return activate(activate(pre, activation) @ W3.T, activation)

    z_s = head(nu @ S2.T)                                                    # (T, K)
    rng = child_rng(seed, int(draws), N)
    R = rng.standard_normal((int(draws), N, N)) * np.sqrt(g / N)
    noise = np.einsum("kij,tj->kti", R, nu)                                  # (draws, T, N): R_2 nu_s
    z_w = head(nu @ S2.T + noise)                                            # (draws, T, K)
    w_sq = np.einsum("kij,kij->k", S2 + R, S2 + R)
    s_sq = float(np.sum(S2 * S2))
    return GaussianDraws(
        deviation=np.abs(z_w - z_s).max(axis=2),
        noise_products=np.abs(noise).max(axis=2),
        w3_norm=method_g_constant([W3]),
        w3_entry_max=float(np.abs(W3).max()),
        ce_structured=float(cross_entropy_per_sample(z_s, labels).mean()),
        ce_dense=cross_entropy_per_sample(z_w, labels).mean(axis=-1),
        acc_structured=float(accuracy(z_s, labels)),
        acc_dense=accuracy(z_w, labels),
        margins_dense=true_margins(z_w, labels),
        penalty_change=s_sq - w_sq,
        removed_sq=np.einsum("kij,kij->k", R, R),
        cross=np.einsum("ij,kij->k", S2, R),
        structured_sq=s_sq,
        input_norms=np.linalg.norm(X @ W1.T, axis=1),
        path_norms=np.linalg.norm(nu, axis=1),
        N=N,
        g=float(g),
    )


def perturbation_thresholds(lipschitz: float, norms: np.ndarray, N: int) -> np.ndarray:
    """``tau_N(s) = 2 sqrt2 L ||W_1 s||_2 sqrt(log(2N)/N)`` with ``L = ||W_3||_inf`` (OR1 Lemma 3.13).

    ``lipschitz=1, norms=||nu_s||_2`` gives the threshold of the proof's noise event
    ``||R_2 nu_s||_inf <= 2 sqrt2 ||nu_s||_2 sqrt(log(2N)/N)`` (THEORY.md 6, Gaussian instance of Assumption 4.2).
    """
    return 2.0 * np.sqrt(2.0) * lipschitz * np.asarray(norms, dtype=np.float64) * np.sqrt(np.log(2 * N) / N)


def confidence_thresholds(lipschitz: float, norms: np.ndarray, g: float, N: int, delta: float) -> np.ndarray:
    """``tau_{N,delta}(s) = L ||W_1 s||_2 sqrt(2 g log(2N|T|/delta)/N)`` (OR1 Theorem 3.16, ``|T| = len(norms)``): the
    thresholds of Corollary 5.10 (:func:`rmt.budgets.gaussian_budget_bound`) times ``L``; with ``lipschitz=1``,
    ``norms=||nu_s||_2`` the good event ``||R_2 nu_s||_inf <= t_s`` of Corollary 5.10."""
    norms = np.asarray(norms, dtype=np.float64)
    budget = gaussian_budget_bound(norms[:, None], np.full(norms.size, lipschitz), g, N, delta)
    return budget.thresholds * lipschitz


def _mutated(tau: np.ndarray, N: int, T: int, delta: float | None, mutation: str | None) -> np.ndarray:
    """Apply a threshold mutation: ``tau-over-sqrtN`` everywhere, ``no-union-bound`` to Theorem 3.16 thresholds."""
    if mutation == "tau-over-sqrtN":
        return tau / np.sqrt(N)
    if mutation == "no-union-bound" and delta is not None:
        return tau * np.sqrt(np.log(2.0 / delta) / np.log(2.0 * N * T / delta))
    return tau


def default_eta(structured_sq: float, N: int, delta: float) -> float:
    """``eta`` with ``2 exp(-N eta^2 / (2 B_N^2)) = delta`` for ``B_N = ||S_2||_F`` (OR1 Remark 3.7)."""
    return float(np.sqrt(2.0 * structured_sq * np.log(2.0 / delta) / N))


def _violations(name: str, realized: np.ndarray, bound: np.ndarray, where: np.ndarray, detail: str) -> AssertionOutcome:
    """SOUND: ``realized <= bound`` (THEORY.md 0.3 tolerance) wherever ``where``; counts violations."""
    tol = 1e-9 * np.maximum(1.0, np.maximum(np.abs(realized), np.abs(bound)))
    bad = int(np.sum(where & (realized > bound + tol)))
    checked = int(np.sum(where))
    return AssertionOutcome(name=name, kind="sound", value=float(bad), threshold=0.0, ok=bad == 0,
                            detail=f"{bad} violations in {checked} checked cases; {detail}")


def finite_n_outcomes(sample: GaussianDraws, delta: float = 0.05, lam: float = 1e-3, eta: float | None = None,
                      mutation: str | None = None) -> tuple[AssertionOutcome, ...]:
    """OR1 Lemma 3.13, Corollary 3.14, Lemma 3.15 and Theorem 3.16 on one :class:`GaussianDraws`."""
    if mutation is not None and mutation not in MUTATIONS:
        raise InvalidParameterError(f"mutation must be None or one of {MUTATIONS}, got {mutation!r}")
    if sample.g > 1.0:
        raise InvalidParameterError(f"OR1 Lemmas 3.13/3.15 assume g <= 1 (pitfall 8), got g={sample.g}")
    K, T = sample.deviation.shape
    N = sample.N
    lip = sample.w3_entry_max if mutation == "w3-entry-max" else sample.w3_norm
    out = [_violations("OR1 Lemma 3.13 SOUND core: dev_s <= ||W3||_inf ||R2 nu_s||_inf", sample.deviation,
                       lip * sample.noise_products, np.ones((K, T), dtype=bool), f"L = {lip:.4g}")]
    tau = _mutated(perturbation_thresholds(sample.w3_norm, sample.input_norms, N), N, T, None, mutation)
    inside = sample.deviation <= tau                                         # (K, T)
    per_sample = int(np.max(np.sum(~inside, axis=0)))
    out.append(failure_frequency("OR1 Lemma 3.13: P(dev_s > tau_N(s)) <= 1/N (worst sample)", per_sample, K, 1.0 / N))
    event = np.all(inside, axis=1)                                           # (K,)
    noise_tau = _mutated(perturbation_thresholds(1.0, sample.path_norms, N), N, T, None, mutation)
    noise_fail = int(np.max(np.sum(sample.noise_products > noise_tau, axis=0)))
    out.append(failure_frequency("OR1 Lemma 3.13 noise event: "
                                 "P(||R2 nu_s||_inf > 2sqrt2 ||nu_s|| sqrt(log 2N/N)) <= 1/N",
                                 noise_fail, K, 1.0 / N, "the proof's probabilistic step (union bound: 1/(8N^3))"))
    d_ce = np.abs(sample.ce_structured - sample.ce_dense)
    ce_bound = 2.0 / T * float(np.sum(tau))                                   # = (4 sqrt2/|T|) sum_s a(N, s)
    if T < N:
        out.append(failure_frequency("OR1 Corollary 3.14: P(some dev_s > tau_N(s)) <= |T'|/N", int(np.sum(~event)), K,
                                     T / N))
        out.append(failure_frequency("OR1 Lemma 3.15: P(|dL_unreg| > (4 sqrt2/|T|) sum a) <= |T|/N",
                                     int(np.sum(d_ce > ce_bound)), K, T / N))
    at_risk = np.sum(np.abs(sample.margins_dense) <= 2.0 * tau, axis=1) / T
    out.append(_violations("OR1 Corollary 3.14 on its event: |acc_W - acc_S| <= #at-risk/|T'|",
                           np.abs(sample.acc_dense - sample.acc_structured), at_risk, event,
                           "at risk: |deltaX| <= 2 tau_N"))
    out.append(_violations("OR1 Lemma 3.15 on the Lemma 3.13 event: |dL_unreg| <= (4 sqrt2/|T|) sum a",
                           d_ce, np.full(K, ce_bound), event, f"bound {ce_bound:.4g}"))
    tau_d = _mutated(confidence_thresholds(sample.w3_norm, sample.input_norms, sample.g, N, delta), N, T, delta,
                     mutation)
    event_d = np.all(sample.deviation <= tau_d, axis=1)
    out.append(failure_frequency("OR1 Theorem 3.16: P(some dev_s > tau_{N,delta}(s)) <= delta", int(np.sum(~event_d)),
                                 K, delta))
    noise_d = _mutated(confidence_thresholds(1.0, sample.path_norms, sample.g, N, delta), N, T, delta, mutation)
    out.append(failure_frequency("OR1 Theorem 3.16 noise event: P(some ||R2 nu_s||_inf > t_s) <= delta",
                                 int(np.sum(np.any(sample.noise_products > noise_d, axis=1))), K, delta,
                                 "Corollary 5.10's good event with v_s = nu_s"))
    bound_d = 2.0 / T * float(np.sum(tau_d))
    out.append(_violations("OR1 Theorem 3.16 on its event: |dL_unreg| <= (2/|T|) sum tau_{N,delta}",
                           d_ce, np.full(K, bound_d), event_d, f"bound {bound_d:.4g}"))
    if sample.structured_sq > 0:
        eta = default_eta(sample.structured_sq, N, delta) if eta is None else float(eta)
        realized = (sample.ce_structured - sample.ce_dense) + lam * sample.penalty_change   # L(S) - L(W)
        reg_bound = -lam * sample.removed_sq + bound_d + 2.0 * lam * eta
        fail_p = min(1.0, delta + 2.0 * np.exp(-N * eta**2 / (2.0 * sample.structured_sq)))
        out.append(failure_frequency("OR1 Theorem 3.16 regularised: "
                                     "P(L(S) > L(W) - lam||R||^2 + (2/|T|)sum tau + 2 lam eta) "
                                     "<= delta + 2exp(-N eta^2/2B^2)",
                                     int(np.sum(realized > reg_bound)), K, fail_p))
        good = event_d & (np.abs(sample.cross) <= eta)
        out.append(_violations("OR1 Theorem 3.16 regularised bound on its event", realized, reg_bound, good,
                               f"eta {eta:.4g}, lambda {lam:.4g}"))
    return tuple(out)
