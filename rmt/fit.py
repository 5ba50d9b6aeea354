"""Marchenko–Pastur fit of one weight matrix's spectrum (ALGORITHMS.md section 1).

:func:`fit_mp` estimates the MP noise variance ``sigma2``, the bulk edge in eigenvalue units
``lambda_plus`` and singular-value units ``sigma_plus``, and the diagnostics of section 1.5/1.7
(MP goodness-of-fit error, bulk fraction, spikes, Hill exponent).

Conventions (ALGORITHMS.md 1.3, THEORY.md 2.4)
----------------------------------------------
``W`` is ``d_out x d_in`` (conv kernels flattened by :func:`rmt.weights.as_weight_matrix`),
``p = min(d_out, d_in)``, ``n = max(d_out, d_in)``, ``gamma = p / n``.  Eigenvalues are
normalised by ``n``: ``lambda_i = s_i^2 / n``, so for iid noise of entry variance ``v`` the fitted
``sigma2`` estimates ``v`` whichever way round ``W`` is, and the asymptotic edge is
``sigma_plus = sqrt(n sigma2 (1 + sqrt(gamma))^2) = sqrt(v) (sqrt(d_out) + sqrt(d_in))``.
(The authors' reference code normalises by ``d_in``: its ``sigma2`` is ``v n / d_in`` but its
``sigma_plus`` is the same.)

BEMA (ALGORITHMS.md 1.4, method ``"bema"``)
-------------------------------------------
With ``lambda`` sorted ascending, window ``lo = floor(alpha p)``, ``hi = floor((1 - alpha) p)``
(indices ``lo .. hi-1``), unit quantiles ``q_i = Q(i / p; gamma)`` of ``MarchenkoPastur(gamma, 1)``
(level ``i/p`` as in the reference, not ``(i + 1/2)/p``)::

    sigma2      = sum_i q_i lambda_i / sum_i q_i^2                 (least squares through 0)
    t           = TW1_quantile(1 - beta_tw)
    E           = (1 + sqrt(gamma))^(4/3)     (tw_form="paper", OR2)
                  (1 + sqrt(gamma))^4 / 3     (tw_form="reference", the authors' code; section 11 C1)
    lambda_plus = sigma2 [ (1 + sqrt(gamma))^2 + t n^(-2/3) gamma^(-1/6) E ]
    sigma_plus  = sqrt(n lambda_plus)

With the default ``beta_tw = 0.8`` our Tracy–Widom implementation gives
``t = tw1_ppf(0.2) = -2.28316`` (the spec quotes -2.2833), so the margin is negative and the edge
sits slightly below the asymptotic one.  The method ``"median"`` is the plain median-matching
baseline ``sigma2 = median(lambda) / Q(1/2; gamma)`` with the same edge formula.

Eigenvalues (the spectral fast path)
------------------------------------
``lambda`` comes from ``numpy.linalg.eigvalsh`` of the smaller Gram matrix (``W W^T`` or
``W^T W``) in float64, 4-10x faster than a full SVD on ViT shapes.  Its eigenvalues carry an
absolute error of a few ``eps * lambda_max``, so an eigenvalue ``lambda_i`` has relative error
about ``eps lambda_max / lambda_i``.  **Rule:** the Gram path is kept only when every eigenvalue the
fit uses (the window and everything above it, ascending indices ``lo .. p-1``) is at least
``GRAM_MIN_RATIO = 1e-5`` times ``lambda_max``, which keeps their relative error near 1e-10;
otherwise the singular values come from a full float64 SVD (``numpy.linalg.svd``; randomized SVD
is never used, section 1.6).  On the Gram path the reported singular values *below* the window
(never used by the fit) are accurate to about ``1e-7 s_max`` absolutely.  (``torch.linalg.eigvalsh``
on CPU was measured 1.6-2x slower than numpy on the same Gram matrices, so it is not used.)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np

from .errors import InvalidMatrixError, InvalidParameterError, WeightOverflowError
from .mp_law import MarchenkoPastur
from .tracy_widom import tw1_ppf
from .weights import as_weight_matrix

__all__ = [
    "MPFit",
    "fit_mp",
    "check_spectrum_range",
    "singular_values",
    "bema_window",
    "unit_quantiles",
    "least_squares_scale",
    "edge_lambda_plus",
    "mp_fit_error",
    "hill_alpha",
    "GRAM_MIN_RATIO",
    "METHODS",
    "TW_FORMS",
]

METHODS = ("bema", "median")
TW_FORMS = ("reference", "paper")
#: Smallest ``lambda_lo / lambda_max`` for which Gram eigenvalues are trusted (module docstring).
GRAM_MIN_RATIO = 1e-5
#: Eigenvalues below this fraction of ``lambda_max`` count as zero for the Hill estimator
#: (THEORY.md Definition 2.1's atom-clipping rule).
_ZERO_RATIO = 1e-9
_HILL_K = 20
_HILL_UNDEFINED = 99.0


@dataclass(frozen=True)
class MPFit:
    """Result of :func:`fit_mp` for one layer (ALGORITHMS.md 1.2).

    ``sigma2`` is the noise variance in the ``n``-normalisation (``lambda = s^2 / n``);
    ``lambda_plus`` / ``sigma_plus`` include the Tracy–Widom margin ``tw_margin`` (eigenvalue
    units: ``lambda_plus = lambda_plus_asymptotic + tw_margin``); ``spikes`` are the singular
    values above ``sigma_plus`` (descending); ``singular_values`` is the whole spectrum (descending).
    """

    name: str
    shape: tuple[int, int]
    p: int
    n: int
    gamma: float
    sigma2: float
    lambda_plus: float
    sigma_plus: float
    lambda_plus_asymptotic: float
    sigma_plus_asymptotic: float
    tw_margin: float
    n_spikes: int
    spikes: tuple[float, ...]
    bulk_fraction: float
    mp_fit_error: float
    spike_energy_fraction: float
    hill_alpha: float
    method: str
    options: dict[str, Any] = field(compare=False)
    singular_values: np.ndarray = field(repr=False, compare=False)

    def to_dict(self, include_spectrum: bool = False) -> dict[str, Any]:
        """JSON-ready dict of every field; the full spectrum only when ``include_spectrum``."""
        out: dict[str, Any] = {
            "name": self.name,
            "shape": list(self.shape),
            "p": self.p,
            "n": self.n,
            "gamma": self.gamma,
            "sigma2": self.sigma2,
            "lambda_plus": self.lambda_plus,
            "sigma_plus": self.sigma_plus,
            "lambda_plus_asymptotic": self.lambda_plus_asymptotic,
            "sigma_plus_asymptotic": self.sigma_plus_asymptotic,
            "tw_margin": self.tw_margin,
            "n_spikes": self.n_spikes,
            "spikes": list(self.spikes),
            "bulk_fraction": self.bulk_fraction,
            "mp_fit_error": self.mp_fit_error,
            "spike_energy_fraction": self.spike_energy_fraction,
            "hill_alpha": self.hill_alpha,
            "method": self.method,
            "options": dict(self.options),
        }
        if include_spectrum:
            out["singular_values"] = self.singular_values.tolist()
        return out


def bema_window(p: int, alpha_bema: float) -> tuple[int, int]:
    """Window ``(lo, hi) = (floor(alpha p), floor((1 - alpha) p))``, indices ``lo .. hi-1`` (section 1.4)."""
    return int(np.floor(alpha_bema * p)), int(np.floor((1.0 - alpha_bema) * p))


@lru_cache(maxsize=256)
def _cached_unit_quantiles(p: int, gamma: float, lo: int, hi: int) -> np.ndarray:
    q = MarchenkoPastur(gamma, 1.0).ppf(np.arange(lo, hi, dtype=np.float64) / p)
    q.setflags(write=False)
    return q


def unit_quantiles(levels: np.ndarray, gamma: float) -> np.ndarray:
    """``Q(u; gamma)``: quantiles of the unit-variance MP law ``MarchenkoPastur(gamma, 1)``."""
    return MarchenkoPastur(gamma, 1.0).ppf(np.asarray(levels, dtype=np.float64))


def least_squares_scale(q: np.ndarray, lam: np.ndarray) -> float:
    """Least squares through the origin: ``argmin_s sum (lam_i - s q_i)^2 = sum q lam / sum q^2``."""
    return float(np.dot(q, lam) / np.dot(q, q))


def edge_lambda_plus(sigma2: float, gamma: float, n: int, t: float, tw_form: str) -> tuple[float, float]:
    """``(lambda_plus_asymptotic, tw_margin)`` of section 1.4 (eigenvalue units, ``n``-normalised)."""
    root = 1.0 + np.sqrt(gamma)
    edge_factor = root ** (4.0 / 3.0) if tw_form == "paper" else root**4 / 3.0
    asymptotic = sigma2 * root**2
    margin = sigma2 * t * n ** (-2.0 / 3.0) * gamma ** (-1.0 / 6.0) * edge_factor
    return float(asymptotic), float(margin)


def mp_fit_error(lam_window: np.ndarray, sigma2: float, gamma: float, alpha_bema: float) -> float:
    """Kolmogorov-type error on the central window (section 1.5)::

        emp_j = alpha + (1 - 2 alpha) j / W,  th_j = F_MP(lam[lo + j]; gamma, sigma2),  max_j |th_j - emp_j|
    """
    width = lam_window.size
    emp = alpha_bema + (1.0 - 2.0 * alpha_bema) * np.arange(width) / width
    theory = MarchenkoPastur(gamma, sigma2).cdf(lam_window)
    return float(np.max(np.abs(theory - emp)))


def hill_alpha(s_desc: np.ndarray, k_hill: int = _HILL_K) -> float:
    """Hill power-law exponent of the eigenvalues ``e = s^2`` (section 1.7)::

        k = min(k_hill, len(e) - 1);  alpha = 1 + 1 / mean_{i<k}(ln e_i - ln e_k)

    over the positive ``e`` (those above ``1e-9 e_max``, THEORY.md 2.1), descending.  Returns 99.0
    ("no tail") when ``k < 2`` or when the top ``k + 1`` eigenvalues are all equal [I].
    """
    e = np.asarray(s_desc, dtype=np.float64) ** 2
    e = e[e > _ZERO_RATIO * e[0]] if e.size and e[0] > 0 else e[:0]
    k = min(k_hill, e.size - 1)
    if k < 2:
        return _HILL_UNDEFINED
    gap = float(np.mean(np.log(e[:k]) - np.log(e[k])))
    return 1.0 + 1.0 / gap if gap > 0.0 else _HILL_UNDEFINED


def singular_values(matrix: np.ndarray, lo: int = 0) -> np.ndarray:
    """Singular values of a float64 matrix, descending (Gram fast path with the SVD fall-back rule).

    ``lo`` is the first ascending index the caller relies on; the Gram eigenvalues are used when
    ``lambda_(lo) >= GRAM_MIN_RATIO * lambda_max`` (module docstring), else a full SVD.
    """
    d_out, d_in = matrix.shape
    gram = matrix @ matrix.T if d_out <= d_in else matrix.T @ matrix
    eig = np.linalg.eigvalsh(gram)  # ascending
    if eig[-1] > 0.0 and eig[lo] >= GRAM_MIN_RATIO * eig[-1]:
        return np.sqrt(np.clip(eig, 0.0, None))[::-1].copy()
    return np.linalg.svd(matrix, compute_uv=False)


#: log2 of the largest ``max|W|^2 d_out d_in`` accepted (:func:`check_spectrum_range`).
_LOG2_SPECTRUM_LIMIT = 500.0


def check_spectrum_range(matrix: np.ndarray, label: str) -> None:
    """Refuse a finite ``matrix`` whose spectrum is too large for the float64 arithmetic of the fit.

    Every eigenvalue-sized quantity — Gram entries, ``s_max^2``, ``lambda = s^2 / n``, ``sigma2`` and the
    MP edges — is at most ``max|W|^2 d_out d_in``, and the closed-form MP CDF multiplies two of them
    (``(lambda_+ - x)(x - lambda_-)``).  So the bound must stay below the square root of the float64
    range: ``max|W|^2 d_out d_in <= 2^500``.  Beyond it the Gram eigensolver fails (``LinAlgError``) or,
    earlier, the CDF overflows and ``mp_fit_error`` comes out wrong without an error.  Raises
    :class:`WeightOverflowError` naming the layer and the largest usable entry.
    """
    d_out, d_in = matrix.shape
    peak = float(np.max(np.abs(matrix)))
    if 2.0 * np.log2(peak) + np.log2(float(d_out) * float(d_in)) > _LOG2_SPECTRUM_LIMIT:
        limit = 2.0 ** ((_LOG2_SPECTRUM_LIMIT - np.log2(float(d_out) * float(d_in))) / 2.0)
        raise WeightOverflowError(
            f"{label}: entries up to {peak:.3g} are too large for an MP fit of a {d_out}x{d_in} weight: its spectrum "
            f"overflows float64 arithmetic (entries must stay below about {limit:.3g}); rescale the weight"
        )


def _check_options(method: str, alpha_bema: float, beta_tw: float, tw_form: str) -> None:
    if method not in METHODS:
        raise InvalidParameterError(f"method must be one of {METHODS}, got {method!r}")
    if tw_form not in TW_FORMS:
        raise InvalidParameterError(f"tw_form must be one of {TW_FORMS}, got {tw_form!r}")
    if not (isinstance(alpha_bema, (int, float)) and 0.0 < float(alpha_bema) < 0.5):
        raise InvalidParameterError(f"alpha_bema must lie in the open interval (0, 1/2), got {alpha_bema!r}")
    if not (isinstance(beta_tw, (int, float)) and 0.0 < float(beta_tw) < 1.0):
        raise InvalidParameterError(f"beta_tw must lie in the open interval (0, 1), got {beta_tw!r}")


def fit_mp(
    W,
    method: str = "bema",
    *,
    alpha_bema: float = 0.25,
    beta_tw: float = 0.8,
    tw_form: str = "reference",
    name: str | None = None,
) -> MPFit:
    """Fit the MP law to the spectrum of one weight (ALGORITHMS.md 1.4-1.7; see the module docstring).

    Parameters
    ----------
    W:
        Linear weight ``(d_out, d_in)`` or Conv2d kernel ``(C_out, C_in/g, k_h, k_w)``; numpy or torch.
    method:
        ``"bema"`` (quantile least squares on the central window) or ``"median"`` (median matching).
    alpha_bema:
        Window trim in ``(0, 1/2)``; also sets the window of ``mp_fit_error`` for both methods.
    beta_tw:
        Tracy–Widom level in ``(0, 1)``; the margin uses ``t = TW1_quantile(1 - beta_tw)``.
    tw_form:
        ``"reference"`` (authors' code, default) or ``"paper"`` (OR2), ALGORITHMS.md 11 C1.
    name:
        Layer name carried into the result and into error messages.

    Raises
    ------
    InvalidParameterError
        Unknown ``method``/``tw_form``, ``alpha_bema``/``beta_tw`` out of range, or a matrix so
        small that the window is empty (``hi - lo < 1``).
    InvalidMatrixError
        Bad weights (see :func:`rmt.weights.as_weight_matrix`), finite weights too large for float64
        squared singular values (:class:`rmt.errors.WeightOverflowError`, :func:`check_spectrum_range`), or a spectrum whose fitted variance
        is 0 or whose whole window is numerically zero (below ``1e-9 lambda_max``, THEORY.md 2.1):
        the rank is too low for an MP bulk.
    """
    label = "weight" if name is None else str(name)
    _check_options(method, alpha_bema, beta_tw, tw_form)
    alpha_bema, beta_tw = float(alpha_bema), float(beta_tw)
    matrix = as_weight_matrix(W, name=label)
    check_spectrum_range(matrix, label)
    d_out, d_in = matrix.shape
    p, n = min(d_out, d_in), max(d_out, d_in)
    gamma = p / n
    lo, hi = bema_window(p, alpha_bema)
    if hi - lo < 1:
        raise InvalidParameterError(
            f"{label}: matrix {d_out}x{d_in} too small for alpha_bema={alpha_bema}: window [{lo}, {hi}) is empty"
        )
    s_desc = singular_values(matrix, lo)
    lam = (s_desc[::-1] ** 2) / n  # ascending, n-normalised
    if method == "bema":
        sigma2 = least_squares_scale(_cached_unit_quantiles(p, gamma, lo, hi), lam[lo:hi])
    else:
        sigma2 = float(np.median(lam) / unit_quantiles(0.5, gamma))
    if not sigma2 > 0.0 or lam[hi - 1] <= _ZERO_RATIO * lam[-1]:
        raise InvalidMatrixError(
            f"{label}: the central part of the spectrum is zero (rank too low for an MP fit, fitted sigma2 = 0)"
        )
    t = float(tw1_ppf(1.0 - beta_tw))
    lambda_asym, margin = edge_lambda_plus(sigma2, gamma, n, t, tw_form)
    lambda_plus = lambda_asym + margin
    sigma_plus = float(np.sqrt(n * lambda_plus)) if lambda_plus > 0.0 else 0.0
    spikes = s_desc[s_desc > sigma_plus]
    energy = s_desc**2
    return MPFit(
        name=label,
        shape=(int(d_out), int(d_in)),
        p=int(p),
        n=int(n),
        gamma=float(gamma),
        sigma2=sigma2,
        lambda_plus=float(lambda_plus),
        sigma_plus=sigma_plus,
        lambda_plus_asymptotic=lambda_asym,
        sigma_plus_asymptotic=float(np.sqrt(n * lambda_asym)),
        tw_margin=margin,
        n_spikes=int(spikes.size),
        spikes=tuple(float(x) for x in spikes),
        bulk_fraction=float(np.count_nonzero(s_desc < sigma_plus) / p),
        mp_fit_error=mp_fit_error(lam[lo:hi], sigma2, gamma, alpha_bema),
        spike_energy_fraction=float(np.sum(energy[: spikes.size]) / np.sum(energy)),
        hill_alpha=hill_alpha(s_desc),
        method=method,
        options={"alpha_bema": alpha_bema, "beta_tw": beta_tw, "tw_form": tw_form, "tw_quantile": t},
        singular_values=s_desc,
    )
