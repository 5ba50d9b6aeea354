"""The sound engines side by side, in the same run (benchmarks/RESULTS-sound-lipschitz.md, issue 15): the box
rules (``plain``), the remainders consolidated at the MLP halves only (``mlp``) and at every residual half
(``consolidated``, :mod:`certs.intervals.consolidation`), and ``default`` (:func:`default_engine` with its
escalation, what certify runs), with certify's settings (``K = 2`` start, budget 64
pieces per sample, CPU, one thread).

For each layer of ``--layers`` on ``--images`` calibration images of ``--model`` and a mask (``cast-2:4`` calibrated on
the same images, or global magnitude 0.5 for the layers CAST leaves dense, e.g. ``patch_embed.proj``): whether
the engine reaches the layer (else the reason's first words), the evaluations per sample, the median / p90 of sound
``L_s`` ÷ the 33-point finite-difference estimate, and the CPU seconds per sample.  A Markdown table on stdout:

    OMP_NUM_THREADS=1 python benchmarks/engine_comparison.py --model deep --images 2 \\
        --layers patch_embed.proj blocks.0.attn.qkv blocks.6.mlp.fc1

``--model`` takes any source of ``mpcert certify``; a timm name of another resolution (``vit_tiny_patch16_224``,
random weights) gets the images up-sampled to its input (:func:`model_input`).
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from certs.intervals.interval import IntervalDomainError  # noqa: E402
from pruning.registry import build_mask  # noqa: E402
from verification.bridge.certify import SOUND_BUDGET, SOUND_START, estimate_lipschitz  # noqa: E402
from verification.bridge.certify_folder import load_audit_sets  # noqa: E402
from verification.bridge.vit_interval import CENTRES, MLP_ONLY, sound_path_bounds  # noqa: E402
from verification.bridge.vit_views import audit_copy, capture_layer, path_logits  # noqa: E402
from verification.models.model_source import load_model  # noqa: E402

ENGINES = {"plain": False, "mlp": MLP_ONLY, "consolidated": True, "default": None}


def model_input(model: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
    """The Fashion-MNIST ``images`` at the input of a timm ViT of another resolution (e.g.
    ``vit_tiny_patch16_224``: bilinear up-sampling to its ``img_size``, the grey channel repeated for each input
    channel); unchanged for the embedded models."""
    embed = model.patch_embed
    size, channels = tuple(embed.img_size), embed.proj.in_channels
    if tuple(images.shape[-2:]) != size:
        images = torch.nn.functional.interpolate(images, size=size, mode="bilinear", align_corners=False)
    return images.expand(-1, channels, -1, -1).contiguous() if images.shape[1] != channels else images


def engine_of(method: str) -> str:
    """The engine name of a sound ``L_s`` method string (:class:`SoundPathBounds`)."""
    return "mlp" if method.endswith("-consolidated-mlp") else "consolidated" if method.endswith("-consolidated") \
        else "plain"


class CellLimit(Exception):
    """A cell ran past its CPU-time limit (:func:`engine_cells`)."""


def _over_limit(signum, frame):
    raise CellLimit


def engine_cells(model: torch.nn.Module, layer: str, keep: torch.Tensor, data: torch.Tensor, engines: list[str],
                 centres: int | None = CENTRES, limit: float | None = None) -> list[tuple[str, str, float]]:
    """For each engine: ``(engine, cells, CPU s per sample)`` of the sound ``L_s`` of ``layer`` under the mask
    ``keep`` on ``data`` (``cells``: reached, evaluations per sample, median / p90 of sound ÷ the 33-point estimate;
    else the reason's first words).  ``limit``: CPU seconds per engine (``ITIMER_PROF``); past it the cell says
    "not finished"."""
    images = data.shape[0]
    thetas = np.linspace(0.0, 1.0, 33)
    captured = capture_layer(model, layer, keep, data)
    estimate = estimate_lipschitz(path_logits(model, captured, data, thetas), thetas, captured.products)
    results = []
    for engine in engines:
        start = time.process_time()
        previous = signal.signal(signal.SIGPROF, _over_limit) if limit else None
        try:
            if limit:
                signal.setitimer(signal.ITIMER_PROF, limit)
            bounds = sound_path_bounds(model, captured, data, subintervals=SOUND_START,
                                       max_subintervals=SOUND_BUDGET, device="cpu",
                                       consolidated=ENGINES[engine], centres=centres)
            ratio = np.asarray(bounds.lipschitz.values) / np.maximum(estimate, np.finfo(float).tiny)
            used = "" if engine != "default" else f" ({engine_of(bounds.lipschitz.method)})"
            cells = (f"yes{used} | {bounds.segments.evaluations / images:.1f} | "
                     f"{np.median(ratio):.2f} / {np.percentile(ratio, 90):.2f}")
        except IntervalDomainError as exc:
            cells = f"no: {str(exc)[:60]} | | "
        except CellLimit:
            cells = f"not finished in {limit:.0f} CPU s ({images} images) | | "
        finally:
            if limit:
                signal.setitimer(signal.ITIMER_PROF, 0)
                signal.signal(signal.SIGPROF, previous)
        results.append((engine, cells, (time.process_time() - start) / images))
    return results


def compare(model_name: str, layers: list[str], images: int, engines: list[str],
            centres: int | None = CENTRES) -> list[str]:
    """The table rows (module docstring)."""
    torch.set_num_threads(1)
    model = audit_copy(load_model(model_name, runnable=True, argument="--model").model)
    data = model_input(model, load_audit_sets("default", images, 0, 0).calibration[0].double())
    masks = {"cast-2:4": build_mask("cast-2:4", model, calibration_images=data.float()),
             "magnitude": build_mask("magnitude", model, sparsity=0.5)}
    rows = []
    for layer in layers:
        mask = "cast-2:4" if layer in masks["cast-2:4"].keep else "magnitude"
        for engine, cells, seconds in engine_cells(model, layer, masks[mask].keep[layer], data, engines, centres):
            rows.append(f"| {layer} | {mask} | {engine} | {cells} | {seconds:.1f} |")
            print(rows[-1], file=sys.stderr, flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="deep")
    parser.add_argument("--images", type=int, default=2)
    parser.add_argument("--layers", nargs="+", required=True)
    parser.add_argument("--engines", nargs="+", default=["plain", "mlp", "consolidated"], choices=list(ENGINES))
    parser.add_argument("--centres", type=int, default=CENTRES,
                        help="consolidated engine: pieces of a sample in the same 1/CENTRES of [0, 1] share a centre "
                             "(0: one centre per piece)")
    args = parser.parse_args()
    centres = args.centres or None
    rows = compare(args.model, args.layers, args.images, args.engines, centres)
    shared = f", centres {centres}"
    print(f"{args.model}, {args.images} calibration images, K = 2 start, budget 64, CPU, 1 thread{shared}\n")
    print("| layer | mask | engine | reached | evaluations / sample | sound ÷ estimate median / p90 | CPU s / sample |")
    print("|---|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
