"""Where the model of ``mpcert fit`` / ``prune`` / ``certify`` comes from: one loader, :func:`load_model`.

Sources (never any network access):

* ``"default"``: the **trained** embedded default model (:func:`verification.models.default_model.build_default_model`,
  weights shipped in ``verification/models/assets``); ``checkpoint=FILE`` replaces its weights (strictly).
* ``"deep"``: the embedded deep model (:func:`verification.models.deep_model.build_deep_model`: 12 blocks of
  width 192 at the default input), weights ``deep_vit.safetensors`` from ``python -m verification.models.train_deep``
  (a :class:`~verification.models.default_model.DefaultModelError` naming the script where they are missing);
  ``checkpoint=FILE`` as for ``"default"``.
* **a timm model name**, built offline with ``timm.create_model(name, pretrained=False)``; with
  ``checkpoint=FILE`` (``.safetensors`` or a ``.pt`` / ``.pth`` state dict) its weights are loaded
  strictly, and a file that does not match the architecture raises
  :class:`verification.errors.ModelSourceError` naming the missing, unexpected and wrongly shaped keys.
  Without a checkpoint the random initialisation is drawn under ``torch.manual_seed(0)`` inside
  :func:`torch.random.fork_rng` (reproducible, the caller's RNG state untouched).
* **a state-dict file** ``*.safetensors`` / ``*.pt`` / ``*.pth`` (``fit`` and ``prune`` only:
  weights only, not runnable).  Without the modules we select by name and shape: every floating
  tensor with 2 or 4 dimensions whose key ends in ``.weight``, except those whose owning module
  (the key component before ``.weight``) names a norm or an embedding table (contains ``norm``,
  ``embed``/``emb``, ``wte`` or ``wpe``).  Norm weights are 1-D anyway; the name rule removes
  token/position embedding tables, while ``patch_embed.proj.weight`` (a Conv2d, module ``proj``)
  stays in.  The selected weights are rebuilt as bias-free ``nn.Linear`` (2-D) / ``nn.Conv2d``
  (4-D) layers of their own dtype (:func:`weights_module`), so a mask's layer names are the state
  dict's module names.

The prunable layers of every source are its ``nn.Linear`` and ``nn.Conv2d`` weights (ALGORITHMS.md 0.3).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from verification.errors import ModelSourceError
from verification.models.state_dicts import load_state_dict_strictly, read_state_dict, shorten_keys

__all__ = [
    "DEFAULT_SOURCE",
    "DEEP_SOURCE",
    "SOURCE_KINDS",
    "WEIGHT_FILE_SUFFIXES",
    "LoadedModel",
    "load_model",
    "build_timm",
    "prunable_weights",
    "state_dict_weights",
    "weights_module",
]

DEFAULT_SOURCE = "default"
#: The embedded deep model (:mod:`verification.models.deep_model`; its weights are written by its training script).
DEEP_SOURCE = "deep"
#: ``LoadedModel.kind`` values.
SOURCE_KINDS = ("default", "deep", "timm", "state-dict")
WEIGHT_FILE_SUFFIXES = (".safetensors", ".pt", ".pth")
_EXCLUDED_MODULE_WORDS = ("norm", "emb", "wte", "wpe")
#: Seed of the random initialisation of a timm model loaded without a checkpoint.
TIMM_INIT_SEED = 0


@dataclass(frozen=True, eq=False)
class LoadedModel:
    """A resolved model source.

    ``model`` is in eval mode; ``kind`` is one of :data:`SOURCE_KINDS`; ``description`` is one
    human-readable line for reports; ``trained_default`` is True only for the shipped, trained
    default model (``"default"`` without ``--checkpoint``); ``runnable`` is False for a state-dict
    file, whose ``model`` is a shell of bias-free layers (see :func:`weights_module`).
    """

    model: nn.Module
    source: str
    kind: str
    description: str
    checkpoint: str | None
    trained_default: bool

    @property
    def runnable(self) -> bool:
        return self.kind != "state-dict"

    def prunable_weights(self) -> dict[str, torch.Tensor]:
        """``{"<module>.weight": weight}`` of every ``nn.Linear`` / ``nn.Conv2d`` of :attr:`model`."""
        return prunable_weights(self.model)


def prunable_weights(model: nn.Module) -> dict[str, torch.Tensor]:
    """``{"<module>.weight": weight}`` for every ``nn.Linear`` and ``nn.Conv2d`` (ALGORITHMS.md 0.3)."""
    return {
        f"{name}.weight": module.weight.detach()
        for name, module in model.named_modules()
        if isinstance(module, (nn.Linear, nn.Conv2d))
    }


def _is_layer_weight_key(key: str, tensor: Any) -> bool:
    if not (isinstance(tensor, torch.Tensor) and tensor.ndim in (2, 4)):
        return False
    if not key.endswith(".weight"):
        return False
    module = key[: -len(".weight")].rsplit(".", 1)[-1].lower()
    return not any(word in module for word in _EXCLUDED_MODULE_WORDS)


def state_dict_weights(state: dict[str, Any]) -> dict[str, torch.Tensor]:
    """Prunable weights of a bare state dict, selected by the name/shape rule of the module docstring."""
    return {key: value.detach() for key, value in state.items()
            if _is_layer_weight_key(key, value) and value.is_floating_point()}


def _no_prunable_weights(argument: str, source: str, state: dict[str, Any]) -> ModelSourceError:
    """The error for a source without prunable weights; it names layer weights refused for their dtype."""
    refused = [f"{key} ({value.dtype})" for key, value in state.items()
               if _is_layer_weight_key(key, value) and not value.is_floating_point()]
    if refused:
        return ModelSourceError(f"{argument}: {source!r} has no prunable weights: unsupported dtype of the layer "
                                f"weights {shorten_keys(refused)} (only floating-point weights are analysed)")
    return ModelSourceError(f"{argument}: {source!r} has no prunable (Linear / Conv2d) weights")


def _layer_paths(weights: dict[str, torch.Tensor]) -> dict[str, list[str]]:
    """``key -> module path`` of every weight key.  An empty module name, a name that is an attribute of every
    ``nn.Module`` (``training``, ``forward``), or a layer that is also the container of another key
    (``a.weight`` with ``a.b.weight``, in any order) raises :class:`ModelSourceError` naming the key."""
    paths = {key: key[: -len(".weight")].split(".") for key in weights}
    reserved = nn.Module()
    for key, path in paths.items():
        if "" in path:
            raise ModelSourceError(f"state-dict key {key!r}: a module name in it is empty "
                                   "(leading, trailing or doubled '.')")
        clash = [part for part in path if hasattr(reserved, part)]
        if clash:
            raise ModelSourceError(f"state-dict key {key!r}: module name {clash[0]!r} is an attribute of every "
                                   "torch.nn.Module, so no module tree can hold it; rename the key")
    layers = {tuple(path): key for key, path in paths.items()}
    for key, path in paths.items():
        for depth in range(1, len(path)):
            if tuple(path[:depth]) in layers:
                raise ModelSourceError(f"state-dict keys {layers[tuple(path[:depth])]!r} and {key!r}: module "
                                       f"{'.'.join(path[:depth])} is both a layer and a container")
    return paths


def weights_module(weights: dict[str, torch.Tensor]) -> nn.Module:
    """A module tree holding ``weights`` (``"<module path>.weight"``) as bias-free Linear / Conv2d layers.

    Each layer has its weight's dtype and exact values (a weights-only shell: not a runnable network).
    Key problems are typed errors (:func:`_layer_paths`).
    """
    root = nn.Module()
    for key, path in _layer_paths(weights).items():
        w = weights[key]
        parent = root
        for part in path[:-1]:
            if part not in parent._modules:
                parent.add_module(part, nn.Module())
            parent = parent._modules[part]
        with warnings.catch_warnings():  # a zero-size weight: its initialisation is a no-op, said by a warning
            warnings.filterwarnings("ignore", "Initializing zero-element tensors", UserWarning)
            if w.ndim == 2:
                layer = nn.Linear(w.shape[1], w.shape[0], bias=False, device="meta", dtype=w.dtype)
            else:
                layer = nn.Conv2d(w.shape[1], w.shape[0], tuple(w.shape[2:]), bias=False, device="meta", dtype=w.dtype)
        layer.weight = nn.Parameter(w.detach().clone(), requires_grad=False)
        parent.add_module(path[-1], layer)
    return root


def build_timm(name: str, argument: str = "source") -> nn.Module:
    """``timm.create_model(name, pretrained=False)`` (offline), with typed errors naming ``argument``.

    Raises :class:`ModelSourceError` when ``name`` is not a registered timm model or timm fails.
    """
    import timm

    if not timm.is_model(name):
        raise ModelSourceError(
            f"{argument}: unknown model source {name!r}: not a weight file ({', '.join(WEIGHT_FILE_SUFFIXES)}), "
            f"not {DEFAULT_SOURCE!r}, and not a registered timm model name"
        )
    try:
        return timm.create_model(name, pretrained=False)
    except Exception as exc:
        raise ModelSourceError(f"{argument}: timm could not build {name!r}: {exc}") from exc


def _load_default(checkpoint: str | None) -> LoadedModel:
    from verification.models.default_model import DEFAULT_WEIGHTS_NAME, DefaultModelError, build_default_model

    try:
        model = build_default_model(weights_path=checkpoint)
    except DefaultModelError as exc:
        if checkpoint is None:
            raise
        raise DefaultModelError(f"--checkpoint: {exc}") from exc
    weights = (f"weights {checkpoint} (loaded strictly)" if checkpoint
               else f"shipped trained weights {DEFAULT_WEIGHTS_NAME}")
    return LoadedModel(
        model=model, source=DEFAULT_SOURCE, kind="default", checkpoint=checkpoint, trained_default=checkpoint is None,
        description=f"default Fashion-MNIST ViT (timm VisionTransformer, {weights})",
    )


def _load_deep(checkpoint: str | None) -> LoadedModel:
    from verification.models.deep_model import DEEP_WEIGHTS_NAME, build_deep_model

    model = build_deep_model(weights_path=checkpoint)
    weights = (f"weights {checkpoint} (loaded strictly)" if checkpoint
               else f"embedded trained weights {DEEP_WEIGHTS_NAME}")
    return LoadedModel(
        model=model, source=DEEP_SOURCE, kind="deep", checkpoint=checkpoint, trained_default=False,
        description=f"deep Fashion-MNIST ViT (timm VisionTransformer, 12 blocks of width 192; {weights})",
    )


def _load_timm(name: str, checkpoint: str | None, argument: str) -> LoadedModel:
    if checkpoint is None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(TIMM_INIT_SEED)
            model = build_timm(name, argument)
        weights = f"random initialisation under torch.manual_seed({TIMM_INIT_SEED}) (no --checkpoint given)"
    else:
        model = build_timm(name, argument)
        state = read_state_dict(checkpoint, what="--checkpoint")
        load_state_dict_strictly(model, state, label=f"--checkpoint {checkpoint!r}: its weights",
                                 target=f"timm model {name!r}")
        weights = f"weights loaded strictly from {checkpoint}"
    return LoadedModel(
        model=model.eval(), source=name, kind="timm", checkpoint=checkpoint, trained_default=False,
        description=f"timm model {name} (built offline, pretrained=False; {weights})",
    )


def _load_state_dict_file(source: str, argument: str) -> LoadedModel:
    state = read_state_dict(source, what=f"{argument} model file")
    weights = state_dict_weights(state)
    if not weights:
        raise _no_prunable_weights(argument, source, state)
    return LoadedModel(
        model=weights_module(weights).eval(), source=source, kind="state-dict", checkpoint=None, trained_default=False,
        description=f"state-dict file {source} ({len(state)} tensors; {len(weights)} prunable by the name/shape rule; "
                    "weights only)",
    )


def load_model(
    source: str, checkpoint: str | None = None, *, runnable: bool = False, argument: str = "source"
) -> LoadedModel:
    """Resolve ``source`` (``"default"``, ``"deep"``, a timm name, or a state-dict file) to a :class:`LoadedModel`.

    ``runnable=True`` refuses a state-dict file (a command that runs the network, e.g. ``certify``).
    ``argument`` is the command-line name used in error messages (``"--model"``, ``"SOURCE"``).

    Raises
    ------
    ModelSourceError
        Missing or unreadable files, unknown names, a checkpoint that does not match the model, a
        checkpoint given for a state-dict file, a state-dict file where ``runnable`` is asked, or a
        source with no prunable weights.
    """
    source = str(source)
    checkpoint = None if checkpoint is None else str(checkpoint)
    if Path(source).suffix in WEIGHT_FILE_SUFFIXES:
        if checkpoint is not None:
            raise ModelSourceError(f"--checkpoint applies to a timm model name or {DEFAULT_SOURCE!r}, not to a weight "
                                   "file")
        if runnable:
            raise ModelSourceError(
                f"{argument}: {source!r} is a weights-only state-dict file; this command runs the network, so give "
                f"{DEFAULT_SOURCE!r} or a timm model name with --checkpoint {source}"
            )
        return _load_state_dict_file(source, argument)
    if source == DEFAULT_SOURCE:
        loaded = _load_default(checkpoint)
    elif source == DEEP_SOURCE:
        loaded = _load_deep(checkpoint)
    else:
        loaded = _load_timm(source, checkpoint, argument)
    if not loaded.prunable_weights():
        raise ModelSourceError(f"{argument}: {source!r} has no prunable (Linear / Conv2d) weights")
    return loaded
