"""Benchmarks of CAST k:n (``pruning.cast``, ALGORITHMS.md 7.3-7.4) against a straightforward loop.

Run: ``.venv/bin/python -m pytest benchmarks/bench_cast.py -s`` (results: benchmarks/RESULTS-pruning.md).

* ``test_cast_24_768x3072``: one 768x3072 Linear (ViT-B fc1 shape), 256 calibration tokens.
* ``test_cast_24_vit_tiny``: every eligible Linear of ``vit_tiny_patch16_224`` (pretrained=False,
  48 layers, classifier excluded), 256 calibration rows per layer captured with hooks.
* ``test_speed_ratio_against_loop``: the same two workloads timed interleaved against
  :func:`loop_cast` (a loop over rows and groups, costs of all candidates per (row, group) by one
  small einsum); masks must be identical; the ratio is printed.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from timing import timed_median

from pruning.calibration import ActivationCapture
from pruning.cast import cast_layer, group_covariances
from pruning.kn_patterns import KNPattern, candidate_patterns
from pruning.target_layers import kn_layers, weight_matrix

PATTERN = KNPattern(2, 4)
TOKENS = 256
REPEATS = 3


def loop_cast(w: np.ndarray, h: np.ndarray, pattern: KNPattern) -> np.ndarray:
    """Baseline: per (row, group), cost of every candidate ``r^T C_g r``; first argmin; keep mask."""
    cands = candidate_patterns(pattern)
    drop = (~cands).astype(np.float64)
    n = pattern.n
    keep = np.zeros(w.shape, dtype=bool)
    covs = group_covariances(h, n)
    for g in range(w.shape[1] // n):
        cols = slice(g * n, (g + 1) * n)
        for i in range(w.shape[0]):
            r = drop * w[i, cols]
            keep[i, cols] = cands[np.argmin(np.einsum("pj,jk,pk->p", r, covs[g], r))]
    return keep


@pytest.fixture(scope="module")
def single_layer():
    rng = np.random.default_rng(0)
    return rng.standard_normal((768, 3072)) * 0.02, rng.standard_normal((TOKENS, 3072))


@pytest.fixture(scope="module")
def vit_tiny_layers():
    import timm

    torch.manual_seed(0)
    model = timm.create_model("vit_tiny_patch16_224", pretrained=False).eval()
    layers = kn_layers(model, PATTERN)
    acts = ActivationCapture(torch.randn(2, 3, 224, 224), max_rows=TOKENS)(model, layers)
    assert len(layers) == 48
    return [(weight_matrix(m, name).numpy(), acts[name]) for name, m in layers.items()]


def ours(workload):
    cands = candidate_patterns(PATTERN)
    return [cast_layer(w, h, PATTERN, cands).keep for w, h in workload]


def baseline(workload):
    return [loop_cast(w, h, PATTERN) for w, h in workload]


def test_cast_24_768x3072(benchmark, single_layer):
    benchmark.pedantic(ours, args=([single_layer],), rounds=REPEATS, iterations=1)


def test_cast_24_vit_tiny(benchmark, vit_tiny_layers):
    benchmark.pedantic(ours, args=(vit_tiny_layers,), rounds=REPEATS, iterations=1)


@pytest.mark.parametrize("name", ["single_layer", "vit_tiny_layers"])
def test_speed_ratio_against_loop(name, request):
    workload = request.getfixturevalue(name)
    workload = [workload] if name == "single_layer" else workload
    t_loop, keep_loop = timed_median(lambda: baseline(workload), 1)
    t_ours, keep_ours = timed_median(lambda: ours(workload), REPEATS)
    assert all(np.array_equal(a, b) for a, b in zip(keep_ours, keep_loop))
    print(f"\nCAST 2:4 {name}: vectorized {t_ours:.3f} s, loop {t_loop:.3f} s, ratio {t_loop / t_ours:.1f}x")
