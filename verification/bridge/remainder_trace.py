"""Where the remainders of the sound path enclosure grow: a stage-by-stage trace at one point ``theta`` (FINDINGS F22).

:func:`verification.bridge.vit_interval.sound_path_bounds` encloses ``z(theta)`` by Taylor forms whose box remainder
``r`` holds, at a point ``theta``, float64 rounding only.  This runs the same walk
(:func:`verification.bridge.vit_interval.path_stages`) on one sample at one point ``theta`` and records after every
stage ``k`` (``embed``, ``blocks.i``, ``head``):

* ``value``: ``max |c_0|``, the float value of the stage output;
* ``carried``: ``max r`` of the value form (what the engine carries; ``tangent``: the same for ``z'``);
* ``fresh``: ``max r`` when stage ``k`` alone is started from the *point* ``c_0`` of stage ``k - 1`` (its
  value and tangent taken as exact): the rounding the stage itself adds;
* ``composite``: ``max |J_k| r_{k-1}`` with ``J_k`` the float64 Jacobian of stage ``k`` (``torch.func``) at
  ``c_0``: the first-order box-to-box growth of the stage taken as *one* map (a box rule per stage, not per
  operation), against ``carried_k``;
* ``to_logits``: ``max |J_{k -> L}| fresh_k`` with ``J_{k -> L}`` the float64 Jacobian from the stage output to
  the logits: the weight of stage ``k``'s own rounding at the logits if it were propagated by the composite
  Jacobian of the rest instead of stage by stage.

Both Jacobians are dense (NaN beyond :data:`MAX_JACOBIAN_ENTRIES` entries).

``carried`` and ``fresh`` are sound remainders (the engine's own); ``composite`` and ``to_logits`` are float
*estimates* (Jacobians at the float point, first order): a diagnosis of what a non-compounding enclosure could
reach, never a bound.  ``sum_k to_logits_k`` is that first-order ideal of the final remainder.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import nn

from certs.errors import CertificateInputError
from certs.intervals.taylor import TaylorDual, TaylorForm
from verification.bridge.vit_interval import BLOCK_SUBSTAGES, block_substages, path_walk, target_stage
from verification.bridge.vit_views import CapturedLayer

__all__ = ["MAX_JACOBIAN_ENTRIES", "StageTrace", "SubstageTrace", "remainder_trace", "block_breakdown", "float_stage",
           "float_substage", "trace_table", "breakdown_table"]


@dataclass(frozen=True)
class StageTrace:
    """One stage's remainders (module docstring); ``centre``: the stage output's ``c_0`` (the float value, one
    sample); ``composite`` is NaN for the target's own stage (it has no float map from a full block input)."""

    stage: str
    centre: np.ndarray
    value: float
    carried: float
    tangent: float
    fresh: float
    composite: float
    to_logits: float


def float_stage(model: nn.Module, label: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """The float map of a full stage ``'blocks.i'`` (the block) or ``'head'`` (final norm, pooling, head)."""
    if label == "head":
        return lambda x: model.forward_head(model.norm(x))
    if not label.startswith("blocks."):
        raise CertificateInputError(f"stage {label!r}: only blocks.i and head have a float map")
    return model.blocks[int(label.split(".")[1])]


@dataclass(frozen=True)
class SubstageTrace:
    """Inside one block entered with the carried remainder ``r_in``: the engine's ``max r`` after the sub-stage
    (``carried``) and the float estimate ``max |J| r_in`` of the composite map from the block input to it."""

    substage: str
    carried: float
    composite: float


#: Where timm's forward shows each sub-stage of :data:`BLOCK_SUBSTAGES`: (module, ``'input'`` or ``'output'``).
_SUBSTAGE_HOOKS = {"attn.qkv": ("attn.qkv", "output"), "attn.core": ("attn.proj", "input"),
                   "attn.proj": ("attn.proj", "output"), "norm2.input": ("norm2", "input"),
                   "mlp.fc1": ("mlp.fc1", "output"), "mlp.act": ("mlp.act", "output"), "mlp.fc2": ("mlp.fc2", "output"),
                   "output": ("", "output")}


def float_substage(block: nn.Module, label: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """The float map from the block input to sub-stage ``label`` (:data:`BLOCK_SUBSTAGES`), read by a hook from
    timm's own forward of ``block``."""
    if label not in _SUBSTAGE_HOOKS:
        raise CertificateInputError(f"substage {label!r}: expected one of {BLOCK_SUBSTAGES}")
    module_name, side = _SUBSTAGE_HOOKS[label]
    module = block.get_submodule(module_name)

    def run(x: torch.Tensor) -> torch.Tensor:
        seen: list[torch.Tensor] = []
        hook = (module.register_forward_pre_hook(lambda _m, inputs: seen.append(inputs[0])) if side == "input" else
                module.register_forward_hook(lambda _m, _i, out: seen.append(out)))
        try:
            block(x)
        finally:
            hook.remove()
        return seen[0]

    return run


def _point(x: TaylorDual) -> TaylorDual:
    order = x.value.order
    return TaylorDual(TaylorForm.point(x.value.coef[0], order), TaylorForm.point(x.tangent.coef[0], order))


def _rest(fns: list[Callable[[torch.Tensor], torch.Tensor]]) -> Callable[[torch.Tensor], torch.Tensor]:
    def run(x: torch.Tensor) -> torch.Tensor:
        for fn in fns:
            x = fn(x)
        return x

    return run


#: Largest dense Jacobian the trace forms (entries; 2^24 float64 = 128 MiB; reverse mode over more outputs took more
#: than 9 GB at width 192): a ViT-Ti/16 block (197 x 192 inputs and outputs) would need 11 GiB, so its ``composite`` is
#: reported as NaN.
MAX_JACOBIAN_ENTRIES = 2 ** 24


def _abs_jacobian_times(fn: Callable[[torch.Tensor], torch.Tensor], at: torch.Tensor, radius: torch.Tensor) -> float:
    """``max (|J_fn(at)| radius)`` (float64 Jacobian by reverse mode); NaN where the Jacobian would have more than
    :data:`MAX_JACOBIAN_ENTRIES` entries."""
    with torch.no_grad():
        outputs = fn(at).numel()
    if outputs * at.numel() > MAX_JACOBIAN_ENTRIES:
        return float("nan")
    jac = torch.func.jacrev(fn, chunk_size=max(1, 2 ** 20 // at.numel()))(at)  # ~8 MiB of cotangents at a time
    flat = jac.reshape(-1, at.numel()).abs()
    return float((flat @ radius.reshape(-1)).max().detach())


def remainder_trace(model: nn.Module, captured_layer: CapturedLayer, images: torch.Tensor, *, sample: int = 0,
                    theta: float = 1.0, order: int = 1) -> list[StageTrace]:
    """The trace (module docstring) of ``captured_layer`` for image ``sample`` of ``images`` at the point ``theta``,
    Taylor forms of degree ``order`` (``1``: what :func:`sound_path_bounds` uses for points), on the CPU."""
    if not 0 <= sample < images.shape[0]:
        raise CertificateInputError(f"sample: must lie in [0, {images.shape[0]}), got {sample!r}")
    if not 0.0 <= theta <= 1.0:
        raise CertificateInputError(f"theta: must lie in [0, 1], got {theta!r}")
    if isinstance(order, bool) or not isinstance(order, int) or order < 1:
        raise CertificateInputError(f"order: must be an integer >= 1 (Taylor forms), got {order!r}")
    walk = path_walk(model, captured_layer, torch.as_tensor(images), torch.device("cpu"))
    owner = torch.tensor([sample])
    at = torch.tensor([float(theta)], dtype=torch.float64)
    x, rows = walk.start(owner, at, at, order)
    floats = [float_stage(walk.model, label) if label == "head" or _full_block(captured_layer.name, label) else None
              for label, _ in walk.stages]
    out = []
    with torch.no_grad():
        for i, (label, stage) in enumerate(walk.stages):
            before = x
            x = stage(before, rows)
            fresh = stage(_point(before), rows) if i else x
            composite = float("nan")
            if floats[i] is not None:
                with torch.enable_grad():
                    composite = _abs_jacobian_times(floats[i], before.value.coef[0], before.value.r)
            fresh_r = fresh.value.r
            rest = floats[i + 1:]
            with torch.enable_grad():
                to_logits = _abs_jacobian_times(_rest(rest), x.value.coef[0], fresh_r) if rest else float(fresh_r.max())
            centre = x.value.coef[0]
            out.append(StageTrace(label, centre[0].numpy().copy(), float(centre.abs().max()), float(x.value.r.max()),
                                  float(x.tangent.r.max()), float(fresh_r.max()), composite, to_logits))
    return out


def block_breakdown(model: nn.Module, captured_layer: CapturedLayer, images: torch.Tensor, block: int, *,
                    sample: int = 0, theta: float = 1.0, order: int = 1) -> list[SubstageTrace]:
    """The sub-stages of block ``block`` (a whole block downstream of the target) on the path of
    :func:`remainder_trace`: what the engine carries after each, against the composite ``|J| r_in``."""
    label = f"blocks.{block}"
    if not _full_block(captured_layer.name, label) or not 0 <= block < len(model.blocks):
        raise CertificateInputError(f"block: {block!r} is not a whole block downstream of {captured_layer.name!r}")
    walk = path_walk(model, captured_layer, torch.as_tensor(images), torch.device("cpu"))
    at = torch.tensor([float(theta)], dtype=torch.float64)
    x, rows = walk.start(torch.tensor([sample]), at, at, order)
    out = []
    with torch.no_grad():
        for name, stage in walk.stages:
            if name == label:
                break
            x = stage(x, rows)
        blk = walk.model.blocks[block]
        for sub, dual in block_substages(blk, x):
            with torch.enable_grad():
                composite = _abs_jacobian_times(float_substage(blk, sub), x.value.coef[0], x.value.r)
            out.append(SubstageTrace(sub, float(dual.value.r.max()), composite))
    return out


def breakdown_table(rows: list[SubstageTrace], carried_in: float) -> list[str]:
    """Markdown lines of :func:`block_breakdown`, each column also as a factor of the block's input remainder."""
    lines = ["| sub-stage | carried | x input | composite | x input |", "|---|---|---|---|---|"]
    lines += [f"| {row.substage} | {row.carried:.3g} | {row.carried / carried_in:.3g} | {row.composite:.3g} | "
              f"{row.composite / carried_in:.3g} |" for row in rows]
    return lines


def _full_block(name: str, label: str) -> bool:
    """Whether stage ``label`` of target ``name`` is a whole block (not the rest of the target's own block)."""
    part, index = target_stage(name)
    return label.startswith("blocks.") and (part == "embed" or int(label.split(".")[1]) > index)


def trace_table(trace: list[StageTrace]) -> list[str]:
    """Markdown lines of a trace, with the growth factors ``carried_k / carried_{k-1}``."""
    lines = ["| stage | value | carried | x | tangent | fresh | composite | to logits |",
             "|---|---|---|---|---|---|---|---|"]
    previous = None
    for row in trace:
        growth = "" if previous is None or previous == 0 else f"{row.carried / previous:.3g}"
        lines.append(f"| {row.stage} | {row.value:.3g} | {row.carried:.3g} | {growth} | {row.tangent:.3g} | "
                     f"{row.fresh:.3g} | {row.composite:.3g} | {row.to_logits:.3g} |")
        previous = row.carried
    ideal = float(np.sum([row.to_logits for row in trace]))
    lines.append("\nfirst-order non-compounding ideal of the final remainder (sum of to-logits, estimate): "
                 f"{ideal:.3g}")
    return lines
