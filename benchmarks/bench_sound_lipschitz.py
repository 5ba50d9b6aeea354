"""Cost of the sound ``L_s`` (verification.bridge.vit_interval.sound_path_bounds) against one forward pass.

Setting: the shipped default ViT, magnitude mask at sparsity 0.5, ``|T| = 16`` class-balanced training
images, one layer per depth (``blocks.3.mlp.fc1``, ``blocks.3.attn.qkv``, ``blocks.2.mlp.fc2``,
``blocks.1.mlp.fc1``), ``K = 8`` starting sub-intervals (loose pieces split 4x, ``max_subintervals = 64``),
Taylor forms of order 2 and 4 (the default), with refinement off (``refine=0``) and on (``refine=4``,
``rtol=0.25``).  The baseline is one forward pass of the float64 audit copy over the same ``T``; the
estimate-based ``L_s`` of ``certify`` (the 17-point finite-difference grid) is timed alongside for reference.

``test_multiple_of_forward_pass`` prints each cost as a multiple of the baseline, the evaluations per
sample and the median sound / estimate ratio (``-`` where the enclosure is out of reach for that setting).
Run with ``bash scripts/bench.sh benchmarks/bench_sound_lipschitz.py -s``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from timing import median_time, timed_median
from certs.intervals.interval import IntervalDomainError
from pruning.magnitude import magnitude
from verification.bridge.certify import check_grid, estimate_lipschitz
from verification.models.datasets import calibration_subset, load_default_dataset
from verification.models.default_model import build_default_model
from verification.bridge.vit_interval import sound_path_bounds
from verification.bridge.vit_views import audit_copy, capture_layer, path_logits

N_SAMPLES, SPARSITY, K = 16, 0.5, 8
LAYERS = ("blocks.3.mlp.fc1", "blocks.3.attn.qkv", "blocks.2.mlp.fc2", "blocks.1.mlp.fc1")
SETTINGS = {"order2": dict(order=2, refine=0), "order2-adaptive": dict(order=2, refine=4),
            "order4": dict(order=4, refine=0), "order4-adaptive": dict(order=4, refine=4)}


@pytest.fixture(scope="module")
def setting():
    model = build_default_model()
    cal = calibration_subset(load_default_dataset(), N_SAMPLES, 0)
    mask = magnitude(model, SPARSITY)
    work = audit_copy(model)
    images = cal.images.double()
    layers = {name: capture_layer(work, name, mask.keep[name], images) for name in LAYERS}
    return work, images, layers


@pytest.mark.parametrize("config", ["order4", "order4-adaptive"])
@pytest.mark.parametrize("layer", LAYERS)
@pytest.mark.benchmark(group="sound-lipschitz")
def test_sound_lipschitz(benchmark, setting, layer, config):
    work, images, layers = setting
    benchmark.pedantic(lambda: sound_path_bounds(work, layers[layer], images, subintervals=K, **SETTINGS[config]),
                       rounds=3, iterations=1, warmup_rounds=0)


def test_multiple_of_forward_pass(setting, record_property):
    work, images, layers = setting

    def forward():
        with torch.no_grad():
            return work(images)

    forward()
    base = median_time(forward, 20)
    lines = [f"forward pass over T ({N_SAMPLES} images, float64 audit copy): {base * 1e3:.2f} ms",
             "cost as multiples of one forward pass over T / evaluations per sample / median sound / estimate L_s",
             f"{'layer':20s} {'estimate':>9s} " + " ".join(f"{c:>24s}" for c in SETTINGS)]
    thetas = check_grid(16)[::2]
    for name, layer in layers.items():
        seconds, z = timed_median(lambda: path_logits(work, layer, images, thetas), 3)
        estimate = estimate_lipschitz(z, thetas, layer.products)
        cells = []
        for config, options in SETTINGS.items():
            try:
                cost, bounds = timed_median(
                    lambda: sound_path_bounds(work, layer, images, subintervals=K, **options), 3)
            except IntervalDomainError:
                cells.append(f"{'- (out of reach)':>24s}")
                continue
            ratio = float(np.median(bounds.lipschitz.values / estimate))
            evaluations = bounds.segments.evaluations / N_SAMPLES
            record_property(f"{name} {config} / forward", cost / base)
            cells.append(f"{cost / base:9.0f}x {evaluations:6.0f} {ratio:6.3f}")
        lines.append(f"{name:20s} {seconds / base:8.1f}x " + " ".join(cells))
    print("\n" + "\n".join(lines))
    assert np.isfinite(base) and base > 0
