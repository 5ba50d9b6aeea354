"""Theorem 5.7 (ii): near a minimiser of the elastic-net objective every mask's penalty is controlled
by its budget (THEORY.md 4, "Check (ii)").

The target layer of a tiny ReLU network is trained by proximal gradient on
``J(A) = L_CE(A) + lambda2 ||A||_F^2 + lambda1 ||A||_1`` (other layers frozen).  At the end, for random
masks, ``eps_theta`` at ``theta = 1 - h`` (``h = 1e-4``) is small and
``lambda2 (2 - h) ||R||_F^2 + lambda1 ||R||_1 <= B_T(R) + eps_theta`` holds with Method D budgets.
"""

import numpy as np
import torch

from certs.splits import mask_split
from certs.stationarity import stationarity_certificate
from verification.theorems.networks import ReluAbsMLP

LAMBDA1, LAMBDA2, STEP, ITERATIONS, H = 0.005, 0.01, 0.5, 1500, 1e-4


def proximal_gradient(mlp: ReluAbsMLP, index: int, X: np.ndarray, labels: np.ndarray) -> ReluAbsMLP:
    """``A <- soft(A - STEP (grad L_CE + 2 lambda2 A), STEP lambda1)`` on layer ``index`` only."""
    x, y = torch.from_numpy(X), torch.from_numpy(labels)
    weight = mlp.layers[index].weight
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: thread hand-off would dominate
    try:
        for _ in range(ITERATIONS):
            loss = torch.nn.functional.cross_entropy(mlp(x), y)
            (grad,) = torch.autograd.grad(loss, weight)
            with torch.no_grad():
                moved = weight - STEP * (grad + 2 * LAMBDA2 * weight)
                weight.copy_(torch.sign(moved) * torch.clamp(moved.abs() - STEP * LAMBDA1, min=0.0))
    finally:
        torch.set_num_threads(threads)
    return mlp


def max_epsilon_over_masks(mlp: ReluAbsMLP, X, labels, rng, n_masks: int = 30) -> float:
    """Largest ``eps_theta`` over random masks, asserting the pointwise Theorem 5.7 bound for each."""
    view = mlp.layer_view(1, X, labels)
    epsilons = []
    for _ in range(n_masks):
        split = mask_split(view.weight, rng.random(view.weight.shape) < 0.5)
        r = stationarity_certificate(view, split, "D", LAMBDA1, LAMBDA2, theta=1 - H)
        assert r.bound_holds, (r.realized, r.bound.value)
        epsilons.append(r.epsilon_theta)
    return max(epsilons)


def test_near_a_minimiser_every_mask_penalty_is_controlled_by_its_budget():
    rng = np.random.default_rng(0)
    X, labels = rng.standard_normal((12, 3)), rng.integers(0, 3, 12)
    mlp = ReluAbsMLP([3, 6, 5, 3], activation="relu", final_activation=False, seed=3)
    before = max_epsilon_over_masks(mlp, X, labels, np.random.default_rng(1))
    after = max_epsilon_over_masks(proximal_gradient(mlp, 1, X, labels), X, labels, np.random.default_rng(1))
    print(f"max eps_theta over masks: before training {before:.3g}, after {after:.3g}")
    assert before > 1e-2  # a random network is far from stationary along some masks
    assert after < 1e-3 * max(before, 1.0)  # near the minimiser the one-sided slope along every mask is ~0
