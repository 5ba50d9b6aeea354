"""The embedded default model: a small timm ViT trained on Fashion-MNIST, shipped with the package.

:data:`DEFAULT_CONFIG` gives the keyword arguments of timm's own
``timm.models.vision_transformer.VisionTransformer`` (28 x 28 x 1 input, 7 x 7 patches so 16
patch tokens + 1 class token, width 64, depth 4, 4 heads, MLP ratio 2, class-token pooling,
10 classes).  Its trained weights live in ``verification/models/assets/default_vit.safetensors`` and its
model card (config, seed, data, epochs, test accuracy, wall and CPU training time, versions,
date) in ``verification/models/assets/default_vit.json``; both are written by
``python -m verification.models.train_default`` and installed as package data, so nothing is ever
downloaded.  Inputs are normalised as in :mod:`verification.models.datasets`.
"""

from __future__ import annotations

import importlib.resources
import json
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping

import torch

from verification.errors import ModelSourceError
from verification.models.state_dicts import load_state_dict_strictly, read_state_dict

__all__ = [
    "DEFAULT_CONFIG",
    "DEFAULT_WEIGHTS_NAME",
    "DEFAULT_CARD_NAME",
    "DefaultModelError",
    "default_assets_dir",
    "new_default_model",
    "build_default_model",
    "load_default_weights",
    "default_model_card",
    "load_embedded_weights",
    "read_embedded_card",
]

DEFAULT_CONFIG = MappingProxyType(
    dict(
        img_size=28,
        patch_size=7,
        in_chans=1,
        num_classes=10,
        embed_dim=64,
        depth=4,
        num_heads=4,
        mlp_ratio=2.0,
        global_pool="token",
        class_token=True,
    )
)
DEFAULT_WEIGHTS_NAME = "default_vit.safetensors"
DEFAULT_CARD_NAME = "default_vit.json"


class DefaultModelError(ModelSourceError):
    """The shipped default model's weights or card are missing, unreadable or do not match DEFAULT_CONFIG."""


def default_assets_dir() -> Path:
    """Folder of the installed package data ``verification/models/assets`` (resolved via importlib.resources)."""
    return Path(str(importlib.resources.files("verification.models.assets")))


def new_default_model(seed: int | None = None) -> torch.nn.Module:
    """A freshly initialised ``VisionTransformer(**DEFAULT_CONFIG)`` (under ``torch.manual_seed(seed)`` if given)."""
    from timm.models.vision_transformer import VisionTransformer

    if seed is not None:
        torch.manual_seed(seed)
    return VisionTransformer(**DEFAULT_CONFIG)


def load_default_weights(model: torch.nn.Module, path: str | Path) -> None:
    """Load the weights file ``path`` into ``model`` strictly (same keys, same shapes).

    The one strict loader of :mod:`verification.models.state_dicts` (also used for ``--checkpoint`` files).

    Raises :class:`DefaultModelError` naming ``path`` and the missing, unexpected or wrongly
    shaped keys.
    """
    load_embedded_weights(model, path, "default model", "DEFAULT_CONFIG", "python -m verification.models.train_default")


def load_embedded_weights(model: torch.nn.Module, path: str | Path, label: str, target: str, script: str) -> None:
    """Strict loading of an embedded model's weights (``label``: e.g. ``"default model"``; ``target``: the config's
    name; ``script``: the command that writes them), :class:`DefaultModelError` naming ``path`` otherwise."""
    path = Path(path)
    if not path.is_file():
        raise DefaultModelError(f"{label} weights {str(path)!r} do not exist (run {script})")
    state = read_state_dict(path, what=f"{label} weights", error=DefaultModelError)
    load_state_dict_strictly(model, state, label=f"{label} weights {str(path)!r}", target=target,
                             error=DefaultModelError)


def build_default_model(pretrained: bool = True, weights_path: str | Path | None = None) -> torch.nn.Module:
    """The default ViT in eval mode: trained weights from the package assets (or ``weights_path``).

    ``pretrained=False`` returns the architecture initialised under ``torch.manual_seed(0)``.
    """
    model = new_default_model(seed=None if pretrained else 0)
    if pretrained:
        path = Path(weights_path) if weights_path is not None else default_assets_dir() / DEFAULT_WEIGHTS_NAME
        load_default_weights(model, path)
    return model.eval()


def default_model_card(card_path: str | Path | None = None) -> dict[str, Any]:
    """The JSON model card of the default model (from the package assets, or ``card_path``).

    Raises :class:`DefaultModelError` if the file is missing, is not JSON, or its ``config``
    differs from :data:`DEFAULT_CONFIG`.
    """
    path = Path(card_path) if card_path is not None else default_assets_dir() / DEFAULT_CARD_NAME
    return read_embedded_card(path, DEFAULT_CONFIG, "default model", "DEFAULT_CONFIG")


def read_embedded_card(path: Path, config: Mapping[str, Any], label: str, target: str) -> dict[str, Any]:
    """The JSON card at ``path`` of an embedded model whose ``config`` must equal ``config`` (named ``target``)."""
    if not path.is_file():
        raise DefaultModelError(f"{label} card {str(path)!r} does not exist")
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DefaultModelError(f"{label} card {str(path)!r} is not readable JSON: {exc}") from exc
    if not isinstance(card, dict) or card.get("config") != dict(config):
        found = card.get("config") if isinstance(card, dict) else card
        raise DefaultModelError(f"{label} card {str(path)!r} has config {found!r}, expected {target} {dict(config)!r}")
    return card
