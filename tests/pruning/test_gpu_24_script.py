"""benchmarks/gpu_24.py: the CPU-side harness (--dry-run), its tables and the clean exit without CUDA."""

import contextlib
import copy
import importlib.util
import io
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


@pytest.fixture(scope="module")
def dry_run(gpu_24, tmp_path_factory):
    pytest.importorskip("timm")
    markdown = tmp_path_factory.mktemp("gpu24") / "tables.md"
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        rc = gpu_24.main(["--dry-run", "--model", "test_vit", "--markdown", str(markdown)])
    return rc, json.loads(out.getvalue()), markdown.read_text()


def test_dry_run_measures_every_shape_and_scope_and_agrees(gpu_24, dry_run):
    rc, report, _ = dry_run
    assert rc == 0 and report["status"] == "ok" and report["dry_run"]
    assert report["stack"]["torch"] == torch.__version__ and "cusparselt" in report["stack"]
    assert [(r["layer"], r["d_in"], r["d_out"]) for r in report["linear_layers"]] == list(gpu_24.LINEAR_SHAPES)
    assert all(r["tokens"] == 2 * 197 and r["packed-reference"]["agreement"]["agrees"] for r in report["linear_layers"])
    scopes = report["end_to_end"]["scopes"]
    assert set(scopes) == {"all", "mlp"}
    import timm

    depth = len(timm.create_model("test_vit").blocks)  # every block has qkv, proj, fc1, fc2
    assert scopes["all"]["converted_linear_layers"] == 2 * scopes["mlp"]["converted_linear_layers"] == 4 * depth
    assert all(f["layer"].endswith(gpu_24.MLP_SUFFIXES) for f in scopes["mlp"]["fallback"])
    for scope in scopes.values():
        assert len(scope["fallback"]) == scope["converted_linear_layers"]
        assert scope["dense_fallback_layers"] == sum(f["chosen"] == "dense" for f in scope["fallback"])
        # the recorded decision follows the recorded times (the fallback rule)
        assert all((f["chosen"] == "dense") == (f["dense_ms"] < f["sparse_ms"]) for f in scope["fallback"])


def test_markdown_has_one_row_per_shape_kernel_and_scope_variant(dry_run):
    _, report, markdown = dry_run
    assert markdown.startswith(f"Stack: torch {torch.__version__}")
    rows = [line for line in markdown.splitlines() if line.startswith("| ") and not line.startswith("| layer")
            and not line.startswith("| scope")]
    assert len(rows) == len(report["linear_layers"]) + 2 * len(report["end_to_end"]["scopes"])


def test_agreement_flags_a_disagreement(gpu_24, dry_run):
    a = torch.ones(3)
    assert not gpu_24.agreement(a, a * 1.01)["agrees"]  # known-bad output is caught at fp32 tolerance
    report = copy.deepcopy(dry_run[1])
    assert gpu_24.status(report) == "ok"
    report["linear_layers"][1]["cusparselt"] = {"error": "refused"}
    assert gpu_24.status(report) == "errors"  # a failed kernel is never reported as ok
    assert "| proj 768->768 | 394 | cusparselt | error: refused |" in gpu_24.to_markdown(report)
    report["end_to_end"]["scopes"]["mlp"]["tuned"]["agreement"]["agrees"] = False
    assert gpu_24.status(report) == "outputs_disagree"


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA exit")
def test_without_cuda_it_exits_cleanly_with_a_message(gpu_24, capsys):
    assert gpu_24.main([]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["status"] == "skipped" and out["stack"]["gpu"] is None
