"""Per-sample data-path quantities along the pruning path ``A_theta = S + theta R`` (THEORY.md 1.4).

* ``v_s = psi_1(s)`` is row ``s`` of ``LayerView.inputs``.
* ``||R psi_1(s)||_inf`` is the max-abs entry of one exact matrix–vector product per sample,
  never a product of norms (THEORY.md 11.2: ``||R||_op ||v||_inf`` is not an upper bound).
* Path logits ``z_{A_theta}(s) = psi_2(A_theta v_s)`` for a grid of ``theta``.
"""

from __future__ import annotations

import numpy as np

from .errors import CertificateInputError
from .layer_view import LayerView

__all__ = ["removed_products", "max_abs_rows", "path_logits", "path_logits_from_outputs", "validated_thetas"]


def _checked_inputs(removed, inputs) -> tuple[np.ndarray, np.ndarray]:
    r = np.asarray(removed, dtype=np.float64)
    v = np.asarray(inputs, dtype=np.float64)
    if r.ndim != 2 or v.ndim != 2 or v.shape[1] != r.shape[1]:
        raise CertificateInputError(
            f"removed (R) of shape {r.shape} cannot multiply inputs psi_1 of shape {v.shape} "
            "(need R columns = input width)"
        )
    if v.shape[0] == 0:
        raise CertificateInputError("inputs psi_1: the sample set T is empty")
    if not np.all(np.isfinite(v)):
        raise CertificateInputError("inputs psi_1 contain NaN or Inf (non-finite activations)")
    return r, v


def max_abs_rows(products: np.ndarray) -> np.ndarray:
    """``||row||_inf`` of every row of ``V R^T`` (0 for an empty row)."""
    return np.abs(products).max(axis=1) if products.shape[1] else np.zeros(products.shape[0])


def removed_products(removed: np.ndarray, inputs: np.ndarray) -> np.ndarray:
    """``||R psi_1(s)||_inf`` for every sample, shape ``(|T|,)`` (THEORY.md 1.4, eq. 8 factor)."""
    r, v = _checked_inputs(removed, inputs)
    return max_abs_rows(v @ r.T)


def validated_thetas(theta) -> np.ndarray:
    """``theta`` as a 1-D float64 array inside ``[0, 1]``."""
    t = np.atleast_1d(np.asarray(theta, dtype=np.float64))
    if t.ndim != 1 or t.size == 0 or not np.all(np.isfinite(t)) or np.any((t < 0) | (t > 1)):
        raise CertificateInputError(f"theta must be a number or 1-D array in [0, 1], got {theta!r}")
    return t


def path_logits(view: LayerView, structured: np.ndarray, removed: np.ndarray, theta) -> np.ndarray:
    """``z_{S + theta R}(s)`` for each theta: shape ``(len(theta), |T|, K)``; ``theta`` in ``[0, 1]``."""
    base = view.inputs @ np.asarray(structured, dtype=np.float64).T
    step = view.inputs @ np.asarray(removed, dtype=np.float64).T
    return path_logits_from_outputs(view, base, step, theta)


def path_logits_from_outputs(view: LayerView, base: np.ndarray, step: np.ndarray, theta) -> np.ndarray:
    """Path logits from the layer outputs ``base = V S^T`` and ``step = V R^T``: ``psi_2(base + theta step)``."""
    t = validated_thetas(theta)
    outs = base[None, :, :] + t[:, None, None] * step[None, :, :]
    flat = np.asarray(view.tail(outs.reshape(-1, outs.shape[-1])), dtype=np.float64)
    z = flat.reshape(t.size, view.n_samples, -1)
    if not np.all(np.isfinite(z)):
        raise CertificateInputError(f"layer {view.name!r}: psi_2 produced NaN or Inf logits")
    return z
