"""Hostile input to the real ``mpcert`` entry point (issue 19): one clear line, exit status != 0, nothing written.

Each test runs ``python -m verification.cli`` in a subprocess (the code a user runs, with its own
signal handling and error printing) and asserts the exit code, the message and that ``--out`` was
neither created nor touched and no staging sibling ``.NAME.tmp-*`` is left.
"""

from __future__ import annotations

import json
import os
import signal
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


# --- signals and concurrent runs ---------------------------------------------------------------


def state_dict_file(path: Path, layers: int) -> str:
    """A weights-only state dict of ``layers`` random 48 x 40 linear weights (``mpcert fit`` fits each)."""
    from safetensors.torch import save_file

    g = torch.Generator().manual_seed(0)
    save_file({f"layer{i}.weight": torch.randn(48, 40, generator=g) for i in range(layers)}, str(path))
    return str(path)


def mpcert_background(*args: str, cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "verification.cli", *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_staging(parent: Path, name: str, process: subprocess.Popen, timeout: float = 240) -> None:
    import time

    deadline = time.monotonic() + timeout
    while not any(parent.glob(f".{name}.tmp-*")):
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the staging folder never appeared"
        time.sleep(0.02)


@pytest.mark.parametrize("stop, existing", [(signal.SIGTERM, True), (signal.SIGINT, False)], ids=["SIGTERM", "SIGINT"])
def test_a_signal_during_the_run_removes_the_staging_folder(tmp_path, stop, existing):
    """SIGTERM (to a ``--force`` run over an existing report) and Ctrl-C (SIGINT) while ``.report.tmp-*`` exists:
    exit status 128 + signal, one line, no traceback, no staging folder, the existing report untouched.
    Known-bad: before the fix SIGTERM killed the process with the staging folder left in place."""
    weights = state_dict_file(tmp_path / "many.safetensors", layers=300)
    out = tmp_path / "report"
    if existing:
        out.mkdir()
        (out / "fits.json").write_text("the user's report")
    process = mpcert_background("fit", weights, "--out", str(out), *(["--force"] if existing else []), cwd=tmp_path)
    try:
        wait_for_staging(tmp_path, "report", process)
        process.send_signal(stop)
        _, stderr = process.communicate(timeout=120)
    finally:
        process.kill()
    name = signal.Signals(stop).name
    assert process.returncode == 128 + stop, stderr
    assert "Traceback" not in stderr
    assert [line for line in stderr.splitlines() if "interrupted" in line] == [
        f"mpcert fit: interrupted by {name}; no partial output was left"]
    assert staging_leftovers(tmp_path) == []
    if existing:
        assert [p.name for p in out.iterdir()] == ["fits.json"] and (out / "fits.json").read_text() == "the user's report"
    else:
        assert not out.exists()


def test_two_concurrent_runs_to_one_out_do_not_overwrite_each_other(tmp_path):
    """Two ``fit`` runs to one new ``--out`` without ``--force``: exactly one writes it, the other is refused
    (at ``check_out`` or, if both passed it, at the publishing rename) and the folder is the winner's."""
    weights = [state_dict_file(tmp_path / f"w{i}.safetensors", layers=8 + 4 * i) for i in range(2)]
    out = tmp_path / "report"
    runs = [mpcert_background("fit", w, "--no-plots", "--out", str(out), cwd=tmp_path) for w in weights]
    results = [run.communicate(timeout=600) for run in runs]
    codes = [run.returncode for run in runs]
    assert sorted(codes) == [0, 2], results
    winner, loser = (0, 1) if codes[0] == 0 else (1, 0)
    assert "report written" in results[winner][0]
    refusal = [line for line in results[loser][1].splitlines() if line.startswith("mpcert fit: error: --out")]
    assert len(refusal) == 1 and ("appeared while this run was working" in refusal[0] or "not empty" in refusal[0])
    assert len(json.loads((out / "fits.json").read_text())["layers"]) == 8 + 4 * winner
    assert staging_leftovers(tmp_path) == []
