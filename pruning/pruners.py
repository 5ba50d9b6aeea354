"""The registered pruners (:mod:`pruning.registry`): each method of the paper under one name and one option vocabulary.

=====================  =========================================================  ======================
name (aliases)         method                                                     needs
=====================  =========================================================  ======================
``magnitude``          global / layerwise magnitude (ALGORITHMS.md 3)             --
  (``magnitude-layerwise``)
``rmt``                classical RMT sweep, post-pruning step by ``compat`` (11)  training data (``paper``)
``seb``                spectral edge budget without the Haar SV step (4.2)        --
``ser``                spectral edge regulariser with keep-FT (5)                 training data
``hybrid``             Hybrid Magnitude–SER schedule (6)                          training data
``cast`` (``cast-2:4``)  CAST k:n with free restoration (7.2–7.6)                 calibration images
=====================  =========================================================  ======================

``steps`` / ``batch_size`` replace ``max_steps`` / ``batch_size`` of every training phase's
:class:`pruning.finetune.FinetuneConfig` (``None``: the package defaults).  ``seb`` runs without the
Haar SV preprocessing of 2.2(c) because that step rewrites weight values, which a mask file cannot carry:
the mask built here is exactly what a certificate audits.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch
from torch import nn

from .calibration import ActivationCapture
from .cast import cast_kn
from .errors import CalibrationError, PruningParameterError
from .finetune import FinetuneConfig
from .hybrid import MAGNITUDE_FT_DEFAULT, hybrid_magnitude_ser
from .magnitude import magnitude, magnitude_kn
from .mask import Mask
from .registry import register_pruner
from .rmt_baseline import classical_rmt
from .seb import seb
from .ser import KEEP_FT_DEFAULT, SELECTION_DEFAULT, ser
from .sigma_cache import SpectralCache, spectral_cache

__all__: list[str] = []  # the pruners are reached through pruning.build_mask


def _budget(config: FinetuneConfig, steps: int | None, batch_size: int | None) -> FinetuneConfig:
    """``config`` with ``max_steps = steps`` and ``batch_size`` replaced where given."""
    changes = {k: v for k, v in (("max_steps", steps), ("batch_size", batch_size)) if v is not None}
    return replace(config, **changes)


def _cache_for(model: nn.Module, cache: SpectralCache | None) -> SpectralCache:
    """The given MP spectral cache, or one computed from ``model``'s weights."""
    return cache if cache is not None else spectral_cache(model)


def _required(value: Any, name: str, pruner: str) -> Any:
    if value is None:
        raise CalibrationError(f"pruner {pruner!r} needs {name}")
    return value


@register_pruner("magnitude", summary="magnitude pruning (global or layerwise scope; or k:n with pattern)",
                 aliases={"magnitude-layerwise": {"scope": "layerwise"}})
def _magnitude(model: nn.Module, *, sparsity: float | None = None, scope: str = "global",
               pattern: str | None = None) -> Mask:
    """Unstructured at ``sparsity`` or, with ``pattern``, the data-free magnitude k:n baseline (ALGORITHMS.md 7.7)."""
    if (sparsity is None) == (pattern is None):
        raise PruningParameterError("magnitude: give exactly one of sparsity or pattern")
    return magnitude(model, sparsity, scope=scope) if pattern is None else magnitude_kn(model, pattern)


@register_pruner("rmt",
                 summary="classical RMT sweep (paper: fine-tune per grid point; reference: data-free regulariser)",
                 needs=lambda options: "train" if options.get("compat", "paper") == "paper" else "none")
def _rmt(model: nn.Module, *, sparsity: float, compat: str = "paper", train_data=None, steps: int | None = None,
         batch_size: int | None = None, seed: int = 0) -> Mask:
    if compat == "reference":
        return classical_rmt(model, sparsity, compat="reference")
    config = _budget(replace(FinetuneConfig(), seed=seed), steps, batch_size)
    return classical_rmt(model, sparsity, compat=compat, data=_required(train_data, "train_data", "rmt"),
                         finetune_config=config)


@register_pruner("seb", summary="spectral edge budget (no Haar SV preprocessing: the mask is what is audited)")
def _seb(model: nn.Module, *, sparsity: float, cache: SpectralCache | None = None) -> Mask:
    return seb(model, sparsity, cache=_cache_for(model, cache), sv_z_base=None)


@register_pruner("ser", summary="spectral edge regulariser with keep fine-tuning", needs="train")
def _ser(model: nn.Module, *, sparsity: float, train_data=None, cache: SpectralCache | None = None,
         steps: int | None = None, batch_size: int | None = None, seed: int = 0) -> Mask:
    return ser(model, sparsity, data=_required(train_data, "train_data", "ser"),
               cache=_cache_for(model, cache), seed=seed,
               selection=_budget(SELECTION_DEFAULT, steps, batch_size),
               keep_ft=_budget(KEEP_FT_DEFAULT, steps, batch_size))


@register_pruner("hybrid", summary="Hybrid Magnitude-SER schedule", needs="train")
def _hybrid(model: nn.Module, *, sparsity: float, train_data=None, cache: SpectralCache | None = None,
            steps: int | None = None, batch_size: int | None = None, seed: int = 0) -> Mask:
    return hybrid_magnitude_ser(
        model, sparsity, data=_required(train_data, "train_data", "hybrid"),
        cache=_cache_for(model, cache), seed=seed,
        selection=_budget(SELECTION_DEFAULT, steps, batch_size), keep_ft=_budget(KEEP_FT_DEFAULT, steps, batch_size),
        magnitude_ft=_budget(MAGNITUDE_FT_DEFAULT, steps, batch_size),
    )


@register_pruner("cast", summary="CAST k:n semi-structured sparsity with free restoration", takes="pattern",
                 needs="calibration", aliases={"cast-2:4": {"pattern": "2:4"}})
def _cast(model: nn.Module, *, pattern: str = "2:4", calibration_images: torch.Tensor | None = None,
          calibration_source: str | None = None) -> Mask:
    images = _required(calibration_images, "calibration_images", "cast")
    dtype = next(model.parameters()).dtype
    return cast_kn(model, pattern, ActivationCapture(images.to(dtype)), calibration_source=calibration_source)
