"""Start cover of the sound ``L_s``: time, evaluations per sample and sound / estimate ratio for several ``(K, rtol)``.

For each layer of the default model (global magnitude mask), each ``K:rtol`` pair runs
:func:`verification.bridge.vit_interval.sound_path_bounds` with ``subintervals=K, rtol=rtol`` (budget 64, CPU)
back to back in one process, beside the finite-difference estimate of a 9-point grid (the table
"Start cover" of benchmarks/RESULTS-sound-lipschitz.md; ``verification.bridge.certify.SOUND_START``).

    OMP_NUM_THREADS=1 python benchmarks/sound_start_cover.py --layers blocks.2.mlp.fc1 patch_embed.proj \\
        --pairs 8:0.25 2:0.25
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from certs.intervals.interval import IntervalDomainError  # noqa: E402
from pruning.magnitude import magnitude  # noqa: E402
from verification.bridge.certify import check_grid, estimate_lipschitz  # noqa: E402
from verification.bridge.vit_interval import sound_path_bounds  # noqa: E402
from verification.bridge.vit_views import audit_copy, capture_layer, path_logits  # noqa: E402
from verification.models.datasets import calibration_subset, load_default_dataset  # noqa: E402
from verification.models.default_model import build_default_model  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--layers", nargs="+", required=True)
    parser.add_argument("--pairs", nargs="+", default=["8:0.25", "2:0.25"], metavar="K:RTOL")
    parser.add_argument("--images", type=int, default=12)
    parser.add_argument("--sparsity", type=float, default=0.5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    model = build_default_model()
    images = calibration_subset(load_default_dataset(), args.images, 0).images.double()
    mask = magnitude(model, args.sparsity)
    work = audit_copy(model)
    grid = check_grid(8)[::2]
    print("| layer | start K, rtol | time s | evals/sample | median ratio | max ratio | method |\n"
          "|---|---|---|---|---|---|---|")
    for name in args.layers:
        layer = capture_layer(work, name, mask.keep[name], images)
        estimate = estimate_lipschitz(path_logits(work, layer, images, grid), grid, layer.products)
        for pair in args.pairs:
            k, rtol = pair.split(":")
            start = time.perf_counter()
            try:
                bounds = sound_path_bounds(work, layer, images, subintervals=int(k), rtol=float(rtol), device="cpu")
            except IntervalDomainError as exc:
                print(f"| {name} | {k}, {rtol} | {time.perf_counter() - start:.2f} | "
                      f"not reached: {str(exc)[:60]} | | | |")
                continue
            ratio = bounds.lipschitz.values / estimate
            print(f"| {name} | {k}, {rtol} | {time.perf_counter() - start:.2f} | "
                  f"{bounds.segments.evaluations / args.images:.1f} | {np.median(ratio):.4f} | {ratio.max():.4f} | "
                  f"{bounds.lipschitz.method} |", flush=True)


if __name__ == "__main__":
    main()
