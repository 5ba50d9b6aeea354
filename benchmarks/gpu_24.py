"""Dense bf16 vs 2:4 on one GPU, per Linear shape and end to end, eager and CUDA-graph-captured (ALGORITHMS.md 8.1-8.2).

Standalone script; prints one JSON object (``--markdown FILE`` also writes the tables).  On a CUDA machine:

1. **Stack**: torch / CUDA / cuSPARSELt versions (``torch.backends.cusparselt.version()``), which
   cuSPARSELt ops exist (algorithm search), the semi-structured default backend, the GPU name.
2. **Per shape** (the four ViT-B/16 Linears at ``batch * 197`` tokens: qkv 768->2304, proj 768->768,
   fc1 768->3072, fc2 3072->768): one magnitude-2:4 Linear, dense ``nn.Linear`` (cuBLAS) against
   each 2:4 kernel of ``--kernels`` (:mod:`pruning.kernels24`: ``cusparselt`` = ``_cslt_sparse_mm``
   with the algorithm of ``_cslt_sparse_mm_search``, fused transpose, row-major output;
   ``semi-structured`` = ``to_sparse_semi_structured``), both endpoints under the same harness:
   ``eager_ms`` (CUDA events, median), ``graph_ms`` (the call captured in a CUDA graph: host
   overhead drops out of both) and ``host_ms`` (median wall time to *issue* one eager call: when it
   is close to ``eager_ms`` the eager call is host-bound), plus the CUDA kernels that ran (profiler).
3. **End to end** (``--model``, default ViT-B/16, ``pretrained=False``): the magnitude-2:4 masked
   model, dense, against the same checkpoint converted with :func:`pruning.packed24.convert_to_24`
   for the scopes of ``--scopes`` (``all``: every eligible Linear but the classifier; ``mlp``: only
   ``mlp.fc1`` / ``mlp.fc2``), each once with every layer on the 2:4 kernel and once after
   :func:`pruning.fallback24.tune_24` (per layer the faster of 2:4 and dense on its shape, recorded),
   eager and graph-captured.

Every 2:4 output is checked against the masked dense model at the dtype's tolerance.  Timing protocol
of 8.2: ``--warmup`` untimed + median of ``--iters`` timed calls, ``cudnn.benchmark = True``, same
input, same checkpoint, same dtype on both endpoints (pure bf16: no autocast).

Without CUDA it prints ``{"status": "skipped", ...}`` and exits 0.  ``--dry-run`` runs the same
harness on the CPU in fp32 with batch 2 and 2 timed calls, the reference 2:4 execution in place of
the CUDA kernels and no graphs: it checks building, masking, converting, the fallback and the
agreement; its times are CPU wall times, not a speed claim.

    python benchmarks/gpu_24.py --markdown gpu24.md          # CUDA run (well under 5 minutes on one GPU)
    python benchmarks/gpu_24.py --dry-run --model vit_tiny_patch16_224
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pruning.errors import KernelUnavailableError  # noqa: E402
from pruning.fallback24 import tune_24, use_kernels  # noqa: E402
from pruning.kernels24 import KERNELS, stack_versions  # noqa: E402
from pruning.magnitude import magnitude_kn  # noqa: E402
from pruning.packed24 import REFERENCE_EXECUTION, SparseLinear24, convert_to_24  # noqa: E402
from pruning.timing24 import cuda_graph, host_ms, median_ms  # noqa: E402

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
#: (name, d_in, d_out) of the ViT-B/16 Linears
LINEAR_SHAPES = (("qkv", 768, 2304), ("proj", 768, 768), ("fc1", 768, 3072), ("fc2", 3072, 768))
SPARSE_KERNELS = tuple(k for k in KERNELS if k != "dense")
SCOPES = ("all", "mlp")
MLP_SUFFIXES = ("mlp.fc1", "mlp.fc2")
#: relative tolerance (max |diff| / max |dense output|) for "outputs agree", per dtype
TOLERANCE = {torch.float32: 1e-5, torch.bfloat16: 3e-2, torch.float16: 5e-3}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="vit_base_patch16_224")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--dtype", choices=sorted(DTYPES), default="bf16")
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--iters", type=int, default=100)
    p.add_argument("--kernels", nargs="+", choices=SPARSE_KERNELS, default=list(SPARSE_KERNELS),
                   help="2:4 kernels measured per shape (the first one is used end to end)")
    p.add_argument("--scopes", nargs="+", choices=SCOPES, default=list(SCOPES), help="end-to-end sparsified layers")
    p.add_argument("--shapes-only", action="store_true", help="skip the end-to-end model")
    p.add_argument("--min-speedup", type=float, default=1.0,
                   help="fallback: keep 2:4 where dense_ms >= this * sparse_ms")
    p.add_argument("--backend", choices=("default", "cutlass"), default="default",
                   help="backend of the semi-structured kernel; 'cutlass' forces CUTLASS (the paper's setting)")
    p.add_argument("--no-graph", action="store_true", help="eager timings only")
    p.add_argument("--no-profile", action="store_true", help="skip the per-shape kernel-name profile")
    p.add_argument("--markdown", metavar="FILE", help="also write the tables as markdown")
    p.add_argument("--dry-run", action="store_true", help="CPU only: the same harness in fp32, batch 2, no speed claim")
    return p.parse_args(argv)


def mlp_layers(model: nn.Module) -> list[str]:
    return [n for n, m in model.named_modules() if isinstance(m, nn.Linear) and n.endswith(MLP_SUFFIXES)]


def masked_pair(model: nn.Module, *, layers=None, exclude_classifier: bool = True) -> tuple[nn.Module, nn.Module]:
    """(the magnitude-2:4 masked dense model, the same masked model converted to SparseLinear24)."""
    mask = magnitude_kn(model, "2:4", layers=layers, exclude_classifier=exclude_classifier)
    dense = mask.apply(model)
    return dense, convert_to_24(dense, mask)


def agreement(a: torch.Tensor, b: torch.Tensor) -> dict:
    tol = TOLERANCE[a.dtype]
    a, b = a.float(), b.float()
    scale = float(a.abs().max()) or 1.0
    relative = float((a - b).abs().max()) / scale
    return {"max_abs_diff": float((a - b).abs().max()), "relative": relative, "tolerance": tol,
            "agrees": relative <= tol}


class Harness:
    """One timing protocol for both endpoints: eager, host-issue and CUDA-graph times of a call."""

    def __init__(self, args: argparse.Namespace, device: torch.device):
        self.device, self.warmup, self.iters = device, args.warmup, args.iters
        self.graphs = device.type == "cuda" and not args.no_graph
        self.profile = device.type == "cuda" and not args.no_profile

    def times(self, fn) -> dict:
        entry = {"eager_ms": median_ms(fn, self.warmup, self.iters, self.device),
                 "host_ms": host_ms(fn, self.iters, self.device)}
        if self.graphs:
            try:
                replay = cuda_graph(fn)
                entry["graph_ms"] = median_ms(replay, self.warmup, self.iters, self.device)
            except Exception as exc:  # capture refused by a kernel: recorded, the eager figure stands
                entry["graph_error"] = str(exc).splitlines()[0]
        if self.profile:
            try:
                entry["kernels"] = cuda_kernels(fn)
            except Exception as exc:  # the profiler is a diagnostic: its failure is recorded, not fatal
                entry["kernels_error"] = str(exc).splitlines()[0]
        return entry


def cuda_kernels(fn, calls: int = 5) -> list[dict]:
    """The CUDA kernels of one ``fn()`` call (profiled over ``calls``): name and device time per call, in ms."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(calls):
            fn()
        torch.cuda.synchronize()
    rows = []
    for event in prof.key_averages():
        total = getattr(event, "device_time_total", None) or getattr(event, "cuda_time_total", 0.0)
        if total:
            rows.append({"name": event.key[:120], "ms_per_call": total / 1e3 / calls, "count": event.count // calls})
    return sorted(rows, key=lambda r: -r["ms_per_call"])[:6]


def ratio(dense: dict, sparse: dict, key: str) -> float | None:
    return dense[key] / sparse[key] if key in dense and key in sparse else None


def per_shape(args, harness: Harness, kernels: list[str], tokens: int, dtype) -> list[dict]:
    rows = []
    for name, d_in, d_out in LINEAR_SHAPES:
        torch.manual_seed(0)
        # a one-layer model: its only Linear would count as the classifier, so do not exclude it
        dense, sparse = masked_pair(nn.Sequential(nn.Linear(d_in, d_out)), exclude_classifier=False)
        dense, sparse = dense.to(harness.device, dtype), sparse.to(harness.device, dtype)
        x = torch.randn(tokens, d_in, device=harness.device, dtype=dtype)
        with torch.inference_mode():
            reference = dense(x)
            row = {"layer": name, "d_in": d_in, "d_out": d_out, "tokens": tokens,
                   "dense": harness.times(lambda: dense(x))}
            for kernel in kernels:
                try:
                    layer = sparse[0].use_kernel(kernel, probe_tokens=tokens)
                    entry = {"agreement": agreement(reference, sparse(x))} | harness.times(lambda: sparse(x))
                except (KernelUnavailableError, RuntimeError) as exc:  # recorded; the other kernels still run
                    row[kernel] = {"error": str(exc).splitlines()[0]}
                    progress(f"{name} {kernel}: {row[kernel]['error']}")
                    continue
                entry["alg_id"] = getattr(layer.kernel, "alg_id", None)
                entry["alg_searched"] = getattr(layer.kernel, "searched", None)
                entry["eager_speedup"] = ratio(row["dense"], entry, "eager_ms")
                entry["graph_speedup"] = ratio(row["dense"], entry, "graph_ms")
                row[kernel] = entry
                progress(f"{name} {kernel}: " + json.dumps({k: v for k, v in entry.items() if k != "kernels"}))
        rows.append(row)
    return rows


def progress(line: str) -> None:
    """One line per measured entry on stderr: what a run cut short by its time limit still leaves behind."""
    print(line, file=sys.stderr, flush=True)


def end_to_end(args, harness: Harness, kernel: str, dtype, batch: int) -> dict:
    import timm

    torch.manual_seed(0)
    model = timm.create_model(args.model, pretrained=False).eval()
    x = torch.randn(batch, *model.pretrained_cfg["input_size"], device=harness.device, dtype=dtype)
    tokens = batch * (model.patch_embed.num_patches + model.num_prefix_tokens)
    report = {"model": args.model, "batch": batch, "tokens": tokens, "scopes": {}}
    for scope in args.scopes:
        try:
            report["scopes"][scope] = one_scope(args, harness, kernel, model, scope, x, tokens)
        except (KernelUnavailableError, RuntimeError) as exc:  # recorded; the other scope still runs
            report["scopes"][scope] = {"error": str(exc).splitlines()[0]}
        progress(f"end to end {scope}: " + json.dumps({k: v for k, v in report["scopes"][scope].items()
                                                        if k in ("error", "dense_fallback_layers", "all_2:4",
                                                                 "tuned")}))
    return report


def one_scope(args, harness: Harness, kernel: str, model: nn.Module, scope: str, x: torch.Tensor, tokens: int) -> dict:
    """Dense, all-2:4 and tuned timings of ``model`` masked on ``scope`` (module docstring, step 3)."""
    batch = x.shape[0]
    dense, sparse = masked_pair(model, layers=mlp_layers(model) if scope == "mlp" else None)
    dense, sparse = dense.to(harness.device, x.dtype).eval(), sparse.to(harness.device, x.dtype).eval()
    entry = {"converted_linear_layers": sum(isinstance(m, SparseLinear24) for m in sparse.modules())}
    with torch.inference_mode():
        reference = dense(x)
        entry["dense"] = harness.times(lambda: dense(x))
        entry["dense"]["images_per_s"] = batch / entry["dense"]["eager_ms"] * 1e3
        entry["refused"] = use_kernels(sparse, kernel, probe_tokens=tokens)
        entry["all_2:4"] = {"agreement": agreement(reference, sparse(x))} | harness.times(lambda: sparse(x))
        choices = tune_24(sparse, tokens, kernel=kernel, min_speedup=args.min_speedup,
                          warmup=harness.warmup, iters=harness.iters)
        entry["tuned"] = {"agreement": agreement(reference, sparse(x))} | harness.times(lambda: sparse(x))
    entry["fallback"] = [{"layer": c.layer, "chosen": c.chosen, "sparse_ms": c.sparse_ms, "dense_ms": c.dense_ms,
                          "speedup": c.speedup, "reason": c.reason,
                          "alg_id": getattr(sparse.get_submodule(c.layer).kernel, "alg_id", None)} for c in choices]
    entry["dense_fallback_layers"] = sum(c.chosen == "dense" for c in choices)
    for variant in ("all_2:4", "tuned"):
        entry[variant]["images_per_s"] = batch / entry[variant]["eager_ms"] * 1e3
        entry[variant]["eager_speedup"] = ratio(entry["dense"], entry[variant], "eager_ms")
        entry[variant]["graph_speedup"] = ratio(entry["dense"], entry[variant], "graph_ms")
    return entry


def run(args: argparse.Namespace) -> dict:
    import timm

    device = torch.device("cpu" if args.dry_run else "cuda")
    dtype = torch.float32 if args.dry_run else DTYPES[args.dtype]
    if args.dry_run:
        args.batch, args.warmup, args.iters = min(args.batch, 2), 1, 2
    kernels = [REFERENCE_EXECUTION] if args.dry_run else args.kernels
    harness = Harness(args, device)
    tokens = args.batch * 197
    report = {"dry_run": args.dry_run, "device": str(device), "dtype": str(dtype), "warmup": args.warmup,
              "iters": args.iters, "statistic": "median", "semi_structured_backend": args.backend,
              "stack": stack_versions() | {"timm": timm.__version__}}
    if args.dry_run:
        report["timing_note"] = "CPU dry run: wall times of the reference execution, not a speed claim"
    report["linear_layers"] = per_shape(args, harness, kernels, tokens, dtype)
    if not args.shapes_only:
        report["end_to_end"] = end_to_end(args, harness, kernels[0], dtype, args.batch)
    return report


def measured_entries(report: dict):
    """``(label, entry)`` of every 2:4 measurement in ``report`` (an entry holds ``agreement`` or ``error``)."""
    for row in report["linear_layers"]:
        for kernel, e in row.items():
            if kernel != "dense" and isinstance(e, dict):
                yield f"{row['layer']} {kernel}", e
    for scope, s in report.get("end_to_end", {"scopes": {}})["scopes"].items():
        yield from ([(f"end to end {scope}", s)] if "error" in s else
                    [(f"end to end {scope} {variant}", s[variant]) for variant in ("all_2:4", "tuned")])


def status(report: dict) -> str:
    """``outputs_disagree`` if any 2:4 output disagrees with the masked dense one, ``errors`` if a kernel or
    scope failed, else ``ok``."""
    entries = [e for _, e in measured_entries(report)]
    if any("agreement" in e and not e["agreement"]["agrees"] for e in entries):
        return "outputs_disagree"
    return "errors" if any("error" in e for e in entries) else "ok"


def _fmt(value, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def to_markdown(report: dict) -> str:
    """The per-shape and end-to-end tables of ``report`` (the RESULTS-pruning.md layout)."""
    stack = report["stack"]
    lines = [f"Stack: torch {stack['torch']}, CUDA {stack['cuda']}, cuSPARSELt {stack['cusparselt']['version']} "
             f"(search op: {stack['cusparselt']['algorithm_search']}), semi-structured default backend "
             f"{stack['semi_structured_default_backend']}, GPU {stack['gpu']}, timm {stack['timm']}; "
             f"{report['dtype']}, median of {report['iters']} after {report['warmup']} warm-up calls.", "",
             "| layer | tokens | kernel | alg | dense eager ms | 2:4 eager ms | eager x | dense graph ms "
             "| 2:4 graph ms | graph x | 2:4 host ms | agrees |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in report["linear_layers"]:
        dense = row["dense"]
        for kernel, e in row.items():
            if kernel != "dense" and isinstance(e, dict) and "error" in e:
                lines.append(f"| {row['layer']} {row['d_in']}->{row['d_out']} | {row['tokens']} | {kernel} | "
                             f"error: {e['error']} |" + " — |" * 8)
            elif isinstance(e, dict) and "agreement" in e:
                lines.append(f"| {row['layer']} {row['d_in']}->{row['d_out']} | {row['tokens']} | {kernel} | "
                             f"{e['alg_id'] if e['alg_id'] is not None else '—'} | {_fmt(dense['eager_ms'])} | "
                             f"{_fmt(e['eager_ms'])} | {_fmt(e['eager_speedup'], 2)} | {_fmt(dense.get('graph_ms'))} | "
                             f"{_fmt(e.get('graph_ms'))} | {_fmt(e['graph_speedup'], 2)} | {_fmt(e['host_ms'])} | "
                             f"{e['agreement']['agrees']} |")
    if "end_to_end" not in report:
        return "\n".join(lines) + "\n"
    e2e = report["end_to_end"]
    lines += ["", f"End to end: {e2e['model']}, batch {e2e['batch']} ({e2e['tokens']} tokens).", "",
              "| scope | variant | 2:4 layers | dense fallbacks | dense eager ms | 2:4 eager ms | eager x "
              "| dense graph ms | 2:4 graph ms | graph x | agrees |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    for scope, s in e2e["scopes"].items():
        if "error" in s:
            lines.append(f"| {scope} | error: {s['error']} |" + " — |" * 9)
            continue
        dense = s["dense"]
        for variant in ("all_2:4", "tuned"):
            v = s[variant]
            fallbacks = s["dense_fallback_layers"] if variant == "tuned" else len(s["refused"])
            lines.append(f"| {scope} | {variant} | {s['converted_linear_layers']} | {fallbacks} | "
                         f"{_fmt(dense['eager_ms'])} | {_fmt(v['eager_ms'])} | {_fmt(v['eager_speedup'], 2)} | "
                         f"{_fmt(dense.get('graph_ms'))} | "
                         f"{_fmt(v.get('graph_ms'))} | {_fmt(v['graph_speedup'], 2)} | {v['agreement']['agrees']} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    args = parse_args(argv)
    if not args.dry_run and not torch.cuda.is_available():
        print(json.dumps({"status": "skipped", "message": "no CUDA device: 2:4 semi-structured kernels are "
                          "CUDA-only; use --dry-run to check the CPU-side logic", "stack": stack_versions()}))
        return 0
    if args.backend == "cutlass":
        from torch.sparse import SparseSemiStructuredTensor

        SparseSemiStructuredTensor._FORCE_CUTLASS = True
    if not args.dry_run:
        torch.backends.cudnn.benchmark = True
    report = run(args)
    outcome = status(report)
    if args.markdown:
        Path(args.markdown).write_text(to_markdown(report))
    print(json.dumps({"status": outcome} | report, indent=2))
    return 0 if outcome == "ok" else 1


if __name__ == "__main__":
    sys.exit(main())
