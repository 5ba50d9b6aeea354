"""Labelled bounds: every number mpcert reports as a bound says how far it can be trusted.

* ``sound`` — a proven upper bound, evaluated with floating-point error accounted for (outward
  rounding, :func:`round_up`), so it is never below the exact value because of rounding.
* ``estimate`` — anything sampled, heuristic, or true only with some probability.  Probabilistic
  budgets (Corollaries 5.10–5.11, OR1 1.4–1.6) are ``estimate``s that carry the probability
  ``confidence = 1 - delta`` with which the theorem guarantees them.

Only a ``sound`` bound may be called a certificate.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Mapping

import numpy as np

from .errors import InvalidParameterError

__all__ = ["Bound", "Label", "SOUND", "ESTIMATE", "round_up", "ROUNDING_MARGIN"]

Label = Literal["sound", "estimate"]
SOUND: Label = "sound"
ESTIMATE: Label = "estimate"

#: Relative margin used for outward rounding of float64 results (THEORY.md 3.6).
ROUNDING_MARGIN = 1e-10


def round_up(value, rel: float = ROUNDING_MARGIN, terms: int = 1):
    """Round a float64 result (or array) outward so that it dominates the exact value.

    The margin is ``rel * |value| * max(1, terms * eps / 1e-16)`` plus one ulp: ``terms`` is the
    number of floating-point operations accumulated into ``value`` (a length-``k`` dot product has
    ``k``), and the relative error of such a sum of non-negative terms is at most ``terms * eps``.
    """
    v = np.asarray(value, dtype=np.float64)
    scale = max(rel, terms * np.finfo(np.float64).eps)
    out = np.nextafter(v + np.abs(v) * scale, np.inf)
    return float(out) if out.ndim == 0 else out


@dataclass(frozen=True)
class Bound:
    """A number that bounds something, with its provenance.

    Attributes
    ----------
    value: the bound (float64).
    label: ``"sound"`` or ``"estimate"`` (see the module docstring).
    method: how it was obtained, e.g. ``"lipschitz-G"``, ``"corollary-5.10"``.
    options: the options of that method.
    confidence: probability with which the bound holds; 1.0 for deterministic bounds.
    """

    value: float
    label: Label
    method: str
    options: Mapping[str, Any] = field(default_factory=dict)
    confidence: float = 1.0

    def __post_init__(self) -> None:
        if self.label not in (SOUND, ESTIMATE):
            raise InvalidParameterError(f"Bound.label must be 'sound' or 'estimate', got {self.label!r}")
        if not (0.0 < self.confidence <= 1.0):
            raise InvalidParameterError(f"Bound.confidence must lie in (0, 1], got {self.confidence!r}")
        if self.label == SOUND and self.confidence != 1.0:
            raise InvalidParameterError("a 'sound' bound is deterministic: confidence must be 1.0")
        if np.isnan(self.value):
            raise InvalidParameterError(f"Bound.value is NaN (method {self.method!r})")

    @property
    def is_sound(self) -> bool:
        return self.label == SOUND

    def to_dict(self) -> dict[str, Any]:
        return {
            "value": float(self.value),
            "label": self.label,
            "method": self.method,
            "options": dict(self.options),
            "confidence": self.confidence,
        }
