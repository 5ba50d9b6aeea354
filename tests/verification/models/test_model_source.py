"""verification.models.model_source.load_model: state-dict files, offline timm models, the trained default model."""

import pytest
import torch
from safetensors.torch import save_file

from verification.errors import ModelSourceError
from verification.models.model_source import LoadedModel, load_model, prunable_weights, state_dict_weights


def description_and_weights(source, checkpoint=None):
    loaded = load_model(source, checkpoint)
    assert isinstance(loaded, LoadedModel)
    return loaded.description, loaded.prunable_weights()


@pytest.fixture(scope="module")
def test_vit():
    import timm

    return timm.create_model("test_vit", pretrained=False)


def linear_and_conv_names(model):
    return {
        f"{n}.weight" for n, m in model.named_modules() if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d))
    }


def test_timm_name_gives_every_linear_and_conv(test_vit):
    description, weights = description_and_weights("test_vit")
    assert "test_vit" in description and "pretrained=False" in description
    assert set(weights) == linear_and_conv_names(test_vit)
    assert "patch_embed.proj.weight" in weights and weights["patch_embed.proj.weight"].ndim == 4
    assert "head.weight" in weights
    # known-bad: a rule taking every 2-D/4-D parameter would also take pos_embed / cls_token
    every = {k for k, v in test_vit.state_dict().items() if v.ndim in (2, 4) or k.endswith("embed")}
    assert every != set(weights)


def test_default_source_is_the_trained_default_model():
    from verification.models.default_model import build_default_model, new_default_model

    loaded = load_model("default")
    assert loaded.kind == "default" and loaded.trained_default and loaded.runnable
    assert "default Fashion-MNIST ViT" in loaded.description and "shipped trained weights" in loaded.description
    weights = loaded.prunable_weights()
    assert len(weights) == 4 * 4 + 2  # qkv, proj, fc1, fc2 per block + patch_embed + head
    assert weights["patch_embed.proj.weight"].shape == (64, 1, 7, 7)
    shipped = prunable_weights(build_default_model())
    untrained = prunable_weights(new_default_model(seed=0))
    for name in weights:
        assert torch.equal(weights[name], shipped[name])
    # known-bad: the former untrained placeholder differs from the shipped weights
    assert not all(torch.equal(weights[name], untrained[name]) for name in weights)


def test_default_with_checkpoint_is_not_the_trained_default(tmp_path):
    from verification.models.default_model import new_default_model

    source = new_default_model(seed=5)
    path = tmp_path / "other.safetensors"
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(path))
    loaded = load_model("default", str(path))
    assert not loaded.trained_default and "other.safetensors" in loaded.description
    assert all(torch.equal(loaded.model.state_dict()[k], v) for k, v in source.state_dict().items())


def test_timm_without_checkpoint_is_reproducible_and_keeps_the_rng():
    torch.manual_seed(99)
    expected_next = torch.rand(3)
    torch.manual_seed(99)
    first = load_model("test_vit").prunable_weights()
    assert torch.equal(torch.rand(3), expected_next)  # the caller's RNG state is untouched
    second = load_model("test_vit").prunable_weights()
    assert all(torch.equal(first[k], second[k]) for k in first)


def test_state_dict_file_is_weights_only(tmp_path):
    path = tmp_path / "w.safetensors"
    save_file({"fc.weight": torch.randn(4, 4, dtype=torch.float64)}, str(path))
    loaded = load_model(str(path))
    assert loaded.kind == "state-dict" and not loaded.runnable and not loaded.trained_default
    assert loaded.prunable_weights()["fc.weight"].dtype == torch.float64
    with pytest.raises(ModelSourceError, match="weights-only"):
        load_model(str(path), runnable=True, argument="--model")


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
    description, weights = description_and_weights(str(path))
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
    description, weights = description_and_weights("test_vit", checkpoint=str(path))
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
        description_and_weights("test_vit", checkpoint=str(path))
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
        description_and_weights(source, checkpoint=checkpoint)


def test_corrupt_file_and_checkpoint_on_file_raise(tmp_path):
    path = tmp_path / "junk.pt"
    path.write_bytes(b"not a pickle")
    with pytest.raises(ModelSourceError, match="cannot read"):
        description_and_weights(str(path))
    good = tmp_path / "w.safetensors"
    save_file({"fc.weight": torch.randn(4, 4)}, str(good))
    with pytest.raises(ModelSourceError, match="checkpoint"):
        description_and_weights(str(good), checkpoint=str(good))
    empty = tmp_path / "empty.safetensors"
    save_file({"norm.weight": torch.ones(4)}, str(empty))
    with pytest.raises(ModelSourceError, match="no prunable"):
        description_and_weights(str(empty))


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


@pytest.mark.parametrize("dtype", [torch.complex64, torch.int8, torch.bool])
def test_checkpoint_of_a_non_floating_dtype_is_refused(tmp_path, test_vit, dtype):
    """Known-bad: ``load_state_dict`` casts a complex checkpoint (dropping the imaginary parts, a warning only)
    and an int8 one silently; the strict load must refuse them, naming the keys and dtypes."""
    state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in test_vit.state_dict().items()}
    path = tmp_path / "odd.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    name = str(dtype).removeprefix("torch.")
    with pytest.raises(ModelSourceError, match=f"unsupported dtypes: blocks.0.attn.proj.bias {name} != float32"):
        load_model("test_vit", str(path))
    float64 = tmp_path / "double.safetensors"
    save_file({k: v.double() if v.is_floating_point() else v for k, v in test_vit.state_dict().items()}, str(float64))
    assert load_model("test_vit", str(float64)).model.blocks[0].attn.proj.bias.dtype == torch.float32


@pytest.mark.parametrize("dtype", [torch.int8, torch.complex64])
def test_state_dict_file_with_only_non_floating_layer_weights_says_unsupported_dtype(tmp_path, dtype):
    path = tmp_path / "quantised.safetensors"
    save_file({"fc.weight": torch.ones(4, 3, dtype=dtype), "head.weight": torch.ones(2, 4, dtype=dtype)}, str(path))
    with pytest.raises(ModelSourceError,
                       match=rf"no prunable weights: unsupported dtype .* fc.weight \(torch.{str(dtype)[6:]}\)"):
        load_model(str(path))


@pytest.mark.parametrize("keys", [["a.weight", "a.b.weight"], ["a.b.weight", "a.weight"]])
@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
def test_a_layer_that_is_also_a_container_is_refused_in_any_key_order(tmp_path, keys, suffix):
    """Known-bad: with ``a.weight`` first, the old loader hung ``b`` under the Linear ``a`` from a ``.pt``."""
    state = {key: torch.randn(4, 4) for key in keys}
    path = tmp_path / f"w{suffix}"
    save_file(state, str(path)) if suffix == ".safetensors" else torch.save(state, str(path))
    with pytest.raises(ModelSourceError, match="module a is both a layer and a container"):
        load_model(str(path))


def test_module_names_that_are_nn_module_attributes_are_named_as_such(tmp_path):
    """``training`` / ``forward`` are attributes of every ``nn.Module`` (``eval()`` sets ``training``): the old
    message called a lone ``training.weight`` "both a layer and a container"."""
    for key in ("training.weight", "forward.x.weight"):
        path = tmp_path / "w.safetensors"
        save_file({key: torch.randn(4, 3), "ok.weight": torch.randn(4, 3)}, str(path))
        with pytest.raises(ModelSourceError, match=f"{key.split('.')[0]!r} is an attribute of every torch.nn.Module"):
            load_model(str(path))


@pytest.mark.parametrize("key", [".weight", "a..b.weight", "a.weight.", "a. .weight"])
def test_keys_with_an_empty_module_name_are_refused(tmp_path, key):
    path = tmp_path / "w.safetensors"
    save_file({key: torch.randn(4, 3), "ok.weight": torch.randn(4, 3)}, str(path))
    if key.endswith("."):  # not a ".weight" key at all: ignored by the name rule
        assert set(load_model(str(path)).prunable_weights()) == {"ok.weight"}
        return
    if " " in key:  # a blank but not empty name is a name
        assert len(load_model(str(path)).prunable_weights()) == 2
        return
    with pytest.raises(ModelSourceError, match="module name in it is empty"):
        load_model(str(path))


def test_zero_size_layers_load_without_a_torch_warning(tmp_path):
    import warnings

    path = tmp_path / "w.safetensors"
    save_file({"a.weight": torch.randn(4, 3), "z.weight": torch.zeros(0, 3)}, str(path))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load_model(str(path)).prunable_weights()["z.weight"].shape == (0, 3)


def test_deep_source_loads_its_checkpoint_or_names_the_training_script(tmp_path, monkeypatch):
    import verification.models.deep_model as deep_model
    from verification.models.deep_model import DEEP_SCRIPT, new_deep_model

    monkeypatch.setattr(deep_model, "default_assets_dir", lambda: tmp_path)  # no trained deep weights there
    with pytest.raises(ModelSourceError, match=DEEP_SCRIPT):
        load_model("deep", runnable=True, argument="--model")
    source = new_deep_model(seed=2)
    path = tmp_path / "deep.safetensors"
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(path))
    loaded = load_model("deep", str(path), runnable=True)
    assert loaded.kind == "deep" and not loaded.trained_default and loaded.runnable
    assert "deep.safetensors" in loaded.description
    assert len(loaded.prunable_weights()) == 4 * 12 + 2
    assert all(torch.equal(loaded.model.state_dict()[k], v) for k, v in source.state_dict().items())
