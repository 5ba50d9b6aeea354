"""Interval forward mode: a value interval and a tangent interval per entry (THEORY.md 3.1).

A :class:`Dual` ``(X, T)`` encloses, for every ``theta`` of a parameter interval ``Theta``, the value
``x(theta) in X`` and its derivative ``x'(theta) in T`` along the path.  Each rule is the chain rule
evaluated in interval arithmetic: for ``y = f(x)``, ``y(theta) in f(X)`` and
``y'(theta) = f'(x(theta)) x'(theta) in f'(X) * T`` where ``f'(X)`` encloses the derivative over the
whole value interval.  Every rule is inclusion-isotone up to rounding margins, so halving ``Theta``
never loosens a bound (tested).

Piecewise-linear activations (ReLU, abs) are differentiable except at a kink; ``z(theta)`` is then
Lipschitz, hence absolutely continuous, and the derivative bounds hold almost everywhere with the
one-sided slopes at the kink in ``f'(X)`` (``[0, 1]`` for ReLU, ``[-1, 1]`` for abs), which is all
``||z(theta_1) - z(theta_0)|| <= int ||z'||`` needs.

GELU exact, ``g(x) = x Phi(x)``: ``g'(x) = Phi(x) + x phi(x)`` and ``g''(x) = phi(x) (2 - x^2)``, so
``g'`` decreases on ``(-inf, -sqrt 2]``, increases on ``[-sqrt 2, sqrt 2]`` and decreases after; its
range over ``[lo, hi]`` is spanned by the end values and by ``g'(-sqrt 2) = 1 - g'(sqrt 2)`` (global
min, ``~ -0.1289``) / ``g'(sqrt 2)`` (global max, ``~ 1.1289``) when those points lie inside.  ``g``
itself decreases up to its minimiser ``x* in [-0.7519, -0.7517]`` and increases after, so its range
is spanned by the end values and, when the bracket of ``x*`` meets the interval, the lower bound
:data:`GELU_MIN_LOWER` of ``g(x*)``.  GELU tanh form: naive interval evaluation of its formula and of
its derivative (sound, slightly wider).  ``Phi`` and ``phi`` are the proven evaluations of
:mod:`certs.intervals.elementary`, so the end values carry the margin ``_GELU_REL`` (their error bound
plus the roundings of ``x Phi`` and ``Phi + x phi``), not a library assumption.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence, Union

import torch

from .elementary import CDF_REL, PDF_REL, gaussian_density, normal_cdf
from .interval import EPS, FN_ABS, Interval, widen

__all__ = [
    "Dual",
    "gelu_exact_value",
    "gelu_exact_derivative",
    "gelu_derivative_enclosure",
    "gelu_value_enclosure",
    "GELU_MIN_LOWER",
    "GELU_ARGMIN_BRACKET",
    "GELU_DERIVATIVE_MAX_UPPER",
    "GELU_DERIVATIVE_MIN_LOWER",
    "TANH_GELU_COEFF",
]

_SQRT2 = math.sqrt(2.0)
#: Error bound of the float ``g`` and ``g'`` below, relative to ``|g|`` and to ``Phi + |x| phi``.
_GELU_REL = CDF_REL + PDF_REL + 4 * EPS
TANH_GELU_COEFF = 0.044715
_TANH_GELU_K = math.sqrt(2.0 / math.pi)


def gelu_exact_value(x: torch.Tensor) -> torch.Tensor:
    """Float evaluation of ``g(x) = x Phi(x)`` (error below ``_GELU_REL |g| + FN_ABS``)."""
    return x * normal_cdf(x)


def gelu_exact_derivative(x: torch.Tensor) -> torch.Tensor:
    """Float evaluation of ``g'(x) = Phi(x) + x phi(x)``."""
    return normal_cdf(x) + x * gaussian_density(x)


def _scalar_derivative(x: float) -> float:
    return float(gelu_exact_derivative(torch.tensor(x, dtype=torch.float64)))


GELU_DERIVATIVE_MAX_UPPER = _scalar_derivative(_SQRT2) + 1e-12
GELU_DERIVATIVE_MIN_LOWER = (1.0 - _scalar_derivative(_SQRT2)) - 1e-12
#: ``g'`` changes sign from - to + inside this bracket (checked by the tests).
GELU_ARGMIN_BRACKET = (-0.7519, -0.7517)
#: ``g(x*) >= g(-0.7518) - 1e-8``: ``|x* + 0.7518| <= 1e-4`` and ``|g''| <= 0.5`` near ``x*``.
GELU_MIN_LOWER = float(gelu_exact_value(torch.tensor(-0.7518, dtype=torch.float64))) - 1e-8


def _end_values(fn, lo: torch.Tensor, hi: torch.Tensor, scale_fn) -> Interval:
    a, b = fn(lo), fn(hi)
    margin = _GELU_REL * torch.maximum(scale_fn(lo, a), scale_fn(hi, b)) + FN_ABS
    return widen(torch.minimum(a, b), torch.maximum(a, b), margin)


def gelu_value_enclosure(x: Interval) -> Interval:
    """Range of ``g(x) = x Phi(x)`` over ``x`` (module docstring)."""
    ends = _end_values(gelu_exact_value, x.lo, x.hi, lambda _t, v: v.abs())
    meets = (x.lo <= GELU_ARGMIN_BRACKET[1]) & (x.hi >= GELU_ARGMIN_BRACKET[0])
    lo = torch.where(meets, torch.clamp(ends.lo, max=GELU_MIN_LOWER), ends.lo)
    return Interval(lo, ends.hi)


def gelu_derivative_enclosure(x: Interval) -> Interval:
    """Range of ``g'(x) = Phi(x) + x phi(x)`` over ``x``, from its critical points ``+- sqrt 2``."""
    ends = _end_values(gelu_exact_derivative, x.lo, x.hi, lambda t, _v: normal_cdf(t) + t.abs() * gaussian_density(t))
    crosses = (x.lo <= -_SQRT2) & (x.hi >= -_SQRT2)
    lo = torch.where(crosses, torch.clamp(ends.lo, max=GELU_DERIVATIVE_MIN_LOWER), ends.lo)
    hi = torch.where((x.lo <= _SQRT2) & (x.hi >= _SQRT2), torch.clamp(ends.hi, min=GELU_DERIVATIVE_MAX_UPPER), ends.hi)
    return Interval(lo, hi)


Operand = Union["Dual", torch.Tensor, float]


@dataclass(frozen=True, eq=False)
class Dual:
    """Value enclosure ``value`` and derivative enclosure ``tangent`` (same shape), see the module docstring."""

    value: Interval
    tangent: Interval

    @staticmethod
    def constant(x: torch.Tensor) -> "Dual":
        """A point that does not move along the path (tangent 0)."""
        return Dual(Interval.point(x), Interval.point(torch.zeros_like(x)))

    def constant_like(self, x: torch.Tensor) -> "Dual":
        """:meth:`constant` (same interface as :meth:`TaylorDual.constant_like`)."""
        return Dual.constant(x)

    @staticmethod
    def cat(parts: Sequence["Dual"], dim: int) -> "Dual":
        return Dual(Interval.cat([p.value for p in parts], dim), Interval.cat([p.tangent for p in parts], dim))

    def rearrange(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> "Dual":
        """Move entries (reshape, permute, index) in value and tangent alike."""
        return Dual(self.value.rearrange(fn), self.tangent.rearrange(fn))

    @property
    def shape(self) -> torch.Size:
        return self.value.shape

    def enclosures(self) -> tuple[Interval, Interval]:
        """The value and tangent intervals."""
        return self.value, self.tangent

    # --------------------------------------------------------------- linear rules
    def __add__(self, other: Operand) -> "Dual":
        if isinstance(other, Dual):
            return Dual(self.value + other.value, self.tangent + other.tangent)
        return Dual(self.value + other, self.tangent)

    __radd__ = __add__

    def __neg__(self) -> "Dual":
        return Dual(-self.value, -self.tangent)

    def __sub__(self, other: Operand) -> "Dual":
        return self + (-other)

    def __mul__(self, other: Operand) -> "Dual":
        if isinstance(other, Dual):
            return Dual(self.value * other.value, self.tangent * other.value + self.value * other.tangent)
        return Dual(self.value * other, self.tangent * other)

    __rmul__ = __mul__

    def linear(self, weight: torch.Tensor, bias: torch.Tensor | None = None) -> "Dual":
        """``x W^T + b`` (point ``W``, ``b``): tangent ``T W^T``."""
        return Dual(self.value.linear(weight, bias), self.tangent.linear(weight))

    def matmul(self, other: "Dual") -> "Dual":
        """``X Y``: tangent ``T_X Y + X T_Y``."""
        return Dual(self.value.matmul(other.value),
                    self.tangent.matmul(other.value) + self.value.matmul(other.tangent))

    def sum(self, dim: int, keepdim: bool = False) -> "Dual":
        return Dual(self.value.sum(dim, keepdim), self.tangent.sum(dim, keepdim))

    def mean(self, dim: int, keepdim: bool = False) -> "Dual":
        return Dual(self.value.mean(dim, keepdim), self.tangent.mean(dim, keepdim))

    def minus_mean(self, dim: int = -1) -> "Dual":
        return Dual(self.value.minus_mean(dim), self.tangent.minus_mean(dim))

    # --------------------------------------------------------------- elementwise rules
    def square(self) -> "Dual":
        return Dual(self.value.square(), (self.value * self.tangent) * 2.0)

    def exp(self) -> "Dual":
        e = self.value.exp()
        return Dual(e, e * self.tangent)

    def reciprocal(self) -> "Dual":
        r = self.value.reciprocal()
        return Dual(r, -(r.square() * self.tangent))

    def rsqrt(self) -> "Dual":
        """``x^(-1/2)`` for ``x > 0``: derivative ``-(1/2) y^3``."""
        y = self.value.sqrt().reciprocal()
        return Dual(y, (y.square() * y) * self.tangent * -0.5)

    def tanh(self) -> "Dual":
        t = self.value.tanh()
        return Dual(t, (1.0 - t.square()) * self.tangent)

    def relu(self) -> "Dual":
        lo, hi = self.value.lo, self.value.hi
        d_lo = (lo >= 0).to(lo.dtype)  # NaN ends give the slope interval [0, 1]
        d_hi = (~(hi <= 0)).to(lo.dtype)
        slope = Interval(torch.minimum(d_lo, d_hi), torch.maximum(d_lo, d_hi))
        return Dual(self.value.relu(), slope * self.tangent)

    def abs(self) -> "Dual":
        lo, hi = self.value.lo, self.value.hi
        slope = Interval(torch.where(lo >= 0, 1.0, -1.0).to(lo.dtype), torch.where(hi <= 0, -1.0, 1.0).to(lo.dtype))
        return Dual(self.value.abs(), slope * self.tangent)

    def gelu(self, derivative_rule: Callable[[Interval], Interval] | None = None) -> "Dual":
        """Exact GELU ``x Phi(x)``; ``derivative_rule`` replaces :func:`gelu_derivative_enclosure` (tests only)."""
        rule = gelu_derivative_enclosure if derivative_rule is None else derivative_rule
        return Dual(gelu_value_enclosure(self.value), rule(self.value) * self.tangent)

    def gelu_tanh(self) -> "Dual":
        """``g(x) = x (1 + tanh(k (x + a x^3))) / 2`` with ``k = sqrt(2/pi)``, ``a = 0.044715`` (naive intervals).

        ``g'(x) = (1 + t)/2 + x (1 - t^2) k (1 + 3 a x^2) / 2`` with ``t = tanh(k (x + a x^3))``.
        """
        x = self.value
        x2 = x.square()
        t = ((x + (x2 * x) * TANH_GELU_COEFF) * _TANH_GELU_K).tanh()
        one_plus_t = t + 1.0
        value = (x * one_plus_t) * 0.5
        inner = (x2 * (3.0 * TANH_GELU_COEFF) + 1.0) * (0.5 * _TANH_GELU_K)
        slope = one_plus_t * 0.5 + (x * (1.0 - t.square())) * inner
        return Dual(value, slope * self.tangent)
