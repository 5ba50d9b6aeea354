"""The work of ``mpcert prune``: build a pruning mask and write it with :meth:`pruning.mask.Mask.save`.

    mpcert prune SOURCE --method {magnitude,rmt,seb,ser,hybrid,cast} [--sparsity S | --pattern K:N] --out MASK
                 [--packed-out CHECKPOINT]

``SOURCE`` is resolved by :func:`verification.models.model_source.load_model`: ``default`` (the shipped,
trained Fashion-MNIST ViT; ``--checkpoint`` replaces its weights), a registered timm model name
(built offline, ``--checkpoint`` loaded strictly), or a state-dict file (``.safetensors`` / ``.pt`` /
``.pth``; data-free methods only — its layers are rebuilt from the weight shapes by
:func:`verification.models.model_source.weights_module`, so the mask's layer names are the state dict's
module names).  The written mask file is read by ``mpcert certify --mask FILE``.  Data-driven methods (``ser``,
``hybrid`` and ``cast``) use ``--data`` (``default``: :func:`verification.models.datasets.load_default_dataset`, or a
folder of idx files): SER and Hybrid train on ``--train-images`` class-balanced training images for at most ``--steps``
steps per phase; CAST calibrates on ``--calibration`` images.  The MP cache of SEB/SER/Hybrid is computed once
from the source weights.  ``rmt`` runs the classical-RMT sweep with the post-pruning step of
``--compat`` (ALGORITHMS.md 11 C6): ``paper`` (default) fine-tunes on the ``--train-images`` for at
most ``--steps`` steps after every grid point, ``reference`` runs the authors' data-free regulariser
loop (the only choice for a weights-only state-dict source).  ``seb`` runs the pure edge budget
(ALGORITHMS.md 4.2) without the Haar SV preprocessing of 2.2(c), because the preprocessing rewrites
weight values and a mask file carries no weights: the written mask is then exactly what is audited.
``--pattern K:N`` selects a k:n mask: CAST (default 2:4) or, with ``--method magnitude``, the data-free
magnitude k:n baseline (ALGORITHMS.md 7.7).  With a 2:4 mask, ``--packed-out FILE.safetensors`` also
writes the 2:4 checkpoint: the ``state_dict`` of the masked model converted by
:func:`pruning.packed24.convert_to_24` (every masked Linear as ``values`` / ``codes`` / ``bias`` /
``input_permutation``, the permutation folded into the packed order as in ``SparseLinear24``; every
other tensor as in the masked model), which :func:`pruning.packed24.load_24` loads into a freshly
built model of the source's architecture as the 2:4-executing model (then ``.to("cuda",
torch.bfloat16)`` and :func:`pruning.fallback24.tune_24` on a GPU).  Both files are written to temporary
siblings first and then put into place (:func:`verification.bridge.report_folder.staged_file`); an
existing ``--out`` / ``--packed-out`` is refused unless ``--force``.
"""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path

import torch

from pruning.errors import PruningParameterError
from pruning.registry import PrunerSpec, build_mask, list_pruners, pruner_spec
from pruning.rmt_baseline import RMT_COMPATS
from verification.bridge.arguments import check_integer, check_seed
from verification.bridge.report_folder import check_out, staged_file
from verification.errors import ModelSourceError
from verification.models.model_source import load_model

__all__ = ["METHODS", "run_prune"]


#: The pruners ``--method`` offers: every registered name that is not an alias (aliases fix options that
#: this command sets with its own flags).
METHODS = tuple(name for name in list_pruners() if not pruner_spec(name).fixed)
_KN_METHODS = tuple(name for name in METHODS if "pattern" in pruner_spec(name).options)


def _check_arguments(spec: PrunerSpec, sparsity: float | None, pattern: str | None, packed_out: Path | None) -> None:
    effective_pattern = pattern or ("2:4" if spec.takes == "pattern" else None)
    if packed_out is not None and effective_pattern != "2:4":
        raise PruningParameterError("--packed-out: needs a 2:4 mask "
                                    "(--method cast, or --method magnitude --pattern 2:4)")
    if spec.takes == "pattern":
        if sparsity is not None:
            raise PruningParameterError(f"--sparsity: {spec.name.upper()} takes --pattern K:N, not --sparsity")
        return
    if pattern is not None:
        if "pattern" not in spec.options:
            raise PruningParameterError(f"--pattern: only --method {' or '.join(_KN_METHODS)} takes a k:n pattern, "
                                        f"not {spec.name!r}")
        if sparsity is not None:
            raise PruningParameterError(f"--pattern: {spec.name} takes either --sparsity or --pattern K:N, not both")
        return
    if sparsity is None:
        raise PruningParameterError(f"--sparsity: required for --method {spec.name}")
    if not 0.0 <= sparsity < 1.0:  # also NaN
        raise PruningParameterError(f"--sparsity: must lie in [0, 1), got {sparsity!r}")


def _mask_options(spec: PrunerSpec, args: dict, parts: dict) -> dict:
    """The registry options of ``spec`` from the command's arguments and the loaded data parts."""
    images, source = parts.get("calibration", (None, None))
    return spec.accepted(**args, batch_size=64, train_data=parts.get("train"), calibration_images=images,
                         calibration_source=source)


def _dataset_parts(need: str, data: str, calibration: int, train_images: int, seed: int) -> dict:
    from verification.models.datasets import calibration_subset, load_default_dataset

    dataset = load_default_dataset(None if data == "default" else data)
    if need == "calibration":
        cal = calibration_subset(dataset, calibration, seed, "--calibration")
        return {"calibration": (cal.images, f"{dataset.name} train, {calibration} class-balanced images, seed {seed}")}
    train = calibration_subset(dataset, train_images, seed, "--train-images")
    return {"train": (train.images, train.labels),
            "source": f"{dataset.name} train, {train_images} class-balanced images, seed {seed}"}


def run_prune(
    source: str, *, method: str, out: Path, sparsity: float | None = None, pattern: str | None = None,
    scope: str = "global", compat: str = "paper", checkpoint: str | None = None, data: str = "default",
    calibration: int = 64, train_images: int = 256, steps: int = 20, seed: int = 0, force: bool = False,
    packed_out: Path | None = None,
):
    """Build the mask of ``method`` for ``source`` and save it to ``out`` (and the 2:4 checkpoint to
    ``packed_out``, module docstring); return ``(mask, description)``."""
    from pruning.mask import Mask, Provenance

    if method not in METHODS:
        raise PruningParameterError(f"--method: expected one of {METHODS}, got {method!r}")
    spec = pruner_spec(method)
    _check_arguments(spec, sparsity, pattern, packed_out)
    check_integer(steps, "--steps", 0)
    check_seed(seed)
    out = Path(out)
    outputs = {"--out": out, **({"--packed-out": Path(packed_out)} if packed_out is not None else {})}
    for flag, path in outputs.items():
        check_out(path, force, kind="file", argument=flag)
    loaded = load_model(source, checkpoint, argument="SOURCE")
    model, description = loaded.model, loaded.description
    if compat not in RMT_COMPATS:
        raise PruningParameterError(f"--compat: expected one of {RMT_COMPATS}, got {compat!r}")
    need = spec.data_need(compat=compat)
    parts = {}
    if need != "none":
        if not loaded.runnable:
            hint = " (or use --compat reference, which is data-free)" if method == "rmt" else ""
            raise ModelSourceError(f"--method {method} needs a runnable model{hint}; "
                                   f"{source!r} is a weights-only state-dict file")
        parts = _dataset_parts(need, data, calibration, train_images, seed)
        probe = (parts.get("calibration") or parts["train"])[0][:1]
        try:
            with torch.no_grad():
                model(probe)
        except Exception as exc:
            raise ModelSourceError(f"--data {data!r}: its images {tuple(probe.shape[1:])} "
                                   f"do not fit {source!r} ({exc})") from exc
    torch.manual_seed(seed)
    options = dict(sparsity=sparsity, pattern=pattern, scope=scope, compat=compat, steps=steps, seed=seed)
    mask = build_mask(method, model, **_mask_options(spec, options, parts))
    provenance = mask.provenance
    mask = Mask(keep=mask.keep, pattern=mask.pattern, permutations=mask.permutations, provenance=Provenance(
        method=provenance.method, options={**provenance.options, "source": description, "cli_steps": steps},
        sparsity=provenance.sparsity, seed=seed,
        calibration_source=provenance.calibration_source or parts.get("source"),
    ))
    with ExitStack() as stack:  # both files are written before either is put into place
        staged = {flag: stack.enter_context(staged_file(path, force, flag)) for flag, path in outputs.items()}
        if packed_out is not None:
            _save_packed(model, mask, str(staged["--packed-out"]), description)
        mask.save(staged["--out"])
    return mask, description


def _save_packed(model, mask, path: str, description: str) -> None:
    """The 2:4 checkpoint (module docstring): ``convert_to_24(mask.apply(model), mask).state_dict()``."""
    from safetensors.torch import save_file

    from pruning.packed24 import convert_to_24

    converted = convert_to_24(mask.apply(model), mask)
    state = {name: tensor.detach().cpu().contiguous().clone() for name, tensor in converted.state_dict().items()}
    save_file(state, path, metadata={"format": "mpcert-packed-2:4", "source": description,
                                     "method": mask.provenance.method, "loader": "pruning.packed24.load_24"})
