"""Synthetic networks (verification/theorems/networks.py): layer views, copies, the spiked Gaussian generators."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, strategies as st

from certs.layer_view import ActivationOp, AffineOp, LayerView, PiecewiseLinearTail
from rmt.errors import InvalidMatrixError, InvalidParameterError
from verification.theorems.networks import (
    ReluAbsMLP,
    gaussian_rectangular_split,
    spiked_gaussian_network,
)
from verification.theorems.strategies import datasets, mlps, weight_arrays


@st.composite
def mlp_with_data(draw):
    mlp = draw(mlps())
    X, labels = draw(datasets(mlp.widths[0], mlp.widths[-1]))
    return mlp, X, labels


@given(mlp_with_data())
def test_every_layer_view_reproduces_the_forward_pass(case):
    mlp, X, labels = case
    dense = mlp.logits_np(X)
    with torch.no_grad():
        torch_logits = mlp(torch.from_numpy(X)).numpy()
    assert np.allclose(torch_logits, dense, rtol=0, atol=1e-12 * max(1.0, np.abs(dense).max()))
    for index in range(mlp.n_layers):
        view = mlp.layer_view(index, X, labels)
        assert np.abs(view.logits() - dense).max() <= 1e-12 * max(1.0, np.abs(dense).max())
        assert isinstance(view.tail, PiecewiseLinearTail)
        first = view.tail.ops[0]
        assert np.array_equal(first.weight, np.eye(view.weight.shape[0]))
        assert np.array_equal(first.bias, mlp.biases()[index])


@given(mlp_with_data(), st.data())
def test_with_weight_returns_a_new_network_and_never_mutates(case, data):
    mlp, X, labels = case
    index = data.draw(st.integers(0, mlp.n_layers - 1))
    before = [w.copy() for w in mlp.weights()]
    new_weight = data.draw(weight_arrays(before[index].shape))
    changed = mlp.with_weight(index, new_weight)
    assert changed is not mlp
    assert all(np.array_equal(a, b) for a, b in zip(mlp.weights(), before))
    assert np.array_equal(changed.weights()[index], new_weight)
    view = mlp.layer_view(index, X, labels)
    assert np.abs(changed.logits_np(X) - view.logits(new_weight)).max() <= 1e-12 * max(
        1.0, np.abs(changed.logits_np(X)).max()
    )


def test_final_activation_flag_controls_the_sign_of_logits():
    weights = [np.array([[1.0, -2.0]]), np.array([[-1.0], [2.0]])]
    biases = [np.zeros(1), np.array([0.0, -5.0])]
    X = np.array([[1.0, 0.0]])
    with_final = ReluAbsMLP.from_weights(weights, biases, "relu", final_activation=True)
    without = ReluAbsMLP.from_weights(weights, biases, "relu", final_activation=False)
    assert np.array_equal(with_final.logits_np(X), [[0.0, 0.0]])
    assert np.array_equal(without.logits_np(X), [[-1.0, -3.0]])
    absolute = ReluAbsMLP.from_weights(weights, biases, "abs", final_activation=True)
    assert np.array_equal(absolute.logits_np(X), [[1.0, 3.0]])


def test_a_tail_that_forgets_the_target_bias_is_caught_by_the_consistency_check():
    """Known-bad variant: psi_2 without AffineOp(I, beta_index) disagrees with the forward pass."""
    mlp = ReluAbsMLP.from_weights(
        [np.array([[1.0, 1.0], [0.5, -1.0]]), np.array([[1.0, 2.0], [2.0, 1.0]])],
        [np.array([0.7, -0.3]), np.array([0.1, 0.2])],
        "relu",
    )
    X = np.array([[1.0, 2.0], [-1.0, 0.5]])
    good = mlp.layer_view(0, X, np.array([0, 1]))
    bad_tail = PiecewiseLinearTail(
        (AffineOp(np.eye(2), np.zeros(2)), ActivationOp("relu")) + good.tail.ops[2:]
    )
    bad = LayerView(good.name, good.weight, good.inputs, good.labels, bad_tail)
    assert np.abs(good.logits() - mlp.logits_np(X)).max() <= 1e-12
    assert np.abs(bad.logits() - mlp.logits_np(X)).max() > 1e-3


def test_bad_arguments_raise_typed_errors_that_name_them():
    mlp = ReluAbsMLP([2, 3, 2], seed=1)
    with pytest.raises(InvalidParameterError, match="activation"):
        ReluAbsMLP([2, 2], activation="tanh")
    with pytest.raises(InvalidParameterError, match="index"):
        mlp.layer_view(2, np.zeros((1, 2)), np.zeros(1, dtype=int))
    with pytest.raises(InvalidMatrixError, match="weight"):
        mlp.with_weight(0, np.zeros((2, 2)))
    with pytest.raises(InvalidMatrixError, match="weights\\[1\\]"):
        ReluAbsMLP.from_weights([np.zeros((3, 2)), np.zeros((2, 4))])
    with pytest.raises(InvalidParameterError, match="X"):
        mlp.logits_np(np.zeros((1, 5)))


# ---------------------------------------------------------------------- spiked Gaussian network


def test_generic_spiked_network_has_the_requested_spikes_and_shapes():
    net = spiked_gaussian_network(d=4, K=3, N=40, r=2, sigma=[3.0, 1.5], g=0.5, seed=3)
    assert net.mlp.widths == [4, 40, 40, 3]
    assert not net.mlp.has_bias
    assert np.allclose(np.linalg.svd(net.S2, compute_uv=False)[:3], [3.0, 1.5, 0.0], atol=1e-12)
    assert np.array_equal(net.mlp.weights()[1], net.S2 + net.R2)
    s = np.array([[1.0, -1.0, 0.5, 2.0]])
    expected = np.abs(net.W3).sum(axis=1).max() * np.linalg.norm(net.W1 @ s[0]) * np.sqrt(np.log(80) / 40)
    assert np.isclose(net.a_scale(s)[0], expected, rtol=1e-14)
    view = net.target_view(s, np.array([0]))
    assert np.abs(view.logits() - net.mlp.logits_np(s)).max() <= 1e-12


def test_noise_is_drawn_last_from_its_own_stream():
    """Pitfall 18: W1, S2, W3 do not depend on g and R2 / sqrt(g) is the same Z for every g."""
    a = spiked_gaussian_network(d=3, K=2, N=30, r=1, sigma=[2.0], g=0.25, seed=7)
    b = spiked_gaussian_network(d=3, K=2, N=30, r=1, sigma=[2.0], g=1.0, seed=7)
    for name in ("W1", "S2", "W3"):
        assert np.array_equal(getattr(a, name), getattr(b, name))
    assert np.allclose(a.R2 / np.sqrt(0.25), b.R2 / np.sqrt(1.0), rtol=1e-14, atol=0)
    zero = spiked_gaussian_network(d=3, K=2, N=30, r=1, sigma=[2.0], g=0.0, seed=7)
    assert not np.any(zero.R2)


def test_noise_variance_is_g_over_rows():
    """Pitfall 5: entries of R have variance g/n with n = rows; the columns reading g/m is off by m/n = 8."""
    g, n, m = 0.5, 50, 400
    split = gaussian_rectangular_split(n, m, g, sigma=[4.0, 2.0], seed=11)
    ratio = split.R.var() * n / g
    assert abs(ratio - 1.0) < 0.05  # 20,000 entries: standard error of the variance ~1%
    assert abs(split.R.var() * m / g - 1.0) > 1.0  # known-bad reading g/m is rejected
    assert np.allclose(np.linalg.svd(split.S, compute_uv=False)[:3], [4.0, 2.0, 0.0], atol=1e-12)
    sparse = gaussian_rectangular_split(n, m, g, density=0.1, seed=11)
    assert 0.05 < np.mean(sparse.S != 0) < 0.15


def test_embedded_variant_scales_do_not_depend_on_N():
    s = np.array([[1.0, 0.5, -2.0], [0.0, 1.0, 1.0]])
    small = spiked_gaussian_network(d=3, K=2, N=20, r=2, sigma=[2.0, 1.0], g=1.0, variant="embedded", seed=5)
    large = spiked_gaussian_network(d=3, K=2, N=320, r=2, sigma=[2.0, 1.0], g=1.0, variant="embedded", seed=5)
    for net in (small, large):
        assert np.allclose(np.linalg.svd(net.S2, compute_uv=False)[:3], [2.0, 1.0, 0.0], atol=1e-12)
        assert not np.any(net.W1[3:]) and not np.any(net.W3[:, 2:])
        assert not np.any(net.S2[2:]) and not np.any(net.S2[:, 3:])
    assert np.isclose(np.linalg.norm(small.S2), np.linalg.norm(large.S2), rtol=1e-14)
    unscaled = [net.a_scale(s) / np.sqrt(np.log(2 * net.N) / net.N) for net in (small, large)]
    assert np.allclose(unscaled[0], unscaled[1], rtol=1e-14)
    assert np.all(large.a_scale(s) < small.a_scale(s))


def test_spiked_network_rejects_inconsistent_parameters():
    with pytest.raises(InvalidParameterError, match="sigma"):
        spiked_gaussian_network(d=3, K=2, N=10, r=2, sigma=[1.0], g=0.5)
    with pytest.raises(InvalidParameterError, match="embedded"):
        spiked_gaussian_network(d=2, K=2, N=10, r=3, sigma=[1.0] * 3, g=0.5, variant="embedded")
    with pytest.raises(InvalidParameterError, match="g"):
        spiked_gaussian_network(d=2, K=2, N=10, r=1, sigma=[1.0], g=-1.0)
    with pytest.raises(InvalidParameterError, match="variant"):
        spiked_gaussian_network(d=2, K=2, N=10, r=1, sigma=[1.0], g=0.5, variant="other")
