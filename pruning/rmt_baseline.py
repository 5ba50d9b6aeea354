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
smallest-``|w|`` nonzeros of each layer; then the post-pruning step runs with the mask frozen.
The method changes weight *values* (recomposition, post-pruning step), so the returned mask alone
does not carry them: pass ``inplace=True`` to keep the final weights in ``model``.

Post-pruning step, ``compat`` (11 C6):

* ``"paper"`` (default): the shared short fine-tuning convention of Table 1 — one epoch of the 9.1
  recipe (:class:`pruning.finetune.FinetuneConfig` defaults) on ``data`` after every grid point.
* ``"reference"``: the reference cycle's data-free loop (2.2 d note), :func:`regulariser_step`:
  AdamW (weight decay ``l2``, cosine LR over ``steps``) on the regulariser only,

      R = sum_l lambda_l 1e-6 ||W_l||_F + 5e-7 sum |W| + 2e-7 sum W^2,
      lambda_l = 1 / (1 + 1e4 err_l / i)                    (err_l: MP fit error, i: cycle)

  with layer ``l``'s gradient multiplied by ``lambda_l`` (as the reference does) and by its mask.
  ``steps`` and ``lr`` are not determinable from the sources [I]; the regulariser acts on the
  target weights only (the reference also regularises biases and norms) [I].
"""

from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass
from typing import Any, Iterable, Mapping

import numpy as np
import torch
from torch import nn

from .errors import PruningParameterError
from .finetune import FinetuneConfig, finetune
from .magnitude import exact_count_prune
from .mask import Mask, Provenance
from .schedule import sparsity_grid
from .sigma_cache import fit_if_possible
from .target_layers import select_layers, weight_matrix

__all__ = [
    "SV_FLOOR", "CYCLE_RATE", "CYCLE_GROWTH", "SCORE_EXPONENT", "THETA_SCALE", "RMT_COMPATS",
    "sv_thresholds", "sv_sparsify", "haar_sv_sparsify", "haar_preprocess", "spike_only_reconstruction",
    "cycle_rate", "randomness_score", "cycle_counts", "largest_remainder",
    "RegulariserConfig", "lasso_strength", "regulariser_loss", "regulariser_step", "classical_rmt",
]

SV_FLOOR = 1.0 / 750.0
CYCLE_RATE = 0.06
CYCLE_GROWTH = 1.02
SCORE_EXPONENT = 1.5
THETA_SCALE = 1.125e-5
LASSO_ERROR_WEIGHT = 1e4
RMT_COMPATS = ("paper", "reference")


def _svd(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return np.linalg.svd(np.asarray(matrix, dtype=np.float64), full_matrices=False)


def sv_thresholds(s: np.ndarray, sigma_plus: float, theta: float, power: float = 30,
                  floor: float = SV_FLOOR) -> np.ndarray:
    """``T_i = theta max(floor, (1 - s_i / sigma_+)^power)`` for ``s_i < sigma_+``, ``theta floor`` otherwise
    (2.2 a)."""
    s = np.asarray(s, dtype=np.float64)
    bulk = (np.maximum(floor, np.clip(1.0 - s / sigma_plus, 0.0, None) ** power) if sigma_plus > 0
            else np.full_like(s, floor))
    return theta * np.where(s < sigma_plus, bulk, floor)


def sv_sparsify(matrix: np.ndarray, sigma_plus: float, theta: float, power: float = 30,
                floor: float = SV_FLOOR) -> np.ndarray:
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


def haar_preprocess(
    modules: Mapping[str, nn.Module],
    sigma_plus: Mapping[str, float],
    z_base: float,
    power: float = 3,
    hill_alpha: Mapping[str, float] | None = None,
) -> dict[str, float]:
    """Apply :func:`haar_sv_sparsify` **in place** to every layer of ``modules`` that has an edge in ``sigma_plus``.

    ``z_l = z_base alpha_l / mean(alpha)`` when ``hill_alpha`` is given (mean over the layers of
    ``modules`` with a finite exponent; a layer without one uses ``z_base``), else ``z_base`` (2.2 c).
    Entries that are exactly zero stay zero [I] (as in :func:`classical_rmt`).  Layers without an
    edge (not MP-fittable) are left unchanged.  Returns the ``z`` used per processed layer.
    """
    if not (math.isfinite(z_base) and z_base >= 0):
        raise PruningParameterError(f"sv_z_base: must be finite and >= 0, got {z_base!r}")
    if not (math.isfinite(power) and power > 0):
        raise PruningParameterError(f"sv_power: must be finite and > 0, got {power!r}")
    alphas = {n: float(hill_alpha[n]) for n in modules if hill_alpha and math.isfinite(hill_alpha.get(n, math.nan))}
    alpha_mean = float(np.mean(list(alphas.values()))) if alphas else None
    used: dict[str, float] = {}
    with torch.no_grad():
        for name, module in modules.items():
            if name not in sigma_plus:
                continue
            matrix = weight_matrix(module, name).numpy()
            alpha = alphas.get(name)
            used[name] = z_base * alpha / alpha_mean if alpha is not None and alpha_mean else z_base
            processed = np.where(matrix == 0, 0.0, haar_sv_sparsify(matrix, sigma_plus[name], used[name], power))
            module.weight.copy_(torch.from_numpy(processed).reshape(module.weight.shape).to(module.weight))
    return used


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


def lasso_strength(fit_error: float, cycle: int) -> float:
    """``lambda = 1 / (1 + 1e4 err / i)`` of the reference regulariser step (2.2 d note)."""
    return 1.0 / (1.0 + LASSO_ERROR_WEIGHT * fit_error / cycle)


@dataclass(frozen=True)
class RegulariserConfig:
    """The reference's data-free post-pruning loop (2.2 d note, C6); ``steps`` and ``lr`` are [I]."""

    steps: int = 100
    lr: float = 1e-4
    lasso_scale: float = 1e-6
    l1: float = 5e-7
    l2: float = 2e-7

    def __post_init__(self) -> None:
        if not (isinstance(self.steps, int) and self.steps >= 0):
            raise PruningParameterError(f"regulariser.steps: must be an integer >= 0, got {self.steps!r}")
        for label in ("lr", "lasso_scale", "l1", "l2"):
            value = getattr(self, label)
            if not (math.isfinite(value) and value >= 0):
                raise PruningParameterError(f"regulariser.{label}: must be finite and >= 0, got {value!r}")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def regulariser_loss(
    modules: Mapping[str, nn.Module], strengths: Mapping[str, float], config: RegulariserConfig
) -> torch.Tensor:
    """``R = sum_l lambda_l lasso_scale ||W_l||_F + l1 sum |W| + l2 sum W^2`` over ``modules`` (module doc).

    At ``W_l = 0`` the norm's gradient is undefined (``sqrt`` backward gives ``inf``, times 0 = NaN); the
    term is then left out, i.e. the subgradient 0 is taken, so an all-zero layer stays finite.
    """
    loss = torch.zeros((), dtype=torch.float64)
    for name, module in modules.items():
        w = module.weight
        lasso = w.pow(2).sum().sqrt() if bool(w.detach().any()) else torch.zeros((), dtype=w.dtype)
        loss = loss + (strengths.get(name, 0.0) * config.lasso_scale * lasso
                       + config.l1 * w.abs().sum() + config.l2 * w.pow(2).sum()).to(loss)
    return loss


def regulariser_step(
    modules: Mapping[str, nn.Module], keep: Mapping[str, torch.Tensor], strengths: Mapping[str, float],
    config: RegulariserConfig,
) -> tuple[float, ...]:
    """The reference data-free loop (module doc) on the weights of ``modules``; returns the loss of every step.

    After backward, layer ``l``'s gradient is multiplied by ``lambda_l`` (1 for a layer without a fit,
    which also gets no lasso term) and by ``keep[l]``; after every step ``W <- W * keep`` (pruned
    entries stay exactly 0).
    """
    params = [m.weight for m in modules.values()]
    if config.steps == 0 or not params:
        return ()
    flags = [p.requires_grad for p in params]
    masks = {n: keep[n].to(device=m.weight.device, dtype=m.weight.dtype) for n, m in modules.items()}
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.l2)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.steps)
    losses = []
    try:
        for p in params:
            p.requires_grad_(True)
        for _ in range(config.steps):
            optimizer.zero_grad(set_to_none=True)
            loss = regulariser_loss(modules, strengths, config)
            loss.backward()
            with torch.no_grad():
                for name, module in modules.items():
                    if module.weight.grad is not None:
                        module.weight.grad.mul_(masks[name] * strengths.get(name, 1.0))
            optimizer.step()
            scheduler.step()
            with torch.no_grad():
                for name, module in modules.items():
                    module.weight.mul_(masks[name])
            losses.append(float(loss.detach()))
    finally:
        for p, flag in zip(params, flags):
            p.requires_grad_(flag)
    return tuple(losses)


def classical_rmt(
    model: nn.Module,
    target_sparsity: float,
    calibration=None,
    *,
    compat: str = "paper",
    data: Any = None,
    finetune_config: FinetuneConfig = FinetuneConfig(),
    regulariser: RegulariserConfig = RegulariserConfig(),
    grid_step: float = 0.05,
    theta_scale: float = THETA_SCALE,
    power: float = 30,
    floor: float = SV_FLOOR,
    b: float = SCORE_EXPONENT,
    fit_options: Mapping | None = None,
    layers: Iterable[str] | None = None,
    inplace: bool = False,
    progress: bool = False,
) -> Mask:
    """Classical RMT sweep to ``target_sparsity`` on the grid ``grid_step, 2 grid_step, ..., s`` (module doc).

    ``compat="paper"`` (default) fine-tunes on ``data`` (training batches, :mod:`pruning.finetune`)
    with ``finetune_config`` after every grid point; ``compat="reference"`` runs the data-free
    :func:`regulariser_step` with ``regulariser`` instead (C6).  ``calibration`` is unused.
    """
    if compat not in RMT_COMPATS:
        raise PruningParameterError(f"compat: expected one of {RMT_COMPATS}, got {compat!r}")
    if compat == "paper" and data is None:
        raise PruningParameterError(
            "data: compat='paper' fine-tunes on training data after every grid point (ALGORITHMS.md 2.2, C6); "
            "pass data=... or use compat='reference' (the data-free regulariser step)"
        )
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
        strengths: dict[str, float] = {}
        for name, module in chosen.items():
            matrix = weight_matrix(module, name).numpy()
            fit = fit_if_possible(matrix, name, **fit_options)  # None: score 0, no lasso term [I]
            scores[name] = 0.0 if fit is None else randomness_score(fit.mp_fit_error, fit.bulk_fraction, cycle, b)
            if fit is not None:
                strengths[name] = lasso_strength(fit.mp_fit_error, cycle)
            theta = theta_scale * rho * matrix.size if cycle % 2 == 0 else 0.0
            recomposed = sv_sparsify(matrix, fit.sigma_plus, theta, power, floor) if fit is not None else matrix
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
        point_mask = Mask(keep=keep, provenance=Provenance(method="classical_rmt", sparsity=s_t))
        if compat == "paper":
            steps = finetune(work, point_mask, data, finetune_config, inplace=True, progress=progress).steps
            post = {"kind": "finetune", "steps": steps}
        else:
            losses = regulariser_step(chosen, keep, strengths, regulariser)
            post = {"kind": "regulariser", "steps": len(losses), "lasso_strengths": strengths,
                    "loss_first": losses[0] if losses else None, "loss_last": losses[-1] if losses else None}
        history.append({"sparsity": s_t, "zeros": counts, "scores": scores, "theta_on": cycle % 2 == 0,
                        "post_prune": post})
    options = {"compat": compat, "grid": grid, "grid_step": grid_step, "theta_scale": theta_scale,
               "theta_flavour": "cycle", "power": power, "floor": floor, "b": b, "fit_options": fit_options,
               "post_prune": finetune_config.to_json() if compat == "paper" else regulariser.to_json(),
               "history": history}
    return Mask(keep=keep, provenance=Provenance(method="classical_rmt", options=options, sparsity=grid[-1]))
