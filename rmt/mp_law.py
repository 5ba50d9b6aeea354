"""The Marchenko–Pastur law as frozen distribution objects (THEORY.md section 2, ALGORITHMS.md 1.3).

Two conventions, one object each, in the style of ``scipy.stats`` frozen distributions:

* :class:`MarchenkoPastur` — the **eigenvalue** law of ``X = W^T W / N`` for ``W`` of shape
  ``(N, M)`` with iid centred entries of variance ``sigma2`` and ``c = M / N`` (Theorem 2.2):

      mu = (1 - 1/c)_+ delta_0 + sqrt((l+ - x)(x - l-)) / (2 pi c sigma2 x) 1[l-, l+](x) dx,
      l+- = sigma2 (1 +- sqrt(c))^2.

  The atom at zero is present only for ``c > 1``; :meth:`MarchenkoPastur.pdf` is the density of
  the absolutely continuous part (total mass ``min(1, 1/c)``) and :meth:`MarchenkoPastur.cdf`
  includes the atom.
* :class:`MarchenkoPasturSingular` — the **singular-value** law of ``W`` itself (Definition 2.1:
  the ``min(N, M)`` singular values, equal weights): the push-forward of the non-zero part of the
  eigenvalue law under ``x -> sqrt(N x)``, renormalised.  Its edges are
  ``sigma+- = sqrt(N l+-) = s |sqrt(N) +- sqrt(M)|`` (section 2.4).

The CDF of the continuous part is the closed form of ALGORITHMS.md 1.3 (exact at both edges:
0 at ``l-`` and 1 at ``l+``); quantiles are found by vectorized bisection to full float64
precision.  The conversion helpers at the end implement the edge-convention table of
THEORY.md 2.4.
"""

from __future__ import annotations

import numbers
from functools import lru_cache
from math import comb

import numpy as np

from .errors import InvalidParameterError

__all__ = [
    "MarchenkoPastur",
    "MarchenkoPasturSingular",
    "mp_edges",
    "singular_edges",
    "sigma_from_lambda",
    "lambda_from_sigma",
    "g_from_sigma_plus",
    "sigma_plus_from_g",
    "narayana_moment",
]

_BISECTION_STEPS = 80
_QUAD_NODES = 48


#: Largest output of ``rvs`` in bytes (``size * min(N, M) * 8``); more is refused with the figure.
MAX_RVS_BYTES = 2**30


def _check_positive(name: str, value: float) -> float:
    """``value`` as a finite float > 0; a bool, string, array or other non-real raises
    :class:`InvalidParameterError`."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise InvalidParameterError(f"{name} must be a real number > 0, got {type(value).__name__} {value!r}")
    value = float(value)
    if not np.isfinite(value) or value <= 0.0:
        raise InvalidParameterError(f"{name} must be a finite number > 0, got {value!r}")
    return value


def _check_count(name: str, value: object, minimum: int) -> int:
    """``value`` as an ``int >= minimum``; a float (``2.5``), bool or string raises :class:`InvalidParameterError`."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral) or value < minimum:
        raise InvalidParameterError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _nan_where_nan(x: np.ndarray, values: np.ndarray) -> np.ndarray:
    """``values`` with NaN wherever the argument ``x`` is NaN (as ``scipy.stats`` does)."""
    return np.where(np.isnan(x), np.nan, values)


def _sample_count(size: int | None, row_length: int) -> int:
    """The number of simulated matrices of ``rvs``; refuses an output above :data:`MAX_RVS_BYTES`."""
    count = 1 if size is None else _check_count("size", size, 0)
    if count * row_length * 8 > MAX_RVS_BYTES:
        raise InvalidParameterError(
            f"size={count}: the output of {count} x {row_length} float64 values "
            f"({count * row_length * 8 / 2**30:.3g} GiB) exceeds the limit of {MAX_RVS_BYTES / 2**30:.3g} GiB; "
            "draw it in batches"
        )
    return count


def mp_edges(ratio: float, sigma2: float = 1.0) -> tuple[float, float]:
    """Eigenvalue edges ``(lambda_-, lambda_+) = sigma2 (1 -+ sqrt(ratio))^2`` of ``W^T W / N``."""
    c = _check_positive("ratio", ratio)
    s2 = _check_positive("sigma2", sigma2)
    r = np.sqrt(c)
    return s2 * (1.0 - r) ** 2, s2 * (1.0 + r) ** 2


def singular_edges(n_rows: int, n_cols: int, s2: float = 1.0) -> tuple[float, float]:
    """Singular-value edges ``sigma_-+ = s |sqrt(N) -+ sqrt(M)|`` of an ``N x M`` matrix with entry variance ``s2``."""
    n = _check_positive("n_rows", n_rows)
    m = _check_positive("n_cols", n_cols)
    s = np.sqrt(_check_positive("s2", s2))
    return s * abs(np.sqrt(n) - np.sqrt(m)), s * (np.sqrt(n) + np.sqrt(m))


def sigma_from_lambda(lam: float | np.ndarray, n_rows: int) -> float | np.ndarray:
    """Singular-value scale from eigenvalue scale: ``sigma = sqrt(N * lambda)`` (section 2.4)."""
    return np.sqrt(_check_positive("n_rows", n_rows) * np.asarray(lam, dtype=np.float64))


def lambda_from_sigma(sigma: float | np.ndarray, n_rows: int) -> float | np.ndarray:
    """Eigenvalue scale from singular-value scale: ``lambda = sigma^2 / N`` (section 2.4)."""
    return np.asarray(sigma, dtype=np.float64) ** 2 / _check_positive("n_rows", n_rows)


def g_from_sigma_plus(sigma_plus: float, ratio: float) -> float:
    """Invert a singular-value edge: ``g = (sigma_+ / (1 + sqrt(c)))^2`` (entries ``N(0, g/N)``)."""
    return (float(sigma_plus) / (1.0 + np.sqrt(_check_positive("ratio", ratio)))) ** 2


def sigma_plus_from_g(g: float, ratio: float) -> float:
    """Nominal singular-value edge ``sigma_+ = sqrt(g) (1 + sqrt(c))`` of a matrix with entries ``N(0, g/N)``."""
    return float(np.sqrt(float(g)) * (1.0 + np.sqrt(_check_positive("ratio", ratio))))


def narayana_moment(k: int, ratio: float, sigma2: float = 1.0) -> float:
    """``k``-th moment of the MP eigenvalue law, atom included (Narayana polynomial):

        E[x^k] = sigma2^k * sum_{j=0}^{k-1} c^j / (j + 1) * C(k, j) * C(k - 1, j),   k >= 1.
    """
    if int(k) != k or k < 0:
        raise InvalidParameterError(f"moment order k must be a non-negative integer, got {k!r}")
    k = int(k)
    c = _check_positive("ratio", ratio)
    s2 = _check_positive("sigma2", sigma2)
    if k == 0:
        return 1.0
    total = sum(c**j / (j + 1) * comb(k, j) * comb(k - 1, j) for j in range(k))
    return float(s2**k * total)


@lru_cache(maxsize=64)
def _graded_nodes(log2_width: int) -> tuple[np.ndarray, np.ndarray]:
    """Composite Gauss–Legendre nodes on ``[0, pi/2]`` with panels ``[0, h], [h, 2h], [2h, 4h], ...``
    (``h = 2^log2_width``), so that a feature of width ``h`` at ``u = 0`` is resolved."""
    x, w = np.polynomial.legendre.leggauss(_QUAD_NODES)
    half_pi = np.pi / 2.0
    breaks = [0.0]
    b = 2.0**log2_width
    while b < half_pi:
        breaks.append(b)
        b *= 2.0
    breaks.append(half_pi)
    lo, hi = np.array(breaks[:-1]), np.array(breaks[1:])
    nodes = ((x[None, :] + 1.0) * ((hi - lo) / 2.0)[:, None] + lo[:, None]).ravel()
    weights = (w[None, :] * ((hi - lo) / 2.0)[:, None]).ravel()
    return nodes, weights


def _rng(random_state) -> np.random.Generator:
    if isinstance(random_state, np.random.Generator):
        return random_state
    return np.random.default_rng(random_state)


def _checked_probabilities(q) -> np.ndarray:
    """``q`` as a float64 array in ``[0, 1]`` (the argument of ``ppf``); a typed error otherwise (NaN included)."""
    q = np.asarray(q, dtype=np.float64)
    if np.any((q < 0.0) | (q > 1.0) | np.isnan(q)):
        raise InvalidParameterError("ppf: probabilities must lie in [0, 1]")
    return q


class _MomentLaw:
    """What both laws share, as scipy's frozen distributions do: ``mean``, ``var``, ``std`` from :meth:`moment`."""

    def moment(self, k) -> float:  # pragma: no cover - each law defines its own
        raise NotImplementedError

    def mean(self) -> float:
        """``E[X] = moment(1)``."""
        return self.moment(1)

    def var(self) -> float:
        """``Var[X] = moment(2) - moment(1)^2``."""
        return self.moment(2) - self.moment(1) ** 2

    def std(self) -> float:
        return float(np.sqrt(self.var()))


class MarchenkoPastur(_MomentLaw):
    """Frozen Marchenko–Pastur eigenvalue law of ``X = W^T W / N`` (Theorem 2.2).

    Parameters
    ----------
    ratio:
        ``c = M / N`` = columns / rows of ``W``; any value in ``(0, inf)``.
    sigma2:
        Entry variance of ``W`` (``sigma^2`` in the paper).

    Moments come from the Narayana polynomials: ``mean() = sigma2``, ``var() = sigma2^2 c``.

    Examples
    --------
    >>> law = MarchenkoPastur(ratio=0.5, sigma2=1.0)
    >>> law.edges()            # (lambda_-, lambda_+)
    (0.0857..., 2.9142...)
    >>> float(law.cdf(law.ppf(0.3)))
    0.3
    """

    def __init__(self, ratio: float, sigma2: float = 1.0):
        self.ratio = _check_positive("ratio", ratio)
        self.sigma2 = _check_positive("sigma2", sigma2)
        self.lambda_minus, self.lambda_plus = mp_edges(self.ratio, self.sigma2)
        self.atom = max(0.0, 1.0 - 1.0 / self.ratio)

    def __repr__(self) -> str:
        return f"MarchenkoPastur(ratio={self.ratio!r}, sigma2={self.sigma2!r})"

    # -- support ---------------------------------------------------------------------------
    def edges(self) -> tuple[float, float]:
        """Edges ``(lambda_-, lambda_+)`` of the continuous part."""
        return self.lambda_minus, self.lambda_plus

    def support(self) -> tuple[float, float]:
        """Support of the whole law: ``[0, lambda_+]`` when there is an atom, else ``[lambda_-, lambda_+]``."""
        return (0.0 if self.atom > 0.0 else self.lambda_minus), self.lambda_plus

    # -- density and distribution ----------------------------------------------------------
    def pdf(self, x) -> np.ndarray:
        """Density of the absolutely continuous part (the atom at 0 is *not* included)."""
        x = np.asarray(x, dtype=np.float64)
        lm, lp = self.lambda_minus, self.lambda_plus
        inside = (x >= lm) & (x <= lp) & (x > 0.0)
        prod = np.where(inside, (lp - x) * (x - lm), 0.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            dens = np.sqrt(np.maximum(prod, 0.0)) / (2.0 * np.pi * self.ratio * self.sigma2 * x)
        dens = np.where(inside, dens, 0.0)
        if lm == 0.0:  # c == 1: integrable singularity at 0
            dens = np.where(x == 0.0, np.inf, dens)
        return _nan_where_nan(x, dens)

    def _core_cdf(self, x: np.ndarray) -> np.ndarray:
        """CDF of the continuous part, normalised to total mass 1 (closed form, exact at the edges)."""
        if self.ratio <= 1.0:
            core = _mp_cdf_closed_form(x, self.ratio, self.sigma2)
        else:  # non-zero eigenvalues of W^T W / N are c times an MP(1/c, sigma2) law
            core = _mp_cdf_closed_form(x / self.ratio, 1.0 / self.ratio, self.sigma2)
        # x / c can round above the inner law's lower edge: pin the continuous part to 0 at lambda_-
        return np.where(x <= self.lambda_minus, 0.0, core)

    def cdf(self, x) -> np.ndarray:
        """``P(X <= x)``, atom at zero included (right-continuous)."""
        x = np.asarray(x, dtype=np.float64)
        core = self._core_cdf(x)
        out = np.where(x >= 0.0, self.atom + (1.0 - self.atom) * core, 0.0)
        return _nan_where_nan(x, np.where(x >= self.lambda_plus, 1.0, out))

    def sf(self, x) -> np.ndarray:
        """Survival function ``P(X > x)``, computed from the upper tail without cancellation."""
        x = np.asarray(x, dtype=np.float64)
        core_sf = 1.0 - self._core_cdf(x)
        out = np.where(x >= 0.0, (1.0 - self.atom) * core_sf, 1.0)
        return _nan_where_nan(x, np.where(x >= self.lambda_plus, 0.0, out))

    def ppf(self, q) -> np.ndarray:
        """Quantile function (left-continuous inverse of :meth:`cdf`); ``ppf(q) = 0`` for ``q <= atom``."""
        q = _checked_probabilities(q)
        if self.atom > 0.0:
            u = np.clip((q - self.atom) / (1.0 - self.atom), 0.0, 1.0)
        else:
            u = q
        core = _bisect_quantile(self._core_cdf, u, self.lambda_minus, self.lambda_plus)
        return np.where(q <= self.atom, 0.0, core) if self.atom > 0.0 else core

    # -- moments ---------------------------------------------------------------------------
    def moment(self, k: int) -> float:
        """Non-central moment ``E[X^k]`` (atom included) from the Narayana polynomial."""
        return narayana_moment(k, self.ratio, self.sigma2)

    def expect_continuous(self, func) -> float:
        """``int func(x) dmu_ac(x)`` over the continuous part, by Gauss–Legendre quadrature after
        the substitution ``x = l- + (l+ - l-) sin^2 u`` that removes the edge singularities.

        For ``c`` near 1 the factor ``1/x`` varies on the scale ``u ~ sqrt(l- / (l+ - l-))`` near
        ``u = 0``; the panels are graded geometrically from that scale (``func`` smooth on the support
        gives full double precision; the mass is exact to ~1e-14 for ``c`` in ``[0.01, 100]``)."""
        lm, lp = self.lambda_minus, self.lambda_plus
        span = lp - lm
        width = np.sqrt(lm / span) if lm > 0.0 else 0.0
        u, w = _graded_nodes(int(np.clip(np.floor(np.log2(max(width, 1e-12))), -40, 0)))
        x = lm + span * np.sin(u) ** 2
        jac = 2.0 * span**2 * np.sin(u) ** 2 * np.cos(u) ** 2 / (2.0 * np.pi * self.ratio * self.sigma2 * x)
        return float(np.sum(w * jac * func(x)))

    # -- sampling and conversion -----------------------------------------------------------
    def n_cols_for(self, n_rows: int) -> int:
        """Number of columns ``M = c N`` of a simulated ``W`` with ``N = n_rows`` rows."""
        n_rows = _check_count("n_rows", n_rows, 1)
        m = self.ratio * n_rows
        if abs(m - round(m)) > 1e-9 * max(1.0, m) or round(m) < 1:
            raise InvalidParameterError(
                f"ratio * n_rows = {m!r} is not a positive integer; choose n_rows so that M = c N is whole"
            )
        return int(round(m))

    def rvs(self, n_rows: int, size: int | None = None, random_state=None) -> np.ndarray:
        """Eigenvalues of ``W^T W / N`` for simulated Gaussian ``W`` (``N = n_rows``, ``M = c N``).

        Returns an array of shape ``(M,)`` (sorted ascending), or ``(size, M)`` when ``size`` is given.
        """
        m = self.n_cols_for(n_rows)
        count = _sample_count(size, m)
        rng = _rng(random_state)
        out = np.empty((count, m))
        for i in range(count):
            w = rng.standard_normal((n_rows, m)) * np.sqrt(self.sigma2)
            out[i] = np.linalg.eigvalsh(w.T @ w / n_rows)
        return out[0] if size is None else out

    def singular(self, n_rows: int) -> "MarchenkoPasturSingular":
        """The same law on the singular-value scale of ``W`` (``N = n_rows``)."""
        return MarchenkoPasturSingular(self.ratio, self.sigma2, n_rows)


class MarchenkoPasturSingular(_MomentLaw):
    """Frozen law of the ``min(N, M)`` singular values of ``W`` (``N x M``, entry variance ``sigma2``).

    ``y = sqrt(N x)`` with ``x`` drawn from the non-zero part of :class:`MarchenkoPastur`
    (for ``c > 1`` the atom is removed and the rest renormalised, Definition 2.1 / Pitfall 6).
    Density: ``f(y) = 2 y / N * p(y^2 / N) / min(1, 1/c)``.
    """

    def __init__(self, ratio: float, sigma2: float, n_rows: int):
        self.eigen = MarchenkoPastur(ratio, sigma2)
        self.n_rows = _check_count("n_rows", n_rows, 1)
        self.ratio = self.eigen.ratio
        self.sigma2 = self.eigen.sigma2
        self.sigma_minus = float(np.sqrt(self.n_rows * self.eigen.lambda_minus))
        self.sigma_plus = float(np.sqrt(self.n_rows * self.eigen.lambda_plus))
        self._mass = 1.0 - self.eigen.atom

    def __repr__(self) -> str:
        return f"MarchenkoPasturSingular(ratio={self.ratio!r}, sigma2={self.sigma2!r}, n_rows={self.n_rows!r})"

    def _to_eig(self, y: np.ndarray) -> np.ndarray:
        return np.asarray(y, dtype=np.float64) ** 2 / self.n_rows

    def edges(self) -> tuple[float, float]:
        """Edges ``(sigma_-, sigma_+)``."""
        return self.sigma_minus, self.sigma_plus

    def support(self) -> tuple[float, float]:
        return self.edges()

    def pdf(self, y) -> np.ndarray:
        y = np.asarray(y, dtype=np.float64)
        dens = 2.0 * y / self.n_rows * self.eigen.pdf(self._to_eig(y)) / self._mass
        return _nan_where_nan(y, np.where(y >= 0.0, dens, 0.0))

    def cdf(self, y) -> np.ndarray:
        y = np.asarray(y, dtype=np.float64)
        out = np.where(y >= 0.0, self.eigen._core_cdf(self._to_eig(y)), 0.0)
        return _nan_where_nan(y, np.where(y >= self.sigma_plus, 1.0, out))

    def sf(self, y) -> np.ndarray:
        y = np.asarray(y, dtype=np.float64)
        out = np.where(y >= 0.0, 1.0 - self.eigen._core_cdf(self._to_eig(y)), 1.0)
        return _nan_where_nan(y, np.where(y >= self.sigma_plus, 0.0, out))

    def ppf(self, q) -> np.ndarray:
        q = _checked_probabilities(q)
        lo, hi = self.eigen.lambda_minus, self.eigen.lambda_plus
        x = _bisect_quantile(self.eigen._core_cdf, q, lo, hi)
        return np.sqrt(self.n_rows * x)

    def moment(self, k: float) -> float:
        """``E[y^k]`` by quadrature; for even ``k`` this equals ``N^(k/2) E[x^(k/2)] / (1 - atom)``."""
        if k < 0:
            raise InvalidParameterError(f"moment order k must be >= 0, got {k!r}")
        n = self.n_rows
        return self.eigen.expect_continuous(lambda x: (n * x) ** (k / 2.0)) / self._mass

    def rvs(self, size: int | None = None, random_state=None) -> np.ndarray:
        """Singular values (ascending) of simulated Gaussian ``W`` of shape ``(N, c N)``."""
        m = self.eigen.n_cols_for(self.n_rows)
        count = _sample_count(size, min(self.n_rows, m))
        rng = _rng(random_state)
        out = np.empty((count, min(self.n_rows, m)))
        for i in range(count):
            w = rng.standard_normal((self.n_rows, m)) * np.sqrt(self.sigma2)
            out[i] = np.sort(np.linalg.svd(w, compute_uv=False))
        return out[0] if size is None else out

    def eigenvalue(self) -> MarchenkoPastur:
        return self.eigen


def _mp_cdf_closed_form(x: np.ndarray, gamma: float, sigma2: float) -> np.ndarray:
    """Closed-form MP CDF for ``gamma in (0, 1]`` (ALGORITHMS.md 1.3), exactly 0 / 1 outside the edges."""
    x = np.asarray(x, dtype=np.float64)
    r_g = np.sqrt(gamma)
    lm = sigma2 * (1.0 - r_g) ** 2
    lp = sigma2 * (1.0 + r_g) ** 2
    inside = (x > lm) & (x < lp)
    xi = np.where(inside, x, 0.5 * (lm + lp))
    r = np.sqrt((lp - xi) / (xi - lm))
    f = np.pi * gamma + np.sqrt((lp - xi) * (xi - lm)) / sigma2 - (1.0 + gamma) * np.arctan((r * r - 1.0) / (2.0 * r))
    if gamma != 1.0:
        f = f + (1.0 - gamma) * np.arctan((lm * r * r - lp) / (2.0 * sigma2 * (1.0 - gamma) * r))
    val = np.clip(f / (2.0 * np.pi * gamma), 0.0, 1.0)
    return np.where(x >= lp, 1.0, np.where(inside, val, 0.0))


def _bisect_quantile(cdf, u: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Smallest ``x`` in ``[lo, hi]`` with ``cdf(x) >= u`` (vectorized bisection, full precision)."""
    u = np.asarray(u, dtype=np.float64)
    a = np.full(u.shape, lo, dtype=np.float64)
    b = np.full(u.shape, hi, dtype=np.float64)
    for _ in range(_BISECTION_STEPS):
        mid = 0.5 * (a + b)
        below = cdf(mid) < u
        a = np.where(below, mid, a)
        b = np.where(below, b, mid)
    out = np.where(u <= 0.0, lo, np.where(u >= 1.0, hi, b))
    return out
