"""Float64 sums and matrix products in blocks, with short rounding-error bounds (THEORY.md 3.6).

A sum of ``m`` terms in any order (and any dot product of length ``m``, FMA or not) has an error of at most
``gamma_m sum |terms|`` with ``gamma_m = m u / (1 - m u)``, ``u = 2^-53``: the bound grows with ``m`` because
the summation order is unknown.  Summing the terms in ``p`` blocks of ``b = ceil(m / p)`` (each block in any
order, then the ``p`` partial results) fixes enough of the order to give

    |fl(sum) - sum| <= (gamma_b + gamma_(p-1) (1 + gamma_b)) sum |terms| <= (b + p) u sum |terms|

(for ``(b + p) u < 1e-3``).  The functions return the value and these *units* ``b + p`` (in ``u``); with
``p = 1`` they are ``m + 1``.  Zero padding of the last block adds exact zeros (a shorter last block, as for a
matrix operand, only fewer terms).  Same number of multiplications as the plain product; the partial results of a
batched operand cost ``p`` times the output's memory (a matrix operand: one partial product at a time).

Used by :mod:`certs.intervals.taylor` for the exactly propagated coefficients of the linear maps and the
LayerNorm means, whose rounding errors become remainder: on the default ViT, inner sizes 192 and 768 give
52 and 196 units instead of 193 and 769 (the attention products, inner size 64–65, gain nothing measurable).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["PRODUCT_BLOCKS", "SUM_BLOCKS", "blocked_matmul", "blocked_sum"]

#: Blocks of a matrix product (the partial products cost this many times the output's memory).
PRODUCT_BLOCKS = 4
#: Blocks of a sum (cheap: the partial sums are ``1 / b`` of the input).
SUM_BLOCKS = 16


def _layout(m: int, parts: int) -> tuple[int, int]:
    b = -(-m // max(1, parts))
    return b, -(-m // b)


def blocked_matmul(x: torch.Tensor, y: torch.Tensor, parts: int = PRODUCT_BLOCKS) -> tuple[torch.Tensor, int]:
    """``(x @ y, units)`` with ``|fl - exact| <= units * u * (|x| @ |y|) + k 2^-1075`` entrywise (module docstring;
    the absolute term: products that underflow).

    ``x``: ``(..., k)``; ``y``: a matrix ``(k, n2)`` (a weight, broadcast over ``x``'s leading dims) or
    ``(..., k, n2)`` with the same leading dims as ``x`` (``x`` then ``(..., n1, k)``)."""
    k = x.shape[-1]
    b, p = _layout(k, parts)
    if p == 1:
        return x @ y, k + 1
    if y.dim() == 2:
        return _weight_blocks(x, y, b), b + p
    pad = p * b - k
    if pad:
        x = F.pad(x, (0, pad))
        y = F.pad(y, (0, 0, 0, pad))
    out = x.unflatten(-1, (p, b)).movedim(-2, -3) @ y.unflatten(-2, (p, b))  # (..., p, n1, n2)
    return out.sum(-3), b + p


def _weight_blocks(x: torch.Tensor, weight: torch.Tensor, b: int) -> torch.Tensor:
    """``x @ weight`` (a matrix) as the partial products of the inner blocks ``[j b, (j + 1) b)`` (the last one
    shorter where ``b`` does not divide ``k``), each one matrix product, added one after the other: the order of
    the module docstring.  One partial product at a time is live (a ``(p, M, n2)`` stack of them costs ``p`` times
    the output's memory traffic: 1.6-1.9x slower at 256 pieces of the default ViT)."""
    k = x.shape[-1]
    flat = x.reshape(-1, k)
    out = flat[:, :b] @ weight[:b]
    for start in range(b, k, b):
        out.add_(flat[:, start:start + b] @ weight[start:start + b])
    return out.reshape(*x.shape[:-1], weight.shape[-1])


def blocked_sum(x: torch.Tensor, dim: int, keepdim: bool = False, parts: int = SUM_BLOCKS) -> tuple[torch.Tensor, int]:
    """``(x.sum(dim), units)`` with ``|fl - exact| <= units * u * |x|.sum(dim)`` (module docstring)."""
    m = x.shape[dim]
    b, p = _layout(m, parts)
    if p == 1:
        return x.sum(dim, keepdim), m + 1
    last = x.movedim(dim, -1)
    if p * b > m:
        last = F.pad(last, (0, p * b - m))
    out = last.unflatten(-1, (p, b)).sum(-1).sum(-1)
    return (out.unsqueeze(dim) if keepdim else out), b + p
