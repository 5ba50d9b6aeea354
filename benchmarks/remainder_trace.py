"""Remainder traces of the sound path enclosure at depth (benchmarks/RESULTS-remainder-trace.md, FINDINGS F22).

For the default model and for members of :mod:`verification.models.model_family` (width 64, 4 heads, depth from
``--depths``; each trained one epoch by :func:`verification.models.model_family.train_member` and cached in
``--cache``), optionally the deep model (``--deep WEIGHTS``): a layerwise magnitude 0.5 mask on every block Linear and
``patch_embed.proj``, calibration image ``--sample`` of the default audit set, point ``theta = 1``; per layer
of ``--layers`` the stage trace of :func:`verification.bridge.remainder_trace.remainder_trace` and the sub-stages of
block ``--breakdown`` (:func:`~verification.bridge.remainder_trace.block_breakdown`).

    python benchmarks/remainder_trace.py --cache /tmp/family --depths 6 8 12 > trace.md
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pruning.magnitude import magnitude  # noqa: E402
from verification.bridge.certify_folder import load_audit_sets  # noqa: E402
from verification.models.deep_model import build_deep_model  # noqa: E402
from verification.models.default_model import build_default_model  # noqa: E402
from verification.models.model_family import FamilyMember, cached_member  # noqa: E402
from verification.bridge.remainder_trace import (  # noqa: E402
    block_breakdown,
    breakdown_table,
    remainder_trace,
    trace_table,
)
from verification.bridge.vit_views import audit_copy, capture_layer  # noqa: E402


def report(title: str, model: torch.nn.Module, layers: list[str], images: torch.Tensor, sample: int,
           breakdown: int) -> None:
    model = audit_copy(model)
    mask = magnitude(model, 0.5, scope="layerwise")
    for name in layers:
        layer = capture_layer(model, name, mask.keep[name], images)
        start = time.perf_counter()
        trace = remainder_trace(model, layer, images, sample=sample)
        seconds = time.perf_counter() - start
        print(f"\n### {title}: `{name}` (sample {sample}, theta = 1; {seconds:.1f} s)\n")
        print("\n".join(trace_table(trace)))
        labels = [row.stage for row in trace]
        if f"blocks.{breakdown}" in labels[1:] and breakdown < len(model.blocks):
            carried_in = trace[labels.index(f"blocks.{breakdown}") - 1].carried
            print(f"\nblock {breakdown} from the inside (input remainder {carried_in:.3g}):\n")
            print("\n".join(breakdown_table(block_breakdown(model, layer, images, breakdown, sample=sample),
                                            carried_in)))
        sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache", type=Path, required=True,
                        help="folder of the trained family members (written if missing)")
    parser.add_argument("--depths", type=int, nargs="*", default=[6, 8, 12],
                        help="family depths, width 64 (default: %(default)s)")
    parser.add_argument("--deep", type=Path,
                        help="weights of the deep model (python -m verification.models.train_deep)")
    parser.add_argument("--layers", nargs="+", default=["patch_embed.proj", "blocks.0.attn.qkv"])
    parser.add_argument("--sample", type=int, default=0, help="calibration image (default: %(default)s)")
    parser.add_argument("--breakdown", type=int, default=3, help="block shown from the inside (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    images = load_audit_sets("default", 8, 0, 0).calibration[0].double()
    print("# Remainder traces of the sound path enclosure (verification/bridge/remainder_trace.py, FINDINGS F22)\n")
    print(f"Produced by `python benchmarks/remainder_trace.py {' '.join(argv if argv is not None else sys.argv[1:])}` "
          f"({args.threads} thread(s)).  Columns: verification/bridge/remainder_trace.py; `carried` and `fresh` are "
          "the engine's sound remainders, `composite` and `to logits` float64 first-order estimates (a diagnosis, "
          "never a bound); `x` = carried / carried of the stage before.")
    models = [("default model", build_default_model())] + [
        (f"{FamilyMember(64, d, 4).name} (one epoch)", cached_member(FamilyMember(64, d, 4), args.cache)[0])
        for d in args.depths]
    if args.deep is not None:
        models.append(("deep model", build_deep_model(args.deep)))
    for title, model in models:
        report(title, model, args.layers, images, args.sample, args.breakdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
