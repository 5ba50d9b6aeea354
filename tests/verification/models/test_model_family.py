"""The ViT family: configs, exact parameter counts, MAC accounting, and training by the default recipe."""

from __future__ import annotations

import pytest
import torch

from pruning.macs import layer_macs
from rmt.errors import InvalidParameterError
from verification.models.default_model import DEFAULT_CONFIG, new_default_model
from verification.models.model_family import (
    FamilyMember,
    build_member,
    cached_member,
    member_config,
    member_mac_report,
    parameter_count,
    train_member,
)
from verification.models.train_default import TrainingRecipe


def test_default_sized_member_is_the_default_model():
    member = FamilyMember(embed_dim=64, depth=4, num_heads=4)
    assert member_config(member) == dict(DEFAULT_CONFIG)
    a, b = build_member(member, seed=5), new_default_model(seed=5)
    assert parameter_count(a) == parameter_count(b)
    assert all((a.state_dict()[k] == v).all() for k, v in b.state_dict().items())


@pytest.mark.parametrize("d, depth", [(8, 1), (24, 2), (48, 3)])
def test_parameter_count_matches_the_vit_formula(d, depth):
    """Per block: 2 LayerNorms (4d) + qkv (3d^2 + 3d) + proj (d^2 + d) + fc1 (2d^2 + 2d) + fc2 (2d^2 + d)."""
    cfg = member_config(FamilyMember(d, depth, 2))
    patches = (cfg["img_size"] // cfg["patch_size"]) ** 2
    block = 4 * d + 3 * d * d + 3 * d + d * d + d + 2 * d * d + 2 * d + 2 * d * d + d
    embed = d * cfg["in_chans"] * cfg["patch_size"] ** 2 + d + d + (patches + 1) * d  # conv, cls, pos
    total = embed + depth * block + 2 * d + (d * 10 + 10)  # final norm, head
    assert parameter_count(build_member(FamilyMember(d, depth, 2))) == total
    assert parameter_count(build_member(FamilyMember(d, depth, 2))) != total + d  # known-bad: off by one vector


@pytest.mark.parametrize("d, depth", [(16, 1), (32, 2), (64, 4)])
def test_analytical_macs_equal_hooked_layer_macs_plus_attention(d, depth):
    member = FamilyMember(d, depth, 2)
    report = member_mac_report(member, "2:4")
    hooked = sum(layer_macs(build_member(member), (1, 1, 28, 28)).values())
    attention = depth * 2 * 17 ** 2 * d  # the two attention matmuls per block, 17 tokens
    assert report.dense == hooked + attention
    assert report.dense != hooked  # known-bad: forgetting the attention matmuls
    assert 0 < report.reduction < 0.5
    assert report.sparse_exec == report.dense - report.eligible / 2


def test_bad_members_are_refused():
    with pytest.raises(InvalidParameterError, match="num_heads"):
        FamilyMember(10, 1, 4)
    with pytest.raises(InvalidParameterError, match="depth"):
        FamilyMember(8, 0, 2)


def test_train_member_uses_the_member_config(dataset):
    member = FamilyMember(8, 1, 2)
    model, card = train_member(member, dataset, TrainingRecipe(epochs=1, batch_size=32, subset=60, test_limit=40))
    assert card["config"] == member_config(member)
    assert card["parameters"] == parameter_count(model) == parameter_count(build_member(member))
    assert card["data"]["train_images"] == 60 and card["data"]["test_images"] == 40


def test_a_cached_member_is_trained_once_and_loaded_back(tmp_path, monkeypatch):
    from verification.models import model_family

    member = FamilyMember(8, 1, 2)
    recipe = TrainingRecipe(epochs=1, batch_size=32, subset=60, test_limit=40)
    trained, card = cached_member(member, tmp_path, recipe)
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{member.name}.json", f"{member.name}.pt"]

    def no_training(*args, **kwargs):
        raise AssertionError("trained again")

    monkeypatch.setattr(model_family, "train_member", no_training)
    loaded, loaded_card = cached_member(member, tmp_path, recipe)
    assert not loaded.training and loaded_card["test_accuracy"] == card["test_accuracy"]
    for (name, value), (_, other) in zip(trained.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(value, other), name
    (tmp_path / f"{member.name}.json").unlink()  # known-bad: without its card the cache is not trusted
    with pytest.raises(AssertionError, match="trained again"):
        cached_member(member, tmp_path, recipe)


@pytest.fixture(scope="module")
def dataset():
    from verification.models.datasets import load_default_dataset

    return load_default_dataset()
