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
baseline ``sigma2 = median(lambda) / Q(1/2; gamma)`` with the same edge formula.  Both estimators
live in :mod:`rmt.noise_variance`.

Spike count (``spike_test``)
----------------------------
``"calibrated"`` (default): the sequential Tracy–Widom test of :mod:`rmt.spike_test` (Kritchman–Nadler,
noise variance re-estimated from the remaining bulk) at family-wise false-alarm rate ``spike_alpha = 0.05``.
``"paper"``: ``#{s_i > sigma_plus}`` of section 1.5, which with ``beta_tw = 0.8`` flags pure noise in
62–99.7 % of draws (FINDINGS F8, F21).  ``sigma2`` and the edge ``sigma_plus`` (the SEB/SER signal) are
the same in both modes; only ``n_spikes``, ``spikes``, ``bulk_fraction`` and ``spike_energy_fraction`` differ.

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
from typing import Any

import numpy as np

from .errors import InvalidMatrixError, InvalidParameterError, WeightOverflowError
from .mp_law import MarchenkoPastur
from .noise_variance import METHODS, bema_window, least_squares_scale, noise_variance, unit_quantiles
from .spike_test import DEFAULT_SPIKE_ALPHA, SPIKE_TESTS, sequential_tw_test
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
    "SPIKE_TESTS",
]

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
    units: ``lambda_plus = lambda_plus_asymptotic + tw_margin``); ``singular_values`` is the whole
    spectrum (descending).

    ``spikes`` (descending), ``n_spikes``, ``bulk_fraction`` and ``spike_energy_fraction`` follow the
    spike count of ``spike_test`` (:mod:`rmt.spike_test`):

    * ``"calibrated"``: the top ``n_spikes`` singular values rejected by the sequential Tracy–Widom
      test at family-wise level ``spike_alpha``; ``spike_pvalues`` holds the p-value of every step run,
      ``spike_threshold`` the singular-value threshold of the last step; ``bulk_fraction = 1 - n_spikes / p``;
      ``spikes_capped`` says the test stopped at its cap ``p - floor((1 - alpha_bema) p)`` with every step
      a rejection (the spectrum has at least that many values above an MP bulk: read the count as "at least");
    * ``"paper"`` (ALGORITHMS.md 1.5): the values above ``sigma_plus``; ``spike_alpha`` is ``None``,
      ``spike_pvalues`` empty, ``spike_threshold = sigma_plus``, ``bulk_fraction = #{s_i < sigma_plus} / p``,
      ``spikes_capped`` False.

    Either count is an estimate (no false-alarm guarantee for ``"paper"``: FINDINGS F8, F21).
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
    spike_test: str
    spike_alpha: float | None
    spike_pvalues: tuple[float, ...]
    spike_threshold: float
    spikes_capped: bool
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
            "spike_test": self.spike_test,
            "spike_alpha": self.spike_alpha,
            "spike_pvalues": list(self.spike_pvalues),
            "spike_threshold": self.spike_threshold,
            "spikes_capped": self.spikes_capped,
            "options": dict(self.options),
        }
        if include_spectrum:
            out["singular_values"] = self.singular_values.tolist()
        return out


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


def _in_open_interval(value, low: float, high: float) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and low < float(value) < high


def _check_options(method: str, alpha_bema: float, beta_tw: float, tw_form: str, spike_test: str,
                   spike_alpha: float) -> None:
    for option, value, allowed in (("method", method, METHODS), ("tw_form", tw_form, TW_FORMS),
                                   ("spike_test", spike_test, SPIKE_TESTS)):
        if value not in allowed:
            raise InvalidParameterError(f"{option} must be one of {allowed}, got {value!r}")
    for option, value, high, label in (("alpha_bema", alpha_bema, 0.5, "(0, 1/2)"), ("beta_tw", beta_tw, 1.0, "(0, 1)"),
                                       ("spike_alpha", spike_alpha, 1.0, "(0, 1)")):
        if not _in_open_interval(value, 0.0, high):
            raise InvalidParameterError(f"{option} must lie in the open interval {label}, got {value!r}")


def fit_mp(
    W,
    method: str = "bema",
    *,
    alpha_bema: float = 0.25,
    beta_tw: float = 0.8,
    tw_form: str = "reference",
    spike_test: str = "calibrated",
    spike_alpha: float = DEFAULT_SPIKE_ALPHA,
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
    spike_test:
        How spikes are counted (:class:`MPFit`, :mod:`rmt.spike_test`): ``"calibrated"`` (default; the
        sequential Tracy–Widom test at family-wise false-alarm rate ``spike_alpha``) or ``"paper"``
        (``#{s_i > sigma_plus}``, ALGORITHMS.md 1.5, the paper's count).
        ``sigma2``, ``lambda_plus`` and ``sigma_plus`` do not depend on it.
    spike_alpha:
        Family-wise false-alarm rate in ``(0, 1)`` of the calibrated test (ignored by ``"paper"``).
    name:
        Layer name carried into the result and into error messages.

    Raises
    ------
    InvalidParameterError
        Unknown ``method``/``tw_form``/``spike_test``, ``alpha_bema``/``beta_tw``/``spike_alpha`` out of
        range, or a matrix so
        small that the window is empty (``hi - lo < 1``).
    InvalidMatrixError
        Bad weights (see :func:`rmt.weights.as_weight_matrix`), finite weights too large for float64
        squared singular values (:class:`rmt.errors.WeightOverflowError`, :func:`check_spectrum_range`), or a spectrum
        whose fitted variance is 0 or whose whole window is numerically zero (below ``1e-9 lambda_max``, THEORY.md 2.1):
        the rank is too low for an MP bulk.
    """
    label = "weight" if name is None else str(name)
    _check_options(method, alpha_bema, beta_tw, tw_form, spike_test, spike_alpha)
    alpha_bema, beta_tw, spike_alpha = float(alpha_bema), float(beta_tw), float(spike_alpha)
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
    sigma2 = noise_variance(lam, gamma, method, alpha_bema)
    if not sigma2 > 0.0 or lam[hi - 1] <= _ZERO_RATIO * lam[-1]:
        raise InvalidMatrixError(
            f"{label}: the central part of the spectrum is zero (rank too low for an MP fit, fitted sigma2 = 0)"
        )
    t = float(tw1_ppf(1.0 - beta_tw))
    lambda_asym, margin = edge_lambda_plus(sigma2, gamma, n, t, tw_form)
    lambda_plus = lambda_asym + margin
    sigma_plus = float(np.sqrt(n * lambda_plus)) if lambda_plus > 0.0 else 0.0
    if spike_test == "calibrated":
        test = sequential_tw_test(s_desc, n, spike_alpha, method=method, alpha_bema=alpha_bema)
        n_spikes, bulk_fraction = test.n_spikes, 1.0 - test.n_spikes / p
        recorded_alpha, pvalues, threshold, capped = spike_alpha, test.pvalues, test.threshold, test.capped
    else:
        n_spikes = int(np.count_nonzero(s_desc > sigma_plus))
        bulk_fraction = float(np.count_nonzero(s_desc < sigma_plus) / p)
        recorded_alpha, pvalues, threshold, capped = None, (), sigma_plus, False
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
        n_spikes=int(n_spikes),
        spikes=tuple(float(x) for x in s_desc[:n_spikes]),
        bulk_fraction=float(bulk_fraction),
        mp_fit_error=mp_fit_error(lam[lo:hi], sigma2, gamma, alpha_bema),
        spike_energy_fraction=float(np.sum(energy[:n_spikes]) / np.sum(energy)),
        hill_alpha=hill_alpha(s_desc),
        method=method,
        spike_test=spike_test,
        spike_alpha=recorded_alpha,
        spike_pvalues=tuple(float(v) for v in pvalues),
        spike_threshold=float(threshold),
        spikes_capped=bool(capped),
        options={"alpha_bema": alpha_bema, "beta_tw": beta_tw, "tw_form": tw_form, "tw_quantile": t,
                 "spike_test": spike_test, "spike_alpha": recorded_alpha},
        singular_values=s_desc,
    )
