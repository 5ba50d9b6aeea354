"""CPU seconds per sample of the sound enclosure (``sound_path_bounds``) on the demo's masks, before / after (issue 16).

The demo's two masks of the default model (Hybrid Magnitude–SER at sparsity 0.5 and CAST 2:4, built as
:func:`verification.bridge.demo.run_demo` builds them, cached in ``--masks``), ``--images`` calibration images
(seed 0), one thread, the options of ``certify`` (start ``SOUND_START``, budget ``SOUND_BUDGET``, CPU).  Each
repeat runs every (mask, layer) once in ``--baseline`` (a git revision exported to a temporary folder) and once in
the working tree, each side in a fresh subprocess, alternating, so both sides see the same load; the table gives
medians over the repeats of the process CPU seconds per sample, their ratio, the evaluations per sample and the
median sound L_s of each side and the largest ratio after / before over the samples (above 1: looser somewhere).

    OMP_NUM_THREADS=1 python benchmarks/sound_speed.py --baseline main --images 6 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ("patch_embed.proj", "blocks.0.attn.qkv", "blocks.2.mlp.fc1")
MASKS = ("hybrid", "cast-2:4")


def build_masks(folder: Path) -> dict[str, Path]:
    """The demo's two masks (default settings), written once to ``folder``."""
    paths = {name: folder / f"{name.replace(':', 'of')}.safetensors" for name in MASKS}
    if all(p.exists() for p in paths.values()):
        return paths
    sys.path.insert(0, str(ROOT))
    from pruning.registry import build_mask
    from pruning.sigma_cache import spectral_cache
    from verification.bridge.certify_folder import load_audit_sets
    from verification.bridge.demo import DEFAULT_SETTINGS, _hybrid_training_data
    from verification.models.model_source import load_model

    folder.mkdir(parents=True, exist_ok=True)
    model = load_model("default", runnable=True, argument="--model").model
    settings = DEFAULT_SETTINGS
    sets = load_audit_sets("default", settings.calibration, 0, settings.seed)
    cache = spectral_cache(model)
    build_mask("hybrid", model, sparsity=settings.sparsity, train_data=_hybrid_training_data(settings), cache=cache,
               steps=settings.steps, batch_size=64, seed=settings.seed).save(paths["hybrid"])
    build_mask("cast-2:4", model, calibration_images=sets.calibration[0],
               calibration_source=sets.source).save(paths["cast-2:4"])
    return paths


def measure(masks: dict[str, str], layers: list[str], images: int) -> dict[str, dict]:
    """Every (mask, layer) in this process (the tree on ``sys.path``): CPU seconds per sample and the bounds."""
    import time

    import numpy as np
    import torch

    from pruning.mask import Mask
    from verification.bridge.certify import SOUND_BUDGET, SOUND_START
    from verification.bridge.vit_interval import sound_path_bounds
    from verification.bridge.vit_views import audit_copy, capture_layer
    from verification.models.datasets import calibration_subset, load_default_dataset
    from verification.models.default_model import build_default_model

    torch.set_num_threads(1)
    work = audit_copy(build_default_model())
    data = calibration_subset(load_default_dataset(), images, 0).images.double()
    out = {}
    for mask_name, path in masks.items():
        mask = Mask.load(path)
        for layer in [name for name in layers if name in mask.keep]:  # CAST 2:4 leaves the patch conv dense
            captured = capture_layer(work, layer, mask.keep[layer], data)
            start = time.process_time()
            bounds = sound_path_bounds(work, captured, data, subintervals=SOUND_START, max_subintervals=SOUND_BUDGET,
                                       device="cpu")
            cpu = time.process_time() - start
            lip = bounds.lipschitz.values
            out[f"{mask_name} {layer}"] = {
                "cpu_per_sample": cpu / images, "evals_per_sample": bounds.segments.evaluations / images,
                "lipschitz": lip.tolist(), "median": float(np.median(lip)), "method": bounds.lipschitz.method}
    return out


def _run_side(tree: Path, masks: dict[str, Path], layers: list[str], images: int) -> dict[str, dict]:
    env = dict(os.environ, PYTHONPATH=str(tree), OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    spec = {name: str(path) for name, path in masks.items()}
    code = (f"import json, sys; sys.path.insert(0, {str(ROOT / 'benchmarks')!r}); from sound_speed import measure; "
            f"print(json.dumps(measure({spec!r}, {layers!r}, {images})))")
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=tree, capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(f"measurement in {tree} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", default="main", help="git revision to compare with")
    parser.add_argument("--images", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--layers", nargs="+", default=list(LAYERS))
    parser.add_argument("--masks", type=Path, default=Path(tempfile.gettempdir()) / "mpcert-demo-masks")
    parser.add_argument("--json", type=Path, default=None, help="also write the raw measurements here")
    args = parser.parse_args()
    paths = build_masks(args.masks)
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "baseline"
        base.mkdir()
        archive = subprocess.run(["git", "archive", args.baseline], cwd=ROOT, capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(base)], input=archive, check=True)
        runs: dict[str, list[dict]] = {"before": [], "after": []}
        for repeat in range(args.repeats):
            for side, tree in (("before", base), ("after", ROOT)):
                runs[side].append(_run_side(tree, paths, args.layers, args.images))
                print(f"repeat {repeat} {side} done", file=sys.stderr, flush=True)
    if args.json is not None:
        args.json.write_text(json.dumps(runs, indent=1))
    print(f"| mask | layer | CPU s / sample before | after | speed-up | evals / sample before | after "
          f"| median L_s before | after | max L_s after / before | method after |\n|{'---|' * 11}")
    for mask in MASKS:
        for layer in args.layers:
            key = f"{mask} {layer}"
            if key not in runs["after"][0]:
                continue
            old, new = runs["before"][0][key], runs["after"][0][key]
            t_old = statistics.median(r[key]["cpu_per_sample"] for r in runs["before"])
            t_new = statistics.median(r[key]["cpu_per_sample"] for r in runs["after"])
            worst = max(b / a for a, b in zip(old["lipschitz"], new["lipschitz"]))
            print(f"| {mask} | {layer} | {t_old:.3f} | {t_new:.3f} | {t_old / t_new:.2f}x "
                  f"| {old['evals_per_sample']:.1f} | {new['evals_per_sample']:.1f} "
                  f"| {old['median']:.4g} | {new['median']:.4g} | {worst:.4f} "
                  f"| {new['method'].removeprefix('interval-forward-')} |")


if __name__ == "__main__":
    main()
