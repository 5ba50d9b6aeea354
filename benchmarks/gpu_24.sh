#!/usr/bin/env bash
# GPU measurement of issue 18 (2:4 vs dense bf16) in one call of a lent CUDA machine (about 2-3 minutes; every
# step has its own time limit, the whole stays under 5 minutes).
#
#   benchmarks/gpu_24.sh OUT_DIR
#
# Writes to OUT_DIR:
#   stack.txt      nvidia-smi, torch / CUDA / cuSPARSELt / timm versions
#   pytest.log     the CUDA tests of the 2:4 kernels (outputs vs the masked dense model, padding, row-major output)
#   gpu24.json     benchmarks/gpu_24.py: per-shape table (qkv, proj, fc1, fc2 at 25,216 tokens; cuSPARSELt with
#                  searched algorithm and fused transpose, and to_sparse_semi_structured; eager, CUDA graph, host time,
#                  profiled kernels) and ViT-B/16 batch 128 end to end (all Linears / MLP only; all 2:4 / per-layer
#                  fallback), bf16
#   gpu24.md       the same tables as markdown (for benchmarks/RESULTS-pruning.md and the README)
#   cutlass.json   the per-shape table with the semi-structured kernel forced to CUTLASS (no end to end)
set -u
out=$1
mkdir -p "$out"
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
{ nvidia-smi -L
  python3 -c "import torch, timm; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'cusparselt', torch.backends.cusparselt.version(), 'timm', timm.__version__, torch.cuda.get_device_name())"
} 2>&1 | tee "$out/stack.txt"
SECONDS=0
timeout 45 python3 -m pytest -q -p no:cacheprovider -rs tests/pruning/test_fallback24.py tests/pruning/test_packed24.py 2>&1 | tee "$out/pytest.log" | tail -3
echo "pytest: ${SECONDS}s"; SECONDS=0
timeout 180 python3 benchmarks/gpu_24.py --markdown "$out/gpu24.md" > "$out/gpu24.json" 2> "$out/gpu24.err"
echo "gpu_24 rc=$?: ${SECONDS}s"; SECONDS=0
cat "$out/gpu24.md"; tail -3 "$out/gpu24.err"
timeout 40 python3 benchmarks/gpu_24.py --backend cutlass --kernels semi-structured --shapes-only --no-profile \
  --markdown "$out/cutlass.md" > "$out/cutlass.json" 2> "$out/cutlass.err"
echo "cutlass rc=$?: ${SECONDS}s"
head -12 "$out/cutlass.md"
