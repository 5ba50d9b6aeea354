"""Where the weights of ``mpcert fit`` come from: a state-dict file, a timm model, or the default model.

:func:`load_named_weights` returns a human-readable description and the prunable layer weights
``{name: tensor}`` of ALGORITHMS.md 0.3 (every ``nn.Linear`` and ``nn.Conv2d`` weight).

Sources (never any network access):

* **a file** ``*.safetensors`` / ``*.pt`` / ``*.pth`` holding a state dict (a ``.pt`` may wrap it
  under ``"state_dict"`` or ``"model"``).  Without the modules we select by name and shape: every
  floating tensor with 2 or 4 dimensions whose key ends in ``.weight``, except those whose owning
  module (the key component before ``.weight``) names a norm or an embedding table (contains
  ``norm``, ``embed``/``emb``, ``wte`` or ``wpe``).  Norm weights are 1-D anyway; the name rule
  removes token/position embedding tables, while ``patch_embed.proj.weight`` (a Conv2d, module
  ``proj``) stays in.
* **a timm model name**, built offline with ``timm.create_model(name, pretrained=False)``; with
  ``checkpoint=FILE`` its weights are loaded strictly from that local file, and a file that does
  not match the architecture raises :class:`rmt.errors.ModelSourceError` naming the missing,
  unexpected and wrongly shaped keys.
* ``"default"``: an **untrained placeholder** — a small timm ``VisionTransformer`` (28x28x1 input,
  patch 7, width 64, depth 4, 4 heads, 10 classes) initialised under ``torch.manual_seed(0)`` —
  until the embedded trained default model exists.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from rmt.errors import ModelSourceError

__all__ = ["load_named_weights", "prunable_weights", "state_dict_weights", "DEFAULT_SOURCE"]

DEFAULT_SOURCE = "default"
_FILE_SUFFIXES = (".safetensors", ".pt", ".pth")
_EXCLUDED_MODULE_WORDS = ("norm", "emb", "wte", "wpe")
_DEFAULT_VIT = dict(img_size=28, patch_size=7, in_chans=1, embed_dim=64, depth=4, num_heads=4, num_classes=10)
_MAX_KEYS_SHOWN = 8


def prunable_weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """``{"<module>.weight": weight}`` for every ``nn.Linear`` and ``nn.Conv2d`` (ALGORITHMS.md 0.3)."""
    return {
        f"{name}.weight": module.weight.detach()
        for name, module in model.named_modules()
        if isinstance(module, (torch.nn.Linear, torch.nn.Conv2d))
    }


def _is_prunable_key(key: str, tensor: Any) -> bool:
    if not (isinstance(tensor, torch.Tensor) and tensor.is_floating_point() and tensor.ndim in (2, 4)):
        return False
    if not key.endswith(".weight"):
        return False
    module = key[: -len(".weight")].rsplit(".", 1)[-1].lower()
    return not any(word in module for word in _EXCLUDED_MODULE_WORDS)


def state_dict_weights(state: dict[str, Any]) -> dict[str, torch.Tensor]:
    """Prunable weights of a bare state dict, selected by the name/shape rule of the module docstring."""
    return {key: value.detach() for key, value in state.items() if _is_prunable_key(key, value)}


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise ModelSourceError(f"model file {str(path)!r} does not exist")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path), device="cpu")
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt file, pickle refused by weights_only, ...
        raise ModelSourceError(f"cannot read {str(path)!r} as a state dict: {exc}") from exc
    for wrapper in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
    if not isinstance(state, dict) or not all(isinstance(k, str) for k in state):
        raise ModelSourceError(f"{str(path)!r} does not contain a state dict (a mapping from names to tensors)")
    return state


def _shorten(keys: list[str]) -> str:
    shown = ", ".join(keys[:_MAX_KEYS_SHOWN])
    return shown + (f", ... ({len(keys)} in all)" if len(keys) > _MAX_KEYS_SHOWN else "")


def _load_checkpoint_strictly(model: torch.nn.Module, path: Path, label: str) -> None:
    state = _read_state_dict(path)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong_shape = sorted(
        f"{k} {tuple(state[k].shape)} != {tuple(expected[k].shape)}"
        for k in set(state) & set(expected)
        if isinstance(state[k], torch.Tensor) and tuple(state[k].shape) != tuple(expected[k].shape)
    )
    problems = [
        f"{title}: {_shorten(keys)}"
        for title, keys in (("missing keys", missing), ("unexpected keys", unexpected), ("shape mismatches", wrong_shape))
        if keys
    ]
    if problems:
        raise ModelSourceError(f"checkpoint {str(path)!r} does not match {label}: " + "; ".join(problems))
    model.load_state_dict(state, strict=True)


def _build_timm(name: str) -> torch.nn.Module:
    import timm

    if not timm.is_model(name):
        raise ModelSourceError(
            f"unknown model source {name!r}: not a file ({', '.join(_FILE_SUFFIXES)}), not 'default', "
            "and not a registered timm model name"
        )
    try:
        return timm.create_model(name, pretrained=False)
    except Exception as exc:
        raise ModelSourceError(f"timm could not build {name!r}: {exc}") from exc


def _build_default() -> torch.nn.Module:
    from timm.models.vision_transformer import VisionTransformer

    torch.manual_seed(0)
    return VisionTransformer(**_DEFAULT_VIT)


def load_named_weights(source: str, checkpoint: str | None = None) -> tuple[str, dict[str, torch.Tensor]]:
    """Resolve ``source`` (file, timm name or ``"default"``) to ``(description, {name: weight})``.

    Raises
    ------
    ModelSourceError
        Missing or unreadable files, unknown names, a checkpoint that does not match the model,
        a checkpoint given for a state-dict file, or a source with no prunable weights.
    """
    source = str(source)
    path = Path(source)
    ckpt = None if checkpoint is None else Path(checkpoint)
    if path.suffix in _FILE_SUFFIXES:
        if ckpt is not None:
            raise ModelSourceError("--checkpoint applies to a timm model name or 'default', not to a weight file")
        state = _read_state_dict(path)
        weights = state_dict_weights(state)
        description = f"state-dict file {source} ({len(state)} tensors; {len(weights)} prunable by the name/shape rule)"
    else:
        if source == DEFAULT_SOURCE:
            model = _build_default()
            arch = "default model: untrained placeholder ViT (timm VisionTransformer, " + ", ".join(
                f"{k}={v}" for k, v in _DEFAULT_VIT.items()
            ) + ", torch.manual_seed(0))"
        else:
            model = _build_timm(source)
            arch = f"timm model {source} (built offline, pretrained=False)"
        if ckpt is not None:
            _load_checkpoint_strictly(model, ckpt, f"model {source!r}")
            arch += f", weights loaded strictly from {checkpoint}"
        elif source != DEFAULT_SOURCE:
            arch += ", random initialisation (no --checkpoint given)"
        weights = prunable_weights(model)
        description = arch
    if not weights:
        raise ModelSourceError(f"{source!r} has no prunable (Linear / Conv2d) weights")
    return description, weights
