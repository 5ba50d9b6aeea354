"""Remainders of one point (or piece) enclosure after each stage of the walk, plain box rules vs the consolidated
engine (:mod:`certs.intervals.consolidation`, issue 15): layerwise magnitude 0.5 mask of ``LAYER``, calibration image 0,
one thread.  Prints ``stage:value remainder/tangent remainder`` for both engines and their CPU seconds.

    OMP_NUM_THREADS=1 python benchmarks/consolidated_trace.py deep patch_embed.proj 1 1 1

(arguments: model, layer, theta_lo, theta_hi, Taylor degree).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from pruning.registry import build_mask
from verification.bridge.certify_folder import load_audit_sets
from verification.bridge.vit_interval import path_walk
from verification.bridge.vit_views import audit_copy, capture_layer
from verification.models.model_source import load_model


def main() -> None:
    torch.set_num_threads(1)
    name, layer = sys.argv[1], sys.argv[2]
    lo_t, hi_t, degree = float(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
    model = load_model(name, runnable=True, argument="--model").model
    sets = load_audit_sets("default", 1, 0, 0)
    data = sets.calibration[0].double()
    mask = build_mask("magnitude", model, sparsity=0.5)
    work = audit_copy(model)
    captured = capture_layer(work, layer, mask.keep[layer], data)
    for consolidated in (False, True):
        walk = path_walk(work, captured, data, torch.device("cpu"), consolidated)
        owner = torch.zeros(1, dtype=torch.long)
        with torch.inference_mode():
            lo, hi = (torch.tensor([v], dtype=torch.float64) for v in (lo_t, hi_t))
            x, rows = walk.start(owner, lo, hi, degree)
            out = []
            t = time.process_time()
            for label, stage in walk.stages:
                x = stage(x, rows)
                out.append(f"{label}:{float(x.value.r.max()):.1e}/{float(x.tangent.r.max()):.1e}")
        print("consolidated" if consolidated else "plain", f"{time.process_time() - t:.1f}s", " ".join(out), flush=True)


if __name__ == "__main__":
    main()
