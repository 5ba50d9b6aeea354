"""Report folder of a certify run: figures written and linked, atomic on failure, no overwrite without force."""

import json

import pytest

from figures import certificate_plots
from pruning.magnitude import magnitude
from rmt.errors import InvalidParameterError
from verification.bridge.certificate_report import write_report
from verification.bridge.certify import certify
from verification.models.datasets import calibration_subset, load_default_dataset
from verification.models.default_model import build_default_model
from tests.verification.single_thread import one_thread  # noqa: F401  (autouse)

PNG = b"\x89PNG\r\n\x1a\n"
LAYERS = ["blocks.1.attn.qkv", "blocks.2.mlp.fc2", "head"]


@pytest.fixture(scope="module")
def report():
    model = build_default_model()
    dataset = load_default_dataset()
    cal = calibration_subset(dataset, 8, 4)
    mask = magnitude(model, 0.6, layers=LAYERS)
    return certify(model, mask, cal, heldout=(dataset.test_images[:8], dataset.test_labels[:8]), grid=2,
                   multilayer=False)


def test_figures_are_written_and_linked(report, tmp_path):
    out = tmp_path / "rep"
    document = write_report(report, out, extra_json={"data_note": "test"},
                            extra_files={"extra.txt": lambda p: p.write_text("x")})
    expected = ["budgets.png", "bound_vs_realized.png", "margins.png"] + [f"esd/{n}.png" for n in LAYERS]
    assert document["figures"] == expected
    md = (out / "report.md").read_text()
    for rel in expected:
        data = (out / rel).read_bytes()
        assert data.startswith(PNG) and len(data) > 5000, rel
        assert f"]({rel})" in md
    on_disk = json.loads((out / "report.json").read_text())
    assert on_disk["figures"] == expected and on_disk["data_note"] == "test"
    assert (out / "extra.txt").read_text() == "x"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rep"]  # no temporary sibling left


def test_a_failing_plot_leaves_nothing(report, tmp_path, monkeypatch):
    def broken(*_args, **_kwargs):
        raise RuntimeError("plot failed")

    monkeypatch.setattr(certificate_plots, "plot_margin_histogram", broken)
    with pytest.raises(RuntimeError, match="plot failed"):
        write_report(report, tmp_path / "rep")
    assert list(tmp_path.iterdir()) == []


def test_existing_report_is_kept_unless_forced(report, tmp_path, monkeypatch):
    out = tmp_path / "rep"
    out.mkdir()
    (out / "old.txt").write_text("old")
    with pytest.raises(InvalidParameterError, match="not empty"):
        write_report(report, out, plots=False)
    monkeypatch.setattr(certificate_plots, "plot_layer_budgets", lambda *a, **k: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        write_report(report, out, force=True)
    assert [p.name for p in out.iterdir()] == ["old.txt"]  # a failed forced rewrite keeps the old folder
    monkeypatch.undo()
    write_report(report, out, plots=False, force=True)
    assert sorted(p.name for p in out.iterdir()) == ["report.json", "report.md"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rep"]
