"""Cost of ``certify(model, mask, data)`` by phase, as a multiple of one forward pass of the model over ``T``.

Setting: the shipped default ViT (Fashion-MNIST, 18 prunable layers), a global magnitude mask at
sparsity 0.5, ``|T| = 32`` class-balanced training images, ``grid = 16`` (33 theta values per layer
on the check grid), no held-out set, torch with one thread (the audit's ops are small; on a shared
2-core machine more threads only oversubscribe).  Two variants of the theta-path re-runs, in the
same run:

* ``restart`` (default): the re-run starts at the target's block / MLP branch / head from the state
  cached during the capture (:func:`verification.bridge.vit_views.restart_point`);
* ``full``: the generic fallback, the whole model re-run (``path_logits(..., restart=False)``);
* ``hook`` (the implementation before restart points, kept here as the baseline): the whole model
  re-run with a forward hook that lets the target compute its dense output and then replaces it by
  ``op(x, S) + theta op(x, R) + bias`` computed on every row of the chunk.

Phases (``certify``'s ``timings``, summed over all single-layer and multi-layer audits): ``capture``
(``psi_1`` and ``||R psi_1(s)||_inf``), ``lipschitz`` (estimation-grid re-runs + finite differences),
``realized`` (check-grid midpoint re-runs + the theta = 0 execution), ``budgets`` (budgets, Lemma
5.1 / Cor 5.2 / Thm 5.4 bounds), ``mp_fit`` (fits of the dense weights); ``total`` is the wall time
of the call.  Medians of ``REPEATS`` runs.  Run with
``bash scripts/bench.sh benchmarks/bench_certify.py -s``.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch
from timing import median_time, timed_median

from pruning.magnitude import magnitude
from verification.bridge import certify as certify_module
from verification.bridge.certify import certify
from verification.models.datasets import calibration_subset, load_default_dataset
from verification.models.default_model import build_default_model
from verification.bridge.vit_views import MAX_BATCH, _add_bias, _layer_op, _module, path_logits

REPEATS = 3
N_SAMPLES, GRID, SPARSITY = 32, 16, 0.5
PHASES = ("capture", "lipschitz", "realized", "budgets")


@pytest.fixture(scope="module")
def setting():
    torch.set_num_threads(1)
    model = build_default_model()
    cal = calibration_subset(load_default_dataset(), N_SAMPLES, 0)
    return model, cal, magnitude(model, SPARSITY)


def hook_path_logits(model, layer, images, thetas):
    """The baseline re-run (module docstring, ``hook``): full model, forward hook on the target."""
    module = _module(model, layer.name)
    s_t, r_t = torch.from_numpy(layer.structured), torch.from_numpy(layer.removed)
    n = images.shape[0]
    per_chunk = max(1, MAX_BATCH // n)
    chunk = []

    def replace_output(_module, inputs, _output):
        base, step = _layer_op(module, inputs[0], s_t), _layer_op(module, inputs[0], r_t)
        theta = chunk[0].repeat_interleave(n).reshape(-1, *([1] * (base.ndim - 1)))
        return _add_bias(module, base + theta * step)

    out = []
    handle = module.register_forward_hook(replace_output)
    try:
        with torch.no_grad():
            for start in range(0, len(thetas), per_chunk):
                part = torch.as_tensor(np.asarray(thetas[start:start + per_chunk]), dtype=torch.float64)
                chunk[:] = [part]
                out.append(model(images.repeat(part.numel(), 1, 1, 1)).reshape(part.numel(), n, -1).numpy())
    finally:
        handle.remove()
    return np.concatenate(out, axis=0)


VARIANTS = {"restart": path_logits, "full": functools.partial(path_logits, restart=False), "hook": hook_path_logits}


def _certify(setting, variant: str):
    model, cal, mask = setting
    original = certify_module.path_logits
    certify_module.path_logits = VARIANTS[variant]
    try:
        return certify(model, mask, cal, grid=GRID)
    finally:
        certify_module.path_logits = original


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.benchmark(group="certify")
def test_certify_end_to_end(benchmark, setting, variant):
    benchmark.pedantic(lambda: _certify(setting, variant), rounds=REPEATS, iterations=1, warmup_rounds=0)


def test_multiple_of_forward_pass(setting, record_property):
    model, cal, _ = setting

    def forward():
        with torch.no_grad():
            return model(cal.images)

    forward()
    base = median_time(forward, 20)
    lines = [f"forward pass over T ({N_SAMPLES} images, float32, 1 thread): {base * 1e3:.2f} ms",
             f"{'phase':12s} " + " ".join(f"{v:>10s}" for v in VARIANTS) + "   (multiples of one forward pass)"]
    results = {}
    for variant in VARIANTS:
        runs = []
        for _ in range(REPEATS):
            total, report = timed_median(lambda: _certify(setting, variant), 1)
            runs.append({**{p: report.timings[f"phase_{p}_s"] for p in PHASES}, "mp_fit": report.timings["mp_fit_s"],
                         "total": total})
        results[variant] = {k: float(np.median([r[k] for r in runs])) for k in runs[0]}
    for key in (*PHASES, "mp_fit", "total"):
        ratios = {v: results[v][key] / base for v in VARIANTS}
        for v, ratio in ratios.items():
            record_property(f"{key} {v} / forward", ratio)
        lines.append(f"{key:12s} " + " ".join(f"{ratios[v]:10.1f}" for v in VARIANTS))
    rerun = {v: results[v]["lipschitz"] + results[v]["realized"] for v in VARIANTS}
    for v in ("full", "hook"):
        lines.append(f"speed-up of restart over {v}: re-run phases (lipschitz + realized) "
                     f"{rerun[v] / rerun['restart']:.2f}x, end to end "
                     f"{results[v]['total'] / results['restart']['total']:.2f}x")
    print("\n" + "\n".join(lines))
    assert all(np.isfinite(v) for r in results.values() for v in r.values())
