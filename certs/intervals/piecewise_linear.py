"""Interval forward-mode ``L_s`` for the Linear + ReLU/abs op lists of :mod:`certs.lipschitz`.

Same segment as methods G/P/S/D (THEORY.md 3.1): ``psi_2(start + theta direction)``, ``theta in [0, 1]``,
with ``start = S v_s`` and ``direction = R v_s`` taken as exact float64 points (as in
:mod:`certs.lipschitz`).  The bound is :func:`certs.intervals.refinement.segment_bounds` with the
evaluator below, so ``L_s >= L^D`` (the exact local constant) must hold — the cross-check of the
interval rules against the exact methods (tests).
"""

from __future__ import annotations

import numpy as np
import torch

from certs.budget import PerSampleLipschitz
from certs.errors import CertificateInputError
from certs.layer_view import ActivationOp, AffineOp
from certs.lipschitz import tail_ops

from .interval import Interval
from .refinement import PathEvaluator, SegmentBounds, path_start, segment_bounds

__all__ = ["tail_evaluator", "tail_segment_bounds", "tail_sound_lipschitz"]


def tail_evaluator(tail, start: np.ndarray, direction: np.ndarray, order: int = 2) -> PathEvaluator:
    """Evaluator of ``theta -> psi_2(start + theta direction)`` for :func:`segment_bounds`.

    ``order``: degree of the Taylor forms in ``theta`` (:mod:`certs.intervals.taylor`); ``0`` = plain intervals.
    """
    ops = tail_ops(tail)
    start_t = torch.as_tensor(np.asarray(start, dtype=np.float64))
    dir_t = torch.as_tensor(np.asarray(direction, dtype=np.float64))
    if start_t.ndim != 2 or start_t.shape != dir_t.shape:
        raise CertificateInputError(
            f"start/direction: expected two (B, n) arrays of one shape, got {start_t.shape} and {dir_t.shape}")
    params = [(torch.as_tensor(op.weight), torch.as_tensor(op.bias)) if isinstance(op, AffineOp) else op.kind
              for op in ops]

    def evaluate(owner: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor):
        point = Interval.point
        x = path_start(point(start_t[owner]), point(dir_t[owner]), lo[:, None], hi[:, None], None, order)
        for op, param in zip(ops, params):
            if isinstance(op, AffineOp):
                x = x.linear(*param)
            elif isinstance(op, ActivationOp):
                x = x.relu() if param == "relu" else x.abs()
        return x

    return evaluate


def tail_segment_bounds(tail, start, direction, order: int = 2, **options) -> SegmentBounds:
    """:func:`segment_bounds` for an op list (``options`` as there)."""
    evaluate = tail_evaluator(tail, start, direction, order)
    return segment_bounds(evaluate, int(np.shape(start)[0]), **options)


def tail_sound_lipschitz(tail, start, direction, order: int = 2, **options) -> PerSampleLipschitz:
    """Sound ``L_s`` of an op list on the segments, labelled ``sound``, method
    ``interval-forward-taylor{order}-K{K}[-adaptive]``."""
    bounds = tail_segment_bounds(tail, start, direction, order, **options)
    products = np.abs(np.asarray(direction, dtype=np.float64)).max(axis=1)
    adaptive = "-adaptive" if options.get("refine", 0) else ""
    method = f"interval-forward-taylor{order}-K{bounds.subintervals}{adaptive}"
    return bounds.lipschitz(products, method)
