"""The engine-escalation probe of ``sound_path_bounds`` on the main job's layers (benchmarks/RESULTS-sound-lipschitz.md,
"The deep model's blocks.8.*"): for both demo masks and every target on the box rules with blocks after it, the median
and largest sound ``sup ||z'||`` ÷ its rigorous lower bound of the first 4 calibration images (the probe), and whether
it exceeds :data:`verification.bridge.vit_interval.ESCALATE_RATIO`:

    OMP_NUM_THREADS=1 python benchmarks/escalation_probe.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from sound_speed import build_masks  # noqa: E402
from pruning.mask import Mask  # noqa: E402
from verification.bridge import vit_interval  # noqa: E402
from verification.bridge.certify import SOUND_BUDGET, SOUND_START  # noqa: E402
from verification.bridge.vit_views import audit_copy, capture_layer  # noqa: E402
from verification.models.datasets import calibration_subset, load_default_dataset  # noqa: E402
from verification.models.default_model import build_default_model  # noqa: E402

PROBE = 4


def main() -> None:
    torch.set_num_threads(1)
    masks = build_masks(Path("/tmp/mpcert-demo-masks"))
    model = audit_copy(build_default_model())
    images = calibration_subset(load_default_dataset(), 256, 0).images.double()[:PROBE]
    print("| mask | layer | median sound ÷ lower bound | max | escalates | CPU s |")
    print("|---|---|---|---|---|---|")
    for mask_name in ("hybrid", "cast-2:4"):
        mask = Mask.load(masks[mask_name])
        for layer in mask.keep:
            if vit_interval.default_engine(model, layer) is not False or vit_interval.blocks_after(model, layer) == 0:
                continue
            captured = capture_layer(model, layer, mask.keep[layer], images)
            start = time.process_time()
            segments = vit_interval.sound_path_bounds(  # the box rules, explicitly: the probe itself
                model, captured, images, subintervals=SOUND_START, max_subintervals=SOUND_BUDGET, device="cpu",
                consolidated=False).segments
            ratio = segments.derivative / np.maximum(segments.derivative_lower, np.finfo(float).tiny)
            median = float(np.median(ratio))
            print(f"| {mask_name} | {layer} | {median:.3f} | {ratio.max():.3f} | "
                  f"{'yes' if median > vit_interval.ESCALATE_RATIO else 'no'} | {time.process_time() - start:.1f} |",
                  flush=True)


if __name__ == "__main__":
    main()
