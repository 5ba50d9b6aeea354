"""Derivatives and derivative bounds of the smooth scalar functions used by the Taylor forms.

Each :class:`SmoothFunction` gives ``f^(k)(a)`` at float points (``k = 0..K``) with a per-entry bound of
its float error (proven from IEEE operations, except for ``tanh``, which carries the library assumption
``FN_REL`` of :mod:`certs.intervals.interval`) and an upper bound of ``sup |f^(k)|`` over an interval
``[lo, hi]`` (``m = mig``, ``M = mag``), computed with the same proven functions and raised by
:data:`BOUND_REL` (which exceeds their float error):

* ``exp``: ``f^(k) = exp`` (:func:`certs.intervals.elementary.exp_enclosed`, ``EXP_REL``); bound ``exp(hi)``.
* ``x^p`` on ``x > 0`` (``p = -1`` reciprocal, ``p = -1/2`` rsqrt): ``f^(k) = p (p-1)...(p-k+1) x^(p-k)``,
  evaluated as ``t_0 = 1 / x`` or ``1 / sqrt(x)``, ``t_j = t_{j-1} / x``, ``f^(j) = falling(p, j) t_j``: every
  step is a correctly rounded IEEE operation and ``falling(p, j)`` is exact (odd integers over ``2^j``), so
  the relative error is at most ``gamma_(j+3) <= (j + 4) u`` with ``u = 2^-53`` (the per-entry error used),
  below ``16 eps`` for ``j <= 28`` (:data:`POWER_ORDERS`); bound ``|p (p-1)...| lo^(p-k)`` by the same chain
  (``inf`` where ``lo <= 0``).
* ``tanh``: ``f^(k) = P_k(tanh x)`` with ``P_0 = t``, ``P_{k+1} = P_k'(t) (1 - t^2)``; bound ``sum |coeffs of P_k|``
  (``|t| <= 1``).
* GELU ``g = x Phi(x)``: ``Phi^(j) = phi^(j-1)``, ``phi^(j) = (-1)^j He_j(x) phi(x)`` (probabilists' Hermite
  polynomials, integer coefficients, Horner), ``g^(k) = x Phi^(k) + k Phi^(k-1)`` (Leibniz), with the proven
  ``Phi`` and ``phi`` of :mod:`certs.intervals.elementary`.  Errors, per entry: ``E_0 = CDF_REL Phi``,
  ``E_j = gamma_2j |He|_(j-1)(|a|) phi + (PDF_REL + u) |Phi^(j)|`` (Horner on ``He_(j-1)``, whose error is
  bounded by the polynomial of absolute coefficients, so cancellation near its roots is covered), and
  ``|a| E_k + k E_(k-1) + 2 u (|a Phi^(k)| + k |Phi^(k-1)|)`` for ``g^(k)`` (``u |g|`` for ``k = 0``: no
  ``|a|``-sized term where ``Phi`` is small), times ``1 + 1e-6`` for the second-order terms, plus ``FN_ABS``;
  ``k <= GELU_ORDERS``; bounds ``|phi^(j)| <= phi(m) sum_i |He_{j,i}| M^i``, ``|Phi| <= 1``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch

from .elementary import CDF_REL, EXP_REL, PDF_REL, exp_enclosed, gamma, gaussian_density, normal_cdf
from .interval import EPS, U, FN_ABS, FN_REL, Interval, round_up_tensor

__all__ = ["SmoothFunction", "EXP", "RECIPROCAL", "RSQRT", "TANH", "GELU", "POWER_ORDERS", "POWER_REL", "GELU_ORDERS",
           "BOUND_REL", "hermite_coefficients", "tanh_polynomials"]


@dataclass(frozen=True)
class SmoothFunction:
    """``evaluate(a, K) -> (values, errors)``: ``values[k] = f^(k)(a)`` computed in float64 and ``errors[k]`` an
    upper bound of ``|values[k] - f^(k)(a)|`` (absolute, per entry, ``k = 0..K``); ``bounds(box, ks) -> [B_k for k
    in ks]`` with ``B_k >= sup_box |f^(k)|`` (one call shares the work of several orders)."""

    name: str
    evaluate: Callable[[torch.Tensor, int], tuple[list[torch.Tensor], list[torch.Tensor]]]
    bounds: Callable[[Interval, Sequence[int]], list[torch.Tensor]]

    def derivatives(self, a: torch.Tensor, k: int) -> list[torch.Tensor]:
        """``[f(a), f'(a), ..., f^(k)(a)]`` (float values of :attr:`evaluate`)."""
        return self.evaluate(a, k)[0]

    def bound(self, box: Interval, k: int) -> torch.Tensor:
        """``B_k >= sup_box |f^(k)|``."""
        return self.bounds(box, (k,))[0]


def _relative(values: list[torch.Tensor], rel: float) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    return values, [rel * v.abs() + FN_ABS for v in values]


#: Highest derivative order of GELU with a proven error bound (Hermite polynomials of degree < 10; order-6
#: Taylor duals use 8).
GELU_ORDERS = 10
#: Relative margin added to every derivative bound: above the float error of computing it (``PDF_REL`` plus
#: the Horner / product roundings of the GELU bounds, ``16 eps`` of the power bounds, ``EXP_REL`` for exp).
BOUND_REL = PDF_REL + 16 * EPS + gamma(2 * GELU_ORDERS + 8)


def _up(x: torch.Tensor) -> torch.Tensor:
    """``x (1 + BOUND_REL) + FN_ABS``, rounded up (``NaN`` stays ``NaN``: callers read it as unbounded)."""
    return round_up_tensor(x * (1.0 + 2.0 * BOUND_REL) + FN_ABS)


# ---------------------------------------------------------------------------- exp
EXP = SmoothFunction(
    "exp",
    lambda a, k: _relative([exp_enclosed(a)] * (k + 1), EXP_REL),
    lambda box, ks: [_up(exp_enclosed(box.hi))] * len(ks),
)


# ---------------------------------------------------------------------------- powers
def _falling(p: float, k: int) -> float:
    out = 1.0
    for j in range(k):
        out *= p - j
    return out


#: Highest derivative order for which the power functions' ``16 eps`` error bound is proven.
POWER_ORDERS = 28
#: Their relative error bound over all those orders (order ``j`` alone: ``(j + 4) u``).
POWER_REL = 16 * EPS


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

    def bounds(box: Interval, ks: Sequence[int]) -> list[torch.Tensor]:
        lo = box.lo
        values = derivatives(torch.clamp(lo, min=1e-300), max(ks))  # |x^(p-k)| decreases: sup at lo
        return [torch.where(lo > 0, _up(values[k].abs()), torch.full_like(lo, float("inf"))) for k in ks]

    def evaluate(a: torch.Tensor, k: int) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        values = derivatives(a, k)  # j + 3 roundings for order j: gamma_(j+3) <= (j + 4) u
        return values, [(j + 4) * U * v.abs() + FN_ABS for j, v in enumerate(values)]

    return SmoothFunction(name, evaluate, bounds)


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


def _tanh_evaluate(a: torch.Tensor, k: int) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """``P_j(tanh a)``; error ``FN_REL (|value| + sum |coeffs of P_j|)`` (torch.tanh: the library assumption)."""
    t = torch.tanh(a)
    polys = tanh_polynomials(k)
    values = [_poly_eval(p, t) for p in polys]
    return values, [FN_REL * (v.abs() + float(np.abs(p).sum())) + FN_ABS for v, p in zip(values, polys)]


TANH = SmoothFunction(
    "tanh",
    _tanh_evaluate,
    lambda box, ks: [torch.full_like(box.lo, float(np.abs(tanh_polynomials(k)[-1]).sum()) * (1.0 + 1e-12)) for k in ks],
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


def _gelu_evaluate(a: torch.Tensor, k: int) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """``g^(0..k)(a)`` and their error bounds (module docstring)."""
    if k > GELU_ORDERS:
        raise ValueError(f"gelu: derivatives up to order {GELU_ORDERS} only (error bound), got {k}")
    phi = gaussian_density(a)
    herm = hermite_coefficients(max(k, 1))
    cdf = [normal_cdf(a)]  # Phi^(0..k)
    cdf_err = [CDF_REL * cdf[0] + FN_ABS]
    big = a.abs()
    for j in range(1, k + 1):
        h = _poly_eval(herm[j - 1], a)
        cdf.append((-1.0) ** (j - 1) * h * phi)
        horner = gamma(2 * j) * _poly_eval(np.abs(herm[j - 1]), big)
        cdf_err.append(horner * phi + (PDF_REL + U) * cdf[j].abs() + (h.abs() + horner) * FN_ABS)
    values = [a * cdf[0]] + [a * cdf[i] + i * cdf[i - 1] for i in range(1, k + 1)]
    errors = [big * cdf_err[0] + U * values[0].abs()]
    for i in range(1, k + 1):
        errors.append(big * cdf_err[i] + i * cdf_err[i - 1] + 2 * U * ((a * cdf[i]).abs() + i * cdf[i - 1].abs()))
    return values, [e * (1.0 + 1e-6) + FN_ABS for e in errors]


def _gelu_bounds(box: Interval, ks: Sequence[int]) -> list[torch.Tensor]:
    if max(ks) > GELU_ORDERS:
        raise ValueError(f"gelu: derivative bounds up to order {GELU_ORDERS} only (error bound), got {max(ks)}")
    m, big = box.mig(), box.mag()
    phi = gaussian_density(m)
    herm = hermite_coefficients(max(max(ks), 1))
    cdf: dict[int, torch.Tensor] = {0: torch.ones_like(big)}  # sup |Phi^(j)|

    def cdf_bound(j: int) -> torch.Tensor:
        if j not in cdf:
            cdf[j] = phi * _poly_eval(np.abs(herm[j - 1]), big)
        return cdf[j]

    return [_up(big) if k == 0 else _up(big * cdf_bound(k) + k * cdf_bound(k - 1)) for k in ks]


GELU = SmoothFunction("gelu", _gelu_evaluate, _gelu_bounds)
