"""Layer views: one target layer and the network split around it (THEORY.md 1.4, DESIGN.md).

For a target weight ``A`` (``n x m``) the logits of sample ``s`` are ``z_A(s) = psi_2(A psi_1(s))``.
A :class:`LayerView` holds ``A``, the captured inputs ``V[s] = psi_1(s)`` over a finite sample
set ``T``, the labels ``C(s)`` and ``psi_2`` as a batched callable.  Everything in ``certs`` takes
layer views, never a model and a layer name.

For Linear + ReLU/abs networks ``psi_2`` is a :class:`PiecewiseLinearTail`: a list of ops
``AffineOp(W, b)`` and ``ActivationOp(kind)`` whose first op adds the target bias
(THEORY.md 3.1); the exact Lipschitz methods S and D of ``certs.lipschitz`` need that form.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Literal, Union

import numpy as np

from .errors import CertificateInputError

__all__ = ["AffineOp", "ActivationOp", "Op", "PiecewiseLinearTail", "LayerView"]


def _as_f64(name: str, array, ndim: int) -> np.ndarray:
    arr = np.asarray(array, dtype=np.float64)
    if arr.ndim != ndim:
        raise CertificateInputError(f"{name} must be {ndim}-D, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise CertificateInputError(f"{name} contains NaN or Inf")
    return arr


@dataclass(frozen=True, eq=False)
class AffineOp:
    """``x -> W x + b`` with ``W`` of shape ``(out, in)``."""

    weight: np.ndarray
    bias: np.ndarray

    def __post_init__(self) -> None:
        w = _as_f64("AffineOp.weight", self.weight, 2)
        b = _as_f64("AffineOp.bias", self.bias, 1)
        if b.shape[0] != w.shape[0]:
            raise CertificateInputError(f"AffineOp: bias length {b.shape[0]} != weight rows {w.shape[0]}")
        object.__setattr__(self, "weight", w)
        object.__setattr__(self, "bias", b)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return x @ self.weight.T + self.bias


@dataclass(frozen=True)
class ActivationOp:
    """Coordinatewise ``relu`` (``max(x, 0)``) or ``abs`` (``|x|``); both 1-Lipschitz per coordinate."""

    kind: Literal["relu", "abs"]

    def __post_init__(self) -> None:
        if self.kind not in ("relu", "abs"):
            raise CertificateInputError(f"ActivationOp.kind must be 'relu' or 'abs', got {self.kind!r}")

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return np.maximum(x, 0.0) if self.kind == "relu" else np.abs(x)


Op = Union[AffineOp, ActivationOp]


@dataclass(frozen=True)
class PiecewiseLinearTail:
    """``psi_2`` of a Linear + ReLU/abs network as an op list (float64, batched over rows)."""

    ops: tuple[Op, ...]

    def __post_init__(self) -> None:
        ops = tuple(self.ops)
        if not ops or not isinstance(ops[0], AffineOp):
            raise CertificateInputError("PiecewiseLinearTail must start with the target-bias AffineOp")
        width = ops[0].weight.shape[1]
        for i, op in enumerate(ops):
            if isinstance(op, AffineOp):
                if op.weight.shape[1] != width:
                    raise CertificateInputError(
                        f"PiecewiseLinearTail op {i}: expects width {op.weight.shape[1]}, receives {width}"
                    )
                width = op.weight.shape[0]
            elif not isinstance(op, ActivationOp):
                raise CertificateInputError(f"PiecewiseLinearTail op {i}: unsupported op {op!r}")
        object.__setattr__(self, "ops", ops)

    @property
    def in_dim(self) -> int:
        return self.ops[0].weight.shape[1]

    @property
    def out_dim(self) -> int:
        return [op for op in self.ops if isinstance(op, AffineOp)][-1].weight.shape[0]

    def affine_ops(self) -> list[AffineOp]:
        return [op for op in self.ops if isinstance(op, AffineOp)]

    def __call__(self, u: np.ndarray) -> np.ndarray:
        x = np.asarray(u, dtype=np.float64)
        for op in self.ops:
            x = op(x)
        return x


@dataclass(frozen=True, eq=False)
class LayerView:
    """A target layer inside a frozen network, evaluated on a finite sample set ``T``.

    Attributes
    ----------
    name: layer name (for reports and errors).
    weight: ``A``, shape ``(n, m)``.
    inputs: ``V``, shape ``(|T|, m)``; row ``s`` is ``psi_1(s)``.
    labels: ``C(s)``, shape ``(|T|,)``, integers in ``[0, K)``.
    tail: ``psi_2``: maps a batch ``(B, n)`` of layer outputs (before the bias) to logits ``(B, K)``.
    """

    name: str
    weight: np.ndarray
    inputs: np.ndarray
    labels: np.ndarray
    tail: Callable[[np.ndarray], np.ndarray]

    def __post_init__(self) -> None:
        w = _as_f64(f"layer {self.name!r}: weight", self.weight, 2)
        v = _as_f64(f"layer {self.name!r}: inputs psi_1", self.inputs, 2)
        if v.shape[0] == 0:
            raise CertificateInputError(f"layer {self.name!r}: the sample set T is empty")
        if v.shape[1] != w.shape[1]:
            raise CertificateInputError(
                f"layer {self.name!r}: inputs have width {v.shape[1]} but the weight has {w.shape[1]} columns"
            )
        y = np.asarray(self.labels)
        if y.shape != (v.shape[0],) or not np.issubdtype(y.dtype, np.integer):
            raise CertificateInputError(
                f"layer {self.name!r}: labels must be an integer array of shape ({v.shape[0]},), got {y.dtype} "
                f"{y.shape}"
            )
        if isinstance(self.tail, PiecewiseLinearTail) and self.tail.in_dim != w.shape[0]:
            raise CertificateInputError(
                f"layer {self.name!r}: psi_2 expects width {self.tail.in_dim} but the weight has {w.shape[0]} rows"
            )
        object.__setattr__(self, "weight", w)
        object.__setattr__(self, "inputs", v)
        object.__setattr__(self, "labels", y.astype(np.int64))

    @property
    def n_samples(self) -> int:
        return self.inputs.shape[0]

    def logits(self, weight: np.ndarray | None = None) -> np.ndarray:
        """``z(s) = psi_2(weight psi_1(s))`` for every sample (default: the layer's own weight)."""
        w = self.weight if weight is None else np.asarray(weight, dtype=np.float64)
        z = np.asarray(self.tail(self.inputs @ w.T), dtype=np.float64)
        if z.ndim != 2 or z.shape[0] != self.n_samples:
            raise CertificateInputError(f"layer {self.name!r}: psi_2 returned shape {z.shape}")
        if np.any((self.labels < 0) | (self.labels >= z.shape[1])):
            raise CertificateInputError(f"layer {self.name!r}: labels out of range [0, {z.shape[1]})")
        return z
