"""``mpcert figures``: the paper's size-trend figures, and our own measurement of the same trend.

    mpcert figures paper [--out DIR]
    mpcert figures measured [--out DIR] [--config small|full] [--from-ledger FILE] [--ledger-dir DIR]

``paper`` redraws Figures 2 and 3 from the published ledgers shipped in ``figures/data/paper``
(PNG + PDF + ``paper_figures.json`` with every fitted number and the paper's internal
disagreements).  ``measured`` trains the ViT family of the chosen configuration on the default
offline dataset, prunes, fine-tunes, evaluates and certifies each member
(:mod:`verification.models.measured_trend`), writes the ledger (``measured_ledger.csv`` / ``.json``) into
``--ledger-dir`` (default: ``--out``) and draws the three measured figures; with
``--from-ledger`` it only redraws from an existing ledger (no training); ``--from-ledger committed``
redraws the full measurement shipped in ``figures/data/measured``.

Argument parsing only: the work is :func:`figures.paper_figures.write_paper_figures` and
:func:`verification.models.measured_trend.measure_and_draw`; this module prints the files they wrote and their
fitted lines.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from figures.measured_figures import MeasuredFigures
    from figures.paper_figures import PaperFigures

__all__ = ["register"]


def register(subparsers) -> None:
    """Add the ``figures`` sub-command (with ``paper`` and ``measured``) to the ``mpcert`` parser."""
    parser = subparsers.add_parser("figures",
                                   help="size-trend figures: the paper's (from its ledgers) and ours (measured)",
                                   description="The paper's size-trend figures (from its ledgers), and our own "
                                               "measurement of the same trend.")
    sub = parser.add_subparsers(dest="figures_command", required=True, metavar="WHICH")
    paper = sub.add_parser("paper", help="redraw the paper's Figures 2 and 3 from the published ledgers")
    paper.add_argument("--out", type=Path, default=Path("mpcert-figures/paper"),
                       help="output folder (default: %(default)s)")
    paper.set_defaults(func=_paper)
    measured = sub.add_parser("measured", help="measure the size trend on a ViT family and draw it")
    measured.add_argument("--out", type=Path, default=Path("mpcert-figures/measured"),
                          help="output folder (default: %(default)s)")
    measured.add_argument("--config", choices=("small", "full"), default="small",
                          help="measurement size (default: %(default)s)")
    measured.add_argument("--from-ledger", type=Path, metavar="FILE",
                          help="redraw from this ledger (.csv or .json; 'committed': the shipped full measurement), "
                               "no training")
    measured.add_argument("--ledger-dir", type=Path, metavar="DIR", help="where to write the ledger (default: --out)")
    measured.add_argument("--data", default=None,
                          help="folder of Fashion-MNIST idx files (default: the offline default)")
    measured.set_defaults(func=_measured)


def _print_figures(result: PaperFigures | MeasuredFigures) -> int:
    """Print the written files and the fitted lines of a ``PaperFigures`` / ``MeasuredFigures``."""
    for path in result.files:
        print(f"wrote {path}")
    for line in result.summary_lines():
        print(line)
    return 0


# The figure modules (and the training pipeline behind ``measured``) are imported when their command runs, not when
# the ``mpcert`` parser is built: every other command then loads the same modules as before, and hypothesis, which
# draws constants from the loaded local modules, derives the same ``mpcert verify`` examples.
def _paper(args: argparse.Namespace) -> int:
    from figures.paper_figures import write_paper_figures

    return _print_figures(write_paper_figures(args.out))


def _measured(args: argparse.Namespace) -> int:
    from verification.models.measured_trend import measure_and_draw

    return _print_figures(measure_and_draw(args.out, config=args.config, from_ledger=args.from_ledger,
                                           ledger_dir=args.ledger_dir, data=args.data,
                                           log=lambda line: print(line, flush=True)))


if __name__ == "__main__":  # pragma: no cover
    from verification.cli import main

    sys.exit(main(["figures", *sys.argv[1:]]))
