"""Hostile input to the real ``mpcert`` entry point (issue 19): one clear line, exit status != 0, nothing written.

Each test runs ``python -m verification.cli`` in a subprocess (the code a user runs, with its own
signal handling and error printing) and asserts the exit code, the message and that ``--out`` was
neither created nor touched and no staging sibling ``.NAME.tmp-*`` is left.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from certs.errors import CertificateInputError
from pruning.errors import InvalidMaskError
from tests.pruning.test_mask_input import _meta, write_mask_file
from verification.certify import certify
from verification.default_model import build_default_model

ROOT = Path(__file__).resolve().parents[2]
FAST = ["--calibration", "2", "--heldout", "0", "--grid", "1", "--no-multilayer", "--no-plots"]


def mpcert(*args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run ``mpcert ARGS`` from this checkout in a subprocess with one thread."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "verification.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def staging_leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))


def assert_refused(result: subprocess.CompletedProcess, command: str, *fragments: str) -> None:
    """Exit 2, exactly one stderr line ``mpcert COMMAND: error: ...`` containing every fragment, no traceback."""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    errors = [line for line in lines if line.startswith(f"mpcert {command}: error: ")]
    assert len(errors) == 1, result.stderr
    for fragment in fragments:
        assert fragment in errors[0], (fragment, errors[0])


@pytest.fixture(scope="module")
def samples(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("data") / "four.npz"
    rng = np.random.default_rng(0)
    np.savez(path, images=rng.standard_normal((4, 1, 28, 28)).astype(np.float32), labels=np.arange(4))
    return str(path)


FC2 = "blocks.3.mlp.fc2"


def soft_mask_file(path: Path) -> Path:
    """A mask file for the default model whose ``FC2`` keep-tensor is float with 0.5 where pruned."""
    shape = dict(build_default_model().named_modules())[FC2].weight.shape
    keep = torch.ones(shape)
    keep[:, ::2] = 0.5
    return write_mask_file(path, _meta(layers=[FC2]), {f"keep/{FC2}": keep})


def test_soft_mask_file_is_refused_by_certify(tmp_path, samples):
    mask = soft_mask_file(tmp_path / "soft.safetensors")
    out = tmp_path / "report"
    result = mpcert("certify", *FAST, "--mask", str(mask), "--data", samples, "--out", str(out), cwd=tmp_path)
    assert_refused(result, "certify", FC2, "must hold only 0 and 1", "e.g. 0.5")
    assert not out.exists() and staging_leftovers(tmp_path) == []


@pytest.mark.parametrize("value", [0.5, -1.0, 2.0, float("nan")])
def test_soft_keep_tensor_given_to_certify_is_refused(value):
    model = build_default_model()
    shape = dict(model.named_modules())[FC2].weight.shape
    images, labels = torch.zeros(2, 1, 28, 28), torch.zeros(2, dtype=torch.int64)
    with pytest.raises(InvalidMaskError, match=f"mask: layer {FC2}: keep-tensor"):
        certify(model, {FC2: torch.full(shape, value)}, (images, labels), grid=1, multilayer=False, fit=False)
    with pytest.raises(CertificateInputError, match="mask: expected"):
        certify(model, [torch.ones(shape)], (images, labels), grid=1)
