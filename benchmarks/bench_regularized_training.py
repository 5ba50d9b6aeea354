"""Benchmark of E8's training loop (THEORY.md 10 E8): closed-form numpy gradient descent against torch autograd.

Embedded three-layer network at ``N = 1024`` (``d = 4``, ``K = 3``, ``|T| = 16``), ``STEPS`` full-batch steps on
``L_CE + lambda ||W_2||_F^2``: :func:`verification.asymptotics.regularized_training.train_target_layer` (gradient in
closed form, CE part on the live columns only) against the same descent written with ``torch.autograd`` on the full
``W_2`` (the baseline), both with BLAS on one thread.  Records the seconds per step, the projected time of E8's
3000 steps and the speed-up, and checks that both reach the same weights.

Run with ``bash scripts/bench.sh benchmarks/bench_regularized_training.py``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from threadpoolctl import threadpool_limits

from timing import median_time
from verification.asymptotics.embedded_network import chain_logits, embedded_three_layer
from verification.asymptotics.regularized_training import train_target_layer

N, STEPS, REPEATS, LAM, STEP = 1024, 200, 3, 5e-3, 0.5


@pytest.fixture(scope="module")
def problem():
    net = embedded_three_layer(4, 3, N, 3, [3.0, 2.0, 1.0], 0.8, seed=0)
    X = np.random.default_rng(1).standard_normal((16, 4))
    return net.weights, X, np.argmax(chain_logits(net.weights, X, "relu"), axis=1)


def autograd_descent(weights, X, labels) -> np.ndarray:
    W1, W2, W3 = (torch.from_numpy(w) for w in weights)
    x, y = torch.from_numpy(X), torch.from_numpy(labels)
    W = W2.clone().requires_grad_(True)
    nu = torch.relu(x @ W1.T)
    for _ in range(STEPS):
        loss = torch.nn.functional.cross_entropy(torch.relu(torch.relu(nu @ W.T) @ W3.T), y) + LAM * (W * W).sum()
        (grad,) = torch.autograd.grad(loss, W)
        with torch.no_grad():
            W -= STEP * grad
    return W.detach().numpy()


def test_closed_form_against_autograd(problem, record_property):
    weights, X, y = problem
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(limits=1, user_api="blas"):
            ours = lambda: train_target_layer(*weights, X, y, LAM, STEP, [STEPS]).weights[-1]  # noqa: E731
            t_ours = median_time(ours, REPEATS)
            t_torch = median_time(lambda: autograd_descent(weights, X, y), REPEATS)
            np.testing.assert_allclose(ours(), autograd_descent(weights, X, y), rtol=1e-9, atol=1e-12)
    finally:
        torch.set_num_threads(threads)
    per_step = {"closed_form_s_per_step": t_ours / STEPS, "autograd_s_per_step": t_torch / STEPS}
    for key, value in {**per_step, "projected_3000_steps_s": 3000 * t_ours / STEPS,
                       "speedup": t_torch / t_ours}.items():
        record_property(key, value)
    print(f"\nE8 training at N={N}: {per_step}, 3000 steps ~{3000 * t_ours / STEPS:.2f}s, speed-up "
          f"{t_torch / t_ours:.2f}x")
