"""Mask objects: apply (copy / in place), validate, sparsity accounting, save / load round trip."""

import json

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from pruning.calibration import ActivationCapture
from pruning.cast import cast_kn
from pruning.errors import MaskMismatchError, PatternError, PruningError, IneligibleLayerError
from pruning.kn_patterns import KNPattern
from pruning.magnitude import magnitude
from pruning.mask import Mask, Provenance, weight_sparsity
from pruning.packed24 import convert_to_24


def model_and_input(seed=0):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(16, 32), nn.LayerNorm(32), nn.GELU(), nn.Linear(32, 16), nn.Linear(16, 4)).eval()
    return model, torch.randn(12, 16)


def test_apply_returns_a_new_model_and_inplace_edits():
    model, x = model_and_input()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    mask = magnitude(model, 0.5)
    pruned = mask.apply(model)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    for name, keep in mask.keep.items():
        w = dict(pruned.named_modules())[name].weight
        assert torch.equal(w != 0, keep & (dict(model.named_modules())[name].weight != 0))
    same = mask.apply(model, inplace=True)
    assert same is model and torch.equal(model(x), pruned(x))


def test_sparsity_accounting_per_layer_and_global():
    model, _ = model_and_input()
    mask = magnitude(model, 0.3, scope="layerwise")
    report = mask.sparsity_report()
    for name, keep in mask.keep.items():
        assert report.per_layer[name] == pytest.approx(float((~keep).sum()) / keep.numel())
    assert report.total == sum(k.numel() for k in mask.keep.values())
    assert report.global_sparsity == pytest.approx(report.zeros / report.total)
    achieved = weight_sparsity(mask.apply(model))
    assert achieved.zeros >= report.zeros and set(achieved.per_layer) == set(report.per_layer)


@pytest.mark.parametrize("permute", [False, True])
def test_save_load_apply_gives_identical_logits(tmp_path, permute):
    model, x = model_and_input(3)
    mask = cast_kn(model, "2:4", ActivationCapture(x), permute=permute, calibration_source="unit-test batch")
    path = mask.save(tmp_path / "mask.safetensors")
    loaded = Mask.load(path, model)
    assert loaded.pattern == KNPattern(2, 4) and loaded.provenance == mask.provenance
    assert set(loaded.permutations) == set(mask.permutations) == ({"0", "3"} if permute else set())
    for name in mask.layer_names:
        assert torch.equal(loaded.keep[name], mask.keep[name])
        if permute:
            assert torch.equal(loaded.permutations[name], mask.permutations[name])
    assert torch.equal(loaded.apply(model)(x), mask.apply(model)(x))
    with torch.no_grad():
        assert torch.equal(convert_to_24(loaded.apply(model), loaded)(x), convert_to_24(mask.apply(model), mask)(x))
    with safe_open(str(path), framework="pt") as f:
        meta = json.loads(f.metadata()["mpcert_mask"])
    assert meta["pattern"] == "2:4" and meta["provenance"]["calibration_source"] == "unit-test batch"
    assert meta["provenance"]["options"]["permute"] is permute
    if permute:  # known-bad: a load that lost the permutation reads the groups in the wrong order
        lost = Mask(keep=loaded.keep, pattern=loaded.pattern, provenance=loaded.provenance)
        with pytest.raises(PatternError, match="keeps"):
            lost.validate(model)


def test_a_mask_saved_for_another_model_is_refused(tmp_path):
    model, _ = model_and_input()
    path = magnitude(model, 0.5).save(tmp_path / "m.safetensors")
    other = nn.Sequential(nn.Linear(16, 32), nn.LayerNorm(32), nn.GELU(), nn.Linear(32, 8), nn.Linear(8, 4))
    with pytest.raises(MaskMismatchError, match="3: keep-tensor shape"):
        Mask.load(path, other)
    with pytest.raises(MaskMismatchError, match="3: the mask names a layer"):
        Mask.load(path, nn.Sequential(nn.Linear(16, 32)))
    with pytest.raises(MaskMismatchError, match="3: keep-tensor shape"):
        Mask.load(path).validate(other)
    with pytest.raises(MaskMismatchError, match="3: keep-tensor shape"):
        Mask.load(path).apply(other)
    with pytest.raises(MaskMismatchError, match="3: keep-tensor shape"):
        Mask.load(path).apply(model, restore_from=other)


def test_validate_catches_unsupported_layers_bad_permutations_and_k_n_violations():
    model, _ = model_and_input()
    prov = Provenance(method="test")
    with pytest.raises(IneligibleLayerError, match="1: LayerNorm"):
        Mask(keep={"1": torch.ones(32, dtype=torch.bool)}, provenance=prov).validate(model)
    keep = torch.ones(32, 16, dtype=torch.bool)
    with pytest.raises(MaskMismatchError, match="0: permutation"):
        Mask(keep={"0": keep}, permutations={"0": torch.zeros(16, dtype=torch.long)}, provenance=prov).validate(model)
    with pytest.raises(PatternError, match="0: row 0, group 0 keeps 4"):
        Mask(keep={"0": keep}, pattern=KNPattern(2, 4), provenance=prov).validate(model)
    with pytest.raises(MaskMismatchError, match="no keep-tensor"):
        Mask(keep={"0": keep}, permutations={"3": torch.arange(32)}, provenance=prov)


def test_load_rejects_files_that_are_not_masks(tmp_path):
    plain = tmp_path / "plain.safetensors"
    save_file({"w": torch.zeros(2)}, str(plain))
    with pytest.raises(PruningError, match="not an mpcert mask"):
        Mask.load(plain)
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"not a safetensors file")
    with pytest.raises(PruningError, match="garbage"):
        Mask.load(garbage)
