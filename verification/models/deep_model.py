"""The embedded deep model: a 12-block ViT with ViT-Tiny block widths at the default model's input (issue 15).

:data:`DEEP_CONFIG` gives the keyword arguments of timm's ``VisionTransformer``: the default model's input
(28 x 28 x 1, 7 x 7 patches: 16 patch tokens + 1 class token, 10 classes, class-token pooling) with ViT-Tiny's
blocks (width 192, 3 heads, MLP 768 = ratio 4) and ViT-Tiny's depth 12.  It exists to test the sound ``L_s`` at
real depth (verification/FINDINGS.md F22).  Its weights ``verification/models/assets/deep_vit.safetensors`` and card
``deep_vit.json`` are written by ``python -m verification.models.train_deep`` (recipe :data:`DEEP_RECIPE`, aimed at
>= 87 % Fashion-MNIST test accuracy within 60 minutes on 2 CPU cores); nothing is downloaded.
"""

from __future__ import annotations

from pathlib import Path
from types import MappingProxyType
from typing import Any

import torch

from verification.models.default_model import (
    DEFAULT_CONFIG,
    default_assets_dir,
    load_embedded_weights,
    read_embedded_card,
)
from verification.models.train_default import TrainingRecipe

__all__ = ["DEEP_CONFIG", "DEEP_WEIGHTS_NAME", "DEEP_CARD_NAME", "DEEP_RECIPE", "DEEP_SCRIPT", "new_deep_model",
           "build_deep_model", "deep_model_card"]

DEEP_CONFIG = MappingProxyType({**DEFAULT_CONFIG, "embed_dim": 192, "depth": 12, "num_heads": 3, "mlp_ratio": 4.0})
DEEP_WEIGHTS_NAME = "deep_vit.safetensors"
DEEP_CARD_NAME = "deep_vit.json"
DEEP_SCRIPT = "python -m verification.models.train_deep"
#: 469 steps of batch 128 per epoch; one epoch measured at 559 CPU s on one thread (test accuracy 0.823 after that
#: single epoch), so 5 epochs ~ 47 CPU min.  One thread: on the shared 2-core machine two threads were slower per
#: step for the default model (:mod:`verification.models.train_default`).
DEEP_RECIPE = TrainingRecipe(epochs=5, batch_size=128, lr=1e-3, seed=0, threads=1)


def new_deep_model(seed: int | None = None) -> torch.nn.Module:
    """A freshly initialised ``VisionTransformer(**DEEP_CONFIG)`` (under ``torch.manual_seed(seed)`` if given)."""
    from timm.models.vision_transformer import VisionTransformer

    if seed is not None:
        torch.manual_seed(seed)
    return VisionTransformer(**DEEP_CONFIG)


def build_deep_model(weights_path: str | Path | None = None) -> torch.nn.Module:
    """The deep ViT in eval mode with its trained weights (package assets, or ``weights_path``); a
    :class:`verification.models.default_model.DefaultModelError` naming :data:`DEEP_SCRIPT` where they are missing."""
    model = new_deep_model()
    path = Path(weights_path) if weights_path is not None else default_assets_dir() / DEEP_WEIGHTS_NAME
    load_embedded_weights(model, path, "deep model", "DEEP_CONFIG", DEEP_SCRIPT)
    return model.eval()


def deep_model_card(card_path: str | Path | None = None) -> dict[str, Any]:
    """The JSON card of the deep model (package assets, or ``card_path``); its ``config`` must be
    :data:`DEEP_CONFIG`."""
    path = Path(card_path) if card_path is not None else default_assets_dir() / DEEP_CARD_NAME
    return read_embedded_card(path, DEEP_CONFIG, "deep model", "DEEP_CONFIG")
