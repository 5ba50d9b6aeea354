"""The OLS-in-log10 trend fit, its bootstrap and seed spread, and the paper-vs-measured verdict."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from figures.measured_figures import verdict
from figures.size_trend import TrendFit, bootstrap_trend, fit_log_trend, legend_text, seed_spread
from rmt.errors import InvalidParameterError

finite = st.floats(-50, 50, allow_nan=False, allow_infinity=False)


@st.composite
def trend_points(draw):
    n = draw(st.integers(3, 30))
    params = draw(st.lists(st.floats(1e-3, 1e4, allow_nan=False), min_size=n, max_size=n))
    y = draw(st.lists(finite, min_size=n, max_size=n))
    x = np.log10(params)
    if np.ptp(x) < 1e-3 or np.ptp(y) < 1e-6:
        params[0] = params[0] * 10.0
        y[0] += 1.0
    return params, y


@given(trend_points())
def test_fit_equals_polyfit_and_corrcoef(points):
    params, y = points
    fit = fit_log_trend(params, y)
    x = np.log10(params)
    slope, intercept = np.polyfit(x, y, 1)
    assert fit.slope == pytest.approx(slope, rel=1e-7, abs=1e-7)
    assert fit.intercept == pytest.approx(intercept, rel=1e-7, abs=1e-6)
    if np.std(y) > 0:
        assert fit.r == pytest.approx(np.corrcoef(x, y)[0, 1], abs=1e-9)
    # the fitted line minimises squared error: residuals are orthogonal to 1 and x
    resid = np.asarray(y) - fit.predict(params)
    scale = 1 + np.abs(y).max() * x.size
    assert abs(resid.sum()) <= 1e-7 * scale
    assert abs((resid * (x - x.mean())).sum()) <= 1e-7 * scale * (1 + np.abs(x).max())


@given(trend_points(), st.floats(1e-7, 1e7))
def test_changing_the_unit_moves_only_the_intercept(points, unit):
    params, y = points
    fit = fit_log_trend(params, y)
    scaled = fit_log_trend(np.asarray(params) / unit, y)  # counts in units of `unit` millions
    assert scaled.slope == pytest.approx(fit.slope, rel=1e-6, abs=1e-6)
    assert scaled.r == pytest.approx(fit.r, abs=1e-7)
    assert scaled.intercept == pytest.approx(fit.intercept_in_units(unit), rel=1e-6, abs=1e-5)
    wrong = fit.intercept - fit.slope * np.log10(unit)  # known-bad: wrong sign of the unit shift
    if abs(fit.slope * np.log10(unit)) > 1e-3:
        assert scaled.intercept != pytest.approx(wrong, rel=1e-6, abs=1e-5)


def test_exact_line_is_recovered_and_bootstrap_collapses():
    params = np.array([0.02, 0.06, 0.14, 0.3, 0.55])
    y = 1.5 + 2.25 * np.log10(params)
    fit = fit_log_trend(params, y)
    assert (fit.slope, fit.intercept, fit.r) == pytest.approx((2.25, 1.5, 1.0))
    boot = bootstrap_trend(params, y, resamples=200, seed=3)
    assert boot.slope_low == pytest.approx(2.25) and boot.slope_high == pytest.approx(2.25)
    assert 0 < boot.resamples <= 200


def test_bootstrap_interval_brackets_the_pooled_slope_on_noisy_data():
    rng = np.random.default_rng(0)
    params = np.repeat([0.02, 0.06, 0.14, 0.3, 0.55], 3)
    y = -1.0 * np.log10(params) + rng.normal(0, 0.3, params.size)
    fit = fit_log_trend(params, y)
    boot = bootstrap_trend(params, y, resamples=500, seed=1)
    assert boot.slope_low < fit.slope < boot.slope_high
    assert boot.r_low < fit.r < boot.r_high
    assert boot.slope_sd > 0


def test_seed_spread_is_mean_and_sample_sd():
    fits = {0: TrendFit(1.0, 0.0, 0.5, 5), 1: TrendFit(3.0, 0.0, 0.7, 5)}
    spread = seed_spread(fits)
    assert spread.slope_mean == 2.0 and spread.slope_sd == pytest.approx(np.sqrt(2.0))
    assert spread.r_mean == pytest.approx(0.6) and spread.r_sd == pytest.approx(np.sqrt(0.02))
    assert seed_spread({4: TrendFit(1.0, 0.0, 0.5, 5)}).slope_sd is None


def test_legend_text_is_signed_with_two_decimals():
    assert legend_text(TrendFit(0.769, -2.76, 0.3245, 17)) == "OLS: +0.77 pp/decade, $R = +0.32$"
    assert legend_text(TrendFit(-1.1782, 3.5, -0.4497, 14)) == "OLS: -1.18 pp/decade, $R = -0.45$"


@pytest.mark.parametrize("args, match", [
    (([1.0, 2.0], [0.0, 1.0]), "at least 3"),
    (([1.0, 2.0, 3.0], [0.0, 1.0]), "shapes"),
    (([1.0, -2.0, 3.0], [0.0, 1.0, 2.0]), "> 0"),
    (([1.0, 2.0, np.nan], [0.0, 1.0, 2.0]), "finite"),
    (([1.0, 2.0, 3.0], [0.0, np.inf, 2.0]), "y"),
    (([5.0, 5.0, 5.0], [0.0, 1.0, 2.0]), "same parameter count"),
])
def test_bad_input_raises_typed_errors(args, match):
    with pytest.raises(InvalidParameterError, match=match):
        fit_log_trend(*args)


def test_bad_bootstrap_options():
    with pytest.raises(InvalidParameterError, match="resamples"):
        bootstrap_trend([1, 2, 3], [0, 1, 2], resamples=5)
    with pytest.raises(InvalidParameterError, match="level"):
        bootstrap_trend([1, 2, 3], [0, 1, 2], level=1.0)


def test_verdict_needs_an_interval_that_excludes_zero():
    assert verdict(+0.77, 0.1, 2.0) == "agrees"
    assert verdict(+0.77, -2.0, -0.1) == "disagrees"
    assert verdict(+0.77, -0.5, 1.0) == "inconclusive"
    assert verdict(-1.18, -3.0, -0.2) == "agrees"
    assert verdict(-1.18, 0.2, 3.0) == "disagrees"
