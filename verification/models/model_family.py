"""A family of Fashion-MNIST ViTs of increasing width/depth, trained like the default model.

Every member is timm's ``VisionTransformer(**config)`` with ``config`` = :data:`DEFAULT_CONFIG`
(28 x 28 x 1 input, 7 x 7 patches, 17 tokens, MLP ratio 2, class token, 10 classes) with only
``embed_dim``, ``depth`` and ``num_heads`` replaced; it is trained by
:func:`verification.models.train_default.train_vision_transformer` (the default model's recipe).  The
parameter count is the exact ``sum(p.numel())`` of the built model; the MAC count of a k:n
projection of the block Linears comes from the analytical ViT model of ALGORITHMS.md 8.3
(:func:`pruning.macs.vit_mac_report`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from rmt.errors import InvalidParameterError
from pruning.macs import MacReport, ViTMacModel, vit_mac_report
from verification.models.datasets import ImageDataset, load_fashion_mnist
from verification.models.default_model import DEFAULT_CONFIG
from verification.models.train_default import TrainingRecipe, train_vision_transformer

__all__ = ["FamilyMember", "member_config", "build_member", "parameter_count", "member_mac_report", "train_member",
           "cached_member"]


@dataclass(frozen=True)
class FamilyMember:
    """Width ``embed_dim``, ``depth`` blocks and ``num_heads`` heads (``embed_dim % num_heads == 0``)."""

    embed_dim: int
    depth: int
    num_heads: int

    def __post_init__(self) -> None:
        for label in ("embed_dim", "depth", "num_heads"):
            value = getattr(self, label)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidParameterError(f"{label}: must be an integer >= 1, got {value!r}")
        if self.embed_dim % self.num_heads:
            raise InvalidParameterError(f"num_heads: {self.num_heads} does not divide embed_dim {self.embed_dim}")

    @property
    def name(self) -> str:
        return f"vit-d{self.embed_dim}-L{self.depth}-h{self.num_heads}"


def member_config(member: FamilyMember) -> dict[str, Any]:
    """The timm keyword arguments: :data:`DEFAULT_CONFIG` with the member's width, depth and heads."""
    return {**DEFAULT_CONFIG, "embed_dim": member.embed_dim, "depth": member.depth, "num_heads": member.num_heads}


def build_member(member: FamilyMember, seed: int = 0) -> torch.nn.Module:
    """An untrained member, initialised under ``torch.manual_seed(seed)``."""
    from timm.models.vision_transformer import VisionTransformer

    torch.manual_seed(seed)
    return VisionTransformer(**member_config(member))


def parameter_count(model: torch.nn.Module) -> int:
    """Exact number of parameters ``sum(p.numel())`` (the x axis of the size-trend figures)."""
    return int(sum(p.numel() for p in model.parameters()))


def member_mac_report(member: FamilyMember, pattern: str = "2:4") -> MacReport:
    """Dense vs ``pattern``-projected MACs (ALGORITHMS.md 8.3) of the member on a 28 x 28 image."""
    cfg = member_config(member)
    patches = (cfg["img_size"] // cfg["patch_size"]) ** 2
    model = ViTMacModel(
        dim=member.embed_dim, mlp_dim=int(member.embed_dim * cfg["mlp_ratio"]), depth=member.depth,
        tokens=patches + 1, patches=patches, patch_fan_in=cfg["in_chans"] * cfg["patch_size"] ** 2,
        classes=cfg["num_classes"],
    )
    return vit_mac_report(model, pattern=pattern)


def train_member(
    member: FamilyMember, dataset: ImageDataset, recipe: TrainingRecipe, progress: Callable[[str], None] | None = None
) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Train the member by ``recipe`` (:func:`train_vision_transformer`); return the model (eval mode) and its card."""
    return train_vision_transformer(member_config(member), dataset, recipe, progress)


def cached_member(
    member: FamilyMember, cache: Path, recipe: TrainingRecipe | None = None
) -> tuple[torch.nn.Module, dict[str, Any]]:
    """The member trained by ``recipe`` (default: one epoch on one thread) on Fashion-MNIST and its training card,
    cached as ``cache/<name>.pt`` (state dict) and ``cache/<name>.json`` (card): loaded when both are present, else
    trained and written (the benchmarks' depth family, issue 15)."""
    weights, card_file = Path(cache) / f"{member.name}.pt", Path(cache) / f"{member.name}.json"
    if weights.is_file() and card_file.is_file():
        model = build_member(member)
        model.load_state_dict(torch.load(weights, weights_only=True))
        return model.eval(), json.loads(card_file.read_text())
    model, card = train_member(member, load_fashion_mnist(), recipe or TrainingRecipe(epochs=1, threads=1))
    weights.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), weights)
    card_file.write_text(json.dumps(card, indent=1, default=str))
    return model.eval(), card
