"""Benchmarks of ``certs.lipschitz`` (THEORY.md 3): methods S and D against method P in the same run.

Network: ``ReluAbsMLP`` with widths ``[32, 64, 64, 10]`` (ReLU, final activation), target layer 1
(``64 x 64``), ``|T| = 256`` Gaussian inputs, split ``A = S + R`` by a Bernoulli(1/2) keep-mask.
``test_method_*`` time each method with pytest-benchmark; ``test_ratio_to_method_P`` times the
three interleaved (medians of ``REPEATS`` runs) and records ``t_S / t_P`` and ``t_D / t_P`` together
with the piece counts and the tightness ``L^D / L^P``.

Run with ``bash scripts/bench.sh benchmarks/bench_lipschitz.py``.
"""

from __future__ import annotations


import numpy as np
import pytest

from certs.lipschitz import lipschitz_constants
from verification.theorems.networks import ReluAbsMLP
from timing import median_time

REPEATS = 5
WIDTHS = (32, 64, 64, 10)
N_SAMPLES = 256
TARGET = 1


@pytest.fixture(scope="module")
def segment():
    rng = np.random.default_rng(0)
    mlp = ReluAbsMLP(WIDTHS, activation="relu", seed=0)
    X = rng.standard_normal((N_SAMPLES, WIDTHS[0]))
    view = mlp.layer_view(TARGET, X, rng.integers(0, WIDTHS[-1], N_SAMPLES))
    keep = rng.random(view.weight.shape) < 0.5
    S, R = np.where(keep, view.weight, 0.0), np.where(keep, 0.0, view.weight)
    return view.tail, view.inputs @ S.T, view.inputs @ R.T



@pytest.mark.parametrize("method", ["P", "S", "D"])
@pytest.mark.benchmark(group="lipschitz")
def test_method(benchmark, segment, method):
    result = benchmark.pedantic(
        lipschitz_constants, args=(*segment, method), rounds=REPEATS, iterations=1, warmup_rounds=1
    )
    assert result.values.shape == (N_SAMPLES,) and not result.fell_back.any()


def test_ratio_to_method_P(segment, record_property):
    results = {m: lipschitz_constants(*segment, m) for m in "PSD"}
    times = {m: median_time(lambda m=m: lipschitz_constants(*segment, m), REPEATS) for m in "PSD"}
    ratios = {f"t_{m}/t_P": times[m] / times["P"] for m in "SD"}
    pieces = results["S"].n_pieces
    tightness = float(np.median(results["D"].values / results["P"].values))
    for key, value in {**ratios, "median_pieces": float(np.median(pieces)), "max_pieces": int(pieces.max()),
                       "median_LD_over_LP": tightness, **{f"t_{m}_s": t for m, t in times.items()}}.items():
        record_property(key, value)
    print(f"\nlipschitz per {N_SAMPLES} samples: " + ", ".join(f"{k}={v:.3g}" for k, v in times.items())
          + f"; ratios {ratios}; pieces median {np.median(pieces):.0f} max {pieces.max()};"
          f" median L^D/L^P {tightness:.3g}")
    assert np.all(results["D"].values <= results["S"].values * (1 + 1e-9))
    assert np.all(results["S"].values <= results["P"].values * (1 + 1e-9))
