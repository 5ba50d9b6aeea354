"""2:4 packed storage and execution (ALGORITHMS.md 8.1).

Packed format of a ``(d_out, d_in)`` 2:4 weight (``d_in % 4 == 0``, ``G = d_in / 4`` groups per row):

* ``values``: ``(d_out, d_in / 2)``, the two kept values of every group in ascending position order;
* ``codes``: ``(d_out, G)`` uint8, ``p0 | (p1 << 2)`` with the kept positions ``p0 < p1`` in
  ``{0, 1, 2, 3}`` (2 bits each).

``pack_24(W, keep)`` packs exactly the ``keep`` slots (each group must keep exactly 2); without
``keep`` the nonzeros are packed (a group with more than 2 nonzeros is not 2:4), topped up with the
lowest zero positions.  ``unpack_24`` scatters back; the round trip is exact.

:class:`SparseLinear24` runs a Linear from the packed form.  On CPU it decompresses the packed
weight and calls ``F.linear`` (a reference execution: no speed claim).  On CUDA, after
:meth:`SparseLinear24.use_semi_structured`, it multiplies with
``torch.sparse.to_sparse_semi_structured`` of the same weight (CUTLASS / cuSPARSELt).  An input
permutation ``pi`` of the mask (7.5) is an explicit buffer of the module: it computes
``W[:, pi] @ x[..., pi]`` — never a hidden hook.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .errors import PatternError
from .kn_patterns import PATTERN_24, check_kn_groups
from .mask import Mask

__all__ = ["Packed24", "pack_24", "unpack_24", "SparseLinear24", "to_linear", "convert_to_24", "convert_to_dense"]


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
        raise PatternError(f"{name}: 2:4 packing needs a 2-D weight with d_in % 4 == 0, got shape {tuple(weight.shape)}")
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

    def __init__(self, packed: Packed24, bias: torch.Tensor | None = None, input_permutation: torch.Tensor | None = None):
        super().__init__()
        self.out_features, self.in_features = packed.shape
        self.register_buffer("values", packed.values.detach().clone())
        self.register_buffer("codes", packed.codes.detach().clone())
        self.bias = None if bias is None else nn.Parameter(bias.detach().clone())
        self.register_buffer("input_permutation", None if input_permutation is None else input_permutation.long())
        self._semi_structured: torch.Tensor | None = None

    @property
    def packed(self) -> Packed24:
        return Packed24(self.values, self.codes)

    def dense_weight(self) -> torch.Tensor:
        """The weight in the module's input order (permutation applied to the columns)."""
        return unpack_24(self.packed)

    def use_semi_structured(self) -> "SparseLinear24":
        """Build the CUDA semi-structured weight (``torch.sparse.to_sparse_semi_structured``)."""
        if not self.values.is_cuda:
            raise PatternError("SparseLinear24: semi-structured execution needs the module on a CUDA device")
        from torch.sparse import to_sparse_semi_structured

        self._semi_structured = to_sparse_semi_structured(self.dense_weight())
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.input_permutation is not None:
            x = x.index_select(-1, self.input_permutation)
        if self._semi_structured is not None and x.is_cuda:
            lead = x.shape[:-1]
            y = F.linear(x.reshape(-1, self.in_features), self._semi_structured, self.bias)
            return y.reshape(*lead, self.out_features)
        return F.linear(x, self.dense_weight(), self.bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, pattern=2:4"


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
        _set_submodule(target, name, SparseLinear24(packed, layer.bias, perm))
    return target


def to_linear(module: SparseLinear24) -> nn.Linear:
    """The ``nn.Linear`` computing the same map as ``module`` (input permutation folded back)."""
    w = module.dense_weight()
    if module.input_permutation is not None:
        unpermuted = torch.empty_like(w)
        unpermuted[:, module.input_permutation] = w
        w = unpermuted
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
