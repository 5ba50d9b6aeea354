"""Dense vs 2:4 semi-structured throughput of a timm ViT and of single Linear layers (ALGORITHMS.md 8.1-8.2).

Standalone script (prints one JSON object).  On a CUDA machine it

1. builds ``--model`` offline (``pretrained=False``), computes a magnitude 2:4 mask on every eligible
   Linear except the classifier (``pruning.magnitude.magnitude_kn``), applies it (dense endpoint),
   converts the same masked model with ``pruning.packed24.convert_to_24`` and switches every
   ``SparseLinear24`` to ``torch.sparse.to_sparse_semi_structured`` (sparse endpoint; layers the
   library refuses fall back to dense ``nn.Linear`` and are listed);
2. casts both to ``--dtype`` (pure-bf16 / fp16 endpoints: same checkpoint, same graph, same input),
   checks that their outputs agree, and times ``--warmup`` + ``--iters`` forward passes with CUDA
   events, reporting the median batch time, images/s and the ratio;
3. does the same for single Linear layers of the ViT-B shapes on ``batch * 197`` tokens.

Without CUDA it prints a message and exits 0.  ``--dry-run`` runs everything on the CPU in fp32
with a tiny batch (building, masking, converting, checking agreement) without timing.

    python benchmarks/gpu_24.py                   # CUDA timing run (< 5 minutes on one GPU)
    python benchmarks/gpu_24.py --dry-run --model vit_tiny_patch16_224
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pruning.magnitude import magnitude_kn  # noqa: E402
from pruning.packed24 import SparseLinear24, convert_to_24, to_linear  # noqa: E402

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
LINEAR_SHAPES = ((768, 2304), (768, 768), (768, 3072), (3072, 768))  # (d_in, d_out) of ViT-B/16


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="vit_base_patch16_224")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--dtype", choices=sorted(DTYPES), default="bf16")
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--iters", type=int, default=100)
    p.add_argument("--backend", choices=("default", "cutlass"), default="default",
                   help="'cutlass' forces CUTLASS instead of cuSPARSELt (the paper's setting)")
    p.add_argument("--dry-run", action="store_true", help="CPU only: build, mask, convert, compare; no timing")
    return p.parse_args(argv)


def masked_pair(model: nn.Module, exclude_classifier: bool = True) -> tuple[nn.Module, nn.Module, int]:
    """(masked dense model, converted 2:4 model, number of converted Linear layers)."""
    mask = magnitude_kn(model, "2:4", exclude_classifier=exclude_classifier)
    dense = mask.apply(model)
    sparse = convert_to_24(dense, mask)
    return dense, sparse, sum(isinstance(m, SparseLinear24) for m in sparse.modules())


def enable_semi_structured(model: nn.Module) -> list[str]:
    """Switch every SparseLinear24 to the CUDA kernel; refused layers become dense Linear (names returned)."""
    refused = []
    for name, module in list(model.named_modules()):
        if isinstance(module, SparseLinear24):
            try:
                module.use_semi_structured()
            except (RuntimeError, ValueError) as exc:
                refused.append(f"{name}: {exc}".splitlines()[0])
                parent, _, child = name.rpartition(".")
                setattr(model.get_submodule(parent) if parent else model, child, to_linear(module))
    return refused


#: relative tolerance (max |diff| / max |dense output|) for "outputs agree", per dtype
TOLERANCE = {torch.float32: 1e-5, torch.bfloat16: 3e-2, torch.float16: 5e-3}


def agreement(a: torch.Tensor, b: torch.Tensor) -> dict:
    tol = TOLERANCE[a.dtype]
    a, b = a.float(), b.float()
    scale = float(a.abs().max()) or 1.0
    relative = float((a - b).abs().max()) / scale
    return {"max_abs_diff": float((a - b).abs().max()), "relative": relative, "tolerance": tol, "agrees": relative <= tol}


def median_ms(fn, warmup: int, iters: int) -> float:
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(iters):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def single_linear(d_in: int, d_out: int, tokens: int, device, dtype) -> tuple[nn.Module, nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    # a one-layer model: its only Linear would count as the classifier, so do not exclude it
    dense, sparse, _ = masked_pair(nn.Sequential(nn.Linear(d_in, d_out)), exclude_classifier=False)
    x = torch.randn(tokens, d_in, device=device, dtype=dtype)
    return dense.to(device, dtype), sparse.to(device, dtype), x


def run(args: argparse.Namespace) -> dict:
    import timm

    device = torch.device("cpu" if args.dry_run else "cuda")
    dtype = torch.float32 if args.dry_run else DTYPES[args.dtype]
    batch = min(args.batch, 2) if args.dry_run else args.batch
    torch.manual_seed(0)
    model = timm.create_model(args.model, pretrained=False).eval()
    dense, sparse, converted = masked_pair(model)
    dense, sparse = dense.to(device, dtype).eval(), sparse.to(device, dtype).eval()
    refused = [] if args.dry_run else enable_semi_structured(sparse)
    x = torch.randn(batch, 3, 224, 224, device=device, dtype=dtype)
    report = {"model": args.model, "device": str(device), "dtype": str(dtype), "batch": batch,
              "converted_linear_layers": converted, "refused_by_library": refused, "dry_run": args.dry_run}
    with torch.inference_mode():
        report["model_agreement"] = agreement(dense(x), sparse(x))
        tokens = batch * 197
        layers = []
        for d_in, d_out in LINEAR_SHAPES:
            ld, ls, lx = single_linear(d_in, d_out, tokens, device, dtype)
            if not args.dry_run:
                enable_semi_structured(ls)
            entry = {"d_in": d_in, "d_out": d_out, "tokens": tokens, "agreement": agreement(ld(lx), ls(lx))}
            if not args.dry_run:
                entry["dense_ms"] = median_ms(lambda: ld(lx), args.warmup, args.iters)
                entry["sparse_ms"] = median_ms(lambda: ls(lx), args.warmup, args.iters)
                entry["speedup"] = entry["dense_ms"] / entry["sparse_ms"]
            layers.append(entry)
        report["linear_layers"] = layers
        if not args.dry_run:
            dense_ms = median_ms(lambda: dense(x), args.warmup, args.iters)
            sparse_ms = median_ms(lambda: sparse(x), args.warmup, args.iters)
            report["model_timing"] = {
                "warmup": args.warmup, "iters": args.iters, "statistic": "median",
                "dense_ms": dense_ms, "sparse_ms": sparse_ms,
                "dense_img_per_s": batch / dense_ms * 1e3, "sparse_img_per_s": batch / sparse_ms * 1e3,
                "speedup": dense_ms / sparse_ms,
            }
    return report


def main(argv=None) -> int:
    args = parse_args(argv)
    if not args.dry_run and not torch.cuda.is_available():
        print(json.dumps({"status": "skipped", "message": "no CUDA device: 2:4 semi-structured kernels are "
                          "CUDA-only; use --dry-run to check the CPU-side logic"}))
        return 0
    if args.backend == "cutlass":
        from torch.sparse import SparseSemiStructuredTensor

        SparseSemiStructuredTensor._FORCE_CUTLASS = True
    if not args.dry_run:
        torch.backends.cudnn.benchmark = True
    report = run(args)
    agree = report["model_agreement"]["agrees"] and all(e["agreement"]["agrees"] for e in report["linear_layers"])
    print(json.dumps({"status": "ok" if agree else "outputs_disagree"} | report, indent=2))
    return 0 if agree else 1


if __name__ == "__main__":
    sys.exit(main())
