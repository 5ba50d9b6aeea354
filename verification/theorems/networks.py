"""Synthetic Linear + ReLU/abs networks for the theorem checks (THEORY.md 1.3, 1.4, 7.1, 9.1, 9.3).

* :class:`ReluAbsMLP` — the paper's network form (THEORY.md 1.3)
  ``X(s) = lambda(M_L(... lambda(M_1 s)))``, ``M_k(x) = W_k x + beta_k``, ``lambda`` = ReLU or abs
  applied after every affine map, including the last one iff ``final_activation``.
  :meth:`ReluAbsMLP.layer_view` splits it around one layer ``A = W_index`` (THEORY.md 1.4):
  ``psi_1`` = layers ``< index`` with their activations, ``psi_2`` = a
  :class:`certs.layer_view.PiecewiseLinearTail` ``[AffineOp(I, beta_index), act, W_{index+1}, act, ...]``
  whose first op adds the target bias (THEORY.md 3.1).
* :func:`spiked_gaussian_network` — the spiked Gaussian three-layer network of THEORY.md 7.1
  (generic and embedded variants), no biases, target ``W_2 = S_2 + R_2`` with
  ``R_2 = sqrt(g/N) Z`` drawn last from its own random stream (pitfall 18).
* :func:`gaussian_rectangular_split` — THEORY.md 9.3: ``A = S + R``, ``R_ij ~ N(0, g/n)`` (``n`` = rows,
  pitfall 5), ``S`` low rank ``U diag(sigma) V^T`` or sparse.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Sequence

import numpy as np
import torch

from certs.layer_view import ActivationOp, AffineOp, LayerView, PiecewiseLinearTail
from rmt.errors import InvalidMatrixError, InvalidParameterError

__all__ = [
    "Activation",
    "ReluAbsMLP",
    "SpikedNetwork",
    "check_activation",
    "spiked_gaussian_weights",
    "spiked_gaussian_network",
    "GaussianSplit",
    "gaussian_rectangular_split",
    "haar_frame",
]

Activation = Literal["relu", "abs"]


def check_activation(activation: str) -> None:
    if activation not in ("relu", "abs"):
        raise InvalidParameterError(f"activation must be 'relu' or 'abs', got {activation!r}")


def _activate(x: np.ndarray, activation: str) -> np.ndarray:
    return ActivationOp(activation)(x)


class ReluAbsMLP(torch.nn.Module):
    """Fully connected network ``lambda o M_L o ... o lambda o M_1`` (THEORY.md 1.3), float64.

    Parameters
    ----------
    widths: ``[N_0, N_1, ..., N_L]``; layer ``k`` (0-based) maps ``R^{N_k} -> R^{N_{k+1}}``.
    activation: ``'relu'`` or ``'abs'``, applied after every affine map.
    final_activation: apply the activation also after the last affine map (paper default ``True``).
    bias: whether the affine maps carry biases.
    seed / generator: initialisation randomness (``U(-1/sqrt(in), 1/sqrt(in))`` like ``nn.Linear``).
    """

    def __init__(
        self,
        widths: Sequence[int],
        activation: Activation = "relu",
        final_activation: bool = True,
        bias: bool = True,
        dtype: torch.dtype = torch.float64,
        generator: torch.Generator | None = None,
        seed: int | None = None,
    ) -> None:
        super().__init__()
        widths = [int(w) for w in widths]
        if len(widths) < 2 or min(widths) < 1:
            raise InvalidParameterError(f"widths must list at least two positive sizes, got {widths}")
        check_activation(activation)
        if generator is None:
            generator = torch.Generator().manual_seed(0 if seed is None else int(seed))
        self.activation: Activation = activation
        self.final_activation = bool(final_activation)
        self.has_bias = bool(bias)
        self.layers = torch.nn.ModuleList()
        for n_in, n_out in zip(widths[:-1], widths[1:]):
            layer = torch.nn.Linear(n_in, n_out, bias=bias, dtype=dtype)
            limit = 1.0 / np.sqrt(n_in)
            with torch.no_grad():
                layer.weight.copy_((torch.rand(n_out, n_in, generator=generator, dtype=dtype) * 2 - 1) * limit)
                if bias:
                    layer.bias.copy_((torch.rand(n_out, generator=generator, dtype=dtype) * 2 - 1) * limit)
            self.layers.append(layer)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_weights(
        cls,
        weights: Sequence[np.ndarray],
        biases: Sequence[np.ndarray] | None = None,
        activation: Activation = "relu",
        final_activation: bool = True,
    ) -> "ReluAbsMLP":
        """Network with the given ``(out, in)`` weights and biases (``biases=None``: no biases)."""
        ws = [np.asarray(w, dtype=np.float64) for w in weights]
        if not ws:
            raise InvalidParameterError("weights must contain at least one matrix")
        for k, w in enumerate(ws):
            if w.ndim != 2 or w.size == 0:
                raise InvalidMatrixError(f"weights[{k}] must be a non-empty 2-D array, got shape {w.shape}")
            if not np.all(np.isfinite(w)):
                raise InvalidMatrixError(f"weights[{k}] contains NaN or Inf")
            if k and w.shape[1] != ws[k - 1].shape[0]:
                raise InvalidMatrixError(
                    f"weights[{k}] has {w.shape[1]} columns but weights[{k - 1}] has {ws[k - 1].shape[0]} rows"
                )
        bs = None
        if biases is not None:
            bs = [np.asarray(b, dtype=np.float64) for b in biases]
            if len(bs) != len(ws):
                raise InvalidParameterError(f"biases has {len(bs)} entries for {len(ws)} weights")
            for k, (w, b) in enumerate(zip(ws, bs)):
                if b.shape != (w.shape[0],) or not np.all(np.isfinite(b)):
                    raise InvalidMatrixError(f"biases[{k}] must be finite with shape ({w.shape[0]},), got {b.shape}")
        widths = [ws[0].shape[1]] + [w.shape[0] for w in ws]
        mlp = cls(widths, activation=activation, final_activation=final_activation, bias=bs is not None)
        with torch.no_grad():
            for k, layer in enumerate(mlp.layers):
                layer.weight.copy_(torch.from_numpy(ws[k]))
                if bs is not None:
                    layer.bias.copy_(torch.from_numpy(bs[k]))
        return mlp

    # ------------------------------------------------------------------ parameters
    @property
    def widths(self) -> list[int]:
        return [self.layers[0].in_features] + [layer.out_features for layer in self.layers]

    @property
    def n_layers(self) -> int:
        return len(self.layers)

    def weights(self) -> list[np.ndarray]:
        """Copies of ``W_k`` as float64 arrays of shape ``(out, in)``."""
        return [layer.weight.detach().to(torch.float64).numpy().copy() for layer in self.layers]

    def biases(self) -> list[np.ndarray]:
        """Copies of ``beta_k`` (zeros when the network has no biases)."""
        return [
            layer.bias.detach().to(torch.float64).numpy().copy()
            if layer.bias is not None
            else np.zeros(layer.out_features)
            for layer in self.layers
        ]

    def _check_index(self, index: int) -> int:
        if not isinstance(index, (int, np.integer)) or not 0 <= index < self.n_layers:
            raise InvalidParameterError(f"index must be a layer index in [0, {self.n_layers}), got {index!r}")
        return int(index)

    def with_weight(self, index: int, weight: np.ndarray) -> "ReluAbsMLP":
        """A NEW network equal to this one except ``W_index = weight`` (``self`` is never mutated)."""
        index = self._check_index(index)
        ws = self.weights()
        w = np.asarray(weight, dtype=np.float64)
        if w.shape != ws[index].shape:
            raise InvalidMatrixError(f"weight for layer {index} must have shape {ws[index].shape}, got {w.shape}")
        ws[index] = w
        return ReluAbsMLP.from_weights(
            ws, self.biases() if self.has_bias else None, self.activation, self.final_activation
        )

    # ------------------------------------------------------------------ evaluation
    def _activated(self, k: int) -> bool:
        return k < self.n_layers - 1 or self.final_activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        act = torch.relu if self.activation == "relu" else torch.abs
        for k, layer in enumerate(self.layers):
            x = layer(x)
            if self._activated(k):
                x = act(x)
        return x

    def _inputs_np(self, X) -> np.ndarray:
        x = np.asarray(X, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.widths[0]:
            raise InvalidParameterError(f"X must have shape (|T|, {self.widths[0]}), got {x.shape}")
        return x

    def psi1_np(self, index: int, X) -> np.ndarray:
        """``psi_1(s)``: the input of layer ``index`` (earlier layers and their activations), float64."""
        index = self._check_index(index)
        x = self._inputs_np(X)
        for w, b in zip(self.weights()[:index], self.biases()[:index]):
            x = _activate(x @ w.T + b, self.activation)
        return x

    def tail(self, index: int) -> PiecewiseLinearTail:
        """``psi_2`` of layer ``index``: ``AffineOp(I, beta_index)``, activation, later layers (THEORY.md 3.1)."""
        index = self._check_index(index)
        ws, bs = self.weights(), self.biases()
        n = ws[index].shape[0]
        ops: list = [AffineOp(np.eye(n), bs[index])]
        if self._activated(index):
            ops.append(ActivationOp(self.activation))
        for k in range(index + 1, self.n_layers):
            ops.append(AffineOp(ws[k], bs[k]))
            if self._activated(k):
                ops.append(ActivationOp(self.activation))
        return PiecewiseLinearTail(tuple(ops))

    def logits_np(self, X) -> np.ndarray:
        """Logits ``X(s)`` for every row of ``X``, float64 numpy."""
        x = self._inputs_np(X)
        for k, (w, b) in enumerate(zip(self.weights(), self.biases())):
            x = x @ w.T + b
            if self._activated(k):
                x = _activate(x, self.activation)
        return x

    def layer_view(self, index: int, X, labels, name: str | None = None) -> LayerView:
        """The :class:`LayerView` of layer ``index`` on samples ``X`` with labels (THEORY.md 1.4)."""
        index = self._check_index(index)
        return LayerView(
            name=f"layers.{index}" if name is None else name,
            weight=self.weights()[index],
            inputs=self.psi1_np(index, X),
            labels=np.asarray(labels),
            tail=self.tail(index),
        )


# ---------------------------------------------------------------------- spiked Gaussian network


def haar_frame(rng: np.random.Generator, n: int, r: int) -> np.ndarray:
    """``n x r`` matrix with orthonormal columns, Haar distributed (QR of a Gaussian, sign-fixed)."""
    q, upper = np.linalg.qr(rng.standard_normal((n, r)))
    signs = np.sign(np.diag(upper))
    signs[signs == 0] = 1.0
    return q * signs


def _spikes(sigma, r_max: int, what: str, exactly: int | None = None) -> np.ndarray:
    """``sigma`` as at most ``r_max`` finite non-negative spikes (exactly ``exactly`` of them when given)."""
    s = np.atleast_1d(np.asarray(sigma, dtype=np.float64))
    if s.ndim != 1 or s.size > r_max or np.any(~np.isfinite(s)) or np.any(s < 0):
        raise InvalidParameterError(f"sigma must be at most {r_max} finite non-negative spikes ({what}), got {sigma!r}")
    if exactly is not None and s.size != exactly:
        raise InvalidParameterError(f"sigma must hold r={exactly} spikes, got {s.size}")
    return s


def _check_g(g: float) -> float:
    if not (np.isfinite(g) and g >= 0):
        raise InvalidParameterError(f"g must be a finite variance factor >= 0, got {g!r}")
    return float(g)


@dataclass(frozen=True, eq=False)
class SpikedNetwork:
    """The spiked Gaussian three-layer network of THEORY.md 7.1 (OR1 Assumptions 3.1, 3.3, 3.6, 3.8).

    ``X(s) = lambda(W3 lambda((S2 + R2) lambda(W1 s)))``, no biases; ``mlp`` has widths ``[d, N, N, K]``
    and its layer 1 is the target ``W2 = S2 + R2``.
    """

    W1: np.ndarray
    S2: np.ndarray
    R2: np.ndarray
    W3: np.ndarray
    mlp: ReluAbsMLP
    g: float
    sigma: np.ndarray
    variant: Literal["generic", "embedded"]

    TARGET_INDEX = 1

    @property
    def N(self) -> int:
        return self.S2.shape[0]

    @property
    def W2(self) -> np.ndarray:
        return self.S2 + self.R2

    def a_scale(self, s) -> np.ndarray | float:
        """``a(N, s) = ||W3||_inf ||W1 s||_2 sqrt(log(2N)/N)`` (OR1 eq. (eqans)); ``s`` of shape ``(d,)`` or
        ``(B, d)``."""
        x = np.asarray(s, dtype=np.float64)
        w3_inf = np.abs(self.W3).sum(axis=1).max()
        value = w3_inf * np.linalg.norm(x @ self.W1.T, axis=-1) * np.sqrt(np.log(2 * self.N) / self.N)
        return float(value) if np.ndim(value) == 0 else value

    def target_view(self, X, labels) -> LayerView:
        """Layer view of the target ``W2`` on samples ``X``."""
        return self.mlp.layer_view(self.TARGET_INDEX, X, labels, name="W2")


def spiked_gaussian_weights(
    d: int,
    K: int,
    N: int,
    r: int,
    sigma,
    g: float,
    variant: Literal["generic", "embedded"] = "generic",
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, float]:
    """The weights ``(W1, S2, R2, W3, sigma, g)`` of the spiked Gaussian network of THEORY.md 7.1 (numpy only).

    generic:  ``W1 ~ N(0, 1/d)`` (``N x d``), ``W3 ~ N(0, 1/N)`` (``K x N``), ``S2 = U diag(sigma) V^T``
              with ``U, V`` Haar ``N x r``.
    embedded: ``W1 = [B; 0]`` with ``B ~ N(0, 1/d)`` (``d x d``), ``W3 = [C 0]`` with ``C ~ N(0, 1/r)``
              (``K x r``), ``S2`` = ``G = U diag(sigma) V^T`` (``r x d``, ``r <= d``) in the top-left block;
              ``||W3||_inf``, ``||W1 s||_2`` and ``||S2||_F`` do not depend on ``N``.
    Both: ``R2 = sqrt(g/N) Z``, ``Z`` iid ``N(0,1)``, drawn LAST from its own child stream of ``seed``
    (so ``W1, S2, W3`` do not depend on ``g`` and ``R2`` is independent of them; pitfall 18).
    """
    d, K, N, r = int(d), int(K), int(N), int(r)
    if min(d, K, N) < 1 or r < 0:
        raise InvalidParameterError(f"need d, K, N >= 1 and r >= 0, got d={d}, K={K}, N={N}, r={r}")
    g = _check_g(g)
    path_seq, noise_seq = np.random.SeedSequence(seed).spawn(2)
    rng = np.random.default_rng(path_seq)
    if variant == "generic":
        if r > N:
            raise InvalidParameterError(f"r must be <= N for the generic variant, got r={r}, N={N}")
        s = _spikes(sigma, r, "generic", exactly=r)
        W1 = rng.standard_normal((N, d)) / np.sqrt(d)
        W3 = rng.standard_normal((K, N)) / np.sqrt(N)
        S2 = (haar_frame(rng, N, r) * s) @ haar_frame(rng, N, r).T
    elif variant == "embedded":
        if not (1 <= r <= d <= N):
            raise InvalidParameterError(f"embedded variant needs 1 <= r <= d <= N, got r={r}, d={d}, N={N}")
        s = _spikes(sigma, r, "embedded", exactly=r)
        B = rng.standard_normal((d, d)) / np.sqrt(d)
        C = rng.standard_normal((K, r)) / np.sqrt(r)
        G = (haar_frame(rng, r, r) * s) @ haar_frame(rng, d, r).T
        W1 = np.zeros((N, d))
        W1[:d] = B
        W3 = np.zeros((K, N))
        W3[:, :r] = C
        S2 = np.zeros((N, N))
        S2[:r, :d] = G
    else:
        raise InvalidParameterError(f"variant must be 'generic' or 'embedded', got {variant!r}")
    R2 = np.sqrt(g / N) * np.random.default_rng(noise_seq).standard_normal((N, N))
    return W1, S2, R2, W3, s, g


def spiked_gaussian_network(
    d: int,
    K: int,
    N: int,
    r: int,
    sigma,
    g: float,
    activation: Activation = "relu",
    variant: Literal["generic", "embedded"] = "generic",
    seed: int = 0,
    final_activation: bool = True,
) -> SpikedNetwork:
    """The spiked Gaussian network of THEORY.md 7.1: :func:`spiked_gaussian_weights` as a ReLU/abs MLP."""
    check_activation(activation)
    W1, S2, R2, W3, s, g = spiked_gaussian_weights(d, K, N, r, sigma, g, variant, seed)
    mlp = ReluAbsMLP.from_weights([W1, S2 + R2, W3], None, activation, final_activation)
    return SpikedNetwork(W1=W1, S2=S2, R2=R2, W3=W3, mlp=mlp, g=g, sigma=s, variant=variant)


@dataclass(frozen=True, eq=False)
class GaussianSplit:
    """``A = S + R`` with ``R_ij ~ N(0, g/n)`` independent of ``S`` (THEORY.md 9.3)."""

    S: np.ndarray
    R: np.ndarray
    g: float

    @property
    def A(self) -> np.ndarray:
        return self.S + self.R


def gaussian_rectangular_split(
    n: int,
    m: int,
    g: float,
    sigma=None,
    density: float | None = None,
    seed: int = 0,
) -> GaussianSplit:
    """THEORY.md 9.3: ``S = U diag(sigma) V^T`` (``sigma`` given) or sparse with iid ``N(0,1)`` entries kept
    with probability ``density``; ``R = sqrt(g/n) Z`` (``n`` rows) drawn last from its own stream."""
    n, m = int(n), int(m)
    if min(n, m) < 1:
        raise InvalidParameterError(f"n and m must be >= 1, got n={n}, m={m}")
    g = _check_g(g)
    if (sigma is None) == (density is None):
        raise InvalidParameterError("give exactly one of sigma (low-rank S) or density (sparse S)")
    path_seq, noise_seq = np.random.SeedSequence(seed).spawn(2)
    rng = np.random.default_rng(path_seq)
    if sigma is not None:
        s = _spikes(sigma, min(n, m), "rectangular")
        S = (haar_frame(rng, n, s.size) * s) @ haar_frame(rng, m, s.size).T
    else:
        if not 0.0 <= density <= 1.0:
            raise InvalidParameterError(f"density must lie in [0, 1], got {density!r}")
        S = np.where(rng.random((n, m)) < density, rng.standard_normal((n, m)), 0.0)
    R = np.sqrt(g / n) * np.random.default_rng(noise_seq).standard_normal((n, m))
    return GaussianSplit(S=S, R=R, g=g)
