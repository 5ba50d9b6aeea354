"""The ``mpcert verify`` run: theorem checks and finite-N experiments printed as one ledger (THEORY.md 12).

One row per theorem: examples tried, violations, median and worst slack ratio (bound / realized, over
each example's tightest inequality), seconds.  Profile ``ci`` runs 60 derandomized examples per check;
``thorough`` runs 10,000 randomized examples per check, drawn from the random ``seed``, so a run is
reproducible.  With ``asymptotic`` the finite-N experiments of THEORY.md 10 (all, or the listed ids) run at
the profile's size and add one row each (:mod:`verification.asymptotics.ledger`).  The exit status is 1 if
any sound or exact check has a violation or any experiment assertion fails, else 0.

This module does not import hypothesis (a test extra) at import time: :func:`run_verify` imports the
checks (:mod:`.theorem_checks`) only when it runs, so the ``mpcert`` command line works without the extra.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Sequence

from rmt.errors import InvalidParameterError
from verification.bridge.arguments import check_seed
from verification.bridge.report_folder import check_out, staged_file
from verification.errors import MissingExtraError

__all__ = ["PROFILES", "HEADER", "format_row", "run_verify"]

#: ``(examples per check, derandomize)`` of each profile (matching tests/conftest.py).
PROFILES = {"ci": (60, True), "thorough": (10_000, False)}

HEADER = (
    f"{'check':22s} {'theorem':30s} {'kind':6s} {'examples':>8s} {'viol.':>6s} {'median':>9s} {'worst':>9s} "
    f"{'seconds':>8s}"
)


def _fmt(value: float) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.4g}"


def format_row(r) -> str:
    """One ledger row of a :class:`verification.theorems.theorem_checks.CheckReport`."""
    return (
        f"{r.check_id:22s} {r.theorem:30s} {r.kind:6s} {r.examples:8d} {r.violations:6d} "
        f"{_fmt(r.median_slack):>9s} {_fmt(r.worst_slack):>9s} {r.seconds:8.2f}"
    )


def _experiment_ids(asymptotic: Sequence[str] | None, skip_checks: bool, figures: Path | None) -> list[str]:
    """The experiments ``asymptotic`` selects: none without it, all when it is empty, else its ids (deduplicated)."""
    from verification.asymptotics.registry import EXPERIMENTS

    if asymptotic is None:
        if skip_checks or figures is not None:
            raise InvalidParameterError("--skip-checks and --figures need --asymptotic")
        return []
    unknown = [e for e in asymptotic if e not in EXPERIMENTS]
    if unknown:
        raise InvalidParameterError(f"--asymptotic: unknown experiment id(s) {unknown}; known: {list(EXPERIMENTS)}")
    return list(dict.fromkeys(asymptotic)) or list(EXPERIMENTS)


def _run_experiments(ids: list[str], profile: str, seed: int, figures: Path | None) -> list:
    """Run and print each experiment's row (drawing its figure into ``figures``), then its violation lines."""
    from verification.asymptotics.ledger import format_experiment_row, violation_lines
    from verification.asymptotics.registry import ExperimentRun, run_experiment

    runs = []
    for experiment_id in ids:
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


def _check_ids(only: Sequence[str] | None, skip_checks: bool, checks) -> list[str]:
    """The theorem checks to run: ``only``'s ids (checked against the registry), all, or none."""
    if skip_checks:
        return []
    unknown = [c for c in only or () if c not in checks]
    if unknown:
        raise InvalidParameterError(f"--only: unknown check id(s) {unknown}; known: {sorted(checks)}")
    return list(only) if only else list(checks)


@contextmanager
def _hypothesis_storage_outside_the_working_directory() -> Iterator[None]:
    """Point hypothesis' storage (``.hypothesis/``: its caches; the checks keep no example database) at a
    temporary folder removed afterwards, unless ``HYPOTHESIS_STORAGE_DIRECTORY`` names one."""
    if os.environ.get("HYPOTHESIS_STORAGE_DIRECTORY"):
        yield
        return
    from hypothesis.configuration import set_hypothesis_home_dir

    with tempfile.TemporaryDirectory(prefix="mpcert-verify-hypothesis-") as home:
        set_hypothesis_home_dir(home)
        try:
            yield
        finally:
            set_hypothesis_home_dir(None)


def run_verify(*, profile: str = "ci", only: Sequence[str] | None = None, json_path: Path | None = None,
               asymptotic: Sequence[str] | None = None, skip_checks: bool = False, seed: int = 0,
               figures: Path | None = None) -> int:
    """Run the checks (``only`` or all, none with ``skip_checks``) and the ``asymptotic`` experiments, print the
    ledger and return the exit status (module docstring).

    ``json_path`` is checked before any check runs and written atomically after them all; hypothesis keeps its
    storage out of the working directory.  Without hypothesis installed: :class:`MissingExtraError`.
    """
    if json_path is not None:
        check_out(json_path, force=True, kind="file", argument="--json")
    check_seed(seed)
    # the checks draw their instances with hypothesis (a test extra): imported only when verify runs
    try:
        from verification.theorems.theorem_checks import CHECKS, run_check
    except ModuleNotFoundError as exc:
        if exc.name != "hypothesis":
            raise
        raise MissingExtraError(
            "mpcert verify needs hypothesis: install the test extra (pip install 'mpcert[test]')"
        ) from exc

    with _hypothesis_storage_outside_the_working_directory():
        examples, derandomize = PROFILES[profile]
        experiment_ids = _experiment_ids(asymptotic, skip_checks, figures)
        reports = []
        print(HEADER + "\n" + "-" * len(HEADER), flush=True)
        for check_id in _check_ids(only, skip_checks, CHECKS):
            reports.append(run_check(CHECKS[check_id], examples, derandomize=derandomize, seed=seed))
            print(format_row(reports[-1]), flush=True)
        failed = [r for r in reports if r.violations]
        for r in failed:
            print(f"VIOLATION {r.check_id}: {r.counterexample}")
        runs = _run_experiments(experiment_ids, profile, seed, figures)
        if json_path is not None:
            from verification.asymptotics.ledger import experiment_record

            payload = {"profile": profile, "examples_per_check": examples, "seed": None if derandomize else seed,
                       "checks": [r.to_dict() for r in reports]}
            if asymptotic is not None:
                payload["experiments"] = [experiment_record(run) for run in runs]
            with staged_file(json_path, force=True, argument="--json") as tmp:
                tmp.write_text(json.dumps(payload, indent=2))
    return 1 if failed or any(run.result.violations for run in runs) else 0
