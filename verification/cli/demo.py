"""``mpcert demo``: the whole chain on the shipped default model, in one command.

    mpcert demo [--out DIR] [--quick]

Argument parsing only: the work is :func:`verification.bridge.demo.run_demo` (its module docstring has the details).
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

from threadpoolctl import threadpool_limits
import torch

from verification.bridge.certify import LIPSCHITZ_METHODS, SOUND_BUDGET, SOUND_BUDGET_CUDA
from verification.bridge.demo import DEFAULT_SETTINGS, QUICK_SETTINGS, run_demo
from verification.bridge.distributed import available_cores
from verification.bridge.arguments import check_integer

__all__ = ["register"]


def register(subparsers) -> None:
    """Add the ``demo`` sub-command to the ``mpcert`` parser."""
    parser = subparsers.add_parser(
        "demo", help="the whole chain on the default model: MP fit, Hybrid and CAST 2:4 masks, certify both, reports",
        description=__doc__.split("\n\n")[0],
    )
    parser.add_argument("--out", metavar="DIR", default="mpcert-demo", help="report folder (default: %(default)s)")
    parser.add_argument("--quick", action="store_true", help="small sizes (8 + 8 images, grid 2, no multi-layer audit)")
    parser.add_argument("--calibration", type=int, help=f"calibration images (default: {DEFAULT_SETTINGS.calibration})")
    parser.add_argument("--heldout", type=int, help=f"held-out images (default: {DEFAULT_SETTINGS.heldout})")
    parser.add_argument("--grid", type=int,
                        help=f"theta intervals of the L_s estimate (default: {DEFAULT_SETTINGS.grid})")
    parser.add_argument("--sparsity", type=float, help=f"Hybrid target sparsity (default: {DEFAULT_SETTINGS.sparsity})")
    parser.add_argument("--train-images", type=int,
                        help=f"Hybrid training images (default: {DEFAULT_SETTINGS.train_images})")
    parser.add_argument("--steps", type=int,
                        help=f"Hybrid optimiser steps per phase (default: {DEFAULT_SETTINGS.steps})")
    parser.add_argument("--seed", type=int, help="seed of the image choice and training (default: 0)")
    parser.add_argument("--lipschitz", choices=LIPSCHITZ_METHODS,
                        help="L_s of the audits: 'sound' (default: interval forward mode where it reaches the logits, "
                             "on CUDA when available) or 'estimate' (finite differences: estimates, not certificates)")
    parser.add_argument("--sound-budget", type=int, metavar="K",
                        help="with --lipschitz sound: sub-intervals of theta per sample "
                             f"(default: {SOUND_BUDGET} on the CPU, {SOUND_BUDGET_CUDA} on CUDA)")
    parser.add_argument("--sound-device", metavar="DEVICE",
                        help="with --lipschitz sound: 'auto' (CUDA when available), 'cpu' or 'cuda[:N]' "
                             "(default: auto)")
    parser.add_argument("--threads", type=int, help="torch threads, shared out among the workers "
                        "(default: the cores available)")
    parser.add_argument("--workers", type=int, default=available_cores(), metavar="N",
                        help="local torch.distributed ranks sharing each mask's audits "
                             "(default: the cores available, %(default)s)")
    parser.add_argument("--force", action="store_true", help="replace a non-empty existing --out folder")
    parser.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    base = QUICK_SETTINGS if args.quick else DEFAULT_SETTINGS
    overrides = {k: getattr(args, k) for k in ("calibration", "heldout", "grid", "sparsity", "train_images", "steps",
                                               "seed", "lipschitz", "sound_budget", "sound_device")
                 if getattr(args, k) is not None}
    threads = check_integer(available_cores() if args.threads is None else args.threads, "--threads", 1)
    check_integer(args.workers, "--workers", 1)
    torch.set_num_threads(threads)
    with threadpool_limits(threads):
        summary = run_demo(Path(args.out), replace(base, **overrides), force=args.force, progress=True,
                           workers=args.workers)
    for row in summary["masks"]:
        labels = row["lipschitz_labels"]
        print(f"{row['mask']}: sparsity {row['sparsity']:.3f}, {row['layers']} layers, "
              f"L_s sound on {labels['sound']} / estimate on {labels['estimate']} audits, "
              f"{row['violations']} violation(s), {row['estimate_diagnostics']} diagnostic(s) of the estimate, "
              f"execution {row['execution']}")
    print(f"demo finished in {summary['wall_time_s']:.1f} s; reports in {args.out} (start with summary.md)")
    return 0
