"""Typed results shared by every certificate of Section 5 and OR1 Section 1 (DESIGN.md "Results").

Each certificate returns a frozen dataclass deriving from :class:`CertificateResult`: the bound
(a :class:`rmt.bounds.Bound`, ``sound`` only if every ``L_s`` was), the realised value where it
can be computed exactly, the slack, whether the certificate's condition holds, and which
hypotheses were checked.  The tolerance of :meth:`CertificateResult.bound_holds` is THEORY.md 0.3:
``tol = 1e-9 max(1, |lhs|, |rhs|, scale)``.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, is_dataclass
from typing import Any

import numpy as np

from rmt.bounds import Bound

__all__ = ["HypothesisCheck", "CertificateResult", "theory_tolerance", "jsonable"]


def theory_tolerance(lhs: float, rhs: float, scale: float = 0.0) -> float:
    """``1e-9 max(1, |lhs|, |rhs|, scale)`` (THEORY.md 0.3)."""
    return 1e-9 * max(1.0, abs(lhs), abs(rhs), abs(scale))


@dataclass(frozen=True)
class HypothesisCheck:
    """One hypothesis of a theorem and whether it was verified on these inputs."""

    name: str
    holds: bool
    detail: str = ""


@dataclass(frozen=True, kw_only=True, eq=False)
class CertificateResult:
    """Common part of every certificate result.

    Attributes
    ----------
    theorem: the paper's number, e.g. ``"Theorem 5.4"``.
    statement: the inequality, in words and symbols.
    bound: upper bound on ``realized`` (a ``sound`` bound is a certificate).
    realized: the exact left-hand side on these inputs, or ``None`` when it is not computable.
    scale: largest absolute term summed into either side (for the THEORY.md 0.3 tolerance).
    condition: the certification predicate, e.g. ``"B_T(R) < lambda2 ||R||_F^2 + lambda1 ||R||_1"``.
    condition_holds: whether it holds (evaluated with the outward-rounded bound).
    hypotheses: the hypotheses that were checked.
    """

    theorem: str
    statement: str
    bound: Bound
    realized: float | None
    scale: float
    condition: str
    condition_holds: bool
    hypotheses: tuple[HypothesisCheck, ...]

    @property
    def slack(self) -> float | None:
        """``bound - realized`` (>= 0 up to tolerance whenever the bound is valid)."""
        return None if self.realized is None else self.bound.value - self.realized

    @property
    def bound_holds(self) -> bool | None:
        """``realized <= bound + tol`` (THEORY.md 0.3); ``None`` when nothing was realised."""
        if self.realized is None:
            return None
        return self.realized <= self.bound.value + theory_tolerance(self.realized, self.bound.value, self.scale)

    @property
    def is_certificate(self) -> bool:
        """A certificate is a ``sound`` bound whose condition holds."""
        return self.bound.is_sound and self.condition_holds

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary of every field plus ``slack`` and ``bound_holds``."""
        out = {f.name: jsonable(getattr(self, f.name)) for f in fields(self)}
        out["slack"] = self.slack
        out["bound_holds"] = self.bound_holds
        return out


def jsonable(value: Any) -> Any:
    """``value`` made JSON-ready: a :class:`Bound` by its ``to_dict``, arrays as lists, numpy scalars as
    Python scalars, dataclasses as dicts of their fields, tuples as lists, dict keys as strings (recursively)."""
    if isinstance(value, Bound):
        return value.to_dict()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    return value


