"""Exact classification quantities on logits: cross-entropy, margins, accuracy (THEORY.md 1.3).

All functions take logits ``z`` of shape ``(|T|, K)`` (or ``(..., |T|, K)`` for a batch of
networks, e.g. a theta grid) and labels ``C(s)`` of shape ``(|T|,)``; everything is float64.

* ``l_s(z) = -z_{C(s)} + log sum_j exp(z_j)`` with natural log and a stable log-sum-exp.
* ``Delta_pred(s) = z_{p(s)} - max_{j != p(s)} z_j >= 0`` with ``p(s)`` an argmax.
* ``Delta_true(s) = z_{C(s)} - max_{j != C(s)} z_j`` (may be negative).
* ``acc(T) = #{s : Delta_true(s) > 0} / |T|`` (strict: ties count as errors, THEORY.md 11.15).
"""

from __future__ import annotations

import numpy as np

from .errors import CertificateInputError

__all__ = [
    "validated_logits",
    "cross_entropy_per_sample",
    "mean_cross_entropy",
    "prediction_margins",
    "true_margins",
    "accuracy",
]


def validated_logits(z, labels) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(z, labels)`` as float64 / int64 after checking shapes, finiteness and label range."""
    z = np.asarray(z, dtype=np.float64)
    y = np.asarray(labels)
    if z.ndim < 2 or z.shape[-1] < 2:
        raise CertificateInputError(f"logits must have shape (..., |T|, K) with K >= 2, got {z.shape}")
    if z.shape[-2] == 0:
        raise CertificateInputError("logits: the sample set T is empty")
    if y.shape != (z.shape[-2],) or not np.issubdtype(y.dtype, np.integer):
        raise CertificateInputError(f"labels must be an integer array of shape ({z.shape[-2]},), got {y.dtype} "
                                    f"{y.shape}")
    if np.any((y < 0) | (y >= z.shape[-1])):
        raise CertificateInputError(f"labels out of range [0, {z.shape[-1]})")
    if not np.all(np.isfinite(z)):
        raise CertificateInputError("logits contain NaN or Inf (non-finite activations)")
    return z, y.astype(np.int64)


def _label_logit(z: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.take_along_axis(z, np.broadcast_to(y[:, None], z.shape[:-1] + (1,)), axis=-1)[..., 0]


def cross_entropy_per_sample(z, labels) -> np.ndarray:
    """``l_s(z) = -z_{C(s)} + log sum_j exp(z_j)`` per sample (THEORY.md 1.3), stable log-sum-exp."""
    z, y = validated_logits(z, labels)
    zmax = z.max(axis=-1)
    lse = zmax + np.log(np.exp(z - zmax[..., None]).sum(axis=-1))
    return lse - _label_logit(z, y)


def mean_cross_entropy(z, labels) -> np.ndarray:
    """``L_CE = (1/|T|) sum_s l_s(z(s))`` (THEORY.md 1.3, 1.5); a scalar per network in the batch."""
    return cross_entropy_per_sample(z, labels).mean(axis=-1)


def _top_two(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    part = np.sort(z, axis=-1)
    return part[..., -1], part[..., -2]


def prediction_margins(z) -> np.ndarray:
    """``Delta_pred(s) = z_{p(s)} - max_{j != p(s)} z_j`` (top-1 minus top-2; 0 on ties)."""
    z = np.asarray(z, dtype=np.float64)
    top1, top2 = _top_two(z)
    return top1 - top2


def true_margins(z, labels) -> np.ndarray:
    """``Delta_true(s) = z_{C(s)} - max_{j != C(s)} z_j`` (THEORY.md 1.3)."""
    z, y = validated_logits(z, labels)
    own = _label_logit(z, y)
    others = z.copy()
    np.put_along_axis(others, np.broadcast_to(y[:, None], z.shape[:-1] + (1,)), -np.inf, axis=-1)
    return own - others.max(axis=-1)


def accuracy(z, labels) -> np.ndarray:
    """``acc(T) = #{s : Delta_true(s) > 0} / |T|`` with a strict inequality (THEORY.md 1.3)."""
    return (true_margins(z, labels) > 0).mean(axis=-1)
