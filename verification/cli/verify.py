"""``mpcert verify``: run the theorem checks and print a ledger (THEORY.md 12).

    mpcert verify [--profile ci|thorough] [--only ID ...] [--json FILE]
                  [--asymptotic [EID ...]] [--skip-checks] [--seed S] [--figures DIR]

One row per theorem: examples tried, violations, median and worst slack ratio (bound / realized, over
each example's tightest inequality), seconds.  Profile ``ci`` runs 60 derandomized examples per check;
``thorough`` runs 10,000 randomized examples per check, drawn from the random seed ``--seed`` (default 0), so a
run is reproducible.  Exit status 1 if any sound or exact check has a violation.

``--asymptotic`` also runs the finite-N experiments of THEORY.md 10 (all, or the listed ids such as
``E3``) at the profile's size (``ci``: reduced; ``thorough``: full) and adds one row per experiment
(assertions evaluated, failed, median/worst slack; :mod:`verification.asymptotics.ledger`) and their
records to the JSON; ``--figures DIR`` draws each experiment's figure there; ``--skip-checks`` runs only
the experiments.  Exit status 1 also if any experiment assertion fails.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from rmt.errors import InvalidParameterError
from verification.bridge.arguments import check_seed
from verification.bridge.report_folder import check_out, staged_file
from verification.errors import MissingExtraError

__all__ = ["PROFILES", "HEADER", "register", "run_verify", "format_row"]

#: ``(examples per check, derandomize)`` of each profile (matching tests/conftest.py).
PROFILES = {"ci": (60, True), "thorough": (10_000, False)}


def register(subparsers) -> None:
    parser = subparsers.add_parser("verify", help="run the theorem checks and print a ledger")
    parser.add_argument("--profile", choices=sorted(PROFILES), default="ci", help="ci (60 examples) or thorough (10,000)")
    parser.add_argument("--only", nargs="+", metavar="ID", help="run only these checks (ids as in the ledger's first column)")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the ledger as JSON")
    parser.add_argument("--asymptotic", nargs="*", metavar="EID",
                        help="also run the finite-N experiments of THEORY.md 10 (all, or these ids, e.g. E3)")
    parser.add_argument("--skip-checks", action="store_true", help="run only the experiments (with --asymptotic)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the thorough checks' random examples and of the experiments (default 0)")
    parser.add_argument("--figures", type=Path, metavar="DIR", help="draw each experiment's figure into DIR")
    parser.set_defaults(func=run_verify)


def _fmt(value: float) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.4g}"


HEADER = (
    f"{'check':22s} {'theorem':30s} {'kind':6s} {'examples':>8s} {'viol.':>6s} {'median':>9s} {'worst':>9s} {'seconds':>8s}"
)


def format_row(r) -> str:
    """One ledger row of a :class:`verification.theorems.theorem_checks.CheckReport`."""
    return (
        f"{r.check_id:22s} {r.theorem:30s} {r.kind:6s} {r.examples:8d} {r.violations:6d} "
        f"{_fmt(r.median_slack):>9s} {_fmt(r.worst_slack):>9s} {r.seconds:8.2f}"
    )


def _experiment_ids(args: argparse.Namespace) -> list[str]:
    """The experiments ``--asymptotic`` selects (none without the flag)."""
    from verification.asymptotics.registry import EXPERIMENTS

    if args.asymptotic is None:
        if args.skip_checks or args.figures is not None:
            raise InvalidParameterError("--skip-checks and --figures need --asymptotic")
        return []
    unknown = [e for e in args.asymptotic if e not in EXPERIMENTS]
    if unknown:
        raise InvalidParameterError(f"--asymptotic: unknown experiment id(s) {unknown}; known: {list(EXPERIMENTS)}")
    return list(dict.fromkeys(args.asymptotic)) or list(EXPERIMENTS)


def _run_experiments(ids: list[str], args: argparse.Namespace) -> list:
    from verification.asymptotics.ledger import format_experiment_row, violation_lines
    from verification.asymptotics.registry import ExperimentRun, run_experiment

    runs = []
    for experiment_id in ids:
        run = run_experiment(experiment_id, args.profile, args.seed)
        if args.figures is not None:
            from figures.asymptotic_plots import plot_experiment

            run = ExperimentRun(plot_experiment(run.result, args.figures), run.seconds)
        runs.append(run)
        print(format_experiment_row(run), flush=True)
    for run in runs:
        for line in violation_lines(run):
            print(line)
    return runs


def _check_ids(args: argparse.Namespace, checks) -> list[str]:
    """The theorem checks to run: ``--only``'s ids (checked against the registry), all, or none."""
    if args.skip_checks:
        return []
    unknown = [c for c in args.only or () if c not in checks]
    if unknown:
        raise InvalidParameterError(f"--only: unknown check id(s) {unknown}; known: {sorted(checks)}")
    return list(args.only) if args.only else list(checks)


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


def run_verify(args: argparse.Namespace) -> int:
    """``mpcert verify``: ``--json`` is checked before any check runs and written atomically after them all;
    hypothesis keeps its storage out of the working directory."""
    if args.json is not None:
        check_out(args.json, force=True, kind="file", argument="--json")
    check_seed(args.seed)
    # the checks draw their instances with hypothesis (a test extra): imported only when verify runs
    try:
        from verification.theorems.theorem_checks import CHECKS, run_check
    except ModuleNotFoundError as exc:
        if exc.name != "hypothesis":
            raise
        raise MissingExtraError("mpcert verify needs hypothesis: install the test extra (pip install 'mpcert[test]')") from exc

    with _hypothesis_storage_outside_the_working_directory():
        return _run_verify(args, CHECKS, run_check)


def _run_verify(args: argparse.Namespace, checks, run_check) -> int:
    examples, derandomize = PROFILES[args.profile]
    experiment_ids = _experiment_ids(args)
    reports = []
    print(HEADER + "\n" + "-" * len(HEADER), flush=True)
    for check_id in _check_ids(args, checks):
        reports.append(run_check(checks[check_id], examples, derandomize=derandomize, seed=args.seed))
        print(format_row(reports[-1]), flush=True)
    failed = [r for r in reports if r.violations]
    for r in failed:
        print(f"VIOLATION {r.check_id}: {r.counterexample}")
    runs = _run_experiments(experiment_ids, args)
    if args.json is not None:
        from verification.asymptotics.ledger import experiment_record

        payload = {"profile": args.profile, "examples_per_check": examples, "seed": None if derandomize else args.seed,
                   "checks": [r.to_dict() for r in reports]}
        if args.asymptotic is not None:
            payload["experiments"] = [experiment_record(run) for run in runs]
        with staged_file(args.json, force=True, argument="--json") as tmp:
            tmp.write_text(json.dumps(payload, indent=2))
    return 1 if failed or any(run.result.violations for run in runs) else 0
