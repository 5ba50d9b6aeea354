"""Target ("prunable") layer sets and the 2-D weight view (ALGORITHMS.md 0.2, 0.3).

* Unstructured pipelines (magnitude, SEB, SER, Hybrid): every ``nn.Linear`` and ``nn.Conv2d``
  weight, in ``model.named_modules()`` order.
* k:n pipelines (CAST, magnitude k:n): ``nn.Linear`` with ``d_in % n == 0`` and ``d_out >= n``;
  ``nn.Conv2d`` with ``groups == 1``, ``C_in >= n`` and ``C_in % n == 0`` (for 2:4 this is the
  paper's ``C_in >= 4, C_in % 4 == 0``; the generalisation to n is [I]).  The classifier is
  excluded by default (paper); ``exclude_classifier=False`` is the reference k:n module (C21).
  The classifier is taken to be the last ``nn.Linear`` in registration order [I].
"""

from __future__ import annotations

from typing import Iterable

import torch
from torch import nn

from .errors import InvalidWeightError, PatternError, IneligibleLayerError
from .kn_patterns import KNPattern

__all__ = [
    "SUPPORTED_LAYER_TYPES",
    "prunable_layers",
    "select_layers",
    "classifier_name",
    "kn_eligible",
    "kn_layers",
    "weight_matrix",
]

SUPPORTED_LAYER_TYPES = (nn.Linear, nn.Conv2d)


def prunable_layers(model: nn.Module) -> dict[str, nn.Module]:
    """Every ``nn.Linear`` / ``nn.Conv2d`` of ``model`` by module name (ALGORITHMS.md 0.3)."""
    return {name: m for name, m in model.named_modules() if isinstance(m, SUPPORTED_LAYER_TYPES)}


def select_layers(model: nn.Module, layers: Iterable[str] | None) -> dict[str, nn.Module]:
    """The named layers (all prunable layers when ``layers`` is None); unknown / unsupported -> error."""
    if layers is None:
        return prunable_layers(model)
    modules = dict(model.named_modules())
    out: dict[str, nn.Module] = {}
    for name in layers:
        if name not in modules:
            raise IneligibleLayerError(f"layers: model has no module named {name!r}")
        if not isinstance(modules[name], SUPPORTED_LAYER_TYPES):
            raise IneligibleLayerError(
                f"layers: {name!r} is a {type(modules[name]).__name__}; only nn.Linear and nn.Conv2d are supported"
            )
        out[name] = modules[name]
    if not out:
        raise IneligibleLayerError("layers: the selection is empty")
    return out


def classifier_name(model: nn.Module) -> str | None:
    """Name of the last ``nn.Linear`` in registration order (the classifier head) [I]."""
    names = [name for name, m in model.named_modules() if isinstance(m, nn.Linear)]
    return names[-1] if names else None


def kn_eligible(module: nn.Module, pattern: KNPattern) -> bool:
    """Whether ``module`` can be projected to ``pattern`` (ALGORITHMS.md 0.3)."""
    n = pattern.n
    if isinstance(module, nn.Linear):
        return module.in_features % n == 0 and module.out_features >= n
    if isinstance(module, nn.Conv2d):
        return module.groups == 1 and module.in_channels >= n and module.in_channels % n == 0
    return False


def kn_layers(
    model: nn.Module, pattern: KNPattern, layers: Iterable[str] | None = None, exclude_classifier: bool = True
) -> dict[str, nn.Module]:
    """The k:n target set: the eligible layers, or the named ``layers`` (each must be eligible)."""
    if layers is not None:
        chosen = select_layers(model, layers)
        for name, module in chosen.items():
            if not kn_eligible(module, pattern):
                raise PatternError(f"{name}: {_describe(module)} cannot hold pattern {pattern} (see ALGORITHMS.md 0.3)")
        return chosen
    head = classifier_name(model) if exclude_classifier else None
    chosen = {name: m for name, m in prunable_layers(model).items() if name != head and kn_eligible(m, pattern)}
    if not chosen:
        raise IneligibleLayerError(f"model: no layer is eligible for pattern {pattern}")
    return chosen


def _describe(module: nn.Module) -> str:
    if isinstance(module, nn.Linear):
        return f"Linear(d_in={module.in_features}, d_out={module.out_features})"
    if isinstance(module, nn.Conv2d):
        return f"Conv2d(C_in={module.in_channels}, groups={module.groups})"
    return type(module).__name__


def weight_matrix(module: nn.Module, name: str) -> torch.Tensor:
    """The layer weight as a float64 ``(d_out, fan_in)`` matrix (conv flattened row-major, 0.2).

    Raises :class:`InvalidWeightError` naming the layer when the weight is empty or has NaN / Inf entries.
    """
    w = module.weight.detach()
    if w.numel() == 0:
        raise InvalidWeightError(f"{name}: weight is empty (shape {tuple(w.shape)}); there is nothing to prune")
    if not torch.isfinite(w).all():
        raise InvalidWeightError(f"{name}: weight has NaN or Inf entries")
    return w.to(device="cpu", dtype=torch.float64).reshape(w.shape[0], -1)
