"""The data-path budget ``B_T(R)`` and per-sample logit perturbations ``eta_s`` (THEORY.md 1.4, eq. 8).

    B_T(R) = (2/|T|) sum_{s in T} L_s ||R psi_1(s)||_inf
    eta_s(theta) = (1 - theta) L_s ||R psi_1(s)||_inf          (Corollary 5.2; no factor 2)

``L_s`` must be valid on the segment ``{(S + theta R) psi_1(s) : theta in [0, 1]}`` of the path the
certificate is about (THEORY.md 3.6).  It is passed either as numbers (an array, a
``LipschitzResult`` of :mod:`certs.lipschitz`, a :class:`rmt.bounds.Bound`), or as a method name
``'G' | 'P' | 'S' | 'D'`` that :func:`segment_lipschitz` evaluates on the right segment.
A plain array carries no proof, so its label is ``estimate`` unless wrapped in
:class:`PerSampleLipschitz` with label ``sound``.  ``B_T`` is ``sound`` only if every ``L_s`` is.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rmt.bounds import ESTIMATE, ROUNDING_MARGIN, SOUND, Bound, Label

from .errors import CertificateInputError
from .layer_view import LayerView, PiecewiseLinearTail
from .lipschitz import lipschitz_constants
from .path import removed_products

__all__ = [
    "PerSampleLipschitz",
    "LIPSCHITZ_METHODS",
    "per_sample_lipschitz",
    "segment_lipschitz",
    "resolve_lipschitz",
    "upper_sum",
    "budget_from_products",
    "data_path_budget",
    "eta_from_products",
    "logit_perturbations",
]

#: Method names understood by :func:`certs.lipschitz.lipschitz_constants` (THEORY.md 3.2–3.5).
LIPSCHITZ_METHODS = ("G", "P", "S", "D")


@dataclass(frozen=True, eq=False)
class PerSampleLipschitz:
    """``L_s`` for every sample, with the label of the weakest one and where they came from."""

    values: np.ndarray
    label: Label
    method: str

    def __post_init__(self) -> None:
        v = np.asarray(self.values, dtype=np.float64)
        if v.ndim != 1 or not np.all(np.isfinite(v)) or np.any(v < 0):
            raise CertificateInputError(f"lipschitz: L_s must be finite, >= 0 and one per sample, got shape {v.shape}")
        if self.label not in (SOUND, ESTIMATE):
            raise CertificateInputError(f"lipschitz: label must be 'sound' or 'estimate', got {self.label!r}")
        object.__setattr__(self, "values", v)

    def scaled(self, factor: float) -> "PerSampleLipschitz":
        """``factor * L_s``; the label survives only for ``factor >= 1`` (a larger bound stays valid)."""
        label = self.label if factor >= 1.0 else ESTIMATE
        return PerSampleLipschitz(self.values * factor, label, f"{self.method}*{factor:g}")


def per_sample_lipschitz(lipschitz, n_samples: int) -> PerSampleLipschitz:
    """Normalise ``L_s`` given as numbers to one value per sample (see the module docstring)."""
    if isinstance(lipschitz, PerSampleLipschitz):
        result = lipschitz
    elif isinstance(lipschitz, Bound):
        result = PerSampleLipschitz(np.full(n_samples, float(lipschitz.value)), lipschitz.label, lipschitz.method)
    elif hasattr(lipschitz, "values") and hasattr(lipschitz, "label"):
        result = PerSampleLipschitz(
            np.asarray(lipschitz.values, dtype=np.float64), lipschitz.label,
            str(getattr(lipschitz, "method", "lipschitz"))
        )
    else:
        arr = np.asarray(lipschitz, dtype=np.float64)
        result = PerSampleLipschitz(np.broadcast_to(arr, (n_samples,)).copy() if arr.ndim == 0 else arr, ESTIMATE,
                                    "given")
    if result.values.shape != (n_samples,):
        raise CertificateInputError(
            f"lipschitz: expected one L_s per sample ({n_samples}), got {result.values.shape[0]}"
        )
    return result


def segment_lipschitz(view: LayerView, start_weight: np.ndarray, direction_weight: np.ndarray,
                      method: str) -> PerSampleLipschitz:
    """``L_s`` valid on ``{(start + theta direction) psi_1(s) : theta in [0, 1]}`` by Method ``method``.

    The path of Theorems 5.3–5.4 is ``start = S``, ``direction = R``; Theorem 5.5 uses
    ``start = S + Q``, ``direction = P`` (THEORY.md 3.6: different paths need their own ``L_s``).
    """
    if method not in LIPSCHITZ_METHODS:
        raise CertificateInputError(f"lipschitz: method must be one of {LIPSCHITZ_METHODS}, got {method!r}")
    if not isinstance(view.tail, PiecewiseLinearTail):
        raise CertificateInputError(
            f"lipschitz: method {method!r} needs psi_2 of layer {view.name!r} as a PiecewiseLinearTail"
        )
    start = view.inputs @ np.asarray(start_weight, dtype=np.float64).T
    direction = view.inputs @ np.asarray(direction_weight, dtype=np.float64).T
    result = lipschitz_constants(view.tail, start, direction, method=method)
    return PerSampleLipschitz(np.asarray(result.values, dtype=np.float64), result.label, f"lipschitz-{method}")


def resolve_lipschitz(view: LayerView, lipschitz, start_weight: np.ndarray,
                      direction_weight: np.ndarray) -> PerSampleLipschitz:
    """``L_s`` from numbers (assumed valid on the certificate's path) or from a method name."""
    if isinstance(lipschitz, str):
        return segment_lipschitz(view, start_weight, direction_weight, lipschitz)
    return per_sample_lipschitz(lipschitz, view.n_samples)


def upper_sum(terms, n_ops: int = 1) -> float:
    """``sum(terms)`` rounded outward: plus ``max(ROUNDING_MARGIN, n_ops eps) * sum |terms|`` and one ulp.

    The margin is relative to the sizes of the terms, not of the result, so a difference of two
    nearly equal quantities stays an upper bound (THEORY.md 3.6).
    """
    t = np.asarray(terms, dtype=np.float64).ravel()
    scale = max(ROUNDING_MARGIN, n_ops * np.finfo(np.float64).eps)
    return float(np.nextafter(t.sum() + scale * np.abs(t).sum(), np.inf))


def budget_from_products(products: np.ndarray, lipschitz: PerSampleLipschitz, width: int) -> Bound:
    """``B_T(R) = (2/|T|) sum_s L_s p_s`` from the exact ``p_s = ||R psi_1(s)||_inf`` (``width`` = columns of ``R``,
    for the rounding margin), rounded up; ``sound`` only if every ``L_s`` is."""
    if lipschitz.values.shape != products.shape:
        raise CertificateInputError(
            f"lipschitz: expected one L_s per sample ({products.shape[0]}), got {lipschitz.values.shape[0]}"
        )
    per_sample = 2.0 * lipschitz.values * products / products.size
    value = upper_sum(per_sample, n_ops=products.size + width + 2)
    return Bound(value=value, label=lipschitz.label, method="data-path-budget", options={"lipschitz": lipschitz.method})


def data_path_budget(removed, inputs, lipschitz: PerSampleLipschitz) -> Bound:
    """``B_T(R) = (2/|T|) sum_s L_s ||R psi_1(s)||_inf`` (THEORY.md 1.4, eq. 8), rounded up.

    ``label`` is ``sound`` only if every ``L_s`` is; the exact products are never replaced by norm
    products.
    """
    return budget_from_products(removed_products(removed, inputs), lipschitz, np.shape(removed)[1])


def eta_from_products(products: np.ndarray, lipschitz: PerSampleLipschitz, theta: float, width: int) -> np.ndarray:
    """``eta_s(theta) = (1 - theta) L_s p_s`` rounded up (0 stays 0), from ``p_s = ||R psi_1(s)||_inf``."""
    eta = (1.0 - theta) * lipschitz.values * products
    scale = max(ROUNDING_MARGIN, (width + 3) * np.finfo(np.float64).eps)
    return np.where(eta > 0, np.nextafter(eta + scale * eta, np.inf), 0.0)


def logit_perturbations(removed, inputs, lipschitz: PerSampleLipschitz, theta: float) -> np.ndarray:
    """``eta_s(theta) = (1 - theta) L_s ||R psi_1(s)||_inf`` per sample (Corollary 5.2, no factor 2), rounded up."""
    return eta_from_products(removed_products(removed, inputs), lipschitz, theta, np.shape(removed)[1])
