"""Calibration activations: the rows feeding each layer (ALGORITHMS.md 7.3 "calibration-row semantics").

* ``nn.Linear``: token rows, inputs ``(..., d_in)`` flattened to ``(rows, d_in)``.
* ``nn.Conv2d``: im2col patch rows ``(B H_out W_out, C_in k_h k_w)`` unfolded with the layer's own
  kernel size / stride / padding / dilation, columns in the row-major order of 0.2, so that
  ``conv2d(x, K) == (W @ unfold(x))`` reshaped (7.6).

Calibration is given to CAST either as a mapping ``layer name -> (rows x fan_in) array`` or as a
callable ``f(model, layers) -> mapping``; :class:`ActivationCapture` is such a callable, capturing
with temporary forward hooks (removed afterwards) on a batch.  ``max_rows`` caps the rows kept per
layer by a seeded random subsample (the reference's 4096-row cap is ``max_rows=4096``) [I].
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .errors import CalibrationError

__all__ = ["ActivationCapture", "layer_input_rows", "resolve_calibration", "Calibration"]

Calibration = Mapping[str, Any] | Callable[[nn.Module, Mapping[str, nn.Module]], Mapping[str, Any]]


def layer_input_rows(module: nn.Module, x: torch.Tensor, name: str = "layer") -> torch.Tensor:
    """The rows ``h`` with ``layer(x) == h @ W.T`` (+ bias): token rows or im2col patch rows."""
    if isinstance(module, nn.Linear):
        return x.reshape(-1, module.in_features)
    if isinstance(module, nn.Conv2d):
        if isinstance(module.padding, str) or module.padding_mode != "zeros":
            raise CalibrationError(f"{name}: im2col needs numeric zero padding, got "
                                   f"{module.padding!r}/{module.padding_mode}")
        cols = F.unfold(x, module.kernel_size, dilation=module.dilation, padding=module.padding, stride=module.stride)
        return cols.transpose(1, 2).reshape(-1, cols.shape[1])
    raise CalibrationError(f"{name}: cannot form input rows of a {type(module).__name__}")


@dataclass(frozen=True)
class ActivationCapture:
    """Callable calibration source: run ``batches`` through the model and record each layer's input rows."""

    batches: torch.Tensor | Sequence[torch.Tensor]
    max_rows: int | None = None
    seed: int = 0

    def __call__(self, model: nn.Module, layers: Mapping[str, nn.Module]) -> dict[str, np.ndarray]:
        rows: dict[str, list[torch.Tensor]] = {name: [] for name in layers}

        def recorder(name: str, module: nn.Module):
            def hook(_module, inputs):
                rows[name].append(layer_input_rows(module, inputs[0].detach(), name).to("cpu", torch.float64))

            return hook

        handles = [m.register_forward_pre_hook(recorder(name, m)) for name, m in layers.items()]
        batches = [self.batches] if isinstance(self.batches, torch.Tensor) else list(self.batches)
        try:
            with torch.no_grad():
                for batch in batches:
                    model(batch)
        finally:
            for handle in handles:
                handle.remove()
        rng = np.random.default_rng(self.seed)
        out = {}
        for name, parts in rows.items():
            if not parts:
                raise CalibrationError(f"{name}: the layer was not called on the calibration batch")
            h = torch.cat(parts).numpy()
            if self.max_rows is not None and h.shape[0] > self.max_rows:
                h = h[np.sort(rng.choice(h.shape[0], self.max_rows, replace=False))]
            out[name] = h
        return out


def resolve_calibration(
    calibration: Calibration, model: nn.Module, layers: Mapping[str, nn.Module]
) -> dict[str, np.ndarray]:
    """Float64 ``(rows, fan_in)`` activations per layer, checked: present, 2-D, right width, finite."""
    given = calibration(model, layers) if callable(calibration) else calibration
    if not isinstance(given, Mapping):
        raise CalibrationError(f"calibration: expected a mapping or a callable, got {type(calibration).__name__}")
    out = {}
    for name, module in layers.items():
        if name not in given:
            raise CalibrationError(f"{name}: no calibration activations for this layer")
        h = given[name]
        h = h.detach().to("cpu", torch.float64).numpy() if isinstance(h, torch.Tensor) else np.asarray(h, np.float64)
        fan_in = module.weight[0].numel()
        if h.ndim != 2 or h.shape[1] != fan_in or h.shape[0] == 0:
            raise CalibrationError(f"{name}: calibration must be (rows >= 1) x {fan_in}, got shape {h.shape}")
        if not np.isfinite(h).all():
            raise CalibrationError(f"{name}: calibration activations have NaN or Inf entries")
        out[name] = h
    return out
