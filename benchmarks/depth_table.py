"""Reach of the sound ``L_s`` at depth, the box rules against the default engine in the same run (issue 15,
benchmarks/RESULTS-sound-lipschitz.md).

Models: the width-64 members of :mod:`verification.models.model_family` with ``--depths`` blocks (4 heads, one
epoch of the default recipe on one thread, cached in ``--cache``: the members of the issue's table) and, with
``--deep``, the embedded deep model (12 blocks of width 192).  Mask: layerwise magnitude 0.5 on every prunable
layer (the issue's table).  For each layer (``patch_embed.proj`` and the ``--kinds`` of every block), on
``--images`` calibration images, certify's settings (``K = 2`` start, budget 64, CPU, one thread): the box rules
(``plain``, the engine before issue 15) and ``default`` (``sound_path_bounds(consolidated=None)``: the engine
certify runs, chosen by the number of blocks after the target, with the escalation probe), each limited to
``--limit`` CPU seconds per sample (default 60, the issue's threshold for a finding): reached (else why, or "not
finished"), evaluations per sample, median / p90 of sound ÷ the 33-point estimate, CPU seconds per sample.  One
command writes the whole table:

    OMP_NUM_THREADS=1 python benchmarks/depth_table.py --cache /tmp/family --depths 4 6 8 12 --deep > depth.md
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from engine_comparison import engine_cells  # noqa: E402
from pruning.magnitude import magnitude  # noqa: E402
from verification.bridge.certify_folder import load_audit_sets  # noqa: E402
from verification.bridge.vit_interval import blocks_after  # noqa: E402
from verification.bridge.vit_views import audit_copy  # noqa: E402
from verification.models.model_family import FamilyMember, cached_member  # noqa: E402
from verification.models.model_source import load_model  # noqa: E402

KINDS = ("attn.qkv", "attn.proj", "mlp.fc1", "mlp.fc2")


def table_layers(depth: int, kinds: list[str]) -> list[str]:
    """``patch_embed.proj``, then the ``kinds`` of each block from the first (the hardest) to the last."""
    return ["patch_embed.proj"] + [f"blocks.{b}.{kind}" for b in range(depth) for kind in kinds]


def model_rows(model: torch.nn.Module, kinds: list[str], images: int, limit: float) -> list[str]:
    """The table rows of one model (module docstring)."""
    model = audit_copy(model)
    data = load_audit_sets("default", images, 0, 0).calibration[0].double()
    mask = magnitude(model, 0.5, scope="layerwise")
    rows = []
    for layer in table_layers(len(model.blocks), kinds):
        cells = engine_cells(model, layer, mask.keep[layer], data, ["plain", "default"], limit=limit * images)
        row = " | ".join(f"{text} | {seconds:.1f}" for _, text, seconds in cells)
        rows.append(f"| {layer} | {blocks_after(model, layer)} | {row} |")
        print(rows[-1], file=sys.stderr, flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache", type=Path, required=True,
                        help="folder of the trained family members (written if missing)")
    parser.add_argument("--depths", type=int, nargs="*", default=[4, 6, 8, 12],
                        help="family depths, width 64 (default: %(default)s)")
    parser.add_argument("--deep", action="store_true", help="also the embedded deep model")
    parser.add_argument("--kinds", nargs="+", default=list(KINDS), choices=KINDS,
                        help="block layers in the table (default: all four)")
    parser.add_argument("--images", type=int, default=2, help="calibration images (default: %(default)s)")
    parser.add_argument("--limit", type=float, default=60.0,
                        help="CPU seconds per sample, layer and engine (default: %(default)s)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    started = time.perf_counter()
    print(f"Produced by `python benchmarks/depth_table.py {' '.join(argv if argv is not None else sys.argv[1:])}` "
          f"(one thread; {args.images} calibration images; layerwise magnitude 0.5; limit {args.limit:.0f} CPU s "
          "per sample, layer and engine).  old = the box rules, new = certify's default engine (in brackets: the one "
          "it chose).\n")
    header = ("| layer | blocks after | old: reached | evals / sample | sound ÷ estimate median / p90 | CPU s / sample "
              "| new: reached | evals / sample | sound ÷ estimate median / p90 | CPU s / sample |")
    models = []
    for depth in args.depths:
        member = FamilyMember(64, depth, 4)
        model, card = cached_member(member, args.cache)
        models.append((f"{member.name}, one epoch, test accuracy {card['test_accuracy']:.4f}", model))
    if args.deep:
        models.append(("deep model", load_model("deep", runnable=True).model))
    for title, model in models:
        print(f"### {title}\n\n{header}\n|{'---|' * 10}")
        print("\n".join(model_rows(model, args.kinds, args.images, args.limit)) + "\n", flush=True)
    print(f"Whole run: {time.perf_counter() - started:.0f} s wall.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
