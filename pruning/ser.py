"""SER — Spectral Edge Reallocation, the prune–restore step (ALGORITHMS.md 5).

One step at target sparsity ``s`` over the ``N`` target weights (5.3)::

    Z* = floor(s N);  K = round(r N)
    1. over-prune: exact-count prune of |W| / w_l(s) to Z* + K zeros (SEB weights, regime table
       "sigma_plus" by default); reservoir R = the zeros after step 1 ("all_zeros") or only those
       that were nonzero before ("newly_pruned")
    2. selection: only reservoir entries train (gradients multiplied by 1[R], everything else frozen,
       no weight decay so frozen entries stay bit-identical); loss = CE_ls + logit_l2 * mean((f(x) -
       f_0(x))^2) with f_0 the frozen pre-selection model [I]
    3. restoration: score_e = |v_e - v0_e| * rho_l(e),  rho_l = w_l(s) ("w", the OR2 formula) or
       1 / w_l(s) ("inv_w", the OR2 prose; C7); restore the top-K scores (ties to the lowest flat
       index), every other reservoir entry back to exactly 0; a restored entry keeps its trained value
       ("trained") or takes its pre-prune value ("original") [I]
    4. keep fine-tune with the mask frozen (:func:`pruning.finetune.finetune`)

The mask therefore has exactly ``Z*`` pruned entries.  Defaults follow the reference flags (5.3):
``r = 0.03`` of all target weights, selection AdamW at LR 4e-4 with a cosine floor of 0.25, keep-FT
SGD at 5e-5, 1 epoch each (C4: record epochs per cycle).  ``K = 0`` skips the selection phase, so SER
is SEB pruning + keep-FT.  ``ser_step`` edits the model it is given; :func:`ser` works on a copy.
"""

from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass, replace
from typing import Any, Iterable, Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .errors import PruningParameterError
from .finetune import FinetuneConfig, finetune, train_masked
from .magnitude import exact_count_prune
from .mask import Mask, Provenance
from .arguments import check_sparsity
from .seb import Regime, regime_for, seb_weights, weighted_exact_prune
from .sigma_cache import SpectralCache, spectral_cache
from .target_layers import select_layers

__all__ = [
    "RESTORE_MULTIPLIERS", "RESTORE_VALUES", "RESERVOIRS", "SELECTION_DEFAULT", "KEEP_FT_DEFAULT",
    "SERStep", "selection_phase", "restoration_scores", "select_restored", "ser_step", "ser",
]

RESTORE_MULTIPLIERS = ("w", "inv_w")
RESTORE_VALUES = ("trained", "original")
RESERVOIRS = ("all_zeros", "newly_pruned")
SELECTION_DEFAULT = FinetuneConfig(optimizer="adamw", lr=4e-4, weight_decay=0.0, min_lr_ratio=0.25, warmup_steps=0,
                                   batch_size=256, label_smoothing=0.1)
KEEP_FT_DEFAULT = FinetuneConfig(optimizer="sgd", lr=5e-5, batch_size=128)


@dataclass(frozen=True)
class SERStep:
    """Result of one :func:`ser_step`: the mask (exactly ``target_zeros`` pruned) and what happened."""

    mask: Mask
    target_zeros: int
    restore_budget: int
    reservoir_size: int
    restored_per_layer: Mapping[str, int]
    layer_weights: Mapping[str, float]
    selection_steps: int
    keep_ft_steps: int


def restoration_scores(
    delta: Mapping[str, np.ndarray], weights: Mapping[str, float], multiplier: str
) -> dict[str, np.ndarray]:
    """``score_e = Delta_e * rho_l`` with ``rho_l = w_l`` or ``1 / w_l`` (5.3 step 3, C7)."""
    if multiplier not in RESTORE_MULTIPLIERS:
        raise PruningParameterError(f"restore_multiplier: expected one of {RESTORE_MULTIPLIERS}, got {multiplier!r}")
    return {n: d * (weights[n] if multiplier == "w" else 1.0 / weights[n]) for n, d in delta.items()}


def select_restored(
    scores: Mapping[str, np.ndarray], reservoir: Mapping[str, np.ndarray], budget: int
) -> dict[str, np.ndarray]:
    """Boolean "restore" vectors: the ``budget`` highest reservoir scores (ties to the lowest flat index)."""
    names = list(scores)
    pool = np.concatenate([np.where(reservoir[n], -scores[n], np.inf) for n in names])
    available = int(sum(int(reservoir[n].sum()) for n in names))
    if budget > available:
        raise PruningParameterError(f"r: restoration budget K={budget} exceeds the reservoir size {available}")
    chosen = ~exact_count_prune(pool, budget)
    bounds = np.cumsum([0] + [scores[n].size for n in names])
    return {n: chosen[a:b] for n, a, b in zip(names, bounds[:-1], bounds[1:])}


def selection_phase(
    model: nn.Module, modules: Mapping[str, nn.Module], reservoir: Mapping[str, torch.Tensor], data: Any,
    config: FinetuneConfig, logit_l2: float, progress: bool,
) -> int:
    """Train only the reservoir entries of ``modules`` (5.3 step 2); return the number of steps.

    ``reservoir[name]`` is a boolean tensor of the weight's shape.  Every other parameter is frozen
    (``requires_grad`` restored afterwards), target-weight gradients are multiplied by ``1[R]``;
    with ``config.weight_decay = 0`` (the default ``SELECTION_DEFAULT``) the entries outside ``R``
    stay bit-identical.
    """
    reference = copy.deepcopy(model).eval()
    frozen_flags = {p: p.requires_grad for p in model.parameters()}
    weights = [modules[n].weight for n in modules]
    for p in model.parameters():
        p.requires_grad_(False)
    for p in weights:
        p.requires_grad_(True)
    grad_masks = {modules[n].weight: reservoir[n].to(modules[n].weight) for n in modules}

    def loss_fn(net: nn.Module, inputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        logits = net(inputs)
        loss = F.cross_entropy(logits, labels, label_smoothing=config.label_smoothing)
        if logit_l2:
            with torch.no_grad():
                anchor = reference(inputs)
            loss = loss + logit_l2 * torch.mean((logits - anchor) ** 2)
        return loss

    try:
        steps, _ = train_masked(model, data, config, loss_fn, trainable=weights, grad_masks=grad_masks,
                                zero_masks={}, progress=progress, description="SER selection")
    finally:
        for p, flag in frozen_flags.items():
            p.requires_grad_(flag)
    return steps


def ser_step(
    model: nn.Module,
    target_sparsity: float,
    data: Any,
    *,
    cache: SpectralCache,
    r: float = 0.03,
    regime: str | Regime = "sigma_plus",
    restore_multiplier: str = "w",
    restore_value: str = "trained",
    reservoir: str = "all_zeros",
    logit_l2: float = 1.0,
    selection: FinetuneConfig = SELECTION_DEFAULT,
    keep_ft: FinetuneConfig | None = KEEP_FT_DEFAULT,
    missing_signal: str = "zero_z",
    layers: Iterable[str] | None = None,
    progress: bool = False,
) -> SERStep:
    """One SER step on ``model`` **in place** (module docstring); ``cache`` = the dense model's MP fits.

    ``keep_ft=None`` skips the keep fine-tune (the weights then hold the restored values).
    """
    s = check_sparsity(target_sparsity)
    if not (math.isfinite(r) and 0.0 <= r < 1.0):
        raise PruningParameterError(f"r: restoration budget must lie in [0, 1), got {r!r}")
    if restore_value not in RESTORE_VALUES:
        raise PruningParameterError(f"restore_value: expected one of {RESTORE_VALUES}, got {restore_value!r}")
    if reservoir not in RESERVOIRS:
        raise PruningParameterError(f"reservoir: expected one of {RESERVOIRS}, got {reservoir!r}")
    if restore_multiplier not in RESTORE_MULTIPLIERS:
        raise PruningParameterError(f"restore_multiplier: expected one of {RESTORE_MULTIPLIERS}, got "
                                    f"{restore_multiplier!r}")
    chosen = select_layers(model, layers)
    total = sum(m.weight.numel() for m in chosen.values())
    z_star, budget = math.floor(s * total), round(r * total)
    if z_star + budget > total:
        raise PruningParameterError(f"r: over-pruning to Z*+K = {z_star + budget} zeros exceeds the {total} target "
                                    "weights")
    row = regime_for(s, regime)
    weights = seb_weights(cache.signal(row.signal), chosen, s, row, missing_signal)
    original = {n: m.weight.detach().clone() for n, m in chosen.items()}
    keep_over = weighted_exact_prune(chosen, weights, z_star + budget)
    with torch.no_grad():
        for n, m in chosen.items():
            m.weight.mul_(keep_over[n].to(m.weight))
    over_pruned = {n: m.weight.detach().clone() for n, m in chosen.items()}
    in_reservoir = {n: ~keep_over[n] & (original[n] != 0).cpu() if reservoir == "newly_pruned" else ~keep_over[n]
                    for n in chosen}
    selection_steps = 0
    restored = {n: torch.zeros_like(k) for n, k in keep_over.items()}
    if budget > 0:
        selection_steps = selection_phase(model, chosen, in_reservoir, data, selection, logit_l2, progress)
        delta = {n: (m.weight.detach() - over_pruned[n]).abs().cpu().double().reshape(-1).numpy()
                 for n, m in chosen.items()}
        scores = restoration_scores(delta, weights, restore_multiplier)
        picked = select_restored(scores, {n: t.reshape(-1).numpy() for n, t in in_reservoir.items()}, budget)
        restored = {n: torch.from_numpy(picked[n].copy()).reshape(keep_over[n].shape) for n in chosen}
    keep = {n: keep_over[n] | restored[n] for n in chosen}
    with torch.no_grad():
        for n, m in chosen.items():
            value = m.weight if restore_value == "trained" else original[n]
            back = restored[n].to(m.weight.device)
            m.weight.copy_(torch.where(back, value, over_pruned[n]) * keep[n].to(m.weight))
    options = {
        "r": r, "restore_budget_K": budget, "target_zeros": z_star,
        "regime": regime if isinstance(regime, str) else "custom",
        "row": asdict(row), "restore_multiplier": restore_multiplier, "restore_value": restore_value,
        "reservoir": reservoir, "logit_l2": logit_l2, "missing_signal": missing_signal,
        "selection": selection.to_json(), "keep_ft": None if keep_ft is None else keep_ft.to_json(),
        "selection_steps": selection_steps, "layer_weights": weights, "spectral_cache": dict(cache.options),
        "sparsity_accounting": "post-reinsert exact",
    }
    mask = Mask(keep=keep, provenance=Provenance(method="ser", options=options, sparsity=s, seed=selection.seed))
    keep_ft_steps = 0
    if keep_ft is not None:
        keep_ft_steps = finetune(model, mask, data, keep_ft, inplace=True, progress=progress).steps
    return SERStep(
        mask=mask, target_zeros=z_star, restore_budget=budget,
        reservoir_size=int(sum(int(t.sum()) for t in in_reservoir.values())),
        restored_per_layer={n: int(t.sum()) for n, t in restored.items()}, layer_weights=weights,
        selection_steps=selection_steps, keep_ft_steps=keep_ft_steps,
    )


def ser(
    model: nn.Module,
    target_sparsity: float,
    calibration=None,
    *,
    data: Any,
    cache: SpectralCache | None = None,
    inplace: bool = False,
    seed: int = 0,
    **options: Any,
) -> Mask:
    """One SER step at ``target_sparsity`` on a copy of ``model`` (or on ``model`` when ``inplace``).

    ``data``: training batches (see :mod:`pruning.finetune`); ``cache`` defaults to the MP fits of
    ``model`` itself (right when ``model`` is the dense checkpoint).  ``seed`` seeds the selection and
    keep-FT phases; ``options`` are those of :func:`ser_step`.  ``calibration`` is unused.
    """
    target = model if inplace else copy.deepcopy(model)
    cache = spectral_cache(target, options.get("layers")) if cache is None else cache
    options["selection"] = replace(options.get("selection", SELECTION_DEFAULT), seed=seed)
    if options.get("keep_ft", KEEP_FT_DEFAULT) is not None:
        options["keep_ft"] = replace(options.get("keep_ft", KEEP_FT_DEFAULT), seed=seed)
    return ser_step(target, target_sparsity, data, cache=cache, **options).mask
