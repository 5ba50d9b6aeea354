"""The deep model (issue 15): ViT-Tiny blocks at the default input, its strict loading and card (its training
script is tested with the default model's, tests/verification/models/test_default_model.py)."""

from __future__ import annotations

import json

import pytest
from torch import nn

from verification.models.deep_model import (
    DEEP_CARD_NAME,
    DEEP_CONFIG,
    DEEP_SCRIPT,
    build_deep_model,
    deep_model_card,
    new_deep_model,
)
from verification.models.default_model import DEFAULT_CONFIG, DefaultModelError


def test_architecture_has_vit_tiny_blocks_at_the_default_input():
    model = new_deep_model(seed=0)
    assert len(model.blocks) == 12 and model.embed_dim == 192
    assert model.patch_embed.num_patches + model.num_prefix_tokens == 17
    for block in model.blocks:
        assert block.attn.num_heads == 3 and block.mlp.fc1.out_features == 768
    linears = [name for name, m in model.named_modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    assert len(linears) == 4 * 12 + 2  # every block Linear, patch_embed.proj, head
    assert {k: v for k, v in DEEP_CONFIG.items() if k not in ("embed_dim", "depth", "num_heads", "mlp_ratio")} == \
        {k: v for k, v in DEFAULT_CONFIG.items() if k not in ("embed_dim", "depth", "num_heads", "mlp_ratio")}


def test_missing_weights_name_the_training_script(tmp_path):
    with pytest.raises(DefaultModelError, match="verification.models.train_deep") as info:
        build_deep_model(weights_path=tmp_path / "absent.safetensors")
    assert "absent.safetensors" in str(info.value) and DEEP_SCRIPT in str(info.value)


def test_default_model_weights_do_not_load_as_the_deep_model():
    from verification.models.default_model import DEFAULT_WEIGHTS_NAME, default_assets_dir

    with pytest.raises(DefaultModelError, match="DEEP_CONFIG"):
        build_deep_model(weights_path=default_assets_dir() / DEFAULT_WEIGHTS_NAME)


def test_card_with_another_config_is_refused(tmp_path):
    path = tmp_path / DEEP_CARD_NAME
    path.write_text(json.dumps({"config": dict(DEFAULT_CONFIG)}))
    with pytest.raises(DefaultModelError, match="expected DEEP_CONFIG"):
        deep_model_card(path)
