"""Typed results shared by the finite-N experiments of THEORY.md section 10.

An experiment measures a **series** (a quantity against N or training time), fits a **trend**
(least squares of ``log y`` or ``y`` on ``log N``) and evaluates **assertions**, each one of
THEORY.md 10's stated tolerances: ``sound`` (a proven inequality, zero violations allowed),
``statistical`` (a failure frequency against the binomial acceptance threshold of THEORY.md 9.5)
or ``trend`` (a finite-N trend with a calibrated tolerance).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

__all__ = ["AssertionOutcome", "ExperimentResult", "TrendFit", "fit_trend"]

AssertionKind = Literal["sound", "statistical", "trend"]
ExperimentSize = Literal["ci", "thorough"]


@dataclass(frozen=True)
class TrendFit:
    """Least-squares line ``y = intercept + slope * x`` with Pearson ``r``; ``x``/``y`` say the axes."""

    x: str
    y: str
    slope: float
    intercept: float
    r: float


def fit_trend(x, y, x_name: str, y_name: str) -> TrendFit:
    """Ordinary least squares of ``y`` on ``x`` (both 1-D, at least two distinct ``x``)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    slope, intercept = np.polyfit(x, y, 1)
    r = float(np.corrcoef(x, y)[0, 1]) if x.size > 2 else float(np.sign(slope))
    return TrendFit(x=x_name, y=y_name, slope=float(slope), intercept=float(intercept), r=r)


@dataclass(frozen=True)
class AssertionOutcome:
    """One asserted statement: ``value`` compared with ``threshold`` (``ok`` says whether it held)."""

    name: str
    kind: AssertionKind
    value: float
    threshold: float
    ok: bool
    detail: str = ""
    #: ``at_most``: the statement is ``value <= threshold``; ``at_least``: ``value >= threshold``.
    direction: Literal["at_most", "at_least"] = "at_most"

    @property
    def slack(self) -> float:
        """How far the statement is from failing, as a ratio that is ``< 1`` exactly when it fails (up to
        the tolerance folded into ``ok``): ``threshold / value`` for ``at_most``, ``value / threshold`` for
        ``at_least``; ``inf`` when the divisor is ``<= 0`` and the statement holds, ``nan`` for NaN values."""
        num, den = (self.threshold, self.value) if self.direction == "at_most" else (self.value, self.threshold)
        if np.isnan(num) or np.isnan(den):
            return float("nan")
        if den <= 0.0:
            return float("inf") if self.ok else 0.0
        return float(num / den)


@dataclass(frozen=True)
class ExperimentResult:
    """One experiment (``experiment`` is THEORY.md 10's id, e.g. ``"E3"``) at one size."""

    experiment: str
    title: str
    results: tuple[str, ...]
    size: ExperimentSize
    series: dict[str, list[float]] = field(default_factory=dict)
    trends: tuple[TrendFit, ...] = ()
    assertions: tuple[AssertionOutcome, ...] = ()
    figure: str | None = None

    @property
    def passed(self) -> bool:
        """All assertions held."""
        return all(a.ok for a in self.assertions)

    @property
    def violations(self) -> tuple[AssertionOutcome, ...]:
        return tuple(a for a in self.assertions if not a.ok)
