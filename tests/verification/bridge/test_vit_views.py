"""Token-convention layer views of the default timm ViT: captures, products and the re-run post-layer map."""

import numpy as np
import pytest
import torch
from torch import nn

from certs.errors import CertificateInputError, UnsupportedLayerError
from certs.path import removed_products
from pruning.calibration import layer_input_rows
from pruning.magnitude import magnitude
from verification.models.datasets import calibration_subset, load_default_dataset
from verification.models.default_model import build_default_model
from verification.bridge.vit_views import audit_copy, capture_layer, check_mask_layers, path_logits, supported_layers


@pytest.fixture(scope="module")
def setup():
    model = build_default_model()
    images = calibration_subset(load_default_dataset(), 8, 3).images
    return model, images, magnitude(model, 0.5)


def test_audit_copy_is_float64_unfused_and_leaves_the_model_alone(setup):
    model, images, mask = setup
    before = {k: v.clone() for k, v in model.state_dict().items()}
    work = audit_copy(model)
    layer = capture_layer(work, "blocks.1.attn.qkv", mask.keep["blocks.1.attn.qkv"], images.double())
    path_logits(work, layer, images.double(), np.array([0.0, 1.0]))
    assert all(p.dtype == torch.float64 for p in work.parameters())
    assert all(not m.fused_attn for m in work.modules() if hasattr(m, "fused_attn"))
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


@pytest.mark.parametrize("name", ["patch_embed.proj", "blocks.0.attn.qkv", "blocks.2.mlp.fc1", "head"])
def test_path_ends_match_dense_and_pruned_forward(setup, name):
    """theta = 1 is the dense network, theta = 0 the network with that one layer masked (independent forward)."""
    model, images, mask = setup
    x = images.double()
    work = audit_copy(model)
    layer = capture_layer(work, name, mask.keep[name], x)
    z = path_logits(work, layer, x, np.array([0.0, 0.5, 1.0]))
    with torch.no_grad():
        dense = work(x).numpy()
        pruned = audit_copy(type(mask)(keep={name: mask.keep[name]},
                                       provenance=mask.provenance).apply(model))(x).numpy()
    np.testing.assert_allclose(z[2], dense, rtol=0, atol=1e-11)
    np.testing.assert_allclose(z[0], pruned, rtol=0, atol=1e-11)
    assert np.abs(z[0] - z[2]).max() > 1e-6  # the mask really changes the logits


def test_wrong_split_is_caught_by_the_endpoint_check(setup):
    """Known-bad: halving R breaks S + R = A, and the theta = 1 end no longer matches the dense forward."""
    model, images, mask = setup
    x = images.double()
    work = audit_copy(model)
    good = capture_layer(work, "blocks.0.mlp.fc2", mask.keep["blocks.0.mlp.fc2"], x)
    bad = type(good)(**{**good.__dict__, "removed": good.removed / 2})
    with torch.no_grad():
        dense = work(x).numpy()
    assert np.abs(path_logits(work, bad, x, np.array([1.0]))[0] - dense).max() > 1e-6


def test_products_follow_the_token_convention(setup):
    """||R psi_1(s)||_inf equals the certs product on the block-diagonal (I_tokens ⊗ R) view, and the im2col view for
    convs."""
    model, images, mask = setup
    x = images.double()
    work = audit_copy(model)
    seen = {}
    hooks = [dict(work.named_modules())[n].register_forward_pre_hook(
        lambda _m, inp, n=n: seen.__setitem__(n, inp[0].detach())) for n in ("blocks.0.attn.qkv", "patch_embed.proj")]
    with torch.no_grad():
        work(x)
    for h in hooks:
        h.remove()
    qkv = capture_layer(work, "blocks.0.attn.qkv", mask.keep["blocks.0.attn.qkv"], x)
    tokens = seen["blocks.0.attn.qkv"]
    assert qkv.tokens == tokens.shape[1] == 17
    block_diag = np.kron(np.eye(qkv.tokens), qkv.removed)
    expected = removed_products(block_diag, tokens.reshape(x.shape[0], -1).numpy())
    np.testing.assert_allclose(qkv.products, expected, rtol=1e-13, atol=0)
    conv_module = dict(work.named_modules())["patch_embed.proj"]
    conv = capture_layer(work, "patch_embed.proj", mask.keep["patch_embed.proj"], x)
    rows = layer_input_rows(conv_module, seen["patch_embed.proj"]).numpy().reshape(x.shape[0], -1,
                                                                                   conv.removed.shape[1])
    expected = np.abs(rows @ conv.removed.T).max(axis=(1, 2))
    np.testing.assert_allclose(conv.products, expected, rtol=1e-13, atol=0)
    # known-bad: the class token alone (one row per image) under-reports some product
    first_token_only = removed_products(qkv.removed, tokens[:, 0, :].numpy())
    assert np.all(first_token_only <= qkv.products) and np.any(first_token_only < qkv.products)


def test_bad_layers_and_masks_raise_typed_errors(setup):
    model, _, mask = setup
    with pytest.raises(UnsupportedLayerError, match="no nn.Linear"):
        supported_layers(nn.Sequential(nn.ReLU()))
    with pytest.raises(CertificateInputError, match="do not exist"):
        check_mask_layers(model, {"features.0": torch.ones(3, 3, dtype=torch.bool)})
    with pytest.raises(CertificateInputError, match="keep-tensor shape"):
        check_mask_layers(model, {"head": torch.ones(3, 3, dtype=torch.bool)})
    with pytest.raises(UnsupportedLayerError, match="LayerNorm"):
        check_mask_layers(model, {"norm": torch.ones(64, dtype=torch.bool)})
    with pytest.raises(CertificateInputError, match="names no layer"):
        check_mask_layers(model, {})
