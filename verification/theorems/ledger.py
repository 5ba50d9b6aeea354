"""The theorem-check ledger of ``mpcert verify`` (THEORY.md 12): profiles, rows, the check selection and run.

One row per theorem: examples tried, violations, median and worst slack ratio (bound / realized, over
each example's tightest inequality), seconds.  Profile ``ci`` runs 60 derandomized examples per check;
``thorough`` runs 10,000 randomized examples per check, drawn from the random ``seed``, so a run is
reproducible.  The whole ``mpcert verify`` run, with the finite-N experiments and the JSON ledger, is
:func:`verification.asymptotics.ledger.run_verify`.

This module does not import hypothesis (a test extra) at import time: the checks (:mod:`.theorem_checks`)
are imported by :func:`load_checks` and :func:`run_checks` only, so the ``mpcert`` command line works without
the extra.
"""

from __future__ import annotations

import math
import os
import tempfile
from contextlib import contextmanager
from typing import TYPE_CHECKING, Iterator, Sequence

from rmt.errors import InvalidParameterError
from verification.errors import MissingExtraError

if TYPE_CHECKING:
    from .theorem_checks import CheckReport, TheoremCheck

__all__ = ["PROFILES", "HEADER", "format_row", "load_checks", "select_checks", "hypothesis_storage_outside_cwd",
           "run_checks"]

#: ``(examples per check, derandomize)`` of each profile (matching tests/conftest.py).
PROFILES = {"ci": (60, True), "thorough": (10_000, False)}

HEADER = (
    f"{'check':22s} {'theorem':30s} {'kind':6s} {'examples':>8s} {'viol.':>6s} {'median':>9s} {'worst':>9s} "
    f"{'seconds':>8s}"
)


def _fmt(value: float) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.4g}"


def format_row(r: CheckReport) -> str:
    """One ledger row of a :class:`verification.theorems.theorem_checks.CheckReport`."""
    return (
        f"{r.check_id:22s} {r.theorem:30s} {r.kind:6s} {r.examples:8d} {r.violations:6d} "
        f"{_fmt(r.median_slack):>9s} {_fmt(r.worst_slack):>9s} {r.seconds:8.2f}"
    )


def load_checks() -> dict[str, TheoremCheck]:
    """The registry :data:`verification.theorems.theorem_checks.CHECKS`, imported now; without hypothesis (the
    test extra) :class:`MissingExtraError` says what to install."""
    try:
        from verification.theorems.theorem_checks import CHECKS
    except ModuleNotFoundError as exc:
        if exc.name != "hypothesis":
            raise
        raise MissingExtraError(
            "mpcert verify needs hypothesis: install the test extra (pip install 'mpcert[test]')"
        ) from exc
    return CHECKS


def select_checks(only: Sequence[str] | None, skip_checks: bool = False) -> list[str]:
    """The theorem checks to run: ``only``'s ids (checked against the registry), all, or none (``skip_checks``)."""
    if skip_checks:
        return []
    checks = load_checks()
    unknown = [c for c in only or () if c not in checks]
    if unknown:
        raise InvalidParameterError(f"--only: unknown check id(s) {unknown}; known: {sorted(checks)}")
    return list(only) if only else list(checks)


@contextmanager
def hypothesis_storage_outside_cwd() -> Iterator[None]:
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


def run_checks(check_ids: Sequence[str], profile: str = "ci", seed: int = 0) -> list[CheckReport]:
    """Run the checks ``check_ids`` at ``profile`` (:data:`PROFILES`; ``seed`` draws the thorough examples),
    printing each row as it finishes and then one ``VIOLATION <id>: <counterexample>`` line per failed check."""
    checks = load_checks()
    from verification.theorems.theorem_checks import run_check

    examples, derandomize = PROFILES[profile]
    reports = []
    for check_id in check_ids:
        reports.append(run_check(checks[check_id], examples, derandomize=derandomize, seed=seed))
        print(format_row(reports[-1]), flush=True)
    for r in reports:
        if r.violations:
            print(f"VIOLATION {r.check_id}: {r.counterexample}")
    return reports
