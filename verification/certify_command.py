"""``mpcert certify``: audit a mask on a model and write ``report.json`` + ``report.md`` atomically.

    mpcert certify --model default --mask magnitude --sparsity 0.5 --calibration 32 --heldout 32 --out DIR

``--model``: ``default`` (the shipped Fashion-MNIST ViT; ``--checkpoint`` replaces its weights) or a
registered timm name (built offline; ``--checkpoint`` loaded strictly by timm).  ``--mask``: a mask
file written by :meth:`pruning.mask.Mask.save`, or a method: ``magnitude`` (global, ``--sparsity``),
``magnitude-layerwise`` or ``cast-2:4`` (CAST k:n, calibrated on the calibration images).
``--data default``: :func:`verification.datasets.load_default_dataset` (or a folder of idx files).
The calibration set is class-balanced from the training split; the held-out set is a seeded
sample of the test split.  The mask is saved as ``mask.safetensors`` in the report folder.

The folder is built in a temporary sibling directory and renamed into place (an error leaves
nothing); an existing non-empty ``--out`` is refused unless ``--force``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from rmt.errors import InvalidParameterError, ModelSourceError
from verification.certify import ORDERS, certify
from verification.datasets import calibration_subset, load_default_dataset
from verification.default_model import build_default_model
from verification.fit_command import _check_out, _publish

__all__ = ["register", "run_certify", "MASK_METHODS"]

MASK_METHODS = ("magnitude", "magnitude-layerwise", "cast-2:4")


def register(subparsers) -> None:
    """Add the ``certify`` sub-command to the ``mpcert`` parser."""
    parser = subparsers.add_parser(
        "certify",
        help="audit the Section 5 bounds of a mask on a model (L_s estimated: estimates, not certificates)",
        description=__doc__.split("\n\n")[0],
    )
    parser.add_argument("--model", default="default", help="'default' or a timm model name (default: %(default)s)")
    parser.add_argument("--checkpoint", metavar="FILE", help="weights for --model (loaded strictly)")
    parser.add_argument("--mask", required=True, metavar="FILE_OR_METHOD",
                        help=f"a mask file, or one of {', '.join(MASK_METHODS)}")
    parser.add_argument("--sparsity", type=float, default=0.5, help="target sparsity of a magnitude mask (default: %(default)s)")
    parser.add_argument("--data", default="default", help="'default' or a folder of Fashion-MNIST idx files")
    parser.add_argument("--calibration", type=int, default=32, help="calibration images |T| (default: %(default)s)")
    parser.add_argument("--heldout", type=int, default=32, help="held-out test images, 0 for none (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the image choice (default: %(default)s)")
    parser.add_argument("--lambda1", type=float, default=0.0, help="elastic-net lambda1 (default: %(default)s)")
    parser.add_argument("--lambda2", type=float, default=0.0, help="elastic-net lambda2 (default: %(default)s)")
    parser.add_argument("--grid", type=int, default=16, help="theta intervals of the L_s estimate (default: %(default)s)")
    parser.add_argument("--order", choices=ORDERS, default="forward", help="multi-layer pruning order (default: %(default)s)")
    parser.add_argument("--no-multilayer", action="store_true", help="skip the Theorem 5.8 audit")
    parser.add_argument("--out", metavar="DIR", required=True, help="report folder")
    parser.add_argument("--force", action="store_true", help="replace a non-empty existing --out folder")
    parser.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    report = run_certify(
        model=args.model, checkpoint=args.checkpoint, mask=args.mask, sparsity=args.sparsity, data=args.data,
        calibration=args.calibration, heldout=args.heldout, seed=args.seed, lambda1=args.lambda1,
        lambda2=args.lambda2, grid=args.grid, order=args.order, multilayer=not args.no_multilayer,
        out=Path(args.out), force=args.force,
    )
    violations = report["violations"]
    print(f"{len(report['calibration'])} layers audited; {len(violations)} violation(s) of the estimate")
    for line in violations[:20]:
        print(f"  VIOLATION: {line}")
    print(f"report written to {args.out}")
    return 0


def _load_model(name: str, checkpoint: str | None) -> tuple[torch.nn.Module, str]:
    if name == "default":
        model = build_default_model(weights_path=checkpoint)
        return model, "default Fashion-MNIST ViT" + (f" with weights {checkpoint}" if checkpoint else " (shipped weights)")
    import timm

    if not timm.is_model(name):
        raise ModelSourceError(f"--model {name!r} is neither 'default' nor a registered timm model name")
    try:
        model = timm.create_model(name, pretrained=False, checkpoint_path=checkpoint or "")
    except Exception as exc:
        raise ModelSourceError(f"--model {name!r}: timm could not build it ({exc})") from exc
    return model.eval(), f"timm {name}" + (f" with weights {checkpoint}" if checkpoint else " (random initialisation)")


def _make_mask(spec: str, model: torch.nn.Module, sparsity: float, images: torch.Tensor, source: str):
    from pruning.mask import Mask

    if spec in ("magnitude", "magnitude-layerwise"):
        from pruning.magnitude import magnitude

        return magnitude(model, sparsity, scope="global" if spec == "magnitude" else "layerwise")
    if spec == "cast-2:4":
        from pruning.calibration import ActivationCapture
        from pruning.cast import cast_kn

        return cast_kn(model, "2:4", ActivationCapture(images), calibration_source=source)
    path = Path(spec)
    if not path.is_file():
        raise InvalidParameterError(f"--mask {spec!r} is neither a file nor one of {MASK_METHODS}")
    return Mask.load(path, model)


def _heldout(dataset, n: int, seed: int):
    total = int(dataset.test_labels.shape[0])
    if not 0 <= n <= total:
        raise InvalidParameterError(f"--heldout {n} must lie in 0..{total} (the test split size)")
    if n == 0:
        return None
    idx = torch.from_numpy(np.sort(np.random.default_rng(seed).choice(total, n, replace=False)))
    return dataset.test_images[idx], dataset.test_labels[idx]


def run_certify(
    *, model: str, mask: str, out: Path, checkpoint: str | None = None, sparsity: float = 0.5, data: str = "default",
    calibration: int = 32, heldout: int = 32, seed: int = 0, lambda1: float = 0.0, lambda2: float = 0.0,
    grid: int = 16, order: str = "forward", multilayer: bool = True, force: bool = False,
) -> dict:
    """Build everything, run :func:`verification.certify.certify`, write the folder ``out``; return ``report.json``."""
    out = Path(out)
    _check_out(out, force)
    net, description = _load_model(model, checkpoint)
    dataset = load_default_dataset(None if data == "default" else data)
    cal = calibration_subset(dataset, calibration, seed)
    held = _heldout(dataset, heldout, seed + 1)
    the_mask = _make_mask(mask, net, sparsity, cal.images, f"{dataset.name} train, {calibration} images, seed {seed}")
    report = certify(net, the_mask, cal, heldout=held, lambda1=lambda1, lambda2=lambda2, grid=grid, order=order,
                     multilayer=multilayer, model_description=description, progress=True)
    document = report.to_json()
    document["data"]["source"] = f"{dataset.name} ({dataset.source})"
    document["data"]["seed"] = seed
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        the_mask.save(tmp / "mask.safetensors")
        (tmp / "report.json").write_text(json.dumps(document, indent=2, allow_nan=False) + "\n")
        (tmp / "report.md").write_text(report.to_markdown())
        _publish(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    print(f"certify: {description}", file=sys.stderr)
    return document
