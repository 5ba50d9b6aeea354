"""Spectral Edge Budgeting (ALGORITHMS.md 4): a global magnitude budget re-weighted by the MP edge.

Over the ``L`` target layers (4.2)::

    z_l   = (x_l - mean(x)) / sd(x)          population sd (ddof = 0); all z = 0 when sd < 1e-12
    d(s)  = max(0, 1 - s / s_d) ** p
    w_l   = max(0.1, 1 + beta_type(l) d(s) z_l)
    score = |W_ij| / w_l;   prune the floor(s N) globally smallest scores (exact count, index ties)

with ``x_l = sigma_plus(l)`` or the Hill exponent ``alpha_l`` of the dense weights.  ``beta = 0`` or
``s >= s_d`` gives ``w_l = 1`` and global magnitude bit for bit.  ``beta_type`` is ``beta_attn`` /
``beta_mlp`` / ``beta`` for ``attn`` / ``mlp`` / other layers (name rule of 0.3).

Regime tables (4.3, 5.3) select ``(signal, beta, s_d, beta_attn, beta_mlp)`` from ``s``:

* ``"four_regime"`` (SEB default): s <= 0.20 Hill (0.5, 0.3); <= 0.40 sigma (1.0, 0.5);
  <= 0.55 sigma (1.25, 0.7); above sigma layer-type (attn 1.0, mlp 2.0, other 1.5; 0.85).
* ``"sigma_plus"`` (SER over-prune default [P][I]): the sigma rows only, the low row also below 0.20.
* ``"final_comparison"``: plain magnitude for s < 0.30, the sigma rows from 0.30 [P].

Haar SV preprocessing (2.2 c) runs once before the budget by default (``sv_z_base = 0.5``, power 3:
the paper's full-validation SEB row, 4.3); :func:`seb` documents the switch.

Layers without a fitted signal: ``missing_signal="zero_z"`` gives them ``z = 0`` after standardising the
others [I]; ``"reference"`` substitutes the raw value 0 before standardising (the authors' code).
"""

from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass
from typing import Iterable, Mapping

import numpy as np
import torch
from torch import nn

from .arguments import check_sparsity
from .errors import PruningParameterError
from .magnitude import pooled_exact_prune
from .mask import Mask, Provenance
from .rmt_baseline import haar_preprocess
from .sigma_cache import SpectralCache, spectral_cache
from .target_layers import select_layers, weight_matrix

__all__ = [
    "Regime", "REGIME_TABLES", "MISSING_SIGNAL_MODES", "WEIGHT_FLOOR", "SV_Z_BASE", "SV_POWER", "layer_type",
    "regime_for",
    "standardise", "seb_weights", "weighted_exact_prune", "seb",
]

WEIGHT_FLOOR = 0.1
#: Haar SV preprocessing of the paper's full-validation SEB row (4.3, 12.4): z_base = 0.5, power 3
SV_Z_BASE = 0.5
SV_POWER = 3.0
SD_TOLERANCE = 1e-12
MISSING_SIGNAL_MODES = ("zero_z", "reference")


@dataclass(frozen=True)
class Regime:
    """One row of the SEB strategy table (4.3); ``beta_attn``/``beta_mlp`` default to ``beta``."""

    signal: str = "sigma_plus"
    beta: float = 1.0
    s_d: float = 0.5
    beta_attn: float | None = None
    beta_mlp: float | None = None
    p: float = 1.0

    def __post_init__(self) -> None:
        if self.signal not in ("sigma_plus", "hill"):
            raise PruningParameterError(f"signal: expected 'sigma_plus' or 'hill', got {self.signal!r}")
        for label, value in (("beta", self.beta), ("beta_attn", self.beta_attn), ("beta_mlp", self.beta_mlp)):
            if value is not None and not math.isfinite(value):
                raise PruningParameterError(f"{label}: must be finite, got {value!r}")
        if not (self.s_d > 0 and math.isfinite(self.s_d)):
            raise PruningParameterError(f"s_d: must be positive and finite, got {self.s_d!r}")
        if not (self.p > 0 and math.isfinite(self.p)):
            raise PruningParameterError(f"p: must be positive and finite, got {self.p!r}")

    def beta_for(self, kind: str) -> float:
        if kind == "attn" and self.beta_attn is not None:
            return self.beta_attn
        if kind == "mlp" and self.beta_mlp is not None:
            return self.beta_mlp
        return self.beta

    def decay(self, s: float) -> float:
        """``d(s) = [1 - s / s_d]_+ ** p``."""
        return max(0.0, 1.0 - s / self.s_d) ** self.p


_VERY_LOW = Regime("hill", 0.5, 0.3)
_LOW = Regime("sigma_plus", 1.0, 0.5)
_MODERATE = Regime("sigma_plus", 1.25, 0.7)
_HIGH = Regime("sigma_plus", 1.5, 0.85, beta_attn=1.0, beta_mlp=2.0)
_MAGNITUDE = Regime("sigma_plus", 0.0, 0.5)

#: (upper bound of s, inclusive; regime), scanned in order; the last row has bound inf.
REGIME_TABLES: Mapping[str, tuple[tuple[float, Regime], ...]] = {
    "four_regime": ((0.20, _VERY_LOW), (0.40, _LOW), (0.55, _MODERATE), (math.inf, _HIGH)),
    "sigma_plus": ((0.40, _LOW), (0.55, _MODERATE), (math.inf, _HIGH)),
    "final_comparison": ((math.nextafter(0.30, 0.0), _MAGNITUDE), (0.40, _LOW), (0.55, _MODERATE), (math.inf, _HIGH)),
}


def regime_for(s: float, table: str | Regime = "four_regime") -> Regime:
    """The regime row of ``table`` covering sparsity ``s`` (a :class:`Regime` is returned as is)."""
    if isinstance(table, Regime):
        return table
    if table not in REGIME_TABLES:
        raise PruningParameterError(f"regime: expected a Regime or one of {tuple(REGIME_TABLES)}, got {table!r}")
    return next(row for bound, row in REGIME_TABLES[table] if s <= bound)


def layer_type(name: str) -> str:
    """``attn`` if the lower-cased name contains "attn"; else ``mlp`` for "mlp" or ".fc"; else ``other`` (0.3)."""
    lowered = name.lower()
    if "attn" in lowered:
        return "attn"
    if "mlp" in lowered or ".fc" in lowered:
        return "mlp"
    return "other"


def standardise(values: Mapping[str, float | None], names: Iterable[str],
                missing_signal: str = "zero_z") -> dict[str, float]:
    """``z_l`` over ``names`` with the population sd; missing values per ``missing_signal`` (module doc)."""
    if missing_signal not in MISSING_SIGNAL_MODES:
        raise PruningParameterError(f"missing_signal: expected one of {MISSING_SIGNAL_MODES}, got {missing_signal!r}")
    names = list(names)
    if missing_signal == "reference":
        present = {n: float(values.get(n) or 0.0) for n in names}
    else:
        present = {n: float(values[n]) for n in names if values.get(n) is not None}
    for name, value in present.items():
        if not math.isfinite(value):
            raise PruningParameterError(f"{name}: SEB signal is not finite ({value!r})")
    x = np.array(list(present.values()), dtype=np.float64)
    sd = float(x.std()) if x.size else 0.0
    z = {n: 0.0 for n in names}
    if sd >= SD_TOLERANCE:
        mean = float(x.mean())
        z.update({n: (v - mean) / sd for n, v in present.items()})
    return z


def seb_weights(
    signal: Mapping[str, float | None], names: Iterable[str], s: float, regime: Regime, missing_signal: str = "zero_z"
) -> dict[str, float]:
    """``w_l(s) = max(0.1, 1 + beta_type(l) d(s) z_l)`` for every layer in ``names`` (4.2)."""
    z = standardise(signal, names, missing_signal)
    d = regime.decay(s)
    return {n: max(WEIGHT_FLOOR, 1.0 + regime.beta_for(layer_type(n)) * d * z_n) for n, z_n in z.items()}


def weighted_exact_prune(
    modules: Mapping[str, nn.Module], weights: Mapping[str, float], n_prune: int
) -> dict[str, torch.Tensor]:
    """Keep-tensors pruning exactly ``n_prune`` globally smallest ``|W| / w_l`` (flat-index ties, 3.1)."""
    scores = {n: weight_matrix(m, n).abs().reshape(-1).numpy() / weights[n] for n, m in modules.items()}
    return pooled_exact_prune(scores, {n: m.weight.shape for n, m in modules.items()}, n_prune)


def seb(
    model: nn.Module,
    target_sparsity: float,
    calibration=None,
    *,
    cache: SpectralCache | None = None,
    regime: str | Regime = "four_regime",
    missing_signal: str = "zero_z",
    sv_z_base: float | None = SV_Z_BASE,
    sv_power: float = SV_POWER,
    sv_hill_scaling: bool = True,
    layers: Iterable[str] | None = None,
    inplace: bool = False,
) -> Mask:
    """SEB mask of ``model`` at global sparsity ``s`` (4.4); ``calibration`` is unused (data-free).

    ``cache``: the dense checkpoint's MP fits (computed from ``model`` when omitted, which is right
    only if ``model`` is the dense checkpoint).  ``regime``: a table name or a :class:`Regime`.

    **Haar SV preprocessing** (2.2 c, 4.3): by default (``sv_z_base = 0.5``, ``sv_power = 3``, the
    paper's full-validation SEB row, 12.4) every fitted layer is first replaced by
    :func:`pruning.rmt_baseline.haar_sv_sparsify` of its weights (edge from ``cache``;
    ``z = sv_z_base alpha_l / mean(alpha)`` with the cache's Hill exponents when ``sv_hill_scaling``),
    once, and the SEB budget is computed on the preprocessed weights.  This changes weight
    *values*: the mask alone does not carry them, so pass ``inplace=True`` to keep the preprocessed
    weights in ``model`` (otherwise a copy is preprocessed and ``model`` is untouched).
    ``sv_z_base=None`` switches the preprocessing off: the pure budget of 4.2, for which ``beta = 0``
    is global magnitude bit for bit (4.5).
    """
    s = check_sparsity(target_sparsity)
    work = model if (inplace or sv_z_base is None) else copy.deepcopy(model)
    chosen = select_layers(work, layers)
    cache = spectral_cache(work, chosen) if cache is None else cache
    row = regime_for(s, regime)
    weights = seb_weights(cache.signal(row.signal), chosen, s, row, missing_signal)
    sv_z = {}
    if sv_z_base is not None:
        sv_z = haar_preprocess(chosen, cache.sigma_plus, sv_z_base, sv_power,
                               cache.hill_alpha if sv_hill_scaling else None)
    total = sum(m.weight.numel() for m in chosen.values())
    keep = weighted_exact_prune(chosen, weights, math.floor(s * total))
    options = {
        "regime": regime if isinstance(regime, str) else "custom",
        "row": asdict(row),
        "missing_signal": missing_signal,
        "layer_weights": weights,
        "sv_preprocess": None if sv_z_base is None else {
            "method": "haar_sv_sparsify", "z_base": sv_z_base, "power": sv_power, "hill_scaling": sv_hill_scaling,
            "z_per_layer": sv_z, "weights_written_to_model": inplace,
        },
        "spectral_cache": dict(cache.options),
        "unfitted_layers": list(cache.unfitted),
        "tie_break": "flat_index",
    }
    return Mask(keep=keep, provenance=Provenance(method="seb", options=options, sparsity=s))
