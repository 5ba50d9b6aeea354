"""The published ledgers behind the paper's Figures 2 and 3, and the rows each figure plots.

The CSVs are verbatim copies shipped in ``figures/data/paper`` (see ``PROVENANCE.md`` there) and
read through :mod:`importlib.resources`, so an installed mpcert finds them.  The row selections
follow the data README (sections 3 and 4) and are computed here from the table cells, not taken
from the ``in_figure2`` / ``in_figure3`` flag columns (the tests compare the two):

* Figure 2: every row of ``table2_hybrid_sweep.csv`` at ``s`` in {0.50, 0.60, 0.70} (17 per panel,
  duplicate DeiT-Base / Swin-Tiny runs kept); ``y = delta_top1_pp = top1 - baseline`` (signed);
* Figure 3: the rows of ``table3_structured.csv`` with ``48.5 <= MAC reduction <= 50`` percent
  ("~50%" counts as 50); ``y = -delta_pp = dense - top1`` (unsigned drop).
"""

from __future__ import annotations

import csv
import importlib.resources
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from rmt.errors import MPCertError

__all__ = [
    "PaperLedgerError", "FIGURE2_SPARSITIES", "FIGURE3_MAC_RANGE", "Figure2Point", "Figure3Point",
    "paper_data_dir", "read_ledger_rows", "figure2_points", "figure3_points", "figure3_excluded_rows",
]

FIGURE2_SPARSITIES = (0.50, 0.60, 0.70)
FIGURE3_MAC_RANGE = (48.5, 50.0)
TABLE2 = "table2_hybrid_sweep.csv"
TABLE3 = "table3_structured.csv"
_FIGURE3_FAMILY = {"ViT family": "ViT", "ResNet family": "ResNet", "ConvNeXt family": "ConvNeXtV2"}


class PaperLedgerError(MPCertError):
    """A shipped paper ledger is missing or has unexpected content (the message names the file)."""


@dataclass(frozen=True)
class Figure2Point:
    """One marker of Figure 2: a Table 2 checkpoint row at one sparsity."""

    table_row: int
    architecture: str
    family: str
    run: int
    params_m: float
    sparsity: float
    top1: float
    baseline_top1: float
    delta_top1_pp: float
    draw_order: int


@dataclass(frozen=True)
class Figure3Point:
    """One point of Figure 3: a Table 3 CAST row at 48.5-50 % MAC reduction (``drop_pp = dense - top1``)."""

    table_row: int
    architecture: str
    family: str
    method: str
    params_m: float
    mac_reduction_pct: float
    drop_pp: float
    label: str
    marker: str


def paper_data_dir() -> Path:
    """Folder of the shipped ledgers (package data ``figures/data/paper``)."""
    return Path(str(importlib.resources.files("figures"))) / "data" / "paper"


def read_ledger_rows(name: str) -> list[dict[str, str]]:
    """All rows of the shipped ledger ``name`` as dictionaries of the printed strings."""
    path = paper_data_dir() / name
    if not path.is_file():
        raise PaperLedgerError(f"paper ledger {str(path)!r} does not exist (is the package data installed?)")
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        raise PaperLedgerError(f"paper ledger {str(path)!r} has no rows")
    return rows


def _decimal_delta(top1: str, baseline: str) -> float:
    """``top1 - baseline`` by exact decimal subtraction of the printed 2-decimal values."""
    return float(Decimal(top1) - Decimal(baseline))


def figure2_points(sparsity: float) -> tuple[Figure2Point, ...]:
    """The 17 points of the Figure 2 panel at ``sparsity`` (one of :data:`FIGURE2_SPARSITIES`), in draw order."""
    if sparsity not in FIGURE2_SPARSITIES:
        raise PaperLedgerError(f"sparsity: Figure 2 has panels {FIGURE2_SPARSITIES}, got {sparsity!r}")
    points = [
        Figure2Point(
            table_row=int(r["table_row"]), architecture=r["architecture"], family=r["family"], run=int(r["run"]),
            params_m=float(r["dense_params_m"]), sparsity=float(r["sparsity"]), top1=float(r["top1"]),
            baseline_top1=float(r["baseline_top1"]), delta_top1_pp=_decimal_delta(r["top1"], r["baseline_top1"]),
            draw_order=int(r["figure2_draw_order"]),
        )
        for r in read_ledger_rows(TABLE2)
        if float(r["sparsity"]) == sparsity
    ]
    return tuple(sorted(points, key=lambda p: p.draw_order))


def _in_mac_range(row: dict[str, str]) -> bool:
    low, high = FIGURE3_MAC_RANGE
    return low <= float(row["mac_reduction_pct"]) <= high


def figure3_points() -> tuple[Figure3Point, ...]:
    """The Figure 3 points: Table 3 rows with 48.5 <= MAC reduction <= 50 %, in table order."""
    return tuple(
        Figure3Point(
            table_row=int(r["table_row"]), architecture=r["architecture"], family=_FIGURE3_FAMILY[r["family_block"]],
            method=r["method"], params_m=float(r["dense_params_m"]), mac_reduction_pct=float(r["mac_reduction_pct"]),
            drop_pp=-float(r["delta_pp"]), label=r["figure3_label"], marker=r["figure3_marker"],
        )
        for r in read_ledger_rows(TABLE3)
        if _in_mac_range(r)
    )


def figure3_excluded_rows() -> tuple[dict[str, str], ...]:
    """The Table 3 rows outside the 48.5-50 % MAC window (not plotted in Figure 3)."""
    return tuple(r for r in read_ledger_rows(TABLE3) if not _in_mac_range(r))
