"""Enclosures of exact float64 matrix products computed in extended precision (THEORY.md 3.6).

The path of a sound ``L_s`` starts from enclosures of the exact products ``S psi_1`` and ``R psi_1``.  In float64
their radius is ``(b + p + 3) u |psi_1| |W|`` (:mod:`certs.intervals.blocked`); every later block multiplies
that radius by about 2e3 (verification/FINDINGS.md F20), so for ``patch_embed.proj`` (four blocks downstream)
it is what limits the bound.  Here the products are accumulated in numpy's ``longdouble`` (x87 extended:
64-bit significand, unit roundoff ``u_L = 2^-64``; IEEE quad where the platform has it) and rounded once to
float64:

    s_L = fl_L(x^T w),           |s_L - x^T w| <= gamma_m^L |x|^T |w|     (any summation order, m products)
    mid = fl_64(s_L),            |mid - s_L|   <= u |mid| + 2^-1075       (round to nearest, subnormal spacing)
    M   = fl_64(fl_L(|x|^T |w|)) >= (1 - gamma_m^L)(1 - u) |x|^T |w|

so ``exact in mid +- (u |mid| + 2 gamma_m^L M + 2^-1074)``, rounded up, with ``gamma_m^L = m u_L / (1 - m u_L)``
(float64 products never underflow in ``longdouble``'s exponent range; the factor 2 covers the ``(1 - ...)``
terms for ``m u_L < 1e-3``).  The radius is then ``u |mid|`` up to a ``1e-18`` relative term: the float64
representation of the result, nothing more.  Where ``longdouble`` is plain float64 (Windows, macOS on Arm),
:data:`AVAILABLE` is false and the caller keeps the float64 enclosure.  CPU only (numpy); used once per layer.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .interval import Interval, U, round_up_tensor

__all__ = ["AVAILABLE", "U_LONG", "extended_matmul_enclosure", "extended_conv2d_enclosure"]

_LONG = np.finfo(np.longdouble)
#: Whether numpy's ``longdouble`` carries at least a 64-bit significand (x87 extended or quad).
AVAILABLE = _LONG.nmant >= 63 and _LONG.minexp < -2200
#: Unit roundoff of ``longdouble``.
U_LONG = float(_LONG.eps) / 2


def _gamma(m: int) -> float:
    return m * U_LONG / (1.0 - m * U_LONG)


def extended_matmul_enclosure(x: torch.Tensor, w: torch.Tensor) -> Interval:
    """Enclosure of the exact ``x @ w.T`` (``x``: ``(..., m)``, ``w``: ``(n, m)``, float64) (module docstring)."""
    if not AVAILABLE:
        raise RuntimeError("numpy longdouble has no extended precision on this platform (check AVAILABLE first)")
    m = x.shape[-1]
    xl = x.detach().cpu().numpy().astype(np.longdouble)
    wl = w.detach().cpu().numpy().astype(np.longdouble).T
    mid = torch.from_numpy((xl @ wl).astype(np.float64))
    mag = torch.from_numpy((np.abs(xl) @ np.abs(wl)).astype(np.float64))
    radius = round_up_tensor(U * mid.abs() + 2.0 * _gamma(m) * mag + 2.0 ** -1074)
    return Interval.around(mid, radius).rearrange(lambda t: t.to(x.device))


def extended_conv2d_enclosure(x: torch.Tensor, weight: torch.Tensor, stride, padding, dilation) -> Interval:
    """Enclosure of the exact ``conv2d(x, weight)`` (no bias, one group, numeric zero padding) through the exact
    im2col copy ``F.unfold`` and :func:`extended_matmul_enclosure`; ``x``: ``(N, C, H, W)``, ``weight``:
    ``(O, C, kh, kw)``."""
    n, _, h, w_in = x.shape
    out, _, kh, kw = weight.shape
    cols = F.unfold(x, (kh, kw), dilation=dilation, padding=padding, stride=stride)  # (N, C kh kw, L), a copy
    product = extended_matmul_enclosure(cols.transpose(1, 2), weight.reshape(out, -1))  # (N, L, O)
    h_out = (h + 2 * padding[0] - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    w_out = (w_in + 2 * padding[1] - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    return product.rearrange(lambda t: t.transpose(1, 2).reshape(n, out, h_out, w_out))
