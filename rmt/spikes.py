"""Finite-rank spikes on Gaussian noise: BBP outlier maps and their inverses (THEORY.md section 8, Cor. 4.12).

Noise ``R`` of shape ``N x M`` with iid ``N(0, g/N)`` entries (``N`` = rows), ``c = M / N``; a spike of
strength ``theta`` is a singular value of the planted low-rank signal ``S``.

Square case (OR1-BGN-g, THEORY 8.2; Corollary 4.12):

* edge ``b_+ = 2 sqrt(g)``, BBP threshold ``theta_c = sqrt(g)``;
* outlier location ``rho(theta) = theta + g / theta`` for ``theta > sqrt(g)``, else the edge ``2 sqrt(g)``;
* inverse-BBP estimator ``sigma_hat(y) = (y + sqrt(y^2 - 4 g)) / 2`` (Corollary 4.12 (iii));
* ``D(y) = (2 / (y + sqrt(y^2 - 4 g)))^2`` so that ``D(y)^(-1/2) = sigma_hat(y)`` (OR1-InverseD, 8.4);
* squared overlaps ``<u_hat, u>^2 -> 1 - g / theta^2`` (both sides) above threshold, 0 below.

Rectangular case ([ext], THEORY 8.5), :class:`RectangularOutlierMap`:

* edge ``b_+ = sqrt(g) (1 + sqrt(c))``, threshold ``theta_c = sqrt(g) c^(1/4)``;
* ``rho(theta) = sqrt((theta^2 + g)(theta^2 + c g)) / theta`` above threshold, else ``b_+``;
* ``theta_hat(y)^2 = ((y^2 - (1+c) g) + sqrt((y^2 - (1+c) g)^2 - 4 c g^2)) / 2`` and ``D(y) = theta_hat(y)^-2``;
* overlaps: left (length ``N``) ``1 - g (theta^2 + c g) / (theta^2 (theta^2 + g))``,
  right (length ``M``) ``1 - c g (theta^2 + g) / (theta^2 (theta^2 + c g))``;
* entry-variance form (:meth:`RectangularOutlierMap.from_entry_variance`): ``g = s^2 N``, so
  ``theta_c = s (N M)^(1/4)`` and ``rho(theta) = sqrt((theta^2 + s^2 N)(theta^2 + s^2 M)) / theta``.

Rule for observations below the edge: the inverse maps (``inverse_bbp``, ``bbp_D``,
``RectangularOutlierMap.inverse`` / ``.D``) are defined on ``y >= b_+`` (at ``y = b_+`` they return the
threshold, the limit value; values within ``EDGE_ROUNDING = 8 eps`` relative below ``b_+`` count as the edge,
so that ``rho(theta_c)`` computed in floating point maps back to ``theta_c``) and return **NaN** for
``0 <= y < b_+ (1 - EDGE_ROUNDING)``: such a singular value is not an
outlier and the estimator is undefined there (OR1-InverseD: "arbitrary elsewhere").  This keeps the
maps vectorized over a whole spectrum.  Invalid input (``g < 0``, ``c <= 0``, NaN/Inf, negative ``y`` or
``theta``) raises :class:`rmt.errors.InvalidParameterError`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import InvalidParameterError

__all__ = [
    "EDGE_ROUNDING",
    "bbp_edge",
    "bbp_threshold",
    "bbp_location",
    "inverse_bbp",
    "bbp_D",
    "bbp_overlap",
    "RectangularOutlierMap",
]


#: Relative rounding slack below the edge that still counts as the edge (see the module docstring).
EDGE_ROUNDING = 8.0 * np.finfo(np.float64).eps


def _at_or_above_edge(y: np.ndarray, edge: float) -> np.ndarray:
    return y >= edge * (1.0 - EDGE_ROUNDING)


def _check_g(g: float) -> float:
    g = float(g)
    if not np.isfinite(g) or g < 0.0:
        raise InvalidParameterError(f"g (noise scale, entries N(0, g/N)) must be finite and >= 0, got {g!r}")
    return g


def _nonnegative_array(name: str, value) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float64)
    if not np.all(np.isfinite(arr)) or np.any(arr < 0.0):
        raise InvalidParameterError(f"{name} must be finite and >= 0")
    return arr


def _scalar_or_array(arr: np.ndarray):
    return float(arr) if arr.ndim == 0 else arr


# -- square Gaussian noise (OR1-BGN-g, Corollary 4.12) ----------------------------------------
def bbp_edge(g: float) -> float:
    """Bulk edge ``2 sqrt(g)`` of an ``N x N`` matrix with entries ``N(0, g/N)`` (singular-value scale)."""
    return 2.0 * float(np.sqrt(_check_g(g)))


def bbp_threshold(g: float) -> float:
    """BBP threshold ``sqrt(g)``: a spike must exceed it to produce an outlier (Corollary 4.12 (i))."""
    return float(np.sqrt(_check_g(g)))


def bbp_location(theta, g: float):
    """Outlier location ``rho(theta) = theta + g/theta`` for ``theta > sqrt(g)``, else ``2 sqrt(g)`` (OR1-BGN-g)."""
    g = _check_g(g)
    t = _nonnegative_array("theta", theta)
    root_g = np.sqrt(g)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(t > root_g, t + g / t, 2.0 * root_g)
    return _scalar_or_array(out)


def inverse_bbp(y, g: float):
    """Inverse-BBP estimator ``sigma_hat(y) = (y + sqrt(y^2 - 4 g)) / 2`` (Corollary 4.12 (iii)).

    Defined for ``y >= 2 sqrt(g)``; NaN for ``y`` below the edge (rule in the module docstring).
    It satisfies ``0 <= y - sigma_hat <= 2 g / y`` and ``sigma_hat(sigma + g/sigma) = max(sigma, g/sigma)``.
    """
    g = _check_g(g)
    y = _nonnegative_array("y", y)
    disc = y * y - 4.0 * g
    with np.errstate(invalid="ignore"):
        out = np.where(_at_or_above_edge(y, 2.0 * np.sqrt(g)), 0.5 * (y + np.sqrt(np.maximum(disc, 0.0))), np.nan)
    return _scalar_or_array(out)


def bbp_D(y, g: float):
    """``D(y) = (2 / (y + sqrt(y^2 - 4 g)))^2`` on ``y >= 2 sqrt(g)`` (OR1-InverseD, square Gaussian instance).

    ``D`` is strictly decreasing, ``D(rho(theta)) = theta^-2`` and ``D(y)^(-1/2)`` is :func:`inverse_bbp`.
    """
    with np.errstate(divide="ignore"):
        return _scalar_or_array(np.asarray(inverse_bbp(y, g)) ** -2.0)


def bbp_overlap(theta, g: float):
    """Limit of both squared singular-vector overlaps: ``1 - g/theta^2`` for ``theta > sqrt(g)``, else 0
    (THEORY 8.2)."""
    g = _check_g(g)
    t = _nonnegative_array("theta", theta)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(t > np.sqrt(g), 1.0 - g / (t * t), 0.0)
    return _scalar_or_array(out)


# -- rectangular Gaussian noise (THEORY 8.5, [ext]) ---------------------------------------------
@dataclass(frozen=True)
class RectangularOutlierMap:
    """BBP maps of an ``N x M`` noise matrix with iid ``N(0, g/N)`` entries, ``ratio = c = M / N`` (THEORY 8.5).

    ``ratio = 1`` reduces every map to the square formulas (:func:`bbp_location`, :func:`inverse_bbp`, ...).
    """

    g: float
    ratio: float

    def __post_init__(self) -> None:
        _check_g(self.g)
        c = float(self.ratio)
        if not np.isfinite(c) or c <= 0.0:
            raise InvalidParameterError(f"ratio (c = M/N) must be finite and > 0, got {self.ratio!r}")
        object.__setattr__(self, "g", float(self.g))
        object.__setattr__(self, "ratio", c)

    @classmethod
    def from_entry_variance(cls, s2: float, n_rows: int, n_cols: int) -> "RectangularOutlierMap":
        """Noise with entry variance ``s2`` and shape ``n_rows x n_cols``: ``g = s2 * N``, ``c = M / N``."""
        s2 = float(s2)
        if not np.isfinite(s2) or s2 < 0.0:
            raise InvalidParameterError(f"s2 (entry variance) must be finite and >= 0, got {s2!r}")
        if int(n_rows) != n_rows or int(n_cols) != n_cols or n_rows < 1 or n_cols < 1:
            raise InvalidParameterError(f"shape must be positive integers, got ({n_rows!r}, {n_cols!r})")
        return cls(g=s2 * n_rows, ratio=n_cols / n_rows)

    @property
    def edge(self) -> float:
        """``b_+ = sqrt(g) (1 + sqrt(c))`` (= ``s (sqrt(N) + sqrt(M))``)."""
        return float(np.sqrt(self.g) * (1.0 + np.sqrt(self.ratio)))

    @property
    def threshold(self) -> float:
        """``theta_c = sqrt(g) c^(1/4)`` (= ``s (N M)^(1/4)``)."""
        return float(np.sqrt(self.g) * self.ratio**0.25)

    def location(self, theta):
        """``rho(theta) = sqrt((theta^2 + g)(theta^2 + c g)) / theta`` for ``theta > theta_c``, else ``b_+``."""
        t = _nonnegative_array("theta", theta)
        g, c = self.g, self.ratio
        with np.errstate(divide="ignore", invalid="ignore"):
            out = np.where(t > self.threshold, np.sqrt((t * t + g) * (t * t + c * g)) / t, self.edge)
        return _scalar_or_array(out)

    def inverse(self, y):
        """``theta_hat(y) = sqrt(((y^2 - (1+c) g) + sqrt((y^2 - (1+c) g)^2 - 4 c g^2)) / 2)`` for ``y >= b_+``;
        NaN below the edge.  At ``y = b_+`` the discriminant is 0 and ``theta_hat = theta_c``."""
        y = _nonnegative_array("y", y)
        g, c = self.g, self.ratio
        a = y * y - (1.0 + c) * g
        disc = np.maximum(a * a - 4.0 * c * g * g, 0.0)
        with np.errstate(invalid="ignore"):
            theta2 = 0.5 * (a + np.sqrt(disc))
            out = np.where(_at_or_above_edge(y, self.edge), np.sqrt(np.maximum(theta2, 0.0)), np.nan)
        return _scalar_or_array(out)

    def D(self, y):
        """``D(y) = theta_hat(y)^-2`` (OR1-InverseD); strictly decreasing on ``(b_+, inf)``."""
        with np.errstate(divide="ignore"):
            return _scalar_or_array(np.asarray(self.inverse(y)) ** -2.0)

    def overlap_left(self, theta):
        """Squared overlap of the left (length-``N``) singular vector:
        ``1 - g (theta^2 + c g) / (theta^2 (theta^2 + g))`` above threshold, else 0."""
        t = _nonnegative_array("theta", theta)
        g, c = self.g, self.ratio
        with np.errstate(divide="ignore", invalid="ignore"):
            t2 = t * t
            out = np.where(t > self.threshold, 1.0 - g * (t2 + c * g) / (t2 * (t2 + g)), 0.0)
        return _scalar_or_array(out)

    def overlap_right(self, theta):
        """Squared overlap of the right (length-``M``) singular vector:
        ``1 - c g (theta^2 + g) / (theta^2 (theta^2 + c g))`` above threshold, else 0."""
        t = _nonnegative_array("theta", theta)
        g, c = self.g, self.ratio
        with np.errstate(divide="ignore", invalid="ignore"):
            t2 = t * t
            out = np.where(t > self.threshold, 1.0 - c * g * (t2 + g) / (t2 * (t2 + c * g)), 0.0)
        return _scalar_or_array(out)
