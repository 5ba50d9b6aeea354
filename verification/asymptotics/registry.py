"""All finite-N experiments of THEORY.md 10 by id: ``EXPERIMENTS[id](size, seed) -> ExperimentResult``.

Spectral experiments (E1–E5, E10, E12, E13) live in this package's ``*_experiments`` modules; the
network/training experiments (E6–E9, E11) come from :mod:`.network_experiments` (``NETWORK_EXPERIMENTS``).
:func:`run_experiment` runs one with BLAS limited to one thread (several BLAS threads fighting over two
shared cores made the eigen-decompositions ~10x slower) and times it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

from threadpoolctl import threadpool_limits

from rmt.errors import InvalidParameterError

from .bbp_experiments import run_e3, run_e4
from .collapse_experiments import run_e5
from .mp_law_experiments import run_e1, run_e2, run_e12
from .noise_experiments import run_e10, run_e13
from .network_experiments import NETWORK_EXPERIMENTS
from .result import ExperimentResult, ExperimentSize

__all__ = ["Experiment", "SPECTRAL_EXPERIMENTS", "EXPERIMENTS", "SIZES", "ExperimentRun", "run_experiment"]

Experiment = Callable[[ExperimentSize, int], ExperimentResult]

SPECTRAL_EXPERIMENTS: dict[str, Experiment] = {
    "E1": run_e1, "E2": run_e2, "E3": run_e3, "E4": run_e4, "E5": run_e5, "E10": run_e10, "E12": run_e12,
    "E13": run_e13,
}

#: Every experiment, in THEORY.md 10's order.
EXPERIMENTS: dict[str, Experiment] = dict(
    sorted({**SPECTRAL_EXPERIMENTS, **NETWORK_EXPERIMENTS}.items(), key=lambda item: int(item[0].lstrip("E")))
)

#: ``ci``: the reduced size run in CI; ``thorough``: THEORY.md 10's full size.
SIZES: tuple[ExperimentSize, ...] = ("ci", "thorough")


@dataclass(frozen=True)
class ExperimentRun:
    """One experiment's result with its wall-clock time."""

    result: ExperimentResult
    seconds: float


def run_experiment(experiment_id: str, size: ExperimentSize = "ci", seed: int = 0) -> ExperimentRun:
    """Run ``EXPERIMENTS[experiment_id]`` at ``size`` with ``seed`` (BLAS on one thread)."""
    if experiment_id not in EXPERIMENTS:
        raise InvalidParameterError(f"experiment_id must be one of {list(EXPERIMENTS)}, got {experiment_id!r}")
    if size not in SIZES:
        raise InvalidParameterError(f"size must be one of {SIZES}, got {size!r}")
    start = time.perf_counter()
    with threadpool_limits(limits=1, user_api="blas"):
        result = EXPERIMENTS[experiment_id](size, seed)
    return ExperimentRun(result, time.perf_counter() - start)
