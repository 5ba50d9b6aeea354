"""Network/training experiments E6, E7, E8, E9, E11 and the finite-N Gaussian results of OR1 Section 3
(THEORY.md 6, 7.2, 7.3, 9.5, 10).

* Every experiment passes at ``ci`` size and every known-bad variant fails a named assertion.
* SOUND parts (OR1 Lemma 3.13 core, Corollary 3.14 / Lemma 3.15 / Theorem 3.16 on their events, Theorem 3.20's
  sandwich, Theorem 4.7's finite-N analogue) are hypothesis properties with zero violations.
* PROB parts use the binomial rule of THEORY.md 9.5 (false-alarm rate ``1e-6`` per assertion): hypothesis picks the
  configuration, the noise stream is fixed (THEORY.md 9.4).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from threadpoolctl import threadpool_limits

from figures.asymptotic_plots import plot_experiment
from rmt.errors import InvalidParameterError
from verification.asymptotics.embedded_network import chain_logits, embedded_four_layer, embedded_three_layer
from verification.asymptotics.gaussian_finite_n import draw_gaussian_noise, finite_n_outcomes
from verification.asymptotics.network_experiments import KNOWN_BAD, NETWORK_EXPERIMENTS
from verification.asymptotics.regularized_training import objective_gradient, train_target_layer
from verification.asymptotics.stationarity_training import checkpoint_record
from verification.asymptotics.thresholding import hard_threshold, support_sandwich, threshold_level
from verification.theorems.networks import spiked_gaussian_network

SEED = 0


@pytest.fixture(autouse=True, scope="module")
def one_blas_thread():
    """BLAS on one thread, as :func:`verification.asymptotics.registry.run_experiment` runs experiments (several
    BLAS threads fighting over two shared cores made the SVDs of E8 ~20x slower)."""
    with threadpool_limits(limits=1, user_api="blas"):
        yield


# -- experiments at ci size, and their known-bad variants ------------------------------------------------
@pytest.fixture(scope="module")
def ci_results():
    return {}


def _run(cache: dict, name: str, mutation: str | None = None):
    key = (name, mutation)
    if key not in cache:
        cache[key] = NETWORK_EXPERIMENTS[name]("ci", SEED, mutation=mutation)
    return cache[key]


def test_registry_lists_the_network_experiments():
    assert set(NETWORK_EXPERIMENTS) == {"E6", "E7", "E8", "E9", "E11"}
    assert set(KNOWN_BAD) == set(NETWORK_EXPERIMENTS)


@pytest.mark.parametrize("name", ["E6", "E7", "E8", "E9", "E11"])
def test_experiment_passes_at_ci_size(ci_results, name):
    result = _run(ci_results, name)
    assert result.experiment == name and result.size == "ci"
    assert {a.kind for a in result.assertions} >= {"sound"}
    assert result.passed, [(a.name, a.value, a.threshold, a.detail) for a in result.violations]


#: (experiment, mutation) -> substring of an assertion name that must fail.
EXPECTED_FAILURES = {
    ("E6", "double-penalty"): "mean|r_N| at N=",
    ("E7", "double-penalty"): "mean|total remainder|",
    ("E7", "stale-step"): "EXACT total remainder = sum of per-step remainders",
    ("E8", "no-regularizer"): "collapse",
    ("E9", "half-threshold"): "P(max|R| > t) <= delta",
    ("E9", "beta-factor-1"): "SOUND sandwich",
    ("E11", "double-penalty"): "mean |regularised remainder| decreases",
}


@pytest.mark.parametrize("name,mutation", sorted(EXPECTED_FAILURES))
def test_known_bad_variant_fails_its_check(ci_results, name, mutation):
    assert mutation in KNOWN_BAD[name]
    result = _run(ci_results, name, mutation)
    failed = [a.name for a in result.violations]
    assert any(EXPECTED_FAILURES[(name, mutation)] in n for n in failed), failed


def test_e8_no_regularizer_also_breaks_monotone_bulk_edge(ci_results):
    """Without the regulariser the bulk edge does not decrease (no collapse, THEORY.md 10 E8)."""
    result = _run(ci_results, "E8", "no-regularizer")
    assert any("bulk edge s_(r0+1) non-increasing" in a.name for a in result.violations)
    edges = np.asarray(result.series["N256_bulk_edge"])
    assert edges[-1] > 0.9 * edges[0]


def test_figures_are_drawn(ci_results, tmp_path):
    for name in NETWORK_EXPERIMENTS:
        drawn = plot_experiment(_run(ci_results, name), tmp_path)
        assert drawn.figure is not None and (tmp_path / f"{name}_ci.png").stat().st_size > 1000


@pytest.mark.parametrize("name", ["E6", "E8", "E9"])
def test_bad_size_and_mutation_are_rejected(name):
    run = NETWORK_EXPERIMENTS[name]
    with pytest.raises(InvalidParameterError, match="size"):
        run("huge", SEED)
    with pytest.raises(InvalidParameterError, match="mutation"):
        run("ci", SEED, mutation="not-a-mutation")


# -- generators and the training gradient -----------------------------------------------------------------
@given(seed=st.integers(0, 10_000), N=st.integers(4, 24), g=st.floats(0.0, 1.0),
       activation=st.sampled_from(["relu", "abs"]))
def test_embedded_generator_matches_reference(seed, N, g, activation):
    """The numpy generator is draw for draw the reference generator of THEORY.md 7.1 (same seed, same N)."""
    net = embedded_three_layer(4, 3, N, 3, [3.0, 2.0, 1.0], g, activation, seed=seed)
    ref = spiked_gaussian_network(4, 3, N, 3, [3.0, 2.0, 1.0], g, activation, "embedded", seed=seed)
    for mine, theirs in zip(net.weights, (ref.W1, ref.W2, ref.W3)):
        np.testing.assert_array_equal(mine, theirs)
    np.testing.assert_array_equal(net.removed[1], ref.R2)
    X = np.random.default_rng(seed).standard_normal((5, 4))
    np.testing.assert_allclose(chain_logits(net.weights, X, activation), ref.mlp.logits_np(X), rtol=1e-12, atol=1e-12)


def test_four_layer_generator_is_embedded():
    net = embedded_four_layer(4, 3, 32, 3, [3.0, 2.0, 1.0], [2.0, 1.5, 1.0], 0.8, seed=1)
    S3 = net.structured[2]
    assert np.count_nonzero(S3[3:]) == 0 and np.count_nonzero(S3[:, 3:]) == 0
    np.testing.assert_allclose(np.linalg.svd(S3[:3, :3], compute_uv=False), [2.0, 1.5, 1.0], rtol=1e-12)
    R2, R3 = net.removed[1], net.removed[2]
    correlation = np.vdot(R2, R3) / (np.linalg.norm(R2) * np.linalg.norm(R3))
    assert abs(correlation) < 5.0 / 32  # independent streams: s.d. of the correlation is 1/N


@given(seed=st.integers(0, 10_000), N=st.integers(2, 12), lam=st.floats(0.0, 0.1),
       activation=st.sampled_from(["relu", "abs"]))
def test_closed_form_gradient_matches_autograd(seed, N, lam, activation):
    net = spiked_gaussian_network(3, 3, N, 1, [1.5], 0.8, activation, "generic", seed=seed)
    rng = np.random.default_rng(seed)
    X, y = rng.standard_normal((6, 3)), rng.integers(0, 3, 6)
    grad = objective_gradient(net.W1, net.W2, net.W3, X, y, lam, activation)
    W = torch.tensor(net.W2, requires_grad=True)
    act = torch.relu if activation == "relu" else torch.abs
    z = act(act(act(torch.tensor(X) @ torch.tensor(net.W1).T) @ W.T) @ torch.tensor(net.W3).T)
    (torch.nn.functional.cross_entropy(z, torch.tensor(y)) + lam * (W**2).sum()).backward()
    np.testing.assert_allclose(grad, W.grad.numpy(), rtol=1e-10, atol=1e-14)


def test_training_decreases_the_objective_and_keeps_checkpoints():
    net = embedded_three_layer(4, 3, 32, 3, [3.0, 2.0, 1.0], 0.8, seed=2)
    X = np.random.default_rng(3).standard_normal((16, 4))
    y = np.argmax(chain_logits(net.weights, X, "relu"), axis=1)
    trace = train_target_layer(*net.weights, X, y, 5e-3, 0.5, [0, 50, 200])
    assert trace.steps == (0, 50, 200)
    np.testing.assert_array_equal(trace.weights[0], net.weights[1])
    assert trace.gradient_norms[-1] < trace.gradient_norms[0]
    with pytest.raises(InvalidParameterError, match="step"):
        train_target_layer(*net.weights, X, y, 5e-3, 0.0, [10])


# -- SOUND parts: hypothesis properties, zero violations ------------------------------------------------------
generic_configs = st.fixed_dictionaries({
    "seed": st.integers(0, 10_000),
    "N": st.integers(4, 32),
    "d": st.integers(1, 6),
    "K": st.integers(2, 5),
    "T": st.integers(1, 3),
    "r": st.integers(0, 3),
    "g": st.floats(0.05, 1.0),
    "activation": st.sampled_from(["relu", "abs"]),
})


def _generic_draws(cfg, draws: int):
    r = min(cfg["r"], cfg["N"])
    net = spiked_gaussian_network(cfg["d"], cfg["K"], cfg["N"], r, np.linspace(2.0, 1.0, r), cfg["g"],
                                  cfg["activation"], "generic", seed=cfg["seed"])
    X = np.random.default_rng(cfg["seed"] + 1).standard_normal((cfg["T"], cfg["d"]))
    labels = np.random.default_rng(cfg["seed"] + 2).integers(0, cfg["K"], cfg["T"])
    return draw_gaussian_noise(net.W1, net.S2, net.W3, X, labels, cfg["g"], draws, SEED, cfg["activation"])


@given(cfg=generic_configs)
def test_or1_finite_n_sound_parts_hold_on_every_draw(cfg):
    """OR1 Lemma 3.13 core; Corollary 3.14, Lemma 3.15, Theorem 3.16 (both forms) on their events."""
    outcomes = finite_n_outcomes(_generic_draws(cfg, 40), delta=0.05, lam=1e-2)
    sound = [a for a in outcomes if a.kind == "sound"]
    assert len(sound) >= 4
    assert all(a.ok for a in sound), [(a.name, a.detail) for a in sound if not a.ok]


@settings(max_examples=min(20, settings().max_examples))  # 300 draws each
@given(cfg=generic_configs)
def test_or1_finite_n_failure_frequencies_within_binomial_threshold(cfg):
    """OR1 Lemma 3.13 (1/N), Corollary 3.14 / Lemma 3.15 (|T|/N), Theorem 3.16 (delta, regularised: delta + 2e^{..})."""
    outcomes = finite_n_outcomes(_generic_draws(cfg, 300), delta=0.05, lam=1e-2)
    statistical = [a for a in outcomes if a.kind == "statistical"]
    assert len(statistical) >= 3
    assert all(a.ok for a in statistical), [(a.name, a.detail) for a in statistical if not a.ok]


def test_or1_known_bad_variants_are_caught():
    """Pitfall 1 (entry max for ||W3||_inf) breaks the SOUND core; a 1/N variance or a missing union bound breaks
    the noise-event frequencies (the logit-level frequencies alone are too loose to notice, see the module doc)."""
    cfg = {"seed": 1, "N": 64, "d": 4, "K": 3, "T": 6, "r": 2, "g": 0.8, "activation": "relu"}
    sample = _generic_draws(cfg, 400)
    assert all(a.ok for a in finite_n_outcomes(sample))
    expected = {"w3-entry-max": "SOUND core", "tau-over-sqrtN": "Lemma 3.13 noise event",
                "no-union-bound": "Theorem 3.16 noise event"}
    for mutation, fragment in expected.items():
        failed = [a.name for a in finite_n_outcomes(sample, mutation=mutation) if not a.ok]
        assert any(fragment in n for n in failed), (mutation, failed)
    with pytest.raises(InvalidParameterError, match="g <= 1"):
        finite_n_outcomes(draw_gaussian_noise(np.eye(4), np.eye(4), np.ones((2, 4)), np.ones((1, 4)),
                                              np.zeros(1, dtype=int), 1.5, 2, SEED))


@given(seed=st.integers(0, 10_000), n=st.integers(1, 12), m=st.integers(1, 12), t=st.floats(0.0, 2.0),
       density=st.floats(0.0, 1.0))
def test_theorem_3_20_sandwich_holds_whenever_max_noise_is_below_t(seed, n, m, t, density):
    """SOUND on the event ``max|R| <= t``: ``{|S| > 2t} ⊆ supp H_t(S + R) ⊆ supp S`` for every such ``R``."""
    rng = np.random.default_rng(seed)
    S = np.where(rng.random((n, m)) < density,
                 rng.choice([-1.0, 1.0], (n, m)) * rng.choice([0.5, 1.0, 2.0, 3.0], (n, m)) * t, 0.0)
    R = t * rng.uniform(-1.0, 1.0, (n, m))
    R[rng.random((n, m)) < 0.2] = t * rng.choice([-1.0, 1.0])   # the event's boundary, max|R| = t exactly
    assert support_sandwich(S, S + R, t) == (True, True)


def test_theorem_3_20_helpers_and_known_bad():
    t = threshold_level(1.0, 100, 50, 0.05)
    assert t == pytest.approx(np.sqrt(2.0 * np.log(2.0 * 100 * 50 / 0.05) / 100))
    assert threshold_level(0.0, 10, 10, 0.1) == 0.0
    np.testing.assert_array_equal(hard_threshold(np.array([[t, -1.01 * t, 0.0]]), t), [[0.0, -1.01 * t, 0.0]])
    S, R = np.array([[1.5 * t]]), np.array([[-0.6 * t]])     # |S| in (t, 2t]: the factor 2 is needed
    assert support_sandwich(S, S + R, t) == (True, True)
    assert support_sandwich(S, S + R, t, beta_factor=1.0)[0] is False
    with pytest.raises(InvalidParameterError, match="delta"):
        threshold_level(1.0, 10, 10, 1.5)


@given(seed=st.integers(0, 10_000), N=st.integers(4, 16), theta_scale=st.floats(0.0, 3.0),
       activation=st.sampled_from(["relu", "abs"]))
def test_theorem_4_7_finite_n_analogue_holds_for_any_weight(seed, N, theta_scale, activation):
    """``lambda (1 + theta) ||R||^2 + 2 lambda <S, R> <= B_T(R) + eps_theta`` (SVD split, Method G) for any ``W_2``."""
    rng = np.random.default_rng(seed)
    W1, W3 = rng.standard_normal((N, 3)), rng.standard_normal((3, N)) / np.sqrt(N)
    W2 = theta_scale * rng.standard_normal((N, N))
    X = rng.standard_normal((5, 3))
    y = rng.integers(0, 3, 5)
    record = checkpoint_record(W1, W2, W3, X, y, 2, 5e-3, activation)
    assert all(record.sound_ok)
    assert record.g_hat == pytest.approx(record.frob_sq / N)
