"""Derivatives and derivative bounds of the smooth scalar functions used by the Taylor forms.

Each :class:`SmoothFunction` gives ``f^(k)(a)`` at float points (``k = 0..K``, with relative error below
its ``rel_error``: the library assumption ``FN_REL`` of :mod:`certs.intervals.interval` for ``exp``,
``tanh`` and GELU; a proven ``16 eps`` for the powers, evaluated with IEEE operations only) and an upper bound of
``sup |f^(k)|`` over an interval ``[lo, hi]`` (``m = mig``, ``M = mag``):

* ``exp``: ``f^(k) = exp``; bound ``exp(hi)``.
* ``x^p`` on ``x > 0`` (``p = -1`` reciprocal, ``p = -1/2`` rsqrt): ``f^(k) = p (p-1)...(p-k+1) x^(p-k)``,
  evaluated as ``t_0 = 1 / x`` or ``1 / sqrt(x)``, ``t_j = t_{j-1} / x``, ``f^(j) = falling(p, j) t_j``: every
  step is a correctly rounded IEEE operation and ``falling(p, j)`` is exact (odd integers over ``2^j``), so
  the relative error is at most ``(j + 3) u (1 + ...)`` with ``u = 2^-53``, below ``16 eps`` for
  ``j <= 28`` (:data:`POWER_ORDERS`); bound ``|p (p-1)...| lo^(p-k)`` (``inf`` where ``lo <= 0``).
* ``tanh``: ``f^(k) = P_k(tanh x)`` with ``P_0 = t``, ``P_{k+1} = P_k'(t) (1 - t^2)``; bound ``sum |coeffs of P_k|``
  (``|t| <= 1``).
* GELU ``g = x Phi(x)``: ``Phi^(j) = phi^(j-1)``, ``phi^(j) = (-1)^j He_j(x) phi(x)`` (probabilists' Hermite
  polynomials), ``g^(k) = x Phi^(k) + k Phi^(k-1)`` (Leibniz); bounds
  ``|phi^(j)| <= phi(m) sum_i |He_{j,i}| M^i``, ``|Phi| <= 1``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from .interval import EPS, FN_ABS, FN_REL, Interval

__all__ = ["SmoothFunction", "EXP", "RECIPROCAL", "RSQRT", "TANH", "GELU", "POWER_ORDERS", "hermite_coefficients",
           "tanh_polynomials"]

_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_SQRT_HALF = math.sqrt(0.5)


@dataclass(frozen=True)
class SmoothFunction:
    """``derivatives(a, K) -> [f(a), f'(a), ..., f^(K)(a)]``, each within ``rel_error`` relative (plus ``FN_ABS``)
    of the exact value; ``bound(box, k) >= sup_box |f^(k)|``."""

    name: str
    derivatives: Callable[[torch.Tensor, int], list[torch.Tensor]]
    bound: Callable[[Interval, int], torch.Tensor]
    rel_error: float = FN_REL


def _up(x: torch.Tensor) -> torch.Tensor:
    return x * (1.0 + 4 * FN_REL) + FN_ABS


# ---------------------------------------------------------------------------- exp
EXP = SmoothFunction(
    "exp",
    lambda a, k: [torch.exp(a)] * (k + 1),
    lambda box, k: _up(torch.exp(box.hi)),
)


# ---------------------------------------------------------------------------- powers
def _falling(p: float, k: int) -> float:
    out = 1.0
    for j in range(k):
        out *= p - j
    return out


#: Highest derivative order for which the power functions' ``16 eps`` error bound is proven.
POWER_ORDERS = 28


def _power(p: float, name: str) -> SmoothFunction:
    first = {-1.0: lambda a: 1.0 / a, -0.5: lambda a: 1.0 / torch.sqrt(a)}[p]

    def derivatives(a: torch.Tensor, k: int) -> list[torch.Tensor]:
        if k > POWER_ORDERS:
            raise ValueError(f"{name}: derivatives up to order {POWER_ORDERS} only (error bound), got {k}")
        out, t = [], first(a)
        for j in range(k + 1):
            out.append(_falling(p, j) * t)
            t = t / a
        return out

    def bound(box: Interval, k: int) -> torch.Tensor:
        lo = box.lo
        value = abs(_falling(p, k)) * torch.clamp(lo, min=1e-300) ** (p - k)
        return torch.where(lo > 0, _up(value), torch.full_like(lo, float("inf")))

    return SmoothFunction(name, derivatives, bound, rel_error=16 * EPS)


RECIPROCAL = _power(-1.0, "reciprocal")
RSQRT = _power(-0.5, "rsqrt")


# ---------------------------------------------------------------------------- tanh
def tanh_polynomials(k: int) -> list[np.ndarray]:
    """Coefficients (increasing powers of ``t``) of ``P_0..P_k`` with ``tanh^(j)(x) = P_j(tanh x)``."""
    polys = [np.array([0.0, 1.0])]
    one_minus_t2 = np.array([1.0, 0.0, -1.0])
    for _ in range(k):
        der = np.polynomial.polynomial.polyder(polys[-1])
        polys.append(np.polynomial.polynomial.polymul(der, one_minus_t2))
    return polys


def _poly_eval(coeffs: np.ndarray, t: torch.Tensor) -> torch.Tensor:
    out = torch.zeros_like(t)
    for c in coeffs[::-1]:
        out = out * t + float(c)
    return out


TANH = SmoothFunction(
    "tanh",
    lambda a, k: [_poly_eval(p, torch.tanh(a)) for p in tanh_polynomials(k)],
    lambda box, k: torch.full_like(box.lo, float(np.abs(tanh_polynomials(k)[-1]).sum()) * (1.0 + 1e-12)),
)


# ---------------------------------------------------------------------------- GELU
def hermite_coefficients(j: int) -> list[np.ndarray]:
    """Coefficients of the probabilists' Hermite polynomials ``He_0..He_j`` (``He_{i+1} = x He_i - i He_{i-1}``)."""
    polys = [np.array([1.0]), np.array([0.0, 1.0])]
    for i in range(1, j):
        nxt = np.zeros(i + 2)
        nxt[1:] += polys[i]
        nxt[: i] -= i * polys[i - 1]
        polys.append(nxt)
    return polys[: j + 1]


def _gelu_derivatives(a: torch.Tensor, k: int) -> list[torch.Tensor]:
    phi = torch.exp(-0.5 * a * a) * _INV_SQRT_2PI
    herm = hermite_coefficients(max(k, 1))
    cdf = [0.5 * torch.special.erfc(-a * _SQRT_HALF)]  # Phi^(0..k)
    for j in range(1, k + 1):
        cdf.append((-1.0) ** (j - 1) * _poly_eval(herm[j - 1], a) * phi)
    return [a * cdf[0]] + [a * cdf[i] + i * cdf[i - 1] for i in range(1, k + 1)]


def _gelu_bound(box: Interval, k: int) -> torch.Tensor:
    m, big = box.mig(), box.mag()
    phi = torch.exp(-0.5 * m * m) * _INV_SQRT_2PI
    herm = hermite_coefficients(max(k, 1))

    def cdf_bound(j: int) -> torch.Tensor:  # sup |Phi^(j)|
        if j == 0:
            return torch.ones_like(big)
        return phi * _poly_eval(np.abs(herm[j - 1]), big)

    if k == 0:
        return _up(big)
    return _up(big * cdf_bound(k) + k * cdf_bound(k - 1))


GELU = SmoothFunction("gelu", _gelu_derivatives, _gelu_bound)
