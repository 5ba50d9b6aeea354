"""Spectral finite-N experiments (THEORY.md 10: E1-E5, E10, E12, E13) and their SOUND inequalities.

* every experiment passes at its ``ci`` size (its full size under the ``thorough`` profile), and each known-bad variant
  (wrong BBP map, wrong MP edge, sigma^2 off by 10%, no collapse, ...) fails it — the checks have teeth;
* the deterministic inequalities of THEORY.md 7.3/7.4 (||R||_op <= ||R||_F, Weyl, Eckart-Young tail,
  counting, explicit Wedin, OR1 Proposition 3.30 (ii)) hold on every hypothesis example, and their
  halved-bound variants are found violated;
* the acceptance helpers (binomial threshold of THEORY.md 9.5, slack ratios).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import find, given, settings, strategies as st
from threadpoolctl import threadpool_limits

from rmt.errors import InvalidParameterError
from rmt.esd import EmpiricalSpectrum, ks_distance
from verification.asymptotics.acceptance import at_least, at_most, binomial_threshold, failure_frequency
from verification.asymptotics.bbp_experiments import top_singular_triplets
from verification.asymptotics.perturbation_inequalities import (
    SplitSpectra,
    counting_check,
    eckart_young_tail_check,
    operator_frobenius_check,
    projector_distance,
    rank_ks_check,
    spectral_cdf_gap,
    wedin_checks,
    weyl_check,
)
from verification.asymptotics.registry import SPECTRAL_EXPERIMENTS, run_experiment
from verification.theorems.networks import haar_frame


# -- experiments at the profile's size and their known-bad variants ---------------------------------------
#: THEORY.md 10's full size under the hypothesis ``thorough`` profile (tests/conftest.py), else the reduced one.
PROFILE_SIZE = "thorough" if settings().max_examples >= 10_000 else "ci"


#: Spec tolerances that the finite-N data do not support at THEORY.md 10's full size (verification/FINDINGS.md
#: F12, F13): ``mpcert verify --asymptotic`` still reports them as violations; this test accepts exactly these
#: assertions (experiment, name prefix) as known findings and nothing else.
FULL_SIZE_FINDINGS = {("E1", "second moment, N=200"), ("E4", "inverse |theta_hat - theta|, N=500")}


def _documented(experiment_id: str, name: str) -> bool:
    return PROFILE_SIZE == "thorough" and any(
        experiment_id == eid and name.startswith(prefix) for eid, prefix in FULL_SIZE_FINDINGS
    )


@pytest.mark.parametrize("experiment_id", list(SPECTRAL_EXPERIMENTS))
def test_experiment_passes_at_the_profile_size(experiment_id):
    run = run_experiment(experiment_id, PROFILE_SIZE, seed=0)
    result = run.result
    assert result.experiment == experiment_id and result.size == PROFILE_SIZE
    assert len(result.assertions) > 0
    unexpected = [a for a in result.violations if not _documented(experiment_id, a.name)]
    assert not unexpected, [f"{a.name}: {a.value} vs {a.threshold}" for a in unexpected]


#: (experiment, mutation, assertion-name fragment that must fail, fragment that must still hold)
KNOWN_BAD = [
    ("E1", "sigma2-off-10pct", "first moment", None),
    ("E1", "sigma2-off-10pct", "KS eigenvalue ESD, N=500", None),
    ("E2", "edge-without-cross-term", "top edge", None),
    ("E3", "wrong-bbp-map", "sigma_hat - sigma", "first non-outlier"),
    ("E4", "square-map", "location", "subcritical"),
    ("E5", "no-collapse", "decay slope", "Weyl"),
    ("E10", "fan-in-variance", "sample variance", None),
    ("E12", "rank-bound-halved", "KS(nu_W, nu_R)", "MP singular"),
    ("E13", "factor-2-dropped", "d_2 = 1/N", None),
]


@pytest.mark.parametrize(("experiment_id", "mutation", "fails", "holds"), KNOWN_BAD)
def test_known_bad_variant_fails_its_check(experiment_id, mutation, fails, holds):
    with threadpool_limits(limits=1, user_api="blas"):
        result = SPECTRAL_EXPERIMENTS[experiment_id]("ci", 0, mutation=mutation)
    assert not result.passed
    assert any(fails in a.name for a in result.violations), [a.name for a in result.violations][:5]
    if holds is not None:  # the mutation breaks only what it should
        assert all(a.ok for a in result.assertions if holds in a.name)


def test_collapse_known_bad_keeps_every_sound_inequality():
    """Without collapse the noise no longer vanishes, but Weyl/Wedin/Eckart-Young are deterministic."""
    with threadpool_limits(limits=1, user_api="blas"):
        result = SPECTRAL_EXPERIMENTS["E5"]("ci", 0, mutation="no-collapse")
    sound = [a for a in result.assertions if a.kind == "sound"]
    assert sound and all(a.ok for a in sound)


@pytest.mark.parametrize("experiment_id", ["E1", "E3", "E5"])
def test_unknown_mutation_and_size_raise_typed_errors(experiment_id):
    with pytest.raises(InvalidParameterError, match="mutation"):
        SPECTRAL_EXPERIMENTS[experiment_id]("ci", 0, mutation="nonsense")
    with pytest.raises(InvalidParameterError, match="size"):
        SPECTRAL_EXPERIMENTS[experiment_id]("huge", 0)


# -- SOUND inequalities on arbitrary matrices ---------------------------------------------------------------
@st.composite
def signal_noise_pairs(draw):
    """``(U, sigma, V, R)`` with ``S = U diag(sigma) V^T`` of rank ``r``; the noise is Gaussian, aligned with
    ``S`` (``R = t S``), a rank-one tilt of one singular direction (attains Wedin), or zero."""
    n, m = draw(st.integers(1, 9)), draw(st.integers(1, 9))
    r = draw(st.integers(0, min(n, m)))
    seed = draw(st.integers(0, 2**32 - 1))
    sigma = np.sort(np.array(draw(st.lists(st.sampled_from([0.5, 1.0, 1.0, 2.0, 3.0, 5.0]) if draw(st.booleans())
                                           else st.floats(0.05, 5.0), min_size=r, max_size=r))))[::-1]
    mode = draw(st.sampled_from(["gaussian", "aligned", "tilt", "zero"]))
    scale = draw(st.floats(1e-3, 3.0))
    rng = np.random.default_rng(seed)
    U, V = haar_frame(rng, n, r), haar_frame(rng, m, r)
    S = (U * sigma) @ V.T
    if mode == "gaussian" or (mode != "zero" and r == 0):
        R = scale * rng.standard_normal((n, m)) / np.sqrt(max(n, m))
    elif mode == "aligned":
        R = draw(st.floats(-0.9, 0.9)) * S
    elif mode == "tilt":
        x = rng.standard_normal(m)
        x -= V @ (V.T @ x)
        x = x / np.linalg.norm(x) if np.linalg.norm(x) > 1e-8 else V[:, 0]
        R = scale * 0.1 * np.outer(U[:, draw(st.integers(0, r - 1))], x)
    else:
        R = np.zeros((n, m))
    return U, np.ascontiguousarray(sigma), V, R


def _spectra(case) -> SplitSpectra:
    U, sigma, V, R = case
    return SplitSpectra.from_factors(U, sigma, V, R, vectors=True)


def _general(case) -> SplitSpectra:
    U, sigma, V, R = case
    return SplitSpectra.from_matrices((U * sigma) @ V.T, R)


@given(signal_noise_pairs(), st.floats(0.05, 3.0))
def test_corollary_4_10_inequalities_hold_on_every_pair(case, eps):
    sp = _general(case)
    assert operator_frobenius_check(sp).ok
    assert weyl_check(sp).ok
    for k in range(sp.s_w.size + 1):
        assert eckart_young_tail_check(sp, k).ok
    assert counting_check(sp, eps).ok


@given(signal_noise_pairs())
def test_explicit_wedin_bound_holds_whenever_its_hypothesis_does(case):
    sp = _spectra(case)
    for k in range(1, min(case[1].size, sp.s_w.size - 1) + 1):
        checks = wedin_checks(sp, k)
        if checks is not None:
            assert checks[0].ok and checks[1].ok, (k, checks)
            assert checks[0].bound <= checks[1].bound * (1 + 1e-9) + 1e-12  # the sharper form (via Weyl)


@given(signal_noise_pairs())
def test_proposition_3_30_ii_rank_inequality_holds(case):
    assert rank_ks_check(_general(case), case[1].size).ok


def _wedin_ok(case, mutation) -> bool:
    sp = _spectra(case)
    checks = [wedin_checks(sp, k, mutation) for k in range(1, min(case[1].size, sp.s_w.size - 1) + 1)]
    return all(c[0].ok and c[1].ok for c in checks if c is not None)


#: name -> ``ok(case, mutation)``
CHECKS_WITH_HALVED_VARIANT = {
    "op<=F": lambda case, mut: operator_frobenius_check(_general(case), mut).ok,
    "weyl": lambda case, mut: weyl_check(_general(case), mut).ok,
    "eckart-young": lambda case, mut: eckart_young_tail_check(_general(case), 0, mut).ok,
    "counting": lambda case, mut: counting_check(_general(case), 0.5, mut).ok,
    "wedin": _wedin_ok,
    "rank-ks": lambda case, mut: rank_ks_check(_general(case), case[1].size, mut).ok,
}


@pytest.mark.parametrize("name", list(CHECKS_WITH_HALVED_VARIANT))
def test_halved_bound_is_found_violated(name):
    """Known-bad variant: the bound halved; hypothesis finds an instance that violates it."""
    ok = CHECKS_WITH_HALVED_VARIANT[name]
    case = find(signal_noise_pairs(), lambda c: not ok(c, "bound-halved"),
                settings=settings(max_examples=2000, database=None))
    assert not ok(case, "bound-halved") and ok(case, None)


def test_wedin_bound_is_attained_by_a_rank_one_tilt():
    """``S = e1 e1^T``, ``R = eps e1 e2^T``: the right singular vector turns by exactly the bound."""
    eps = 0.1
    U = V = np.eye(2)[:, :1]
    R = np.array([[0.0, eps], [0.0, 0.0]])
    sharp, loose = wedin_checks(SplitSpectra.from_factors(U, np.array([1.0]), V, R, vectors=True), 1)
    assert sharp.ok and sharp.realized == pytest.approx(sharp.bound, rel=1e-12)
    assert loose.bound == pytest.approx(eps / (1 - eps))


# -- exact helpers -------------------------------------------------------------------------------------------
@given(st.lists(st.integers(0, 6), min_size=1, max_size=12), st.lists(st.integers(0, 6), min_size=1, max_size=12))
def test_two_sample_gap_is_the_ks_distance(a, b):
    """``max(gap(a, b), gap(b, a))`` equals rmt.esd.ks_distance against the empirical CDF of ``b`` (ties included)."""
    b_esd = EmpiricalSpectrum(np.array(b, dtype=float))
    expected = ks_distance(np.array(a, dtype=float), b_esd.cdf, jump_points=b_esd.values)
    assert max(spectral_cdf_gap(a, b), spectral_cdf_gap(b, a)) == pytest.approx(expected, abs=1e-12)


@given(st.integers(0, 2**32 - 1), st.integers(2, 8), st.integers(1, 3))
def test_projector_distance_is_the_operator_norm_of_the_difference(seed, n, k):
    k = min(k, n)
    rng = np.random.default_rng(seed)
    Q1, Q2 = haar_frame(rng, n, k), haar_frame(rng, n, k)
    direct = np.linalg.norm(Q1 @ Q1.T - Q2 @ Q2.T, 2)
    assert projector_distance(Q1, Q2) == pytest.approx(direct, abs=1e-10)


def test_top_singular_triplets_match_the_svd():
    rng = np.random.default_rng(3)
    for shape in ((30, 12), (12, 30)):
        W = rng.standard_normal(shape)
        s, u, v = top_singular_triplets(W, 4)
        u_ref, s_ref, vt_ref = np.linalg.svd(W)
        np.testing.assert_allclose(s, s_ref[:4], rtol=1e-10)
        np.testing.assert_allclose(np.abs(np.sum(u * u_ref[:, :4], axis=0)), 1.0, rtol=1e-8)
        np.testing.assert_allclose(np.abs(np.sum(v * vt_ref[:4].T, axis=0)), 1.0, rtol=1e-8)


# -- acceptance helpers --------------------------------------------------------------------------------------
def test_binomial_threshold_reference_values():
    """THEORY.md 9.5: K=200, delta=0.05 -> 27; K=1000, delta=0.05 -> 86; K=200, delta=0.01 -> 12."""
    assert binomial_threshold(200, 0.05) == 27
    assert binomial_threshold(1000, 0.05) == 86
    assert binomial_threshold(200, 0.01) == 12


@pytest.mark.parametrize(("draws", "delta"), [(0, 0.1), (10, -0.1), (10, 1.5), (2.5, 0.1)])
def test_binomial_threshold_rejects_bad_arguments(draws, delta):
    with pytest.raises(InvalidParameterError):
        binomial_threshold(draws, delta)


def test_failure_frequency_accepts_exactly_up_to_the_threshold():
    q = binomial_threshold(500, 0.01)
    assert failure_frequency("f", q, 500, 0.01).ok
    assert not failure_frequency("f", q + 1, 500, 0.01).ok


@given(st.floats(-10, 10), st.floats(0.01, 10))
def test_slack_is_below_one_exactly_when_the_assertion_fails(value, threshold):
    for outcome in (at_most("x", "trend", value, threshold), at_least("x", "trend", value, threshold)):
        assert (outcome.slack >= 1.0) == outcome.ok


# -- figures -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("experiment_id", list(SPECTRAL_EXPERIMENTS))
def test_every_spectral_experiment_draws_its_figure(experiment_id, tmp_path):
    from figures.asymptotic_plots import plot_experiment

    result = plot_experiment(run_experiment(experiment_id, "ci", seed=0).result, tmp_path)
    path = tmp_path / f"{experiment_id}_ci.png"
    assert result.figure == str(path) and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_figure_of_an_unknown_experiment_plots_its_series_against_n(tmp_path):
    from figures.asymptotic_plots import plot_experiment
    from verification.asymptotics.result import ExperimentResult

    result = ExperimentResult("E99", "synthetic", ("none",), "ci", {"N": [1.0, 2.0], "y": [3.0, 4.0]})
    assert plot_experiment(result, tmp_path).figure == str(tmp_path / "E99_ci.png")
