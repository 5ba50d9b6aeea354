"""Tests of the Tracy–Widom (beta = 1) law and the Wishart edge scaling (rmt/tracy_widom.py).

Reference values: the quantile table of the spec (ALGORITHMS.md 1.4) and the TW1 mean -1.2065336 and
variance 1.6077810 (Tracy & Widom 1996; Bornemann 2010, Table 7).  The CDF is also compared with an
independent solution of Painlevé II (Hastings–McLeod), F_1(s) = exp(-(1/2) int_s^inf q - (1/2) int_s^inf (x - s) q^2).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import integrate, special

from rmt.errors import InvalidParameterError
from rmt.esd import ks_distance
from rmt.tracy_widom import tw1_cdf, tw1_ppf, wishart_edge_scaling

SPEC_QUANTILES = {0.2: -2.2833, 0.5: -1.2686, 0.8: -0.1653, 0.9: 0.4501, 0.95: 0.9793}


@pytest.mark.parametrize("q, t", sorted(SPEC_QUANTILES.items()))
def test_quantiles_match_spec_table(q, t):
    assert abs(tw1_ppf(q) - t) <= 5e-4


def _painleve_tw1(s_values: np.ndarray, s0: float = 8.0) -> np.ndarray:
    """F_1 from the Hastings–McLeod solution q'' = s q + 2 q^3, q ~ Ai at +inf, integrated from s0 downwards
    together with U = int_s^inf q^2, V = int_s^inf (x - s) q^2 and Q = int_s^inf q."""
    ai, aip, _, _ = special.airy(s0)
    tails = [integrate.quad(f, s0, np.inf, epsabs=1e-300, epsrel=1e-13)[0] for f in (
        lambda x: special.airy(x)[0] ** 2,
        lambda x: (x - s0) * special.airy(x)[0] ** 2,
        lambda x: special.airy(x)[0],
    )]

    def rhs(s, y):
        q, p, u, v, qq = y
        return [p, s * q + 2.0 * q**3, -q * q, -u, -q]

    sol = integrate.solve_ivp(rhs, [s0, float(np.min(s_values))], [ai, aip, *tails], method="DOP853",
                              rtol=1e-13, atol=1e-16, dense_output=True)
    _, _, _, v, qq = sol.sol(s_values)
    return np.exp(-0.5 * v - 0.5 * qq)


def test_cdf_matches_painleve_ii():
    s = np.array([-6.0, -4.0, -3.0, -2.2833, -2.28316, -1.2686, -0.1653, 0.4501, 0.9793, 2.0, 4.0])
    ref = _painleve_tw1(s)
    assert np.max(np.abs(tw1_cdf(s) - ref)) <= 1e-8
    # the spec's q = 0.2 quantile -2.2833 is a rounding of -2.28316: F_1(-2.2833) = 0.19997
    assert abs(_painleve_tw1(np.array([-2.2833]))[0] - 0.2) > 1e-5
    assert abs(tw1_ppf(0.2) - (-2.28316)) <= 1e-5


def test_mean_and_variance_from_cdf():
    """Integrating our CDF: E X = int_0^inf (1 - F) - int_-inf^0 F, E X^2 = int 2x (1 - F) + int 2|x| F."""
    def gl(a, b, n):
        x, w = np.polynomial.legendre.leggauss(n)
        return (x + 1.0) * (b - a) / 2.0 + a, w * (b - a) / 2.0

    xn, wn = gl(-14.0, 0.0, 90)
    xp, wp = gl(0.0, 12.0, 80)
    fn, fp = tw1_cdf(xn), tw1_cdf(xp)
    mean = np.sum(wp * (1.0 - fp)) - np.sum(wn * fn)
    second = np.sum(wp * 2.0 * xp * (1.0 - fp)) + np.sum(wn * (-2.0 * xn) * fn)
    assert mean == pytest.approx(-1.2065336, abs=2e-7)
    assert second - mean**2 == pytest.approx(1.6077810, abs=2e-7)


def test_cdf_monotone_and_limits():
    s = np.linspace(-9.0, 6.0, 121)
    f = tw1_cdf(s)
    assert np.all(np.diff(f) > 0.0)
    assert f[0] < 1e-12 and 0.0 < 1.0 - f[-1] < 1e-5
    assert tw1_cdf(-20.0) == 0.0 and tw1_cdf(20.0) == 1.0


@given(q=st.floats(min_value=1e-6, max_value=1.0 - 1e-6))
def test_cdf_of_ppf(q):
    assert abs(tw1_cdf(tw1_ppf(q)) - q) <= 1e-10


def test_monte_carlo_largest_eigenvalue_is_tw1():
    """Scaled top eigenvalue of W^T W (W: 100 x 50, iid N(0, 2)) over 400 fixed-seed draws is close to TW1:
    KS <= 0.1 (the 1e-3 critical value of the one-sample KS test at n = 400 is 0.097, plus a small
    finite-size bias).  Known-bad: the scale without the cube root exponent fails."""
    n, m, s2, reps = 100, 50, 2.0, 400
    rng = np.random.default_rng(2024)
    w = rng.standard_normal((reps, n, m)) * np.sqrt(s2)
    top = np.linalg.svd(w, compute_uv=False)[:, 0] ** 2
    edge = wishart_edge_scaling(n, m, s2)
    assert ks_distance((top - edge.center) / edge.scale, tw1_cdf) <= 0.1
    a, b = np.sqrt(n - 0.5), np.sqrt(m - 0.5)
    bad_scale = s2 * (a + b) * (1.0 / a + 1.0 / b) ** 0.5
    assert ks_distance((top - edge.center) / bad_scale, tw1_cdf) > 0.1
    # singular-value form (delta method): s_1 ~ center_singular + scale_singular * TW1
    s1 = np.sqrt(top)
    assert ks_distance((s1 - edge.center_singular) / edge.scale_singular, tw1_cdf) <= 0.1


def test_bad_input_raises():
    for q in (0.0, 1.0, -0.5, float("nan")):
        with pytest.raises(InvalidParameterError, match="q"):
            tw1_ppf(q)
    with pytest.raises(InvalidParameterError, match="shape"):
        wishart_edge_scaling(0, 5)
    with pytest.raises(InvalidParameterError, match="s2"):
        wishart_edge_scaling(5, 5, -1.0)
