"""``mpcert certify``: sample files, ``--layers``, prune -> certify end to end, full-size timm plumbing, bad input.

Every bad-input case of issue 5 ("Bad input") gets one test: a typed error (exit status 2 on the
command line) whose message names the problem, and nothing written — no ``--out`` folder and no
temporary sibling left behind.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from certs.errors import UnsupportedLayerError
from pruning.mask import Mask, Provenance
from verification.bridge.certify_folder import AuditSets, certify_to_folder
from verification.cli import main
from verification.models.default_model import build_default_model
from verification.models.model_source import LoadedModel

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
#: Plumbing and bad input: one process, the finite-difference L_s (the sound default is tested in the bridge tests).
FAST = ["--calibration", "4", "--heldout", "0", "--grid", "1", "--no-multilayer", "--no-plots", "--workers", "1",
        "--lipschitz", "estimate"]


def leftovers(parent):
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))


def sample_file(path, shape=(4, 1, 28, 28), labels=(0, 1, 2, 3), seed=0):
    rng = np.random.default_rng(seed)
    np.savez(path, images=rng.standard_normal(shape).astype(np.float32), labels=np.asarray(labels, dtype=np.int64))
    return str(path)


def assert_nothing_written(code, capsys, out, *fragments):
    err = capsys.readouterr().err
    assert code == 2, err
    assert "mpcert certify: error:" in err
    for fragment in fragments:
        assert fragment in err, (fragment, err)
    assert not out.exists()
    assert leftovers(out.parent) == []


@pytest.fixture(scope="module")
def default_samples(tmp_path_factory):
    return sample_file(tmp_path_factory.mktemp("data") / "four.npz")


# --- working runs ----------------------------------------------------------------------------


def test_sample_file_and_layer_glob_on_the_default_model(tmp_path, default_samples, capsys):
    out = tmp_path / "report"
    code = main(["certify", "--workers", "1", "--lipschitz", "estimate", "--mask", "magnitude", "--sparsity", "0.4",
                 "--data", default_samples, "--calibration", "3", "--heldout", "1", "--grid", "1",
                 "--layers", "blocks.3.mlp.*", "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    doc = json.loads((out / "report.json").read_text())
    assert [a["layer"] for a in doc["calibration"]] == ["blocks.3.mlp.fc1", "blocks.3.mlp.fc2"]
    assert [a["layer"] for a in doc["heldout"]] == ["blocks.3.mlp.fc1", "blocks.3.mlp.fc2"]
    assert doc["data"]["calibration"] == {"samples": 3, "shape": [1, 28, 28]}
    assert doc["data"]["heldout"]["samples"] == 1 and "four.npz" in doc["data"]["source"]
    assert "shipped trained weights" in doc["model"]
    assert {"budgets.png", "margins.png"} <= set(doc["figures"])
    assert all((out / f).read_bytes()[:8] == PNG_MAGIC for f in doc["figures"])
    assert doc["mask"]["options"]["audited_layers"] == ["blocks.3.mlp.*"]
    assert [s["layer"] for s in doc["multilayer"]["steps"]] == ["blocks.3.mlp.fc1", "blocks.3.mlp.fc2"]
    saved = Mask.load(out / "mask.safetensors", build_default_model())
    assert list(saved.keep) == ["blocks.3.mlp.fc1", "blocks.3.mlp.fc2"]
    assert leftovers(tmp_path) == []


def test_prune_default_then_certify_its_mask_file(tmp_path, default_samples, capsys):
    mask_path = tmp_path / "seb.safetensors"
    assert main(["prune", "default", "--method", "seb", "--sparsity", "0.3", "--out", str(mask_path)]) == 0
    out = tmp_path / "report"
    code = main(["certify", "--workers", "1", "--lipschitz", "estimate", "--model", "default", "--mask", str(mask_path),
                 "--data", default_samples, "--calibration", "2", "--heldout", "0", "--grid", "1", "--no-multilayer",
                 "--no-plots", "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    pruned = Mask.load(mask_path, build_default_model())
    doc = json.loads((out / "report.json").read_text())
    assert [a["layer"] for a in doc["calibration"]] == list(pruned.keep)
    assert doc["mask"]["method"] == "seb" and doc["heldout"] == []
    for audit in doc["calibration"]:
        removed = int((~pruned.keep[audit["layer"]]).sum())
        assert audit["removed_entries"] == removed
    audited = Mask.load(out / "mask.safetensors")
    assert all(torch.equal(audited.keep[n], pruned.keep[n]) for n in pruned.keep)


def test_full_size_vit_tiny_through_checkpoint(tmp_path, capsys):
    """Plumbing at real size: vit_tiny_patch16_224 (random weights saved to a file), 2 images, 1 layer.

    To run in seconds the audit is restricted with ``--layers`` to ``blocks.11.mlp.fc2`` (1 of the
    50 layers), with ``--grid 1`` and no multi-layer pass (the multi-layer report is exercised on the
    default model above).
    """
    import timm

    torch.manual_seed(0)
    model = timm.create_model("vit_tiny_patch16_224", pretrained=False)
    checkpoint = tmp_path / "vit_tiny.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(checkpoint))
    data = sample_file(tmp_path / "imgs.npz", shape=(2, 3, 224, 224), labels=(17, 999))
    out = tmp_path / "report"
    code = main(["certify", "--workers", "1", "--lipschitz", "estimate", "--model", "vit_tiny_patch16_224",
                 "--checkpoint", str(checkpoint), "--mask", "magnitude", "--sparsity", "0.5", "--data", data,
                 "--calibration", "2", "--heldout", "0", "--grid", "1", "--no-multilayer",
                 "--layers", "blocks.11.mlp.fc2", "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    doc = json.loads((out / "report.json").read_text())
    assert {"mask.safetensors", "report.json", "report.md"} <= {p.name for p in out.iterdir()}
    assert doc["figures"] and all((out / f).read_bytes()[:8] == PNG_MAGIC for f in doc["figures"])
    assert "esd/blocks.11.mlp.fc2.png" in doc["figures"]
    assert doc["schema"] == "mpcert.certify/3"
    assert "vit_tiny_patch16_224" in doc["model"] and str(checkpoint) in doc["model"]
    assert doc["data"]["calibration"] == {"samples": 2, "shape": [3, 224, 224]}
    (audit,) = doc["calibration"]
    assert audit["layer"] == "blocks.11.mlp.fc2" and audit["shape"] == [192, 768]
    assert audit["tokens"] == 197  # 14 x 14 patches + the class token
    assert audit["removed_entries"] > 0
    assert len(audit["products"]) == len(audit["lipschitz"]["values"]) == len(audit["lemma_5_1"]["eta"]) == 2
    assert audit["budget"]["label"] == "estimate" and np.isfinite(audit["budget"]["value"])
    assert len(audit["ce_path"]) == 3  # check grid of --grid 1: theta = 0, 1/2, 1
    assert doc["heldout"] == [] and doc["multilayer"] is None and isinstance(doc["violations"], list)
    assert "blocks.11.mlp.fc2" in (out / "report.md").read_text()
    Mask.load(out / "mask.safetensors", model)  # validates against the real architecture
    assert leftovers(tmp_path) == []


# --- bad input: typed errors, nothing written -------------------------------------------------


def test_mask_for_another_model(tmp_path, default_samples, capsys):
    other = tmp_path / "test_vit_mask.safetensors"
    assert main(["prune", "test_vit", "--method", "magnitude", "--sparsity", "0.5", "--out", str(other)]) == 0
    out = tmp_path / "report"
    code = main(["certify", *FAST, "--mask", str(other), "--data", default_samples, "--out", str(out)])
    assert_nothing_written(code, capsys, out, "keep-tensor shape", "!= weight shape")


def test_mask_naming_layers_the_model_lacks(tmp_path, default_samples, capsys):
    path = tmp_path / "extra.safetensors"
    keep = {"blocks.0.mlp.fc1": torch.ones(128, 64, dtype=torch.bool),
            "blocks.7.mlp.fc1": torch.ones(128, 64, dtype=torch.bool)}
    Mask(keep=keep, provenance=Provenance(method="hand-made")).save(path)
    out = tmp_path / "report"
    code = main(["certify", *FAST, "--mask", str(path), "--data", default_samples, "--out", str(out)])
    assert_nothing_written(code, capsys, out, "blocks.7.mlp.fc1", "does not have")


def test_mask_missing_selected_layers(tmp_path, default_samples, capsys):
    path = tmp_path / "partial.safetensors"
    Mask(keep={"blocks.0.mlp.fc1": torch.ones(128, 64, dtype=torch.bool)},
         provenance=Provenance(method="hand-made")).save(path)
    out = tmp_path / "report"
    code = main(["certify", *FAST, "--mask", str(path), "--layers", "blocks.0.mlp.*", "--data", default_samples,
                 "--out", str(out)])
    assert_nothing_written(code, capsys, out, "--mask", "selected layers ['blocks.0.mlp.fc2']")


def test_layer_glob_matching_nothing(tmp_path, default_samples, capsys):
    out = tmp_path / "report"
    code = main(["certify", *FAST, "--mask", "magnitude", "--layers", "blocks.9.*", "--data", default_samples,
                 "--out", str(out)])
    assert_nothing_written(code, capsys, out, "--layers", "no supported layer matches")


@pytest.mark.parametrize("shape, fragments", [
    ((4, 1, 32, 32), ["(1, 32, 32)", "do not fit the model"]),
    ((4, 28, 28), ["(N, C, H, W)", "(4, 28, 28)"]),
])
def test_data_of_the_wrong_shape(tmp_path, capsys, shape, fragments):
    data = sample_file(tmp_path / "bad.npz", shape=shape)
    out = tmp_path / "report"
    code = main(["certify", *FAST, "--mask", "magnitude", "--data", data, "--out", str(out)])
    assert_nothing_written(code, capsys, out, "--data", *fragments)


def test_data_with_the_wrong_channel_count(tmp_path, capsys):
    data = sample_file(tmp_path / "rgb.npz", shape=(4, 3, 28, 28))
    out = tmp_path / "report"
    code = main(["certify", *FAST, "--mask", "cast-2:4", "--data", data, "--out", str(out)])
    assert_nothing_written(code, capsys, out, "--data", "3 channels", "expects 1")


def test_labels_outside_the_heads_classes(tmp_path, capsys):
    data = sample_file(tmp_path / "labels.npz", labels=(0, 1, 10, -1))
    out = tmp_path / "report"
    code = main(["certify", "--no-plots", "--workers", "1", "--mask", "magnitude", "--data", data, "--calibration", "2",
                 "--heldout", "2", "--grid", "1", "--out", str(out)])
    assert_nothing_written(code, capsys, out, "held-out", "[-1, 10]", "0..9")


def test_more_samples_asked_than_the_file_has(tmp_path, default_samples, capsys):
    out = tmp_path / "report"
    code = main(["certify", *FAST, "--mask", "magnitude", "--data", default_samples, "--calibration", "4",
                 "--heldout", "1", "--out", str(out)])
    assert_nothing_written(code, capsys, out, "--calibration 4 + --heldout 1", "4 samples")


def test_checkpoint_that_does_not_match_the_model_name(tmp_path, default_samples, capsys):
    checkpoint = tmp_path / "default_weights.safetensors"
    save_file({k: v.contiguous() for k, v in build_default_model().state_dict().items()}, str(checkpoint))
    out = tmp_path / "report"
    code = main(["certify", *FAST, "--model", "test_vit", "--checkpoint", str(checkpoint), "--mask", "magnitude",
                 "--data", default_samples, "--out", str(out)])
    assert_nothing_written(code, capsys, out, "--checkpoint", "do not match timm model 'test_vit'",
                           "missing keys: blocks.4.", "shape mismatches: ",
                           "blocks.0.mlp.fc1.weight (128, 64) != (192, 64)")


def test_model_with_no_supported_layers(tmp_path):
    shell = LoadedModel(model=nn.Sequential(nn.Flatten(), nn.Identity()), source="hand-made", kind="timm",
                        description="a network without Linear or Conv2d layers", checkpoint=None, trained_default=False)
    images = torch.zeros(2, 1, 4, 4, dtype=torch.float64)
    sets = AuditSets(calibration=(images, torch.zeros(2, dtype=torch.int64)), heldout=None, source="zeros", seed=0)
    out = tmp_path / "report"
    with pytest.raises(UnsupportedLayerError, match="no nn.Linear or nn.Conv2d layer"):
        certify_to_folder(shell, sets, mask="magnitude", out=out, grid=1)
    assert not out.exists() and leftovers(tmp_path) == []


def test_state_dict_file_as_model(tmp_path, default_samples, capsys):
    weights = tmp_path / "w.safetensors"
    save_file({"fc.weight": torch.randn(4, 4)}, str(weights))
    out = tmp_path / "report"
    code = main(["certify", *FAST, "--model", str(weights), "--mask", "magnitude", "--data", default_samples,
                 "--out", str(out)])
    assert_nothing_written(code, capsys, out, "--model", "weights-only")


def test_bad_sound_budget_is_refused_before_anything_is_written(tmp_path, default_samples, capsys):
    out = tmp_path / "report"
    code = main(["certify", *FAST, "--mask", "magnitude", "--lipschitz", "sound", "--sound-budget", "0",
                 "--data", default_samples, "--out", str(out)])
    assert_nothing_written(code, capsys, out, "--sound-budget")


def test_bad_sound_device_is_refused_before_anything_is_written(tmp_path, default_samples, capsys):
    out = tmp_path / "report"
    code = main(["certify", *FAST, "--mask", "magnitude", "--lipschitz", "sound", "--sound-device", "gpu",
                 "--data", default_samples, "--out", str(out)])
    assert_nothing_written(code, capsys, out, "--sound-device")


def test_sound_lipschitz_labels_each_layer(tmp_path, default_samples):
    """``--lipschitz sound``: late layers get a sound L_s (>= the estimate, no violation); with a one-piece budget
    ``blocks.0.attn.qkv`` is beyond the interval enclosure's reach and keeps the estimate, labelled, with the
    reason (the default budget reaches it on these four images)."""
    out = tmp_path / "report"
    layers = ["head", "blocks.3.mlp.fc2", "blocks.0.attn.qkv"]
    assert main(["certify", *FAST, "--mask", "magnitude", "--lipschitz", "sound", "--sound-budget", "1", "--data",
                 default_samples, "--layers", *layers, "--out", str(out)]) == 0
    document = json.loads((out / "report.json").read_text())
    rows = {row["layer"]: row for row in document["calibration"]}
    for name in ("head", "blocks.3.mlp.fc2"):
        row = rows[name]
        assert row["lipschitz"]["label"] == "sound" and row["budget"]["label"] == "sound"
        assert all(s >= e * (1 - 1e-12) for s, e in zip(row["lipschitz"]["values"], row["lipschitz_estimate"]))
        assert row["certified_unchanged"] is not None and row["violations"] == []
    early = rows["blocks.0.attn.qkv"]
    assert early["lipschitz"]["label"] == "estimate" and "max_subintervals=1" in early["sound_unavailable"]
    assert document["lipschitz_labels"] == {"sound": 2, "estimate": 1}
    md = (out / "report.md").read_text()
    assert ("## What is certified" in md and "2 of 3 layers certified sound" in md
            and "blocks.0.attn.qkv: estimate only" in md)


def test_bad_worker_count_is_refused_before_anything_is_written(tmp_path, default_samples, capsys):
    out = tmp_path / "report"
    code = main(["certify", *FAST, "--mask", "magnitude", "--workers", "0", "--data", default_samples,
                 "--out", str(out)])
    assert_nothing_written(code, capsys, out, "--workers", ">= 1")
