"""certify with a 2:4 mask executes the pruned Linear layers through the packed path, and checks it."""

import numpy as np
import pytest
import torch

from certs.classification import accuracy, mean_cross_entropy
from pruning.magnitude import magnitude
from pruning.mask import Mask
from pruning.packed24 import Packed24, SparseLinear24, convert_to_24
from verification.bridge import certify as certify_module
from verification.bridge.certify import DENSE, PACKED, certify, packing_mask
from verification.models.datasets import calibration_subset, load_default_dataset
from verification.models.default_model import build_default_model
from verification.bridge.vit_views import audit_copy
from tests.verification.cast_masks import cast_24_subset
from tests.verification.single_thread import one_thread  # noqa: F401  (autouse)

LAYERS = ("blocks.0.mlp.fc1", "blocks.3.attn.qkv", "blocks.3.mlp.fc2")


@pytest.fixture(scope="module")
def env():
    model = build_default_model()
    cal = calibration_subset(load_default_dataset(), 8, 1)
    return model, cal, cast_24_subset(model, cal.images, LAYERS)


@pytest.fixture(scope="module")
def packed_report(env):
    model, cal, mask = env
    return certify(model, mask, cal, heldout=cal, grid=2, fit=False, lipschitz="estimate")


def test_every_layer_runs_packed_at_float_tolerance(packed_report):
    report = packed_report
    for audit in report.calibration + report.heldout + report.multilayer.steps:
        assert audit.execution == PACKED
        assert 0.0 <= audit.packed_max_abs_diff <= 1e-12 and not audit.packed_mismatch
    assert report.multilayer.execution == PACKED and report.multilayer.packed_max_abs_diff <= 1e-12
    info = report.to_json()["execution"]
    assert info["global"] == PACKED and info["max_packed_abs_diff"] <= 1e-12
    assert report.mask["execution"] == {n: PACKED for n in LAYERS}
    assert not any("PACKED" in v for v in report.violations())
    assert "Execution of the realised side" in report.to_markdown() and PACKED in report.to_markdown()
    phases = [report.timings[f"phase_{p}_s"] for p in ("capture", "lipschitz", "realized", "budgets")]
    assert all(t > 0 for t in phases) and sum(phases) <= (
        sum(v for k, v in report.timings.items() if k.startswith("single")) + report.timings["multilayer_s"])


def test_realised_side_is_the_packed_network(env, packed_report):
    """theta = 0 CE / accuracy equal an independent forward of the model converted to SparseLinear24."""
    model, cal, mask = env
    y = cal.labels.numpy()
    for audit in packed_report.calibration:
        one = Mask(keep={audit.layer: mask.keep[audit.layer]}, provenance=mask.provenance, pattern=mask.pattern)
        net = convert_to_24(audit_copy(model), one)
        assert isinstance(net.get_submodule(audit.layer), SparseLinear24)
        with torch.no_grad():
            z = net(cal.images.double()).numpy()
        assert audit.lemma_5_1.ce_theta == pytest.approx(float(mean_cross_entropy(z, y)), abs=1e-12)
        assert audit.acc_path[0] == pytest.approx(float(accuracy(z, y)))
    final = convert_to_24(audit_copy(model), mask)
    with torch.no_grad():
        z = final(cal.images.double()).numpy()
    assert packed_report.multilayer.ce_final == pytest.approx(float(mean_cross_entropy(z, y)), abs=1e-12)


def _wrongly_packed(model, mask, **kwargs):
    """Known-bad packer: the first group of row 0 of the first layer gets its two kept values swapped."""
    net = convert_to_24(model, mask, **kwargs)
    name = next(iter(mask.keep))
    layer = net.get_submodule(name)
    values = layer.values.clone()
    values[0, :2] = values[0, :2].flip(0) + 0.5
    parent, _, child = name.rpartition(".")
    setattr(net.get_submodule(parent), child, SparseLinear24(Packed24(values, layer.codes), layer.bias))
    return net


def test_a_wrongly_packed_layer_is_flagged(env, monkeypatch):
    model, cal, mask = env
    monkeypatch.setattr(certify_module, "convert_to_24", _wrongly_packed)
    report = certify(model, mask, cal, grid=2, fit=False, multilayer=True, lipschitz="estimate")
    for audit in report.calibration:
        assert audit.packed_mismatch and audit.packed_max_abs_diff > 1e-6
    assert any("PACKED 2:4 EXECUTION DIFFERS" in v for v in report.violations())
    assert any(v.startswith("multi-layer final network: PACKED") for v in report.violations())
    assert "MISMATCH" in report.to_markdown()


def test_unstructured_masks_run_dense(env):
    model, cal, _ = env
    mask = magnitude(model, 0.5, layers=["blocks.1.mlp.fc1"])
    assert packing_mask(audit_copy(model), mask, mask.layer_names) is None
    report = certify(model, mask, cal, grid=2, fit=False, multilayer=False, lipschitz="estimate")
    audit = report.calibration[0]
    assert audit.execution == DENSE and audit.packed_max_abs_diff is None and not audit.packed_mismatch
    assert report.execution()["global"] == DENSE and report.execution()["max_packed_abs_diff"] is None


def test_packing_mask_keeps_only_linear_layers(env):
    model, _, mask = env
    work = audit_copy(model)
    assert packing_mask(work, dict(mask.keep), LAYERS) is None  # plain keep-tensors carry no pattern
    sub = packing_mask(work, mask, LAYERS[:2])
    assert tuple(sub.keep) == LAYERS[:2] and sub.pattern == mask.pattern
    np.testing.assert_array_equal(sub.keep[LAYERS[0]].numpy(), mask.keep[LAYERS[0]].numpy())
