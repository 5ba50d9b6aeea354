"""CAST k:n structured projection (ALGORITHMS.md 7.2-7.6).

For every output row ``i`` and input group ``g`` (``n`` contiguous columns of the flattened fan-in,
after the optional input permutation of 7.5) CAST keeps the pattern ``m`` (``|m|_0 = k``)
minimising

    c_{i,g}(m) + alpha_ser * cbar * ||m - M_SER[i,g]||_1,
    c_{i,g}(m) = r^T C_g r,   r = (1 - m) * u_{i,g},   C_g = (1/|H|) sum_h h_g h_g^T      (7.3)

over all ``C(n, k)`` candidates (or a sampled set, C11); ties go to the first candidate in
``combinations`` order.  ``u`` is the source tuple with free restoration (``W_src`` where nonzero,
else ``W_dense``) and ``M_SER = 1[W_src != 0]``.  The prior scale ``cbar`` (C10):

* ``prior_compat="paper"``: ``cbar_g = mean_{i,k} u_{i,g,k}^2 C_g[k,k]`` (one per group);
* ``prior_compat="reference"``: ``cbar_{i,g} = max(mean_{m in P} c_{i,g}(m), 1e-12)``; with
  ``density_scaling`` the layer's ``alpha_ser`` is multiplied by
  ``clip(density_l / mean_layers density, 0.25, 4)``, ``density`` = SER keep fraction (the reference
  2:4 module; default on for ``reference`` + 2:4).

Evaluation [I] (7.4): with ``d = 1 - m``, ``c(m) = d^T A d``, ``A = (u u^T) * C_g``; over the upper
triangle ``c(m) = sum_{j<=l} w_{jl} A_{jl} d_j d_l`` (``w = 1`` on the diagonal, 2 off it), so the
costs of a block of rows against a block of candidates are one matrix product; rows and candidates
are streamed in chunks keeping a running (min, argmin), memory ``O(rows G n^2)`` per chunk.

Convs (7.6) use the im2col layout: ``W`` is ``C_out x C_in k_h k_w`` and ``H`` the patch rows.
The resulting mask is "flattened-k:n exact", not TensorRT channel-2:4.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import numpy as np
import torch
from torch import nn

from .calibration import Calibration, resolve_calibration
from .errors import MaskMismatchError, PruningParameterError
from .kn_patterns import KNPattern, candidate_patterns
from .mask import Mask, Provenance, flat_column_permutation, restoration_source
from .permutation import IMPORTANCE_MODES, channel_importance, interleave_permutation
from .target_layers import kn_layers, weight_matrix

__all__ = ["PRIOR_COMPATS", "CastLayerResult", "group_covariances", "select_patterns", "cast_layer", "cast_kn"]

PRIOR_COMPATS = ("paper", "reference")
REFERENCE_SCALE_FLOOR = 1e-12
DENSITY_CLIP = (0.25, 4.0)
#: target number of float64 cost entries per streamed block (rows x groups x candidates)
CHUNK_ELEMENTS = 1 << 22


@dataclass(frozen=True)
class CastLayerResult:
    """CAST on one layer: keep (original column order), chosen candidate and its data cost per (row, group)."""

    keep: np.ndarray
    choice: np.ndarray
    cost: np.ndarray
    permutation: np.ndarray | None


def group_covariances(activations: np.ndarray, n: int) -> np.ndarray:
    """``C_g = (1/|H|) sum_h h_g h_g^T`` for every group, shape ``(G, n, n)`` (7.3)."""
    h = activations.reshape(activations.shape[0], -1, n)
    return np.einsum("tgi,tgj->gij", h, h, optimize=True) / h.shape[0]


def select_patterns(
    u: np.ndarray,
    cov: np.ndarray,
    candidates: np.ndarray,
    *,
    mser: np.ndarray | None = None,
    alpha: float = 0.0,
    prior_compat: str = "paper",
) -> tuple[np.ndarray, np.ndarray]:
    """Exact argmin over ``candidates`` of the CAST objective for every (row, group).

    ``u``: ``(R, G, n)`` source tuples; ``cov``: ``(G, n, n)``; ``candidates``: ``(P, n)`` bool keep
    patterns; ``mser``: ``(R, G, n)`` bool SER mask (prior off when None or ``alpha == 0``).
    Returns ``(choice, cost)``: index into ``candidates`` and data cost ``c(m*)``, both ``(R, G)``.
    """
    rows, n_groups, n = u.shape
    iu, ju = np.triu_indices(n)
    cov_feat = cov[:, iu, ju] * np.where(iu == ju, 1.0, 2.0)  # (G, F)
    drop = (~candidates).astype(np.float64)
    pair_drop = drop[:, iu] * drop[:, ju]  # (P, F)
    keep_f = candidates.astype(np.float64)
    k = int(candidates[0].sum())
    use_prior = mser is not None and alpha != 0.0
    if use_prior and prior_compat == "paper":
        group_scale = (u**2 * np.einsum("gkk->gk", cov)[None]).mean(axis=(0, 2))  # (G,)
    n_cand = candidates.shape[0]
    row_chunk = max(1, CHUNK_ELEMENTS // max(1, n_groups * min(n_cand, 4096)))
    cand_chunk = max(1, CHUNK_ELEMENTS // max(1, min(rows, row_chunk) * n_groups))
    choice = np.empty((rows, n_groups), dtype=np.int64)
    cost = np.empty((rows, n_groups))
    for r0 in range(0, rows, row_chunk):
        ub = u[r0 : r0 + row_chunk]
        a_feat = (ub[..., iu] * ub[..., ju] * cov_feat[None]).reshape(-1, iu.size)  # (Rc G, F)
        if use_prior:
            sb = mser[r0 : r0 + row_chunk].reshape(-1, n).astype(np.float64)
            if prior_compat == "paper":
                scale = np.broadcast_to(group_scale, ub.shape[:2]).reshape(-1)
            else:
                scale = np.maximum(a_feat @ pair_drop.mean(axis=0), REFERENCE_SCALE_FLOOR)
            prior_weight = alpha * scale
        best = np.full(a_feat.shape[0], np.inf)
        best_idx = np.zeros(a_feat.shape[0], dtype=np.int64)
        best_cost = np.zeros(a_feat.shape[0])
        for p0 in range(0, n_cand, cand_chunk):
            data = a_feat @ pair_drop[p0 : p0 + cand_chunk].T  # (Rc G, Pc)
            total = data
            if use_prior:
                hamming = k + sb.sum(axis=1, keepdims=True) - 2.0 * (sb @ keep_f[p0 : p0 + cand_chunk].T)
                total = data + prior_weight[:, None] * hamming
            local = np.argmin(total, axis=1)
            local_min = total[np.arange(total.shape[0]), local]
            better = local_min < best
            best = np.where(better, local_min, best)
            best_idx = np.where(better, local + p0, best_idx)
            best_cost = np.where(better, data[np.arange(data.shape[0]), local], best_cost)
        choice[r0 : r0 + row_chunk] = best_idx.reshape(-1, n_groups)
        cost[r0 : r0 + row_chunk] = best_cost.reshape(-1, n_groups)
    return choice, cost


def cast_layer(
    w_src: np.ndarray,
    activations: np.ndarray,
    pattern: KNPattern,
    candidates: np.ndarray,
    *,
    w_dense: np.ndarray | None = None,
    alpha: float = 0.0,
    prior_compat: str = "paper",
    channel_perm: np.ndarray | None = None,
) -> CastLayerResult:
    """CAST on one ``(d_out, fan_in)`` weight with ``(rows, fan_in)`` activations (7.3, 7.5, 7.6).

    ``w_dense`` given = free restoration on.  ``channel_perm`` (length ``C_in``) permutes the input
    channels before grouping; the returned ``keep`` is in the original column order.
    """
    mser = w_src != 0
    u = restoration_source(torch.from_numpy(w_src), None if w_dense is None else torch.from_numpy(w_dense)).numpy()
    columns = np.arange(w_src.shape[1])
    if channel_perm is not None:
        taps = w_src.shape[1] // channel_perm.size
        columns = flat_column_permutation(torch.from_numpy(channel_perm), taps).numpy()
    d_out, n = w_src.shape[0], pattern.n

    def grouped(a: np.ndarray) -> np.ndarray:
        return a[:, columns].reshape(d_out, -1, n)

    choice, cost = select_patterns(
        grouped(u),
        group_covariances(activations[:, columns], n),
        candidates,
        mser=grouped(mser),
        alpha=alpha,
        prior_compat=prior_compat,
    )
    keep = np.empty_like(mser)
    keep[:, columns] = candidates[choice].reshape(d_out, -1)
    return CastLayerResult(keep=keep, choice=choice, cost=cost, permutation=channel_perm)


def cast_kn(
    model: nn.Module,
    pattern: str | KNPattern = "2:4",
    calibration: Calibration | None = None,
    *,
    dense: nn.Module | None = None,
    free_restoration: bool = True,
    alpha_ser: float = 0.0,
    prior_compat: str = "paper",
    density_scaling: bool | None = None,
    permute: bool = False,
    importance: str = "weight_l2sq",
    sampling: str = "none",
    sample_seed: int = 42,
    layers: Iterable[str] | None = None,
    exclude_classifier: bool = True,
    calibration_source: str | None = None,
) -> Mask:
    """CAST k:n mask for ``model`` (the source ``W_src``, e.g. an SER checkpoint or the dense model).

    ``calibration``: mapping ``layer -> (rows, fan_in)`` activations, or a callable
    ``f(model, layers)`` returning one (e.g. :class:`pruning.calibration.ActivationCapture`).
    ``dense``: the pretrained model, restoration source when ``free_restoration``.  Other options as
    in the module docstring and 7.4-7.5.  Use ``mask.apply(model, restore_from=dense)`` to obtain the
    projected weights ``W' = m * u``.
    """
    pat = KNPattern.parse(pattern)
    if not (np.isfinite(alpha_ser) and alpha_ser >= 0):
        raise PruningParameterError(f"alpha_ser: must be finite and >= 0, got {alpha_ser!r}")
    if prior_compat not in PRIOR_COMPATS:
        raise PruningParameterError(f"prior_compat: expected one of {PRIOR_COMPATS}, got {prior_compat!r}")
    if importance not in IMPORTANCE_MODES:
        raise PruningParameterError(f"importance: expected one of {IMPORTANCE_MODES}, got {importance!r}")
    if calibration is None:
        raise PruningParameterError("calibration: CAST needs calibration activations (a mapping or a callable)")
    if density_scaling is None:
        density_scaling = prior_compat == "reference" and (pat.k, pat.n) == (2, 4)
    chosen = kn_layers(model, pat, layers, exclude_classifier)
    candidates = candidate_patterns(pat, sampling, sample_seed)
    acts = resolve_calibration(calibration, model, chosen)
    dense_modules = dict(dense.named_modules()) if (dense is not None and free_restoration) else {}
    sources = {name: weight_matrix(m, name).numpy() for name, m in chosen.items()}
    dense_w = {}
    for name in chosen if dense_modules else []:
        if name not in dense_modules or dense_modules[name].weight.shape != chosen[name].weight.shape:
            raise MaskMismatchError(f"{name}: dense model has no layer of the same name and shape")
        dense_w[name] = weight_matrix(dense_modules[name], name).numpy()
    densities = {name: float((w != 0).mean()) for name, w in sources.items()}
    mean_density = float(np.mean(list(densities.values())))
    keep, perms = {}, {}
    for name, module in chosen.items():
        alpha = alpha_ser
        if density_scaling and mean_density > 0:
            alpha *= float(np.clip(densities[name] / mean_density, *DENSITY_CLIP))
        c_in = module.weight.shape[1]
        perm = None
        if permute:
            # importance on the student's current weights (the SER-sparse source) [R] (7.5)
            perm = interleave_permutation(channel_importance(sources[name], acts[name], c_in, importance), pat.n)
        result = cast_layer(
            sources[name], acts[name], pat, candidates,
            w_dense=dense_w.get(name), alpha=alpha, prior_compat=prior_compat, channel_perm=perm,
        )
        keep[name] = torch.from_numpy(result.keep).reshape(module.weight.shape)
        if perm is not None:
            perms[name] = torch.from_numpy(perm)
    options = {
        "pattern": str(pat), "free_restoration": free_restoration and dense is not None, "alpha_ser": alpha_ser,
        "prior_compat": prior_compat, "density_scaling": density_scaling, "permute": permute,
        "importance": importance if permute else None, "sampling": sampling, "sample_seed": sample_seed,
        "n_candidates": int(candidates.shape[0]), "exclude_classifier": exclude_classifier,
        "calibration_rows": {name: int(a.shape[0]) for name, a in acts.items()},
    }
    return Mask(
        keep=keep,
        pattern=pat,
        permutations=perms,
        provenance=Provenance(
            method="cast_kn", options=options, sparsity=1 - pat.density,
            calibration_source=calibration_source, seed=sample_seed if sampling != "none" else None,
        ),
    )
