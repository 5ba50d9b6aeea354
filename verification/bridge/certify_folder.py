"""The work of ``mpcert certify``: audit a mask on a model and write ``report.json`` + ``report.md`` atomically.

    mpcert certify --model NAME_OR_DEFAULT [--checkpoint FILE] --mask FILE_OR_METHOD [--data ...] --out DIR

``--model`` is resolved by :func:`verification.models.model_source.load_model` (runnable sources only):
``default`` (the shipped, trained Fashion-MNIST ViT; ``--checkpoint`` replaces its weights) or a
registered timm name (built offline; ``--checkpoint`` — safetensors or a ``.pt`` state dict —
loaded strictly).  ``--mask``: a mask file written by :meth:`pruning.mask.Mask.save` (e.g. by
``mpcert prune``), or a registered pruner that needs no training data (:data:`MASK_METHODS`):
``magnitude`` (global, ``--sparsity``), ``magnitude-layerwise``, ``seb`` (``--sparsity``), ``cast`` /
``cast-2:4`` (CAST 2:4, calibrated on the calibration images).  ``--layers GLOB ...`` restricts the
audit to the supported layers matching any glob (every one of them must be in the mask); without it
every layer of the mask is audited.

``--data``: ``default`` (:func:`verification.models.datasets.load_default_dataset`) or a folder of idx
files — calibration set class-balanced from the training split, held-out set a seeded sample of the
test split — or a sample file ``.npz`` / ``.pt`` (:mod:`verification.models.sample_file`): its first
``--calibration`` samples are the calibration set and the next ``--heldout`` the held-out set.

The folder holds ``report.json``, ``report.md``, the figures of
:mod:`figures.certificate_plots` (unless ``--no-plots``) and the audited mask ``mask.safetensors``.

Bad input — a mask for another model or naming layers the model lacks, a ``--layers`` selection
the mask does not cover, data of the wrong shape or channel count, labels outside the head's
classes, a checkpoint that does not match the model, a model with no supported layer — raises a
typed :class:`rmt.errors.MPCertError` naming the problem before anything is written.  The folder is
built in a temporary sibling and renamed into place (:mod:`verification.bridge.report_folder`); an
existing non-empty ``--out`` is refused unless ``--force``.

``--lipschitz``: ``sound`` (the default: interval / Taylor forward mode, :mod:`verification.bridge.vit_interval`;
layers where the enclosure cannot be carried to the logits keep the estimate, labelled as such, and
the report says why) or ``estimate`` (finite differences on the theta grid, THEORY.md 3.6 — every bound
labelled ``estimate``); ``--sound-device``: where the sound bound runs (``auto``: CUDA when available).
The command prints the violations (broken sound bounds, failed literal checks: must be 0; exit status 1 when
there is one, the report is still written) apart from the diagnostics of the estimate (realised values above
bounds built on an estimate ``L_s``, FINDINGS F11).

``--workers N`` (default: every core this process may use) shares the audits among ``N`` local
``torch.distributed`` ranks (:mod:`verification.bridge.distributed`; gloo on the CPU, nccl on CUDA), the cores
shared out among them.  Multi-node, each node runs ``torchrun --nnodes M --nproc-per-node N
--rdzv-backend c10d --rdzv-endpoint HOST:PORT -m verification.cli certify ... --out DIR``: the command joins
``torchrun``'s group, every rank audits its share, and rank 0 gathers them and writes the one folder.  A failing
rank fails the run with its error, and nothing is written.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, replace
from fnmatch import fnmatchcase
from pathlib import Path

import numpy as np
import torch
from torch import nn

from certs.errors import CertificateInputError
from pruning.arguments import check_sparsity
from pruning.registry import build_mask, list_pruners, pruner_spec
from rmt.errors import InvalidParameterError
from verification.bridge.arguments import check_integer, check_seed
from verification.bridge.certificate_report import write_report
from verification.bridge.certify import LIPSCHITZ_METHODS, MAX_SOUND_BUDGET, certify, check_grid, check_samples_fit
from verification.bridge.distributed import in_torchrun, init_from_env
from verification.bridge.report_folder import check_out
from verification.bridge.vit_interval import resolve_device
from verification.bridge.vit_views import supported_layers
from verification.models.datasets import calibration_subset, load_default_dataset
from verification.models.model_source import LoadedModel, load_model
from verification.models.sample_file import is_sample_file, load_sample_file

__all__ = ["MASK_METHODS", "AuditSets", "load_audit_sets", "select_mask_layers", "certify_to_folder", "run_certify"]


#: The pruners ``--mask`` builds on the fly: those that need no data beyond the calibration images.
MASK_METHODS = tuple(name for name in list_pruners() if pruner_spec(name).data_need() in ("none", "calibration"))


@dataclass(frozen=True, eq=False)
class AuditSets:
    """The calibration set ``T`` and the optional held-out set as ``(images, labels)``, with their origin."""

    calibration: tuple[torch.Tensor, torch.Tensor]
    heldout: tuple[torch.Tensor, torch.Tensor] | None
    source: str
    seed: int


def _check_counts(calibration: int, heldout: int, available: int | None = None) -> None:
    check_integer(calibration, "--calibration", 1)
    check_integer(heldout, "--heldout", 0)
    if available is not None and calibration + heldout > available:
        raise InvalidParameterError(
            f"--calibration {calibration} + --heldout {heldout} exceed the {available} samples of --data"
        )


def _heldout_from_dataset(dataset, n: int, seed: int):
    total = int(dataset.test_labels.shape[0])
    if n > total:
        raise InvalidParameterError(f"--heldout {n}: at most {total} test images exist (the test split size)")
    if n == 0:
        return None
    idx = torch.from_numpy(np.sort(np.random.default_rng(seed).choice(total, n, replace=False)))
    return dataset.test_images[idx], dataset.test_labels[idx]


def load_audit_sets(data: str, calibration: int, heldout: int, seed: int) -> AuditSets:
    """Resolve ``--data`` to the calibration and held-out sets (module docstring); typed errors on bad counts."""
    check_seed(seed)
    if is_sample_file(data):
        samples = load_sample_file(data)
        _check_counts(calibration, heldout, len(samples))
        end = calibration + heldout
        held = (samples.images[calibration:end], samples.labels[calibration:end]) if heldout else None
        return AuditSets(
            calibration=(samples.images[:calibration], samples.labels[:calibration]), heldout=held, seed=seed,
            source=f"sample file {data} (calibration = samples 0..{calibration - 1}"
                   + (f", held-out = samples {calibration}..{end - 1})" if heldout else ")"),
        )
    _check_counts(calibration, heldout)
    dataset = load_default_dataset(None if data == "default" else data)
    cal = calibration_subset(dataset, calibration, seed, "--calibration")
    return AuditSets(
        calibration=(cal.images, cal.labels), heldout=_heldout_from_dataset(dataset, heldout, seed + 1), seed=seed,
        source=f"{dataset.name} ({dataset.source}); calibration: {calibration} class-balanced training images, "
               f"held-out: {heldout} test images, seed {seed}",
    )


def _make_mask(spec: str, model: nn.Module, sparsity: float, images: torch.Tensor, source: str):
    """``--mask``: a registered pruner's name (built on the calibration images where it needs data) or a mask file."""
    from pruning.mask import Mask

    if spec in list_pruners():
        pruner = pruner_spec(spec)
        if pruner.data_need() not in ("none", "calibration"):
            raise InvalidParameterError(f"--mask {spec}: this method trains on labelled data; build the mask with "
                                        f"`mpcert prune ... --method {spec}` and pass the file")
        return build_mask(spec, model, **pruner.accepted(sparsity=sparsity, calibration_images=images,
                                                         calibration_source=source))
    path = Path(spec)
    if not path.is_file():
        raise InvalidParameterError(f"--mask {spec!r} is neither a file nor one of {MASK_METHODS}")
    return Mask.load(path, model)


def select_mask_layers(mask, supported: list[str], globs: list[str] | None, spec: str):
    """The mask restricted to the supported layers matching any of ``globs`` (``None``: the mask unchanged).

    Raises :class:`InvalidParameterError` when no supported layer matches, and
    :class:`CertificateInputError` naming the selected layers that have no keep-tensor in the mask.
    """
    if globs is None:
        return mask
    from pruning.mask import Mask

    chosen = [name for name in supported if any(fnmatchcase(name, g) for g in globs)]
    if not chosen:
        raise InvalidParameterError(f"--layers {globs}: no supported layer matches "
                                    f"(the model has {supported[:6]}, ...)")
    missing = [name for name in chosen if name not in mask.keep]
    if missing:
        raise CertificateInputError(
            f"--mask {spec}: no keep-tensor for the selected layers {missing} (the mask has {len(mask.keep)} layers; "
            "narrow --layers to the mask's layers)"
        )
    provenance = replace(mask.provenance, options={**mask.provenance.options, "audited_layers": list(globs)})
    return Mask(keep={n: mask.keep[n] for n in chosen}, provenance=provenance, pattern=mask.pattern,
                permutations={n: p for n, p in mask.permutations.items() if n in chosen})


def _check_lipschitz(lipschitz: str, sound_budget: int | None = None, sound_device: str = "auto") -> None:
    if lipschitz not in LIPSCHITZ_METHODS:
        raise InvalidParameterError(f"--lipschitz: expected one of {LIPSCHITZ_METHODS}, got {lipschitz!r}")
    if sound_budget is not None:
        check_integer(sound_budget, "--sound-budget", 1, MAX_SOUND_BUDGET)
    resolve_device(sound_device, "--sound-device")


def certify_to_folder(
    loaded: LoadedModel, sets: AuditSets, *, mask: str, out: Path, sparsity: float = 0.5,
    layers: list[str] | None = None, lambda1: float = 0.0, lambda2: float = 0.0, grid: int = 16,
    lipschitz: str = "sound", sound_budget: int | None = None, sound_device: str = "auto", order: str = "forward",
    multilayer: bool = True, plots: bool = True, force: bool = False, workers: int = 1,
) -> dict | None:
    """Check every input, run :func:`verification.bridge.certify.certify`, write the folder ``out``; return
    ``report.json``.

    Every check (supported layers, data fit, mask, options) runs before the first file is written;
    the folder (``report.json``, ``report.md``, the figures unless ``plots=False``, ``mask.safetensors``)
    is written atomically by :func:`verification.bridge.certificate_report.write_report`.  ``workers``: local
    ranks (module docstring); under ``torchrun`` the process joins its group instead, and only rank 0 writes
    (the other ranks return ``None``).
    """
    _check_lipschitz(lipschitz, sound_budget, sound_device)
    check_grid(grid, "--grid")
    check_integer(workers, "--workers", 1)
    if in_torchrun():
        init_from_env(cuda=lipschitz == "sound" and resolve_device(sound_device).type == "cuda")
        workers = 1
    out = Path(out)
    check_out(out, force)
    supported = list(supported_layers(loaded.model))  # UnsupportedLayerError when the model has none
    named_sets = [("--data (calibration set)", sets.calibration)]
    named_sets += [("--data (held-out set)", sets.heldout)] if sets.heldout is not None else []
    for name, (images, labels) in named_sets:
        check_samples_fit(loaded.model, images, labels, name)
    cal_images = sets.calibration[0]
    the_mask = _make_mask(mask, loaded.model, sparsity, cal_images, sets.source)
    the_mask = select_mask_layers(the_mask, supported, layers, mask)
    report = certify(loaded.model, the_mask, sets.calibration, heldout=sets.heldout, lambda1=lambda1, lambda2=lambda2,
                     grid=grid, order=order, multilayer=multilayer, lipschitz=lipschitz, sound_budget=sound_budget,
                     sound_device=sound_device, model_description=loaded.description, progress=True, workers=workers)
    if report is None:
        return None
    document = write_report(
        report, out, plots=plots, force=force,
        extra_json={"data": {**report.data, "source": sets.source, "seed": sets.seed}},
        extra_files={"mask.safetensors": the_mask.save},
    )
    print(f"certify: {loaded.description}", file=sys.stderr)
    return document


def run_certify(
    *, model: str, mask: str, out: Path, checkpoint: str | None = None, sparsity: float = 0.5,
    layers: list[str] | None = None, data: str = "default", calibration: int = 32, heldout: int = 32, seed: int = 0,
    lambda1: float = 0.0, lambda2: float = 0.0, grid: int = 16, lipschitz: str = "sound",
    sound_budget: int | None = None, sound_device: str = "auto", order: str = "forward", multilayer: bool = True,
    plots: bool = True, force: bool = False, workers: int = 1,
) -> dict | None:
    """``mpcert certify``: load ``model`` and ``data``, then :func:`certify_to_folder` (see the module docstring)."""
    _check_lipschitz(lipschitz, sound_budget, sound_device)
    check_grid(grid, "--grid")
    if mask in list_pruners() and pruner_spec(mask).takes == "sparsity":
        check_sparsity(sparsity, "--sparsity")
    check_integer(workers, "--workers", 1)
    check_out(Path(out), force)
    loaded = load_model(model, checkpoint, runnable=True, argument="--model")
    sets = load_audit_sets(data, calibration, heldout, seed)
    return certify_to_folder(loaded, sets, mask=mask, out=out, sparsity=sparsity, layers=layers, lambda1=lambda1,
                             lambda2=lambda2, grid=grid, lipschitz=lipschitz, sound_budget=sound_budget,
                             sound_device=sound_device, order=order, multilayer=multilayer, plots=plots, force=force,
                             workers=workers)
