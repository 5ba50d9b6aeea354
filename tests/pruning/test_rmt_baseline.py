"""Classical RMT baseline (ALGORITHMS.md 2.4)."""

from __future__ import annotations

import inspect
import math

import numpy as np
import pytest
import torch
from hypothesis import given, strategies as st
from torch import nn

from pruning.errors import PruningParameterError
from pruning.finetune import FinetuneConfig
from pruning.rmt_baseline import (
    SV_FLOOR, RegulariserConfig, classical_rmt, cycle_counts, cycle_rate, haar_sv_sparsify, largest_remainder,
    lasso_strength, randomness_score, regulariser_loss, regulariser_step, spike_only_reconstruction, sv_sparsify,
    sv_thresholds,
)
from rmt.fit import fit_mp


@given(seed=st.integers(0, 10_000), d_out=st.integers(2, 30), d_in=st.integers(2, 30))
def test_theta_zero_returns_w(seed, d_out, d_in):
    w = np.random.default_rng(seed).normal(size=(d_out, d_in))
    sigma_plus = float(np.linalg.svd(w, compute_uv=False)[0]) * 0.7
    assert np.allclose(sv_sparsify(w, sigma_plus, 0.0), w, atol=1e-12, rtol=0)
    assert np.allclose(haar_sv_sparsify(w, sigma_plus, 0.0), w, atol=1e-12, rtol=0)


def test_known_bad_positive_theta_changes_w():
    w = np.random.default_rng(0).normal(size=(20, 30))
    assert not np.allclose(sv_sparsify(w, 8.0, 50.0), w, atol=1e-6)


@given(s=st.lists(st.floats(0.0, 10.0), min_size=1, max_size=20), sigma_plus=st.floats(0.1, 10.0),
       theta=st.floats(0.0, 5.0), power=st.sampled_from([1, 3, 30]))
def test_spikes_thresholded_at_theta_floor_only(s, sigma_plus, theta, power):
    t = sv_thresholds(np.array(s), sigma_plus, theta, power)
    spikes = np.array(s) >= sigma_plus
    assert np.all(t[spikes] == theta * SV_FLOOR)
    assert np.all(t[~spikes] >= theta * SV_FLOOR)
    bulk = np.maximum(SV_FLOOR, (1 - np.array(s)[~spikes] / sigma_plus) ** power) * theta
    assert np.allclose(t[~spikes], bulk, rtol=1e-12, atol=0)


def test_known_bad_spike_threshold_with_bulk_formula():
    # a threshold that applied the bulk rule to a spike (s > sigma_+) would not equal theta * floor
    s, sigma_plus, theta = np.array([3.0]), 1.0, 2.0
    wrong = theta * max(SV_FLOOR, abs(1 - s[0] / sigma_plus) ** 3)
    assert sv_thresholds(s, sigma_plus, theta, 3)[0] != wrong


def spiked(seed: int, rank: int = 3):
    rng = np.random.default_rng(seed)
    d_out, d_in = 120, 300
    noise = rng.normal(0, 1 / math.sqrt(d_in), size=(d_out, d_in))
    u = np.linalg.qr(rng.normal(size=(d_out, rank)))[0]
    v = np.linalg.qr(rng.normal(size=(d_in, rank)))[0]
    return noise + (u * np.linspace(6, 4, rank)) @ v.T


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_spike_only_reconstruction_keeps_planted_rank(seed):
    w = spiked(seed)
    fit = fit_mp(w)
    assert fit.n_spikes == 3
    assert np.linalg.matrix_rank(spike_only_reconstruction(w, fit.sigma_plus), tol=1e-8) == 3
    # known-bad: a zero edge keeps the full rank
    assert np.linalg.matrix_rank(spike_only_reconstruction(w, 0.0), tol=1e-8) == 120


@given(nnz=st.dictionaries(st.sampled_from("abcdef"), st.integers(0, 100_000), min_size=1), cycle=st.integers(1, 30))
def test_cycle_budget_with_perfect_mp_layers(nnz, cycle):
    scores = {n: randomness_score(0.0, 1.0, cycle) for n in nnz}
    assert all(v == 1.0 for v in scores.values())
    assert cycle_counts(nnz, scores, cycle) == {n: math.floor(0.06 * 1.02**cycle * k) for n, k in nnz.items()}


def test_known_bad_fit_error_reduces_the_budget():
    nnz = {"a": 10_000}
    assert cycle_counts(nnz, {"a": randomness_score(0.5, 1.0, 1)}, 1)["a"] < math.floor(cycle_rate(1) * 10_000)
    with pytest.raises(PruningParameterError, match="cycle"):
        cycle_rate(0)


@given(total=st.integers(0, 500), shares=st.lists(st.floats(0.0, 10.0), min_size=1, max_size=6),
       caps=st.lists(st.integers(0, 200), min_size=6, max_size=6))
def test_largest_remainder_places_exactly_total_within_caps(total, shares, caps):
    names = [f"l{i}" for i in range(len(shares))]
    cap = dict(zip(names, caps))
    if total > sum(cap.values()):
        with pytest.raises(PruningParameterError):
            largest_remainder(total, dict(zip(names, shares)), cap)
        return
    counts = largest_remainder(total, dict(zip(names, shares)), cap)
    assert sum(counts.values()) == total
    assert all(0 <= counts[n] <= cap[n] for n in names)


def mlp() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(24, 48), nn.ReLU(), nn.Linear(48, 32), nn.ReLU(), nn.Linear(32, 8))


def test_classical_rmt_exact_sparsity_and_no_mutation():
    model = mlp()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    mask = classical_rmt(model, 0.33, compat="reference", regulariser=RegulariserConfig(steps=2))
    total = mask.sparsity_report().total
    assert mask.sparsity_report().zeros == math.floor(0.33 * total)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert mask.provenance.options["grid"][-1] == 0.33
    history = mask.provenance.options["history"]
    assert [h["theta_on"] for h in history] == [i % 2 == 0 for i in range(1, len(history) + 1)]


def training_data(n=64):
    g = torch.Generator().manual_seed(1)
    return torch.randn(n, 24, generator=g), torch.randint(0, 8, (n,), generator=g)


def test_default_compat_is_paper_and_needs_training_data():
    assert inspect.signature(classical_rmt).parameters["compat"].default == "paper"
    with pytest.raises(PruningParameterError, match="data: compat='paper'"):
        classical_rmt(mlp(), 0.2)
    with pytest.raises(PruningParameterError, match="compat"):
        classical_rmt(mlp(), 0.2, compat="authors")
    with pytest.raises(PruningParameterError, match="regulariser.steps"):
        RegulariserConfig(steps=-1)


@pytest.mark.parametrize("compat", ["paper", "reference"])
def test_post_pruning_step_runs_at_every_grid_point_and_keeps_the_mask_exact(compat):
    model = mlp()
    options = ({"data": training_data(), "finetune_config": FinetuneConfig(batch_size=32)} if compat == "paper"
               else {"regulariser": RegulariserConfig(steps=5, lr=1e-2)})
    mask = classical_rmt(model, 0.12, compat=compat, inplace=True, **options)
    history = mask.provenance.options["history"]
    assert [h["sparsity"] for h in history] == [0.05, 0.1, 0.12]
    expected_kind, expected_steps = ("finetune", 2) if compat == "paper" else ("regulariser", 5)
    assert all(h["post_prune"] == {**h["post_prune"], "kind": expected_kind, "steps": expected_steps} for h in history)
    assert mask.provenance.options["compat"] == compat
    total = mask.sparsity_report().total
    assert mask.sparsity_report().zeros == math.floor(0.12 * total)
    for name, module in model.named_modules():
        if name in mask.keep:
            assert torch.equal(module.weight != 0, mask.keep[name])  # pruned entries exactly 0, kept ones not


def test_the_two_compat_steps_give_different_weights():
    paper, reference = mlp(), mlp()
    classical_rmt(paper, 0.1, compat="paper", data=training_data(), inplace=True,
                  finetune_config=FinetuneConfig(lr=1e-2))
    classical_rmt(reference, 0.1, compat="reference", inplace=True, regulariser=RegulariserConfig(steps=3, lr=1e-2))
    assert not torch.equal(paper[0].weight, reference[0].weight)


def test_lasso_strength_formula():
    assert lasso_strength(0.0, 3) == 1.0
    assert lasso_strength(0.02, 4) == pytest.approx(1 / (1 + 1e4 * 0.02 / 4), rel=1e-15)
    assert lasso_strength(0.02, 4) != pytest.approx(1 / (1 + 1e4 * 0.02 * 4))  # known-bad: err * i


def test_regulariser_loss_matches_the_formula_and_decreases():
    model = mlp()
    modules = {"0": model[0], "2": model[2]}
    config = RegulariserConfig(lasso_scale=1e-2, l1=1e-3, l2=1e-3, steps=20, lr=1e-2)
    strengths = {"0": 0.5, "2": 0.25}
    expected = sum(strengths[n] * 1e-2 * np.linalg.norm(m.weight.detach().numpy())
                   + 1e-3 * np.abs(m.weight.detach().numpy()).sum() + 1e-3 * (m.weight.detach().numpy() ** 2).sum()
                   for n, m in modules.items())
    assert float(regulariser_loss(modules, strengths, config).detach()) == pytest.approx(expected, rel=1e-6)
    # known-bad: dropping the per-layer strength changes the value
    assert float(regulariser_loss(modules, {"0": 1.0, "2": 1.0}, config).detach()) != pytest.approx(expected, rel=1e-6)
    keep = {n: m.weight.detach().abs() > 0.05 for n, m in modules.items()}
    with torch.no_grad():
        for n, m in modules.items():
            m.weight.mul_(keep[n])
    losses = regulariser_step(modules, keep, strengths, config)
    assert len(losses) == 20 and losses[-1] < losses[0]
    assert all(torch.equal(m.weight != 0, keep[n]) for n, m in modules.items())
    assert all(m.weight.requires_grad for m in modules.values())


def loop_haar(w, sigma_plus, z, swap_dims=False):
    """2.2 (c) written as loops; ``swap_dims`` is a known-bad variant (sqrt(d_in) on U, sqrt(d_out) on V)."""
    d_out, d_in = w.shape
    du, dv = (d_in, d_out) if swap_dims else (d_out, d_in)
    u, s, vt = np.linalg.svd(w, full_matrices=False)
    for i in range(s.size):
        g = (1 - s[i] / sigma_plus) ** 3 if s[i] < sigma_plus else 0.0
        for j in range(d_out):
            if abs(u[j, i]) < z * g / math.sqrt(du):
                u[j, i] = 0.0
        for j in range(d_in):
            if abs(vt[i, j]) < z * g / math.sqrt(dv):
                vt[i, j] = 0.0
    return u @ np.diag(s) @ vt


def test_haar_sv_sparsify_matches_the_loop_formula():
    w = spiked(4, rank=2)[:40, :90]
    s = np.linalg.svd(w, compute_uv=False)
    sigma_plus, z = float(s[2]), 0.8
    expected = loop_haar(w, sigma_plus, z)
    assert not np.allclose(expected, w, atol=1e-6)  # the thresholds bite
    np.testing.assert_allclose(haar_sv_sparsify(w, sigma_plus, z), expected, atol=1e-12)
    assert not np.allclose(haar_sv_sparsify(w, sigma_plus, z), loop_haar(w, sigma_plus, z, swap_dims=True), atol=1e-6)
    # spikes (s_i >= sigma_+) are never thresholded: with the edge below the whole spectrum nothing changes
    np.testing.assert_allclose(haar_sv_sparsify(w, s[-1], 100.0), w, atol=1e-12)


def test_an_all_zero_layer_under_the_reference_regulariser_stays_finite():
    """Known-bad: ``d sqrt(sum W^2) / dW`` at ``W = 0`` is NaN, so the zero layer was reported as having NaN weights."""
    from torch import nn

    from pruning.rmt_baseline import RegulariserConfig, classical_rmt

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(24, 24), nn.Linear(24, 24), nn.Linear(24, 4))
    with torch.no_grad():
        model[1].weight.zero_()
    mask = classical_rmt(model, 0.5, compat="reference", regulariser=RegulariserConfig(steps=2))
    assert set(mask.keep) == {"0", "1", "2"} and not bool(mask.keep["1"].any())
