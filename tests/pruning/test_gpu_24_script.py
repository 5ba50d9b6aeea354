"""benchmarks/gpu_24.py: the CPU-side logic (--dry-run) and the clean exit without CUDA."""

import importlib.util
import json
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_24.py"


@pytest.fixture(scope="module")
def gpu_24():
    spec = importlib.util.spec_from_file_location("gpu_24", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_dry_run_converts_and_agrees(gpu_24, capsys):
    pytest.importorskip("timm")
    assert gpu_24.main(["--dry-run", "--model", "test_vit"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["status"] == "ok" and report["dry_run"] and report["converted_linear_layers"] > 0
    assert report["model_agreement"]["agrees"]
    assert [(e["d_in"], e["d_out"]) for e in report["linear_layers"]] == list(gpu_24.LINEAR_SHAPES)


def test_agreement_flags_a_disagreement(gpu_24):
    a = torch.ones(3)
    assert not gpu_24.agreement(a, a * 1.01)["agrees"]  # known-bad output is caught at fp32 tolerance


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA exit")
def test_without_cuda_it_exits_cleanly_with_a_message(gpu_24, capsys):
    assert gpu_24.main([]) == 0
    assert json.loads(capsys.readouterr().out)["status"] == "skipped"
