"""The calibrated spike count of ``fit_mp`` (``spike_test="calibrated"``, :mod:`rmt.spike_test`; issue 20).

* EXACT facts (hypothesis): the count equals an independent re-implementation of the sequential
  Tracy–Widom test, the recorded p-values agree with the decisions, the count grows with ``alpha`` and is
  invariant under scaling and transposition; the ``"paper"`` mode is the old ``#{s_i > sigma_plus}``.
* STATISTICAL facts, binomial acceptance of THEORY.md 9.5
  (:func:`verification.asymptotics.acceptance.binomial_threshold`, false-failure rate ``1e-6`` per check):
  on pure iid Gaussian noise the fraction of draws with any spike is at most ``alpha``; with planted
  spikes at ``>= 1.5 theta_c`` the count is exact in at least 95 % of draws.  Each has known-bad
  variants on the same draws that must be rejected: the paper's count (pure noise) and the test with the
  Tracy–Widom quantile at ``alpha`` instead of ``1 - alpha`` (both).
* Sizes: ``ci`` runs p <= 256 with a few hundred draws; ``HYPOTHESIS_PROFILE=thorough`` adds the shapes
  up to 2048 x 2048 and more draws.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rmt.fit import fit_mp, least_squares_scale, unit_quantiles
from rmt.spike_test import DEFAULT_SPIKE_ALPHA, sequential_tw_test
from rmt.tracy_widom import tw1_cdf, tw1_ppf, wishart_edge_scaling
from verification.asymptotics.acceptance import binomial_threshold
from verification.cli.fit import format_table

THOROUGH = settings().max_examples >= 10_000
ALPHA = DEFAULT_SPIKE_ALPHA


def planted(rng, shape, strengths):
    """Unit-variance iid noise plus a rank-``len(strengths)`` signal with random orthonormal vectors."""
    n_rows, n_cols = shape
    noise = rng.standard_normal(shape)
    if len(strengths) == 0:
        return noise
    u = np.linalg.qr(rng.standard_normal((n_rows, len(strengths))))[0]
    w = np.linalg.qr(rng.standard_normal((n_cols, len(strengths))))[0]
    return (u * np.asarray(strengths, dtype=np.float64)) @ w.T + noise


def theta_c(shape, v=1.0):
    """Rectangular BBP threshold ``s (N M)^(1/4)`` (THEORY 8.5)."""
    return math.sqrt(v) * (shape[0] * shape[1]) ** 0.25


# -- an independent oracle of the sequential test (module docstring of rmt.spike_test) ---------------
def bema_variance(lam_ascending, gamma, alpha_bema=0.25):
    p = lam_ascending.size
    lo, hi = math.floor(alpha_bema * p), math.floor((1 - alpha_bema) * p)
    return least_squares_scale(unit_quantiles(np.arange(lo, hi) / p, gamma), lam_ascending[lo:hi])


def oracle_count(s_desc, n, tw_level, max_steps=None):
    """Spikes rejected at the Tracy–Widom quantile ``tw_level`` (``1 - alpha``; ``alpha`` is the known-bad),
    counting at most ``max_steps`` when given."""
    e = np.asarray(s_desc, dtype=np.float64) ** 2
    p = e.size
    t = float(tw1_ppf(tw_level))
    k = 0
    cap = p - math.floor(0.75 * p) if max_steps is None else min(max_steps, p - math.floor(0.75 * p))
    while k < cap and math.floor(0.75 * (p - k)) - math.floor(0.25 * (p - k)) >= 1:
        rows, cols = p - k, n - k
        v = bema_variance(np.sort(e[k:]) / cols, rows / cols)
        a, b = math.sqrt(rows - 0.5), math.sqrt(cols - 0.5)
        if not e[k] > v * (a + b) ** 2 + t * v * (a + b) * (1 / a + 1 / b) ** (1 / 3):
            break
        k += 1
    return k


# -- EXACT properties -----------------------------------------------------------------------------------
@st.composite
def spiked_matrices(draw):
    shape = (draw(st.integers(8, 48)), draw(st.integers(8, 48)))
    strengths = draw(st.lists(st.floats(0.0, 4.0), max_size=3))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    return planted(rng, shape, np.asarray(strengths) * theta_c(shape))


@given(W=spiked_matrices(), alpha=st.sampled_from([0.01, 0.05, 0.2]))
def test_count_equals_the_oracle_and_pvalues_agree_with_the_decisions(W, alpha):
    fit = fit_mp(W, spike_alpha=alpha)
    k = fit.n_spikes
    assert k == oracle_count(fit.singular_values, fit.n, 1 - alpha)
    assert fit.spikes == tuple(fit.singular_values[:k]) and fit.bulk_fraction == 1.0 - k / fit.p
    assert all(pv < alpha for pv in fit.spike_pvalues[:k])
    assert len(fit.spike_pvalues) in (k, k + 1) and all(pv >= alpha for pv in fit.spike_pvalues[k:])
    assert fit.spikes_capped == (k > 0 and len(fit.spike_pvalues) == k)
    # the last step's p-value and threshold, recomputed from Johnstone's scaling of the deflated shape
    test = sequential_tw_test(fit.singular_values, fit.n, alpha)
    j = len(fit.spike_pvalues) - 1
    edge = wishart_edge_scaling(fit.p - j, fit.n - j, test.noise_variance)
    pvalue = 1.0 - tw1_cdf((fit.singular_values[j] ** 2 - edge.center) / edge.scale)
    assert fit.spike_pvalues[-1] == pytest.approx(pvalue, abs=1e-12)
    threshold = math.sqrt(edge.center + tw1_ppf(1 - alpha) * edge.scale)
    assert fit.spike_threshold == pytest.approx(threshold, rel=1e-12)
    assert (fit.spike_test, fit.spike_alpha) == ("calibrated", alpha)


@given(W=spiked_matrices(), scale=st.floats(1e-3, 1e3))
def test_count_grows_with_alpha_and_ignores_scale_and_orientation(W, scale):
    counts = [fit_mp(W, spike_alpha=a).n_spikes for a in (0.01, 0.05, 0.2)]
    assert counts == sorted(counts)
    assert fit_mp(W.T * scale).n_spikes == counts[1]


def test_first_step_uses_the_fit_variance_and_johnstone_edge_of_the_whole_shape():
    W = np.random.default_rng(3).standard_normal((120, 300)) * 0.05
    fit = fit_mp(W)
    assert fit.n_spikes == 0 and len(fit.spike_pvalues) == 1
    edge = wishart_edge_scaling(120, 300, fit.sigma2)
    assert fit.spike_threshold == pytest.approx(math.sqrt(edge.center + tw1_ppf(0.95) * edge.scale), rel=1e-12)
    # known-bad: a threshold from the paper's edge (beta_tw = 0.8) is the lower sigma_plus
    assert fit.sigma_plus < 0.995 * fit.spike_threshold


def test_strong_rank_stops_at_the_cap_with_every_step_a_rejection():
    rng = np.random.default_rng(0)
    W = planted(rng, (40, 80), np.linspace(20.0, 40.0, 16) * theta_c((40, 80)))
    test = sequential_tw_test(np.linalg.svd(W, compute_uv=False), 80, ALPHA)
    assert test.max_spikes == 40 - math.floor(0.75 * 40) == 10
    assert test.n_spikes == 10 and len(test.pvalues) == 10 and max(test.pvalues) < ALPHA and test.capped
    fit = fit_mp(W, name="strong")
    assert fit.n_spikes == 10 and fit.spikes_capped and fit.to_dict()["spikes_capped"] is True
    row = next(line for line in format_table([fit.to_dict()]).splitlines() if line.startswith("strong"))
    assert " 10+ " in row  # the table reads a capped count as "at least"
    # known-bad: an uncapped reading of the same fit
    assert " 10 " not in row


def test_paper_mode_is_the_count_above_sigma_plus():
    W = planted(np.random.default_rng(1), (200, 500), [2.0 * theta_c((200, 500))])
    paper, calibrated = fit_mp(W, spike_test="paper"), fit_mp(W)
    s = paper.singular_values
    assert paper.n_spikes == int(np.sum(s > paper.sigma_plus)) and paper.spikes == tuple(s[s > paper.sigma_plus])
    assert paper.bulk_fraction == np.count_nonzero(s < paper.sigma_plus) / 200
    assert (paper.spike_alpha, paper.spike_pvalues, paper.spike_threshold) == (None, (), paper.sigma_plus)
    assert not paper.spikes_capped
    assert (paper.sigma2, paper.sigma_plus, paper.mp_fit_error) == (calibrated.sigma2, calibrated.sigma_plus,
                                                                    calibrated.mp_fit_error)
    record = json.loads(json.dumps(calibrated.to_dict()))
    assert record["spike_test"] == "calibrated" and record["spike_alpha"] == ALPHA
    assert record["spike_pvalues"] == list(calibrated.spike_pvalues) and record["options"]["spike_test"] == "calibrated"
    assert json.loads(json.dumps(paper.to_dict()))["spike_alpha"] is None


# -- STATISTICAL: false alarms on pure noise ------------------------------------------------------------
NULL_SHAPES = [((64, 64), 300), ((64, 256), 300), ((256, 64), 300), ((128, 128), 300), ((128, 512), 300)]
if THOROUGH:
    NULL_SHAPES += [((384, 384), 1000), ((384, 1536), 600), ((1536, 384), 600), ((1024, 1024), 400),
                    ((512, 2048), 600), ((2048, 2048), 150), ((64, 64), 4000), ((128, 512), 2000)]


@pytest.mark.parametrize("shape, draws", NULL_SHAPES)
def test_pure_noise_reports_a_spike_in_at_most_alpha_of_draws(shape, draws):
    rng = np.random.default_rng(20 + shape[0] + 7 * shape[1] + draws)
    calibrated = paper = wrong_quantile = 0
    for _ in range(draws):
        fit = fit_mp(rng.standard_normal(shape))
        edge = wishart_edge_scaling(fit.p, fit.n, fit.sigma2)  # step 0 of the test (checked above)
        calibrated += fit.n_spikes > 0
        paper += fit.singular_values[0] > fit.sigma_plus
        wrong_quantile += fit.singular_values[0] ** 2 > edge.center + tw1_ppf(ALPHA) * edge.scale
    accept = binomial_threshold(draws, ALPHA)
    assert calibrated <= accept, f"{calibrated}/{draws} pure-noise draws with a spike (accept <= {accept})"
    # known-bad: the paper's count and the quantile at alpha flag far more
    assert paper > accept and wrong_quantile > accept


# -- STATISTICAL: planted spikes >= 1.5 theta_c are counted exactly ---------------------------------------
PLANTED = [((128, 512), (1.5,), 150), ((128, 512), (1.5, 2.0, 3.0), 150), ((256, 256), (1.5, 2.0, 3.0), 100)]
if THOROUGH:
    PLANTED += [((256, 1024), (1.5, 2.0, 3.0), 400), ((512, 512), (1.5, 1.65, 1.8, 2.0, 3.0), 400),
                ((1024, 256), (1.5,), 400), ((512, 2048), (1.5, 2.0, 3.0), 200)]


@pytest.mark.parametrize("shape, relative, draws", PLANTED)
def test_planted_spikes_above_one_and_a_half_thresholds_are_counted_exactly(shape, relative, draws):
    rng = np.random.default_rng(5 + shape[0] + len(relative) + draws)
    strengths = np.asarray(relative) * theta_c(shape)
    wrong = wrong_bad = 0
    for _ in range(draws):
        fit = fit_mp(planted(rng, shape, strengths))
        wrong += fit.n_spikes != len(strengths)
        wrong_bad += oracle_count(fit.singular_values, fit.n, ALPHA, max_steps=len(strengths) + 1) != len(strengths)
    accept = binomial_threshold(draws, 1.0 - 0.95)
    assert wrong <= accept, f"count wrong in {wrong}/{draws} draws (accept <= {accept})"
    assert wrong_bad > accept  # known-bad: the quantile at alpha counts noise eigenvalues as spikes
