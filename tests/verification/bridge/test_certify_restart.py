"""Theta-path re-runs from a restart point give the logits of the full re-run (float64, 1e-12)."""

import numpy as np
import pytest
import torch
from timm.models.vision_transformer import Block, VisionTransformer
from torch import nn

from pruning.magnitude import magnitude
from verification.models.datasets import calibration_subset, load_default_dataset
from verification.models.default_model import build_default_model
from verification.bridge.vit_views import audit_copy, capture_layer, path_logits, restart_point
from tests.verification.single_thread import one_thread  # noqa: F401  (autouse)

THETAS = np.array([0.0, 0.3, 1.0])


@pytest.fixture(scope="module")
def default_setup():
    model = build_default_model()
    images = calibration_subset(load_default_dataset(), 4, 5).images.double()
    return audit_copy(model), images, magnitude(model, 0.5)


@pytest.mark.parametrize("name, kind", [
    ("patch_embed.proj", "full"), ("blocks.0.attn.qkv", "block"), ("blocks.1.attn.proj", "block"),
    ("blocks.2.mlp.fc1", "mlp-branch"), ("blocks.3.mlp.fc2", "mlp-branch"), ("head", "head"),
])
def test_restart_matches_the_full_rerun(default_setup, name, kind):
    work, images, mask = default_setup
    layer = capture_layer(work, name, mask.keep[name], images)
    assert layer.restart.kind == kind
    fast = path_logits(work, layer, images, THETAS)
    full = path_logits(work, layer, images, THETAS, restart=False)
    np.testing.assert_allclose(fast, full, rtol=0, atol=1e-12)
    with torch.no_grad():
        np.testing.assert_allclose(fast[-1], work(images).numpy(), rtol=0, atol=1e-12)  # theta = 1 is the dense model
    assert isinstance(dict(work.named_modules())[name], (nn.Linear, nn.Conv2d))  # the stand-in is gone again


def test_wrong_restart_state_is_caught(default_setup):
    """Known-bad: restarting block 2 from the cached input of block 1 gives other logits; the 1e-12 check sees it."""
    work, images, mask = default_setup
    good = capture_layer(work, "blocks.2.attn.qkv", mask.keep["blocks.2.attn.qkv"], images)
    other = capture_layer(work, "blocks.1.attn.qkv", mask.keep["blocks.1.attn.qkv"], images)
    bad_restart = type(good.restart)(good.restart.kind, good.restart.module, other.restart.state, good.restart.run)
    bad = type(good)(**{**good.__dict__, "restart": bad_restart})
    full = path_logits(work, good, images, THETAS, restart=False)
    assert np.abs(path_logits(work, bad, images, THETAS) - full).max() > 1e-6


class _CustomBlock(Block):
    """Same function as timm's Block, but its own forward: the MLP-branch shortcut must not be used."""

    def forward(self, x, attn_mask=None, is_causal=False):
        y = x + self.drop_path1(self.ls1(self.attn(self.norm1(x))))
        return y + self.drop_path2(self.ls2(self.mlp(self.norm2(y))))


def _tiny_vit(block_fn):
    torch.manual_seed(0)
    return audit_copy(VisionTransformer(img_size=8, patch_size=4, in_chans=2, num_classes=3, embed_dim=8, depth=2,
                                        num_heads=2, mlp_ratio=2.0, block_fn=block_fn))


@pytest.mark.parametrize("block_fn, kind", [(Block, "mlp-branch"), (_CustomBlock, "block")])
def test_other_vit_configurations(block_fn, kind):
    model = _tiny_vit(block_fn)
    images = torch.randn(3, 2, 8, 8, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    keep = torch.rand(16, 8, generator=torch.Generator().manual_seed(2)) < 0.5
    layer = capture_layer(model, "blocks.1.mlp.fc1", keep, images)
    assert layer.restart.kind == kind
    np.testing.assert_allclose(path_logits(model, layer, images, THETAS),
                               path_logits(model, layer, images, THETAS, restart=False), rtol=0, atol=1e-12)


def test_non_vit_models_fall_back_to_the_full_rerun():
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2)).double()
    assert restart_point(model, "1").kind == "full"
    images = torch.randn(2, 1, 2, 2, dtype=torch.float64)
    layer = capture_layer(model, "1", torch.rand(3, 4) < 0.5, images)
    assert layer.restart.kind == "full"
    z = path_logits(model, layer, images, np.array([1.0]))
    with torch.no_grad():
        np.testing.assert_allclose(z[0], model(images).numpy(), rtol=0, atol=1e-12)
    assert isinstance(model[1], nn.Linear)  # the stand-in is removed after the re-run
