"""Full-batch gradient descent on the target layer of the three-layer network (THEORY.md 7.1, 10 E8).

Objective (THEORY.md 1.5, only ``W_2`` trained, ``W_1, W_3`` frozen, no biases):

    J(W_2) = L_CE(W_2) + lambda ||W_2||_F^2,   X(s) = act(W_3 act(W_2 nu_s)),   nu_s = act(W_1 s).

Closed-form gradient (``Y`` one-hot labels, ``p = softmax(X)``, ``act'`` = ``1{z > 0}`` for ReLU, ``sign z`` for abs):

    G_3 = (p - Y)/|T| * act'(z_3),   G_2 = (G_3 W_3) * act'(z_2),   grad J = G_2^T nu + 2 lambda W_2,

with ``z_2 = nu W_2^T`` and ``z_3 = act(z_2) W_3^T`` (rows = samples).  Step: ``W_2 <- W_2 - step * grad J``.
The CE part touches only the columns where some ``nu_s`` is non-zero (exactly; in the embedded variant
``d`` columns), so it is computed on those columns; the decay ``(1 - 2 step lambda) W_2`` is applied to all.

The stationarity reached is reported as ``||grad J(W_2)||_F`` at every checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from rmt.errors import InvalidParameterError

from .embedded_network import activate

__all__ = ["TrainingTrace", "objective_gradient", "train_target_layer"]


@dataclass(frozen=True, eq=False)
class TrainingTrace:
    """``W_2(t)`` at the checkpoints ``t`` and ``||grad J(W_2(t))||_F`` there."""

    steps: tuple[int, ...]
    weights: tuple[np.ndarray, ...]
    gradient_norms: tuple[float, ...]


def _derivative(z: np.ndarray, activation: str) -> np.ndarray:
    return (z > 0).astype(np.float64) if activation == "relu" else np.sign(z)


def _ce_gradient_live(W2_live: np.ndarray, nu_live: np.ndarray, W3: np.ndarray, onehot: np.ndarray,
                      activation: str) -> np.ndarray:
    """``G_2^T nu`` restricted to the live columns (``W2_live = W_2[:, live]``, ``nu_live = nu[:, live]``)."""
    z2 = nu_live @ W2_live.T
    z3 = activate(z2, activation) @ W3.T
    logits = activate(z3, activation)
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    p = shifted / shifted.sum(axis=1, keepdims=True)
    g3 = (p - onehot) / onehot.shape[0] * _derivative(z3, activation)
    g2 = (g3 @ W3) * _derivative(z2, activation)
    return g2.T @ nu_live


def _setup(W1, W3, X, labels, activation):
    if activation not in ("relu", "abs"):
        raise InvalidParameterError(f"activation must be 'relu' or 'abs', got {activation!r}")
    nu = activate(np.asarray(X, dtype=np.float64) @ W1.T, activation)
    live = np.flatnonzero(np.any(nu != 0.0, axis=0))
    onehot = np.eye(W3.shape[0])[np.asarray(labels)]
    return nu[:, live], live, onehot


def objective_gradient(W1, W2, W3, X, labels, lam: float, activation: str = "relu") -> np.ndarray:
    """``grad J(W_2) = G_2^T nu + 2 lambda W_2`` (module docstring)."""
    nu_live, live, onehot = _setup(W1, W3, X, labels, activation)
    grad = 2.0 * lam * np.array(W2, dtype=np.float64)
    grad[:, live] += _ce_gradient_live(W2[:, live], nu_live, W3, onehot, activation)
    return grad


def train_target_layer(W1: np.ndarray, W2: np.ndarray, W3: np.ndarray, X: np.ndarray, labels: np.ndarray,
                       lam: float, step: float, checkpoints: Sequence[int], activation: str = "relu") -> TrainingTrace:
    """Gradient descent ``W_2 <- (1 - 2 step lam) W_2 - step G_2^T nu`` up to ``max(checkpoints)`` steps."""
    checkpoints = sorted({int(c) for c in checkpoints})
    if not checkpoints or checkpoints[0] < 0:
        raise InvalidParameterError(f"checkpoints must be non-negative step counts, got {checkpoints!r}")
    if not (lam >= 0 and step > 0 and np.isfinite(lam) and np.isfinite(step)):
        raise InvalidParameterError(f"need lam >= 0 and step > 0, got lam={lam!r}, step={step!r}")
    nu_live, live, onehot = _setup(W1, W3, X, labels, activation)
    W = np.array(W2, dtype=np.float64)
    decay = 1.0 - 2.0 * step * lam
    saved, norms = [], []
    for t in range(checkpoints[-1] + 1):
        ce_grad = _ce_gradient_live(W[:, live], nu_live, W3, onehot, activation)
        if t in checkpoints:
            grad = 2.0 * lam * W
            grad[:, live] += ce_grad
            saved.append(W.copy())
            norms.append(float(np.linalg.norm(grad)))
        if t == checkpoints[-1]:
            break
        if decay != 1.0:
            W *= decay
        W[:, live] -= step * ce_grad
    return TrainingTrace(tuple(checkpoints), tuple(saved), tuple(norms))
