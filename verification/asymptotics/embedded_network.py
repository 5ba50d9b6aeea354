"""Bias-free ReLU/abs chains for the network experiments E6–E8, E11 (THEORY.md 7.1, 10).

* :func:`chain_logits` — ``X(s) = lambda(W_L ... lambda(W_1 s))`` (activation also after the last map,
  THEORY.md 1.3) for a batch of inputs, in float64.  Columns of a weight that only ever meet a zero
  input coordinate contribute exactly 0, so they are skipped (an exact saving, not an approximation:
  in the embedded variant ``lambda(W_1 s)`` is zero outside ``d`` coordinates).
* :func:`regularized_loss` — ``L(alpha) = L_CE(alpha) + lambda_reg sum_i ||W_i||_F^2`` (THEORY.md 1.5).
* :func:`embedded_three_layer` — the embedded variant of THEORY.md 7.1 at any width ``N``: the weights of
  :func:`verification.theorems.networks.spiked_gaussian_weights` without the torch module of
  :func:`verification.theorems.networks.spiked_gaussian_network` (which costs seconds at ``N = 4096``).  The small
  blocks ``B, C, G`` do not depend on ``N``; E7's network takes them from the generator at ``N = d``.
* :func:`embedded_four_layer` — E7's network: ``W_1 = [B; 0]``, ``W_2 = S_2 + R_2`` (``G_2`` in the top-left
  ``r_0 x d`` block), ``W_3 = S_3 + R_3`` (``G_3`` in the top-left ``r_0 x r_0`` block), ``W_4 = [C 0]``;
  ``R_2, R_3`` iid ``N(0, g/N)`` drawn last from their own streams (pitfall 18).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from certs.classification import mean_cross_entropy
from rmt.bounds import round_up
from rmt.errors import InvalidParameterError
from verification.theorems.networks import check_activation, haar_frame, spiked_gaussian_weights

__all__ = [
    "EmbeddedSetting",
    "EmbeddedNetwork",
    "activate",
    "chain_logits",
    "live_product",
    "regularized_loss",
    "method_g_constant",
    "embedded_three_layer",
    "embedded_four_layer",
]


def activate(x: np.ndarray, activation: str) -> np.ndarray:
    """Coordinatewise ReLU or absolute value."""
    return np.maximum(x, 0.0) if activation == "relu" else np.abs(x)


def chain_logits(weights: Sequence[np.ndarray], X: np.ndarray, activation: str) -> np.ndarray:
    """Logits ``(|T|, K)`` of the bias-free chain ``lambda o W_L o ... o lambda o W_1`` on the rows of ``X``."""
    h = np.asarray(X, dtype=np.float64)
    for w in weights:
        h = activate(live_product(h, w), activation)
    return h


def live_product(h: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``h @ w.T`` summing only over the columns where some row of ``h`` is non-zero (exact)."""
    live = np.flatnonzero(np.any(h != 0.0, axis=0))
    if live.size == h.shape[1]:
        return h @ w.T
    return h[:, live] @ w[:, live].T


def regularized_loss(weights: Sequence[np.ndarray], X: np.ndarray, labels: np.ndarray, lam: float,
                     activation: str) -> float:
    """``L(alpha) = L_CE + lam sum_i ||W_i||_F^2`` (THEORY.md 1.5, all layers penalised)."""
    ce = float(mean_cross_entropy(chain_logits(weights, X, activation), labels))
    return ce + lam * sum(float(np.vdot(w, w)) for w in weights)


def method_g_constant(downstream: Sequence[np.ndarray]) -> float:
    """Method G (THEORY.md 3.2) for ``psi_2 = lambda o W_k o ... o lambda``: ``prod ||W||_inf`` rounded up."""
    terms = sum(w.shape[1] + 1 for w in downstream) + len(downstream)
    return round_up(float(np.prod([np.abs(w).sum(axis=1).max() for w in downstream])), terms=terms)


@dataclass(frozen=True)
class EmbeddedSetting:
    """The fixed part of the embedded generator of THEORY.md 7.1 / 10 (E6–E8, E11): input dimension ``d``,
    classes ``K``, signal rank ``r``, noise variance factor ``g``, regulariser ``lam``, ``|T|`` = ``n_samples``,
    spikes ``sigma`` of ``S_2`` and the activation."""

    d: int = 4
    K: int = 3
    r: int = 3
    g: float = 0.8
    lam: float = 1e-3
    n_samples: int = 8
    sigma: tuple[float, ...] = (3.0, 2.0, 1.0)
    activation: str = "relu"


@dataclass(frozen=True, eq=False)
class EmbeddedNetwork:
    """A bias-free chain with additive splits ``W_i = S_i + R_i`` of its noisy layers.

    ``weights`` are the dense weights; ``structured[i]`` / ``removed[i]`` are ``S_i`` / ``R_i`` for every
    index in ``structured`` (the layers that carry Gaussian noise).
    """

    weights: tuple[np.ndarray, ...]
    structured: dict[int, np.ndarray]
    removed: dict[int, np.ndarray]
    activation: str
    g: float

    @property
    def N(self) -> int:
        return self.weights[0].shape[0]

    def replaced(self, index: int, weight: np.ndarray) -> tuple[np.ndarray, ...]:
        """The weights with ``W_index`` replaced (the others shared, never mutated)."""
        ws = list(self.weights)
        ws[index] = weight
        return tuple(ws)


def _embedded_blocks(d: int, K: int, r: int, sigma, activation: str, seed: int):
    """``(B, C, G)`` of the reference generator; they do not depend on ``N`` (THEORY.md 7.1)."""
    check_activation(activation)
    W1, S2, _, W3, _, _ = spiked_gaussian_weights(d, K, d, r, sigma, 0.0, "embedded", seed=seed)
    return W1[:d].copy(), W3[:, :r].copy(), S2[:r, :d].copy()


def embedded_three_layer(d: int, K: int, N: int, r: int, sigma, g: float, activation: str = "relu",
                         seed: int = 0) -> EmbeddedNetwork:
    """THEORY.md 7.1 embedded variant: ``W_1 = [B; 0]``, ``W_2 = S_2 + R_2``, ``W_3 = [C 0]``, drawn by
    :func:`verification.theorems.networks.spiked_gaussian_weights` (the same draws as the reference generator)."""
    check_activation(activation)
    W1, S2, R2, W3, _, g = spiked_gaussian_weights(d, K, N, r, sigma, g, "embedded", seed=seed)
    return EmbeddedNetwork((W1, S2 + R2, W3), {1: S2}, {1: R2}, activation, float(g))


def embedded_four_layer(d: int, K: int, N: int, r: int, sigma2, sigma3, g: float, activation: str = "relu",
                        seed: int = 0) -> EmbeddedNetwork:
    """E7's embedded four-layer network (module docstring); ``sigma3`` are the singular values of ``G_3``."""
    N = int(N)
    if N < d:
        raise InvalidParameterError(f"N must be >= d = {d} for the embedded variant, got N={N}")
    s3 = np.asarray(sigma3, dtype=np.float64)
    if s3.shape != (r,) or not np.all(np.isfinite(s3)) or np.any(s3 < 0):
        raise InvalidParameterError(f"sigma3 must hold r = {r} finite non-negative values, got {sigma3!r}")
    B, C, G2 = _embedded_blocks(d, K, r, sigma2, activation, seed)
    path_seq, noise2, noise3 = np.random.SeedSequence([int(seed), 4]).spawn(3)
    rng = np.random.default_rng(path_seq)
    W1 = np.zeros((N, d))
    W1[:d] = B
    S2 = np.zeros((N, N))
    S2[:r, :d] = G2
    S3 = np.zeros((N, N))
    S3[:r, :r] = (haar_frame(rng, r, r) * s3) @ haar_frame(rng, r, r).T
    W4 = np.zeros((K, N))
    W4[:, :r] = C
    R2 = np.sqrt(g / N) * np.random.default_rng(noise2).standard_normal((N, N))
    R3 = np.sqrt(g / N) * np.random.default_rng(noise3).standard_normal((N, N))
    return EmbeddedNetwork((W1, S2 + R2, S3 + R3, W4), {1: S2, 2: S3}, {1: R2, 2: R3}, activation, float(g))
