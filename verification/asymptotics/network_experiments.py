"""Registry of the network/training experiments of THEORY.md 10: E6, E7, E8, E9, E11.

Each entry is ``run(size, seed, *, mutation=None) -> ExperimentResult`` with ``size`` in
``{"ci", "thorough"}``; ``mutation`` names a known-bad variant (the check must then fail).  Figures are
drawn from the result by :func:`figures.asymptotic_plots.plot_experiment`.

* E6, E7, E11 — :mod:`verification.asymptotics.loss_reduction` (Theorems 4.5–4.6, OR1 Corollaries 2.1–2.2, 3.17–3.19).
* E8 — :mod:`verification.asymptotics.stationarity_training` (Theorems 4.7–4.8, Corollaries 4.9–4.12).
* E9 — :mod:`verification.asymptotics.thresholding` (OR1 Theorem 3.20).
"""

from __future__ import annotations

from typing import Callable

from .loss_reduction import run_e6, run_e7, run_e11
from .result import ExperimentResult
from .stationarity_training import run_e8
from .thresholding import run_e9

__all__ = ["NETWORK_EXPERIMENTS", "KNOWN_BAD"]

NETWORK_EXPERIMENTS: dict[str, Callable[..., ExperimentResult]] = {
    "E6": run_e6,
    "E7": run_e7,
    "E8": run_e8,
    "E9": run_e9,
    "E11": run_e11,
}

#: One known-bad variant per experiment (the tests show each one fails its check).
KNOWN_BAD: dict[str, tuple[str, ...]] = {
    "E6": ("double-penalty",),
    "E7": ("double-penalty", "stale-step"),
    "E8": ("no-regularizer",),
    "E9": ("half-threshold", "beta-factor-1"),
    "E11": ("double-penalty",),
}
