"""The proven elementary functions (certs/intervals/elementary.py) against mpmath at 60 digits.

Each function must stay within its stated bound ``rel * |computed| + FN_ABS`` of the exact value on
hypothesis-drawn and edge points; known-bad variants (a shorter exp polynomial, a coarser Mills table
reading) break the bound, so the checks can fail.
"""

import math

import mpmath
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from certs.intervals import elementary as el
from certs.intervals import smooth
from certs.intervals.interval import EPS, FN_ABS, Interval

_MAX = mpmath.mpf(torch.finfo(torch.float64).max)


@pytest.fixture(autouse=True)
def _sixty_digits():
    """Exact references at 60 digits (set per test: another module may change ``mpmath.mp.dps``)."""
    with mpmath.workdps(60):
        yield


def _excess(computed: torch.Tensor, exact: list, rel: float) -> float:
    """Largest ``|computed - exact| / (rel |computed| + FN_ABS)`` (``> 1``: the bound fails); overflow to
    ``inf`` is accepted only where the exact value exceeds the largest float."""
    worst = 0.0
    for c, e in zip(computed.tolist(), exact):
        if math.isinf(c):
            assert e > _MAX
            continue
        worst = max(worst, float(abs(mpmath.mpf(c) - e) / (rel * abs(mpmath.mpf(c)) + FN_ABS)))
    return worst


_EDGES = [0.0, -0.0, 1e-300, -1e-300, 1e-17, math.log(2) / 2, -math.log(2) / 2, 709.78, 709.7, -708.4, -745.0, -745.2,
          -746.5, 711.0, 40.0, -40.0, 39.99, -0.0625, 0.0625]
_REALS = st.floats(-750.0, 750.0, allow_nan=False)
_MODERATE = st.floats(-45.0, 45.0, allow_nan=False) | st.floats(-4.0, 4.0, allow_nan=False)


def _exp_exact(xs: list[float]) -> list:
    return [mpmath.exp(mpmath.mpf(x)) for x in xs]


@given(st.lists(_REALS, min_size=1, max_size=60))
def test_exp_meets_its_proven_bound(xs):
    xs = xs + _EDGES
    assert _excess(el.exp_enclosed(torch.tensor(xs, dtype=torch.float64)), _exp_exact(xs), el.EXP_REL) <= 1.0


@given(st.lists(_MODERATE, min_size=1, max_size=60))
def test_normal_cdf_and_density_meet_their_proven_bounds(xs):
    xs = xs + _EDGES
    a = torch.tensor(xs, dtype=torch.float64)
    assert _excess(el.normal_cdf(a), [mpmath.ncdf(mpmath.mpf(x)) for x in xs], el.CDF_REL) <= 1.0
    assert _excess(el.gaussian_density(a), [mpmath.npdf(mpmath.mpf(x)) for x in xs], el.PDF_REL) <= 1.0


def test_constants_are_a_few_dozen_ulp_not_the_library_assumption():
    assert el.EXP_REL < 2.1 * EPS and el.PDF_REL < 4.3 * EPS and el.CDF_REL < 6.8 * EPS
    table, rho, weight = el._mills_table()
    assert table.shape == (el.MILLS_DEGREE + 1, 321) and 1.0 < rho <= el._RHO and 1.0 < weight <= el._WEIGHT
    x = torch.linspace(-5, 5, 101, dtype=torch.float64)
    values, errors = smooth.EXP.evaluate(x, 2)
    assert all(torch.equal(e, el.EXP_REL * v.abs() + FN_ABS) for v, e in zip(values, errors))


def test_scalar_inputs_leave_the_table_intact():
    """A 0-dim argument once indexed a view of the cached table, and the in-place Horner steps overwrote it."""
    before = el._mills_table()[0].clone()
    values = [float(el.normal_cdf(torch.tensor(x, dtype=torch.float64))) for x in (-0.8125, -0.8125, 2.3)]
    assert torch.equal(el._mills_table()[0], before) and values[0] == values[1]


def test_nan_propagates_and_bounds_stay_ordered():
    x = torch.tensor([float("nan"), float("inf"), -float("inf"), 800.0, 1.0], dtype=torch.float64)
    y = el.exp_enclosed(x)
    assert math.isnan(y[0]) and y[1] == float("inf") and y[2] == 0.0 and y[3] == float("inf")
    assert math.isnan(el.normal_cdf(x)[0]) and el.normal_cdf(x)[1] == 1.0 and el.normal_cdf(x)[2] == 0.0
    lo, hi = el.exp_bounds(x[1:])
    assert torch.all(lo <= hi) and torch.isfinite(lo).all()  # an overflowed value keeps a finite lower bound
    box = Interval(torch.tensor([709.9, -1.0], dtype=torch.float64),
                   torch.tensor([709.95, 1.0], dtype=torch.float64)).exp()
    assert math.isfinite(float(box.lo[0])) and float(box.lo[1]) <= math.exp(-1) <= math.exp(1) <= float(box.hi[1])


def test_known_bad_short_exp_polynomial_is_caught(monkeypatch):
    """Degree 7 instead of 13 leaves a truncation error of ~1e-8 relative near ``|r| = ln 2 / 2``."""
    monkeypatch.setattr(el, "_EXP_COEFFS", el._EXP_COEFFS[:8])
    xs = [math.log(2) / 2 * s for s in (0.9, -0.9, 1.0, -1.0)] + [10.3, -20.1]
    assert _excess(el.exp_enclosed(torch.tensor(xs, dtype=torch.float64)), _exp_exact(xs), el.EXP_REL) > 1e3


def test_known_bad_mills_degree_is_caught(monkeypatch):
    """Reading only 6 of the 13 Taylor coefficients of the Mills ratio breaks the cdf bound off the grid."""
    table, rho, weight = el._mills_table()
    monkeypatch.setattr(el, "MILLS_DEGREE", 5)
    monkeypatch.setattr(el, "_mills_table", lambda: (table[:6], rho, weight))
    xs = [-1.06, -3.03, 2.06, -12.31]
    computed = el.normal_cdf(torch.tensor(xs, dtype=torch.float64))
    assert _excess(computed, [mpmath.ncdf(mpmath.mpf(x)) for x in xs], el.CDF_REL) > 10.0


def _gelu_derivative_exact(x, k: int):
    """``g^(k)(x) = x Phi^(k) + k Phi^(k-1)``, ``Phi^(j) = (-1)^(j-1) He_(j-1)(x) phi(x)``, in mpmath."""
    he = [mpmath.mpf(1), x]
    for i in range(1, k + 1):
        he.append(x * he[i] - i * he[i - 1])

    def cdf(j):
        return mpmath.ncdf(x) if j == 0 else (-1) ** (j - 1) * he[j - 1] * mpmath.npdf(x)

    return x * cdf(0) if k == 0 else x * cdf(k) + k * cdf(k - 1)


def test_gelu_derivatives_meet_their_error_bounds():
    """``|g^(k) computed - exact| <= errors[k]`` per entry, near the roots of the Hermite polynomials too, and
    the bound is tight where Phi is small (no ``|a|``-sized term at ``k = 0``)."""
    xs = [-30.0, -7.5, -2.0, -1.7320508075688772, -1.0, -0.3, 0.0, 0.4, 1.7, 2.3344142183389773, 3.2, 9.0]
    a = torch.tensor(xs, dtype=torch.float64)
    derivs, errors = smooth.GELU.evaluate(a, smooth.GELU_ORDERS)
    worst = 0.0
    for k in range(smooth.GELU_ORDERS + 1):
        for i, xi in enumerate(xs):
            err = abs(mpmath.mpf(float(derivs[k][i])) - _gelu_derivative_exact(mpmath.mpf(xi), k))
            worst = max(worst, float(err / float(errors[k][i])))
    assert worst <= 1.0
    assert float(errors[0][2]) <= 16 * EPS * abs(float(derivs[0][2]))  # a = -2: relative to |g|, not to |a|
    # known-bad: values 3 error bounds off (e.g. a cdf with a wrong error constant) are flagged
    off = [d + 3 * e for d, e in zip(derivs, errors)]
    assert max(float(abs(mpmath.mpf(float(off[k][i])) - _gelu_derivative_exact(mpmath.mpf(x), k)) / float(errors[k][i]))
               for k in range(3) for i, x in enumerate(xs)) > 1.0
    with pytest.raises(ValueError, match="order"):
        smooth.GELU.derivatives(a, smooth.GELU_ORDERS + 1)
