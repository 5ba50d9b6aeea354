"""Typed errors of ``certs`` (all are ``ValueError`` subclasses via :class:`rmt.MPCertError`)."""

from __future__ import annotations

from rmt.errors import MPCertError

__all__ = ["CertificateInputError", "UnsupportedLayerError", "EnclosureError"]


class CertificateInputError(MPCertError):
    """Inputs of a certificate are inconsistent: shapes, masks, labels, data, penalties."""


class UnsupportedLayerError(MPCertError):
    """A module after the target layer has no sound rule; names the module."""


class EnclosureError(MPCertError):
    """A sound enclosure could not be computed (an interval left its domain or overflowed): numerical, not bad input."""
