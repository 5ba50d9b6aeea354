"""Cost of ``certify(model, mask, data)`` by phase, against one forward pass of the model over ``T``.

Setting: the shipped default ViT (Fashion-MNIST, 18 prunable layers), a global magnitude mask at
sparsity 0.5, ``|T| = 32`` class-balanced training images, ``grid = 16`` (33 theta values per layer
on the check grid), one thread per torch op as torch chooses.  Phases:

* forward pass over ``T`` (float32 user model) — the baseline;
* forward pass over ``T`` (float64 audit copy, unfused attention);
* capture ``psi_1`` and ``||R psi_1(s)||_inf`` for all layers;
* re-run the post-layer map along the theta path for all layers;
* single-layer audit of all layers (capture + path + bounds);
* multi-layer audit (Theorem 5.8 on the intermediate networks);
* ``certify`` end to end (calibration + multi-layer, no held-out set);
* serialisation of ``report.json`` + ``report.md``.

``test_phase`` times each with pytest-benchmark; ``test_multiple_of_forward_pass`` times all of them
interleaved with the baseline (medians of ``REPEATS`` runs) and prints each as a multiple of it.
Run with ``bash scripts/bench.sh benchmarks/bench_certify.py -s``.
"""

from __future__ import annotations

import json
import statistics
import time

import numpy as np
import pytest
import torch

from pruning.magnitude import magnitude
from verification.certify import AuditData, audit_layer, certify, check_grid, multilayer_audit
from verification.datasets import calibration_subset, load_default_dataset
from verification.default_model import build_default_model
from verification.vit_views import audit_copy, capture_layer, path_logits

REPEATS = 3
N_SAMPLES, GRID, SPARSITY = 32, 16, 0.5


@pytest.fixture(scope="module")
def phases():
    model = build_default_model()
    cal = calibration_subset(load_default_dataset(), N_SAMPLES, 0)
    mask = magnitude(model, SPARSITY)
    work = audit_copy(model)
    x32, x64 = cal.images, cal.images.double()
    data = AuditData(x64, cal.labels, "calibration")
    names = list(mask.layer_names)
    thetas = check_grid(GRID)
    captured = [capture_layer(work, n, mask.keep[n], x64) for n in names]
    report = certify(model, mask, cal, grid=GRID)

    def no_grad(fn):
        def run():
            with torch.no_grad():
                return fn()
        return run

    return {
        "forward pass over T (float32)": no_grad(lambda: model(x32)),
        "forward pass over T (float64 copy)": no_grad(lambda: work(x64)),
        "capture psi_1, all layers": lambda: [capture_layer(work, n, mask.keep[n], x64) for n in names],
        "theta path re-runs, all layers": lambda: [path_logits(work, c, x64, thetas) for c in captured],
        "single-layer audit, all layers": lambda: [audit_layer(work, n, mask.keep[n], data, grid=GRID) for n in names],
        "multi-layer audit (Thm 5.8)": lambda: multilayer_audit(audit_copy(model), mask.keep, data, tuple(names),
                                                                grid=GRID, lambda1=0.0, lambda2=0.0),
        "certify end to end": lambda: certify(model, mask, cal, grid=GRID),
        "report.json + report.md": lambda: (json.dumps(report.to_json()), report.to_markdown()),
    }


NAMES = ("forward pass over T (float32)", "forward pass over T (float64 copy)", "capture psi_1, all layers",
         "theta path re-runs, all layers", "single-layer audit, all layers", "multi-layer audit (Thm 5.8)",
         "certify end to end", "report.json + report.md")


def median_time(fn, repeats=REPEATS):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.benchmark(group="certify")
def test_phase(benchmark, phases, name):
    benchmark.pedantic(phases[name], rounds=REPEATS, iterations=1, warmup_rounds=1)


def test_multiple_of_forward_pass(phases, record_property):
    times = {name: median_time(phases[name]) for name in NAMES}
    base = times[NAMES[0]]
    lines = [f"forward pass over T ({N_SAMPLES} images, float32): {base * 1e3:.2f} ms"]
    for name in NAMES[1:]:
        record_property(f"{name} / forward", times[name] / base)
        lines.append(f"  {name:36s} {times[name] * 1e3:9.1f} ms = {times[name] / base:8.1f} x forward")
    print("\n" + "\n".join(lines))
    assert all(np.isfinite(t) for t in times.values())
