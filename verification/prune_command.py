"""``mpcert prune``: build a pruning mask and write it with :meth:`pruning.mask.Mask.save`.

    mpcert prune SOURCE --method {magnitude,rmt,seb,ser,hybrid,cast} [--sparsity S | --pattern K:N] --out MASK

``SOURCE`` is resolved by :func:`verification.model_source.load_model`: ``default`` (the shipped,
trained Fashion-MNIST ViT; ``--checkpoint`` replaces its weights), a registered timm model name
(built offline, ``--checkpoint`` loaded strictly), or a state-dict file (``.safetensors`` / ``.pt`` /
``.pth``; data-free methods only — its layers are rebuilt from the weight shapes by
:func:`verification.model_source.weights_module`, so the mask's layer names are the state dict's
module names).  The written mask file is read by ``mpcert certify --mask FILE``.  Data-driven methods (``ser``, ``hybrid`` and ``cast``) use ``--data``
(``default``: :func:`verification.datasets.load_default_dataset`, or a folder of idx files): SER and
Hybrid train on ``--train-images`` class-balanced training images for at most ``--steps`` steps per
phase; CAST calibrates on ``--calibration`` images.  The MP cache of SEB/SER/Hybrid is computed once
from the source weights.  ``rmt`` runs the classical-RMT sweep with the post-pruning step of
``--compat`` (ALGORITHMS.md 11 C6): ``paper`` (default) fine-tunes on the ``--train-images`` for at
most ``--steps`` steps after every grid point, ``reference`` runs the authors' data-free regulariser
loop (the only choice for a weights-only state-dict source).  ``seb`` runs the pure edge budget
(ALGORITHMS.md 4.2) without the Haar SV preprocessing of 2.2(c), because the preprocessing rewrites
weight values and a mask file carries no weights: the written mask is then exactly what is audited.  The file is written to a temporary sibling and put into place
(:func:`verification.report_folder.staged_file`); an existing ``--out`` is refused unless ``--force``.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import torch

from pruning.errors import PruningParameterError
from rmt.errors import ModelSourceError
from verification.command_arguments import check_integer, check_seed
from verification.model_source import load_model
from verification.report_folder import check_out, staged_file

__all__ = ["METHODS", "DATA_METHODS", "register", "run_prune"]

METHODS = ("magnitude", "rmt", "seb", "ser", "hybrid", "cast")
DATA_METHODS = ("ser", "hybrid", "cast")
RMT_COMPATS = ("paper", "reference")


def register(subparsers) -> None:
    """Add the ``prune`` sub-command to the ``mpcert`` parser."""
    parser = subparsers.add_parser("prune", help="build a pruning mask (magnitude, classical RMT, SEB, SER, Hybrid, CAST)",
                                   description=__doc__.split("\n\n")[0])
    parser.add_argument("source", metavar="SOURCE", help="'default', a timm model name, or a state-dict file")
    parser.add_argument("--method", required=True, choices=METHODS)
    parser.add_argument("--sparsity", type=float, help="target global sparsity in [0, 1) (unstructured methods)")
    parser.add_argument("--pattern", help="k:n pattern for --method cast (default 2:4)")
    parser.add_argument("--scope", choices=("global", "layerwise"), default="global", help="magnitude scope (default: %(default)s)")
    parser.add_argument("--compat", choices=RMT_COMPATS, default="paper",
                        help="classical-RMT post-pruning step, ALGORITHMS.md C6 (default: %(default)s)")
    parser.add_argument("--checkpoint", metavar="FILE", help="weights for a timm name or 'default' (loaded strictly)")
    parser.add_argument("--data", default="default", help="'default' or a folder of Fashion-MNIST idx files")
    parser.add_argument("--calibration", type=int, default=64, help="CAST calibration images (default: %(default)s)")
    parser.add_argument("--train-images", type=int, default=256, help="SER/Hybrid training images (default: %(default)s)")
    parser.add_argument("--steps", type=int, default=20, help="max optimiser steps per training phase (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seed of image choice and training (default: %(default)s)")
    parser.add_argument("--out", metavar="MASK", required=True, help="mask file to write (.safetensors)")
    parser.add_argument("--force", action="store_true", help="replace an existing --out file")
    parser.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    mask, description = run_prune(
        args.source, method=args.method, out=Path(args.out), sparsity=args.sparsity, pattern=args.pattern,
        scope=args.scope, compat=args.compat, checkpoint=args.checkpoint, data=args.data, calibration=args.calibration,
        train_images=args.train_images, steps=args.steps, seed=args.seed, force=args.force,
    )
    report = mask.sparsity_report()
    print(f"{description}")
    print(f"{args.method}: {len(mask.keep)} layers, {report.zeros}/{report.total} pruned "
          f"(sparsity {report.global_sparsity:.6f}, pattern {mask.pattern_name}); mask written to {args.out}")
    return 0


def _check_arguments(method: str, sparsity: float | None, pattern: str | None) -> None:
    if method == "cast":
        if sparsity is not None:
            raise PruningParameterError("--sparsity: CAST takes --pattern K:N, not --sparsity")
        return
    if pattern is not None:
        raise PruningParameterError(f"--pattern: only --method cast takes a k:n pattern, not {method!r}")
    if sparsity is None:
        raise PruningParameterError(f"--sparsity: required for --method {method}")
    if not 0.0 <= sparsity < 1.0:  # also NaN
        raise PruningParameterError(f"--sparsity: must lie in [0, 1), got {sparsity!r}")


def _build_mask(model, method, sparsity, pattern, scope, compat, dataset_parts, steps, seed):
    if method == "magnitude":
        from pruning.magnitude import magnitude

        return magnitude(model, sparsity, scope=scope)
    if method == "rmt":
        from pruning.finetune import FinetuneConfig
        from pruning.rmt_baseline import classical_rmt

        if compat == "reference":
            return classical_rmt(model, sparsity, compat="reference")
        return classical_rmt(model, sparsity, compat="paper", data=dataset_parts["train"],
                             finetune_config=FinetuneConfig(max_steps=steps, batch_size=64, seed=seed))
    if method == "cast":
        from pruning.calibration import ActivationCapture
        from pruning.cast import cast_kn

        images, source = dataset_parts["calibration"]
        return cast_kn(model, pattern or "2:4", ActivationCapture(images), calibration_source=source)
    from pruning.sigma_cache import spectral_cache

    cache = spectral_cache(model)
    if method == "seb":
        from pruning.seb import seb

        return seb(model, sparsity, cache=cache, sv_z_base=None)
    from pruning.ser import KEEP_FT_DEFAULT, SELECTION_DEFAULT

    train = dataset_parts["train"]
    selection = replace(SELECTION_DEFAULT, max_steps=steps, batch_size=64)
    keep_ft = replace(KEEP_FT_DEFAULT, max_steps=steps, batch_size=64)
    if method == "ser":
        from pruning.ser import ser

        return ser(model, sparsity, data=train, cache=cache, seed=seed, selection=selection, keep_ft=keep_ft)
    from pruning.hybrid import MAGNITUDE_FT_DEFAULT, hybrid_magnitude_ser

    return hybrid_magnitude_ser(model, sparsity, data=train, cache=cache, seed=seed, selection=selection, keep_ft=keep_ft,
                                magnitude_ft=replace(MAGNITUDE_FT_DEFAULT, max_steps=steps, batch_size=64))


def _dataset_parts(method: str, data: str, calibration: int, train_images: int, seed: int) -> dict:
    from verification.datasets import calibration_subset, load_default_dataset

    dataset = load_default_dataset(None if data == "default" else data)
    if method == "cast":
        cal = calibration_subset(dataset, calibration, seed, "--calibration")
        return {"calibration": (cal.images, f"{dataset.name} train, {calibration} class-balanced images, seed {seed}")}
    train = calibration_subset(dataset, train_images, seed, "--train-images")
    return {"train": (train.images, train.labels),
            "source": f"{dataset.name} train, {train_images} class-balanced images, seed {seed}"}


def run_prune(
    source: str, *, method: str, out: Path, sparsity: float | None = None, pattern: str | None = None,
    scope: str = "global", compat: str = "paper", checkpoint: str | None = None, data: str = "default", calibration: int = 64,
    train_images: int = 256, steps: int = 20, seed: int = 0, force: bool = False,
):
    """Build the mask of ``method`` for ``source`` and save it to ``out``; return ``(mask, description)``."""
    from pruning.mask import Mask, Provenance

    if method not in METHODS:
        raise PruningParameterError(f"--method: expected one of {METHODS}, got {method!r}")
    _check_arguments(method, sparsity, pattern)
    check_integer(steps, "--steps", 0)
    check_seed(seed)
    out = Path(out)
    check_out(out, force, kind="file")
    loaded = load_model(source, checkpoint, argument="SOURCE")
    model, description = loaded.model, loaded.description
    if compat not in RMT_COMPATS:
        raise PruningParameterError(f"--compat: expected one of {RMT_COMPATS}, got {compat!r}")
    needs_data = method in DATA_METHODS or (method == "rmt" and compat == "paper")
    parts = {}
    if needs_data:
        if not loaded.runnable:
            hint = " (or use --compat reference, which is data-free)" if method == "rmt" else ""
            raise ModelSourceError(f"--method {method} needs a runnable model{hint}; {source!r} is a weights-only state-dict file")
        parts = _dataset_parts(method, data, calibration, train_images, seed)
        probe = (parts.get("calibration") or parts["train"])[0][:1]
        try:
            with torch.no_grad():
                model(probe)
        except Exception as exc:
            raise ModelSourceError(f"--data {data!r}: its images {tuple(probe.shape[1:])} do not fit {source!r} ({exc})") from exc
    torch.manual_seed(seed)
    mask = _build_mask(model, method, sparsity, pattern, scope, compat, parts, steps, seed)
    provenance = mask.provenance
    mask = Mask(keep=mask.keep, pattern=mask.pattern, permutations=mask.permutations, provenance=Provenance(
        method=provenance.method, options={**provenance.options, "source": description, "cli_steps": steps},
        sparsity=provenance.sparsity, seed=seed,
        calibration_source=provenance.calibration_source or parts.get("source"),
    ))
    with staged_file(out, force) as tmp:
        mask.save(tmp)
    return mask, description
