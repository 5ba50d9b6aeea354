"""``mpcert figures measured --config small``: the whole measured pipeline on tiny models (CI size).

Trains the four tiny ViTs of :data:`SMALL_CONFIG` on 300 Fashion-MNIST images (digits when
Fashion-MNIST is not installed), prunes them (Hybrid on a 4-point grid, CAST 2:4), fine-tunes,
evaluates, certifies, writes the ledger and draws the figures; then redraws from the ledger.
"""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from figures.measured_ledger import LedgerError, read_ledger
from figures.measured_rows import CAST, HYBRID
from verification.models.measured_trend import SMALL_CONFIG, MeasuredConfig, measure_and_draw
from rmt.errors import InvalidParameterError
from verification.cli import main
from verification.models.model_family import FamilyMember

FIGURES = ("measured_figure2", "measured_figure3", "measured_budget")


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    out = tmp_path_factory.mktemp("measured")
    assert main(["figures", "measured", "--config", "small", "--out", str(out)]) == 0
    return out


def test_ledger_rows_follow_the_conventions(measured):
    ledger = read_ledger(measured / "measured_ledger.csv")
    members, seeds = SMALL_CONFIG.members, SMALL_CONFIG.seeds
    assert len(ledger.rows) == len(members) * len(seeds) * (len(SMALL_CONFIG.sparsities) + 1)
    for row in ledger.rows:
        assert row.delta_top1_pp == pytest.approx(row.top1 - row.dense_top1, abs=1e-9)
        assert row.drop_pp == pytest.approx(-row.delta_top1_pp, abs=1e-9)
        assert 0 <= row.top1 <= 100 and 0 <= row.dense_top1 <= 100
    hybrid = [r for r in ledger.rows if r.method == HYBRID]
    assert sorted({r.sparsity for r in hybrid}) == list(SMALL_CONFIG.sparsities)
    assert all(r.budget_label == "estimate" and r.budget_sum > 0 for r in hybrid)  # L_s is an ESTIMATE
    cast = [r for r in ledger.rows if r.method == CAST]
    assert all(r.sparsity == 0.5 and r.budget_sum is None and 0 < r.mac_reduction_pct < 50 for r in cast)
    params = [r.params for r in cast]
    assert params == sorted(params) and len(set(params)) == len(members)  # sizes increase along the family


def test_record_holds_config_seeds_and_times(measured):
    record = json.loads((measured / "measured_ledger.json").read_text(encoding="utf-8"))["record"]
    assert record["config"]["name"] == "small" and record["config"]["seeds"] == list(SMALL_CONFIG.seeds)
    assert len(record["training_cards"]) == len(SMALL_CONFIG.members)
    assert record["timing"]["wall_s"] > 0 and "torch" in record["versions"]


def test_figures_and_fits_are_written(measured):
    for stem in FIGURES:
        assert (measured / f"{stem}.png").stat().st_size > 1000
        assert (measured / f"{stem}.pdf").read_bytes()[:5] == b"%PDF-"
    fits = json.loads((measured / "measured_fits.json").read_text(encoding="utf-8"))
    assert set(fits["trends"]) == {"hybrid_s0.50", "hybrid_s0.60", "hybrid_s0.70", "cast_2:4_drop"}
    ledger = read_ledger(measured / "measured_ledger.json")
    rows = [r for r in ledger.rows if r.method == HYBRID and r.sparsity == 0.5]
    x, y = np.log10([r.params_m for r in rows]), [r.delta_top1_pp for r in rows]
    slope, intercept = np.polyfit(x, y, 1)
    assert fits["trends"]["hybrid_s0.50"]["pooled"]["slope"] == pytest.approx(slope, abs=1e-9)
    assert fits["trends"]["hybrid_s0.50"]["pooled"]["intercept"] == pytest.approx(intercept, abs=1e-9)
    assert fits["budget_label"].startswith("estimate")
    for entry in fits["trends"].values():
        assert entry["verdict"] in ("agrees", "disagrees", "inconclusive")


def test_redraw_from_ledger_gives_the_same_fits(measured, tmp_path):
    assert main(["figures", "measured", "--from-ledger", str(measured / "measured_ledger.csv"), "--out",
                 str(tmp_path)]) == 0
    first = json.loads((measured / "measured_fits.json").read_text(encoding="utf-8"))["trends"]
    again = json.loads((tmp_path / "measured_fits.json").read_text(encoding="utf-8"))["trends"]
    assert again == first


def test_broken_ledgers_are_refused(measured, tmp_path, capsys):
    assert main(["figures", "measured", "--from-ledger", str(tmp_path / "none.csv"), "--out", str(tmp_path)]) == 2
    assert "none.csv" in capsys.readouterr().err
    with (measured / "measured_ledger.csv").open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    broken = tmp_path / "broken.csv"
    with broken.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=[f for f in rows[0] if f != "top1"])
        writer.writeheader()
        writer.writerows({k: v for k, v in r.items() if k != "top1"} for r in rows)
    with pytest.raises(LedgerError, match="top1"):
        read_ledger(broken)


def test_config_rejects_too_few_models_and_off_grid_sparsities():
    with pytest.raises(InvalidParameterError, match="members"):
        MeasuredConfig(name="x", members=(FamilyMember(8, 1, 2),) * 2, seeds=(0,), train_images=10, epochs=1)
    with pytest.raises(InvalidParameterError, match="sparsities"):
        MeasuredConfig(name="x", members=SMALL_CONFIG.members, seeds=(0,), train_images=10, epochs=1,
                       grid=(0.2, 0.5), sparsities=(0.5, 0.6))


def test_measure_and_draw_refuses_an_unknown_config_before_any_work(tmp_path):
    """Known-bad: a configuration name that is not in CONFIGS is a typed error, and nothing is written."""
    with pytest.raises(InvalidParameterError, match="config must be one of"):
        measure_and_draw(tmp_path / "out", config="medium")
    assert not (tmp_path / "out").exists()
