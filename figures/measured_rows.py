"""The rows of our own size-trend measurement (the run: :mod:`verification.models.measured_trend`).

Plain result types, so that :mod:`figures` draws and ledgers them without importing the pipeline.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["HYBRID", "CAST", "MeasuredRow", "Measurement"]

#: The two pruning methods of the measurement, as named in the ledger's ``method`` column.
HYBRID, CAST = "hybrid", "cast_2:4"


@dataclass(frozen=True)
class MeasuredRow:
    """One ledger row (see the module docstring for the conventions)."""

    seed: int
    model: str
    embed_dim: int
    depth: int
    num_heads: int
    params: int
    dense_top1: float
    method: str
    sparsity: float
    top1: float
    delta_top1_pp: float
    drop_pp: float
    mac_reduction_pct: float | None
    budget_sum: float | None
    budget_label: str | None
    budget_layers: int | None
    train_wall_s: float
    prune_wall_s: float
    certify_wall_s: float | None

    @property
    def params_m(self) -> float:
        return self.params / 1e6


@dataclass(frozen=True)
class Measurement:
    """The rows plus the run record (config, training cards, versions, date, timings)."""

    rows: tuple[MeasuredRow, ...]
    record: dict[str, Any] = field(default_factory=dict)
