"""Which ledger rows Figures 2 and 3 include and exclude, and that the shipped ledgers are the verbatim copies."""

from __future__ import annotations

import hashlib
import re
from decimal import Decimal

import pytest

import figures.paper_ledgers as paper_ledgers
from figures.paper_ledgers import (
    FIGURE2_SPARSITIES,
    PaperLedgerError,
    figure2_points,
    figure3_excluded_rows,
    figure3_points,
    paper_data_dir,
    read_ledger_rows,
)
from tests.figures.paper_readme import figure3_reference


def test_shipped_ledgers_match_the_provenance_checksums():
    provenance = (paper_data_dir() / "PROVENANCE.md").read_text(encoding="utf-8")
    listed = dict(re.findall(r"^\| `([^`]+)` \| `([0-9a-f]{64})` \|$", provenance, re.M))
    assert set(listed) == {"table1_vitb16_methods.csv", "table2_hybrid_sweep.csv", "table3_structured.csv",
                           "table4_deploy_audit.csv", "README.md"}
    for name, digest in listed.items():
        assert hashlib.sha256((paper_data_dir() / name).read_bytes()).hexdigest() == digest, name


@pytest.mark.parametrize("s", FIGURE2_SPARSITIES)
def test_figure2_selection_equals_the_ledger_flags(s):
    flagged = {(int(r["table_row"])) for r in read_ledger_rows("table2_hybrid_sweep.csv")
               if r["in_figure2"] == "1" and float(r["sparsity"]) == s}
    points = figure2_points(s)
    assert {p.table_row for p in points} == flagged == set(range(1, 18))
    assert [p.draw_order for p in points] == list(range(1, 18))
    # both runs of DeiT-Base and Swin-Tiny are separate points
    assert sorted(p.run for p in points if p.architecture in ("DeiT-Base", "Swin-Tiny")) == [1, 1, 2, 2]
    # the signed change is top1 - baseline, equal to the ledger's derived column
    by_row = {int(r["table_row"]): r for r in read_ledger_rows("table2_hybrid_sweep.csv") if float(r["sparsity"]) == s}
    for p in points:
        assert Decimal(str(p.delta_top1_pp)) == Decimal(by_row[p.table_row]["delta_top1_pp"])


def test_figure2_excludes_the_other_sparsities():
    rows = read_ledger_rows("table2_hybrid_sweep.csv")
    others = {float(r["sparsity"]) for r in rows if r["in_figure2"] == "0"}
    assert others == {round(0.05 * i, 2) for i in range(1, 15)} - set(FIGURE2_SPARSITIES)
    with pytest.raises(PaperLedgerError, match="sparsity"):
        figure2_points(0.55)


def test_figure3_selection_equals_flags_and_readme_table():
    ref = figure3_reference()
    points = figure3_points()
    rows = read_ledger_rows("table3_structured.csv")
    assert tuple(p.table_row for p in points) == ref.table_rows
    assert {int(r["table_row"]) for r in rows if r["in_figure3"] == "1"} == set(ref.table_rows)
    assert tuple(p.label for p in points) == ref.labels
    assert tuple(p.params_m for p in points) == ref.params_m
    assert tuple(p.drop_pp for p in points) == pytest.approx(ref.drops, abs=1e-12)
    assert all(p.drop_pp > 0 for p in points)
    assert not any(p.architecture.startswith("DeiT") for p in points)


def test_figure3_excluded_rows_are_the_seven_of_the_readme():
    excluded = figure3_excluded_rows()
    assert sorted(int(r["table_row"]) for r in excluded) == [1, 2, 4, 6, 7, 8, 20]
    tome = [r for r in excluded if "ToMe" in r["method"]]
    assert len(tome) == 6 and {r["mac_reduction_pct"] for r in tome} == {"59.81", "60"}
    (other,) = [r for r in excluded if "ToMe" not in r["method"]]
    assert other["architecture"] == "ConvNeXtV2-Base" and other["mac_reduction"] == "25%"


def test_a_wrong_mac_window_changes_the_selection(monkeypatch):
    """Known-bad: an exclusive upper edge (< 50 %) loses the 50 % and "~50%" rows."""
    monkeypatch.setattr(paper_ledgers, "FIGURE3_MAC_RANGE", (48.5, 49.99))
    assert len(figure3_points()) < len(figure3_reference().labels)


def test_missing_ledger_raises_a_typed_error():
    with pytest.raises(PaperLedgerError, match="no_such_table.csv"):
        read_ledger_rows("no_such_table.csv")
