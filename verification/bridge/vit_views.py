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

**Restart points** (speed; the logits are the same up to float64 rounding of the batching).  Upstream
of the target nothing depends on ``theta``, so the re-run starts where the target's influence begins,
from a state cached during the capture pass (:class:`Restart`):

* timm ``VisionTransformer`` (its own ``forward`` / ``forward_features``), target in block ``b``:
  ``attn.*`` restarts at block ``b`` from its input tokens (the attention path needs them);
  ``mlp.*`` restarts at the MLP residual branch ``x' + drop_path2(ls2(mlp(norm2(x'))))`` from the
  post-attention residual ``x'`` (timm ``Block.forward`` only); then blocks ``b+1..``, ``norm``,
  ``forward_head``.  Target ``head``: restarts at the head from its pooled input.
* anything else (``patch_embed``, other architectures, custom block classes): the full re-run.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Callable, Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from certs.errors import CertificateInputError, UnsupportedLayerError

__all__ = [
    "SUPPORTED_TYPES",
    "audit_copy",
    "supported_layers",
    "Restart",
    "restart_point",
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
class Restart:
    """Where the theta-path re-run starts: ``run(state)`` is the logits of the network from the input of
    module ``module`` onwards (``""``: the whole model, ``state`` = the images).  ``kind`` is one of
    ``full``, ``block``, ``mlp-branch``, ``head`` (module docstring)."""

    kind: str
    module: str
    state: torch.Tensor | None
    run: Callable[[torch.Tensor], torch.Tensor]


def _is_timm_vit(model: nn.Module) -> bool:
    from timm.models.vision_transformer import VisionTransformer

    kind = type(model)
    return (isinstance(model, VisionTransformer) and kind.forward is VisionTransformer.forward
            and kind.forward_features is VisionTransformer.forward_features and isinstance(model.blocks, nn.Sequential))


def _vit_tail(model: nn.Module, first_block: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """Blocks ``first_block..``, the final norm and the head of a timm ``VisionTransformer``."""

    def run(x: torch.Tensor) -> torch.Tensor:
        for block in list(model.blocks)[first_block:]:
            x = block(x)
        return model.forward_head(model.norm(x))

    return run


def restart_point(model: nn.Module, name: str) -> Restart:
    """The :class:`Restart` (without its state) of target layer ``name`` in ``model`` (module docstring)."""
    if _is_timm_vit(model):
        from timm.models.vision_transformer import Block, VisionTransformer

        parts = name.split(".")
        if len(parts) >= 3 and parts[0] == "blocks" and parts[1].isdigit():
            b = int(parts[1])
            block = model.blocks[b]
            tail = _vit_tail(model, b + 1)
            if parts[2] == "mlp" and type(block).forward is Block.forward:
                def branch(x: torch.Tensor) -> torch.Tensor:
                    return tail(x + block.drop_path2(block.ls2(block.mlp(block.norm2(x)))))

                return Restart("mlp-branch", f"blocks.{b}.norm2", None, branch)
            return Restart("block", f"blocks.{b}", None, _vit_tail(model, b))
        if name == "head" and type(model).forward_head is VisionTransformer.forward_head:
            return Restart("head", "head", None, lambda x: model.head(x))
    return Restart("full", "", None, model)


@dataclass(frozen=True, eq=False)
class CapturedLayer:
    """One target layer split by its keep-mask, with its inputs captured on a sample set ``T``.

    ``structured``/``removed`` are ``S = M ⊙ A`` and ``R = (1 - M) ⊙ A`` as 2-D float64 arrays
    (``n x fan_in``); ``products[s] = ||R psi_1(s)||_inf`` (token convention, exact);
    ``input_sup[s] = ||psi_1(s)||_inf`` (for the paper's proxy only); ``restart``: where the
    theta-path re-run starts, with its cached state (:func:`restart_point`); ``psi1``: the captured
    inputs of the layer (float64 tensor, first axis = images).
    """

    name: str
    structured: np.ndarray
    removed: np.ndarray
    products: np.ndarray
    input_sup: np.ndarray
    tokens: int
    restart: Restart | None = None
    psi1: torch.Tensor | None = None


def _module(model: nn.Module, name: str) -> nn.Module:
    module = dict(model.named_modules()).get(name)
    if not isinstance(module, SUPPORTED_TYPES):
        raise UnsupportedLayerError(f"mask: layer {name!r} is not an nn.Linear or nn.Conv2d of the model")
    return module


def capture_layer(model: nn.Module, name: str, keep: torch.Tensor, images: torch.Tensor) -> CapturedLayer:
    """Capture ``psi_1`` of layer ``name`` on ``images`` (float64 model from :func:`audit_copy`) and split it by
    ``keep``."""
    module = _module(model, name)
    weight = module.weight.detach()
    keep = torch.as_tensor(keep, dtype=torch.bool).reshape(weight.shape)
    w2d = weight.reshape(weight.shape[0], -1)
    k2d = keep.reshape(weight.shape[0], -1)
    structured = torch.where(k2d, w2d, torch.zeros((), dtype=w2d.dtype))
    removed = w2d - structured
    plan = restart_point(model, name)
    seen: list[torch.Tensor] = []
    states: list[torch.Tensor] = [images] if plan.kind == "full" else []
    handles = [module.register_forward_pre_hook(lambda _m, inputs: seen.append(inputs[0].detach()))]
    if plan.kind != "full":
        start = model.get_submodule(plan.module)
        handles.append(start.register_forward_pre_hook(lambda _m, inputs: states.append(inputs[0].detach())))
    try:
        with torch.no_grad():
            model(images)
            if len(seen) != 1:
                raise UnsupportedLayerError(f"layer {name!r} is called {len(seen)} times per forward pass (need once)")
            x = seen[0]
            step = _layer_op(module, x, removed).reshape(x.shape[0], -1)
    finally:
        for handle in handles:
            handle.remove()
    if len(states) != 1:  # a restart module called more than once: fall back to the full re-run
        plan, states = Restart("full", "", None, model), [images]
    tokens = step.shape[1] // w2d.shape[0]
    return CapturedLayer(
        name=name,
        structured=structured.numpy().astype(np.float64),
        removed=removed.numpy().astype(np.float64),
        products=step.abs().amax(dim=1).numpy().astype(np.float64),
        input_sup=x.reshape(x.shape[0], -1).abs().amax(dim=1).numpy().astype(np.float64),
        tokens=int(tokens),
        restart=Restart(plan.kind, plan.module, states[0], plan.run),
        psi1=x,
    )


class _PathOutput(nn.Module):
    """Stands in for the target during a re-run: ``op(psi_1, S) + theta op(psi_1, R) + bias`` for the rows
    ``theta_j x s`` of a chunk.  Upstream of the target nothing depends on ``theta``, so its input is
    ``psi_1`` tiled; the two products are computed once (``base``, ``step``) instead of per row."""

    def __init__(self, target: nn.Module, base: torch.Tensor, step: torch.Tensor):
        super().__init__()
        self.target, self.base, self.step = [target], base, step
        self.thetas = torch.zeros(1, dtype=torch.float64)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = self.thetas.numel()
        if x.shape[0] != k * self.base.shape[0]:
            raise CertificateInputError(f"re-run: the target received {x.shape[0]} rows, "
                                        f"expected {k} x {self.base.shape[0]}")
        tile = (k, *([1] * (self.base.ndim - 1)))
        theta = self.thetas.repeat_interleave(self.base.shape[0]).reshape(-1, *([1] * (self.base.ndim - 1)))
        return _add_bias(self.target[0], self.base.repeat(tile) + theta * self.step.repeat(tile))


def path_logits(
    model: nn.Module, layer: CapturedLayer, images: torch.Tensor, thetas: np.ndarray, *, restart: bool = True
) -> np.ndarray:
    """``z_{S + theta R}(s)`` for every ``theta`` and image: shape ``(len(thetas), |T|, K)``, float64.

    Re-runs ``model`` (from :func:`audit_copy`) with the target module swapped, for the re-run only, for
    a stand-in returning ``op(psi_1, S) + theta op(psi_1, R) + bias``, batching several ``theta`` values
    per forward pass.  With ``restart`` (default) the re-run starts at ``layer.restart`` from its cached state (the
    images must then be the captured ones); ``restart=False`` re-runs the whole model on ``images``.
    """
    module = _module(model, layer.name)
    if layer.psi1 is None:
        raise CertificateInputError(f"layer {layer.name!r}: the capture holds no psi_1 (use capture_layer)")
    base = _layer_op(module, layer.psi1, torch.from_numpy(layer.structured))
    step = _layer_op(module, layer.psi1, torch.from_numpy(layer.removed))
    n = base.shape[0]
    per_chunk = max(1, MAX_BATCH // n)
    if restart and layer.restart is not None:
        state, run = layer.restart.state, layer.restart.run
    else:
        state, run = images, model
    stand_in = _PathOutput(module, base, step)
    parent_name, _, child = layer.name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    out = []
    setattr(parent, child, stand_in)
    try:
        with torch.no_grad():
            for start in range(0, len(thetas), per_chunk):
                part = torch.as_tensor(np.asarray(thetas[start:start + per_chunk]), dtype=torch.float64)
                stand_in.thetas = part
                z = run(state.repeat(part.numel(), *([1] * (state.ndim - 1))))
                out.append(z.reshape(part.numel(), n, -1).numpy())
    finally:
        setattr(parent, child, module)
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
                f"mask: layer {name!r} keep-tensor shape {tuple(tensor.shape)} != weight shape "
                f"{tuple(module.weight.shape)}"
            )
