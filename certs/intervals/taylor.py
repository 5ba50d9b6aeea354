"""Taylor forms of order ``n`` in the single path parameter, with outward-rounded remainders (THEORY.md 3.1, 3.6).

Plain intervals lose all correlation between coordinates: through a ViT block ``|W| r`` replaces
``W d`` at every linear map and the softmax exponentiates the resulting width, so enclosures explode
(observed on the default model: ``1e250`` after four blocks).  But the whole path depends on **one**
scalar ``theta``: on a sub-interval write ``theta = theta_c + h eps`` with ``eps in [-1, 1]`` and
represent every quantity by a polynomial in ``eps`` plus a remainder radius,

    x(eps) in c_0 + c_1 eps + ... + c_n eps^n + [-r, r]        (c_i point tensors, r >= 0).

Linear maps act exactly on the ``c_i`` (keeping the cancellations of ``W d``, ``W x''``, ...); only the
remainder (order ``h^(n+1)``) is propagated with ``|W|``.  ``n = 1`` is affine arithmetic; ``n = 2``
also carries the curvature, which on the default ViT shrinks the remainders by orders of
magnitude; ``n = 4`` (the default of :mod:`verification.bridge.vit_interval`) shrinks them further, so
that fewer sub-intervals are needed.  Rules (``spread = sum_{i>=1} |c_i| + r`` bounds ``|x - c_0|``; box
``c_0 +- spread``):

* sums, point scaling, ``linear``, ``sum``, ``mean``, ``minus_mean``: exact on the ``c_i``, ``|.|`` on ``r``;
* product: polynomial product truncated at degree ``n``; the dropped terms ``sum_{i+j>n} |x_i y_j|``
  (``|eps| <= 1``) and ``r_x (sum |y_i| + r_y) + r_y sum |x_i|`` go to the remainder; ``matmul`` is the
  same with matrix products (dropped terms bounded by ``|x_i| @ |y_j|``);
* smooth ``f`` (Taylor with Lagrange remainder around ``c_0``, :mod:`certs.intervals.smooth`):
  ``sum_{k<=n} f^(k)(c_0) / k! delta^k + M_{n+1} spread^(n+1) / (n+1)!`` with ``delta = x - c_0``
  and ``M_{n+1} >= sup_box |f^(n+1)|``; the float errors of the ``f^(k)(c_0)`` (per entry, from the
  function) times ``spread^k / k!`` go to the remainder;
* ReLU on a box crossing 0 (``l < 0 < u``): ``lambda x + mu +- mu`` with ``lambda = u / (u - l)``,
  ``mu = -lambda l / 2``; abs on a crossing box: ``[0, max(-l, u)]``.

Float64 rounding (``u = 2^-53``, ``gamma_k = k u / (1 - k u) <= (k + 1) u``, valid for any summation order
and for FMA): each computed coefficient has an error below ``gamma_k * (sum of |terms|)``, added to ``r``
(one rounding: ``u |c|``; a product's ``n + 1`` terms: ``(n + 3) u sum_{i,j} |x_i| |y_j|``; a linear map
with inner size ``m``, computed in blocks (:mod:`certs.intervals.blocked`): ``(units + 2) u |c| |W|`` with
``units ~ m / 4 + 4`` instead of ``m + 1``; ``x - mean x``: ``u |result| + (units + 3) u mean |x|``, the error
of the blocked mean); ``r`` is computed from non-negative terms, multiplied by ``1 + gamma`` and rounded up; NaN
remainders (``0 * inf`` after an overflow) become ``+inf``.  ``exp`` and GELU carry proven error bounds
(:mod:`certs.intervals.elementary`), the powers (``rsqrt``, reciprocal) their proven ``16 eps``, ``tanh``
the library assumption ``FN_REL`` (:mod:`certs.intervals.smooth`).

:class:`TaylorDual` pairs a value form with a tangent form on the same ``eps``; its rules are the chain
rule of :mod:`certs.intervals.dual` with the factor ``f'(x)`` itself a Taylor form (needs
``f^(1..n+1)`` and ``M_{n+2}``).  Taylor forms are not inclusion-isotone, so
:mod:`certs.intervals.refinement` intersects every child's bounds with its parent's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import Callable, Sequence, Union

import torch

from .blocked import blocked_matmul, blocked_sum
from .interval import EPS, U, TINY, Interval, round_down, round_up_tensor
from .smooth import EXP, GELU, RECIPROCAL, RSQRT, TANH, SmoothFunction

__all__ = ["TaylorForm", "TaylorDual"]

_TANH_GELU_K = math.sqrt(2.0 / math.pi)
_TANH_GELU_A = 0.044715


def _up(x: torch.Tensor, terms: int = 8, fresh: bool = False) -> torch.Tensor:
    """``x (1 + terms eps) + 2^-1022`` rounded up (the absolute term covers underflow: a product's error below
    ``2^-1022`` is at most ``2^-1075``, far below it for the few products behind one entry); NaN read as ``+inf``.
    ``fresh``: ``x`` is a temporary of the caller and is overwritten (else a copy is made)."""
    if fresh:
        x = x.nan_to_num_(nan=float("inf"), posinf=float("inf"))
    else:
        x = torch.nan_to_num(x, nan=float("inf"), posinf=float("inf"))
    x.mul_(1.0 + terms * EPS).add_(TINY)
    return torch.nextafter(x, x.new_full((), float("inf")), out=x)


def _spread_powers(spread: torch.Tensor, m: int) -> list[torch.Tensor]:
    """``[spread^1, ..., spread^m]`` by repeated multiplication (``spread >= 0``), each product rounded up by one ulp
    (``nextafter`` toward ``+inf``), so every power is at least the exact ``spread^k``, in the subnormal range too: a
    product that underflows to 0 (spread below ~1e-36 at order 8) would drop the Lagrange term ``bound spread^(n+1)``
    of :meth:`TaylorForm.compose`, which the final ``2^-1022`` does not cover when ``bound`` is large (the
    ``(k - 1) u`` that ``compose`` charges for the powers is then a spare margin); ~5x cheaper than ``pow``."""
    out = [spread]
    up = torch.full_like(spread, math.inf)
    for _ in range(1, m):
        out.append(torch.nextafter(out[-1] * spread, up))
    return out


def _abs_sum(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    """``sum_i |t_i|`` (float, accumulated in place)."""
    out = tensors[0].abs()
    for t in tensors[1:]:
        a = t.abs()
        out = _accumulate(out, a)
    return out


def _accumulate(total: torch.Tensor | None, term: torch.Tensor) -> torch.Tensor:
    """``total + term``, in place where ``total`` (a temporary of the caller) has the shape of ``term``."""
    if total is None:
        return term
    return total.add_(term) if total.shape == term.shape else total + term


def _product_sum(x: Sequence[torch.Tensor], y: Sequence[torch.Tensor], k: int, lo: int, hi: int) -> torch.Tensor:
    """``sum_{i=lo}^{hi} x_i y_{k-i}`` (a new tensor), accumulated in place (``addcmul_``: with or without FMA, an
    inner product of ``hi - lo + 1`` terms, within ``gamma_{hi-lo+1}``)."""
    total = x[lo] * y[k - lo]
    for i in range(lo + 1, hi + 1):
        a, b = x[i], y[k - i]
        if total.shape == a.shape == b.shape:
            total.addcmul_(a, b)
        else:
            total = total + a * b
    return total


def _nonzero(coef: Sequence[torch.Tensor]) -> list[bool]:
    """Per coefficient: has it an entry that is not an exact zero (NaN counts as non-zero)?"""
    return [bool((c != 0).any()) for c in coef]


def _multiply_add(total: torch.Tensor | None, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``total + a b`` (``a b`` where ``total`` is ``None``), in place where ``total`` (a temporary) has the shape."""
    if total is None:
        return a * b
    return total.addcmul_(a, b) if total.shape == a.shape == b.shape else total + a * b


Operand = Union["TaylorForm", torch.Tensor, float]


@dataclass(frozen=True, eq=False)
class TaylorForm:
    """``sum_i c_i eps^i + [-r, r]`` for ``eps in [-1, 1]`` (module docstring)."""

    coef: tuple[torch.Tensor, ...]
    r: torch.Tensor

    @property
    def order(self) -> int:
        return len(self.coef) - 1

    @staticmethod
    def point(x: torch.Tensor, order: int) -> "TaylorForm":
        zero = torch.zeros_like(x)
        return TaylorForm((x,) + (zero,) * order, zero)

    def bare(self) -> "TaylorForm":
        """The same polynomial with remainder 0 (encloses only the polynomial's own values)."""
        return TaylorForm(self.coef, torch.zeros_like(self.r))

    @staticmethod
    def build(coef: Sequence[torch.Tensor], r: torch.Tensor, err: torch.Tensor | float = 0.0,
              scale: torch.Tensor | None = None) -> "TaylorForm":
        """Form with computed coefficients (float error at most ``err``, plus one rounding each) and remainder ``r``.

        ``scale``: replaces ``sum_i |c_i|`` in the rounding term ``u sum_i |c_i|`` (a known bound, or a larger
        error scale in units of ``u``)."""
        coef = tuple(coef)
        total = _abs_sum(coef).mul_(U) if scale is None else U * scale
        total = _accumulate(total, r)
        if isinstance(err, torch.Tensor):
            total = _accumulate(total, err)
        elif err:
            total = total.add_(err)
        return TaylorForm(coef, _up(total, fresh=True))

    @staticmethod
    def cat(parts: Sequence["TaylorForm"], dim: int) -> "TaylorForm":
        coef = tuple(torch.cat([p.coef[i] for p in parts], dim) for i in range(parts[0].order + 1))
        return TaylorForm(coef, torch.cat([p.r for p in parts], dim))

    def rearrange(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> "TaylorForm":
        return TaylorForm(tuple(fn(c) for c in self.coef), fn(self.r))

    @property
    def shape(self) -> torch.Size:
        return self.coef[0].shape

    @cached_property
    def magnitude(self) -> torch.Tensor:
        """``sum_i |c_i|`` (float; computed once per form)."""
        return _abs_sum(self.coef)

    def tail_mag(self) -> torch.Tensor:
        """``sum_{i>=1} |c_i|`` (float)."""
        return _abs_sum(self.coef[1:]) if self.order else torch.zeros_like(self.r)

    def spread(self) -> torch.Tensor:
        """Upper bound of ``|x - c_0|``."""
        return _up(self.tail_mag() + self.r, 2 * self.order + 2)

    def box(self, spread: torch.Tensor | None = None) -> Interval:
        """``c_0 +- spread`` (``spread``: :meth:`spread`, if already computed)."""
        s = self.spread() if spread is None else spread
        return Interval(round_down(self.coef[0] - s), round_up_tensor(self.coef[0] + s))

    def truncated(self, degree: int) -> "TaylorForm":
        """The form of order ``degree`` (``<= order``) with the higher terms in the remainder:
        ``|sum_{i > degree} c_i eps^i| <= sum_{i > degree} |c_i|`` for ``|eps| <= 1``, so
        ``r' = r + sum_{i > degree} |c_i|`` (a float sum of ``order - degree + 1`` non-negative terms, within
        ``gamma_{order - degree}``, rounded up)."""
        if not 0 <= degree <= self.order:
            raise ValueError(f"degree: must lie in [0, {self.order}], got {degree!r}")
        if degree == self.order:
            return self
        tail = _abs_sum(self.coef[degree + 1:])
        return TaylorForm(self.coef[:degree + 1], _up(tail.add_(self.r), self.order - degree + 2, fresh=True))

    def _shift(self, value) -> "TaylorForm":
        return TaylorForm.build((self.coef[0] + value,) + self.coef[1:], self.r)

    # ------------------------------------------------------------------ linear rules
    def __add__(self, other: Operand) -> "TaylorForm":
        if isinstance(other, TaylorForm):
            return TaylorForm.build(tuple(x + y for x, y in zip(self.coef, other.coef)), self.r + other.r)
        return self._shift(other)

    __radd__ = __add__

    def __neg__(self) -> "TaylorForm":
        return TaylorForm(tuple(-c for c in self.coef), self.r)

    def __sub__(self, other: Operand) -> "TaylorForm":
        return self + (-other)

    def __rsub__(self, other: Operand) -> "TaylorForm":
        return (-self) + other

    def __mul__(self, other: Operand) -> "TaylorForm":
        if not isinstance(other, TaylorForm):
            w = torch.as_tensor(other, dtype=self.r.dtype, device=self.r.device)
            return TaylorForm.build(tuple(c * w for c in self.coef), self.r * w.abs())
        return self._times(other, 0, 0)

    def _times(self, other: "TaylorForm", low_x: int, low_y: int) -> "TaylorForm":
        """The product rule (module docstring) where the coefficients of ``self`` below degree ``low_x`` and those of
        ``other`` below ``low_y`` are known exact zeros (skipped: an exact zero adds nothing; an overflow elsewhere
        still makes the remainder infinite)."""
        n = self.order
        coef, high = [], None
        for k in range(2 * n + 1):
            lo, hi = max(low_x, k - n), min(k - low_y, n)
            if lo > hi:  # every term is an exact zero
                if k <= n:
                    x0, y0 = self.coef[0], other.coef[0]
                    coef.append(torch.zeros_like(x0) if x0.shape == y0.shape else torch.zeros_like(x0 * y0))
                continue
            total = _product_sum(self.coef, other.coef, k, lo, hi)
            if k <= n:
                coef.append(total)
            else:  # dropped degree k: |sum_{i+j=k} x_i y_j| (keeps cancellations, e.g. in e / sum e)
                high = _accumulate(high, total.abs_())
        mag_x, mag_y = self.magnitude, other.magnitude
        r = _accumulate(high, self.r * (mag_y + other.r))
        r = _accumulate(r, other.r * mag_x)
        # every degree k (kept or dropped) sums at most n + 1 products: float error <= gamma_{n+1}
        # sum_{i+j=k} |x_i y_j|, and over all k at most (n + 2) u mag_x mag_y
        return TaylorForm.build(coef, r, scale=(n + 3) * (mag_x * mag_y))

    __rmul__ = __mul__

    def divide(self, n: float) -> "TaylorForm":
        return TaylorForm.build(tuple(c / n for c in self.coef), self.r / n)

    def linear(self, weight: torch.Tensor, bias: torch.Tensor | None = None) -> "TaylorForm":
        """``x W^T + b`` over the last dim (point ``W``; coefficients by :func:`blocked_matmul`)."""
        wt = weight.transpose(-1, -2)
        m = weight.shape[-1]
        products = [blocked_matmul(c, wt) for c in self.coef]
        coef = tuple(value for value, _ in products)
        g = (products[0][1] + 2) * U
        r = ((self.r + g * self.magnitude) @ wt.abs()).mul_(1.0 + (m + 4) * U).add_((m + 1) * TINY)
        out = TaylorForm(coef, _up(r, fresh=True))
        return out if bias is None else out + bias

    def matmul(self, other: "TaylorForm") -> "TaylorForm":
        """``X Y`` of two forms (batched like ``torch.matmul``; module docstring).  Coefficients that are exact zeros
        (e.g. above degree 1 on the start of a path, which is affine in theta) are skipped: an exact zero adds
        nothing to a coefficient, and an overflow elsewhere still makes the remainder infinite (through the
        magnitudes); the rounding bound, for the full count of terms, stays valid for fewer."""
        n = self.order
        k_inner = self.coef[0].shape[-1]
        live_x, live_y = _nonzero(self.coef), _nonzero(other.coef)
        shape = torch.broadcast_shapes(self.shape[:-2], other.shape[:-2]) + (self.shape[-2], other.shape[-1])
        coef = []
        for k in range(n + 1):
            total = None
            for i in range(k + 1):
                if live_x[i] and live_y[k - i]:
                    total = _accumulate(total, self.coef[i] @ other.coef[k - i])
            coef.append(self.coef[0].new_zeros(shape) if total is None else total)
        g = (k_inner + 2 * n + 6) * U
        mag_x, mag_y = self.magnitude, other.magnitude
        r = _accumulate(mag_x @ (other.r + g * mag_y), self.r @ (mag_y + other.r))
        tail = None  # sum_{j > n - i} |y_j|, grown from j = n down (exact zeros skipped)
        for i in range(1, n + 1):  # dropped degrees i + j > n, bounded by |x_i| @ sum_{j > n - i} |y_j|
            if live_y[n - i + 1]:
                size = other.coef[n - i + 1].abs()
                tail = size if tail is None else tail + size
            if tail is not None and live_x[i]:
                r = _accumulate(r, self.coef[i].abs() @ tail)
        return TaylorForm(tuple(coef), _up(r.mul_(1.0 + g).add_((k_inner + 1) * TINY), fresh=True))

    def sum(self, dim: int, keepdim: bool = False) -> "TaylorForm":
        k = self.shape[dim]
        sums = [blocked_sum(c, dim, keepdim) for c in self.coef]
        g = (sums[0][1] + 4) * U
        r = (self.r + g * _abs_sum(self.coef)).sum(dim, keepdim) * (1.0 + (k + 4) * U)
        return TaylorForm(tuple(value for value, _ in sums), _up(r))

    def mean(self, dim: int, keepdim: bool = False) -> "TaylorForm":
        return self.sum(dim, keepdim).divide(float(self.shape[dim]))

    def _centring(self, dim: int) -> tuple[tuple[torch.Tensor, ...], torch.Tensor, torch.Tensor]:
        """``x - mean(x)``: coefficients, the per-entry rounding ``u |c|`` and the shared part (one scalar per
        slice along ``dim``): ``mean(r)`` and the float mean's error ``(units + 1) u mean |x|`` (a :func:`blocked_sum`
        and a division), with margin."""
        k = self.shape[dim]
        sums = [blocked_sum(c, dim, keepdim=True) for c in self.coef]
        coef = tuple(c - total / k for c, (total, _) in zip(self.coef, sums))
        shared = self.r.mean(dim, keepdim=True) + (sums[0][1] + 3) * U * self.magnitude.mean(dim, keepdim=True)
        return coef, U * _abs_sum(coef), shared * (1.0 + (k + 6) * U)

    def minus_mean(self, dim: int = -1) -> "TaylorForm":
        """``x - mean(x)`` along ``dim``: exact on the ``c_i``, ``|I - 1 1^T / k| r`` on the remainder (rounding:
        :meth:`_centring`)."""
        k = self.shape[dim]
        coef, own, shared = self._centring(dim)
        return TaylorForm(coef, _up(((1.0 - 2.0 / k) * self.r + own) * (1.0 + (k + 6) * U) + shared))

    def centred(self, dim: int = -1) -> tuple["TaylorForm", torch.Tensor]:
        """``x - mean(x)`` as ``c + mu 1`` with ``|mu| <= m``, one scalar per slice along ``dim``: ``c.r`` holds the
        input's remainder and the per-entry rounding, ``m`` the centring of the remainder and the mean's error
        (for :mod:`certs.intervals.normed`)."""
        coef, own, shared = self._centring(dim)
        return TaylorForm(coef, _up(self.r + own)), _up(shared)

    # ------------------------------------------------------------------ smooth functions
    def delta_powers(self) -> list["TaylorForm"]:
        """``(x - c_0)^k`` for ``k = 1..n`` (shared by every function composed with the same form); the coefficients of
        ``(x - c_0)^k`` below degree ``k`` are exact zeros, and the products skip them (:meth:`_times`)."""
        delta = TaylorForm((torch.zeros_like(self.r),) + self.coef[1:], self.r)
        powers = [delta]
        for k in range(1, self.order):
            powers.append(powers[-1]._times(delta, k, 1))
        return powers

    def compose(self, derivs: Sequence[torch.Tensor], bound: torch.Tensor, errors: Sequence[torch.Tensor],
                powers: Sequence["TaylorForm"] | None = None,
                spreads: Sequence[torch.Tensor] | None = None) -> "TaylorForm":
        """``f(x)`` from ``derivs = [f(c_0), ..., f^(n)(c_0)]``, their float errors
        ``errors[k] >= |derivs[k] - f^(k)(c_0)|`` (absolute, per entry) and ``bound >= sup_box |f^(n+1)|`` (module
        docstring).  ``powers``: :meth:`delta_powers` if already computed; ``spreads``: ``spread^1..spread^(n+1)``
        (:func:`_spread_powers` of :meth:`spread`) if already computed.

        With ``s_k = fl(derivs[k] / k!)`` and ``P_k`` the form of ``delta^k`` (remainder ``r_k``), the coefficients
        ``c_0 = derivs[0]`` (no operation) and ``c_j = sum_{1 <= k <= j} s_k P_kj`` are accumulated directly (an inner
        product of ``j <= n`` terms: float error at most ``gamma_n sum_k |s_k P_kj|``, in all at most
        ``(n + 2) u sum_k |s_k| sum_j |P_kj|`` with margin for the float magnitudes), and the remainder is
        ``sum_k |s_k| r_k + sum_k (errors[k] / k! + u |s_k|) spread^k`` (the errors of the derivatives and of
        ``s_k``, ``|delta^k| <= spread^k``) plus the Lagrange term ``bound spread^(n+1) / (n+1)!`` and that
        rounding: a sum of at most ``n + 4`` non-negative terms, each within a few ``u`` plus the ``(k - 1) u`` of
        the repeated products ``spread^k``, all inside the final ``(2 n + 8) eps`` margin."""
        n = self.order
        powers = self.delta_powers() if powers is None else powers
        spreads = _spread_powers(self.spread(), n + 1) if spreads is None else spreads
        coef: list[torch.Tensor | None] = [derivs[0]] + [None] * n
        scale_sum = None
        err = errors[0].clone()
        r = None
        for k in range(1, n + 1):
            scale = derivs[k] / math.factorial(k)
            power = powers[k - 1]
            for j in range(k, n + 1):
                coef[j] = _multiply_add(coef[j], scale, power.coef[j])
            size = scale.abs()
            scale_sum = _multiply_add(scale_sum, size, power.magnitude)
            r = _multiply_add(r, size, power.r)
            err = _accumulate(err, (errors[k] / math.factorial(k) + U * size) * spreads[k - 1])
        total = _accumulate(err, bound * spreads[n] / math.factorial(n + 1))
        if n:
            total = _accumulate(_accumulate(total, scale_sum.mul_((n + 2) * U)), r)
        return TaylorForm(tuple(coef), _up(total, 2 * n + 8, fresh=True))

    def apply(self, fn: SmoothFunction, floor: torch.Tensor | float | None = None, first: int = 0) -> "TaylorForm":
        """``f^(first)(x)`` for the smooth ``fn``; ``floor``: a known lower bound of the true ``x`` (tightens the
        box)."""
        return self.apply_derivatives(fn, floor, (first,))[0]

    def apply_derivatives(self, fn: SmoothFunction, floor: torch.Tensor | float | None = None,
                          orders: Sequence[int] = (0, 1)) -> tuple["TaylorForm", ...]:
        """``f^(j)(x)`` for each ``j`` in ``orders``, sharing the box, the derivatives at ``c_0``, the powers and
        the powers of the spread."""
        spread = self.spread()
        box = self.box(spread)
        if floor is not None:
            floor = torch.as_tensor(floor, dtype=box.lo.dtype, device=box.lo.device)
            box = Interval(torch.maximum(box.lo, floor), box.hi)
        n = self.order
        a = self.coef[0]
        top = n + max(orders)
        derivs, errors = fn.evaluate(a, top)
        lagrange = fn.bounds(box, [n + 1 + j for j in orders])
        powers, spreads = self.delta_powers(), _spread_powers(spread, n + 1)
        return tuple(self.compose(derivs[j:j + n + 1], bound, errors[j:j + n + 1], powers, spreads)
                     for j, bound in zip(orders, lagrange))

    def relu_parts(self) -> tuple["TaylorForm", torch.Tensor]:
        """ReLU and a code per entry: 1 (identity, ``l >= 0``), 0 (zero, ``u <= 0``), -1 (crossing or NaN)."""
        box = self.box()
        l, u = box.lo, box.hi
        crossing = ~((l >= 0) | (u <= 0))
        lam = torch.where(crossing, u / (u - l), (l >= 0).to(l.dtype))
        mu = torch.where(crossing, -lam * l * 0.5, torch.zeros_like(l))
        scaled = self * lam
        out = TaylorForm.build(scaled._shift(mu).coef, scaled.r + mu, 4 * EPS * (box.mag() + mu))
        return out, torch.where(crossing, -1, (l >= 0).to(torch.int64))

    def abs_parts(self) -> tuple["TaylorForm", torch.Tensor]:
        """``|x|`` and a code: 1 (``l >= 0``), -2 (``u <= 0``, negation), -1 (crossing: box ``[0, max(-l, u)]``)."""
        box = self.box()
        l, u = box.lo, box.hi
        crossing = ~((l >= 0) | (u <= 0))
        sign = torch.where(l >= 0, 1.0, -1.0).to(l.dtype)
        half = 0.5 * torch.maximum(-l, u)
        coef = tuple(torch.where(crossing, half if i == 0 else torch.zeros_like(l), c * sign)
                     for i, c in enumerate(self.coef))
        out = TaylorForm(coef, _up(torch.where(crossing, half, self.r)))
        return out, torch.where(crossing, -1, torch.where(l >= 0, 1, -2))


def _slope_times(code: torch.Tensor, t: TaylorForm, negative_slope: float) -> TaylorForm:
    """``s t`` with slope ``s`` = 1 (code 1), 0 (code 0), -1 (code -2), or unknown in ``[negative_slope, 1]``
    (code -1)."""
    dtype = t.r.dtype
    fixed = torch.where(code == 1, 1.0, torch.where(code == -2, -1.0, 0.0)).to(dtype)
    crossing = code == -1
    scale = torch.where(crossing, torch.full_like(fixed, 0.5 * (1.0 + negative_slope)), fixed)
    extra = torch.where(crossing, 0.5 * (1.0 - negative_slope) * (_abs_sum(t.coef) + t.r), torch.zeros_like(fixed))
    scaled = t * scale
    return TaylorForm.build(scaled.coef, scaled.r + extra)


def _decay(form: TaylorForm) -> tuple[float, float]:
    """``(a_0, rho)`` with ``a_k = max |c_k|`` and ``rho = max_{k >= 1} (a_k / a_0)^(1 / k)``: the geometric rate
    of the coefficients, so that ``a_0 rho^k`` estimates the degree-``k`` terms that later non-linear rules would
    generate (e.g. ``f''(c_0) c_1^2 / 2`` from a form that is affine now)."""
    sizes = [float(c.abs().max()) for c in form.coef]
    if not sizes[0] > 0:
        return 0.0, 0.0
    return sizes[0], max((a / sizes[0]) ** (1.0 / k) for k, a in enumerate(sizes[1:], 1))


DualOperand = Union["TaylorDual", torch.Tensor, float]


@dataclass(frozen=True, eq=False)
class TaylorDual:
    """Value form and tangent form on one ``eps``; same methods as :class:`certs.intervals.dual.Dual`.  A dual whose
    ``tangent`` is ``None`` is *value only*: every rule skips the tangent (about a third of the work), and mixing it
    with a dual that has one is an error."""

    value: TaylorForm
    tangent: TaylorForm | None

    def _tangent(self, rule: Callable[[], TaylorForm], *others: "TaylorDual") -> TaylorForm | None:
        """``rule()`` (the tangent), or ``None`` where this dual (and every dual in ``others``) is value only."""
        value_only = [d.tangent is None for d in (self,) + others]
        if any(value_only) != all(value_only):
            raise ValueError("a value-only TaylorDual mixed with one that has a tangent")
        return None if value_only[0] else rule()

    def constant_like(self, x: torch.Tensor) -> "TaylorDual":
        order = self.value.order
        return TaylorDual(TaylorForm.point(x, order),
                          self._tangent(lambda: TaylorForm.point(torch.zeros_like(x), order)))

    @staticmethod
    def cat(parts: Sequence["TaylorDual"], dim: int) -> "TaylorDual":
        return TaylorDual(TaylorForm.cat([p.value for p in parts], dim),
                          parts[0]._tangent(lambda: TaylorForm.cat([p.tangent for p in parts], dim), *parts[1:]))

    def rearrange(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> "TaylorDual":
        return TaylorDual(self.value.rearrange(fn), self._tangent(lambda: self.tangent.rearrange(fn)))

    @property
    def shape(self) -> torch.Size:
        return self.value.shape

    def truncated(self, degree: int) -> "TaylorDual":
        """Both forms at order ``degree`` (:meth:`TaylorForm.truncated`)."""
        return TaylorDual(self.value.truncated(degree), self._tangent(lambda: self.tangent.truncated(degree)))

    def reduced(self, tol: float, guard: float = 1e-2) -> "TaylorDual":
        """:meth:`truncated` at the lowest degree ``m >= 1`` whose dropped terms are small against the remainder
        already carried, in both forms: ``sum_{i > m} |c_i| <= tol r`` in every entry (the remainders grow by at
        most the factor ``1 + tol``), and ``a_0 rho^(m + 1) <= guard tol max r`` (:func:`_decay`: the terms of
        degree ``m + 1`` that the later non-linear rules would generate and now drop into the remainder, estimated
        from the coefficients' geometric rate; ``guard`` leaves room for the many products and the derivative
        factors behind one such term).  Sound for any ``tol`` and ``guard`` (truncation is); they only trade the
        cost of the later rules (``(m + 1)^2`` coefficient products per Taylor product) against their tightness."""
        forms = [self.value] if self.tangent is None else [self.value, self.tangent]
        degree, tails = self.value.order, [None] * len(forms)
        rates = [_decay(f) for f in forms]
        while degree > 1:
            for k, f in enumerate(forms):
                size = f.coef[degree].abs()
                tails[k] = size if tails[k] is None else tails[k].add_(size)
            if not all(bool((tail <= tol * f.r).all()) and scale * rho ** degree <= guard * tol * float(f.r.max())
                       for tail, f, (scale, rho) in zip(tails, forms, rates)):
                break
            degree -= 1
        return self.truncated(degree)

    def enclosures(self) -> tuple[Interval, Interval]:
        """Boxes of the value and of the tangent."""
        return self.value.box(), self.tangent.box()

    def __add__(self, other: DualOperand) -> "TaylorDual":
        if isinstance(other, TaylorDual):
            return TaylorDual(self.value + other.value, self._tangent(lambda: self.tangent + other.tangent, other))
        return TaylorDual(self.value + other, self.tangent)

    __radd__ = __add__

    def __neg__(self) -> "TaylorDual":
        return TaylorDual(-self.value, self._tangent(lambda: -self.tangent))

    def __sub__(self, other: DualOperand) -> "TaylorDual":
        return self + (-other)

    def __mul__(self, other: DualOperand) -> "TaylorDual":
        if isinstance(other, TaylorDual):
            return TaylorDual(self.value * other.value,
                              self._tangent(lambda: self.tangent * other.value + self.value * other.tangent, other))
        return TaylorDual(self.value * other, self._tangent(lambda: self.tangent * other))

    __rmul__ = __mul__

    def linear(self, weight: torch.Tensor, bias: torch.Tensor | None = None) -> "TaylorDual":
        return TaylorDual(self.value.linear(weight, bias), self._tangent(lambda: self.tangent.linear(weight)))

    def matmul(self, other: "TaylorDual") -> "TaylorDual":
        return TaylorDual(self.value.matmul(other.value), self._tangent(
            lambda: self.tangent.matmul(other.value) + self.value.matmul(other.tangent), other))

    def sum(self, dim: int, keepdim: bool = False) -> "TaylorDual":
        return TaylorDual(self.value.sum(dim, keepdim), self._tangent(lambda: self.tangent.sum(dim, keepdim)))

    def mean(self, dim: int, keepdim: bool = False) -> "TaylorDual":
        return TaylorDual(self.value.mean(dim, keepdim), self._tangent(lambda: self.tangent.mean(dim, keepdim)))

    def minus_mean(self, dim: int = -1) -> "TaylorDual":
        return TaylorDual(self.value.minus_mean(dim), self._tangent(lambda: self.tangent.minus_mean(dim)))

    def square(self) -> "TaylorDual":
        return TaylorDual(self.value * self.value, self._tangent(lambda: (self.value * self.tangent) * 2.0))

    def _smooth(self, fn: SmoothFunction, floor=None) -> "TaylorDual":
        """Chain rule: value ``f(x)``, tangent ``f'(x) t`` with ``f'(x)`` a Taylor form."""
        if self.tangent is None:
            return TaylorDual(self.value.apply(fn, floor), None)
        value, slope = self.value.apply_derivatives(fn, floor, (0, 1))
        return TaylorDual(value, slope * self.tangent)

    def exp(self) -> "TaylorDual":
        return self._smooth(EXP)

    def reciprocal(self, floor: torch.Tensor | float = 0.0) -> "TaylorDual":
        """``1 / x``; ``floor``: a known lower bound of the true ``x``; unbounded where the box is not positive."""
        return self._smooth(RECIPROCAL, floor)

    def rsqrt(self, floor: torch.Tensor | float = 0.0) -> "TaylorDual":
        """``x^(-1/2)``; ``floor`` as in :meth:`reciprocal`."""
        return self._smooth(RSQRT, floor)

    def tanh(self) -> "TaylorDual":
        return self._smooth(TANH)

    def gelu(self) -> "TaylorDual":
        return self._smooth(GELU)

    def gelu_tanh(self) -> "TaylorDual":
        """``x (1 + tanh(k (x + a x^3))) / 2`` by composition of the rules above."""
        inner = (self + (self * self * self) * _TANH_GELU_A) * _TANH_GELU_K
        return (self * (inner.tanh() + 1.0)) * 0.5

    def relu(self) -> "TaylorDual":
        value, code = self.value.relu_parts()
        return TaylorDual(value, self._tangent(lambda: _slope_times(code, self.tangent, 0.0)))

    def abs(self) -> "TaylorDual":
        value, code = self.value.abs_parts()
        return TaylorDual(value, self._tangent(lambda: _slope_times(code, self.tangent, -1.0)))

    def softmax(self) -> "TaylorDual":
        """Softmax over the last dim: ``e / sum e`` with ``e = exp(x - max hi)`` (shift invariant).

        Known floor of the denominator: ``sum_j e^{x_j - s} >= max_j e^{lo_j - s}``."""
        box = self.value.box()
        shift = box.hi.amax(-1, keepdim=True)
        e = (self - shift).exp()
        floor = (Interval(box.lo, box.lo) - shift).exp().lo.amax(-1, keepdim=True)
        return e * e.sum(-1, keepdim=True).reciprocal(floor)
