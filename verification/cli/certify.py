"""``mpcert certify``: audit a mask on a model and write ``report.json`` + ``report.md`` atomically.

    mpcert certify --model NAME_OR_DEFAULT [--checkpoint FILE] --mask FILE_OR_METHOD [--data ...] --out DIR

Argument parsing only: the work is :func:`verification.bridge.certify_folder.run_certify` (its module docstring has the
details).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from verification.bridge.certify import LIPSCHITZ_METHODS, ORDERS, SOUND_BUDGET, SOUND_BUDGET_CUDA
from verification.bridge.certify_folder import MASK_METHODS, run_certify
from verification.bridge.distributed import available_cores

__all__ = ["register"]


def register(subparsers) -> None:
    """Add the ``certify`` sub-command to the ``mpcert`` parser."""
    parser = subparsers.add_parser(
        "certify",
        help="certify the Section 5 bounds of a mask on a model (sound L_s by default)",
        description=__doc__.split("\n\n")[0],
    )
    parser.add_argument("--model", default="default",
                        help="'default', 'deep' or a timm model name (default: %(default)s)")
    parser.add_argument("--checkpoint", metavar="FILE",
                        help="weights for --model (.safetensors or .pt, loaded strictly)")
    parser.add_argument("--mask", required=True, metavar="FILE_OR_METHOD",
                        help=f"a mask file, or one of {', '.join(MASK_METHODS)}")
    parser.add_argument("--sparsity", type=float, default=0.5,
                        help="target sparsity of a magnitude mask (default: %(default)s)")
    parser.add_argument("--layers", nargs="+", metavar="GLOB",
                        help="audit only the supported layers matching any glob (e.g. 'blocks.11.mlp.*')")
    parser.add_argument("--data", default="default",
                        help="'default', a folder of Fashion-MNIST idx files, or a .npz/.pt file with images and "
                             "labels")
    parser.add_argument("--calibration", type=int, default=32, help="calibration images |T| (default: %(default)s)")
    parser.add_argument("--heldout", type=int, default=32, help="held-out images, 0 for none (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the image choice (default: %(default)s)")
    parser.add_argument("--lambda1", type=float, default=0.0, help="elastic-net lambda1 (default: %(default)s)")
    parser.add_argument("--lambda2", type=float, default=0.0, help="elastic-net lambda2 (default: %(default)s)")
    parser.add_argument("--grid", type=int, default=16,
                        help="theta intervals of the L_s estimate (default: %(default)s)")
    parser.add_argument("--lipschitz", choices=LIPSCHITZ_METHODS, default="sound",
                        help="L_s method: 'sound' (default: interval forward mode; layers it cannot reach keep the "
                             "estimate, labelled) or 'estimate' (finite differences: estimates, not certificates)")
    parser.add_argument("--sound-budget", type=int, metavar="K",
                        help="with --lipschitz sound: sub-intervals of theta per sample; more reaches earlier layers "
                             f"at a cost (default: {SOUND_BUDGET} on the CPU, {SOUND_BUDGET_CUDA} on CUDA)")
    parser.add_argument("--sound-device", default="auto", metavar="DEVICE",
                        help="with --lipschitz sound: 'auto' (CUDA when available), 'cpu' or 'cuda[:N]' "
                             "(default: %(default)s)")
    parser.add_argument("--workers", type=int, default=available_cores(), metavar="N",
                        help="local torch.distributed ranks sharing the audits "
                             "(default: the cores available, %(default)s)")
    parser.add_argument("--order", choices=ORDERS, default="forward",
                        help="multi-layer pruning order (default: %(default)s)")
    parser.add_argument("--no-multilayer", action="store_true", help="skip the Theorem 5.8 audit")
    parser.add_argument("--no-plots", action="store_true", help="do not draw the report figures")
    parser.add_argument("--out", metavar="DIR", required=True, help="report folder")
    parser.add_argument("--force", action="store_true", help="replace a non-empty existing --out folder")
    parser.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    report = run_certify(
        model=args.model, checkpoint=args.checkpoint, mask=args.mask, sparsity=args.sparsity, layers=args.layers,
        data=args.data, calibration=args.calibration, heldout=args.heldout, seed=args.seed, lambda1=args.lambda1,
        lambda2=args.lambda2, grid=args.grid, lipschitz=args.lipschitz, sound_budget=args.sound_budget,
        sound_device=args.sound_device, order=args.order, multilayer=not args.no_multilayer, plots=not args.no_plots,
        out=Path(args.out), force=args.force, workers=args.workers,
    )
    if report is None:  # a rank other than 0 of a torchrun group: rank 0 writes and prints
        return 0
    labels, violations = report["lipschitz_labels"], report["violations"]
    print(f"{len(report['calibration'])} layers audited; L_s sound on {labels['sound']} / "
          f"estimate on {labels['estimate']} audits; {len(violations)} violation(s); "
          f"{len(report['estimate_diagnostics'])} diagnostic(s) of the estimate")
    for line in violations[:20]:
        print(f"  VIOLATION: {line}")
    print(f"report written to {args.out}")
    return 1 if violations else 0
