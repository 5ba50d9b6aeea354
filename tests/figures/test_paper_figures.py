"""``mpcert figures paper``: the drawn figures have the published layout, and the JSON carries every fit."""

from __future__ import annotations

import json
import struct

import pytest

from figures.paper_ledgers import FIGURE2_SPARSITIES
from tests.figures.paper_readme import figure2_axis_limits, figure2_reference, figure3_reference
from verification.cli import main

# pixel sizes of the published renders (data README section 1: 200 dpi / 300 dpi of the PDFs)
REFERENCE_PNG = {"paper_figure2.png": (3175, 970), "paper_figure3.png": (1980, 1260)}


@pytest.fixture(scope="module")
def drawn(tmp_path_factory):
    out = tmp_path_factory.mktemp("paper")
    assert main(["figures", "paper", "--out", str(out)]) == 0
    return out, json.loads((out / "paper_figures.json").read_text(encoding="utf-8"))


def _png_size(path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", head[16:24])


def test_files_are_written(drawn):
    out, _ = drawn
    for stem in ("paper_figure2", "paper_figure3"):
        assert (out / f"{stem}.pdf").read_bytes()[:5] == b"%PDF-"
        width, height = _png_size(out / f"{stem}.png")
        ref_w, ref_h = REFERENCE_PNG[f"{stem}.png"]
        assert abs(width - ref_w) <= 0.01 * ref_w and abs(height - ref_h) <= 0.02 * ref_h, (stem, width, height)


def test_figure2_json_fits_and_axes_match_readme(drawn):
    _, fits = drawn
    limits = figure2_axis_limits()
    panels = fits["figure2"]["panels"]
    assert [p["sparsity"] for p in panels] == list(FIGURE2_SPARSITIES)
    for panel in panels:
        ref = figure2_reference()[panel["sparsity"]]
        assert panel["fit"]["slope"] == pytest.approx(ref.slope, abs=1e-3)
        assert panel["fit"]["intercept"] == pytest.approx(ref.intercept, abs=1e-3)
        assert panel["fit"]["r"] == pytest.approx(ref.r, abs=1e-3)
        assert panel["legend"] == ref.legend
        assert len(panel["rows"]) == 17
        assert panel["xlim_m"] == pytest.approx(limits["x"], rel=1e-3)
        assert panel["ylim_pp"] == pytest.approx(limits[f"{panel['sparsity']:.2f}"], abs=1e-3)


def test_figure3_json_matches_readme(drawn):
    _, fits = drawn
    ref = figure3_reference()
    fig3 = fits["figure3"]
    assert (fig3["fit"]["slope"], fig3["fit"]["intercept"], fig3["fit"]["r"]) == pytest.approx(
        (ref.slope, ref.intercept, ref.r), abs=1e-3)
    assert (fig3["line"]["y_start"], fig3["line"]["y_end"]) == pytest.approx((ref.fit_at_start, ref.fit_at_end),
                                                                             abs=1e-3)
    assert [r["label"] for r in fig3["rows"]] == list(ref.labels)
    assert sorted(r["table_row"] for r in fig3["excluded_rows"]) == [1, 2, 4, 6, 7, 8, 20]


def test_disagreements_inside_the_paper_are_recorded(drawn):
    _, fits = drawn
    found = {d["id"]: d for d in fits["paper_disagreements"]}
    assert {"figure2-caption-R", "sign-convention", "parameter-counts-differ"} <= set(found)
    caption = found["figure2-caption-R"]
    for s, r_plotted in caption["plotted_data_R_signed"].items():
        assert r_plotted > 0 > caption["caption_R_unsigned"][s]  # opposite sign conventions
    assert round(abs(caption["plotted_data_R_signed"]["0.50"]), 2) != abs(caption["caption_R_unsigned"]["0.50"])
    counts = found["parameter-counts-differ"]
    assert counts["ViT-L/16_M"] == {"figure2": 304.0, "figure3": 304.3}
    assert counts["ConvNeXtV2-Base_M"] == {"figure2": 88.7, "figure3": 89.0}
