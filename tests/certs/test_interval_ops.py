"""Every interval / dual / Taylor rule of certs.intervals encloses float64 point evaluations (THEORY.md 3.6).

Point evaluations (values by torch, derivatives by forward-mode autograd) at random points of the input
interval must lie inside the enclosure (tolerance of THEORY.md 0.3).  Known-bad rules (GELU derivative
at the midpoint only; a Taylor form without its Lagrange remainder) are caught by the same checks.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
import torch
import torch.autograd.forward_ad as fwad
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from certs.intervals import smooth
from certs.intervals.dual import (
    GELU_ARGMIN_BRACKET,
    GELU_DERIVATIVE_MAX_UPPER,
    GELU_DERIVATIVE_MIN_LOWER,
    GELU_MIN_LOWER,
    Dual,
    gelu_derivative_enclosure,
    gelu_exact_derivative,
    gelu_exact_value,
    gelu_value_enclosure,
)
from certs.intervals.interval import Interval
from certs.intervals import taylor
from certs.intervals.taylor import TaylorDual, TaylorForm
from certs.intervals.normed import NormedDual, layer_norm_normed
from certs.intervals.transformer import attention, layer_norm, softmax, softmax_enclosure

TOL = 1e-9


def _t(x) -> torch.Tensor:
    return torch.as_tensor(np.asarray(x, dtype=np.float64))


@st.composite
def boxes(draw, size=6, low=-6.0, high=6.0, max_width=3.0):
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    lo = rng.uniform(low, high, size)
    width = rng.uniform(0, max_width, size) * draw(st.sampled_from([0.0, 1e-6, 0.1, 1.0]))
    points = lo + width * rng.random((16, size))
    return Interval(_t(lo), _t(lo + width)), _t(points)


UNARY = {
    "exp": (Interval.exp, torch.exp),
    "tanh": (Interval.tanh, torch.tanh),
    "erf": (Interval.erf, torch.special.erf),
    "square": (Interval.square, lambda x: x * x),
    "relu": (Interval.relu, torch.relu),
    "abs": (Interval.abs, torch.abs),
    "neg": (Interval.__neg__, lambda x: -x),
    "gelu": (gelu_value_enclosure, gelu_exact_value),
    "gelu'": (gelu_derivative_enclosure, gelu_exact_derivative),
}


@given(boxes(), st.sampled_from(sorted(UNARY)))
def test_unary_interval_rules_enclose_point_values(box, name):
    x, points = box
    rule, point_fn = UNARY[name]
    assert rule(x).contains(point_fn(points), TOL).all()


@given(boxes(low=0.01, high=5.0))
def test_positive_domain_rules_enclose_point_values(box):
    x, points = box
    assert x.reciprocal().contains(1.0 / points, TOL).all()
    assert x.sqrt().contains(torch.sqrt(points), TOL).all()
    assert x.divide(3.0).contains(points / 3.0, TOL).all()


@given(boxes(), boxes())
def test_binary_rules_and_reductions_enclose_point_values(a, b):
    (x, px), (y, py) = a, b
    assert (x + y).contains(px + py, TOL).all()
    assert (x - y).contains(px - py, TOL).all()
    assert (x * y).contains(px * py, TOL).all()
    assert x.maximum(y).contains(torch.maximum(px, py), TOL).all()
    assert x.sum(-1).contains(px.sum(-1), TOL).all()
    assert x.mean(-1).contains(px.mean(-1), TOL).all()
    assert x.minus_mean(-1).contains(px - px.mean(-1, keepdim=True), TOL).all()
    assert softmax_enclosure(x).contains(torch.softmax(px, -1), TOL).all()
    w = torch.linspace(-1.0, 1.0, 18, dtype=torch.float64).reshape(3, 6)
    assert x.linear(w, _t([0.5, -1.0, 2.0])).contains(px @ w.T + _t([0.5, -1.0, 2.0]), TOL).all()
    xm = x.rearrange(lambda t: t.reshape(2, 3))
    ym = y.rearrange(lambda t: t.reshape(3, 2))
    assert xm.matmul(ym).contains(px.reshape(-1, 2, 3) @ py.reshape(-1, 3, 2), TOL).all()


def test_gelu_constants_bracket_the_critical_points():
    lo, hi = GELU_ARGMIN_BRACKET
    assert gelu_exact_derivative(_t(lo)) < 0 < gelu_exact_derivative(_t(hi))  # g' changes sign: argmin inside
    grid = torch.linspace(-4, 4, 400_001, dtype=torch.float64)
    assert gelu_exact_value(grid).min() >= GELU_MIN_LOWER
    d = gelu_exact_derivative(grid)
    assert GELU_DERIVATIVE_MIN_LOWER <= d.min() and d.max() <= GELU_DERIVATIVE_MAX_UPPER
    assert d.max() >= GELU_DERIVATIVE_MAX_UPPER - 1e-9  # the constants are attained (not a loose bound)


@pytest.mark.parametrize("fn", [smooth.EXP, smooth.RECIPROCAL, smooth.RSQRT, smooth.TANH, smooth.GELU],
                         ids=lambda f: f.name)
def test_smooth_derivatives_match_autograd_and_bounds_dominate(fn):
    positive = fn.name in ("reciprocal", "rsqrt")
    x = torch.linspace(0.2, 3.0, 57, dtype=torch.float64) * (1 if positive else 2) - (0 if positive else 3)
    base = {"exp": torch.exp, "reciprocal": lambda t: 1 / t, "rsqrt": torch.rsqrt, "tanh": torch.tanh,
            "gelu": lambda t: F.gelu(t)}[fn.name]
    derivs = fn.derivatives(x, 4)
    nested = [base]
    for _ in range(4):
        nested.append(torch.func.grad(nested[-1]))
    box = Interval(x.min(), x.max())
    for k in range(5):
        expected = torch.func.vmap(nested[k])(x)
        assert torch.allclose(derivs[k], expected, rtol=1e-9, atol=1e-12), (fn.name, k)
        assert float(fn.bound(box, k)) >= float(expected.abs().max()) * (1 - 1e-12)


def _worst_error_ratio(derivs: list[torch.Tensor], errors: list[torch.Tensor], x: np.ndarray, p: float) -> float:
    """Largest ``|computed - exact| / errors`` of ``f^(j)(x)`` for ``f = x^p``, exact values by mpmath at 60 digits."""
    import mpmath

    worst = 0.0
    with mpmath.workdps(60):
        for j, (computed, error) in enumerate(zip(derivs, errors)):
            falling = mpmath.mpf(1)
            for i in range(j):
                falling *= p - i
            for xi, ci, ei in zip(x, computed.numpy(), error.numpy()):
                exact = falling * mpmath.power(mpmath.mpf(float(xi)), p - j)
                worst = max(worst, float(abs(mpmath.mpf(float(ci)) - exact) / mpmath.mpf(float(ei))))
    return worst


@pytest.mark.parametrize("fn, p", [(smooth.RSQRT, -0.5), (smooth.RECIPROCAL, -1.0)], ids=["rsqrt", "reciprocal"])
def test_power_derivatives_meet_their_proven_error_bound(fn, p):
    """The per-order error ``(j + 4) u |f^(j)|`` (``<= POWER_REL = 16 eps`` up to order 28) is a proof about IEEE
    sqrt/division; check it against mpmath on wide-ranging points, up to order 8 (order-6 Taylor duals), and
    show the check can fail."""
    x = np.exp(np.random.default_rng(0).uniform(np.log(1e-6), np.log(1e6), 300))
    derivs, errors = fn.evaluate(torch.as_tensor(x), 8)
    assert smooth.POWER_REL == 16 * 2.0 ** -52
    assert all(torch.all(e <= smooth.POWER_REL * d.abs() + 1e-300) for d, e in zip(derivs, errors))
    assert _worst_error_ratio(derivs, errors, x, p) <= 1.0
    off = [d * (1 + (j + 6) * 2.0 ** -53) for j, d in enumerate(derivs)]  # known-bad: 2 more roundings than proven
    assert _worst_error_ratio(off, errors, x, p) > 1.0
    with pytest.raises(ValueError, match="order"):
        fn.derivatives(torch.as_tensor(x), smooth.POWER_ORDERS + 1)


# ------------------------------------------------------------------------------------ duals along a path

def _path_start(kind: str, x0, d, lo: float, hi: float):
    if kind == "interval":
        step = Interval.point(d)
        theta = Interval(torch.tensor(lo, dtype=torch.float64), torch.tensor(hi, dtype=torch.float64))
        return Dual(step * theta + x0, step)
    tc, h = 0.5 * (lo + hi), 0.5 * (hi - lo)
    order = int(kind[-1])
    zero = torch.zeros_like(x0)
    theta = TaylorForm((torch.tensor(tc, dtype=torch.float64), torch.tensor(h, dtype=torch.float64))
                       + (torch.tensor(0.0, dtype=torch.float64),) * (order - 1),
                       torch.tensor(0.0, dtype=torch.float64))
    step = TaylorForm((d,) + (zero,) * order, zero)
    return TaylorDual(TaylorForm((x0,) + (zero,) * order, zero) + step * theta, step)


def _attn(x):
    return attention(x, 2, 2, 0.7)


def _attn_torch(x):
    q, k, v = x.reshape(*x.shape[:-1], 3, 2, 2).movedim(-3, 0).unbind(0)
    q, k, v = (t.movedim(-2, -3) for t in (q, k, v))
    out = torch.softmax((q * 0.7) @ k.transpose(-2, -1), -1) @ v
    return out.movedim(-3, -2).reshape(*x.shape[:-1], 4)


W_LN, B_LN = _t([1.5, -0.5, 2.0, 1.0, 0.3, -1.2]), _t([0.1, 0.0, -0.3, 0.2, 0.0, 1.0])
W_LIN = _t(np.random.default_rng(7).normal(0, 0.6, (5, 6)))
B_LIN = _t([0.2, -0.1, 0.0, 0.4, -0.3])


def _ln_linear(x):
    """LayerNorm then Linear; Taylor duals keep the rank-one remainders through the linear map (normed.py)."""
    if isinstance(x, TaylorDual):
        return layer_norm_normed(x, W_LN, B_LN, 1e-6).linear(W_LIN, B_LIN)
    return layer_norm(x, W_LN, B_LN, 1e-6).linear(W_LIN, B_LIN)


def _ln_boxed(x):
    if isinstance(x, TaylorDual):
        return layer_norm_normed(x, W_LN, B_LN, 1e-6).boxed()
    return layer_norm(x, W_LN, B_LN, 1e-6)


def _ln_linear_torch(t):
    return F.linear(F.layer_norm(t, (6,), W_LN, B_LN, 1e-6), W_LIN, B_LIN)
PATH_OPS = {
    "layer_norm": (lambda x: layer_norm(x, W_LN, B_LN, 1e-6), lambda t: F.layer_norm(t, (6,), W_LN, B_LN, 1e-6)),
    "softmax": (softmax, lambda t: torch.softmax(t, -1)),
    "gelu": (lambda x: x.gelu(), F.gelu),
    "gelu_tanh": (lambda x: x.gelu_tanh(), lambda t: F.gelu(t, approximate="tanh")),
    "tanh": (lambda x: x.tanh(), torch.tanh),
    "exp": (lambda x: x.exp(), torch.exp),
    "relu": (lambda x: x.relu(), torch.relu),
    "abs": (lambda x: x.abs(), torch.abs),
    "product": (lambda x: x * x.rearrange(lambda t: t.flip(-1)), lambda t: t * t.flip(-1)),
    "attention": (_attn, _attn_torch),
    "layer_norm_linear": (_ln_linear, _ln_linear_torch),
    "gelu_layer_norm_linear": (lambda x: _ln_linear(x.gelu()), lambda t: _ln_linear_torch(F.gelu(t))),
    "exp_layer_norm_boxed": (lambda x: _ln_boxed(x.exp()),
                             lambda t: F.layer_norm(torch.exp(t), (6,), W_LN, B_LN, 1e-6)),
}


def _jvp(fn, x0, d, theta: float):
    with fwad.dual_level():
        out = fn(fwad.make_dual(x0 + theta * d, d))
        unpacked = fwad.unpack_dual(out)
        return unpacked.primal.detach(), unpacked.tangent.detach()


@given(st.integers(0, 2**31 - 1), st.sampled_from(sorted(PATH_OPS)),
       st.sampled_from(["interval", "taylor1", "taylor2", "taylor3", "taylor4", "taylor6"]),
       st.sampled_from([0.01, 0.3, 1.0]))
def test_dual_rules_enclose_values_and_directional_derivatives(seed, op, kind, scale):
    rng = np.random.default_rng(seed)
    shape = (3, 12) if op == "attention" else (3, 6)
    x0, d = _t(rng.normal(0, 1.5, shape)), _t(rng.normal(0, scale, shape))
    lo, hi = sorted(rng.random(2))
    rule, point_fn = PATH_OPS[op]
    value, tangent = rule(_path_start(kind, x0, d, lo, hi)).enclosures()
    for theta in np.r_[lo, hi, lo + (hi - lo) * rng.random(6)]:
        primal, derivative = _jvp(point_fn, x0, d, float(theta))
        assert value.contains(primal, TOL).all(), (op, kind, theta)
        assert tangent.contains(derivative, TOL).all(), (op, kind, theta)


def _gelu_midpoint_rule(x: Interval) -> Interval:
    """Known-bad: the GELU derivative evaluated at the midpoint of the value interval only."""
    mid = gelu_exact_derivative(0.5 * (x.lo + x.hi))
    return Interval(mid, mid)


def _first_gelu_violation(rule) -> bool:
    for seed in range(20):
        rng = np.random.default_rng(seed)
        x0, d = _t(rng.normal(0, 1.5, (3, 6))), _t(rng.normal(0, 1.0, (3, 6)))
        _, tangent = _path_start("interval", x0, d, 0.0, 1.0).gelu(derivative_rule=rule).enclosures()
        for theta in np.linspace(0, 1, 11):
            if not tangent.contains(_jvp(F.gelu, x0, d, float(theta))[1], TOL).all():
                return True
    return False


def test_known_bad_gelu_midpoint_derivative_is_caught_and_the_real_rule_is_not():
    assert _first_gelu_violation(_gelu_midpoint_rule)
    assert not _first_gelu_violation(None)


def test_known_bad_taylor_form_without_lagrange_remainder_is_caught():
    bad = smooth.SmoothFunction("gelu-no-remainder", smooth.GELU.evaluate,
                                lambda box, ks: [torch.zeros_like(box.lo) for _ in ks])
    caught = False
    for seed in range(20):
        rng = np.random.default_rng(seed)
        x0, d = _t(rng.normal(0, 1.5, (3, 6))), _t(rng.normal(0, 1.0, (3, 6)))
        start = _path_start("taylor1", x0, d, 0.0, 1.0)
        value = start.value.apply(bad).box()
        for theta in np.linspace(0, 1, 11):
            caught |= not bool(value.contains(F.gelu(x0 + float(theta) * d), TOL).all())
        assert start.value.apply(smooth.GELU).box().contains(F.gelu(x0 + 0.5 * d), TOL).all()
    assert caught


def _compose_violations() -> int:
    """Points of ``exp(gelu(x))`` on Taylor duals of orders 2 and 3 outside the enclosure (fixed seeds)."""
    hits = 0
    for kind in ("taylor2", "taylor3"):
        for seed in range(15):
            rng = np.random.default_rng(seed)
            x0, d = _t(rng.normal(0, 1.5, (3, 6))), _t(rng.normal(0, 1.0, (3, 6)))
            value, tangent = _path_start(kind, x0, d, 0.0, 1.0).gelu().exp().enclosures()
            for theta in np.linspace(0, 1, 11):
                primal, derivative = _jvp(lambda t: torch.exp(F.gelu(t)), x0, d, float(theta))
                hits += not bool(value.contains(primal, TOL).all() and tangent.contains(derivative, TOL).all())
    return hits


def test_known_bad_compose_without_the_remainders_of_the_powers_is_caught(monkeypatch):
    """:meth:`TaylorForm.compose` charges ``|f^(k)(c_0) / k!| r_k`` for the remainder ``r_k`` of ``(x - c_0)^k``: powers
    whose remainders are dropped miss exact values of a composition."""
    assert _compose_violations() == 0
    powers = TaylorForm.delta_powers
    bare = lambda self: [TaylorForm(p.coef, torch.zeros_like(p.r)) for p in powers(self)]  # noqa: E731
    monkeypatch.setattr(TaylorForm, "delta_powers", bare)
    assert _compose_violations() > 0


@given(st.one_of(st.floats(1e-30, 1e30), st.floats(1e-300, 1e-30)), st.integers(1, 10))
def test_spread_powers_are_upper_bounds_of_the_exact_powers(x, m):
    """``spread^k`` by repeated multiplication rounded up is >= the exact ``x^k`` (exact rational check), down into
    the subnormal range and below it (a power that underflows stays positive)."""
    powers = taylor._spread_powers(torch.tensor([x], dtype=torch.float64), m)
    for k, p in enumerate(powers, start=1):
        assert Fraction(float(p)) >= Fraction(x) ** k and float(p) > 0.0


def test_known_bad_spread_powers_that_underflow_lose_the_lagrange_term():
    """Plain repeated multiplication (the rule before) underflows to 0 below the exact power: a Lagrange term
    ``bound spread^9`` with a large ``bound`` would be dropped; the rounded-up powers keep it."""
    x = torch.tensor([1e-40], dtype=torch.float64)
    plain = [x]
    for _ in range(1, 9):
        plain.append(plain[-1] * x)
    assert float(plain[-1]) == 0.0 < Fraction(1e-40) ** 9
    assert Fraction(float(taylor._spread_powers(x, 9)[-1])) >= Fraction(1e-40) ** 9


def test_known_bad_compose_without_the_powers_of_the_spread_is_caught(monkeypatch):
    """The Lagrange term and the derivative errors scale with ``spread^k`` (shared by ``apply_derivatives``): zero
    powers (the rule without them) miss exact values of a composition."""
    assert _compose_violations() == 0
    monkeypatch.setattr(taylor, "_spread_powers", lambda spread, m: [torch.zeros_like(spread)] * m)
    assert _compose_violations() > 0


@given(st.integers(0, 2**31 - 1), st.integers(1, 6), st.booleans())
def test_powers_skipping_their_zero_coefficients_equal_the_full_products(seed, order, overflow):
    """``delta_powers`` skips the exact-zero low coefficients of ``(x - c_0)^k`` (:meth:`TaylorForm._times`): the same
    coefficients and remainders as the full product rule, and an overflow still makes the remainder infinite."""
    rng = np.random.default_rng(seed)
    coef = [_t(rng.normal(0, 1.0, (2, 5))) for _ in range(order + 1)]
    if overflow:
        coef[-1][0, 0] = math.inf
    x = TaylorForm(tuple(coef), _t(rng.uniform(0, 1e-3, (2, 5))))
    delta = TaylorForm((torch.zeros_like(x.r),) + x.coef[1:], x.r)
    full = [delta]
    for _ in range(1, order):
        full.append(full[-1] * delta)
    for fast, slow in zip(x.delta_powers(), full):
        if overflow:  # the full rule has NaN (0 * inf) where the fast one has inf: both boxes unbounded there
            assert bool(torch.isinf(fast.spread()[0, 0])) and not bool(torch.isfinite(slow.spread()[0, 0]))
            continue
        assert all(torch.equal(a, b) for a, b in zip(fast.coef[1:], slow.coef[1:]))
        assert torch.equal(fast.r, slow.r)


def _normed_violation(monkeypatch=None) -> bool:
    """Does LayerNorm + Linear on Taylor duals miss the exact value or derivative somewhere (fixed seeds)?"""
    for seed in range(30):
        rng = np.random.default_rng(seed)
        x0, d = _t(rng.normal(0, 1.5, (3, 6))), _t(rng.normal(0, 1.0, (3, 6)))
        lo, hi = sorted(rng.random(2))
        value, tangent = _ln_linear(_path_start("taylor2", x0, d, lo, hi).gelu()).enclosures()
        for theta in np.linspace(lo, hi, 9):
            primal, derivative = _jvp(lambda t: _ln_linear_torch(F.gelu(t)), x0, d, float(theta))
            if not (value.contains(primal, TOL).all() and tangent.contains(derivative, TOL).all()):
                return True
    return False


def test_known_bad_layer_norm_without_its_rank_one_terms_is_caught(monkeypatch):
    """The symbol terms carry real remainder: a linear map that drops them misses exact values."""
    assert not _normed_violation()
    monkeypatch.setattr(NormedDual, "_extra", lambda self, terms, weight: 0.0)
    assert _normed_violation()


def test_nan_and_overflow_become_unbounded_not_finite():
    x = Interval(_t([0.0, 1.0]), _t([math.inf, 2.0]))
    prod = (x - x) * Interval.point(_t([0.0, 1.0]))  # inf - inf and 0 * inf
    wide = prod.unbounded_where_nan()
    assert wide.lo[0] == -math.inf and wide.hi[0] == math.inf
    rec = Interval(_t([-1.0]), _t([1.0])).reciprocal()
    assert rec.lo[0] == -math.inf and rec.hi[0] == math.inf


# ------------------------------------------------------------------------------------ degree folding

@given(st.integers(0, 2**31 - 1), st.integers(1, 8), st.data())
def test_truncated_form_remainder_covers_the_dropped_terms_exactly(seed, order, data):
    """``truncated(m)``: ``r' >= r + sum_{i > m} |c_i|`` in exact rationals (the set of the form at every ``eps`` in
    ``[-1, 1]`` lies in the truncated one), coefficients of magnitudes ``1e-20 .. 1e3``."""
    degree = data.draw(st.integers(0, order))
    rng = np.random.default_rng(seed)
    scales = 10.0 ** rng.uniform(-20, 3, (order + 1, 1, 7))
    form = TaylorForm(tuple(_t(rng.normal(0, 1.0, (1, 7)) * s) for s in scales), _t(rng.uniform(0, 1e-6, (1, 7))))
    cut = form.truncated(degree)
    assert cut.order == degree and all(torch.equal(a, b) for a, b in zip(cut.coef, form.coef))
    for j in range(7):
        needed = Fraction(float(form.r[0, j])) + sum(Fraction(abs(float(c[0, j]))) for c in form.coef[degree + 1:])
        assert Fraction(float(cut.r[0, j])) >= needed


def _folding_violations(truncate=None) -> int:
    """Points of ``layer_norm_linear(reduced(gelu(x)))`` outside the enclosure, folding at every ``tol`` from 0 to
    ``1e6`` (down to degree 1) on Taylor duals of order 6 (fixed seeds)."""
    hits = 0
    for seed in range(12):
        for tol in (0.0, 1e-3, 1.0, 1e6):
            rng = np.random.default_rng(seed)
            x0, d = _t(rng.normal(0, 1.5, (3, 6))), _t(rng.normal(0, 1.0, (3, 6)))
            lo, hi = sorted(rng.random(2))
            mid = _path_start("taylor6", x0, d, lo, hi).gelu()
            folded = mid.reduced(tol, guard=1e6) if truncate is None else truncate(mid)
            value, tangent = _ln_linear(folded).enclosures()
            for theta in np.r_[lo, hi, np.linspace(lo, hi, 9)]:
                primal, derivative = _jvp(lambda t: _ln_linear_torch(F.gelu(t)), x0, d, float(theta))
                hits += not bool(value.contains(primal, TOL).all() and tangent.contains(derivative, TOL).all())
    return hits


def test_folded_duals_enclose_values_and_directional_derivatives():
    assert _folding_violations() == 0


def test_known_bad_truncation_without_the_dropped_terms_is_caught():
    """Cutting the coefficients above degree 1 without adding them to the remainder misses exact values."""
    def drop(dual: TaylorDual) -> TaylorDual:
        return TaylorDual(*(TaylorForm(f.coef[:2], f.r) for f in (dual.value, dual.tangent)))
    assert _folding_violations(drop) > 0


@given(st.integers(0, 2**31 - 1), st.sampled_from([0.0, 1e-3, 1e-1, 1e3]))
def test_reduced_degree_keeps_the_remainder_within_the_tolerance(seed, tol):
    """``reduced(tol)`` lowers the degree only while ``sum_{i > m} |c_i| <= tol r`` in every entry (so the remainder
    grows by at most ``1 + tol`` and rounding), never below 1; ``tol = 0`` with non-zero coefficients keeps all."""
    rng = np.random.default_rng(seed)
    forms = []
    for _ in range(2):
        coef = tuple(_t(rng.normal(0, 1.0, (2, 5)) * 10.0 ** (-3 * i)) for i in range(7))
        forms.append(TaylorForm(coef, _t(rng.uniform(1e-12, 1e-6, (2, 5)))))
    dual = TaylorDual(*forms)
    folded = dual.reduced(tol, guard=1e12)
    m = folded.value.order
    assert 1 <= m <= 6 and folded.tangent.order == m
    for f, g in ((dual.value, folded.value), (dual.tangent, folded.tangent)):
        dropped = sum((c.abs() for c in f.coef[m + 1:]), torch.zeros_like(f.r))
        assert bool((dropped <= tol * f.r).all())
        assert bool((g.r <= (f.r + dropped) * (1 + 1e-12) + 1e-300).all())
    if tol == 0.0:
        assert m == 6


@given(st.integers(0, 2**31 - 1), st.integers(1, 8), st.booleans())
def test_matmul_skipping_zero_coefficients_equals_the_full_products(seed, order, overflow):
    """``matmul`` skips the coefficients that are exact zeros: the same coefficients and remainders as the full rule
    (every pair computed), bit for bit, with random zero coefficients on both sides; an overflow in a live
    coefficient still makes the remainder infinite."""
    rng = np.random.default_rng(seed)

    def form(shape):
        coef = [_t(rng.normal(0, 1.0, shape)) * float(rng.random() < 0.6) for _ in range(order + 1)]
        return TaylorForm(tuple(coef), _t(rng.uniform(0, 1e-3, shape)))

    x, y = form((2, 3, 4)), form((2, 4, 5))
    if overflow:
        x.coef[0][0, 0, 0] = math.inf
    fast = x.matmul(y)
    full_rule = taylor._nonzero
    try:
        taylor._nonzero = lambda coef: [True] * len(coef)
        full = x.matmul(y)
    finally:
        taylor._nonzero = full_rule
    if overflow:
        assert bool(torch.isinf(fast.r[0, 0]).all())
        return
    assert all(torch.equal(a, b) for a, b in zip(fast.coef, full.coef))
    assert torch.equal(fast.r, full.r)


def test_known_bad_matmul_that_skips_live_coefficients_is_caught(monkeypatch):
    """Treating a live coefficient as an exact zero (here: every one above degree 1) drops terms of the product:
    the enclosure then misses the exact values of ``attention``, which the real rule contains."""
    def violations() -> int:
        hits = 0
        for seed in range(10):
            rng = np.random.default_rng(seed)
            x0, d = _t(rng.normal(0, 1.5, (3, 12))), _t(rng.normal(0, 1.0, (3, 12)))
            value, tangent = _attn(_path_start("taylor3", x0, d, 0.0, 1.0).exp()).enclosures()
            for theta in np.linspace(0, 1, 9):
                primal, derivative = _jvp(lambda t: _attn_torch(torch.exp(t)), x0, d, float(theta))
                hits += not bool(value.contains(primal, TOL).all() and tangent.contains(derivative, TOL).all())
        return hits

    assert violations() == 0
    monkeypatch.setattr(taylor, "_nonzero", lambda coef: [True, True] + [False] * (len(coef) - 2))
    assert violations() > 0


def _radius_violations(radius_about, seed: int) -> int:
    """Intervals ``[lo, hi]`` (points, tiny and wide ones, subnormal ends) and centres ``c`` (the midpoint or shifted
    off it): the count of entries where ``[lo, hi] subset [c - r, c + r]`` fails in exact rationals."""
    rng = np.random.default_rng(seed)
    lo = rng.uniform(-10, 10, 64) * rng.choice([1.0, 1e-310, 1e300], 64)
    hi = lo + np.abs(rng.standard_normal(64)) * rng.choice([0.0, 1e-17, 1e-9, 1.0], 64) * np.abs(lo).clip(1e-300)
    box = Interval(_t(lo), _t(hi))
    centres = [box.centre_radius()[0], _t(lo + (hi - lo) * rng.random(64)), _t(hi)]
    bad = 0
    for c in centres:
        r = radius_about(box, c).numpy()
        bad += sum(not (Fraction(float(ci)) - Fraction(float(ri)) <= Fraction(float(a))
                        and Fraction(float(b)) <= Fraction(float(ci)) + Fraction(float(ri)))
                   for a, b, ci, ri in zip(lo, hi, c.numpy(), r))
    return bad


@given(st.integers(0, 2**31 - 1))
def test_radius_about_encloses_the_interval_and_is_exactly_zero_at_points(seed):
    """``radius_about`` is an exact enclosure radius (rational check) for any centre, and 0 at a point: rounding a
    zero difference up gave the subnormal ``2^-1074``, whose products run ~100x slower on the CPU (the deep model's
    interval ``Wp Wv``: 67 ms -> 2 ms)."""
    assert _radius_violations(Interval.radius_about, seed) == 0
    point = Interval.point(_t(np.random.default_rng(seed).standard_normal(16)))
    assert torch.equal(point.centre_radius()[1], torch.zeros(16, dtype=torch.float64))


def test_known_bad_radius_without_rounding_up_is_caught():
    """The float differences without the rounding up (the error of ``hi - c`` dropped) miss the interval's ends."""
    assert sum(_radius_violations(lambda box, c: torch.maximum(box.hi - c, c - box.lo), s) for s in range(8)) > 0
