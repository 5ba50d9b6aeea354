"""The outcome of one theorem check on one generated instance (THEORY.md 0.3, 9.4).

A check compares a **bound** with a **realised** value computed exactly on the same instance and
asserts ``realized <= bound + tol`` with ``tol = 1e-9 max(1, |realized|, |bound|, scale)``
(THEORY.md 0.3); identities assert ``|lhs - rhs| <= tol``.  The slack ratio is
``(bound - offset) / (realized - offset)``, where ``offset`` is a part both sides share exactly (e.g. the
penalty change of Theorem 5.4, so that the ratio compares ``(1 - theta) B_T(R)`` with the realised CE change);
it is ``inf`` when the realised part is ``<= 0`` and ``< 1`` exactly for a violation.
"""

from __future__ import annotations

from dataclasses import dataclass

from certs.results import theory_tolerance

__all__ = ["CheckOutcome", "inequality", "identity", "implication", "decreases"]


@dataclass(frozen=True)
class CheckOutcome:
    """``bound`` vs ``realized`` on one instance; ``ok`` is the asserted inequality with tolerance."""

    bound: float
    realized: float
    ok: bool
    offset: float = 0.0
    tol: float = 0.0
    has_ratio: bool = True

    @property
    def slack_ratio(self) -> float:
        """``(bound - offset) / (realized - offset)``; ``inf`` when the realised part is within ``tol`` of 0,
        ``nan`` for identities and implications (no ratio)."""
        if not self.has_ratio:
            return float("nan")
        moved = self.realized - self.offset
        if moved <= self.tol:
            return float("inf")
        return (self.bound - self.offset) / moved


def inequality(realized: float, bound: float, scale: float = 0.0, offset: float = 0.0) -> CheckOutcome:
    """``realized <= bound`` up to the THEORY.md 0.3 tolerance."""
    realized, bound = float(realized), float(bound)
    tol = theory_tolerance(realized, bound, scale)
    return CheckOutcome(bound=bound, realized=realized, ok=realized <= bound + tol, offset=float(offset), tol=tol)


def identity(lhs: float, rhs: float, scale: float = 0.0) -> CheckOutcome:
    """``lhs == rhs`` up to the THEORY.md 0.3 tolerance."""
    lhs, rhs = float(lhs), float(rhs)
    tol = theory_tolerance(lhs, rhs, scale)
    return CheckOutcome(bound=rhs, realized=lhs, ok=abs(lhs - rhs) <= tol, tol=tol, has_ratio=False)


def implication(premise: bool, conclusion: bool) -> CheckOutcome:
    """``premise => conclusion`` (realized 1 when the premise holds and the conclusion fails)."""
    violated = bool(premise) and not bool(conclusion)
    return CheckOutcome(bound=0.0, realized=1.0 if violated else 0.0, ok=not violated, has_ratio=False)


def decreases(change: float, scale: float = 0.0) -> bool:
    """``change < 0`` up to the THEORY.md 0.3 tolerance (a certified decrease can be absorbed by rounding
    when ``R`` is tiny next to ``S``, e.g. ``||R||_F^2 = 1e-250``)."""
    return float(change) < theory_tolerance(change, 0.0, scale)
