"""2:4 packed storage and execution (ALGORITHMS.md 8.1).

Packed format of a ``(d_out, d_in)`` 2:4 weight (``d_in % 4 == 0``, ``G = d_in / 4`` groups per row):

* ``values``: ``(d_out, d_in / 2)``, the two kept values of every group in ascending position order;
* ``codes``: ``(d_out, G)`` uint8, ``p0 | (p1 << 2)`` with the kept positions ``p0 < p1`` in
  ``{0, 1, 2, 3}`` (2 bits each).

``pack_24(W, keep)`` packs exactly the ``keep`` slots (each group must keep exactly 2); without
``keep`` the nonzeros are packed (a group with more than 2 nonzeros is not 2:4), topped up with the
lowest zero positions.  ``unpack_24`` scatters back; the round trip is exact.

:class:`SparseLinear24` runs a Linear from the packed form.  By default it decompresses the packed
weight and calls ``F.linear`` (the reference execution, ``execution == "packed-reference"``: no
speed claim).  :meth:`SparseLinear24.use_kernel` switches it to one kernel of
:mod:`pruning.kernels24` — cuSPARSELt with a searched algorithm and fused transpose (the CUDA
default), ``to_sparse_semi_structured``, or the dense fallback — and
:func:`pruning.fallback24.tune_24` picks, per layer, the faster of 2:4 and dense from measured
times.  Moving or casting the module drops its kernel (back to the reference execution), so a
kernel is always built for the device and dtype it runs on.  An input permutation ``pi`` of the
mask (7.5) is an explicit buffer of the module: it computes ``W[:, pi] @ x[..., pi]`` — never a
hidden hook (the dense fallback multiplies the unpermuted ``W`` and skips the gather).

A converted model's ``state_dict`` (``values``, ``codes``, ``bias``, ``input_permutation`` of every
:class:`SparseLinear24`) is its 2:4 checkpoint: :func:`load_24` rebuilds the 2:4-executing model
from a freshly built dense model of the same architecture and that checkpoint.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .errors import MaskMismatchError, PatternError
from .kernels24 import make_kernel
from .kn_patterns import PATTERN_24, check_kn_groups
from .mask import Mask

__all__ = ["Packed24", "pack_24", "unpack_24", "SparseLinear24", "to_linear", "convert_to_24", "convert_to_dense",
           "load_24", "REFERENCE_EXECUTION"]

#: ``SparseLinear24.execution`` without a kernel: unpack the 2:4 weight and ``F.linear`` (any device)
REFERENCE_EXECUTION = "packed-reference"


@dataclass(frozen=True)
class Packed24:
    """Kept values ``(d_out, d_in/2)`` and 2-bit position codes ``(d_out, d_in/4)`` uint8."""

    values: torch.Tensor
    codes: torch.Tensor

    @property
    def shape(self) -> tuple[int, int]:
        return self.values.shape[0], 2 * self.values.shape[1]


def pack_24(weight: torch.Tensor, keep: torch.Tensor | None = None, *, name: str = "weight") -> Packed24:
    """Pack a 2:4 weight (module docstring); :class:`PatternError` names the layer, row and group."""
    if weight.ndim != 2 or weight.shape[1] % 4:
        raise PatternError(f"{name}: 2:4 packing needs a 2-D weight with d_in % 4 == 0, "
                           f"got shape {tuple(weight.shape)}")
    d_out, d_in = weight.shape
    if keep is None:
        nonzero = (weight != 0).reshape(d_out, -1, 4)
        counts = nonzero.sum(dim=2)
        bad = torch.nonzero(counts > 2)
        if bad.numel():
            row, group = (int(v) for v in bad[0])
            raise PatternError(f"{name}: row {row}, group {group} has {int(counts[row, group])} nonzeros; not 2:4")
        # top up groups with fewer than 2 nonzeros with their lowest zero positions
        zero_rank = torch.cumsum((~nonzero).to(torch.int8), dim=2)
        slots = nonzero | (~nonzero & (zero_rank <= (2 - counts)[..., None]))
    else:
        check_kn_groups(keep.reshape(d_out, d_in), PATTERN_24, name)
        slots = keep.reshape(d_out, -1, 4).bool()
    # exactly two slots per group; nonzero() lists them row-major, i.e. ascending within each group
    positions = torch.nonzero(slots.reshape(-1, 4))[:, 1].reshape(d_out, -1, 2)
    values = torch.gather(weight.reshape(d_out, -1, 4), 2, positions).reshape(d_out, d_in // 2)
    small = positions.to(torch.uint8)
    codes = small[..., 0] | (small[..., 1] << 2)
    return Packed24(values=values.contiguous(), codes=codes.contiguous())


def _positions(codes: torch.Tensor) -> torch.Tensor:
    c = codes.to(torch.int64)
    return torch.stack([c & 3, (c >> 2) & 3], dim=-1)


def unpack_24(packed: Packed24) -> torch.Tensor:
    """The dense ``(d_out, d_in)`` weight of a :class:`Packed24` (zeros off the kept slots)."""
    d_out, d_in = packed.shape
    dense = torch.zeros(d_out, d_in // 4, 4, dtype=packed.values.dtype, device=packed.values.device)
    dense.scatter_(2, _positions(packed.codes).to(dense.device), packed.values.reshape(d_out, -1, 2))
    return dense.reshape(d_out, d_in)


class SparseLinear24(nn.Module):
    """``y = W x + b`` with ``W`` held in the 2:4 packed form (module docstring)."""

    def __init__(self, packed: Packed24, bias: torch.Tensor | None = None,
                 input_permutation: torch.Tensor | None = None,
                 *, name: str = "SparseLinear24"):
        super().__init__()
        self.out_features, self.in_features = packed.shape
        self.register_buffer("values", packed.values.detach().clone())
        self.register_buffer("codes", packed.codes.detach().clone())
        self.bias = None if bias is None else nn.Parameter(bias.detach().clone())
        self.register_buffer("input_permutation", None if input_permutation is None else input_permutation.long())
        self.layer_name = name
        self._kernel = None

    @property
    def packed(self) -> Packed24:
        return Packed24(self.values, self.codes)

    @property
    def execution(self) -> str:
        """The kernel forward uses now (:data:`pruning.kernels24.KERNELS`) or :data:`REFERENCE_EXECUTION`."""
        return REFERENCE_EXECUTION if self._kernel is None else self._kernel.name

    @property
    def kernel(self):
        """The active :mod:`pruning.kernels24` kernel, or ``None`` (reference execution)."""
        return self._kernel

    def dense_weight(self) -> torch.Tensor:
        """The weight in the module's input order (permutation applied to the columns)."""
        return unpack_24(self.packed)

    def unpermuted_weight(self) -> torch.Tensor:
        """The weight in the original input order (the permutation folded back): ``W`` with
        ``W[:, pi] = dense_weight()``."""
        w = self.dense_weight()
        if self.input_permutation is None:
            return w
        unpermuted = torch.empty_like(w)
        unpermuted[:, self.input_permutation] = w
        return unpermuted

    def use_kernel(self, kind: str = "cusparselt", *, probe_tokens: int = 4096) -> "SparseLinear24":
        """Run forward through the kernel ``kind`` of :mod:`pruning.kernels24` (built for the current device/dtype).

        ``probe_tokens`` is the token count the cuSPARSELt algorithm search runs on (use the deployed one).
        ``kind == REFERENCE_EXECUTION`` drops the kernel (:meth:`use_reference`).  Raises
        :class:`pruning.errors.KernelUnavailableError` where the kernel cannot run (no CUDA, dtype, shape).
        """
        if kind == REFERENCE_EXECUTION:
            return self.use_reference()
        with torch.no_grad():
            bias = None if self.bias is None else self.bias.detach()
            self._kernel = make_kernel(kind, self.dense_weight(), self.unpermuted_weight(), bias,
                                       probe_tokens=probe_tokens, layer=self.layer_name)
        return self

    def use_reference(self) -> "SparseLinear24":
        """Drop the kernel: forward unpacks the weight on every call (:data:`REFERENCE_EXECUTION`)."""
        self._kernel = None
        return self

    def _apply(self, fn, *args, **kwargs):
        self._kernel = None  # a kernel holds device/dtype-specific tensors: rebuild after .to() / .half() / .cuda()
        return super()._apply(fn, *args, **kwargs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kernel = self._kernel
        if kernel is None:
            if self.input_permutation is not None:
                x = x.index_select(-1, self.input_permutation)
            return F.linear(x, self.dense_weight(), self.bias)
        if kernel.permuted_input and self.input_permutation is not None:
            x = x.index_select(-1, self.input_permutation)
        lead = x.shape[:-1]
        return kernel(x.reshape(-1, self.in_features)).reshape(*lead, self.out_features)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, pattern=2:4, "
                f"execution={self.execution}")


def _set_submodule(model: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, module)


def convert_to_24(model: nn.Module, mask: Mask, *, inplace: bool = False) -> nn.Module:
    """Replace every ``nn.Linear`` of a 2:4 ``mask`` by a :class:`SparseLinear24` of ``keep * W``.

    Conv layers of the mask are left as they are (masked weights are not applied to them here).
    Apply free restoration first if needed (``mask.apply(model, restore_from=dense)``).
    """
    if mask.pattern != PATTERN_24:
        raise PatternError(f"mask: pattern {mask.pattern_name} is not 2:4")
    mask.validate(model)
    target = model if inplace else copy.deepcopy(model)
    modules = dict(target.named_modules())
    for name in mask.layer_names:
        layer = modules[name]
        if not isinstance(layer, nn.Linear):
            continue
        weight = layer.weight.detach()
        keep = mask.keep[name].to(weight.device)
        perm = mask.permutations.get(name)
        masked = torch.where(keep, weight, torch.zeros((), dtype=weight.dtype, device=weight.device))
        if perm is not None:
            perm = perm.to(weight.device)
            masked, keep = masked[:, perm], keep[:, perm]
        packed = pack_24(masked, keep, name=name)
        _set_submodule(target, name, SparseLinear24(packed, layer.bias, perm, name=name))
    return target


def to_linear(module: SparseLinear24) -> nn.Linear:
    """The ``nn.Linear`` computing the same map as ``module`` (input permutation folded back)."""
    w = module.unpermuted_weight()
    layer = nn.Linear(module.in_features, module.out_features, bias=module.bias is not None,
                      device=w.device, dtype=w.dtype)
    with torch.no_grad():
        layer.weight.copy_(w)
        if module.bias is not None:
            layer.bias.copy_(module.bias)
    return layer


def convert_to_dense(model: nn.Module, *, inplace: bool = False) -> nn.Module:
    """Replace every :class:`SparseLinear24` by the equivalent ``nn.Linear`` (:func:`to_linear`)."""
    target = model if inplace else copy.deepcopy(model)
    sparse = [(name, m) for name, m in target.named_modules() if isinstance(m, SparseLinear24)]
    for name, module in sparse:
        _set_submodule(target, name, to_linear(module))
    return target


#: the state-dict keys that mark a :class:`SparseLinear24` (``NAME.codes``) in a 2:4 checkpoint
_CODES_SUFFIX = ".codes"


def _check_stored_layer(name: str, codes: torch.Tensor, perm: torch.Tensor | None, d_in: int) -> None:
    """Refuse codes that are not two ascending positions ``p0 < p1`` and a permutation that is not one of
    ``range(d_in)``."""
    positions = _positions(codes)
    if codes.dtype != torch.uint8 or bool((positions[..., 0] >= positions[..., 1]).any()) or bool((codes >= 16).any()):
        raise MaskMismatchError(f"{name}: stored 2:4 codes are not pairs of ascending positions in 0..3 (uint8)")
    if perm is not None and not torch.equal(torch.sort(perm.long()).values, torch.arange(d_in)):
        raise MaskMismatchError(f"{name}: stored input_permutation is not a permutation of range({d_in})")


def load_24(model: nn.Module, state: dict[str, torch.Tensor]) -> nn.Module:
    """``model`` with every Linear that ``state`` stores packed (a ``NAME.codes`` key) replaced by a
    :class:`SparseLinear24` of the stored ``values`` / ``codes`` / ``bias`` / ``input_permutation``,
    and every other tensor of ``state`` loaded strictly.

    ``model`` is a dense model of the checkpoint's architecture (left untouched: the result is a
    copy); ``state`` the ``state_dict`` of a :func:`convert_to_24` model.  Raises
    :class:`MaskMismatchError` naming the layer when a packed layer is not an ``nn.Linear`` of the
    same shape, or when the keys / shapes of the rest differ.
    """
    target = copy.deepcopy(model)
    modules = dict(target.named_modules())
    for key in sorted(k for k in state if k.endswith(_CODES_SUFFIX)):
        name = key[: -len(_CODES_SUFFIX)]
        layer = modules.get(name)
        values, codes = state.get(f"{name}.values"), state[key]
        if not isinstance(layer, nn.Linear):
            raise MaskMismatchError(f"{name}: the 2:4 checkpoint packs it, the model has {type(layer).__name__} there")
        if values is None or tuple(values.shape) != (layer.out_features, layer.in_features // 2) \
                or tuple(codes.shape) != (layer.out_features, layer.in_features // 4):
            raise MaskMismatchError(f"{name}: packed values / codes do not fit an nn.Linear({layer.in_features}, "
                                    f"{layer.out_features})")
        _check_stored_layer(name, codes, state.get(f"{name}.input_permutation"), layer.in_features)
        perm = state.get(f"{name}.input_permutation")
        placeholder = Packed24(values=torch.zeros_like(values), codes=torch.zeros_like(codes))
        _set_submodule(target, name, SparseLinear24(placeholder, layer.bias, perm, name=name))
    try:
        target.load_state_dict(state, strict=True)
    except RuntimeError as exc:  # missing / unexpected keys, shape mismatches (all listed by torch)
        raise MaskMismatchError(f"2:4 checkpoint does not fit the model: {exc}") from exc
    return target
