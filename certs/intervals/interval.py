"""Float64 intervals on torch tensors with outward rounding (THEORY.md 3.6, certificate-grade rounding).

An :class:`Interval` ``[lo, hi]`` (two tensors of one shape) stands for every real array ``x`` with
``lo <= x <= hi`` entrywise.  Every operation returns an interval that contains the *exact* real result
for every real input inside the operands (an *enclosure*), in spite of float64 rounding:

* ``+ - *`` and ``/``, ``sqrt``: IEEE 754 correctly rounded, so the computed endpoint is moved one ulp
  outward (``torch.nextafter`` toward ``-inf`` / ``+inf``).
* sums of ``k`` terms and matrix products with inner size ``k``: the classical bound
  ``|fl(sum) - sum| <= gamma_k sum |terms|`` (``gamma_k = k u / (1 - k u)``, ``u = 2^-53``, valid for any
  summation order and for FMA) is added as a margin ``(k + 4) eps (...)`` with ``eps = 2^-52 >= 2u``,
  plus ``(k + 1) 2^-1022`` against underflow, then rounded outward.
* ``exp``: proven bounds from IEEE operations only (:mod:`certs.intervals.elementary`, 2.0 eps).
* ``tanh``, ``erf``: torch's float64 kernels are accurate to a few ulp; the enclosure
  assumes a relative error below :data:`FN_REL` ``= 1e-12`` (about 4500 ulp) plus an absolute
  :data:`FN_ABS` ``= 1e-300``.  This is an *assumption about the library*, stated here, not a proof
  (the default ViT uses neither: its GELU is exact, :mod:`certs.intervals.elementary`).
* point matrix times interval (``linear``) uses the centre-radius form
  ``W [c - r, c + r] subset W c +- |W| r``; interval times interval (``matmul``) uses Rump's form
  ``[A_c +- A_r][B_c +- B_r] subset A_c B_c +- (|A_c| B_r + A_r |B_c| + A_r B_r)``.

Structural operations (reshape, permute, index, concatenate) move entries and are exact
(:meth:`Interval.rearrange`).  Overflow yields infinite ends; NaN ends (``inf - inf``) are read as
unbounded (:meth:`Interval.unbounded_where_nan`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence, Union

import torch

from certs.errors import EnclosureError

from .elementary import exp_bounds
from .rounding import EPS, FN_ABS, FN_REL, TINY, U, round_down, round_up_tensor

__all__ = ["EPS", "U", "TINY", "FN_REL", "FN_ABS", "IntervalDomainError", "Interval", "round_down", "round_up_tensor",
           "widen"]

Operand = Union["Interval", torch.Tensor, float]


class IntervalDomainError(EnclosureError):
    """An interval operation left its domain (division by an interval containing 0, NaN, overflow)."""


def widen(lo: torch.Tensor, hi: torch.Tensor, margin: torch.Tensor) -> "Interval":
    """``[lo - margin, hi + margin]`` rounded outward (``margin >= 0``)."""
    return Interval(round_down(lo - margin), round_up_tensor(hi + margin))


def _fn_margin(value: torch.Tensor) -> torch.Tensor:
    return FN_REL * value.abs() + FN_ABS


@dataclass(frozen=True, eq=False)
class Interval:
    """Entrywise enclosure ``lo <= x <= hi`` of a real float64 array (see the module docstring)."""

    lo: torch.Tensor
    hi: torch.Tensor

    # ------------------------------------------------------------------ construction
    @staticmethod
    def point(x: torch.Tensor) -> "Interval":
        """The degenerate interval ``[x, x]`` (``x`` taken as exact)."""
        return Interval(x, x)

    @staticmethod
    def around(centre: torch.Tensor, radius: torch.Tensor) -> "Interval":
        """``[centre - radius, centre + radius]`` rounded outward."""
        return widen(centre, centre, radius)

    @staticmethod
    def cat(parts: Sequence["Interval"], dim: int) -> "Interval":
        return Interval(torch.cat([p.lo for p in parts], dim), torch.cat([p.hi for p in parts], dim))

    def rearrange(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> "Interval":
        """Apply ``fn`` to both ends; ``fn`` must only move or copy entries (reshape, permute, index)."""
        return Interval(fn(self.lo), fn(self.hi))

    @property
    def shape(self) -> torch.Size:
        return self.lo.shape

    def unbounded_where_nan(self) -> "Interval":
        """``self`` with NaN ends (from ``inf - inf`` or ``0 * inf`` after an overflow) replaced by ``-inf`` / ``+inf``.

        Every rule propagates NaN (or widens to ``[-inf, inf]``) instead of dropping it, so the
        replacement encloses the true value."""
        inf = torch.full_like(self.lo, float("inf"))
        return Interval(torch.where(torch.isnan(self.lo), -inf, self.lo),
                        torch.where(torch.isnan(self.hi), inf, self.hi))

    # ------------------------------------------------------------------ measures
    def centre_radius(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Float ``c`` and ``r`` with ``[lo, hi] subset [c - r, c + r]`` exactly."""
        c = (self.lo + self.hi) * 0.5
        return c, self.radius_about(c)

    def radius_about(self, c: torch.Tensor) -> torch.Tensor:
        """Float ``r`` with ``[lo, hi] subset [c - r, c + r]`` exactly, for any centre ``c`` (broadcast): the larger
        float difference ``hi - c``, ``c - lo`` rounded up, and exactly 0 where ``lo = hi = c`` (a point: rounding
        ``0`` up would give the subnormal ``2^-1074``, and products with subnormal radii run ~100x slower on the
        CPU)."""
        r = round_up_tensor(torch.maximum(self.hi - c, c - self.lo))
        return torch.where((self.hi == c) & (self.lo == c), 0.0, r)

    def mag(self) -> torch.Tensor:
        """``max |x|`` over the interval (exact)."""
        return torch.maximum(self.lo.abs(), self.hi.abs())

    def mig(self) -> torch.Tensor:
        """``min |x|`` over the interval (exact): 0 if it contains 0."""
        inside = (self.lo <= 0) & (self.hi >= 0)
        return torch.where(inside, torch.zeros_like(self.lo), torch.minimum(self.lo.abs(), self.hi.abs()))

    def contains(self, x: torch.Tensor, tol: float = 0.0) -> torch.Tensor:
        """Boolean tensor: ``lo - tol s <= x <= hi + tol s`` with ``s = max(1, |x|)`` (THEORY.md 0.3 in tests)."""
        slack = tol * torch.clamp(x.abs(), min=1.0)
        return (self.lo - slack <= x) & (x <= self.hi + slack)

    # ------------------------------------------------------------------ arithmetic
    def __add__(self, other: Operand) -> "Interval":
        if isinstance(other, Interval):
            return Interval(round_down(self.lo + other.lo), round_up_tensor(self.hi + other.hi))
        return Interval(round_down(self.lo + other), round_up_tensor(self.hi + other))

    __radd__ = __add__

    def __neg__(self) -> "Interval":
        return Interval(-self.hi, -self.lo)

    def __sub__(self, other: Operand) -> "Interval":
        return self + (-other)

    def __rsub__(self, other: Operand) -> "Interval":
        return (-self) + other

    def __mul__(self, other: Operand) -> "Interval":
        if isinstance(other, Interval):
            products = torch.stack([self.lo * other.lo, self.lo * other.hi, self.hi * other.lo, self.hi * other.hi])
        else:
            products = torch.stack(torch.broadcast_tensors(self.lo * other, self.hi * other))
        return Interval(round_down(products.amin(0)), round_up_tensor(products.amax(0)))

    __rmul__ = __mul__

    def divide(self, n: float) -> "Interval":
        """``x / n`` for a positive float ``n`` (correctly rounded division, rounded outward)."""
        return Interval(round_down(self.lo / n), round_up_tensor(self.hi / n))

    def square(self) -> "Interval":
        return Interval(round_down(self.mig() ** 2), round_up_tensor(self.mag() ** 2))

    def reciprocal(self) -> "Interval":
        """``1 / x``; ``[-inf, inf]`` where the interval contains 0 (or is NaN)."""
        safe = (self.lo > 0) | (self.hi < 0)
        inf = torch.full_like(self.lo, float("inf"))
        return Interval(torch.where(safe, round_down(1.0 / self.hi), -inf),
                        torch.where(safe, round_up_tensor(1.0 / self.lo), inf))

    def sqrt(self) -> "Interval":
        """``sqrt(x)`` on ``x >= 0`` (negative parts clamped: the caller guarantees ``x >= 0``)."""
        return Interval(round_down(torch.sqrt(torch.clamp(self.lo, min=0.0))), round_up_tensor(torch.sqrt(self.hi)))

    def _monotone(self, fn: Callable[[torch.Tensor], torch.Tensor], low: float, high: float) -> "Interval":
        a, b = fn(self.lo), fn(self.hi)
        out = widen(a, b, torch.maximum(_fn_margin(a), _fn_margin(b)))
        return Interval(torch.clamp(out.lo, min=low), torch.clamp(out.hi, max=high))

    def exp(self) -> "Interval":
        """Proven bounds from :func:`certs.intervals.elementary.exp_bounds` (no library assumption)."""
        return Interval(exp_bounds(self.lo)[0], exp_bounds(self.hi)[1])

    def tanh(self) -> "Interval":
        return self._monotone(torch.tanh, -1.0, 1.0)

    def erf(self) -> "Interval":
        return self._monotone(torch.special.erf, -1.0, 1.0)

    def maximum(self, other: Operand) -> "Interval":
        if isinstance(other, Interval):
            return Interval(torch.maximum(self.lo, other.lo), torch.maximum(self.hi, other.hi))
        other = torch.as_tensor(other, dtype=self.lo.dtype, device=self.lo.device)
        return Interval(torch.maximum(self.lo, other), torch.maximum(self.hi, other))

    def relu(self) -> "Interval":
        return self.maximum(0.0)

    def abs(self) -> "Interval":
        return Interval(self.mig(), self.mag())

    # ------------------------------------------------------------------ reductions and products
    def sum(self, dim: int, keepdim: bool = False) -> "Interval":
        """``sum_k x_k`` along ``dim`` with margin ``(k + 4) eps sum |ends|``."""
        k = self.lo.shape[dim]
        g = (k + 4) * EPS
        lo = self.lo.sum(dim, keepdim=keepdim)
        hi = self.hi.sum(dim, keepdim=keepdim)
        return Interval(round_down(lo - g * self.lo.abs().sum(dim, keepdim=keepdim)),
                        round_up_tensor(hi + g * self.hi.abs().sum(dim, keepdim=keepdim)))

    def mean(self, dim: int, keepdim: bool = False) -> "Interval":
        return self.sum(dim, keepdim).divide(float(self.lo.shape[dim]))

    def minus_mean(self, dim: int = -1) -> "Interval":
        """``x - mean(x)`` along ``dim`` as the exact linear map ``P = I - 1 1^T / k`` (no dependency loss).

        Centre-radius: ``P c +- |P| r`` with ``(|P| r)_i = (1 - 2/k) r_i + mean(r)``.
        """
        k = self.lo.shape[dim]
        c, r = self.centre_radius()
        mean_c = c.mean(dim, keepdim=True)
        centre = c - mean_c
        mean_r = r.mean(dim, keepdim=True)
        radius = (1.0 - 2.0 / k) * r + mean_r
        scale = r + mean_r + centre.abs() + c.abs().mean(dim, keepdim=True)
        return Interval.around(centre, radius + (k + 6) * EPS * scale + TINY)

    def linear(self, weight: torch.Tensor, bias: torch.Tensor | None = None) -> "Interval":
        """``x W^T + b`` over the last dim, ``W`` a point matrix ``(n, m)`` (centre-radius form)."""
        c, r = self.centre_radius()
        abs_w = weight.abs().transpose(-1, -2)
        mid = c @ weight.transpose(-1, -2)
        rad = r @ abs_w
        mag = c.abs() @ abs_w
        m = weight.shape[-1]
        out = Interval.around(mid, rad + (m + 4) * EPS * (mag + rad) + (m + 1) * TINY)
        return out if bias is None else out + bias

    def matmul(self, other: "Interval") -> "Interval":
        """``A @ B`` of two intervals (Rump's midpoint-radius product, batched like ``torch.matmul``)."""
        ac, ar = self.centre_radius()
        bc, br = other.centre_radius()
        abs_ac, abs_bc = ac.abs(), bc.abs()
        mid = ac @ bc
        rad = abs_ac @ br + ar @ (abs_bc + br)
        mag = abs_ac @ abs_bc
        k = ac.shape[-1]
        return Interval.around(mid, rad + (k + 6) * EPS * (mag + rad) + (k + 1) * TINY)
