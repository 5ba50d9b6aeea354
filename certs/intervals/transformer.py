"""Interval forward-mode rules for the transformer ops: LayerNorm, softmax, multi-head attention.

Inputs and outputs are :class:`certs.intervals.dual.Dual` (value + tangent intervals) or
:class:`certs.intervals.taylor.TaylorDual` (Taylor forms in the path parameter); generic torch ops only (the
timm-aware walk lives in :mod:`verification.bridge.vit_interval`).

* LayerNorm over the last dim, ``y = (x - mean x) / sqrt(var + eps) * w + b`` with the biased
  ``var = mean((x - mean x)^2)``: the centring ``x - mean x`` is the exact linear map
  ``I - 1 1^T / k`` (:meth:`Interval.minus_mean`, no dependency loss); the rest is the chain rule on
  ``c^2``, mean, ``rsqrt`` and products, which gives the tangent
  ``dy = w (dc / sigma - c (mean(c dc)) / sigma^3)`` automatically.
* softmax over the last dim: value by the monotone enclosure
  ``p_i in [e^{lo_i} / (e^{lo_i} + sum_{j != i} e^{hi_j}), e^{hi_i} / (e^{hi_i} + sum_{j != i} e^{lo_j})]``
  (``p_i`` increases in ``x_i`` and decreases in every ``x_j``), computed after subtracting the point
  shift ``max hi`` (softmax is shift invariant); tangent ``dp = p (dx - sum_j p_j dx_j)``, i.e.
  ``J = diag(p) - p p^T`` applied to ``dx``.
* attention (timm ``Attention`` with identity q/k norms): ``qkv`` split into ``q, k, v`` per head,
  ``softmax(scale q k^T) v``, heads concatenated; products of two duals use the product rule.
"""

from __future__ import annotations

import torch

from certs.errors import CertificateInputError

from .taylor import TaylorDual
from .dual import Dual
from .interval import Interval, round_down, round_up_tensor

__all__ = ["layer_norm", "variance_floor", "inverse_std", "softmax_enclosure", "softmax", "attention"]


def variance_floor(c: Interval, eps: float) -> torch.Tensor:
    """A lower bound of ``mean(c^2) + eps`` over the last dim (kept) for every ``c`` in the box: ``eps + mean(mig^2)``
    (the polynomial box of ``c^2`` can dip below 0)."""
    return round_down(Interval.point(c.mig()).square().mean(-1, keepdim=True).lo + float(eps))


def inverse_std(c: Dual, eps: float) -> Dual:
    """``(mean(c^2) + eps)^(-1/2)`` over the last dim (kept) of the centred ``c``."""
    var = c.square().mean(-1, keepdim=True)
    if isinstance(c, TaylorDual):
        return (var + float(eps)).rsqrt(variance_floor(c.value.box(), eps))
    return (var + float(eps)).rsqrt()


def layer_norm(x: Dual, weight: torch.Tensor | None, bias: torch.Tensor | None, eps: float) -> Dual:
    """``torch.nn.functional.layer_norm`` over the last dim, on a dual."""
    c = x.minus_mean(-1)
    y = c * inverse_std(c, eps)
    if weight is not None:
        y = y * weight
    if bias is not None:
        y = y + bias
    return y


def softmax_enclosure(x: Interval) -> Interval:
    """Enclosure of ``softmax`` over the last dim for every point of ``x`` (module docstring)."""
    shift = x.hi.amax(-1, keepdim=True)
    e = (x - shift).exp()
    k = x.lo.shape[-1]
    g = (k + 4) * 2.0 ** -52
    total_hi = round_up_tensor(e.hi.sum(-1, keepdim=True) * (1.0 + g))
    total_lo = round_down(e.lo.sum(-1, keepdim=True) * (1.0 - g))
    others_hi = round_up_tensor(total_hi - e.hi)
    others_lo = torch.clamp(round_down(total_lo - e.lo), min=0.0)
    den_lo = round_up_tensor(e.lo + others_hi)
    den_hi = round_down(e.hi + others_lo)
    p_lo = torch.where(den_lo > 0, round_down(e.lo / den_lo), torch.zeros_like(den_lo))
    p_hi = torch.where(den_hi > 0, round_up_tensor(e.hi / den_hi), torch.ones_like(den_hi))
    return Interval(torch.clamp(p_lo, min=0.0), torch.clamp(p_hi, max=1.0))


def softmax(x):
    """Softmax over the last dim.  :class:`Dual`: value :func:`softmax_enclosure`, tangent
    ``p (dx - <p, dx>)``; :class:`TaylorDual`: its own composition rule (:meth:`TaylorDual.softmax`)."""
    if isinstance(x, TaylorDual):
        return x.softmax()
    p = softmax_enclosure(x.value)
    inner = (p * x.tangent).sum(-1, keepdim=True)
    return Dual(p, p * (x.tangent - inner))


def attention(qkv: Dual, num_heads: int, head_dim: int, scale: float, observe=None) -> Dual:
    """Multi-head self-attention core from the ``qkv`` projection output ``(..., N, 3 H d)`` to ``(..., N, H d)``.

    Same layout as timm: ``qkv.reshape(B, N, 3, H, d).permute(2, 0, 3, 1, 4)``; ``q`` is scaled by
    ``scale`` before ``q k^T``; the attention-weighted values are transposed back and flattened.
    ``observe(label, dual)`` (optional) receives the probabilities ``(..., H, N, N)`` as ``'attn.probs'``.
    """
    *batch, n, width = qkv.shape
    if width != 3 * num_heads * head_dim:
        raise CertificateInputError(f"qkv: last dim {width} != 3 * {num_heads} * {head_dim}")
    lead = len(batch)

    def split(i: int):
        def fn(t: torch.Tensor) -> torch.Tensor:
            t = t.reshape(*batch, n, 3, num_heads, head_dim)[..., i, :, :]
            return t.movedim(lead + 1, lead)  # (..., H, N, d)
        return fn

    q = qkv.rearrange(split(0)) * float(scale)
    k_t = qkv.rearrange(split(1)).rearrange(lambda t: t.transpose(-2, -1))
    v = qkv.rearrange(split(2))
    probs = softmax(q.matmul(k_t))
    if observe is not None:
        observe("attn.probs", probs)
    out = probs.matmul(v)  # (..., H, N, d)
    return out.rearrange(lambda t: t.movedim(lead, lead + 1).reshape(*batch, n, num_heads * head_dim))
