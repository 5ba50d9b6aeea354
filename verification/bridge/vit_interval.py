"""Sound ``L_s`` and logit-change bounds for the prunable layers of a timm ViT (THEORY.md 3.1, 3.7).

Token convention of :mod:`verification.bridge.vit_views`: the target ``A = S + R`` acts on every token,
``u_s(theta) = (S + theta R) psi_1(s) + bias`` (tokenwise), and ``psi_{2,s}`` is the rest of the network
with the upstream activations of image ``s`` frozen (the residual stream entering the target's block,
and after the attention half for MLP targets).  For ``theta`` in a sub-interval ``[a, b]`` the target
output is enclosed by ``S psi_1 + [a, b] R psi_1 + bias`` (both products as outward-rounded
enclosures of the exact matrix products of the float64 ``psi_1``) with the point-like tangent
``R psi_1``; :mod:`certs.intervals` then propagates value and tangent enclosures (order-4 Taylor
forms in ``theta`` by default, :mod:`certs.intervals.taylor`) through:

* the rest of the target's block: attention core (:func:`certs.intervals.transformer.attention`),
  ``proj``, ``ls1``/``drop_path1``, the residual add with the frozen stream, ``norm2``, ``fc1``,
  GELU (exact or tanh) / ReLU, ``fc2``, ``ls2``/``drop_path2``, residual add;
* for ``patch_embed.proj``: flatten, ``patch_embed.norm``, class/register tokens (constants),
  position embedding, ``norm_pre``;
* every later block, the final ``norm``, token pooling (``'token'`` or ``'avg'``), ``fc_norm``, ``head``.

Dropout / DropPath / Identity are identities (the audit copy is in eval mode).  Any other module on
the way raises :class:`certs.errors.UnsupportedLayerError` naming it, before any bound is computed.
The float64 ``psi_1`` and frozen activations are taken as exact points: the certificate is about the
path through the computed activations (the convention of :mod:`certs.lipschitz`).

Each LayerNorm followed by a linear map (``norm1 -> qkv``, ``norm2 -> fc1``, ``mlp.norm -> fc2``,
``norm -> token -> head``) keeps its two rank-one remainders through that map
(:mod:`certs.intervals.normed`).  Reach: the box remainders still grow through every block (about 2e3 per
block on the default model for a point ``theta``, where they hold rounding errors only; 1.7e4 with boxed
LayerNorms; verification/FINDINGS.md F20), so the earliest layers may exceed ``give_up``; their loose
sub-intervals are split 4x (2x where 4x would exceed ``max_subintervals``), and what still fails raises
:class:`certs.intervals.interval.IntervalDomainError` (never a number).  Order 4 (the default) needs far
fewer sub-intervals than order 2; a layer whose first samples are loose at order 4 switches to order 8
(``loose_order``; the highest with proven GELU derivative errors, :data:`certs.intervals.smooth.GELU_ORDERS`),
and pieces narrower than the start use it too.  The start products ``S psi_1`` and
``R psi_1`` are enclosed in extended precision (:mod:`certs.intervals.extended`): their float64 radius was
the largest rounding source that the blocks amplify.  On the demo's masks every layer is reached at
budget 64 (18 of 18 Hybrid, 16 of 16 CAST 2:4), median sound / estimate 1.00–1.49; CAST 2:4
``blocks.0.attn.qkv`` has a long tail there (p90 10.2), which budget 256 removes (p90 1.35)
(benchmarks/RESULTS-sound-lipschitz.md).

Device: ``device="auto"`` runs the interval forward mode on CUDA when available (else the CPU), after
capturing ``psi_1`` and the frozen streams on the CPU (the same points as the CPU audit's path).  The
rounding analysis holds there too: every bound rests on IEEE float64 ``+ - * / sqrt`` (correctly rounded on
CUDA as on the CPU) and on sums / dot products in *any* order (cuBLAS's tree or split-K reductions
included); the start products are enclosed on the CPU (extended precision) or, in the float64 fallback, with
cuDNN disabled for ``patch_embed.proj`` (its FFT / Winograd algorithms have other error bounds than a dot
product).

``L_s = sup_theta ||z'(theta)||_inf / ||R psi_1(s)||_inf`` (rounded up) is valid for Lemma 5.1 and
Corollary 5.2; :attr:`SoundPathBounds.logit_change` bounds ``sup_{theta in [0, 1]} ||z(theta) - z(1)||_inf``
directly (:mod:`certs.intervals.refinement`).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import nn

from certs.budget import PerSampleLipschitz
from certs.errors import CertificateInputError, UnsupportedLayerError
from certs.intervals import extended
from certs.intervals.blocked import blocked_matmul
from certs.intervals.consolidation import (HalfBound, attention_half_bound, consolidate, consolidate_block, ignore,
                                          layer_norm_stats, mlp_half_bound)
from certs.intervals.dual import Dual
from certs.intervals.interval import EPS, TINY, U, Interval, IntervalDomainError
from certs.intervals.normed import layer_norm_normed
from certs.intervals.refinement import SegmentBounds, path_start, segment_bounds
from certs.intervals.taylor import TaylorDual, TaylorForm
from certs.intervals.transformer import attention, layer_norm

from .vit_views import CapturedLayer, _layer_op, audit_copy

__all__ = ["SoundPathBounds", "sound_path_bounds", "target_stage", "blocks_after", "default_engine", "ESCALATE_RATIO",
           "CONSOLIDATE_AFTER", "CONSOLIDATE_MLP_AFTER", "MLP_ONLY", "CENTRES", "FOLD", "path_stages",
           "capture_streams", "PathWalk", "path_walk", "BLOCK_SUBSTAGES", "block_substages", "check_interval_support",
           "resolve_device", "SOUND_DEVICES", "default_batch", "MAX_BATCH", "BATCH_MEMORY"]

#: Accepted ``device`` values (``"cuda:N"`` too): ``"auto"`` = CUDA when available, else the CPU.
SOUND_DEVICES = ("auto", "cpu", "cuda")
#: Most pieces per evaluator call, and the memory one call may take (:func:`default_batch`).  CPU: 16 keeps the
#: element-wise Taylor products (``_product_sum``, ``compose``: ~81 multiply-adds per order-8 product, most of the
#: CPU time on the default model) in the L2 cache; at 256 pieces their 1-2.4 MB operands stream from memory and the
#: same bounds cost 1.5-2.1x more (default model, 1 thread; RESULTS-sound-lipschitz.md, "CPU batch size").
MAX_BATCH = {"cpu": 16, "cuda": 2048}
BATCH_MEMORY = {"cpu": 2 * 2 ** 30, "cuda": 16 * 2 ** 30}
#: Live float64 tensors of the widest activation's size per piece, with margin (the measured peak on the default
#: model at order 6 is ~16: 3.8 MB per piece for 17 tokens x 256 x 7 coefficients).
_LIVE_TENSORS = 24

_BLOCK_TARGET = re.compile(r"^blocks\.(\d+)\.(attn\.qkv|attn\.proj|mlp\.fc1|mlp\.fc2)$")


@dataclass(frozen=True, eq=False)
class SoundPathBounds:
    """Sound per-sample bounds on the pruning path of one layer.

    lipschitz: ``L_s`` labelled ``sound`` (method
    ``interval-forward-taylor{order}[+{loose_order}]-K{K}[-adaptive][-fold{fold}][-consolidated[-mlp]]``, ``K`` = 1 /
    the narrowest piece before refinement; ``-fold``: the degree folding of :func:`path_stages`; ``-consolidated``:
    the engine of :mod:`certs.intervals.consolidation`, ``-mlp``: at the MLP halves only).
    logit_change: ``(B,)`` sound bound of ``sup_{theta in [0, 1]} ||z(theta) - z(1)||_inf``.
    segments: the sub-intervals and their bounds (``segments.logit_change(theta0)`` for other ranges).
    products: ``||R psi_1(s)||_inf`` used for ``L_s`` (those of the :class:`CapturedLayer`).
    """

    layer: str
    lipschitz: PerSampleLipschitz
    logit_change: np.ndarray
    segments: SegmentBounds
    products: np.ndarray


def target_stage(name: str) -> tuple[str, int | None]:
    """``('embed', None)``, ``('head', None)`` or ``(part, block)`` for
    ``blocks.i.{attn.qkv, attn.proj, mlp.fc1, mlp.fc2}``."""
    if name == "patch_embed.proj":
        return "embed", None
    if name == "head":
        return "head", None
    match = _BLOCK_TARGET.match(name)
    if match is None:
        raise UnsupportedLayerError(
            f"layer {name!r}: interval bounds support patch_embed.proj, blocks.i.attn.qkv/attn.proj/mlp.fc1/mlp.fc2 "
            "and head"
        )
    return match.group(2), int(match.group(1))


#: :func:`sound_path_bounds` consolidates the remainders (:mod:`certs.intervals.consolidation`) by default for targets
#: followed by at least this many whole blocks: the box rules' remainder grows x1e2-x6e4 per block from ~1e-16 and is
#: infinite about five blocks after the target, while the consolidated one grows x3-x10 per block but costs ~2x more
#: per evaluation (on the default model 0.97-4x the CPU per sample: verification/FINDINGS.md F22).
CONSOLIDATE_AFTER = 5

#: :func:`default_engine` consolidates for targets followed by at least this many, and fewer than
#: :data:`CONSOLIDATE_AFTER`, whole blocks: the MLP halves only (:data:`MLP_ONLY`: the tokenwise ``d x d`` Jacobians,
#: cheap) but both halves after an ``attn.qkv`` target (its softmax's truncation enters the next attention halves).
#: Measured (benchmarks/RESULTS-sound-lipschitz.md, "MLP halves only"): the default model's Hybrid
#: ``patch_embed.proj`` (4 blocks after) 17.6 instead of 39.6 evaluations per sample, 1.40x less CPU, median sound
#: ``L_s`` 0.55x the box rules' (both halves: 13.1, but 1.2x the box rules' CPU); the deep model's CAST 2:4
#: ``blocks.7.mlp.fc1`` sound / estimate 1.03 (box rules 6.5, both halves 1.12 at 1.8x the CPU) and
#: ``blocks.7.attn.qkv`` 1.00 with both halves (MLP halves only 14.6, box rules not reached); with 3 blocks after
#: (the default model's ``blocks.0.*``) the MLP halves cost 0.9–1.8x the box rules' CPU for no clear gain.
CONSOLIDATE_MLP_AFTER = 4

#: :func:`sound_path_bounds` escalates from the box rules to :data:`MLP_ONLY` when its probe samples' median sound
#: ``sup ||z'||`` is more than this many times its rigorous lower bound.  Measured
#: (benchmarks/RESULTS-sound-lipschitz.md, "The deep model's blocks.8.*"): the deep model's CAST 2:4
#: ``blocks.8.attn.qkv`` (3 blocks after) is 242x above the estimate on the box rules, 1.87x with the MLP halves; the
#: default model's layers are within 1.6x on the box rules.
ESCALATE_RATIO = 4.0

#: ``consolidated=MLP_ONLY``: the remainders consolidated at the MLP halves only, the attention halves on the box rules.
MLP_ONLY = "mlp"


#: Default ``centres`` of :func:`sound_path_bounds`: on the deep model's CAST 2:4 ``blocks.5.attn.qkv`` (1 image)
#: 65.5 instead of 80.3 CPU s per sample, the same 54 evaluations, sound / estimate 1.06 instead of 1.05
#: (benchmarks/engine_comparison.py --centres 8).
CENTRES = 8

#: Default ``fold`` of :func:`sound_path_bounds`: after every stage but the last the Taylor degree drops to the
#: lowest whose dropped terms are at most this fraction of the remainder already carried
#: (:meth:`certs.intervals.taylor.TaylorDual.reduced`).  Through the blocks after the target the box rules'
#: remainder grows x1e2-x1e3 per block while the high coefficients do not, so on the default model's CAST 2:4
#: ``blocks.0.attn.qkv`` (32 pieces) the MLP half of block 0 runs at degree 7 and blocks 1, 2, 3 at 6, 5, 4 instead of
#: 8 (benchmarks/RESULTS-sound-lipschitz.md, "Degree folding").
FOLD = 1e-3


def default_engine(model: nn.Module, name: str) -> bool | str:
    """The ``consolidated`` that :func:`sound_path_bounds` uses for target ``name`` when given ``None``: ``True`` (both
    halves) where at least :data:`CONSOLIDATE_AFTER` blocks follow it (:func:`blocks_after`); where at least
    :data:`CONSOLIDATE_MLP_AFTER` do, ``True`` for an ``attn.qkv`` target and :data:`MLP_ONLY` for the others;
    ``False`` (box rules) otherwise."""
    after = blocks_after(model, name)
    if after >= CONSOLIDATE_AFTER or (after >= CONSOLIDATE_MLP_AFTER and target_stage(name)[0] == "attn.qkv"):
        return True
    return MLP_ONLY if after >= CONSOLIDATE_MLP_AFTER else False


def blocks_after(model: nn.Module, name: str) -> int:
    """The number of whole blocks the walk from target ``name`` passes (all of them for ``patch_embed.proj``)."""
    part, index = target_stage(name)
    blocks = len(model.blocks)
    return blocks if part == "embed" else 0 if part == "head" else blocks - index - 1


# ---------------------------------------------------------------------------- support checks

def _is_identity(module: nn.Module) -> bool:
    from timm.layers import DropPath

    return isinstance(module, (nn.Identity, nn.Dropout, DropPath))


def _check_norm(module: nn.Module, name: str) -> None:
    if _is_identity(module):
        return
    if not isinstance(module, nn.LayerNorm) or len(module.normalized_shape) != 1:
        raise UnsupportedLayerError(
            f"module {name!r} ({type(module).__name__}) has no interval rule (LayerNorm over the last dim only)")


def _check_scale(module: nn.Module, name: str) -> None:
    from timm.layers import LayerScale

    if not (_is_identity(module) or isinstance(module, LayerScale)):
        raise UnsupportedLayerError(f"module {name!r} ({type(module).__name__}) has no interval rule")


def _check_block(block: nn.Module, name: str) -> None:
    from timm.layers import Attention, Mlp
    from timm.models.vision_transformer import Block

    if type(block) is not Block:
        raise UnsupportedLayerError(
            f"module {name!r} ({type(block).__name__}) is not a timm pre-norm Block: no interval rule")
    attn, mlp = block.attn, block.mlp
    if type(attn) is not Attention or getattr(attn, "gate", None) is not None:
        raise UnsupportedLayerError(
            f"module {name}.attn ({type(attn).__name__}) has no interval rule (plain timm Attention only)")
    for part in ("q_norm", "k_norm", "norm", "attn_drop", "proj_drop"):
        if not _is_identity(getattr(attn, part)):
            raise UnsupportedLayerError(
                f"module {name}.attn.{part} ({type(getattr(attn, part)).__name__}) has no interval rule")
    if type(mlp) is not Mlp or not isinstance(mlp.fc1, nn.Linear) or not isinstance(mlp.fc2, nn.Linear):
        raise UnsupportedLayerError(
            f"module {name}.mlp ({type(mlp).__name__}) has no interval rule (timm Mlp with Linear layers only)")
    if not isinstance(mlp.act, (nn.GELU, nn.ReLU)):
        raise UnsupportedLayerError(
            f"module {name}.mlp.act ({type(mlp.act).__name__}) has no interval rule (GELU or ReLU)")
    for part in ("drop1", "drop2"):
        if not _is_identity(getattr(mlp, part)):
            raise UnsupportedLayerError(f"module {name}.mlp.{part} has no interval rule")
    _check_norm(mlp.norm, f"{name}.mlp.norm")
    _check_norm(block.norm1, f"{name}.norm1")
    _check_norm(block.norm2, f"{name}.norm2")
    for part in ("ls1", "ls2"):
        _check_scale(getattr(block, part), f"{name}.{part}")
    for part in ("drop_path1", "drop_path2"):
        if not _is_identity(getattr(block, part)):
            raise UnsupportedLayerError(f"module {name}.{part} has no interval rule")


def check_interval_support(model: nn.Module, name: str) -> None:
    """Raise :class:`UnsupportedLayerError` naming the first module after ``name`` that has no interval rule."""
    from timm.layers import PatchEmbed
    from timm.models.vision_transformer import VisionTransformer

    if not isinstance(model, VisionTransformer):
        raise UnsupportedLayerError(f"model: {type(model).__name__} is not a timm VisionTransformer (no interval walk)")
    part, index = target_stage(name)
    if part == "embed":
        pe = model.patch_embed
        if type(pe) is not PatchEmbed or not pe.flatten or getattr(model, "dynamic_img_size", False):
            raise UnsupportedLayerError(
                "module 'patch_embed' must be a flattening timm PatchEmbed without dynamic image size")
        _check_norm(pe.norm, "patch_embed.norm")
        for part_name in ("pos_drop", "patch_drop"):
            if not _is_identity(getattr(model, part_name)):
                kind = type(getattr(model, part_name)).__name__
                raise UnsupportedLayerError(f"module {part_name!r} ({kind}) has no interval rule")
        _check_norm(model.norm_pre, "norm_pre")
    if part != "head":
        start = 0 if index is None else index
        for i in range(start, len(model.blocks)):
            _check_block(model.blocks[i], f"blocks.{i}")
        _check_norm(model.norm, "norm")
        if model.attn_pool is not None or model.global_pool not in ("token", "avg"):
            raise UnsupportedLayerError(
                f"pooling {model.global_pool!r} / attn_pool has no interval rule ('token' or 'avg')")
        _check_norm(model.fc_norm, "fc_norm")
        if not _is_identity(model.head_drop):
            raise UnsupportedLayerError("module 'head_drop' has no interval rule")
    if not isinstance(model.head, nn.Linear):
        raise UnsupportedLayerError(
            f"module 'head' ({type(model.head).__name__}) has no interval rule (nn.Linear only)")


# ---------------------------------------------------------------------------- interval walk

def _params(module: nn.Module) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Detached ``(weight, bias)`` of a LayerNorm or Linear (``None`` where absent)."""
    return tuple(None if t is None else t.detach() for t in (module.weight, module.bias))


def _norm(module: nn.Module, x: Dual) -> Dual:
    return x if _is_identity(module) else layer_norm(x, *_params(module), module.eps)


def _norm_linear(norm: nn.Module, linear: nn.Linear, x: Dual, select=None) -> Dual:
    """``linear(select(norm(x)))``; a LayerNorm on Taylor duals keeps its rank-one remainders for the linear map
    (:mod:`certs.intervals.normed`).  ``select``: an indexing of the leading dims (token pooling)."""
    if isinstance(x, TaylorDual) and not _is_identity(norm):
        normed = layer_norm_normed(x, *_params(norm), norm.eps)
        normed = normed if select is None else normed.select(select)
        return normed.linear(*_params(linear))
    y = _norm(norm, x)
    return _linear(linear, y if select is None else y.rearrange(select))


def _scale(module: nn.Module, x: Dual) -> Dual:
    return x if _is_identity(module) else x * module.gamma.detach()


def _linear(module: nn.Linear, x: Dual) -> Dual:
    return x.linear(*_params(module))


def _act(module: nn.Module, x: Dual) -> Dual:
    if isinstance(module, nn.ReLU):
        return x.relu()
    return x.gelu_tanh() if module.approximate == "tanh" else x.gelu()


#: The sub-stages of a block that :func:`_block` reports to its observer, in order (timm module names).
BLOCK_SUBSTAGES = ("attn.qkv", "attn.core", "attn.proj", "norm2.input", "mlp.fc1", "mlp.act", "mlp.fc2", "output")


def _attention_core(block: nn.Module, y: Dual, seen: Callable[[str, Dual], None]) -> Dual:
    """From the ``qkv`` output to the ``proj`` output (the attention probabilities reported as ``'attn.probs'``)."""
    attn = block.attn
    core = attention(y, attn.num_heads, attn.head_dim, float(attn.scale), observe=seen)
    seen("attn.core", core)
    y = _linear(attn.proj, core)
    seen("attn.proj", y)
    return y


def _attention_half(block: nn.Module, x: Dual, seen: Callable[[str, Dual], None]) -> Dual:
    """``x + ls1 proj(attn(qkv(norm1 x)))``: the block input to the ``norm2`` input."""
    y = _norm_linear(block.norm1, block.attn.qkv, x)
    seen("attn.qkv", y)
    x1 = _scale(block.ls1, _attention_core(block, y, seen)) + x
    seen("norm2.input", x1)
    return x1


def _mlp_from(block: nn.Module, y: Dual, x1: Dual | torch.Tensor, at_fc2: bool,
              seen: Callable[[str, Dual], None]) -> Dual:
    """The block output from the ``fc1`` output ``y`` (or the ``fc2`` output where ``at_fc2``) and the stream ``x1``."""
    mlp = block.mlp
    if not at_fc2:
        y = _act(mlp.act, y)
        seen("mlp.act", y)
        y = _norm_linear(mlp.norm, mlp.fc2, y)
        seen("mlp.fc2", y)
    out = _scale(block.ls2, y) + x1
    seen("output", out)
    return out


def _mlp_half(block: nn.Module, x1: Dual, seen: Callable[[str, Dual], None]) -> Dual:
    """``x1 + ls2 fc2(act(fc1(norm2 x1)))``: the ``norm2`` input to the block output."""
    y = _norm_linear(block.norm2, block.mlp.fc1, x1)
    seen("mlp.fc1", y)
    return _mlp_from(block, y, x1, False, seen)


def consolidation_support(block: nn.Module) -> bool:
    """Whether :func:`_consolidated_block` has Jacobian rules for ``block``: LayerNorms ``norm1`` / ``norm2``, no
    ``mlp.norm``, exact GELU or ReLU."""
    act = block.mlp.act
    return (isinstance(block.norm1, nn.LayerNorm) and isinstance(block.norm2, nn.LayerNorm)
            and _is_identity(block.mlp.norm)
            and (isinstance(act, nn.ReLU) or (isinstance(act, nn.GELU) and act.approximate == "none")))


def _layer_scale(module: nn.Module) -> torch.Tensor | None:
    return None if _is_identity(module) else module.gamma.detach()


def _attention_bound(block: nn.Module, value: TaylorForm, seen: dict[str, Dual], remainders: list[torch.Tensor],
                     groups: torch.Tensor | None = None) -> HalfBound:
    attn = block.attn
    heads, dh = attn.num_heads, attn.head_dim
    qkv = seen["attn.qkv"].value.box()
    pieces, n = qkv.shape[0], qkv.shape[1]

    def split(i: int):
        return lambda t: t.reshape(pieces, n, 3, heads, dh)[:, :, i].movedim(2, 1)

    q = qkv.rearrange(split(0)) * float(attn.scale)
    out = seen["attn.core"].value.box().rearrange(lambda t: t.reshape(pieces, n, heads, dh).movedim(2, 1))
    stats = layer_norm_stats(value, block.norm1.eps)
    return attention_half_bound(stats, q, qkv.rearrange(split(1)), qkv.rearrange(split(2)),
                                seen["attn.probs"].value.box(), out, _params(block.norm1)[0], attn.qkv.weight.detach(),
                                attn.proj.weight.detach(), float(attn.scale), _layer_scale(block.ls1), remainders,
                                groups)


def _mlp_bound(block: nn.Module, value: TaylorForm, seen: dict[str, Dual], remainders: list[torch.Tensor],
               groups: torch.Tensor | None = None) -> HalfBound:
    mlp = block.mlp
    stats = layer_norm_stats(value, block.norm2.eps)
    kind = "relu" if isinstance(mlp.act, nn.ReLU) else "gelu"
    return mlp_half_bound(stats, seen["mlp.fc1"].value.box(), _params(block.norm2)[0], mlp.fc1.weight.detach(),
                          mlp.fc2.weight.detach(), kind, _layer_scale(block.ls2), remainders, groups)


#: In the MLP-halves-only mode (:data:`MLP_ONLY`, at most 4 blocks after the target) :func:`_consolidated_block`
#: keeps the box rules for a block whose input remainders are all at most this: they grow at most ~x6e4 through one
#: block (verification/FINDINGS.md F22), so the next block starts below ~1e-5 and is consolidated, at a fraction of
#: the cost.  With both halves consolidated (5 or more blocks after) every block is: the x4e3 of one box block
#: compounds through every later block (F24; the deep model's ``blocks.0.attn.qkv`` point enclosure is unbounded
#: at block 9 with the threshold, 8.9e-4 at the logits without).
CONSOLIDATE_ABOVE = 1e-10


def _consolidated_block(block: nn.Module, x: Dual, groups: torch.Tensor | None = None, attention: bool = True,
                        fold: Callable[[Dual], Dual] | None = None) -> Dual:
    """A whole block on Taylor duals with the remainders consolidated through the block's composite Jacobian
    (:func:`certs.intervals.consolidation.consolidate_block`, one centre Jacobian per half and group of pieces
    ``groups``); where not ``attention``, at the MLP half only (:func:`~certs.intervals.consolidation.consolidate`) and
    the attention half on
    the box rules where not ``attention`` (then ``fold``, optional, is applied to the ``norm2`` input as in
    :func:`_block`); the plain rules where :func:`consolidation_support` fails, ``x`` is not a :class:`TaylorDual` or,
    where not ``attention``, its remainders are all at most :data:`CONSOLIDATE_ABOVE`."""
    if not (isinstance(x, TaylorDual) and consolidation_support(block)) or (not attention and max(
            float(x.value.r.max()), float(x.tangent.r.max())) <= CONSOLIDATE_ABOVE):
        return _block(block, x, "input", {}, fold=None if attention else fold)
    n, d = x.shape[-2], x.shape[-1]
    mlp_entries = n * d * block.mlp.fc1.out_features

    def mlp_half(dual, seen):
        return _mlp_half(block, dual, seen)

    def mlp_bound(value, seen, rs, g):
        return _mlp_bound(block, value, seen, rs, g)

    if attention:
        return consolidate_block(lambda dual, seen: _attention_half(block, dual, seen), mlp_half, x,
                                 lambda value, seen, rs, g: _attention_bound(block, value, seen, rs, g), mlp_bound,
                                 max(n * d * d, mlp_entries), groups)
    x1 = _attention_half(block, x, ignore)
    return consolidate(mlp_half, x1 if fold is None else fold(x1), mlp_bound, mlp_entries, groups)


def _block(block: nn.Module, start: Dual | None, part: str, frozen: dict[str, torch.Tensor],
           observe: Callable[[str, Dual], None] | None = None, fold: Callable[[Dual], Dual] | None = None) -> Dual:
    """Block output from the dual ``start`` entering at ``part`` (``'input'`` = block input); ``observe(label, dual)``
    (optional) receives the outputs of the sub-stages :data:`BLOCK_SUBSTAGES` that are computed (and
    ``'attn.probs'``); ``fold`` (optional) is applied to the ``norm2`` input (:func:`path_stages`)."""
    at = ("input", "attn.qkv", "attn.proj", "mlp.fc1", "mlp.fc2").index(part)
    seen = observe if observe is not None else ignore
    if at == 0:
        x1 = _attention_half(block, start, seen)
    elif at <= 2:
        y = _attention_core(block, start, seen) if at == 1 else start
        x1 = _scale(block.ls1, y) + frozen["x"]
        seen("norm2.input", x1)
    else:
        return _mlp_from(block, start, frozen["x1"], at == 4, seen)
    return _mlp_half(block, x1 if fold is None else fold(x1), seen)


def block_substages(block: nn.Module, x: Dual) -> list[tuple[str, Dual]]:
    """The sub-stage outputs (:data:`BLOCK_SUBSTAGES`) of a whole block entered at its input ``x``."""
    seen: list[tuple[str, Dual]] = []
    _block(block, x, "input", {}, lambda label, dual: seen.append((label, dual)) if label in BLOCK_SUBSTAGES else None)
    return seen


def _embed_tail(model: nn.Module, conv_out: Dual) -> Dual:
    """From the patch conv output ``(P, C, H, W)`` to the input of block 0."""
    x = _norm(model.patch_embed.norm, conv_out.rearrange(lambda t: t.flatten(2).transpose(1, 2)))
    p = x.shape[0]
    prefix = [tok.detach().expand(p, -1, -1) for tok in (model.cls_token, model.reg_token) if tok is not None]
    pos = None if model.pos_embed is None else model.pos_embed.detach()
    kind = type(x)
    if model.no_embed_class:
        x = x if pos is None else x + pos
        x = kind.cat([x.constant_like(t) for t in prefix] + [x], 1) if prefix else x
    else:
        x = kind.cat([x.constant_like(t) for t in prefix] + [x], 1) if prefix else x
        x = x if pos is None else x + pos
    return _norm(model.norm_pre, x)


def _head_tail(model: nn.Module, x: Dual) -> Dual:
    if model.global_pool == "token" and _is_identity(model.fc_norm):
        return _norm_linear(model.norm, model.head, x, select=lambda t: t[:, 0])
    x = _norm(model.norm, x)
    if model.global_pool == "token":
        x = x.rearrange(lambda t: t[:, 0])
    else:
        x = x if model.pool_include_prefix else x.rearrange(lambda t: t[:, model.num_prefix_tokens:])
        x = x.mean(1)
    return _linear(model.head, _norm(model.fc_norm, x))


#: One step of the walk: ``(dual, frozen rows) -> dual`` (the frozen streams of the pieces' samples).
Stage = Callable[[Dual, dict[str, torch.Tensor]], Dual]
#: The key of the frozen rows under which :meth:`PathWalk.start` passes the centre groups of the pieces.
CENTRE_GROUP = "centre group"


def path_stages(model: nn.Module, name: str, consolidated: bool | str = False,
                fold: float | None = None) -> list[tuple[str, Stage]]:
    """The walk from the output of target ``name`` to the logits as named stages (module docstring):
    ``'embed'`` (patch conv output to the input of block 0), ``'blocks.i'`` (the rest of the target's block, then
    every later block, each to its output), ``'head'`` (final norm, pooling, head); none for ``head``.  Composing
    them is the evaluator of :func:`sound_path_bounds`; :mod:`verification.bridge.remainder_trace` observes the
    remainders between them.  ``fold``: the Taylor duals leaving every stage but the last, and the ``norm2`` input of
    the plain blocks, are :meth:`certs.intervals.taylor.TaylorDual.reduced` with this tolerance (``None``: never).
    ``consolidated``: the blocks after the target's by :func:`_consolidated_block` (``True``: both halves,
    :data:`MLP_ONLY`: the MLP halves only)."""
    part, index = target_stage(name)
    if part == "head":
        return []
    reduce = None if fold is None else (lambda x: x.reduced(fold) if isinstance(x, TaylorDual) else x)
    blocks = list(model.blocks)
    if part == "embed":
        stages: list[tuple[str, Stage]] = [("embed", lambda x, rows: _embed_tail(model, x))]
        first = 0
    else:
        stages = [(f"blocks.{index}", lambda x, rows: _block(blocks[index], x, part, rows, fold=reduce))]
        first = index + 1
    if consolidated:
        attention = consolidated != MLP_ONLY
        stages += [(f"blocks.{i}", lambda x, rows, blk=blocks[i]: _consolidated_block(
            blk, x, rows.get(CENTRE_GROUP), attention, reduce)) for i in range(first, len(blocks))]
    else:
        stages += [(f"blocks.{i}", lambda x, rows, blk=blocks[i]: _block(blk, x, "input", rows, fold=reduce))
                   for i in range(first, len(blocks))]
    if reduce is not None:
        stages = [(label, lambda x, rows, stage=stage: reduce(stage(x, rows))) for label, stage in stages]
    return stages + [("head", lambda x, rows: _head_tail(model, x))]


def capture_streams(model: nn.Module, name: str, images: torch.Tensor) -> dict[str, torch.Tensor]:
    """``psi_1`` (``'psi'``) of target ``name`` and the frozen residual streams ``'x'`` (block input) / ``'x1'``
    (``norm2`` input) of its block, on ``images`` (one forward pass of ``model``)."""
    _, index = target_stage(name)
    modules = dict(model.named_modules())
    seen: dict[str, list[torch.Tensor]] = {}
    hooks = {"psi": modules[name]}
    if index is not None:
        hooks["x"] = model.blocks[index]
        hooks["x1"] = model.blocks[index].norm2
    def hook(key: str):
        return lambda _m, inputs: seen.setdefault(key, []).append(inputs[0].detach())

    handles = [m.register_forward_pre_hook(hook(key)) for key, m in hooks.items()]
    try:
        with torch.no_grad():
            model(images)
    finally:
        for h in handles:
            h.remove()
    for key, values in seen.items():
        if len(values) != 1:
            raise UnsupportedLayerError(
                f"module for {key!r} of layer {name!r} is called {len(values)} times per forward (need once)")
    return {key: values[0] for key, values in seen.items()}


def resolve_device(spec: str | torch.device, argument: str = "device") -> torch.device:
    """The torch device for ``spec`` (:data:`SOUND_DEVICES` or ``"cuda:N"``); :class:`CertificateInputError`
    naming ``argument`` for an unknown value or CUDA asked for where there is none."""
    text = str(spec)
    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if not re.fullmatch(r"cpu|cuda(:\d+)?", text):
        raise CertificateInputError(f"{argument}: expected one of {SOUND_DEVICES} or 'cuda:N', got {spec!r}")
    device = torch.device(text)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise CertificateInputError(
            f"{argument}: {text!r} asked for, but torch finds no CUDA device (use 'auto' or 'cpu')")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise CertificateInputError(
            f"{argument}: {text!r} asked for, but torch sees {torch.cuda.device_count()} CUDA device(s)")
    return device


def default_batch(device: torch.device, tokens: int, width: int, order: int) -> int:
    """Pieces per evaluator call: at most :data:`MAX_BATCH` (CPU: cache-sized; CUDA: fills the GPU), and few enough
    that ``_LIVE_TENSORS`` Taylor tensors of the widest activation (``tokens x width x (order + 1)`` float64) per
    piece fit in :data:`BATCH_MEMORY` (on CUDA also in half the free memory).  Default model: 16 / 2048; a
    ViT-B/16 (197 tokens, width 3072, order 6): 2 / 21."""
    per_piece = _LIVE_TENSORS * tokens * width * (order + 1) * 8
    memory = BATCH_MEMORY[device.type]
    if device.type == "cuda":
        memory = min(memory, torch.cuda.mem_get_info(device)[0] // 2)
    return int(max(1, min(MAX_BATCH[device.type], memory // per_piece)))


def _widest(model: nn.Module) -> tuple[int, int]:
    """``(tokens, width)`` of the largest activation on the path: every token, the widest Linear of the blocks."""
    tokens = model.patch_embed.num_patches + model.num_prefix_tokens
    width = max([model.embed_dim] + [m.out_features for m in model.blocks.modules() if isinstance(m, nn.Linear)])
    return int(tokens), int(width)


def _product_enclosure(module: nn.Module, psi: torch.Tensor, weight2d: torch.Tensor) -> Interval:
    """Enclosure of the exact ``op(psi, W)`` (Linear or Conv2d, no bias).

    Where numpy's ``longdouble`` has extended precision: accumulated in it and rounded once,
    radius ``u |mid|`` plus a ``1e-18`` relative term (:mod:`certs.intervals.extended`; grouped convolutions
    excepted).  Else float64: float result +- ``(units + 3) u op(|psi|, |W|)`` with ``units = m + 1``
    (convolution) or the :func:`certs.intervals.blocked.blocked_matmul` units (Linear); the computed
    magnitude is within ``gamma_m <= (m + 1) u`` of the exact one (hence the extra factor)."""
    if extended.AVAILABLE and isinstance(module, nn.Linear):
        return extended.extended_matmul_enclosure(psi, weight2d)
    if extended.AVAILABLE and module.groups == 1:
        return extended.extended_conv2d_enclosure(psi, weight2d.reshape(module.weight.shape), module.stride,
                                                  module.padding, module.dilation)
    m = weight2d.shape[1]
    with torch.backends.cudnn.flags(enabled=False):  # no FFT / Winograd convolutions on CUDA (module docstring)
        if isinstance(module, nn.Linear):
            mid, units = blocked_matmul(psi, weight2d.T)
        else:
            mid, units = _layer_op(module, psi, weight2d), m + 1
        mag = _layer_op(module, psi.abs(), weight2d.abs())
    return Interval.around(mid, (units + 3) * U * mag * (1 + (m + 1) * EPS) + (m + 1) * TINY)


@dataclass(frozen=True, eq=False)
class PathWalk:
    """Everything the evaluator of :func:`sound_path_bounds` needs, on ``device``: the float64 eval copy ``model``,
    the enclosures ``base`` / ``step`` of the exact ``S psi_1`` / ``R psi_1`` (:func:`_product_enclosure`), the
    target's ``bias`` (shaped for its output), the frozen streams (:func:`capture_streams`) and the
    :func:`path_stages`."""

    model: nn.Module
    base: Interval
    step: Interval
    bias: torch.Tensor | None
    frozen: dict[str, torch.Tensor]
    stages: list[tuple[str, Stage]]
    centres: int | None = None

    def start(self, owner: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor,
              degree: int) -> tuple[Dual, dict[str, torch.Tensor]]:
        """The target output on the pieces ``(owner[j], [lo[j], hi[j]])`` (:func:`path_start` at ``degree``) and the
        frozen rows of their samples; with ``centres`` set, under :data:`CENTRE_GROUP` the groups of pieces that share
        a centre Jacobian in the consolidated stages: those of one sample whose midpoints fall in the same of
        ``centres`` equal parts of ``[0, 1]``."""
        shape = (-1,) + (1,) * (self.base.lo.ndim - 1)
        x = path_start(self.base.rearrange(lambda t: t[owner]), self.step.rearrange(lambda t: t[owner]),
                       lo.reshape(shape), hi.reshape(shape), self.bias, degree)
        rows = {key: value[owner] for key, value in self.frozen.items()}
        if self.centres is not None:
            part = torch.clamp(((lo + hi) * (0.5 * self.centres)).long(), 0, self.centres - 1)
            rows[CENTRE_GROUP] = torch.unique(owner.to(part.device) * self.centres + part, return_inverse=True)[1]
        return x, rows


def path_walk(model: nn.Module, captured_layer: CapturedLayer, images: torch.Tensor, device: torch.device,
              consolidated: bool | str = False, centres: int | None = None, fold: float | None = None) -> PathWalk:
    """The :class:`PathWalk` of ``captured_layer`` on ``images`` (checked: :func:`check_interval_support`, the shapes
    of ``S``).  ``psi_1`` and the frozen streams are captured on the CPU, then moved to ``device``; ``consolidated``
    / ``centres`` / ``fold``: see :func:`sound_path_bounds`."""
    work = audit_copy(model).cpu()
    check_interval_support(work, captured_layer.name)
    frozen = capture_streams(work, captured_layer.name, images.to(device="cpu", dtype=torch.float64))
    frozen = {key: value.to(device) for key, value in frozen.items()}
    work = work.to(device)
    module = dict(work.named_modules())[captured_layer.name]
    psi = frozen.pop("psi")
    structured = torch.as_tensor(captured_layer.structured, device=device)
    removed = torch.as_tensor(captured_layer.removed, device=device)
    if structured.shape[0] != module.weight.shape[0] or structured.numel() != module.weight.numel():
        raise CertificateInputError(f"captured_layer: S has shape {tuple(structured.shape)}, layer "
                                    f"{captured_layer.name!r} has weight {tuple(module.weight.shape)}")
    with torch.no_grad():
        base = _product_enclosure(module, psi, structured)
        step = _product_enclosure(module, psi, removed)
    bias = None if module.bias is None else module.bias.detach()
    if bias is not None and isinstance(module, nn.Conv2d):
        bias = bias[:, None, None]
    return PathWalk(work, base, step, bias, frozen, path_stages(work, captured_layer.name, consolidated, fold),
                    centres if consolidated else None)


def _engine_run(model: nn.Module, captured_layer: CapturedLayer, images: torch.Tensor, consolidated: bool | str,
                count: int, *,
                subintervals: int, refine: int, rtol: float, max_subintervals: int, batch: int | None,
                device: torch.device, order: int, give_up: float | None, loose_order: int | None, probe: int,
                centres: int | None, fold: float | None):
    """The segment bounds of :func:`sound_path_bounds` on the first ``count`` samples of ``images`` with one engine,
    and the Taylor degrees used (``"8"`` or ``"4+8"``)."""
    walk = path_walk(model, captured_layer, images, device, consolidated, centres, fold)
    if batch is None:
        batch = default_batch(device, *_widest(walk.model), max(order, loose_order or 0))

    def evaluate(owner: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor):
        # a batch of points theta (midpoints, theta = 1) has no tail: order 1 encloses it as tightly, ~4x cheaper;
        # pieces narrower than the start (loose pieces split 4x, halved pieces) are evaluated at loose_order
        if torch.equal(lo, hi):
            degree = min(used[0], 1)
        elif escalate and float((hi - lo).min()) < 0.99 / subintervals:
            degree, used[1] = loose_order, True
        else:
            degree = used[0]
        x, rows = walk.start(owner, lo, hi, degree)
        for _, stage in walk.stages:
            x = stage(x, rows)
        return x

    used = [order, False]  # the Taylor degree of the start pieces; whether narrower pieces used loose_order
    escalate = loose_order is not None and loose_order > order
    n = count  # the samples run: 0 .. count - 1
    with torch.inference_mode():  # the same arithmetic as no_grad, without autograd's per-op bookkeeping
        if give_up is not None and loose_order is not None and loose_order != order and probe > 0:
            try:
                segment_bounds(evaluate, min(probe, n), subintervals=subintervals,
                               max_subintervals=min(subintervals, max_subintervals),
                               batch=batch, device=device, give_up=give_up, probe=0)
                probe = 0  # the probe samples needed no split at `order`: a second probe would repeat this one
            except IntervalDomainError:
                used[0] = loose_order
        segments = segment_bounds(evaluate, n, subintervals=subintervals, refine=refine, rtol=rtol,
                                  max_subintervals=max_subintervals, batch=batch, device=device, give_up=give_up,
                                  probe=probe)
    return segments, (f"{used[0]}+{loose_order}" if used[1] and used[0] != loose_order else f"{used[0]}")


def sound_path_bounds(
    model: nn.Module, captured_layer: CapturedLayer, images: torch.Tensor, *, subintervals: int = 8, refine: int = 4,
    rtol: float = 0.25, max_subintervals: int = 64, batch: int | None = None, device: str | torch.device = "auto",
    order: int = 4, give_up: float | None = 1e6, loose_order: int | None = 8, probe: int = 4,
    consolidated: bool | str | None = None, centres: int | None = CENTRES, fold: float | None = FOLD,
    escalate_engine: bool = True,
) -> SoundPathBounds:
    """Sound ``L_s`` and logit-change bounds for ``captured_layer`` on ``images`` (module docstring).

    ``model``: the timm ViT (any dtype; a float64 eval copy is made); ``captured_layer`` from
    :func:`verification.bridge.vit_views.capture_layer` on the same ``images``; ``subintervals`` / ``refine``
    / ``rtol`` / ``max_subintervals`` / ``give_up``: see :func:`certs.intervals.refinement.segment_bounds`;
    ``device``: where the interval forward mode runs (:func:`resolve_device`; ``"auto"``: CUDA when
    available); ``batch``: pieces per evaluation (``None``: :func:`default_batch`); ``order``: degree of
    the Taylor forms in ``theta`` (:mod:`certs.intervals.taylor`; default 4), ``0`` = plain intervals
    (which explode through attention blocks: kept for comparison).  ``loose_order``: with ``give_up`` set,
    the first ``probe`` samples are tried at ``order`` on the ``subintervals`` start without splitting; if
    one is loose, the whole layer uses ``loose_order`` instead; otherwise the pieces narrower than the start
    (loose pieces split 4x, pieces halved by the refinement) use it (method ``taylor4+8``; ``None``: never).
    On the default model order 6 is 1.3–1.5x dearer per evaluation than order 4 but needs far fewer pieces on
    the attention ``qkv`` layers (e.g. Hybrid ``blocks.1.attn.qkv``: 40 instead of 152 evaluations per sample,
    3x faster; CAST 2:4 ``blocks.1.attn.qkv`` is only reached at order 6), and order 8 (1.5x dearer than 6)
    fewer still on the loose layers (``blocks.0.attn.qkv``: 22 instead of 58 evaluations per sample on Hybrid,
    86 instead of 214 on CAST 2:4, with tighter bounds; benchmarks/RESULTS-sound-lipschitz.md, "Speed").
    ``consolidated``: the remainders consolidated at every residual half of the blocks after the target
    (:mod:`certs.intervals.consolidation`; method suffix ``-consolidated``), :data:`MLP_ONLY` at the MLP halves only
    (suffix ``-consolidated-mlp``); ``None``: :func:`default_engine`.  ``centres``: with
    ``consolidated``, the pieces of a sample in the same of ``centres`` equal parts of ``[0, 1]`` share one centre
    Jacobian (:attr:`PathWalk.centres`; ``None``: one per piece; default :data:`CENTRES`); where both halves are
    consolidated and the enclosure blows up with shared centres, the layer is run again with a centre per piece
    (method suffix ``-own-centres``; the deep model's ``patch_embed.proj``: FINDINGS F25).  ``fold``: after each
    stage but the last and at the ``norm2`` input of each block, the Taylor degree is lowered where the dropped terms
    are at most ``fold`` times the remainder (:func:`path_stages`, :meth:`certs.intervals.taylor.TaylorDual.reduced`;
    sound for any value; ``None``: never; default :data:`FOLD`).  ``escalate_engine``: where ``consolidated`` is
    ``None`` and :func:`default_engine` picks the box rules for a target with blocks after it, the first ``probe``
    samples run on the box rules first (the whole refinement), and if their median sound ``sup ||z'||`` ÷ its
    rigorous lower bound (``SegmentBounds.derivative_lower``) exceeds :data:`ESCALATE_RATIO`, the layer runs with the
    MLP halves consolidated (:data:`MLP_ONLY`) instead; otherwise the box rules go on (with at most ``probe`` samples
    the probe is the result).  Every bound is sound either way: the choice only steers tightness and cost.
    """
    if fold is not None and not (isinstance(fold, (int, float)) and math.isfinite(fold) and fold >= 0):
        raise CertificateInputError(f"fold: must be a finite number >= 0 or None, got {fold!r}")
    for label, value in (("order", order), ("loose_order", 0 if loose_order is None else loose_order)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise CertificateInputError(f"{label}: must be an integer >= 0, got {value!r}")
    images = torch.as_tensor(images)
    if images.ndim != 4 or images.shape[0] != captured_layer.products.shape[0]:
        raise CertificateInputError(
            f"images: expected (N, C, H, W) with N = {captured_layer.products.shape[0]} (the captured samples), "
            f"got {tuple(images.shape)}"
        )
    if consolidated is None:
        consolidated = default_engine(model, captured_layer.name)
    else:
        escalate_engine = False
    if consolidated not in (True, False, MLP_ONLY):
        raise CertificateInputError(f"consolidated: must be True, False, {MLP_ONLY!r} or None, got {consolidated!r}")
    device = resolve_device(device)
    settings = dict(subintervals=subintervals, refine=refine, rtol=rtol, max_subintervals=max_subintervals,
                    batch=batch, device=device, order=order, give_up=give_up, loose_order=loose_order, probe=probe,
                    centres=centres, fold=fold)
    n, run = int(images.shape[0]), None
    if escalate_engine and consolidated is False and blocks_after(model, captured_layer.name) > 0 and probe > 0:
        run = _engine_run(model, captured_layer, images, False, min(probe, n), **settings)
        lower = np.maximum(run[0].derivative_lower, np.finfo(float).tiny)
        if float(np.median(run[0].derivative / lower)) > ESCALATE_RATIO:
            consolidated, run = MLP_ONLY, None
        elif probe < n:
            run = None  # the probe samples only: the layer runs on all of them below
    own_centres = False
    try:
        segments, degrees = run or _engine_run(model, captured_layer, images, consolidated, n, **settings)
    except IntervalDomainError:
        if consolidated is not True or centres is None:
            raise
        # shared centres leave the pieces at a group's edges ~x100 looser (FINDINGS F25): a centre per piece
        own_centres, settings["centres"] = True, None
        segments, degrees = _engine_run(model, captured_layer, images, consolidated, n, **settings)
    method = (f"interval-forward-taylor{degrees}-K{segments.subintervals}" + ("-adaptive" if refine else "")
              + ("" if fold is None else f"-fold{fold:g}") + ("-consolidated" if consolidated else "")
              + ("-mlp" if consolidated == MLP_ONLY else "") + ("-own-centres" if own_centres else ""))
    return SoundPathBounds(
        layer=captured_layer.name,
        lipschitz=segments.lipschitz(captured_layer.products, method),
        logit_change=segments.logit_change(0.0),
        segments=segments,
        products=np.asarray(captured_layer.products, dtype=np.float64),
    )
