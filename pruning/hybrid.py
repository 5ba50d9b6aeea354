"""Hybrid Magnitude–SER schedule (ALGORITHMS.md 6).

On the grid ``0.05, 0.10, ..., 0.70`` (cumulative, from a copy of the dense model)::

    stage 1, s <= switch (0.20): exact global magnitude (3.1) + one keep-FT epoch (9.1)
    stage 2, s >  switch:        ser_step (5.3), which includes its keep-FT epoch

The MP cache comes from the dense checkpoint, once.  The SER keep-FT LR multiplier is ramped
linearly from ``lr_ramp[0]`` at the first SER grid point to ``lr_ramp[1]`` at the last (1.0 -> 2.0,
5.3 [I]).  **Drop-threshold variant** (the paper's rows marked ‡, 6.1): with ``drop_threshold`` set,
stage 1 continues past ``switch`` until the post-FT score of ``evaluate`` falls more than
``drop_threshold`` below ``reference_score`` (the dense model's score by default); SER resumes at the
next grid point.  This uses held-out evaluation to choose the switch point (the paper's choice).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, replace
from typing import Any, Callable, Sequence

from torch import nn

from .arguments import check_sparsity
from .errors import PruningParameterError
from .finetune import FinetuneConfig, finetune
from .magnitude import magnitude
from .mask import Mask, Provenance
from .schedule import sparsity_grid
from .ser import KEEP_FT_DEFAULT, SELECTION_DEFAULT, ser_step
from .sigma_cache import SpectralCache, spectral_cache

__all__ = ["DEFAULT_GRID", "HybridPoint", "HybridRun", "hybrid_schedule", "hybrid_magnitude_ser"]

DEFAULT_GRID = tuple(round(0.05 * i, 2) for i in range(1, 15))
MAGNITUDE_FT_DEFAULT = FinetuneConfig(optimizer="sgd", lr=3e-5, batch_size=128)


@dataclass(frozen=True)
class HybridPoint:
    """One grid point: sparsity, stage (``magnitude`` / ``ser``), the mask there, the post-FT score."""

    sparsity: float
    stage: str
    mask: Mask
    score: float | None


@dataclass(frozen=True)
class HybridRun:
    """All grid points of a schedule, the sparse model at the last point, and where SER started."""

    points: tuple[HybridPoint, ...]
    model: nn.Module
    ser_start: float | None


def _check_grid(grid: Sequence[float]) -> tuple[float, ...]:
    values = tuple(check_sparsity(s, "grid") for s in grid)
    if not values or any(b <= a for a, b in zip(values, values[1:])):
        raise PruningParameterError("grid: must be a non-empty strictly increasing sequence in [0, 1), got "
                                    f"{list(grid)}")
    return values


def hybrid_schedule(
    model: nn.Module,
    data: Any,
    grid: Sequence[float] = DEFAULT_GRID,
    *,
    switch: float = 0.20,
    cache: SpectralCache | None = None,
    magnitude_ft: FinetuneConfig = MAGNITUDE_FT_DEFAULT,
    keep_ft: FinetuneConfig = KEEP_FT_DEFAULT,
    selection: FinetuneConfig = SELECTION_DEFAULT,
    lr_ramp: tuple[float, float] = (1.0, 2.0),
    evaluate: Callable[[nn.Module], float] | None = None,
    drop_threshold: float | None = None,
    reference_score: float | None = None,
    on_point: Callable[[HybridPoint, nn.Module], None] | None = None,
    inplace: bool = False,
    seed: int = 0,
    progress: bool = False,
    **ser_options: Any,
) -> HybridRun:
    """Run the Hybrid schedule (module docstring) on a copy of ``model`` (``inplace`` edits it).

    ``data``: training batches (:mod:`pruning.finetune`).  ``on_point(point, model)`` is called after
    every grid point (e.g. to save a checkpoint).  ``ser_options`` go to :func:`pruning.ser.ser_step`.
    """
    points_grid = _check_grid(grid)
    switch = check_sparsity(switch, "switch")
    if drop_threshold is not None and evaluate is None:
        raise PruningParameterError("drop_threshold: needs an evaluate callable to measure the drop")
    layers = ser_options.get("layers")
    work = model if inplace else copy.deepcopy(model)
    cache = spectral_cache(work, layers) if cache is None else cache
    if drop_threshold is not None and reference_score is None:
        reference_score = float(evaluate(work))
    ser_grid = [s for s in points_grid if s > switch]
    stage_two = drop_threshold is None
    points: list[HybridPoint] = []
    ser_start = None
    for s in points_grid:
        if s <= switch or not stage_two:
            mask = magnitude(work, s, layers=layers)
            mask = Mask(keep=mask.keep, provenance=Provenance(
                method="hybrid/magnitude", options={**mask.provenance.options, "magnitude_ft": magnitude_ft.to_json()},
                sparsity=s, seed=seed))
            finetune(work, mask, data, replace(magnitude_ft, seed=seed), inplace=True, progress=progress)
            stage = "magnitude"
        else:
            ser_start = s if ser_start is None else ser_start
            ramp = 0.0 if len(ser_grid) < 2 else (s - ser_grid[0]) / (ser_grid[-1] - ser_grid[0])
            multiplier = lr_ramp[0] + (lr_ramp[1] - lr_ramp[0]) * min(1.0, max(0.0, ramp))
            step_ft = replace(keep_ft, lr=keep_ft.lr * multiplier, seed=seed)
            mask = ser_step(work, s, data, cache=cache, keep_ft=step_ft, selection=replace(selection, seed=seed),
                            progress=progress, **ser_options).mask
            stage = "ser"
        score = None if evaluate is None else float(evaluate(work))
        point = HybridPoint(sparsity=s, stage=stage, mask=mask, score=score)
        points.append(point)
        if on_point is not None:
            on_point(point, work)
        if not stage_two and s >= switch and reference_score - score > drop_threshold:
            stage_two = True
    return HybridRun(points=tuple(points), model=work, ser_start=ser_start)


def hybrid_magnitude_ser(
    model: nn.Module,
    target_sparsity: float,
    calibration=None,
    *,
    data: Any,
    grid_step: float = 0.05,
    switch: float = 0.20,
    seed: int = 0,
    inplace: bool = False,
    **options: Any,
) -> Mask:
    """Mask at ``target_sparsity`` from the Hybrid schedule on the grid ``grid_step, 2 grid_step, ... , s``.

    The grid is the multiples of ``grid_step`` below ``s`` followed by ``s`` itself.  ``calibration``
    is unused; ``options`` go to :func:`hybrid_schedule`.  The provenance records the whole schedule.
    """
    run = hybrid_schedule(model, data, sparsity_grid(target_sparsity, grid_step), switch=switch, seed=seed,
                          inplace=inplace, **options)
    s = run.points[-1].sparsity
    last = run.points[-1].mask
    record = {"grid": [p.sparsity for p in run.points], "stages": [p.stage for p in run.points],
              "switch": switch, "ser_start": run.ser_start, "last_step": {"method": last.provenance.method,
                                                                          **last.provenance.options}}
    return Mask(keep=last.keep, provenance=Provenance(method="hybrid", options=record, sparsity=s, seed=seed))
