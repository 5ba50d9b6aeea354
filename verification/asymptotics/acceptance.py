"""Acceptance rules that turn measurements into :class:`AssertionOutcome` rows (THEORY.md 0.3, 9.5, 10).

* :func:`binomial_threshold` — THEORY.md 9.5: ``K`` independent draws of an event that fails with
  probability at most ``delta`` are accepted when the failure count is ``F <= q``,
  ``q = scipy.stats.binom.ppf(1 - alpha, K, delta)`` with test level ``alpha = 1e-6`` (so a correct
  implementation is rejected with probability at most ``1e-6``).
* :func:`failure_frequency` — that rule as a ``statistical`` assertion (observed rate in the detail).
* :func:`at_most` / :func:`at_least` — a measured value against a THEORY.md 10 tolerance.
* :func:`from_check` — a SOUND inequality evaluated with the THEORY.md 0.3 float tolerance
  (:class:`verification.theorems.check_outcomes.CheckOutcome`) as a ``sound`` assertion.
"""

from __future__ import annotations

import math

from scipy import stats

from rmt.errors import InvalidParameterError
from verification.theorems.check_outcomes import CheckOutcome

from .result import AssertionKind, AssertionOutcome

__all__ = ["TEST_LEVEL", "binomial_threshold", "failure_frequency", "at_most", "at_least", "from_check"]

#: Test level ``alpha`` of THEORY.md 9.5.
TEST_LEVEL = 1e-6


def binomial_threshold(draws: int, delta: float, alpha: float = TEST_LEVEL) -> int:
    """Largest accepted failure count ``q = binom.ppf(1 - alpha, draws, delta)`` (THEORY.md 9.5).

    Examples from the spec: ``(200, 0.05) -> 27``, ``(1000, 0.05) -> 86``, ``(200, 0.01) -> 12``.
    """
    if int(draws) != draws or draws < 1:
        raise InvalidParameterError(f"draws must be a positive integer, got {draws!r}")
    if not 0.0 <= float(delta) <= 1.0:
        raise InvalidParameterError(f"delta must lie in [0, 1], got {delta!r}")
    if not 0.0 < float(alpha) < 1.0:
        raise InvalidParameterError(f"alpha must lie in (0, 1), got {alpha!r}")
    return int(stats.binom.ppf(1.0 - float(alpha), int(draws), float(delta)))


def failure_frequency(name: str, failures: int, draws: int, delta: float, detail: str = "") -> AssertionOutcome:
    """``failures <= binomial_threshold(draws, delta)`` as a ``statistical`` assertion."""
    q = binomial_threshold(draws, delta)
    note = f"{failures}/{draws} failures (rate {failures / draws:.3g}, delta {delta:.3g}, accept <= {q})"
    return AssertionOutcome(name=name, kind="statistical", value=float(failures), threshold=float(q),
                            ok=failures <= q, detail=f"{note}; {detail}" if detail else note)


def at_most(name: str, kind: AssertionKind, value: float, threshold: float, detail: str = "") -> AssertionOutcome:
    """``value <= threshold`` (a NaN value fails)."""
    value, threshold = float(value), float(threshold)
    return AssertionOutcome(name=name, kind=kind, value=value, threshold=threshold,
                            ok=bool(value <= threshold), detail=detail)


def at_least(name: str, kind: AssertionKind, value: float, threshold: float, detail: str = "") -> AssertionOutcome:
    """``value >= threshold`` (a NaN value fails)."""
    value, threshold = float(value), float(threshold)
    return AssertionOutcome(name=name, kind=kind, value=value, threshold=threshold,
                            ok=bool(value >= threshold), detail=detail, direction="at_least")


def from_check(name: str, outcome: CheckOutcome, detail: str = "") -> AssertionOutcome:
    """A SOUND inequality ``realized <= bound`` (THEORY.md 0.3 tolerance already in ``outcome.ok``)."""
    value = outcome.realized if math.isfinite(outcome.realized) else float("nan")
    return AssertionOutcome(name=name, kind="sound", value=value, threshold=outcome.bound,
                            ok=bool(outcome.ok), detail=detail)
