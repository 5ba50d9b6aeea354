"""Classical RMT baseline (ALGORITHMS.md 2): singular-vector sparsification + MP-likeness budgets.

Building blocks (2.2), on a float64 matrix ``W = U diag(s) V^T``:

* :func:`sv_sparsify` (OR2 "Sparsify singular vectors"): ``T_i = theta max(floor, (1 - s_i/sigma_+)^power)``
  below the edge, ``theta floor`` for spikes; zero ``|U[:, i]| < T_i`` and ``|V^T[i, :]| < T_i``;
  recompose (no re-orthogonalisation).
* :func:`haar_sv_sparsify` (SV preprocessing before SEB): ``g_i = (1 - s_i/sigma_+)^power`` below the
  edge, 0 for spikes; thresholds ``z g_i / sqrt(d_out)`` on ``U`` and ``z g_i / sqrt(d_in)`` on ``V^T``,
  ``z = z_base alpha_l / mean(alpha)`` when Hill exponents are given.
* :func:`spike_only_reconstruction`: keep only ``s_i > sigma_+`` (the reference's negative control).
* :func:`randomness_score` / :func:`cycle_counts` (reference cycle, 2.2 d):
  ``rho_i = 0.06 * 1.02^i``, ``score_l = [(1 - err_l) bulk_l]^(b / i)`` (``bulk_l`` a fraction),
  ``k_l = floor(score_l rho_i nnz_l)``.

:func:`classical_rmt` is the Table-1-style sweep [I] of 2.2: at each grid point ``s_t`` it fits the
*current* weights, applies ``sv_sparsify`` on even cycles (``theta = theta_scale rho_t d_out d_in``,
"cycle" scale) or only recomposes on odd cycles, and allocates the additional zeros needed to reach
exactly ``floor(s_t N)`` in proportion to ``score_l nnz_l`` (largest remainder), zeroing the
smallest-``|w|`` nonzeros of each layer; an optional ``finetune(model, mask)`` runs after each point.
The method changes weight *values* (the recomposition), so the returned mask alone does not carry
them: pass ``inplace=True`` to keep the recomposed, pruned weights in ``model``.
"""

from __future__ import annotations

import copy
import math
from typing import Callable, Iterable, Mapping

import numpy as np
import torch
from torch import nn

from rmt.errors import InvalidMatrixError, InvalidParameterError
from rmt.fit import fit_mp

from .errors import PruningParameterError
from .magnitude import exact_count_prune
from .mask import Mask, Provenance
from .schedule import sparsity_grid
from .target_layers import select_layers, weight_matrix

__all__ = [
    "SV_FLOOR", "CYCLE_RATE", "CYCLE_GROWTH", "SCORE_EXPONENT", "THETA_SCALE",
    "sv_thresholds", "sv_sparsify", "haar_sv_sparsify", "spike_only_reconstruction", "cycle_rate", "randomness_score",
    "cycle_counts", "largest_remainder", "classical_rmt",
]

SV_FLOOR = 1.0 / 750.0
CYCLE_RATE = 0.06
CYCLE_GROWTH = 1.02
SCORE_EXPONENT = 1.5
THETA_SCALE = 1.125e-5


def _svd(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return np.linalg.svd(np.asarray(matrix, dtype=np.float64), full_matrices=False)


def sv_thresholds(s: np.ndarray, sigma_plus: float, theta: float, power: float = 30, floor: float = SV_FLOOR) -> np.ndarray:
    """``T_i = theta max(floor, (1 - s_i / sigma_+)^power)`` for ``s_i < sigma_+``, ``theta floor`` otherwise (2.2 a)."""
    s = np.asarray(s, dtype=np.float64)
    bulk = np.maximum(floor, np.clip(1.0 - s / sigma_plus, 0.0, None) ** power) if sigma_plus > 0 else np.full_like(s, floor)
    return theta * np.where(s < sigma_plus, bulk, floor)


def sv_sparsify(matrix: np.ndarray, sigma_plus: float, theta: float, power: float = 30, floor: float = SV_FLOOR) -> np.ndarray:
    """OR2 singular-vector sparsification (2.2 a); ``theta = 0`` returns the SVD recomposition of ``W``."""
    u, s, vt = _svd(matrix)
    t = sv_thresholds(s, sigma_plus, theta, power, floor)
    u = np.where(np.abs(u) < t[None, :], 0.0, u)
    vt = np.where(np.abs(vt) < t[:, None], 0.0, vt)
    return (u * s) @ vt


def haar_sv_sparsify(
    matrix: np.ndarray, sigma_plus: float, z_base: float, power: float = 3,
    alpha: float | None = None, alpha_mean: float | None = None,
) -> np.ndarray:
    """Haar-scaled SV sparsification (2.2 c): spikes untouched, bulk vectors thresholded by ``z g_i / sqrt(d)``."""
    d_out, d_in = matrix.shape
    z = z_base * (alpha / alpha_mean) if alpha is not None and alpha_mean else z_base
    u, s, vt = _svd(matrix)
    g = np.where(s < sigma_plus, np.clip(1.0 - s / sigma_plus, 0.0, None) ** power, 0.0)
    u = np.where(np.abs(u) < (z * g / math.sqrt(d_out))[None, :], 0.0, u)
    vt = np.where(np.abs(vt) < (z * g / math.sqrt(d_in))[:, None], 0.0, vt)
    return (u * s) @ vt


def spike_only_reconstruction(matrix: np.ndarray, sigma_plus: float) -> np.ndarray:
    """``sum_{s_i > sigma_+} s_i u_i v_i^T``: literal deletion of the bulk (the negative control of 2.1)."""
    u, s, vt = _svd(matrix)
    s = np.where(s > sigma_plus, s, 0.0)
    return (u * s) @ vt


def cycle_rate(cycle: int) -> float:
    """``rho_i = 0.06 * 1.02^i`` (cycles are 1-indexed)."""
    if cycle < 1:
        raise PruningParameterError(f"cycle: cycles are 1-indexed, got {cycle}")
    return CYCLE_RATE * CYCLE_GROWTH**cycle


def randomness_score(fit_error: float, bulk_fraction: float, cycle: int, b: float = SCORE_EXPONENT) -> float:
    """``score = [(1 - err) bulk]^(b / i)`` with ``bulk`` the bulk fraction in [0, 1] (2.2 d)."""
    base = max(0.0, (1.0 - fit_error) * bulk_fraction)
    return base ** (b / cycle)


def cycle_counts(nnz: Mapping[str, int], scores: Mapping[str, float], cycle: int) -> dict[str, int]:
    """Reference cycle budget ``k_l = floor(score_l rho_i nnz_l)`` (2.2 d)."""
    rho = cycle_rate(cycle)
    return {n: math.floor(scores[n] * rho * nnz[n]) for n in nnz}


def largest_remainder(total: int, shares: Mapping[str, float], caps: Mapping[str, int]) -> dict[str, int]:
    """Split ``total`` in proportion to ``shares`` (largest-remainder rounding), never above ``caps``.

    A layer at its cap hands its excess to the others (repeated until the total is placed).
    """
    if total > sum(caps.values()):
        raise PruningParameterError(f"total: cannot place {total} zeros in {sum(caps.values())} free entries")
    counts = {n: 0 for n in shares}
    remaining = total
    while remaining > 0:
        open_layers = [n for n in shares if counts[n] < caps[n]]
        weight = np.array([max(shares[n], 0.0) for n in open_layers], dtype=np.float64)
        if weight.sum() <= 0:
            weight = np.array([float(caps[n] - counts[n]) for n in open_layers])
        quota = remaining * weight / weight.sum()
        base = np.floor(quota).astype(np.int64)
        order = np.argsort(-(quota - base), kind="stable")
        base[order[: remaining - int(base.sum())]] += 1
        for n, extra in zip(open_layers, base):
            placed = min(int(extra), caps[n] - counts[n])
            counts[n] += placed
            remaining -= placed
    return counts


def _score(matrix: np.ndarray, name: str, cycle: int, b: float, options: Mapping) -> tuple[float, float]:
    """``(sigma_+, score)`` of the current weights; a layer that cannot be fitted gets score 0 [I]."""
    try:
        fit = fit_mp(matrix, name=name, **options)
    except (InvalidMatrixError, InvalidParameterError) as exc:
        if isinstance(exc, InvalidParameterError) and "too small" not in str(exc):
            raise
        return 0.0, 0.0
    return fit.sigma_plus, randomness_score(fit.mp_fit_error, fit.bulk_fraction, cycle, b)


def classical_rmt(
    model: nn.Module,
    target_sparsity: float,
    calibration=None,
    *,
    grid_step: float = 0.05,
    theta_scale: float = THETA_SCALE,
    power: float = 30,
    floor: float = SV_FLOOR,
    b: float = SCORE_EXPONENT,
    fit_options: Mapping | None = None,
    finetune: Callable[[nn.Module, Mask], None] | None = None,
    layers: Iterable[str] | None = None,
    inplace: bool = False,
) -> Mask:
    """Classical RMT sweep to ``target_sparsity`` on the grid ``grid_step, 2 grid_step, ..., s`` (module doc).

    ``calibration`` is unused.  ``finetune(model, mask)`` (e.g. one epoch of
    :func:`pruning.finetune.finetune` with ``inplace=True``) runs after every grid point.
    """
    grid = sparsity_grid(target_sparsity, grid_step)
    fit_options = dict(fit_options or {})
    work = model if inplace else copy.deepcopy(model)
    chosen = select_layers(work, layers)
    total = sum(m.weight.numel() for m in chosen.values())
    keep: dict[str, torch.Tensor] = {}
    history = []
    for cycle, s_t in enumerate(grid, start=1):
        rho = cycle_rate(cycle)
        current: dict[str, np.ndarray] = {}
        scores: dict[str, float] = {}
        for name, module in chosen.items():
            matrix = weight_matrix(module, name).numpy()
            sigma_plus, scores[name] = _score(matrix, name, cycle, b, fit_options)
            theta = theta_scale * rho * matrix.size if cycle % 2 == 0 else 0.0
            recomposed = sv_sparsify(matrix, sigma_plus, theta, power, floor) if sigma_plus > 0 else matrix
            current[name] = np.where(matrix == 0, 0.0, recomposed)  # pruned entries stay pruned
        nnz = {n: int(np.count_nonzero(w)) for n, w in current.items()}
        needed = max(0, math.floor(s_t * total) - (total - sum(nnz.values())))
        counts = largest_remainder(needed, {n: scores[n] * nnz[n] for n in nnz}, nnz)
        with torch.no_grad():
            for name, module in chosen.items():
                w = current[name].reshape(-1)
                magnitude_score = np.where(w == 0, -1.0, np.abs(w))  # existing zeros first, then smallest |w|
                flat_keep = exact_count_prune(magnitude_score, (w.size - nnz[name]) + counts[name])
                w = np.where(flat_keep, w, 0.0)
                module.weight.copy_(torch.from_numpy(w).reshape(module.weight.shape).to(module.weight))
                keep[name] = module.weight.detach().cpu() != 0
        history.append({"sparsity": s_t, "zeros": counts, "scores": scores, "theta_on": cycle % 2 == 0})
        if finetune is not None:
            finetune(work, Mask(keep=keep, provenance=Provenance(method="classical_rmt", sparsity=s_t)))
    options = {"grid": grid, "grid_step": grid_step, "theta_scale": theta_scale, "theta_flavour": "cycle",
               "power": power, "floor": floor, "b": b, "fit_options": fit_options,
               "finetune": finetune is not None, "history": history}
    return Mask(keep=keep, provenance=Provenance(method="classical_rmt", options=options, sparsity=grid[-1]))
