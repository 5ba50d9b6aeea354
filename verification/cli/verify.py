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

Argument parsing only: the work is :func:`verification.asymptotics.ledger.run_verify`, which imports hypothesis
(a test extra) only when it runs.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from verification.theorems.ledger import PROFILES

__all__ = ["register"]


def register(subparsers) -> None:
    """Add the ``verify`` sub-command to the ``mpcert`` parser."""
    parser = subparsers.add_parser("verify", help="run the theorem checks and print a ledger")
    parser.add_argument("--profile", choices=sorted(PROFILES), default="ci",
                        help="ci (60 examples) or thorough (10,000)")
    parser.add_argument("--only", nargs="+", metavar="ID",
                        help="run only these checks (ids as in the ledger's first column)")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the ledger as JSON")
    parser.add_argument("--asymptotic", nargs="*", metavar="EID",
                        help="also run the finite-N experiments of THEORY.md 10 (all, or these ids, e.g. E3)")
    parser.add_argument("--skip-checks", action="store_true", help="run only the experiments (with --asymptotic)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the thorough checks' random examples and of the experiments (default 0)")
    parser.add_argument("--figures", type=Path, metavar="DIR", help="draw each experiment's figure into DIR")
    parser.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    # imported when verify runs: the experiment modules serve verify only
    from verification.asymptotics.ledger import run_verify

    return run_verify(profile=args.profile, only=args.only, json_path=args.json, asymptotic=args.asymptotic,
                      skip_checks=args.skip_checks, seed=args.seed, figures=args.figures)
