"""Per-layer MP fits of the dense checkpoint, computed once (ALGORITHMS.md 1.4 defaults, 6.1).

SEB, SER and Hybrid weight their layers by the fitted MP edge ``sigma_plus`` (or the Hill exponent
``alpha``) of the **dense pretrained** weights; the paper's runs compute this cache once and reuse it
at every sparsity step (never refreshed after pruning) [R].  :func:`spectral_cache` fits every target
layer with :func:`rmt.fit.fit_mp` (defaults ``alpha_bema = 0.25``, ``beta_tw = 0.8``,
``tw_form = "reference"``).  A layer too small or too low-rank for an MP fit gets no entry in
``fits`` and is listed in ``unfitted`` (SEB then gives it ``z = 0``, 4.2 edge cases).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Iterable, Mapping

import numpy as np
from torch import nn

from rmt.errors import InvalidMatrixError, InvalidParameterError, WeightOverflowError
from rmt.fit import MPFit, fit_mp

from .target_layers import select_layers, weight_matrix

__all__ = ["SpectralCache", "fit_if_possible", "spectral_cache"]


@dataclass(frozen=True)
class SpectralCache:
    """MP fits per layer name (``fits``), the layers that could not be fitted, and the fit options."""

    fits: Mapping[str, MPFit]
    unfitted: tuple[str, ...] = ()
    options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "fits", MappingProxyType(dict(self.fits)))
        object.__setattr__(self, "options", MappingProxyType(dict(self.options)))

    @property
    def sigma_plus(self) -> dict[str, float]:
        return {name: fit.sigma_plus for name, fit in self.fits.items()}

    @property
    def hill_alpha(self) -> dict[str, float]:
        return {name: fit.hill_alpha for name, fit in self.fits.items()}

    def signal(self, kind: str) -> dict[str, float]:
        """``sigma_plus`` or ``hill`` values per fitted layer (the SEB signal of 4.2)."""
        if kind == "sigma_plus":
            return self.sigma_plus
        if kind == "hill":
            return self.hill_alpha
        raise InvalidParameterError(f"signal: expected 'sigma_plus' or 'hill', got {kind!r}")

    def to_json(self) -> dict[str, Any]:
        return {
            "options": dict(self.options),
            "unfitted": list(self.unfitted),
            "layers": {name: {"sigma_plus": f.sigma_plus, "hill_alpha": f.hill_alpha, "mp_fit_error": f.mp_fit_error,
                              "bulk_fraction": f.bulk_fraction} for name, f in self.fits.items()},
        }


def fit_if_possible(matrix: np.ndarray, name: str, **options: Any) -> MPFit | None:
    """:func:`rmt.fit.fit_mp` of ``matrix``, or ``None`` when it is too small / of too low rank to fit [I]."""
    try:
        return fit_mp(matrix, name=name, **options)
    except WeightOverflowError:
        raise  # bad input, not a layer too small to fit
    except InvalidMatrixError:
        return None
    except InvalidParameterError as exc:
        if "too small" not in str(exc):
            raise
        return None


def spectral_cache(
    model: nn.Module,
    layers: Iterable[str] | None = None,
    *,
    alpha_bema: float = 0.25,
    beta_tw: float = 0.8,
    tw_form: str = "reference",
) -> SpectralCache:
    """Fit the MP law (:func:`rmt.fit.fit_mp`, BEMA) to every target layer of ``model`` once.

    NaN / Inf weights raise :class:`pruning.errors.InvalidWeightError` naming the layer; a layer
    whose matrix is too small (empty BEMA window) or of too low rank is recorded in ``unfitted``.
    """
    fits: dict[str, MPFit] = {}
    unfitted: list[str] = []
    for name, module in select_layers(model, layers).items():
        fit = fit_if_possible(weight_matrix(module, name).numpy(), name,
                              alpha_bema=alpha_bema, beta_tw=beta_tw, tw_form=tw_form)
        if fit is None:
            unfitted.append(name)
        else:
            fits[name] = fit
    options = {"alpha_bema": alpha_bema, "beta_tw": beta_tw, "tw_form": tw_form, "method": "bema"}
    return SpectralCache(fits=fits, unfitted=tuple(unfitted), options=options)
