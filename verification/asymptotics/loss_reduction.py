"""Experiments E6, E7, E11: removing the Gaussian component lowers the regularised loss by its penalty
(THEORY.md 6 Theorems 4.5–4.6, OR1 Corollaries 2.1–2.2; 7.2 OR1 Theorems 3.16–3.18, Corollaries 3.17, 3.19; 10).

Embedded networks (:mod:`verification.asymptotics.embedded_network`), ReLU, ``d = 4``, ``K = 3``, ``r_0 = 3``,
``g = 0.8``, ``lambda_reg = 1e-3``, inputs ``s ~ N(0, I_d)``, labels = dense argmax, spikes ``(3, 2, 1)``
(THEORY.md 10 does not fix them; E5's values).  ``L = L_CE + lambda_reg sum_i ||W_i||_F^2``.

* E6: remainder ``r_N(theta) = L(alpha_{S + theta R}) - L(alpha_W) + lambda (1 - theta^2) ||R||_F^2`` for
  ``theta in {0, .25, .5, .75}``; SOUND ``|r_N(theta)| <= (1 - theta)(B_T(R) + 2 lambda |<S, R>_F|)`` with
  ``L_s = ||W_3||_inf`` (Lemma 5.1 + the exact identity of Theorem 4.5); ratio
  ``mean|r| (N_max) <= 0.3 mean|r| (N_min)``; OR1 Lemma 3.13 / Theorem 3.16 event frequencies (binomial rule,
  THEORY.md 9.5).
* E7: four layers, prune ``W_3`` then ``W_2``; total remainder = sum of the per-step remainders (EXACT),
  per-step SOUND bounds (Method G with the already-pruned downstream ``S_3``), same ratio test.
* E11: ``|T_N| = N`` inputs, ``delta_N = 1/N``: ``b_{N,delta_N}(T_N)`` and the CE change both decrease with ``N``;
  CE change ``<= b`` on the Theorem 3.16 event (SOUND); the regularised remainder decreases.

``mutation='double-penalty'`` (known-bad) claims the reduction ``2 lambda (1 - theta^2) ||R||_F^2``: the remainder
then grows like ``lambda g N`` and the ratio tests fail.  ``mutation='stale-step'`` (E7 only) computes the second
per-step remainder in the original network instead of the intermediate one: the EXACT identity fails.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from certs.budget import upper_sum
from certs.classification import cross_entropy_per_sample
from rmt.errors import InvalidParameterError
from verification.theorems.check_outcomes import identity, inequality

from .acceptance import at_most, failure_frequency
from .embedded_network import (
    EmbeddedNetwork,
    EmbeddedSetting,
    activate,
    chain_logits,
    embedded_four_layer,
    embedded_three_layer,
    live_product,
    method_g_constant,
    regularized_loss,
)
from .gaussian_finite_n import confidence_thresholds, perturbation_thresholds
from .result import AssertionOutcome, ExperimentResult, fit_trend
from .seeding import child_rng, child_seed

__all__ = ["LossSetting", "E6_SETTING", "run_e6", "run_e7", "run_e11", "MUTATIONS", "SIZES"]

MUTATIONS = ("double-penalty", "stale-step")
THETAS = (0.0, 0.25, 0.5, 0.75)
RATIO_TOLERANCE = 0.3
DELTA = 0.05

#: ``N`` values and replicates per size.  ``ci`` keeps the smallest and a large ``N`` (the ratio test
#: compares the two ends; ``sqrt(log N / N)`` predicts 0.23 for 64 -> 2048 against the tolerance 0.3).
SIZES = {
    "E6": {"ci": ((64, 2048), 20), "thorough": ((64, 256, 1024, 4096), 20)},
    "E7": {"ci": ((64, 2048), 10), "thorough": ((64, 256, 1024, 4096), 20)},
    "E11": {"ci": ((64, 256, 1024), 10), "thorough": ((64, 256, 1024, 4096), 20)},
}


@dataclass(frozen=True)
class LossSetting(EmbeddedSetting):
    """The embedded generator of E6 / E7 / E11 (THEORY.md 10); ``sigma3``: spikes of E7's ``S_3``."""

    sigma3: tuple[float, ...] = (2.0, 1.5, 1.0)


E6_SETTING = LossSetting()


def _check(size: str, mutation: str | None, allowed: tuple[str, ...]) -> None:
    if size not in ("ci", "thorough"):
        raise InvalidParameterError(f"size must be 'ci' or 'thorough', got {size!r}")
    if mutation is not None and mutation not in allowed:
        raise InvalidParameterError(f"mutation must be None or one of {allowed}, got {mutation!r}")


def _inputs(setting: LossSetting, n: int, seed: int, N: int, rep: int) -> np.ndarray:
    return child_rng(seed, 11, N, rep).standard_normal((n, setting.d))


def _labels(weights, X, activation) -> np.ndarray:
    return np.argmax(chain_logits(weights, X, activation), axis=1)


def _penalty_factor(mutation: str | None) -> float:
    return 2.0 if mutation == "double-penalty" else 1.0


def _ratio_outcome(name: str, means: list[float], detail: str = "") -> AssertionOutcome:
    """THEORY.md 10 E6: ``mean|r| at the largest N <= 0.3 x at the smallest``."""
    ratio = means[-1] / means[0] if means[0] > 0 else float("inf")
    return at_most(name, "trend", ratio, RATIO_TOLERANCE, detail or f"means {', '.join(f'{m:.3g}' for m in means)}")


def _removal_bound(lipschitz: float, products: np.ndarray, width: int, cross: float, lam: float, theta: float) -> float:
    """``(1 - theta)(B_T(R) + 2 lambda |<S, R>_F|)`` rounded up; ``B_T`` with one ``L_s`` for all samples and the exact
    ``products[s] = ||R psi_1(s)||_inf`` (:func:`_sup_products`)."""
    terms = (1.0 - theta) * np.concatenate([2.0 * lipschitz * products / products.size, [2.0 * lam * abs(cross)]])
    return upper_sum(terms, n_ops=width + products.size + 4)


def _sup_products(removed: np.ndarray, path: np.ndarray) -> np.ndarray:
    """``||R psi_1(s)||_inf`` per sample, the exact matrix-vector products (never a norm product, pitfall 2)."""
    return np.abs(live_product(path, removed)).max(axis=1)


def _event_outcomes(label: str, dev: np.ndarray, lip: np.ndarray, input_norms: np.ndarray, g: float, N: int) -> list:
    """OR1 Lemma 3.13 (worst sample, ``1/N``) and Theorem 3.16 (``delta``) event frequencies over replicates
    (``dev``, ``input_norms``: ``(reps, |T|)``; ``lip``: ``(reps,)``, ``L_s = ||W_3||_inf`` of each replicate)."""
    reps = dev.shape[0]
    tau = perturbation_thresholds(lip[:, None], input_norms, N)             # (reps, T)
    tau_d = np.stack([confidence_thresholds(l, row, g, N, DELTA) for l, row in zip(lip, input_norms)])
    return [
        failure_frequency(f"{label} N={N}: OR1 Lemma 3.13 per-sample event", int(np.max(np.sum(dev > tau, axis=0))),
                          reps, 1.0 / N),
        failure_frequency(f"{label} N={N}: OR1 Theorem 3.16 event (delta={DELTA})",
                          int(np.sum(np.any(dev > tau_d, axis=1))), reps, DELTA),
    ]


# ---------------------------------------------------------------------------------------------- E6
def run_e6(size: str = "ci", seed: int = 0, mutation: str | None = None,
           setting: LossSetting = E6_SETTING) -> ExperimentResult:
    """E6 (module docstring)."""
    _check(size, mutation, ("double-penalty",))
    Ns, reps = SIZES["E6"][size]
    s = setting
    mean_abs = {t: [] for t in THETAS}
    penalty_mean, bound_mean = [], []
    assertions: list[AssertionOutcome] = []
    factor = _penalty_factor(mutation)
    for N in Ns:
        rem = np.empty((reps, len(THETAS)))
        bounds = np.empty((reps, len(THETAS)))
        dev = np.empty((reps, s.n_samples))
        norms = np.empty((reps, s.n_samples))
        pen = np.empty(reps)
        lips = np.empty(reps)
        sound_bad, sound_worst = 0, 0.0
        for rep in range(reps):
            net = embedded_three_layer(s.d, s.K, N, s.r, s.sigma, s.g, s.activation, seed=child_seed(seed, 6, N, rep))
            X = _inputs(s, s.n_samples, seed, N, rep)
            y = _labels(net.weights, X, s.activation)
            S, R = net.structured[1], net.removed[1]
            r_sq, cross = float(np.vdot(R, R)), float(np.vdot(S, R))
            dense = regularized_loss(net.weights, X, y, s.lam, s.activation)
            lip = lips[rep] = method_g_constant([net.weights[2]])
            products = _sup_products(R, activate(X @ net.weights[0].T, s.activation))
            for j, theta in enumerate(THETAS):
                moved = regularized_loss(net.replaced(1, S + theta * R), X, y, s.lam, s.activation)
                reward = factor * s.lam * (1.0 - theta**2) * r_sq
                rem[rep, j] = moved - dense + reward
                bounds[rep, j] = _removal_bound(lip, products, N, cross, s.lam, theta)
                check = inequality(abs(rem[rep, j]), bounds[rep, j], scale=max(abs(moved), abs(dense), reward))
                sound_bad += not check.ok
                sound_worst = max(sound_worst, abs(rem[rep, j]) / bounds[rep, j] if bounds[rep, j] > 0 else 0.0)
            dev[rep] = np.abs(chain_logits(net.replaced(1, S), X, s.activation)
                              - chain_logits(net.weights, X, s.activation)).max(axis=1)
            norms[rep] = np.linalg.norm(X @ net.weights[0].T, axis=1)
            pen[rep] = s.lam * r_sq
        for j, theta in enumerate(THETAS):
            mean_abs[theta].append(float(np.mean(np.abs(rem[:, j]))))
        penalty_mean.append(float(pen.mean()))
        bound_mean.append(float(bounds[:, 0].mean()))
        assertions.append(AssertionOutcome(
            name=f"N={N}: Theorem 4.5 SOUND |r_N(theta)| <= (1-theta)(B_T(R) + 2 lambda |<S,R>|), L_s = ||W3||_inf",
            kind="sound", value=float(sound_bad), threshold=0.0, ok=sound_bad == 0,
            detail=f"{sound_bad} violations in {reps * len(THETAS)}; max |r|/bound {sound_worst:.3g}"))
        assertions.extend(_event_outcomes("E6", dev, lips, norms, s.g, N))
    for theta in THETAS:
        assertions.append(_ratio_outcome(f"theta={theta}: mean|r_N| at N={Ns[-1]} <= 0.3 x at N={Ns[0]}",
                                         mean_abs[theta]))
    logN = np.log(np.asarray(Ns, dtype=np.float64))
    trends = (fit_trend(logN, np.log(mean_abs[0.0]), "log N", "log mean|r_N|"),
              fit_trend(logN, np.log(penalty_mean), "log N", "log lambda ||R||_F^2"))
    series = {"N": [float(n) for n in Ns], "penalty_mean": penalty_mean, "bound_mean": bound_mean,
              **{f"mean_abs_remainder_theta_{t}": mean_abs[t] for t in THETAS}}
    result = ExperimentResult(
        experiment="E6", title="Loss reduction remainder r_N -> 0 while lambda ||R||_F^2 grows",
        results=("Theorem 4.5", "OR1 Corollary 2.2", "OR1 Theorem 3.18", "OR1 Corollary 3.19", "OR1 Lemma 3.13",
                 "OR1 Theorem 3.16"),
        size=size, series=series, trends=trends, assertions=tuple(assertions))
    return result


# ---------------------------------------------------------------------------------------------- E7
def _sequence_remainders(net: EmbeddedNetwork, X, y, lam: float, activation: str, mutation: str | None):
    """Losses of alpha^(0) (dense), alpha^(1) (W_3 -> S_3), alpha^(2) (also W_2 -> S_2) and the remainders."""
    S2, R2, S3, R3 = net.structured[1], net.removed[1], net.structured[2], net.removed[2]
    factor = _penalty_factor(mutation)
    w0 = net.weights
    w1 = net.replaced(2, S3)
    w2 = (w1[0], S2, w1[2], w1[3])
    l0, l1, l2 = (regularized_loss(w, X, y, lam, activation) for w in (w0, w1, w2))
    pen2, pen3 = factor * lam * float(np.vdot(R2, R2)), factor * lam * float(np.vdot(R3, R3))
    step1 = l1 - l0 + pen3
    if mutation == "stale-step":   # second step evaluated in the ORIGINAL network (W_3 still dense): wrong
        step2 = regularized_loss(net.replaced(1, S2), X, y, lam, activation) - l0 + pen2
    else:
        step2 = l2 - l1 + pen2
    total = l2 - l0 + pen2 + pen3
    psi2 = activate(X @ w0[0].T, activation)
    psi3 = activate(live_product(psi2, w0[1]), activation)
    n = S2.shape[1]
    bound1 = _removal_bound(method_g_constant([w0[3]]), _sup_products(R3, psi3), n, float(np.vdot(S3, R3)), lam, 0.0)
    bound2 = _removal_bound(method_g_constant([S3, w0[3]]), _sup_products(R2, psi2), n, float(np.vdot(S2, R2)), lam,
                            0.0)
    return total, step1, step2, bound1, bound2, max(abs(l0), abs(l1), abs(l2), pen2 + pen3)


def run_e7(size: str = "ci", seed: int = 0, mutation: str | None = None,
           setting: LossSetting = E6_SETTING) -> ExperimentResult:
    """E7 (module docstring): telescoping over two noisy layers, downstream ``W_3`` pruned first (pitfall 17)."""
    _check(size, mutation, MUTATIONS)
    Ns, reps = SIZES["E7"][size]
    s = setting
    means = []
    assertions: list[AssertionOutcome] = []
    for N in Ns:
        totals = np.empty(reps)
        id_bad, sound_bad, worst = 0, 0, 0.0
        for rep in range(reps):
            net = embedded_four_layer(s.d, s.K, N, s.r, s.sigma, s.sigma3, s.g, s.activation,
                                      seed=child_seed(seed, 7, N, rep))
            X = _inputs(s, s.n_samples, seed, N, rep)
            y = _labels(net.weights, X, s.activation)
            total, step1, step2, b1, b2, scale = _sequence_remainders(net, X, y, s.lam, s.activation, mutation)
            totals[rep] = total
            id_bad += not identity(total, step1 + step2, scale=scale).ok
            for step, bound in ((step1, b1), (step2, b2)):
                sound_bad += not inequality(abs(step), bound, scale=scale).ok
                worst = max(worst, abs(step) / bound if bound > 0 else 0.0)
        means.append(float(np.mean(np.abs(totals))))
        assertions.append(AssertionOutcome(
            name=f"N={N}: Theorem 4.6 EXACT total remainder = sum of per-step remainders", kind="sound",
            value=float(id_bad), threshold=0.0, ok=id_bad == 0, detail=f"{id_bad} mismatches in {reps} replicates"))
        assertions.append(AssertionOutcome(
            name=f"N={N}: Theorem 4.5 SOUND per-step |r| <= B_T(R) + 2 lambda |<S,R>| (Method G, S_3 downstream)",
            kind="sound", value=float(sound_bad), threshold=0.0, ok=sound_bad == 0,
            detail=f"{sound_bad} violations in {2 * reps}; max |r|/bound {worst:.3g}"))
    assertions.append(_ratio_outcome(f"mean|total remainder| at N={Ns[-1]} <= 0.3 x at N={Ns[0]}", means))
    logN = np.log(np.asarray(Ns, dtype=np.float64))
    result = ExperimentResult(
        experiment="E7", title="Telescoping: pruning W3 then W2 lowers L by lambda(||R2||^2 + ||R3||^2) + o(1)",
        results=("Theorem 4.6",), size=size, series={"N": [float(n) for n in Ns], "mean_abs_total_remainder": means},
        trends=(fit_trend(logN, np.log(means), "log N", "log mean|total remainder|"),), assertions=tuple(assertions))
    return result


# ---------------------------------------------------------------------------------------------- E11
def run_e11(size: str = "ci", seed: int = 0, mutation: str | None = None,
            setting: LossSetting = E6_SETTING) -> ExperimentResult:
    """E11 (module docstring): growing sets ``|T_N| = N``, ``delta_N = 1/N``."""
    _check(size, mutation, ("double-penalty",))
    Ns, reps = SIZES["E11"][size]
    s = setting
    factor = _penalty_factor(mutation)
    b_mean, ce_mean, rem_mean = [], [], []
    assertions: list[AssertionOutcome] = []
    for N in Ns:
        b = np.empty(reps)
        ce = np.empty(reps)
        rem = np.empty(reps)
        fails, sound_bad = 0, 0
        for rep in range(reps):
            net = embedded_three_layer(s.d, s.K, N, s.r, s.sigma, s.g, s.activation, seed=child_seed(seed, 11, N, rep))
            X = _inputs(s, N, seed, N, rep)
            y = _labels(net.weights, X, s.activation)
            S, R = net.structured[1], net.removed[1]
            z_w = chain_logits(net.weights, X, s.activation)
            z_s = chain_logits(net.replaced(1, S), X, s.activation)
            lip = method_g_constant([net.weights[2]])
            tau = confidence_thresholds(lip, np.linalg.norm(X @ net.weights[0].T, axis=1), s.g, N, 1.0 / N)
            b[rep] = 2.0 / N * float(np.sum(tau))
            ce_w, ce_s = cross_entropy_per_sample(z_w, y).mean(), cross_entropy_per_sample(z_s, y).mean()
            ce[rep] = abs(ce_s - ce_w)
            event = bool(np.all(np.abs(z_s - z_w).max(axis=1) <= tau))
            fails += not event
            sound_bad += event and not inequality(ce[rep], b[rep]).ok
            pen_w = s.lam * sum(float(np.vdot(w, w)) for w in net.weights)
            pen_s = pen_w - s.lam * float(np.vdot(net.weights[1], net.weights[1])) + s.lam * float(np.vdot(S, S))
            rem[rep] = (ce_s + pen_s) - (ce_w + pen_w) + factor * s.lam * float(np.vdot(R, R))
        b_mean.append(float(b.mean()))
        ce_mean.append(float(ce.mean()))
        rem_mean.append(float(np.mean(np.abs(rem))))
        assertions.append(AssertionOutcome(
            name=f"N={N}: OR1 Corollary 3.17 SOUND on the Theorem 3.16 event: |dL_unreg| <= b_(N,1/N)(T_N)",
            kind="sound", value=float(sound_bad), threshold=0.0, ok=sound_bad == 0,
            detail=f"{sound_bad} violations in {reps - fails} replicates on the event"))
        assertions.append(failure_frequency(f"N={N}: OR1 Theorem 3.16 event with |T_N| = N, delta_N = 1/N", fails, reps,
                                            1.0 / N))
    for name, values in (("b_(N,delta_N)(T_N)", b_mean), ("mean |dL_unreg|", ce_mean),
                         ("mean |regularised remainder|", rem_mean)):
        steps = np.diff(values)
        assertions.append(at_most(f"{name} decreases with N (largest consecutive change)", "trend",
                                  float(steps.max()), 0.0, ", ".join(f"{v:.3g}" for v in values)))
    logN = np.log(np.asarray(Ns, dtype=np.float64))
    trends = tuple(fit_trend(logN, np.log(v), "log N", f"log {n}") for n, v in
                   (("b", b_mean), ("mean|dL_unreg|", ce_mean), ("mean|remainder|", rem_mean)))
    result = ExperimentResult(
        experiment="E11", title="Growing sets |T_N| = N: b_(N,1/N) and the CE change decrease",
        results=("OR1 Corollary 2.1", "OR1 Corollary 3.17"), size=size,
        series={"N": [float(n) for n in Ns], "b_mean": b_mean, "mean_abs_ce_change": ce_mean,
                "mean_abs_remainder": rem_mean},
        trends=trends, assertions=tuple(assertions))
    return result

