"""``mpcert demo --quick``: the whole chain on the default model, two reports and a summary."""

import json

import pytest

from certs.errors import CertificateInputError
from rmt.errors import InvalidParameterError
from verification.cli import main
from verification.bridge.demo import MASK_FOLDERS, QUICK_SETTINGS, run_demo
from tests.verification.single_thread import one_thread  # noqa: F401  (autouse)


@pytest.fixture(scope="module")
def demo_out(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "out"
    assert main(["demo", "--quick", "--lipschitz", "estimate", "--workers", "1", "--out", str(out)]) == 0
    return out


def test_demo_writes_both_reports_and_the_summary(demo_out):
    assert sorted(p.name for p in demo_out.iterdir()) == sorted(["summary.md", "summary.json", "esd",
                                                                 *MASK_FOLDERS.values()])
    summary = json.loads((demo_out / "summary.json").read_text())
    rows = {r["mask"]: r for r in summary["masks"]}
    assert set(rows) == {"hybrid", "cast-2:4"}
    assert summary["settings"]["calibration"] == QUICK_SETTINGS.calibration
    assert rows["cast-2:4"]["execution"] == "packed-2:4" and rows["cast-2:4"]["max_packed_abs_diff"] <= 1e-12
    assert rows["hybrid"]["execution"] == "dense-float64" and rows["hybrid"]["method"] == "hybrid"
    for name, folder in MASK_FOLDERS.items():
        doc = json.loads((demo_out / folder / "report.json").read_text())
        assert doc["mask"]["method"] == rows[name]["method"]
        assert doc["data"]["calibration"]["samples"] == QUICK_SETTINGS.calibration
        assert doc["data"]["heldout"]["samples"] == QUICK_SETTINGS.heldout
        assert set(doc["bridges"]) == {"calibration", "heldout"}
        assert len(doc["violations"]) == rows[name]["violations"] == 0
        assert len(doc["estimate_diagnostics"]) == rows[name]["estimate_diagnostics"]
        assert (demo_out / folder / "mask.safetensors").is_file()
        assert all((demo_out / folder / f).is_file() for f in doc["figures"])
    md = (demo_out / "summary.md").read_text()
    assert "[hybrid](hybrid/report.md)" in md and "[cast-2:4](cast-2of4/report.md)" in md
    assert (all((demo_out / p).is_file() for p in summary["esd_figures"])
            and len(summary["esd_figures"]) == len(summary["mp_fits"]))
    assert "estimate" in md and "certificate" in md  # "never a certificate"
    assert md.index("## What is certified") < md.index("## Audit details") and "diagnostics of the estimate" in md
    assert "false-alarm rate alpha = 0.05" in md and all(f["spike_test"] == "calibrated" for f in summary["mp_fits"])
    for f in summary["mp_fits"]:  # the MP table shows the calibrated count, "k+" where the test hit its cap
        cell = f"{f['n_spikes']}+" if f["spikes_capped"] else str(f["n_spikes"])
        assert f"| {f['name']} | {f['shape'][0]}x{f['shape'][1]} | {f['sigma_plus']:.4g} | {cell} |" in md


def test_demo_refuses_bad_settings_before_any_work(tmp_path):
    with pytest.raises(InvalidParameterError, match="--calibration"):
        run_demo(tmp_path / "x", QUICK_SETTINGS.__class__(calibration=0))
    with pytest.raises(InvalidParameterError, match="--sparsity"):
        run_demo(tmp_path / "x", QUICK_SETTINGS.__class__(sparsity=1.0))
    with pytest.raises(InvalidParameterError, match="--sound-budget"):
        run_demo(tmp_path / "x", QUICK_SETTINGS.__class__(lipschitz="sound", sound_budget=0))
    with pytest.raises(CertificateInputError, match="--sound-device"):
        run_demo(tmp_path / "x", QUICK_SETTINGS.__class__(lipschitz="sound", sound_device="tpu"))
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "f").write_text("x")
    # non-empty --out without --force
    assert main(["demo", "--quick", "--workers", "1", "--out", str(tmp_path / "full")]) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["full"]
