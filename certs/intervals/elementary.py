"""``exp``, the Gaussian density and the normal cdf from IEEE float64 operations only, with proven error bounds.

Every function here is built from ``+ - *`` (correctly rounded, ``u = 2^-53``; FMA contraction would only
lower the errors), exact scalings by powers of two and float64 constants, so its error bound is a theorem,
not an assumption about a library kernel (``torch.exp`` / ``torch.special.erfc`` carry the assumed
``FN_REL = 1e-12`` of :mod:`certs.intervals.interval`).  ``gamma_k = k u / (1 - k u)``.  Horner's rule
``q_n = a_n``, ``q_i = fl(fl(x q_(i+1)) + a_i)`` returns ``sum_i (1 + theta_(2i+1)) a_i x^i`` with
``|theta_k| <= gamma_k`` (Higham, *Accuracy and Stability of Numerical Algorithms*, eq. 5.3): the
low-degree terms, which dominate a Taylor polynomial, carry few roundings.

* :func:`exp_enclosed`: ``x = k ln 2 + r`` with ``k = round(x / ln 2)`` and the Cody–Waite split
  ``ln 2 = C1 + C2 (+ < 2^-86)``, ``C1`` with 32 significant bits (so ``k C1`` is exact for ``|k| < 2^21``):
  ``r = (x - k C1) - k C2`` has error ``delta <= u (|x - k C1| + |k C2| + |r|) + |k| 2^-86 <= 0.36 eps``
  and ``|r| <= R = ln 2 / 2 + 3e-13``.  ``e^r`` is the Taylor polynomial ``sum_{i <= 13} r^i / i!`` by
  Horner: error ``<= sum_i gamma_(2i+1) R^i / i! <= u (1 + 2R) e^R / (1 - 27 u)`` (Horner),
  ``u (e^R - 1 - R)`` (coefficients ``fl(1 / i!)``, exact for ``i <= 1``) and ``R^14 / 14! e^R``
  (truncation); divided by ``e^r >= e^-R`` these become relative errors.  ``y = p 2^k1 2^k2`` (``k1 + k2 = k``,
  both powers exact) is exact unless ``y``
  is subnormal (absolute error ``<= 2^-1075``), overflows (``inf``, only for ``x > 709.78``) or ``x < -746``
  (``0``, ``e^x < 2^-1076``).  Hence ``|y - e^x| <= EXP_REL y + FN_ABS`` with :data:`EXP_REL` below
  (about ``2.1 eps``, computed from these terms times a ``1.01`` margin).
* :func:`gaussian_density` ``phi(a) = e^(-a^2 / 2) / sqrt(2 pi)``: ``a^2 = p + err`` exactly (Dekker's
  two-product, no overflow for ``|a| <= 40``), ``phi = exp_enclosed(-p / 2) (1 - err / 2) fl(1 / sqrt(2 pi))``
  (``|e^(-err/2) - (1 - err/2)| <= (u p)^2 / 8``, negligible); four more roundings:
  ``PDF_REL = EXP_REL + 4.5 u``.  ``|a| > 40``: ``0`` (``phi < 1e-347 <= FN_ABS``).
* :func:`normal_cdf` ``Phi(a)`` through the Mills ratio ``M(t) = Phi(-t) / phi(t)`` (``t >= 0``), which is
  completely monotone (``M(t) = int_0^inf e^(-t s - s^2 / 2) ds``): on the grid ``t_k = k / 8``,
  ``k = 0..320``, ``M(t_k + s) = sum_{j <= 12} c_kj s^j + T`` with ``c_kj = M^(j)(t_k) / j!`` computed by
  mpmath at 50 digits (``M^(j+1) = t M^(j) + j M^(j-1)``, ``M' = t M - 1``) and rounded to float64;
  ``|s| <= 1/16`` is exact (Sterbenz).  Horner costs ``u W`` relative with
  ``W = max_k sum_j (2j + 1) |c_kj| 16^-j / M(t_k + 1/16) / (1 - 25 u)`` (computed, ``M`` decreases); the
  coefficient rounding ``u rho`` with ``rho = max_k M(t_k - 1/16) / M(t_k + 1/16)`` (computed), because
  ``(-1)^j c_kj >= 0`` gives ``sum |c_kj| |s|^j <= M(t_k - 1/16)``;
  ``|T| <= |M^(13)(0)| / 13! 16^-13``, ``|M^(n)(0)| = 2^((n-1)/2) Gamma((n+1)/2)``, relative to
  ``M(t) >= M(40.0625)``.  Then ``Phi(a) = phi(a) M(-a)`` for ``a < 0`` and ``1 - phi(a) M(a)`` for ``a >= 0``
  (``phi M <= 1/2 <= Phi`` there): ``CDF_REL = PDF_REL + MILLS_REL + 2.5 u``.  ``|a| > 40``: ``0`` or ``1``
  (error ``< 1e-349``).

Each bound is relative to the *computed* value (``rel / (1 - rel)`` folded in by the margin) plus
``FN_ABS = 1e-300``; tests compare with mpmath at 50 digits, with a known-bad polynomial degree.
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch

from .rounding import EPS, FN_ABS, U, round_down, round_up_tensor

__all__ = ["EXP_REL", "PDF_REL", "MILLS_REL", "CDF_REL", "gamma", "exp_enclosed", "gaussian_density", "normal_cdf",
           "exp_bounds", "EXP_DEGREE", "MILLS_DEGREE"]



def gamma(k: int) -> float:
    """``gamma_k = k u / (1 - k u)`` (Higham), ``u = 2^-53``."""
    return k * U / (1.0 - k * U)


# ---------------------------------------------------------------------------- exp
#: Degree of the Taylor polynomial of ``e^r`` on ``|r| <= ln 2 / 2``.
EXP_DEGREE = 13
_LN2 = math.log(2.0)
_INV_LN2 = 1.0 / _LN2
_C1 = math.ldexp(math.floor(math.ldexp(_LN2, 32)), -32)  # 32 significant bits
_R_MAX = _LN2 / 2 + 3e-13
_EXP_COEFFS = [1.0 / math.factorial(i) for i in range(EXP_DEGREE + 1)]


@lru_cache(maxsize=1)
def _c2() -> float:
    import mpmath

    with mpmath.workdps(50):
        return float(mpmath.log(2) - mpmath.mpf(_C1))


def _exp_rel() -> float:
    e_r = math.exp(_R_MAX)
    horner = U * (1 + 2 * _R_MAX) * e_r / (1 - (2 * EXP_DEGREE + 1) * U)
    coefficients = U * (e_r - 1 - _R_MAX)
    truncation = _R_MAX ** (EXP_DEGREE + 1) / math.factorial(EXP_DEGREE + 1) * e_r
    polynomial = e_r * (horner + coefficients + truncation)
    delta = 0.36 * EPS
    return 1.01 * ((1 + polynomial) * (1 + 1.0001 * delta) - 1)


#: Proven relative error bound of :func:`exp_enclosed` (module docstring).
EXP_REL = _exp_rel()


def _power_of_two(k: torch.Tensor) -> torch.Tensor:
    """``2^k`` exactly, for integer-valued float ``k`` in ``[-1022, 1023]`` (built from the exponent bits)."""
    return torch.bitwise_left_shift(k.to(torch.int64) + 1023, 52).view(torch.float64)


def exp_enclosed(x: torch.Tensor) -> torch.Tensor:
    """``e^x`` (float64) with ``|y - e^x| <= EXP_REL y + FN_ABS`` (module docstring); NaN stays NaN."""
    x = torch.as_tensor(x, dtype=torch.float64)
    xc = torch.clamp(x, -746.0, 710.0)
    k = torch.round(xc * _INV_LN2)
    r = (xc - k * _C1) - k * _c2()
    p = torch.full_like(r, _EXP_COEFFS[-1])
    for c in _EXP_COEFFS[-2::-1]:
        p.mul_(r).add_(c)
    k1 = torch.floor(k * 0.5)
    y = p.mul_(_power_of_two(k1)).mul_(_power_of_two(k - k1))
    y = torch.where(x < -746.0, torch.zeros_like(y), torch.where(x > 710.0, torch.full_like(y, float("inf")), y))
    return torch.where(torch.isnan(x), x, y)


def exp_bounds(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(lower, upper)`` float64 bounds of ``e^x`` (outward rounded; ``lower`` stays finite where ``y`` overflows)."""
    y = exp_enclosed(x)
    lower = round_down(torch.clamp(y * (1.0 - 2.0 * EXP_REL) - FN_ABS, min=0.0))
    lower = torch.where(torch.isinf(y), torch.full_like(y, torch.finfo(torch.float64).max), lower)
    return lower, round_up_tensor(y * (1.0 + 2.0 * EXP_REL) + FN_ABS)


# ---------------------------------------------------------------------------- Gaussian density
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_SPLIT = 2.0 ** 27 + 1.0
_TAIL = 40.0

#: Proven relative error bound of :func:`gaussian_density`.
PDF_REL = EXP_REL + 4.5 * U


def _square_with_error(a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(p, err)`` with ``p = fl(a a)`` and ``p + err = a^2`` exactly (Dekker; no overflow for ``|a| <= 2^500``)."""
    p = a * a
    c = _SPLIT * a
    hi = c - (c - a)
    lo = a - hi
    err = ((hi * hi - p) + 2.0 * hi * lo) + lo * lo
    return p, err


def gaussian_density(a: torch.Tensor) -> torch.Tensor:
    """``phi(a) = e^(-a^2 / 2) / sqrt(2 pi)`` with ``|y - phi| <= PDF_REL y + FN_ABS`` (module docstring)."""
    a = torch.as_tensor(a, dtype=torch.float64)
    inside = a.abs() <= _TAIL
    ac = torch.where(inside, a, torch.zeros_like(a))
    p, err = _square_with_error(ac)
    y = (exp_enclosed(-0.5 * p) * (1.0 - 0.5 * err)) * _INV_SQRT_2PI
    y = torch.where(inside, y, torch.zeros_like(y))
    return torch.where(torch.isnan(a), a, y)


# ---------------------------------------------------------------------------- normal cdf
#: Degree of the Taylor polynomials of the Mills ratio on the grid ``k / 8``.
MILLS_DEGREE = 12
_GRID = 8
_CELLS = int(_TAIL * _GRID)


@lru_cache(maxsize=1)
def _mills_table() -> tuple[torch.Tensor, float]:
    """``(c, rho, W)``: ``c[j, k] = fl(M^(j)(k / 8) / j!)``, ``rho`` and the Horner weight ``W`` (module docstring)."""
    import mpmath

    with mpmath.workdps(100):  # the forward recurrence loses ~3 digits per step at t = 40
        def mills(t):
            return mpmath.erfc(t / mpmath.sqrt(2)) / 2 / mpmath.npdf(t)

        rows, rho, weight = [], mpmath.mpf(0), mpmath.mpf(0)
        half = mpmath.mpf(1) / (2 * _GRID)
        for k in range(_CELLS + 1):
            t = mpmath.mpf(k) / _GRID
            derivs = [mills(t)]
            derivs.append(t * derivs[0] - 1)
            for j in range(1, MILLS_DEGREE):
                derivs.append(t * derivs[j] + j * derivs[j - 1])
            coeffs = [d / mpmath.factorial(j) for j, d in enumerate(derivs)]
            rows.append([float(c) for c in coeffs])
            low = mills(t + half)
            rho = max(rho, mills(t - half) / low)
            weight = max(weight, sum((2 * j + 1) * abs(c) * half ** j for j, c in enumerate(coeffs)) / low)
    return (torch.tensor(rows, dtype=torch.float64).T.contiguous(), float(rho) * (1 + 1e-12),
            float(weight) / (1 - (2 * MILLS_DEGREE + 1) * U) * (1 + 1e-12))


def _mills_rel(rho: float, weight: float) -> float:
    n = MILLS_DEGREE + 1
    top = 2.0 ** ((n - 1) / 2) * math.gamma((n + 1) / 2)  # |M^(n)(0)| = sup_{t >= 0} |M^(n)(t)|
    truncation = top / math.factorial(n) * (2.0 * _GRID) ** -n
    floor = 1.0 / (_TAIL + 1.0 / (2 * _GRID) + 1.0)  # min M = M(40.0625) > t / (t^2 + 1) >= 1 / (t + 1)
    return 1.01 * (U * weight + U * rho * (1 + U) + truncation / floor)


_RHO, _WEIGHT = 1.11, 1.25
#: Proven relative error bounds of the Mills ratio and of :func:`normal_cdf` (given ``rho <= 1.11`` and
#: ``W <= 1.25``, checked when the table is built).
MILLS_REL = _mills_rel(_RHO, _WEIGHT)
CDF_REL = PDF_REL + MILLS_REL + 2.5 * U


def _mills(t: torch.Tensor) -> torch.Tensor:
    """``M(t)`` for ``0 <= t <= 40`` from the table (module docstring)."""
    table, rho, weight = _mills_table()
    if rho > _RHO or weight > _WEIGHT:  # MILLS_REL assumes both; a change of grid or degree must revisit it
        raise RuntimeError(f"Mills table: rho {rho} > {_RHO} or Horner weight {weight} > {_WEIGHT}")
    table = table.to(t.device)
    k = torch.round(t * _GRID)
    s = t - k / _GRID
    index = k.to(torch.int64)
    out = table[MILLS_DEGREE].take(index)  # a copy: the Horner steps below are in place
    for j in range(MILLS_DEGREE - 1, -1, -1):
        out.mul_(s).add_(table[j].take(index))
    return out


def normal_cdf(a: torch.Tensor) -> torch.Tensor:
    """``Phi(a)`` with ``|y - Phi| <= CDF_REL y + FN_ABS`` (module docstring); NaN stays NaN."""
    a = torch.as_tensor(a, dtype=torch.float64)
    t = torch.clamp(a.abs(), max=_TAIL)
    t = torch.where(torch.isnan(t), torch.zeros_like(t), t)
    tail = gaussian_density(t) * _mills(t)
    y = torch.where(a < 0, tail, 1.0 - tail)
    y = torch.where(a < -_TAIL, torch.zeros_like(y), torch.where(a > _TAIL, torch.ones_like(y), y))
    return torch.where(torch.isnan(a), a, y)
