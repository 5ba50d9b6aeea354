"""Layer views of a timm ViT (or any torch model) for the literal certificate audit (THEORY.md 1.4, 3.1).

**Token convention** (THEORY.md is silent on it; this is the convention of every audit in mpcert).
In a ViT a Linear layer with weight ``A`` (``n x m``) acts on every token, so for one image ``s``
``psi_1(s)`` is the ``(tokens x m)`` matrix of the layer's inputs and the layer is ``A`` applied
tokenwise.  We view it as the block-diagonal map ``I_tokens ⊗ A`` on the flattened vector in
``R^(tokens m)``.  Then

* ``||R psi_1(s)||_inf = max_{t, i} |(R x_t)_i|`` (exact products, one batched matmul per layer);
* ``u_s(theta) = (S + theta R)`` applied tokenwise; the path segment is ``{u_s(theta) : theta in [0, 1]}``;
* ``L_s`` is the ``l_inf -> l_inf`` Lipschitz constant of ``psi_2`` on the flattened ``(tokens x n)`` output.

A ``Conv2d`` layer is the same statement with the im2col patches as tokens (``patch_embed.proj``).
A ViT has residual connections, so ``psi_2`` depends on ``s`` also through the skip path:
``z(s) = psi_{2,s}(A psi_1(s))`` with ``psi_{2,s}`` the rest of the network *with the upstream
activations of image s frozen*.  Lemma 5.1 and Corollary 5.2 only use the per-sample inequality
``||z(theta) - z(1)||_inf <= (1 - theta) L_s ||R psi_1(s)||_inf``, so they hold verbatim with
``L_s`` the Lipschitz constant of ``psi_{2,s}`` on that sample's segment.

The penalties of Theorem 5.4 use ``||R||_F`` and ``||R||_1`` of the layer's own ``n x m`` weight,
not of the block-diagonal map (which would count each entry ``tokens`` times); this is why the audit
does not pass an ``I_tokens ⊗ A`` :class:`certs.layer_view.LayerView` to the ``certs`` functions but
feeds them per-sample products (:func:`certs.budget.budget_from_products`).

``psi_{2,s}`` is evaluated by re-running the model on image ``s`` with a forward hook that replaces
the target module's output by ``op(x, S) + theta op(x, R) + bias`` (``op`` = ``F.linear`` or
``F.conv2d``; ``x`` is the input the module receives, which equals the captured ``psi_1(s)`` because
everything upstream is frozen).  The model is a float64 deep copy in eval mode with timm's fused
attention switched off (DESIGN.md, timm notes); the user's model is never modified.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from certs.errors import CertificateInputError, UnsupportedLayerError

__all__ = [
    "SUPPORTED_TYPES",
    "audit_copy",
    "supported_layers",
    "CapturedLayer",
    "capture_layer",
    "path_logits",
    "check_mask_layers",
]

SUPPORTED_TYPES = (nn.Linear, nn.Conv2d)

#: Largest number of images in one re-run batch (theta values x samples).
MAX_BATCH = 512


def audit_copy(model: nn.Module) -> nn.Module:
    """A float64, eval-mode deep copy of ``model`` with timm's fused attention turned off on every module."""
    clone = copy.deepcopy(model).to(dtype=torch.float64).eval()
    for module in clone.modules():
        if hasattr(module, "fused_attn"):
            module.fused_attn = False
    return clone


def supported_layers(model: nn.Module) -> dict[str, nn.Module]:
    """Every ``nn.Linear`` / ``nn.Conv2d`` (numeric zero padding) of ``model``, by module name."""
    out = {}
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d) and (isinstance(module.padding, str) or module.padding_mode != "zeros"):
            continue
        if isinstance(module, SUPPORTED_TYPES):
            out[name] = module
    if not out:
        raise UnsupportedLayerError(f"model: {type(model).__name__} has no nn.Linear or nn.Conv2d layer to audit")
    return out


def _layer_op(module: nn.Module, x: torch.Tensor, weight2d: torch.Tensor) -> torch.Tensor:
    """``op(x, W)`` without bias: the layer's matrix multiply with the 2-D weight ``W`` (``n x fan_in``)."""
    if isinstance(module, nn.Linear):
        return F.linear(x, weight2d)
    return F.conv2d(
        x, weight2d.reshape(module.weight.shape), None, module.stride, module.padding, module.dilation, module.groups
    )


def _add_bias(module: nn.Module, out: torch.Tensor) -> torch.Tensor:
    if module.bias is None:
        return out
    bias = module.bias.detach()
    return out + (bias if isinstance(module, nn.Linear) else bias[:, None, None])


@dataclass(frozen=True, eq=False)
class CapturedLayer:
    """One target layer split by its keep-mask, with its inputs captured on a sample set ``T``.

    ``structured``/``removed`` are ``S = M ⊙ A`` and ``R = (1 - M) ⊙ A`` as 2-D float64 arrays
    (``n x fan_in``); ``products[s] = ||R psi_1(s)||_inf`` (token convention, exact);
    ``input_sup[s] = ||psi_1(s)||_inf`` (for the paper's proxy only).
    """

    name: str
    structured: np.ndarray
    removed: np.ndarray
    products: np.ndarray
    input_sup: np.ndarray
    tokens: int


def _module(model: nn.Module, name: str) -> nn.Module:
    module = dict(model.named_modules()).get(name)
    if not isinstance(module, SUPPORTED_TYPES):
        raise UnsupportedLayerError(f"mask: layer {name!r} is not an nn.Linear or nn.Conv2d of the model")
    return module


def capture_layer(model: nn.Module, name: str, keep: torch.Tensor, images: torch.Tensor) -> CapturedLayer:
    """Capture ``psi_1`` of layer ``name`` on ``images`` (float64 model from :func:`audit_copy`) and split it by ``keep``."""
    module = _module(model, name)
    weight = module.weight.detach()
    keep = torch.as_tensor(keep, dtype=torch.bool).reshape(weight.shape)
    w2d = weight.reshape(weight.shape[0], -1)
    k2d = keep.reshape(weight.shape[0], -1)
    structured = torch.where(k2d, w2d, torch.zeros((), dtype=w2d.dtype))
    removed = w2d - structured
    seen: list[torch.Tensor] = []
    handle = module.register_forward_pre_hook(lambda _m, inputs: seen.append(inputs[0].detach()))
    try:
        with torch.no_grad():
            model(images)
            if len(seen) != 1:
                raise UnsupportedLayerError(f"layer {name!r} is called {len(seen)} times per forward pass (need once)")
            x = seen[0]
            step = _layer_op(module, x, removed).reshape(x.shape[0], -1)
    finally:
        handle.remove()
    tokens = step.shape[1] // w2d.shape[0]
    return CapturedLayer(
        name=name,
        structured=structured.numpy().astype(np.float64),
        removed=removed.numpy().astype(np.float64),
        products=step.abs().amax(dim=1).numpy().astype(np.float64),
        input_sup=x.reshape(x.shape[0], -1).abs().amax(dim=1).numpy().astype(np.float64),
        tokens=int(tokens),
    )


def path_logits(model: nn.Module, layer: CapturedLayer, images: torch.Tensor, thetas: np.ndarray) -> np.ndarray:
    """``z_{S + theta R}(s)`` for every ``theta`` and image: shape ``(len(thetas), |T|, K)``, float64.

    Re-runs ``model`` (from :func:`audit_copy`) with the target's output replaced by
    ``op(x, S) + theta op(x, R) + bias``, batching several ``theta`` values per forward pass.
    """
    module = _module(model, layer.name)
    s_t = torch.from_numpy(layer.structured)
    r_t = torch.from_numpy(layer.removed)
    n = images.shape[0]
    per_chunk = max(1, MAX_BATCH // n)
    chunk_thetas: list[torch.Tensor] = []

    def replace_output(_module, inputs, _output):
        base, step = _layer_op(module, inputs[0], s_t), _layer_op(module, inputs[0], r_t)
        theta = chunk_thetas[0].repeat_interleave(n).reshape(-1, *([1] * (base.ndim - 1)))
        return _add_bias(module, base + theta * step)

    out = []
    handle = module.register_forward_hook(replace_output)
    try:
        with torch.no_grad():
            for start in range(0, len(thetas), per_chunk):
                part = torch.as_tensor(np.asarray(thetas[start:start + per_chunk]), dtype=torch.float64)
                chunk_thetas[:] = [part]
                z = model(images.repeat(part.numel(), *([1] * (images.ndim - 1))))
                out.append(z.reshape(part.numel(), n, -1).numpy())
    finally:
        handle.remove()
    z = np.concatenate(out, axis=0).astype(np.float64)
    if not np.all(np.isfinite(z)):
        raise CertificateInputError(f"layer {layer.name!r}: the re-run model produced NaN or Inf logits")
    return z


def check_mask_layers(model: nn.Module, keep: Mapping[str, torch.Tensor]) -> None:
    """Every masked layer exists in ``model``, is supported, and its keep-tensor has the weight's shape."""
    if not keep:
        raise CertificateInputError("mask: it names no layer")
    modules = dict(model.named_modules())
    unknown = sorted(name for name in keep if name not in modules)
    if unknown:
        raise CertificateInputError(f"mask: layers {unknown} do not exist in the model (a mask for another model?)")
    for name, tensor in keep.items():
        module = modules[name]
        if not isinstance(module, SUPPORTED_TYPES):
            raise UnsupportedLayerError(f"mask: layer {name!r} is a {type(module).__name__}, not nn.Linear / nn.Conv2d")
        if tuple(tensor.shape) != tuple(module.weight.shape):
            raise CertificateInputError(
                f"mask: layer {name!r} keep-tensor shape {tuple(tensor.shape)} != weight shape {tuple(module.weight.shape)}"
            )
