"""Tests of the probabilistic data-path budgets (THEORY.md Cor. 5.10, 5.11; OR1 Cor. 1.4–1.6; §9.5).

PROB checks: K fixed-seed draws of a fresh R with fixed V, L (hypothesis picks only the configuration,
never the seed, THEORY 9.4); failures F of the good event and of the inequality are accepted when
F <= q = binom.ppf(1 - alpha, K, delta) with alpha = 1e-6, so a correct implementation produces a false
alarm with probability at most 1e-6 per configuration (the union bounds are loose, so in practice the
observed failure rate is far below delta).  Known-bad constants must exceed the same threshold.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats

from rmt.bounds import Bound
from rmt.budgets import (
    BudgetBound,
    GaussianStep,
    SubGaussianStep,
    gaussian_budget_bound,
    gaussian_budget_bound_from_variance,
    good_event_holds,
    mp_edge_budget_bound,
    multilayer_gaussian_budget_bounds,
    multilayer_subgaussian_budget_bounds,
    realised_budget,
    sample_sup_norms,
    subgaussian_budget_bound,
)
from rmt.errors import InvalidMatrixError, InvalidParameterError
from rmt.mp_law import sigma_plus_from_g

ALPHA = 1e-6
DRAWS = 400


def _config(seed: int, n_samples: int, m: int):
    """Data-path vectors (ReLU-like: some exact zeros) and Lipschitz constants (some zero), fixed by seed."""
    rng = np.random.default_rng(seed)
    v = np.maximum(rng.standard_normal((n_samples, m)), 0.0) * rng.uniform(0.1, 3.0, size=(n_samples, 1))
    lip = rng.uniform(0.0, 2.0, size=n_samples)
    lip[0] = 0.0 if n_samples > 1 else lip[0]
    return v, lip


def _draw(kind: str, rng: np.random.Generator, shape: tuple, g: float, n: int) -> np.ndarray:
    """Entries of variance g/n: Gaussian, Rademacher +-sqrt(g/n), or uniform on [-sqrt(3g/n), sqrt(3g/n)]."""
    if kind == "gaussian":
        return rng.standard_normal(shape) * math.sqrt(g / n)
    if kind == "rademacher":
        return rng.choice([-1.0, 1.0], size=shape) * math.sqrt(g / n)
    return rng.uniform(-1.0, 1.0, size=shape) * math.sqrt(3.0 * g / n)


def failure_counts(result: BudgetBound, v, lip, g: float, n: int, kind: str, seed: int, draws: int = DRAWS):
    """(failures of the good event, failures of B_T(R) <= bound) over `draws` fresh R (n x m)."""
    rng = np.random.default_rng(seed)
    r = _draw(kind, rng, (draws, n, v.shape[1]), g, n)
    sup = np.max(np.abs(r @ v.T), axis=1)                     # (draws, |T|): ||R v_s||_inf
    event_fail = int(np.sum(np.any(sup > result.thresholds, axis=1)))
    budgets = 2.0 / v.shape[0] * (sup @ lip)
    bound_fail = int(np.sum(budgets > result.value))
    return event_fail, bound_fail


def accepted(failures: int, draws: int, delta: float) -> bool:
    return failures <= stats.binom.ppf(1.0 - ALPHA, draws, delta)


def _value_scaled(result: BudgetBound, factor: float) -> BudgetBound:
    """A known-bad variant: the bound value multiplied by `factor`, thresholds t_s unchanged."""
    return dataclasses.replace(result, bound=dataclasses.replace(result.bound, value=result.value * factor))


def _scaled(result: BudgetBound, factor: float) -> BudgetBound:
    """A known-bad variant of a bound: thresholds and value multiplied by `factor`."""
    bound = dataclasses.replace(result.bound, value=result.value * factor)
    return dataclasses.replace(result, bound=bound, thresholds=result.thresholds * factor)


configs = st.fixed_dictionaries({
    "seed": st.integers(0, 1000),
    "n": st.integers(1, 64),
    "m": st.integers(1, 48),
    "n_samples": st.integers(1, 6),
    "g": st.floats(0.05, 4.0),
    "delta": st.sampled_from([0.01, 0.05, 0.2]),
})


# -- realised budget ------------------------------------------------------------------------------------
def test_realised_budget_uses_exact_products():
    """Pitfall 2: R = e_1 1^T / sqrt(m), psi = 1 gives ||R psi||_inf = sqrt(m) > ||R||_op ||psi||_inf = 1."""
    m = 16
    r = np.zeros((3, m))
    r[0] = 1.0 / math.sqrt(m)
    v = np.ones((1, m))
    assert sample_sup_norms(r, v)[0] == pytest.approx(math.sqrt(m))
    assert realised_budget(r, v, [1.5]) == pytest.approx(2.0 * 1.5 * math.sqrt(m))
    v2 = np.vstack([v, -2.0 * v])
    assert realised_budget(r, v2, [1.0, 0.5]) == pytest.approx(2.0 / 2 * (math.sqrt(m) + 0.5 * 2 * math.sqrt(m)))


# -- EXACT relations between the corollaries ------------------------------------------------------------
@given(cfg=configs)
def test_mp_edge_form_equals_gaussian_form(cfg):
    v, lip = _config(cfg["seed"], cfg["n_samples"], cfg["m"])
    g, n, m, delta = cfg["g"], cfg["n"], cfg["m"], cfg["delta"]
    a = gaussian_budget_bound(v, lip, g, n, delta)
    b = mp_edge_budget_bound(v, lip, sigma_plus_from_g(g, m / n), n, m, delta)
    c = subgaussian_budget_bound(v, lip, g, 0.5, n, delta)
    d = gaussian_budget_bound_from_variance(v, lip, g / n, n, delta)
    for other in (b, c, d):
        assert other.value == pytest.approx(a.value, rel=1e-12, abs=1e-300)
        assert np.allclose(other.thresholds, a.thresholds, rtol=1e-12, atol=0.0)
    # the displayed formula of Corollary 5.10
    norms = np.linalg.norm(v, axis=1)
    expected = 2.0 / len(lip) * np.sum(lip * norms) * math.sqrt(2 * g / n * math.log(2 * n * len(lip) / delta))
    assert a.value == pytest.approx(expected, rel=1e-12, abs=1e-300)
    assert a.bound.label == "estimate" and a.bound.confidence == pytest.approx(1.0 - delta)
    assert a.bound.method == "corollary-5.10" and b.bound.method == "corollary-5.11"


# -- SOUND part: the good event implies the bound ---------------------------------------------------------
@given(cfg=configs, kind=st.sampled_from(["gaussian", "rademacher", "uniform"]), scale=st.floats(0.0, 3.0))
def test_good_event_implies_bound(cfg, kind, scale):
    """On E = {||R v_s||_inf <= t_s} the bound holds, for any R (here random R of any scale, so both E and
    not-E occur); when E fails nothing is claimed."""
    v, lip = _config(cfg["seed"], cfg["n_samples"], cfg["m"])
    n, g, delta = cfg["n"], cfg["g"], cfg["delta"]
    c = 0.5 if kind != "uniform" else 1.0 / 6.0
    result = subgaussian_budget_bound(v, lip, g, c, n, delta)
    r = _draw(kind, np.random.default_rng(cfg["seed"]), (n, cfg["m"]), g, n) * scale
    if good_event_holds(r, v, result):
        budget = realised_budget(r, v, lip)
        assert budget <= result.value + 1e-9 * max(1.0, result.value)


def test_good_event_implication_is_tight_and_catches_dropped_factor_two():
    """With disjointly supported v_s and row s of R equal to t_s v_s / ||v_s||^2, ||R v_s||_inf = t_s for
    every s: E holds and B_T(R) equals the bound.  Known-bad: dropping the 2 of 2/|T| from the bound
    (same t_s) breaks the implication E => B_T <= bound."""
    n_samples, m = 4, 12
    v = np.zeros((n_samples, m))
    for k in range(n_samples):
        v[k, 3 * k:3 * k + 3] = [1.0, 2.0, 0.5 * (k + 1)]
    lip = np.array([0.3, 1.0, 2.0, 0.0])
    result = gaussian_budget_bound(v, lip, 1.0, 8, 0.05)
    r = np.zeros((8, m))
    r[:n_samples] = v * (result.thresholds / np.sum(v * v, axis=1))[:, None]
    assert good_event_holds(r, v, result)
    assert np.allclose(sample_sup_norms(r, v), result.thresholds, rtol=1e-14)
    assert realised_budget(r, v, lip) == pytest.approx(result.value, rel=1e-12)
    bad = _value_scaled(result, 0.5)
    assert good_event_holds(r, v, bad) and realised_budget(r, v, lip) > bad.value


# -- PROB part: Monte-Carlo with the binomial rule of THEORY 9.5 ----------------------------------------------
@given(cfg=configs, kind=st.sampled_from(["gaussian", "rademacher", "uniform"]))
def test_failure_frequency_within_binomial_threshold(cfg, kind):
    v, lip = _config(cfg["seed"], cfg["n_samples"], cfg["m"])
    n, g, delta = cfg["n"], cfg["g"], cfg["delta"]
    if kind == "gaussian":
        result = gaussian_budget_bound(v, lip, g, n, delta)
    else:
        result = subgaussian_budget_bound(v, lip, g, 0.5 if kind == "rademacher" else 1.0 / 6.0, n, delta)
    event_fail, bound_fail = failure_counts(result, v, lip, g, n, kind, seed=cfg["seed"] + 1)
    assert bound_fail <= event_fail  # on E the bound holds
    assert accepted(event_fail, DRAWS, delta) and accepted(bound_fail, DRAWS, delta)


@pytest.mark.parametrize("kind", ["gaussian", "rademacher"])
def test_binomial_rule_catches_wrong_constants(kind):
    """Known-bad: sqrt(2) dropped, the factor 2 dropped, or n taken as the number of columns, each fails
    the binomial rule (the correct bound passes on the same draws)."""
    n, m, n_samples, g, delta = 16, 512, 4, 1.0, 0.05
    v, lip = _config(11, n_samples, m)
    lip = lip + 0.5
    good = gaussian_budget_bound(v, lip, g, n, delta)
    variants = {
        "sqrt(2) dropped": _scaled(good, 1.0 / math.sqrt(2.0)),
        "factor 2 dropped": _value_scaled(good, 0.5),
        "n = columns": gaussian_budget_bound(v, lip, g, m, delta),
    }
    ev, bd = failure_counts(good, v, lip, g, n, kind, seed=99)
    assert accepted(ev, DRAWS, delta) and accepted(bd, DRAWS, delta)
    for name, bad in variants.items():
        ev_bad, bd_bad = failure_counts(bad, v, lip, g, n, kind, seed=99)
        assert not (accepted(ev_bad, DRAWS, delta) and accepted(bd_bad, DRAWS, delta)), name


def test_uniform_rows_need_their_own_tail_constant():
    """Uniform entries satisfy the tail with c = 1/6 (Hoeffding); the bound with c = 1/6 passes and is
    larger than the Gaussian c = 1/2 one by sqrt(3)."""
    v, lip = _config(5, 3, 20)
    a = subgaussian_budget_bound(v, lip, 1.0, 1.0 / 6.0, 12, 0.05)
    b = subgaussian_budget_bound(v, lip, 1.0, 0.5, 12, 0.05)
    assert a.value == pytest.approx(math.sqrt(3.0) * b.value, rel=1e-12)
    ev, bd = failure_counts(a, v, lip, 1.0, 12, "uniform", seed=3)
    assert accepted(ev, DRAWS, 0.05) and accepted(bd, DRAWS, 0.05)


# -- multi-layer (OR1 Corollaries 1.5, 1.6) --------------------------------------------------------------------
def _sequential_failures(kind: str, deltas: tuple[float, float], shrink: float = 1.0, draws: int = 300) -> int:
    """Two-step sequential pruning of x -> W2 relu(W1 x) with W_j = S_j + R_j: step 1 removes R2 on the data
    path v_{1,s} = relu(W1 x_s) (which depends on the random R1), step 2 then removes R1 (v_{2,s} = x_s).
    Each R_j is drawn fresh, independent of its own data path; L_{j,s} are fixed.  Returns the number of
    draws in which some per-step bound fails (the joint event of OR1 Cor. 1.5 / 1.6)."""
    rng = np.random.default_rng(1234)
    d, width, out, n_samples, g = 6, 24, 12, 5, 0.8
    x = rng.standard_normal((n_samples, d))
    s1 = rng.standard_normal((width, d)) / math.sqrt(d)
    rng.standard_normal((out, width))  # S_2 enters neither budget: drawn only to keep the seeded stream as calibrated
    lip1, lip2 = rng.uniform(0.5, 1.5, n_samples), rng.uniform(0.5, 1.5, n_samples)
    fails = 0
    for _ in range(draws):
        r1 = _draw(kind, rng, (width, d), g, width)
        v1 = np.maximum(x @ (s1 + r1).T, 0.0)            # data path of step 1 (layer 2's input)
        r2 = _draw(kind, rng, (out, width), g, out)        # drawn after, independent of v1
        if kind == "gaussian":
            res = multilayer_gaussian_budget_bounds([(v1, lip1, g, out), GaussianStep(x, lip2, g, width)], deltas)
        else:
            res = multilayer_subgaussian_budget_bounds(
                [(v1, lip1, g, 0.5, out), SubGaussianStep(x, lip2, g, 0.5, width)], deltas)
        ok1 = realised_budget(r2, v1, lip1) <= shrink * res.steps[0].value
        ok2 = realised_budget(r1, x, lip2) <= shrink * res.steps[1].value
        assert res.total.value == pytest.approx(res.steps[0].value + res.steps[1].value)
        fails += not (ok1 and ok2)
    return fails


@pytest.mark.parametrize("kind", ["gaussian", "rademacher"])
def test_multilayer_joint_failure_frequency(kind):
    deltas = (0.02, 0.03)
    assert accepted(_sequential_failures(kind, deltas), 300, sum(deltas))
    # known-bad: the per-step bounds with the factor 2 of 2/|T| dropped fail jointly far too often
    assert not accepted(_sequential_failures(kind, deltas, shrink=0.5), 300, sum(deltas))


def test_multilayer_result_fields():
    v, lip = _config(1, 3, 5)
    res = multilayer_gaussian_budget_bounds([(v, lip, 1.0, 4), (v, lip, 0.5, 6)], [0.01, 0.04], delta=0.05)
    assert isinstance(res.total, Bound) and res.total.label == "estimate"
    assert res.total.confidence == pytest.approx(0.95)
    assert res.steps[0].value == gaussian_budget_bound(v, lip, 1.0, 4, 0.01).value
    assert res.steps[1].value == gaussian_budget_bound(v, lip, 0.5, 6, 0.04).value


# -- bad input --------------------------------------------------------------------------------------------------
def test_bad_input_raises():
    v, lip = _config(0, 3, 4)
    with pytest.raises(InvalidParameterError, match="L"):
        gaussian_budget_bound(v, [-1.0, 1.0, 1.0], 1.0, 4, 0.05)
    with pytest.raises(InvalidParameterError, match="L"):
        gaussian_budget_bound(v, [1.0, 1.0], 1.0, 4, 0.05)
    with pytest.raises(InvalidParameterError, match="L"):
        gaussian_budget_bound(v, [1.0, np.nan, 1.0], 1.0, 4, 0.05)
    for delta in (0.0, 1.0, -0.1, float("nan")):
        with pytest.raises(InvalidParameterError, match="delta"):
            gaussian_budget_bound(v, lip, 1.0, 4, delta)
    with pytest.raises(InvalidMatrixError, match="V"):
        gaussian_budget_bound(v[0], lip, 1.0, 4, 0.05)
    with pytest.raises(InvalidMatrixError, match="V"):
        gaussian_budget_bound(np.full((3, 4), np.nan), lip, 1.0, 4, 0.05)
    with pytest.raises(InvalidParameterError, match="g"):
        gaussian_budget_bound(v, lip, 0.0, 4, 0.05)
    with pytest.raises(InvalidParameterError, match="n_rows"):
        gaussian_budget_bound(v, lip, 1.0, 2.5, 0.05)
    with pytest.raises(InvalidParameterError, match="n_cols"):
        mp_edge_budget_bound(v, lip, 3.0, 4, 5, 0.05)
    with pytest.raises(InvalidParameterError, match="c"):
        subgaussian_budget_bound(v, lip, 1.0, -0.5, 4, 0.05)
    with pytest.raises(InvalidMatrixError, match="R"):
        realised_budget(np.ones((2, 3)), v, lip)
    with pytest.raises(InvalidParameterError, match="sum of deltas"):
        multilayer_gaussian_budget_bounds([(v, lip, 1.0, 4), (v, lip, 1.0, 4)], [0.03, 0.03], delta=0.05)
    with pytest.raises(InvalidParameterError, match="one entry per step"):
        multilayer_gaussian_budget_bounds([(v, lip, 1.0, 4)], [0.01, 0.01])
    with pytest.raises(InvalidParameterError, match="steps"):
        multilayer_subgaussian_budget_bounds([], [])
