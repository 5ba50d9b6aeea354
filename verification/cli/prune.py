"""``mpcert prune``: build a pruning mask and write it with :meth:`pruning.mask.Mask.save`.

    mpcert prune SOURCE --method {magnitude,rmt,seb,ser,hybrid,cast} [--sparsity S | --pattern K:N] --out MASK
                 [--packed-out CHECKPOINT]

Argument parsing only: the work is :func:`verification.bridge.prune_file.run_prune` (its module docstring has the
details).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pruning.rmt_baseline import RMT_COMPATS
from verification.bridge.prune_file import METHODS, run_prune

__all__ = ["register"]


def register(subparsers) -> None:
    """Add the ``prune`` sub-command to the ``mpcert`` parser."""
    parser = subparsers.add_parser("prune",
                                   help="build a pruning mask (magnitude, classical RMT, SEB, SER, Hybrid, CAST)",
                                   description=__doc__.split("\n\n")[0])
    parser.add_argument("source", metavar="SOURCE", help="'default', 'deep', a timm model name, or a state-dict file")
    parser.add_argument("--method", required=True, choices=METHODS)
    parser.add_argument("--sparsity", type=float, help="target global sparsity in [0, 1) (unstructured methods)")
    parser.add_argument("--pattern",
                        help="k:n pattern for --method cast (default 2:4) or magnitude (instead of --sparsity)")
    parser.add_argument("--scope", choices=("global", "layerwise"), default="global",
                        help="magnitude scope (default: %(default)s)")
    parser.add_argument("--compat", choices=RMT_COMPATS, default="paper",
                        help="classical-RMT post-pruning step, ALGORITHMS.md C6 (default: %(default)s)")
    parser.add_argument("--checkpoint", metavar="FILE", help="weights for a timm name or 'default' (loaded strictly)")
    parser.add_argument("--data", default="default", help="'default' or a folder of Fashion-MNIST idx files")
    parser.add_argument("--calibration", type=int, default=64, help="CAST calibration images (default: %(default)s)")
    parser.add_argument("--train-images", type=int, default=256,
                        help="SER/Hybrid training images (default: %(default)s)")
    parser.add_argument("--steps", type=int, default=20,
                        help="max optimiser steps per training phase (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seed of image choice and training (default: %(default)s)")
    parser.add_argument("--out", metavar="MASK", required=True, help="mask file to write (.safetensors)")
    parser.add_argument("--packed-out", metavar="CHECKPOINT",
                        help="with a 2:4 mask: also write the 2:4 checkpoint (.safetensors) of the converted model")
    parser.add_argument("--force", action="store_true", help="replace an existing --out / --packed-out file")
    parser.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    mask, description = run_prune(
        args.source, method=args.method, out=Path(args.out), sparsity=args.sparsity, pattern=args.pattern,
        scope=args.scope, compat=args.compat, checkpoint=args.checkpoint, data=args.data, calibration=args.calibration,
        train_images=args.train_images, steps=args.steps, seed=args.seed, force=args.force,
        packed_out=None if args.packed_out is None else Path(args.packed_out),
    )
    report = mask.sparsity_report()
    print(f"{description}")
    print(f"{args.method}: {len(mask.keep)} layers, {report.zeros}/{report.total} pruned "
          f"(sparsity {report.global_sparsity:.6f}, pattern {mask.pattern_name}); mask written to {args.out}")
    if args.packed_out is not None:
        print(f"2:4 checkpoint written to {args.packed_out} (load with pruning.packed24.load_24)")
    return 0
