"""`mpcert fit`: report folder contents, atomic writing, typed failures (exit code 2)."""

import json

import numpy as np
import pytest
import torch
from matplotlib.image import imread
from safetensors.torch import save_file

from rmt.fit import fit_mp
from verification.cli import main
from verification.cli.fit import format_table

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def make_weights(bad=None):
    g = torch.Generator().manual_seed(0)
    weights = {
        "blocks.0.mlp.fc1.weight": torch.randn(96, 32, generator=g) * 0.05,
        "patch_embed.proj.weight": torch.randn(32, 3, 4, 4, generator=g) * 0.1,
        "head.weight": torch.randn(10, 32, generator=g),
    }
    if bad is not None:
        weights["blocks.0.mlp.fc2.weight"] = bad
    return weights


@pytest.fixture
def weight_file(tmp_path):
    path = tmp_path / "tiny.safetensors"
    save_file(make_weights(), str(path))
    return path


def leftovers(parent):
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))


def test_fit_writes_json_pngs_and_report(tmp_path, weight_file, capsys):
    out = tmp_path / "report"
    assert main(["fit", str(weight_file), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    doc = json.loads((out / "fits.json").read_text())
    assert doc["schema"] == "mpcert.fit/2" and doc["mpcert_version"]
    assert doc["options"] == {"method": "bema", "alpha_bema": 0.25, "beta_tw": 0.8, "tw_form": "reference",
                              "spike_test": "calibrated", "spike_alpha": 0.05}
    weights = make_weights()
    assert {layer["name"] for layer in doc["layers"]} == set(weights)
    for layer in doc["layers"]:
        expected = fit_mp(weights[layer["name"]], name=layer["name"]).to_dict()
        for key, value in expected.items():
            assert layer[key] == value, key
        png = out / layer["figure"]
        assert png.read_bytes()[:8] == PNG_MAGIC
        assert imread(png).shape[0] > 100
        assert layer["name"] in printed
        assert layer["spike_test"] == "calibrated" and layer["spike_alpha"] == 0.05 and layer["spike_pvalues"]
    assert doc["layers"][0]["shape"] in ([96, 32], [32, 48], [10, 32])
    conv = next(layer for layer in doc["layers"] if layer["name"] == "patch_embed.proj.weight")
    assert conv["shape"] == [32, 48]
    report = (out / "report.md").read_text()
    assert "patch_embed.proj.weight" in report and "png" in report and "TW alpha=0.05" in report
    assert "spike test" in printed.splitlines()[1] and "TW alpha=0.05" in printed
    assert leftovers(tmp_path) == []


def test_json_only_and_no_plots(tmp_path, weight_file, capsys):
    out = tmp_path / "r"
    assert main(["fit", str(weight_file), "--out", str(out), "--json-only", "--no-plots",
                 "--method", "median", "--tw-form", "paper", "--beta-tw", "0.5", "--alpha-bema", "0.2"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc == json.loads((out / "fits.json").read_text())
    assert not (out / "esd").exists()
    layer = doc["layers"][0]
    assert layer["method"] == "median" and layer["figure"] is None
    assert layer["options"]["tw_form"] == "paper" and layer["options"]["alpha_bema"] == 0.2


def test_timm_source_end_to_end(tmp_path, capsys):
    out = tmp_path / "vit"
    assert main(["fit", "test_vit", "--out", str(out), "--no-plots"]) == 0
    doc = json.loads((out / "fits.json").read_text())
    assert "test_vit" in doc["description"]
    assert any(layer["name"] == "head.weight" for layer in doc["layers"])


def test_bad_source_exit_code_two_and_no_folder(tmp_path, capsys):
    out = tmp_path / "never"
    assert main(["fit", "no_such_model_xyz", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "mpcert fit: error:" in err and "no_such_model_xyz" in err
    assert not out.exists() and leftovers(tmp_path) == []


@pytest.mark.parametrize(
    "bad, fragment",
    [(torch.zeros(16, 16), "zero"), (torch.full((16, 16), float("nan")), "NaN"), (torch.ones(16, 0), "empty")],
)
def test_bad_layer_midway_leaves_no_partial_folder(tmp_path, bad, fragment, capsys):
    path = tmp_path / "bad.safetensors"
    weights = make_weights(bad=bad)
    save_file(weights, str(path))
    out = tmp_path / "report"
    assert main(["fit", str(path), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "blocks.0.mlp.fc2.weight" in err and fragment in err
    assert not out.exists() and leftovers(tmp_path) == []


def test_bad_layer_after_good_layers_were_plotted(tmp_path, monkeypatch, weight_file, capsys):
    """Fail on the last layer, after figures were already drawn into the temporary folder."""
    import verification.cli.fit as fc

    calls = []
    real = fc.fit_mp

    def failing(weight, *args, **kwargs):
        calls.append(kwargs["name"])
        if len(calls) == 3:
            return real(torch.zeros(4, 4), *args, **kwargs)
        return real(weight, *args, **kwargs)

    monkeypatch.setattr(fc, "fit_mp", failing)
    out = tmp_path / "report"
    assert main(["fit", str(weight_file), "--out", str(out)]) == 2
    assert len(calls) == 3 and not out.exists() and leftovers(tmp_path) == []


def test_refuses_non_empty_out_unless_force(tmp_path, weight_file, capsys):
    out = tmp_path / "report"
    out.mkdir()
    (out / "keep.txt").write_text("precious")
    assert main(["fit", str(weight_file), "--out", str(out), "--no-plots"]) == 2
    assert "--force" in capsys.readouterr().err
    assert (out / "keep.txt").read_text() == "precious"
    assert main(["fit", str(weight_file), "--out", str(out), "--no-plots", "--force"]) == 0
    assert not (out / "keep.txt").exists() and (out / "fits.json").exists()
    assert leftovers(tmp_path) == []
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["fit", str(weight_file), "--out", str(empty), "--no-plots"]) == 0


def test_spike_test_options_reach_every_layer_and_the_table(tmp_path, weight_file, capsys):
    out = tmp_path / "r"
    assert main(["fit", str(weight_file), "--out", str(out), "--json-only", "--no-plots", "--spike-alpha", "0.2"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["options"]["spike_alpha"] == 0.2
    weights = make_weights()
    for layer in doc["layers"]:
        expected = fit_mp(weights[layer["name"]], spike_alpha=0.2)
        assert (layer["n_spikes"], layer["spike_pvalues"]) == (expected.n_spikes, list(expected.spike_pvalues))
    paper = tmp_path / "paper"
    assert main(["fit", str(weight_file), "--out", str(paper), "--no-plots", "--spike-test", "paper"]) == 0
    printed = capsys.readouterr().out
    doc = json.loads((paper / "fits.json").read_text())
    assert doc["options"]["spike_test"] == "paper" and doc["options"]["spike_alpha"] is None
    for layer in doc["layers"]:
        expected = fit_mp(weights[layer["name"]], spike_test="paper")
        assert layer["n_spikes"] == expected.n_spikes and layer["spike_test"] == "paper"
        assert any(line.startswith(layer["name"]) and " paper " in line for line in printed.splitlines())


def test_bad_option_exit_code_two(tmp_path, weight_file, capsys):
    out = tmp_path / "r"
    assert main(["fit", str(weight_file), "--out", str(out), "--alpha-bema", "0.7"]) == 2
    assert "alpha_bema" in capsys.readouterr().err and not out.exists()
    assert main(["fit", str(weight_file), "--out", str(out), "--spike-alpha", "1.5"]) == 2
    assert "spike_alpha" in capsys.readouterr().err and not out.exists()
    with pytest.raises(SystemExit) as info:  # argparse rejects unknown choices itself
        main(["fit", str(weight_file), "--method", "mle"])
    assert info.value.code == 2


def test_format_table_lists_every_layer():
    fit = fit_mp(np.random.default_rng(0).standard_normal((40, 30)), name="l1").to_dict()
    table = format_table([fit])
    assert table.splitlines()[0].split()[:3] == ["layer", "shape", "sigma2"]
    assert "l1" in table and "40x30" in table
