"""Per-layer table of the sound ``L_s`` on the masks of an ``mpcert demo`` folder
(benchmarks/RESULTS-sound-lipschitz.md).

For every prunable layer of the default model and each mask saved by ``mpcert demo`` (Hybrid Magnitude–SER,
CAST 2:4), on the demo's calibration images: the sound ``L_s`` of
:func:`verification.bridge.vit_interval.sound_path_bounds` (order 4, ``K = 8`` start, ``max_subintervals`` =
``--budget``), its ratio to the finite-difference estimate (distribution over samples), the violations of Lemma 5.1 with
the sound ``L_s`` and of the direct logit-change bound on a 33-point theta grid (must be 0), the wall time, the cost in
forward passes and the evaluations per sample.  Layers the enclosure cannot reach are listed with the reason's first
words.

    python benchmarks/sound_lipschitz_table.py --demo mpcert-report --calibration 64 > table.md
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

from certs.errors import CertificateInputError  # noqa: E402
from pruning.mask import Mask  # noqa: E402
from verification.bridge.certify import check_grid, estimate_lipschitz  # noqa: E402
from verification.bridge.certify_folder import load_audit_sets  # noqa: E402
from verification.bridge.demo import MASK_FOLDERS  # noqa: E402
from verification.models.default_model import build_default_model  # noqa: E402
from verification.bridge.vit_interval import resolve_device, sound_path_bounds  # noqa: E402
from verification.bridge.vit_views import audit_copy, capture_layer, path_logits  # noqa: E402

TOL = 1e-9


def _violations(z: np.ndarray, thetas: np.ndarray, lipschitz: np.ndarray, products: np.ndarray,
                change: np.ndarray) -> int:
    """Samples where ``||z(theta) - z(1)||_inf > (1 - theta) L_s ||R psi_1||_inf`` (Lemma 5.1 path bound) or
    ``> change`` (direct bound) at some grid point."""
    realised = np.abs(z - z[-1]).max(axis=2)
    lemma = realised > (1 - thetas)[:, None] * (lipschitz * products)[None, :] * (1 + TOL) + TOL
    direct = realised > change[None, :] * (1 + TOL) + TOL
    return int(np.count_nonzero((lemma | direct).any(axis=0)))


def layer_rows(model, mask: Mask, images: torch.Tensor, budget: int, device: str = "cpu", batch: int | None = None,
               layers: list[str] | None = None):
    """The table's lines, yielded as each layer finishes (a long run shows its progress)."""
    work = audit_copy(model)

    def forward():
        with torch.no_grad():
            return work(images)

    forward()
    start = time.perf_counter()
    for _ in range(5):
        forward()
    base = (time.perf_counter() - start) / 5
    yield from [f"forward pass over the {images.shape[0]} images (float64 audit copy): {base * 1e3:.1f} ms", "",
                "| layer | status | median | p90 | max | violations | time s | x forward | evals/sample | K |",
                "|---|---|---|---|---|---|---|---|---|---|"]
    estimate_grid, check = check_grid(16), np.linspace(0.0, 1.0, 33)
    for name, keep in mask.keep.items():
        if layers and name not in layers:
            continue
        layer = capture_layer(work, name, keep, images)
        estimate = estimate_lipschitz(path_logits(work, layer, images, estimate_grid), estimate_grid, layer.products)
        start = time.perf_counter()
        try:
            bounds = sound_path_bounds(work, layer, images, max_subintervals=budget, device=device, batch=batch)
            if resolve_device(device).type == "cuda":
                torch.cuda.synchronize()
        except CertificateInputError as exc:
            seconds = time.perf_counter() - start
            reason = str(exc).split(";")[-1].split("(")[0].strip().rstrip(")")
            yield (f"| {name} | not certified ({type(exc).__name__}: {reason}) | | | | | {seconds:.1f} | | | |")
            continue
        seconds = time.perf_counter() - start
        ratio = bounds.lipschitz.values / np.where(estimate > 0, estimate, np.nan)
        z = path_logits(work, layer, images, check)
        bad = _violations(z, check, bounds.lipschitz.values, layer.products, bounds.logit_change)
        p50, p90, top = np.nanpercentile(ratio, [50, 90, 100])
        yield (f"| {name} | sound | {p50:.3f} | {p90:.3f} | {top:.3f} | {bad} | {seconds:.1f} | {seconds / base:.0f} | "
                f"{bounds.segments.evaluations / images.shape[0]:.0f} | {bounds.segments.subintervals} |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--demo", required=True, help="an `mpcert demo` output folder (its masks are audited)")
    parser.add_argument("--calibration", type=int, default=64,
                        help="calibration images, as in the demo run (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the image choice, as in the demo run (default: %(default)s)")
    parser.add_argument("--budget", type=int, default=64, help="max sub-intervals per sample (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default: %(default)s)")
    parser.add_argument("--device", default="cpu",
                        help="where the sound bound runs: cpu, cuda, auto (default: %(default)s)")
    parser.add_argument("--batch", type=int,
                        help="pieces per evaluation (default: by model size, 16 / 2048 for the default "
                             "model on CPU / CUDA)")
    parser.add_argument("--data", default="default",
                        help="'default' or a sample file .npz/.pt, as `mpcert certify --data`")
    parser.add_argument("--masks", nargs="+", choices=list(MASK_FOLDERS), default=list(MASK_FOLDERS), metavar="MASK",
                        help=f"masks of the demo folder to audit (default: all of {list(MASK_FOLDERS)})")
    parser.add_argument("--layers", nargs="+", metavar="NAME",
                        help="audit only these layers (default: every masked layer)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if resolve_device(args.device).type == "cuda":  # the context and cuBLAS handle outside the first layer's time
        torch.ones(8, 8, dtype=torch.float64, device=args.device).matmul(
            torch.ones(8, 8, dtype=torch.float64, device=args.device))
    model = build_default_model()
    images = load_audit_sets(args.data, args.calibration, 0, args.seed).calibration[0].double()
    for title in args.masks:
        mask = Mask.load(Path(args.demo) / MASK_FOLDERS[title] / "mask.safetensors", model)
        print(f"\n## {title} ({args.calibration} calibration images, budget {args.budget}, {args.device})\n")
        for line in layer_rows(model, mask, images, args.budget, args.device, args.batch, args.layers):
            print(line, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
