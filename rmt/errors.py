"""Typed errors shared by every mpcert package.

Every error is a ``ValueError`` subclass (so ``except ValueError`` keeps working) that names
the offending argument, layer or file in its message.  Packages further up (``certs``,
``pruning``, ``verification``) subclass :class:`MPCertError` for their own failure modes.
"""

from __future__ import annotations


class MPCertError(ValueError):
    """Base class of every error raised deliberately by mpcert."""


class InvalidMatrixError(MPCertError):
    """A weight matrix or tensor cannot be analysed (wrong rank, dtype, NaN/Inf, empty, all zero)."""


class WeightOverflowError(InvalidMatrixError):
    """A finite weight so large that its squared singular values (the MP spectrum) overflow float64."""


class InvalidParameterError(MPCertError):
    """A scalar parameter is outside its domain (e.g. a ratio <= 0 or a probability outside (0, 1))."""
