"""verification.model_source: state-dict files, offline timm models, the default placeholder."""

import pytest
import torch
from safetensors.torch import save_file

from rmt.errors import ModelSourceError
from verification.model_source import load_named_weights, prunable_weights, state_dict_weights


@pytest.fixture(scope="module")
def test_vit():
    import timm

    return timm.create_model("test_vit", pretrained=False)


def linear_and_conv_names(model):
    return {
        f"{n}.weight" for n, m in model.named_modules() if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d))
    }


def test_timm_name_gives_every_linear_and_conv(test_vit):
    description, weights = load_named_weights("test_vit")
    assert "test_vit" in description and "pretrained=False" in description
    assert set(weights) == linear_and_conv_names(test_vit)
    assert "patch_embed.proj.weight" in weights and weights["patch_embed.proj.weight"].ndim == 4
    assert "head.weight" in weights
    # known-bad: a rule taking every 2-D/4-D parameter would also take pos_embed / cls_token
    every = {k for k, v in test_vit.state_dict().items() if v.ndim in (2, 4) or k.endswith("embed")}
    assert every != set(weights)


def test_default_source_is_a_deterministic_untrained_placeholder():
    d1, w1 = load_named_weights("default")
    d2, w2 = load_named_weights("default")
    assert "untrained placeholder" in d1
    assert len(w1) == 4 * 4 + 2  # qkv, proj, fc1, fc2 per block + patch_embed + head
    assert w1["patch_embed.proj.weight"].shape == (64, 1, 7, 7)
    assert w1["head.weight"].shape == (10, 64)
    for name in w1:
        assert torch.equal(w1[name], w2[name])


@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
def test_state_dict_file_selects_by_name_and_shape(tmp_path, test_vit, suffix):
    state = {k: v.contiguous() for k, v in test_vit.state_dict().items()}
    state["tok_embeddings.weight"] = torch.randn(100, 8)  # an embedding table: excluded
    state["counts.weight"] = torch.ones(4, 4, dtype=torch.int64)  # not floating: excluded
    path = tmp_path / f"model{suffix}"
    if suffix == ".safetensors":
        save_file(state, str(path))
    else:
        torch.save({"state_dict": state}, str(path))
    description, weights = load_named_weights(str(path))
    assert str(path) in description
    assert set(weights) == linear_and_conv_names(test_vit)
    for name, tensor in weights.items():
        assert torch.equal(tensor, state[name])


def test_checkpoint_loads_real_weights(tmp_path, test_vit):
    torch.manual_seed(123)
    import timm

    trained = timm.create_model("test_vit", pretrained=False)
    path = tmp_path / "ckpt.safetensors"
    save_file({k: v.contiguous() for k, v in trained.state_dict().items()}, str(path))
    description, weights = load_named_weights("test_vit", checkpoint=str(path))
    assert "ckpt.safetensors" in description
    for name, tensor in prunable_weights(trained).items():
        assert torch.equal(weights[name], tensor)


def test_mismatched_checkpoint_names_the_keys(tmp_path, test_vit):
    state = {k: v.contiguous() for k, v in test_vit.state_dict().items()}
    del state["blocks.0.attn.qkv.weight"]
    state["extra.weight"] = torch.zeros(2, 2)
    state["head.weight"] = torch.zeros(3, state["head.weight"].shape[1])
    path = tmp_path / "bad.safetensors"
    save_file(state, str(path))
    with pytest.raises(ModelSourceError) as info:
        load_named_weights("test_vit", checkpoint=str(path))
    msg = str(info.value)
    assert "blocks.0.attn.qkv.weight" in msg and "extra.weight" in msg and "head.weight" in msg


@pytest.mark.parametrize(
    "source, checkpoint, fragment",
    [
        ("no_such_model_xyz", None, "unknown model source"),
        ("missing.safetensors", None, "does not exist"),
        ("test_vit", "missing.pt", "does not exist"),
    ],
)
def test_bad_sources_raise(source, checkpoint, fragment):
    with pytest.raises(ModelSourceError, match=fragment):
        load_named_weights(source, checkpoint=checkpoint)


def test_corrupt_file_and_checkpoint_on_file_raise(tmp_path):
    path = tmp_path / "junk.pt"
    path.write_bytes(b"not a pickle")
    with pytest.raises(ModelSourceError, match="cannot read"):
        load_named_weights(str(path))
    good = tmp_path / "w.safetensors"
    save_file({"fc.weight": torch.randn(4, 4)}, str(good))
    with pytest.raises(ModelSourceError, match="checkpoint"):
        load_named_weights(str(good), checkpoint=str(good))
    empty = tmp_path / "empty.safetensors"
    save_file({"norm.weight": torch.ones(4)}, str(empty))
    with pytest.raises(ModelSourceError, match="no prunable"):
        load_named_weights(str(empty))


def test_state_dict_rule_directly():
    state = {
        "patch_embed.proj.weight": torch.randn(8, 3, 2, 2),
        "blocks.0.norm1.weight": torch.ones(8),
        "embed_tokens.weight": torch.randn(10, 8),
        "wte.weight": torch.randn(10, 8),
        "fc.bias": torch.randn(8),
        "fc.weight": torch.randn(8, 8, dtype=torch.float16),
        "odd.weight": torch.randn(2, 2, 2),
    }
    assert set(state_dict_weights(state)) == {"patch_embed.proj.weight", "fc.weight"}
