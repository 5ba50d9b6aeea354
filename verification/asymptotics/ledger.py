"""Ledger rows and JSON records of the finite-N experiments (``mpcert verify --asymptotic``).

A row has the columns of the theorem-check ledger (:mod:`verification.theorems.ledger`): id, results
(truncated), kind ``asym``, assertions evaluated, assertions failed, median and worst slack over the
assertions (:attr:`AssertionOutcome.slack`, ``< 1`` exactly when one fails) and seconds.
"""

from __future__ import annotations

import math
from dataclasses import asdict
from typing import Any

import numpy as np

from .registry import ExperimentRun

__all__ = ["format_experiment_row", "experiment_record", "violation_lines"]


def _fmt(value: float) -> str:
    return "-" if not math.isfinite(value) else f"{value:.4g}"


def _slacks(run: ExperimentRun) -> list[float]:
    return [a.slack for a in run.result.assertions if math.isfinite(a.slack)]


def format_experiment_row(run: ExperimentRun) -> str:
    """One ledger row (same widths as :func:`verification.theorems.ledger.format_row`)."""
    r = run.result
    slacks = _slacks(run)
    median = float(np.median(slacks)) if slacks else float("nan")
    worst = float(np.min(slacks)) if slacks else float("nan")
    return (f"{r.experiment:22s} {', '.join(r.results)[:30]:30s} {'asym':6s} {len(r.assertions):8d} "
            f"{len(r.violations):6d} {_fmt(median):>9s} {_fmt(worst):>9s} {run.seconds:8.2f}")


def violation_lines(run: ExperimentRun) -> list[str]:
    """``VIOLATION <id>: ...`` for every failed assertion."""
    return [f"VIOLATION {run.result.experiment}: [{a.kind}] {a.name}: value={a.value:.6g} "
            f"{'<=' if a.direction == 'at_most' else '>='} {a.threshold:.6g} failed"
            + (f" ({a.detail})" if a.detail else "") for a in run.result.violations]


def _clean(value: Any) -> Any:
    """JSON-safe copy: non-finite floats become ``None``."""
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def experiment_record(run: ExperimentRun) -> dict[str, Any]:
    """The whole result (series, trends, assertions with their slack) as a JSON-safe dict."""
    r = run.result
    return _clean({
        "experiment": r.experiment, "title": r.title, "results": list(r.results), "size": r.size,
        "passed": r.passed, "violations": len(r.violations), "seconds": run.seconds, "figure": r.figure,
        "trends": [asdict(t) for t in r.trends],
        "assertions": [{**asdict(a), "slack": a.slack} for a in r.assertions],
        "series": r.series,
    })
