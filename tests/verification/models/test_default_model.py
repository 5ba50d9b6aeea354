"""The embedded models (default and deep): shipped weights and cards, their accuracy, strict loading, and the training
script."""

from __future__ import annotations

import fnmatch
import hashlib
import json
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

import pytest
import torch
from safetensors.torch import save_file

from verification.errors import ModelSourceError
from verification.models.datasets import DEBIAN_FASHION_MNIST_DIR
from verification.models.default_model import (
    DEFAULT_CARD_NAME,
    DEFAULT_CONFIG,
    DEFAULT_WEIGHTS_NAME,
    DefaultModelError,
    build_default_model,
    default_assets_dir,
    default_model_card,
    new_default_model,
)
from verification.models.deep_model import (
    DEEP_CARD_NAME,
    DEEP_CONFIG,
    DEEP_WEIGHTS_NAME,
    build_deep_model,
    deep_model_card,
    new_deep_model,
)
from verification.models.train_deep import main as deep_main
from verification.models.train_default import evaluate_accuracy, main

REPO = Path(__file__).resolve().parents[3]
ACCURACY_SLICE = 2000
ACCURACY_TOLERANCE = 0.015

needs_debian = pytest.mark.skipif(
    not DEBIAN_FASHION_MNIST_DIR.is_dir(), reason=f"{DEBIAN_FASHION_MNIST_DIR} missing (scripts/setup.sh installs it)"
)



@dataclass(frozen=True)
class Shipped:
    """One embedded model: how to build it (trained / untrained), its card, config, asset names, the card's claims."""

    name: str
    build: Callable[[], torch.nn.Module]
    untrained: Callable[[], torch.nn.Module]
    card: Callable[[], dict]
    config: Mapping
    weights_name: str
    card_name: str
    min_accuracy: float
    max_bytes: int


SHIPPED = {
    "default": Shipped("default", build_default_model, lambda: build_default_model(pretrained=False),
                       default_model_card, DEFAULT_CONFIG, DEFAULT_WEIGHTS_NAME, DEFAULT_CARD_NAME, 0.88, 2 * 1024**2),
    # issue 15: a 12-block ViT with ViT-Tiny widths, >= 87 % Fashion-MNIST test accuracy
    "deep": Shipped("deep", build_deep_model, lambda: new_deep_model(seed=0).eval(), deep_model_card, DEEP_CONFIG,
                    DEEP_WEIGHTS_NAME, DEEP_CARD_NAME, 0.87, 24 * 1024**2),
}


@pytest.fixture(scope="module", params=sorted(SHIPPED))
def shipped(request):
    return SHIPPED[request.param]


# --- shipped assets --------------------------------------------------------------------------


def test_shipped_model_loads_in_eval_mode(shipped):
    from timm.models.vision_transformer import VisionTransformer

    model = shipped.build()
    assert isinstance(model, VisionTransformer) and not model.training
    assert model.patch_embed.img_size == (28, 28) and model.num_classes == 10
    assert len(model.blocks) == shipped.config["depth"] and model.embed_dim == shipped.config["embed_dim"]
    assert sum(p.numel() for p in model.parameters()) == shipped.card()["parameters"]
    logits = model(torch.zeros(3, 1, 28, 28))
    assert logits.shape == (3, 10) and torch.isfinite(logits).all()


def test_card_describes_the_shipped_weights(shipped):
    card = shipped.card()
    weights = default_assets_dir() / shipped.weights_name
    assert card["config"] == dict(shipped.config)
    assert card["weights_file"] == shipped.weights_name
    assert card["weights_sha256"] == hashlib.sha256(weights.read_bytes()).hexdigest()
    assert weights.stat().st_size < shipped.max_bytes
    assert card["data"]["name"] == "fashion-mnist" and card["data"]["test_images"] == 10000
    assert card["data"]["train_images"] == 60000 and card["training"]["epochs"] >= 1
    assert card["test_accuracy"] >= shipped.min_accuracy
    for key in ("wall_time_s", "cpu_time_s", "torch_threads"):
        assert card["timing"][key] > 0
    assert set(card["versions"]) >= {"torch", "timm"} and card["date"]


def test_shipped_accuracy_matches_the_card(fashion, shipped):
    """Accuracy on the first 2,000 test images is within 1.5 pp of the card's 10k-image accuracy."""
    card = shipped.card()
    images, labels = fashion.test_images[:ACCURACY_SLICE], fashion.test_labels[:ACCURACY_SLICE]
    accuracy = evaluate_accuracy(shipped.build(), images, labels)
    assert abs(accuracy - card["test_accuracy"]) <= ACCURACY_TOLERANCE
    # known-bad: the untrained architecture (or a card that claims its accuracy) fails the check
    untrained = evaluate_accuracy(shipped.untrained(), images, labels)
    assert abs(untrained - card["test_accuracy"]) > ACCURACY_TOLERANCE


def test_assets_are_package_data():
    """setuptools' package list and package-data globs of pyproject.toml cover the asset files."""
    import setuptools

    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    packages = setuptools.find_packages(str(REPO), include=config["packages"]["find"]["include"])
    assert "verification.models.assets" in packages
    globs = config["package-data"]["*"]
    for name in (DEFAULT_WEIGHTS_NAME, DEFAULT_CARD_NAME, DEEP_WEIGHTS_NAME, DEEP_CARD_NAME):
        assert (default_assets_dir() / name).is_file()
        assert any(fnmatch.fnmatch(name, pattern) for pattern in globs)
    assert default_assets_dir().resolve() == (REPO / "verification" / "models" / "assets").resolve()


# --- strict loading and typed errors ---------------------------------------------------------


def test_missing_weights_raise(tmp_path):
    with pytest.raises(DefaultModelError, match=str(tmp_path / "absent.safetensors")):
        build_default_model(weights_path=tmp_path / "absent.safetensors")


def test_corrupt_weights_raise(tmp_path):
    path = tmp_path / "corrupt.safetensors"
    path.write_bytes(b"\x00" * 64)
    with pytest.raises(DefaultModelError, match="cannot read"):
        build_default_model(weights_path=path)


@pytest.mark.parametrize("change", ["drop", "extra", "reshape"])
def test_weights_that_do_not_match_the_config_raise(tmp_path, change):
    state = {k: v.clone() for k, v in new_default_model(seed=0).state_dict().items()}
    if change == "drop":
        del state["head.weight"]
    elif change == "extra":
        state["blocks.9.norm1.weight"] = torch.ones(64)
    else:
        state["pos_embed"] = torch.zeros(1, 50, 64)
    path = tmp_path / "w.safetensors"
    save_file(state, str(path))
    with pytest.raises(ModelSourceError, match="do not match DEFAULT_CONFIG") as info:
        build_default_model(weights_path=path)
    assert isinstance(info.value, DefaultModelError) and str(path) in str(info.value)


def test_matching_weights_load_exactly(tmp_path):
    source = new_default_model(seed=3)
    path = tmp_path / "w.safetensors"
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(path))
    loaded = build_default_model(weights_path=path)
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in source.state_dict().items())


@pytest.mark.parametrize("text", ["{not json", json.dumps({"config": {**DEFAULT_CONFIG, "depth": 5}}), "[]"])
def test_bad_cards_raise(tmp_path, text):
    path = tmp_path / "card.json"
    path.write_text(text)
    with pytest.raises(DefaultModelError, match=str(path)):
        default_model_card(path)
    with pytest.raises(DefaultModelError, match="does not exist"):
        default_model_card(tmp_path / "absent.json")


# --- the training script ---------------------------------------------------------------------


# (script main, card reader, model builder, weights file, card file, config, training subset): both embedded models
TRAINING_SCRIPTS = {
    "default": (main, default_model_card, build_default_model, DEFAULT_WEIGHTS_NAME, DEFAULT_CARD_NAME, DEFAULT_CONFIG,
                512),
    "deep": (deep_main, deep_model_card, build_deep_model, DEEP_WEIGHTS_NAME, DEEP_CARD_NAME, DEEP_CONFIG, 128),
}


@needs_debian
@pytest.mark.parametrize("which", sorted(TRAINING_SCRIPTS))
def test_training_script_writes_loadable_weights_and_card(tmp_path, which):
    script, read_card, build, weights_name, card_name, config, subset = TRAINING_SCRIPTS[which]
    previous_threads = torch.get_num_threads()
    test_images = 1000 if which == "default" else 100
    argv = ["--epochs", "1", "--subset", str(subset), "--test-limit", str(test_images), "--threads", "1", "--out",
            str(tmp_path)]
    assert script(argv) == 0
    assert torch.get_num_threads() == previous_threads
    card = read_card(tmp_path / card_name)
    model = build(weights_path=tmp_path / weights_name)
    assert card["config"] == dict(config) and card["parameters"] == sum(p.numel() for p in model.parameters())
    assert card["data"]["train_images"] == subset and card["data"]["test_images"] == test_images
    assert card["training"]["probe_loss_after"] < card["training"]["probe_loss_before"]
    assert card["weights_sha256"] == hashlib.sha256((tmp_path / weights_name).read_bytes()).hexdigest()
    assert 0.0 <= card["test_accuracy"] <= 1.0 and not model.training
