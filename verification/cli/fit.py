"""``mpcert fit SOURCE``: fit the MP law to every prunable layer and write a report folder.

Argument parsing only: the work is :func:`verification.bridge.fit_report.run_fit` (its module docstring has the
details).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rmt.fit import METHODS, SPIKE_TESTS, TW_FORMS
from rmt.spike_test import DEFAULT_SPIKE_ALPHA
from verification.bridge.fit_report import format_table, run_fit

__all__ = ["register"]


def register(subparsers) -> None:
    """Add the ``fit`` sub-command to the ``mpcert`` parser."""
    parser = subparsers.add_parser(
        "fit",
        help="fit the Marchenko-Pastur law to every Linear/Conv2d weight of a model",
        description=__doc__.split("\n\n")[0],
    )
    parser.add_argument("source", help="a .safetensors/.pt/.pth state dict, a timm model name, 'default' or 'deep'")
    parser.add_argument("--checkpoint", metavar="FILE", help="local weights for a timm model name (loaded strictly)")
    parser.add_argument("--out", metavar="DIR", default="mpcert-report", help="report folder (default: %(default)s)")
    parser.add_argument("--force", action="store_true", help="replace a non-empty existing --out folder")
    parser.add_argument("--method", choices=METHODS, default="bema", help="variance estimator (default: %(default)s)")
    parser.add_argument("--alpha-bema", type=float, default=0.25,
                        help="BEMA window trim in (0, 1/2) (default: %(default)s)")
    parser.add_argument("--beta-tw", type=float, default=0.8, help="Tracy-Widom level in (0, 1) (default: %(default)s)")
    parser.add_argument("--tw-form", choices=TW_FORMS, default="reference",
                        help="TW margin form (default: %(default)s)")
    parser.add_argument("--spike-test", choices=SPIKE_TESTS, default="calibrated",
                        help="spike count: sequential Tracy-Widom test at --spike-alpha, or the paper's "
                             "#{s > sigma_plus} (default: %(default)s)")
    parser.add_argument("--spike-alpha", type=float, default=DEFAULT_SPIKE_ALPHA,
                        help="family-wise false-alarm rate of the calibrated spike test (default: %(default)s)")
    parser.add_argument("--no-plots", action="store_true", help="do not draw the per-layer ESD figures")
    parser.add_argument("--json-only", action="store_true",
                        help="print the fits.json document to stdout instead of the table "
                             "(the folder is still written)")
    parser.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    document = run_fit(
        args.source,
        out=Path(args.out),
        checkpoint=args.checkpoint,
        method=args.method,
        alpha_bema=args.alpha_bema,
        beta_tw=args.beta_tw,
        tw_form=args.tw_form,
        spike_test=args.spike_test,
        spike_alpha=args.spike_alpha,
        plots=not args.no_plots,
        force=args.force,
    )
    if args.json_only:
        print(json.dumps(document, indent=2))
    else:
        print(document["description"])
        print(format_table(document["layers"]))
        print(f"report written to {args.out}")
    return 0
