"""Magnitude pruning: global / layerwise exact-count (ALGORITHMS.md 3) and per-group top-k (7.7).

Exact-count rule [I] (3.1): to prune ``Z = floor(s N)`` of ``N`` scores, prune every score below
the ``Z``-th smallest value ``t`` and, among the scores equal to ``t``, the ones with the lowest
flat index until exactly ``Z`` are pruned.  Achieved sparsity is therefore exactly ``floor(s N)/N``.
Flat indices run over the layers in ``model.named_modules()`` order, each weight flattened
row-major.  Applied cumulatively, existing zeros have score 0 and are re-selected first, so masks
are nested (3.1).
"""

from __future__ import annotations

import math
from typing import Iterable, Mapping

import numpy as np
import torch
from torch import nn

from .arguments import check_sparsity
from .errors import PruningParameterError
from .kn_patterns import KNPattern
from .mask import Mask, Provenance
from .target_layers import kn_layers, select_layers, weight_matrix

__all__ = ["SCOPES", "exact_count_prune", "pooled_exact_prune", "magnitude", "magnitude_kn"]

SCOPES = ("global", "layerwise")


def exact_count_prune(scores: np.ndarray, n_prune: int) -> np.ndarray:
    """Boolean keep-vector pruning exactly ``n_prune`` smallest scores, ties to the lowest index."""
    keep = np.ones(scores.size, dtype=bool)
    if n_prune <= 0:
        return keep
    threshold = np.partition(scores, n_prune - 1)[n_prune - 1]
    below = scores < threshold
    keep[below] = False
    ties = np.flatnonzero(scores == threshold)[: n_prune - int(below.sum())]
    keep[ties] = False
    return keep


def pooled_exact_prune(
    scores: Mapping[str, np.ndarray], shapes: Mapping[str, torch.Size], n_prune: int
) -> dict[str, torch.Tensor]:
    """Keep-tensors (of ``shapes``) pruning exactly ``n_prune`` smallest scores pooled over all layers.

    ``scores[name]`` is the flat (row-major) score vector of a layer; pooled flat indices run over the
    layers in the order of ``scores``, so ties go to the earlier layer, then the lower index (3.1).
    """
    pool = np.concatenate(list(scores.values()))
    if not 0 <= n_prune <= pool.size:
        raise PruningParameterError(f"n_prune: must lie in 0..{pool.size}, got {n_prune}")
    flat_keep = exact_count_prune(pool, n_prune)
    bounds = np.cumsum([0] + [v.size for v in scores.values()])
    return {
        name: torch.from_numpy(flat_keep[a:b].copy()).reshape(shapes[name])
        for name, a, b in zip(scores, bounds[:-1], bounds[1:])
    }


def magnitude(
    model: nn.Module,
    target_sparsity: float,
    calibration=None,
    *,
    scope: str = "global",
    layers: Iterable[str] | None = None,
) -> Mask:
    """Magnitude mask on every ``nn.Linear`` / ``nn.Conv2d`` weight (or the named ``layers``).

    ``scope="global"``: the ``floor(s N)`` smallest ``|W|`` over the pooled target layers are pruned
    (the paper's baseline, OR2).  ``scope="layerwise"``: every layer independently loses
    ``floor(s numel_l)`` entries (the reference SEB sweeps' "magnitude" column, C5).
    ``calibration`` is unused (data-free; the argument keeps the common method signature).
    """
    s = check_sparsity(target_sparsity)
    if scope not in SCOPES:
        raise PruningParameterError(f"scope: expected one of {SCOPES}, got {scope!r}")
    chosen = select_layers(model, layers)
    scores = {name: weight_matrix(m, name).abs().reshape(-1).numpy() for name, m in chosen.items()}
    shapes = {name: m.weight.shape for name, m in chosen.items()}
    if scope == "global":
        keep = pooled_exact_prune(scores, shapes, math.floor(s * sum(v.size for v in scores.values())))
    else:
        keep = {name: torch.from_numpy(exact_count_prune(v, math.floor(s * v.size))).reshape(shapes[name])
                for name, v in scores.items()}
    return Mask(
        keep=keep,
        pattern=None,
        provenance=Provenance(method="magnitude", options={"scope": scope, "tie_break": "flat_index"}, sparsity=s),
    )


def magnitude_kn(
    model: nn.Module,
    pattern: str | KNPattern = "2:4",
    calibration=None,
    *,
    layers: Iterable[str] | None = None,
    exclude_classifier: bool = True,
) -> Mask:
    """Magnitude k:n baseline (ALGORITHMS.md 7.7): per (row, group) keep the ``k`` largest ``|W|``.

    Ties go to the lower index (the first kept tuple in ``combinations`` order, as in CAST).
    ``calibration`` is unused (data-free).
    """
    pat = KNPattern.parse(pattern)
    chosen = kn_layers(model, pat, layers, exclude_classifier)
    keep = {}
    for name, module in chosen.items():
        w = weight_matrix(module, name)
        groups = w.abs().reshape(w.shape[0], -1, pat.n)
        order = torch.argsort(-groups, dim=2, stable=True)[..., : pat.k]
        grouped = torch.zeros_like(groups, dtype=torch.bool).scatter_(2, order, True)
        keep[name] = grouped.reshape(module.weight.shape)
    return Mask(
        keep=keep,
        pattern=pat,
        provenance=Provenance(
            method="magnitude_kn",
            options={"pattern": str(pat), "exclude_classifier": exclude_classifier, "tie_break": "lower_index"},
            sparsity=1 - pat.density,
        ),
    )
