"""Cost of the sound ``L_s`` (verification.vit_interval.sound_path_bounds) against one forward pass.

Setting: the shipped default ViT, magnitude mask at sparsity 0.5, ``|T| = 16`` class-balanced training
images, one layer per depth that the Taylor forms certify without overflow (``blocks.3.mlp.fc1``,
``blocks.3.attn.qkv``, ``blocks.2.mlp.fc2``), ``K = 8`` sub-intervals, order-2 Taylor forms,
with refinement off (``refine=0``) and on (``refine=4``, ``rtol=0.25``).  The baseline is one forward
pass of the float64 audit copy over the same ``T``; the estimate-based ``L_s`` of ``certify`` (the
17-point finite-difference grid) is timed alongside for reference.

``test_multiple_of_forward_pass`` prints each cost as a multiple of the baseline and per sample.
Run with ``bash scripts/bench.sh benchmarks/bench_sound_lipschitz.py -s``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from timing import median_time
from pruning.magnitude import magnitude
from verification.certify import check_grid
from verification.datasets import calibration_subset, load_default_dataset
from verification.default_model import build_default_model
from verification.vit_interval import sound_path_bounds
from verification.vit_views import audit_copy, capture_layer, path_logits

N_SAMPLES, SPARSITY, K = 16, 0.5, 8
LAYERS = ("blocks.3.mlp.fc1", "blocks.3.attn.qkv", "blocks.2.mlp.fc2")
REFINE = {"no-refine": 0, "adaptive": 4}


@pytest.fixture(scope="module")
def setting():
    model = build_default_model()
    cal = calibration_subset(load_default_dataset(), N_SAMPLES, 0)
    mask = magnitude(model, SPARSITY)
    work = audit_copy(model)
    images = cal.images.double()
    layers = {name: capture_layer(work, name, mask.keep[name], images) for name in LAYERS}
    return work, images, layers


@pytest.mark.parametrize("refine", list(REFINE))
@pytest.mark.parametrize("layer", LAYERS)
@pytest.mark.benchmark(group="sound-lipschitz")
def test_sound_lipschitz(benchmark, setting, layer, refine):
    work, images, layers = setting
    benchmark.pedantic(lambda: sound_path_bounds(work, layers[layer], images, subintervals=K, refine=REFINE[refine]),
                       rounds=3, iterations=1, warmup_rounds=0)


def test_multiple_of_forward_pass(setting, record_property):
    work, images, layers = setting

    def forward():
        with torch.no_grad():
            return work(images)

    forward()
    base = median_time(forward, 20)
    lines = [f"forward pass over T ({N_SAMPLES} images, float64 audit copy): {base * 1e3:.2f} ms",
             f"{'layer':20s} {'estimate':>10s} " + " ".join(f"{r:>10s}" for r in REFINE) + "   (multiples of one forward pass over T)"]
    for name, layer in layers.items():
        estimate = median_time(lambda: path_logits(work, layer, images, check_grid(16)[::2]), 3)
        costs = {r: median_time(lambda: sound_path_bounds(work, layer, images, subintervals=K, refine=v), 3) for r, v in REFINE.items()}
        for r, c in costs.items():
            record_property(f"{name} {r} / forward", c / base)
        lines.append(f"{name:20s} {estimate / base:10.1f} " + " ".join(f"{c / base:10.1f}" for c in costs.values()))
    print("\n" + "\n".join(lines))
    assert np.isfinite(base) and base > 0
