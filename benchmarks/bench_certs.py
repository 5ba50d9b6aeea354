"""Benchmarks of the Section-5 certificates (THEORY.md 4) against one forward pass over ``T``.

Network: the spiked Gaussian three-layer network of THEORY.md 7.1 (``d = 32``, ``N = n = 1024``, ``K = 10``,
spikes ``(5, 4, 3, 2)``, ``g = 0.8``, ReLU), target layer ``W2 = S2 + R2`` (``1024 x 1024``), ``|T| = 4096``
Gaussian inputs labelled by the dense network.  Splits: the magnitude mask keeping the larger half of
``|W2|`` (Theorems 5.4, 5.7, OR1 1.1, Lemma 5.1, Corollary 5.2), the planted ``S2 + R2`` (Theorem 5.3),
and a prune–restore triple (Theorem 5.5, Corollary 5.6).  ``L_s`` is Method G computed once and passed as
numbers, so the timings are those of the certificate computations themselves (Methods S/D are benchmarked
in bench_lipschitz.py).

``test_certificate`` times each computation with pytest-benchmark; ``test_multiple_of_forward_pass``
times all of them interleaved with the baseline ``mlp.logits_np(X)`` (medians of ``REPEATS`` runs) and
records each as a multiple of one forward pass over ``T``.

Run with ``bash scripts/bench.sh benchmarks/bench_certs.py``.
"""

from __future__ import annotations


import numpy as np
import pytest

from certs.budget import data_path_budget, segment_lipschitz
from certs.prune_restore import prune_restore_certificate, restore_comparison
from certs.single_layer import (
    ce_path_bound,
    elastic_net_certificate,
    frobenius_certificate,
    margin_stability,
    weighted_mask_certificate,
)
from certs.splits import checked_split, mask_split, prune_restore_split
from certs.stationarity import stationarity_certificate
from verification.theorems.networks import spiked_gaussian_network
from timing import median_time

REPEATS = 5
N, D, K, N_SAMPLES = 1024, 32, 10, 4096
LAMBDA1, LAMBDA2 = 1e-4, 1e-3


@pytest.fixture(scope="module")
def setting():
    net = spiked_gaussian_network(d=D, K=K, N=N, r=4, sigma=[5.0, 4.0, 3.0, 2.0], g=0.8, seed=0)
    X = np.random.default_rng(1).standard_normal((N_SAMPLES, D))
    labels = np.argmax(net.mlp.logits_np(X), axis=1)
    view = net.target_view(X, labels)
    a = view.weight
    keep = np.abs(a) >= np.median(np.abs(a))
    mask = mask_split(a, keep)
    planted = checked_split(a, net.S2, net.R2)
    final = keep | (np.abs(a) >= np.quantile(np.abs(a), 0.25))
    triple = prune_restore_split(a, final, keep)
    lip = segment_lipschitz(view, mask.structured, mask.removed, "G")  # R-independent: valid on every path
    gamma = np.full(a.shape, LAMBDA1)
    return {
        "forward pass over T": lambda: net.mlp.logits_np(X),
        "B_T(R)": lambda: data_path_budget(mask.removed, view.inputs, lip),
        "Lemma 5.1": lambda: ce_path_bound(view, mask, lip, 0.0),
        "Corollary 5.2": lambda: margin_stability(view, mask, lip, 0.0),
        "Theorem 5.3": lambda: frobenius_certificate(view, planted, lip, LAMBDA2, 0.0),
        "Theorem 5.4": lambda: elastic_net_certificate(view, mask, lip, LAMBDA1, LAMBDA2, 0.0),
        "Theorem 5.5": lambda: prune_restore_certificate(view, triple, lip, LAMBDA1, LAMBDA2, 0.0),
        "Corollary 5.6": lambda: restore_comparison(view, triple, lip, lip, LAMBDA1, LAMBDA2),
        "Theorem 5.7": lambda: stationarity_certificate(view, mask, lip, LAMBDA1, LAMBDA2, 0.5),
        "OR1 Corollary 1.1": lambda: weighted_mask_certificate(view, mask, lip, gamma, np.full(a.shape, LAMBDA2), 0.0),
    }



NAMES = ("forward pass over T", "B_T(R)", "Lemma 5.1", "Corollary 5.2", "Theorem 5.3", "Theorem 5.4", "Theorem 5.5",
         "Corollary 5.6", "Theorem 5.7", "OR1 Corollary 1.1")


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.benchmark(group="certs")
def test_certificate(benchmark, setting, name):
    benchmark.pedantic(setting[name], rounds=REPEATS, iterations=1, warmup_rounds=1)


def test_multiple_of_forward_pass(setting, record_property):
    times = {name: median_time(setting[name], REPEATS) for name in NAMES}
    base = times["forward pass over T"]
    lines = [f"forward pass over T ({N_SAMPLES} samples, n = {N}): {base * 1e3:.1f} ms"]
    for name in NAMES[1:]:
        record_property(f"{name} / forward", times[name] / base)
        lines.append(f"  {name:20s} {times[name] * 1e3:8.1f} ms  = {times[name] / base:5.2f} x forward")
    print("\n" + "\n".join(lines))
    assert all(np.isfinite(t) for t in times.values())
