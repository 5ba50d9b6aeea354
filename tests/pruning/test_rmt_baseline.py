"""Classical RMT baseline (ALGORITHMS.md 2.4)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, strategies as st
from torch import nn

from pruning.errors import PruningParameterError
from pruning.rmt_baseline import (
    SV_FLOOR, classical_rmt, cycle_counts, cycle_rate, haar_sv_sparsify, largest_remainder, randomness_score,
    spike_only_reconstruction, sv_sparsify, sv_thresholds,
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
    mask = classical_rmt(model, 0.33)
    total = mask.sparsity_report().total
    assert mask.sparsity_report().zeros == math.floor(0.33 * total)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert mask.provenance.options["grid"][-1] == 0.33
    history = mask.provenance.options["history"]
    assert [h["theta_on"] for h in history] == [i % 2 == 0 for i in range(1, len(history) + 1)]


def test_classical_rmt_inplace_writes_recomposed_pruned_weights():
    model = mlp()
    mask = classical_rmt(model, 0.2, inplace=True)
    for name, module in model.named_modules():
        if name in mask.keep:
            assert torch.equal(module.weight != 0, mask.keep[name])
    calls = []
    classical_rmt(mlp(), 0.12, finetune=lambda net, m: calls.append(m.provenance.sparsity))
    assert calls == [0.05, 0.1, 0.12]
