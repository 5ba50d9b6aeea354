"""Typed errors of ``pruning`` (all ``ValueError`` subclasses via :class:`rmt.errors.MPCertError`).

Every message names the layer (module name), argument or file that is wrong.
"""

from __future__ import annotations

from rmt.errors import InvalidMatrixError, InvalidParameterError, MPCertError

__all__ = [
    "PruningError",
    "PruningParameterError",
    "IneligibleLayerError",
    "InvalidWeightError",
    "PatternError",
    "CalibrationError",
    "MaskMismatchError",
    "InvalidMaskError",
    "KernelUnavailableError",
]


class PruningError(MPCertError):
    """Base class of every error raised deliberately by ``pruning``."""


class PruningParameterError(PruningError, InvalidParameterError):
    """A scalar or option is outside its domain (sparsity outside [0, 1), unknown scope, k >= n...)."""


class IneligibleLayerError(PruningError):
    """A named layer does not exist, is not an ``nn.Linear`` / ``nn.Conv2d``, or is not eligible for the method.

    (Not :class:`certs.errors.UnsupportedLayerError`, which names a module *after* an audited layer that has
    no sound rule.)
    """


class InvalidWeightError(PruningError, InvalidMatrixError):
    """A layer weight cannot be pruned (NaN / Inf entries)."""


class PatternError(PruningError):
    """A k:n pattern is violated or cannot be formed (d_in not divisible by n, a group not keeping k)."""


class CalibrationError(PruningError):
    """Calibration activations are missing, of the wrong width, or not finite."""


class MaskMismatchError(PruningError):
    """A mask does not fit the model it is applied to (missing layer, other shape, bad permutation)."""


class InvalidMaskError(PruningError):
    """A mask is malformed in itself: a keep-tensor not holding only 0/1, a non-integer permutation, bad file
    metadata."""


class KernelUnavailableError(PruningError):
    """A 2:4 GPU kernel cannot run for a layer (no CUDA, a dtype or shape the library refuses, a missing torch op)."""
