"""Typed errors of the verification layer (model sources, optional extras); all are :class:`rmt.errors.MPCertError`."""

from __future__ import annotations

from rmt.errors import MPCertError

__all__ = ["ModelSourceError", "MissingExtraError"]


class ModelSourceError(MPCertError):
    """A model source (timm name, checkpoint, state-dict file) cannot be built or loaded."""


class MissingExtraError(MPCertError):
    """A feature needs an optional dependency that is not installed (e.g. ``mpcert verify`` needs hypothesis)."""
