"""The size trend: ordinary least squares of a top-1 change on ``log10(parameters)``, and its spread.

For points ``(p_i, y_i)`` (parameters in millions, ``y`` in percentage points) with
``x_i = log10 p_i``::

    slope = sum (x_i - xbar)(y_i - ybar) / sum (x_i - xbar)^2          (pp per decade)
    intercept = ybar - slope * xbar                                      (y at p = 1 M)
    R = sum (x_i - xbar)(y_i - ybar) / sqrt(sum (x_i - xbar)^2 sum (y_i - ybar)^2)   (Pearson)

i.e. ``numpy.polyfit(x, y, 1)`` and ``numpy.corrcoef`` (data README sections 3-4).  With the
parameters in units of ``u`` millions instead, the slope and ``R`` are unchanged and the intercept
becomes ``intercept + slope * log10(u)``.  Uncertainty (measured ledgers only): a nonparametric
bootstrap over the points (resample ``n`` points with replacement, refit; percentile interval)
and the spread of the per-seed fits (mean and sample standard deviation).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from rmt.errors import InvalidParameterError

__all__ = ["TrendFit", "BootstrapInterval", "SeedSpread", "fit_log_trend", "bootstrap_trend", "seed_spread",
           "legend_text"]


@dataclass(frozen=True)
class TrendFit:
    """OLS of ``y`` on ``log10(params_m)``: slope (pp/decade), intercept (at 1 M), Pearson ``r``, ``n`` points."""

    slope: float
    intercept: float
    r: float
    n: int

    def predict(self, params_m: np.ndarray | float) -> np.ndarray:
        """Fitted ``y`` at ``params_m`` (millions): ``intercept + slope log10(params_m)``."""
        return self.intercept + self.slope * np.log10(np.asarray(params_m, dtype=np.float64))

    def intercept_in_units(self, unit_m: float) -> float:
        """Intercept with the parameters counted in units of ``unit_m`` millions (``1e-6``: raw count)."""
        return float(self.intercept + self.slope * np.log10(unit_m))

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class BootstrapInterval:
    """Percentile bootstrap of slope and ``R``: ``level`` central intervals from ``resamples`` refits."""

    slope_low: float
    slope_high: float
    r_low: float
    r_high: float
    slope_sd: float
    r_sd: float
    level: float
    resamples: int
    seed: int

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class SeedSpread:
    """Per-seed fits summarised: mean and sample standard deviation (``ddof=1``; None for one seed) of slope and
    ``R``."""

    seeds: tuple[int, ...]
    slopes: tuple[float, ...]
    rs: tuple[float, ...]
    slope_mean: float
    slope_sd: float | None
    r_mean: float
    r_sd: float | None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _xy(params_m: Sequence[float], y: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(params_m, dtype=np.float64)
    v = np.asarray(y, dtype=np.float64)
    if p.ndim != 1 or p.shape != v.shape:
        raise InvalidParameterError(f"params_m, y: need two 1-D arrays of one length, got shapes {p.shape} and "
                                    f"{v.shape}")
    if p.size < 3:
        raise InvalidParameterError(f"params_m: a trend needs at least 3 points, got {p.size}")
    if not (np.all(np.isfinite(p)) and np.all(p > 0)):
        raise InvalidParameterError("params_m: parameter counts must be finite and > 0")
    if not np.all(np.isfinite(v)):
        raise InvalidParameterError("y: top-1 changes must be finite")
    x = np.log10(p)
    if np.ptp(x) == 0:
        raise InvalidParameterError("params_m: all points have the same parameter count; the slope is undefined")
    return x, v


def _ols(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Slope, intercept and Pearson r along the last axis (vectorised over leading axes)."""
    dx = x - x.mean(axis=-1, keepdims=True)
    dy = y - y.mean(axis=-1, keepdims=True)
    sxx, syy, sxy = (dx * dx).sum(-1), (dy * dy).sum(-1), (dx * dy).sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        slope = sxy / sxx
        r = sxy / np.sqrt(sxx * syy)
    return slope, y.mean(-1) - slope * x.mean(-1), r


def fit_log_trend(params_m: Sequence[float], y: Sequence[float]) -> TrendFit:
    """OLS of ``y`` on ``log10(params_m)`` (module docstring)."""
    x, v = _xy(params_m, y)
    slope, intercept, r = _ols(x, v)
    return TrendFit(slope=float(slope), intercept=float(intercept), r=float(r), n=int(x.size))


def bootstrap_trend(
    params_m: Sequence[float], y: Sequence[float], *, resamples: int = 2000, level: float = 0.95, seed: int = 0
) -> BootstrapInterval:
    """Percentile bootstrap over points; resamples with a single parameter count (slope undefined) are dropped."""
    x, v = _xy(params_m, y)
    if isinstance(resamples, bool) or not isinstance(resamples, int) or resamples < 10:
        raise InvalidParameterError(f"resamples: must be an integer >= 10, got {resamples!r}")
    if not 0 < level < 1:
        raise InvalidParameterError(f"level: must lie in (0, 1), got {level!r}")
    idx = np.random.default_rng(seed).integers(0, x.size, size=(resamples, x.size))
    slope, _, r = _ols(x[idx], v[idx])
    ok = np.isfinite(slope) & np.isfinite(r)
    tail = 100 * (1 - level) / 2
    s_lo, s_hi = np.percentile(slope[ok], [tail, 100 - tail])
    r_lo, r_hi = np.percentile(r[ok], [tail, 100 - tail])
    return BootstrapInterval(slope_low=float(s_lo), slope_high=float(s_hi), r_low=float(r_lo), r_high=float(r_hi),
                             slope_sd=float(slope[ok].std(ddof=1)), r_sd=float(r[ok].std(ddof=1)),
                             level=float(level), resamples=int(ok.sum()), seed=int(seed))


def seed_spread(fits: Mapping[int, TrendFit]) -> SeedSpread:
    """Mean and sample standard deviation of per-seed slopes and ``R`` (``sd = None`` with one seed)."""
    if not fits:
        raise InvalidParameterError("fits: need at least one per-seed fit")
    seeds = tuple(sorted(fits))
    slopes = np.array([fits[s].slope for s in seeds])
    rs = np.array([fits[s].r for s in seeds])
    sd = (lambda a: float(a.std(ddof=1)) if a.size > 1 else None)
    return SeedSpread(seeds=seeds, slopes=tuple(map(float, slopes)), rs=tuple(map(float, rs)),
                      slope_mean=float(slopes.mean()), slope_sd=sd(slopes), r_mean=float(rs.mean()), r_sd=sd(rs))


def legend_text(fit: TrendFit) -> str:
    """The published legend entry: ``OLS: +0.77 pp/decade, $R$ = +0.32`` (signed, 2 decimals)."""
    return f"OLS: {fit.slope:+.2f} pp/decade, $R = {fit.r:+.2f}$"
