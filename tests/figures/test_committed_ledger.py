"""The committed full measurement (``figures/data/measured``): complete, consistent, and redrawable."""

from __future__ import annotations

import json

import numpy as np
import pytest

from figures.measured_ledger import committed_ledger_path, read_ledger
from figures.measured_rows import CAST, HYBRID
from verification.models.measured_trend import FULL_CONFIG
from verification.cli import main


@pytest.fixture(scope="module")
def ledger():
    return read_ledger(committed_ledger_path())


def test_committed_ledger_is_the_full_configuration(ledger):
    assert ledger.record["config"] == json.loads(json.dumps(FULL_CONFIG.to_json()))
    assert len(FULL_CONFIG.members) >= 4 and len(FULL_CONFIG.seeds) >= 2
    expected = {(seed, m.name) for seed in FULL_CONFIG.seeds for m in FULL_CONFIG.members}
    for method, per_model in ((HYBRID, len(FULL_CONFIG.sparsities)), (CAST, 1)):
        rows = [r for r in ledger.rows if r.method == method]
        assert len(rows) == per_model * len(expected)
        assert {(r.seed, r.model) for r in rows} == expected
    assert ledger.record["timing"]["wall_s"] > 0 and ledger.record["date"]


def test_committed_rows_are_consistent(ledger):
    for row in ledger.rows:
        assert row.delta_top1_pp == pytest.approx(row.top1 - row.dense_top1, abs=1e-9)
        assert row.drop_pp == pytest.approx(row.dense_top1 - row.top1, abs=1e-9)
        if row.method == HYBRID:
            assert row.budget_label == "estimate" and row.budget_sum > 0
    params = {m.name: p for m, p in zip(FULL_CONFIG.members, sorted({r.params for r in ledger.rows}))}
    assert all(params[r.model] == r.params for r in ledger.rows)  # sizes strictly increase along the family


def test_redraw_committed_ledger(ledger, tmp_path):
    assert main(["figures", "measured", "--from-ledger", "committed", "--out", str(tmp_path)]) == 0
    fits = json.loads((tmp_path / "measured_fits.json").read_text(encoding="utf-8"))
    for s in FULL_CONFIG.sparsities:
        rows = [r for r in ledger.rows if r.method == HYBRID and r.sparsity == s]
        x, y = np.log10([r.params_m for r in rows]), [r.delta_top1_pp for r in rows]
        pooled = fits["trends"][f"hybrid_s{s:.2f}"]["pooled"]
        assert pooled["slope"] == pytest.approx(np.polyfit(x, y, 1)[0], abs=1e-9)
        assert pooled["r"] == pytest.approx(np.corrcoef(x, y)[0, 1], abs=1e-9)
        assert pooled["n"] == len(FULL_CONFIG.members) * len(FULL_CONFIG.seeds)
