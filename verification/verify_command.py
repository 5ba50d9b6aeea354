"""``mpcert verify``: run the theorem checks and print a ledger (THEORY.md 12).

    mpcert verify [--profile ci|thorough] [--only ID ...] [--json FILE]

One row per theorem: examples tried, violations, median and worst slack ratio (bound / realized, over
each example's tightest inequality), seconds.  Profile ``ci`` runs 60 derandomized examples per check;
``thorough`` runs 10,000 randomized examples per check.  Exit status 1 if any sound or exact check has
a violation.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from .theorem_checks import CHECKS, CheckReport, run_check

__all__ = ["PROFILES", "HEADER", "register", "run_verify", "format_row", "format_ledger"]

#: ``(examples per check, derandomize)`` of each profile (matching tests/conftest.py).
PROFILES = {"ci": (60, True), "thorough": (10_000, False)}


def register(subparsers) -> None:
    parser = subparsers.add_parser("verify", help="run the theorem checks and print a ledger")
    parser.add_argument("--profile", choices=sorted(PROFILES), default="ci", help="ci (60 examples) or thorough (10,000)")
    parser.add_argument("--only", nargs="+", metavar="ID", choices=sorted(CHECKS), help="run only these checks")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the ledger as JSON")
    parser.set_defaults(func=run_verify)


def _fmt(value: float) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.4g}"


HEADER = (
    f"{'check':22s} {'theorem':30s} {'kind':6s} {'examples':>8s} {'viol.':>6s} {'median':>9s} {'worst':>9s} {'seconds':>8s}"
)


def format_row(r: CheckReport) -> str:
    """One ledger row."""
    return (
        f"{r.check_id:22s} {r.theorem:30s} {r.kind:6s} {r.examples:8d} {r.violations:6d} "
        f"{_fmt(r.median_slack):>9s} {_fmt(r.worst_slack):>9s} {r.seconds:8.2f}"
    )


def format_ledger(reports: list[CheckReport]) -> str:
    """The ledger as a fixed-width table."""
    return "\n".join([HEADER, "-" * len(HEADER), *(format_row(r) for r in reports)])


def run_verify(args: argparse.Namespace) -> int:
    examples, derandomize = PROFILES[args.profile]
    reports = []
    print(HEADER + "\n" + "-" * len(HEADER), flush=True)
    for check_id in args.only or list(CHECKS):
        reports.append(run_check(CHECKS[check_id], examples, derandomize=derandomize))
        print(format_row(reports[-1]), flush=True)
    failed = [r for r in reports if r.violations]
    for r in failed:
        print(f"VIOLATION {r.check_id}: {r.counterexample}")
    if args.json is not None:
        payload = {"profile": args.profile, "examples_per_check": examples, "checks": [r.to_dict() for r in reports]}
        args.json.write_text(json.dumps(payload, indent=2))
    return 1 if failed else 0
