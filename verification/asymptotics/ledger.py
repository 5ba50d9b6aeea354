"""The ``mpcert verify`` ledger: the theorem-check rows and the finite-N experiment rows, printed and in JSON.

An experiment row has the columns of the theorem-check ledger (:mod:`verification.theorems.ledger`): id, results
(truncated), kind ``asym``, assertions evaluated, assertions failed, median and worst slack over the
assertions (:attr:`AssertionOutcome.slack`, ``< 1`` exactly when one fails) and seconds.

:func:`run_verify` is the whole ``mpcert verify`` run: the theorem checks
(:func:`verification.theorems.ledger.run_checks`) and, with ``asymptotic``, the experiments of THEORY.md 10 (all, or the
listed ids) at the profile's size (``ci``: reduced; ``thorough``: full), each figure drawn with ``figures``; the exit
status is 1 if a sound or exact check has a violation or an experiment assertion fails, else 0.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from rmt.errors import InvalidParameterError
from verification.bridge.arguments import check_seed
from verification.bridge.report_folder import check_out, staged_file
from verification.theorems.ledger import (
    HEADER,
    PROFILES,
    hypothesis_storage_outside_cwd,
    load_checks,
    run_checks,
    select_checks,
)

from .registry import EXPERIMENTS, ExperimentRun, run_experiment

__all__ = ["format_experiment_row", "experiment_record", "violation_lines", "select_experiments", "run_experiments",
           "run_verify"]


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


def select_experiments(asymptotic: Sequence[str] | None, skip_checks: bool = False,
                       figures: Path | None = None) -> list[str]:
    """The experiments ``asymptotic`` selects: none without it (then ``skip_checks`` and ``figures`` are refused),
    all when it is empty, else its ids in order, once each (checked against :data:`EXPERIMENTS`)."""
    if asymptotic is None:
        if skip_checks or figures is not None:
            raise InvalidParameterError("--skip-checks and --figures need --asymptotic")
        return []
    unknown = [e for e in asymptotic if e not in EXPERIMENTS]
    if unknown:
        raise InvalidParameterError(f"--asymptotic: unknown experiment id(s) {unknown}; known: {list(EXPERIMENTS)}")
    return list(dict.fromkeys(asymptotic)) or list(EXPERIMENTS)


def run_experiments(experiment_ids: Sequence[str], profile: str = "ci", seed: int = 0,
                    figures: Path | None = None) -> list[ExperimentRun]:
    """Run the experiments at the ``profile`` size, printing each row as it finishes (its figure drawn into
    ``figures``), then the violation lines of them all."""
    runs = []
    for experiment_id in experiment_ids:
        run = run_experiment(experiment_id, profile, seed)
        if figures is not None:
            from figures.asymptotic_plots import plot_experiment

            run = ExperimentRun(plot_experiment(run.result, figures), run.seconds)
        runs.append(run)
        print(format_experiment_row(run), flush=True)
    for run in runs:
        for line in violation_lines(run):
            print(line)
    return runs


def run_verify(*, profile: str = "ci", only: Sequence[str] | None = None, json_path: Path | None = None,
               asymptotic: Sequence[str] | None = None, skip_checks: bool = False, seed: int = 0,
               figures: Path | None = None) -> int:
    """``mpcert verify`` (module docstring): print the ledger, write it to ``json_path``, return the exit status.

    Every argument is checked before any check runs (``json_path`` writable, ``seed``, hypothesis installed, the
    experiment and check ids); the JSON is written atomically after them all; hypothesis keeps its storage out of
    the working directory.
    """
    if json_path is not None:
        check_out(json_path, force=True, kind="file", argument="--json")
    check_seed(seed)
    load_checks()  # hypothesis (a test extra) is imported only now: MissingExtraError without it
    with hypothesis_storage_outside_cwd():
        examples, derandomize = PROFILES[profile]
        experiment_ids = select_experiments(asymptotic, skip_checks, figures)
        print(HEADER + "\n" + "-" * len(HEADER), flush=True)
        reports = run_checks(select_checks(only, skip_checks), profile, seed)
        runs = run_experiments(experiment_ids, profile, seed, figures)
        if json_path is not None:
            payload = {"profile": profile, "examples_per_check": examples, "seed": None if derandomize else seed,
                       "checks": [r.to_dict() for r in reports]}
            if asymptotic is not None:
                payload["experiments"] = [experiment_record(run) for run in runs]
            with staged_file(json_path, force=True, argument="--json") as tmp:
                tmp.write_text(json.dumps(payload, indent=2))
    return 1 if any(r.violations for r in reports) or any(run.result.violations for run in runs) else 0
