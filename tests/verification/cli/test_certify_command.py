"""`mpcert certify`: report folder contents, mask files, atomic writing, typed failures (exit code 2)."""

import json

import pytest

from pruning.mask import Mask
from verification.cli import main
from verification.models.default_model import build_default_model

#: One process, the finite-difference L_s (the sound default is tested in the bridge tests).
SMALL = ["--calibration", "8", "--heldout", "4", "--grid", "2", "--no-plots", "--workers", "1",
         "--lipschitz", "estimate"]


def leftovers(parent):
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))


@pytest.fixture(scope="module")
def magnitude_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "report"
    code = main(["certify", "--mask", "magnitude", "--sparsity", "0.3", "--lambda2", "0.01", *SMALL, "--out", str(out)])
    return code, out


def test_certify_writes_json_markdown_and_mask(magnitude_run, capsys):
    code, out = magnitude_run
    assert code == 0
    assert sorted(p.name for p in out.iterdir()) == ["mask.safetensors", "report.json", "report.md"]
    doc = json.loads((out / "report.json").read_text())
    assert doc["schema"] == "mpcert.certify/3"
    assert doc["options"]["lambda2"] == 0.01 and doc["options"]["grid"] == 2
    assert doc["data"]["calibration"]["samples"] == 8 and doc["data"]["heldout"]["samples"] == 4
    assert doc["mask"]["method"] == "magnitude" and doc["mask"]["sparsity"] == 0.3
    assert doc["multilayer"]["theorem_5_8"]["bound"]["label"] == "estimate"
    mask = Mask.load(out / "mask.safetensors", build_default_model())
    assert list(mask.layer_names) == [a["layer"] for a in doc["calibration"]]
    md = (out / "report.md").read_text()
    assert "Multi-layer (Theorem 5.8)" in md and "not a bound" in md
    assert leftovers(out.parent) == []


def test_certify_reads_a_mask_file(magnitude_run, tmp_path):
    _, first = magnitude_run
    out = tmp_path / "again"
    assert main(["certify", "--mask", str(first / "mask.safetensors"), *SMALL, "--no-multilayer",
                 "--out", str(out)]) == 0
    doc = json.loads((out / "report.json").read_text())
    before = json.loads((first / "report.json").read_text())
    assert doc["multilayer"] is None
    assert [a["budget"] for a in doc["calibration"]] == [a["budget"] for a in before["calibration"]]


def test_failures_leave_nothing_behind(magnitude_run, tmp_path, capsys):
    _, existing = magnitude_run
    out = tmp_path / "bad"
    assert main(["certify", "--mask", str(tmp_path / "missing.safetensors"), *SMALL, "--out", str(out)]) == 2
    assert "--mask" in capsys.readouterr().err
    assert main(["certify", "--mask", "magnitude", "--model", "no_such_model_xyz", *SMALL, "--out", str(out)]) == 2
    assert "--model" in capsys.readouterr().err
    assert main(["certify", "--mask", "magnitude", "--lambda1", "-1", *SMALL, "--out", str(out)]) == 2
    assert "lambda1" in capsys.readouterr().err
    assert not out.exists() and leftovers(tmp_path) == []
    assert main(["certify", "--mask", "magnitude", *SMALL, "--out", str(existing)]) == 2
    assert "not empty" in capsys.readouterr().err
