#!/usr/bin/env bash
# GPU check of the sound L_s (issue 6) in one call of a lent CUDA machine; every step has its own time limit.
#
#   benchmarks/gpu_sound.sh DEMO_DIR SAMPLES.npz OUT_DIR
#
# DEMO_DIR: an `mpcert demo` folder (its hybrid/ and cast-2of4/ masks); SAMPLES.npz: a sample file whose first 256
# images are the calibration set (as `mpcert certify --data`).  Writes to OUT_DIR:
#   pytest.log          the CUDA property tests of tests/verification/bridge/test_vit_interval.py (CUDA vs autograd / CPU)
#   ratio.md            CUDA against the CPU (2 threads) on the same layers and 64 images, same machine
#   table-cuda-256.md   the per-layer table of benchmarks/sound_lipschitz_table.py on CUDA, 256 images, both masks
#   budget-256.md       the two earliest layers (the dearest: Hybrid patch_embed.proj, CAST 2:4 blocks.0.attn.qkv) at
#                       budget 256 on CUDA
set -u
demo=$1; data=$2; out=$3
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
table="python3 benchmarks/sound_lipschitz_table.py --demo $demo --data $data"
nvidia-smi -L
python3 -c "import torch, timm, numpy; print('torch', torch.__version__, 'timm', timm.__version__, 'numpy', numpy.__version__, torch.cuda.get_device_name())"
SECONDS=0
timeout 120 python3 -m pytest -q -p no:cacheprovider tests/verification/bridge/test_vit_interval.py -rs 2>&1 | tee "$out/pytest.log" | tail -4
echo "pytest: ${SECONDS}s"; SECONDS=0
{ timeout 60 $table --calibration 64 --device cuda --masks hybrid --layers blocks.3.mlp.fc1 blocks.2.attn.qkv
  timeout 90 $table --calibration 64 --device cpu --threads 2 --masks hybrid --layers blocks.3.mlp.fc1 blocks.2.attn.qkv
} 2>&1 | tee "$out/ratio.md" | grep -E '^\| blocks|^## '
echo "ratio: ${SECONDS}s"; SECONDS=0
timeout 220 $table --calibration 256 --device cuda --threads 8 2>&1 | tee "$out/table-cuda-256.md"
echo "table: ${SECONDS}s"; SECONDS=0
{ timeout 40 $table --calibration 64 --device cuda --threads 8 --budget 256 --masks hybrid --layers patch_embed.proj
  timeout 40 $table --calibration 64 --device cuda --threads 8 --budget 256 --masks cast-2:4 --layers blocks.0.attn.qkv
} 2>&1 | tee "$out/budget-256.md" | grep -E '^\| [bp]|^## '
echo "budget: ${SECONDS}s"
