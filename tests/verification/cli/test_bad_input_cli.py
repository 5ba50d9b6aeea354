"""Hostile input to the real ``mpcert`` entry point (issue 19): one clear line, exit status != 0, nothing written.

Each test runs ``python -m verification.cli`` in a subprocess (the code a user runs, with its own
signal handling and error printing) and asserts the exit code, the message and that ``--out`` was
neither created nor touched and no staging sibling ``.NAME.tmp-*`` is left.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch

from certs.errors import CertificateInputError
from pruning.errors import InvalidMaskError
from tests.pruning.test_mask_input import _meta, write_mask_file
from verification.bridge.certify import certify
from verification.models.default_model import build_default_model

ROOT = Path(__file__).resolve().parents[3]
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
    """``mpcert ARGS`` started in the background; its stdout and stderr go to files (a pipe nobody reads
    could fill up and stall it), read back by :func:`finish`."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    logs = Path(tempfile.mkdtemp(prefix="mpcert-log-"))
    process = subprocess.Popen([sys.executable, "-m", "verification.cli", *args], cwd=cwd, env=env,
                               stdout=(logs / "stdout").open("w"), stderr=(logs / "stderr").open("w"))
    process.logs = logs
    return process


def finish(process: subprocess.Popen, timeout: float = 300) -> tuple[str, str]:
    """Wait for ``process`` and return its ``(stdout, stderr)`` (the log folder is removed)."""
    try:
        process.wait(timeout=timeout)
    finally:
        process.kill()
    try:
        return (process.logs / "stdout").read_text(), (process.logs / "stderr").read_text()
    finally:
        shutil.rmtree(process.logs, ignore_errors=True)


def wait_for_staging(parent: Path, name: str, process: subprocess.Popen, timeout: float = 600,
                     drawn: str | None = None) -> None:
    """Return once the staging folder ``.NAME.tmp-*`` exists in ``parent`` (and, with ``drawn``, once that text is
    in the process's stderr: e.g. its progress bar)."""
    import time

    deadline = time.monotonic() + timeout
    while not any(parent.glob(f".{name}.tmp-*")) or (drawn and drawn not in (process.logs / "stderr").read_text()):
        assert process.poll() is None, finish(process)
        assert time.monotonic() < deadline, "the staging folder never appeared"
        time.sleep(0.02)


@pytest.mark.parametrize("stop, existing", [(signal.SIGTERM, True), (signal.SIGINT, False)], ids=["SIGTERM", "SIGINT"])
def test_a_signal_during_the_run_removes_the_staging_folder(tmp_path, stop, existing):
    """SIGTERM (to a ``--force`` run over an existing report) and Ctrl-C (SIGINT) while ``.report.tmp-*`` exists:
    exit status 128 + signal, one line, no traceback, no staging folder, the existing report untouched.
    Known-bad: before the fix SIGTERM killed the process with the staging folder left in place.  The signal comes
    once the progress bar is drawn (a signal inside tqdm's first draw once left the message on the bar's line)."""
    weights = state_dict_file(tmp_path / "many.safetensors", layers=300)
    out = tmp_path / "report"
    if existing:
        out.mkdir()
        (out / "fits.json").write_text("the user's report")
    process = mpcert_background("fit", weights, "--out", str(out), *(["--force"] if existing else []), cwd=tmp_path)
    try:
        wait_for_staging(tmp_path, "report", process, drawn="layer/s")
        process.send_signal(stop)
    finally:
        _, stderr = finish(process)
    name = signal.Signals(stop).name
    assert process.returncode == 128 + stop, stderr
    assert "Traceback" not in stderr
    assert [line for line in stderr.splitlines() if "interrupted" in line] == [
        f"mpcert fit: interrupted by {name}; no partial output was left"]
    assert staging_leftovers(tmp_path) == []
    if existing:
        assert ([p.name for p in out.iterdir()] == ["fits.json"]
                and (out / "fits.json").read_text() == "the user's report")
    else:
        assert not out.exists()


def test_a_signal_while_the_demo_bar_is_open_prints_the_message_on_its_own_line(tmp_path):
    """SIGTERM once ``mpcert demo`` has drawn its step bar and is building a mask: the one-line message is a line of
    its own and nothing is written.  Known-bad: the bar, not closed on the way out, left the message on its line."""
    import time

    process = mpcert_background("demo", "--out", str(tmp_path / "demo"), "--calibration", "8", "--heldout", "8",
                                cwd=tmp_path)
    try:
        deadline = time.monotonic() + 300
        while "Hybrid Magnitude-SER mask" not in (process.logs / "stderr").read_text():
            assert process.poll() is None, finish(process)
            assert time.monotonic() < deadline, "the demo's bar never reached the Hybrid mask"
            time.sleep(0.02)
        process.send_signal(signal.SIGTERM)
    finally:
        _, stderr = finish(process)
    assert process.returncode == 128 + signal.SIGTERM, stderr
    assert [line for line in stderr.splitlines() if "interrupted" in line] == [
        "mpcert demo: interrupted by SIGTERM; no partial output was left"]
    assert not (tmp_path / "demo").exists() and staging_leftovers(tmp_path) == []


def test_two_concurrent_runs_to_one_out_do_not_overwrite_each_other(tmp_path):
    """Two ``fit`` runs to one new ``--out`` without ``--force``: exactly one writes it, the other is refused
    (at ``check_out`` or, if both passed it, at the publishing rename) and the folder is the winner's."""
    weights = [state_dict_file(tmp_path / f"w{i}.safetensors", layers=8 + 4 * i) for i in range(2)]
    out = tmp_path / "report"
    runs = [mpcert_background("fit", w, "--no-plots", "--out", str(out), cwd=tmp_path) for w in weights]
    results = [finish(run, timeout=600) for run in runs]
    codes = [run.returncode for run in runs]
    assert sorted(codes) == [0, 2], results
    winner, loser = (0, 1) if codes[0] == 0 else (1, 0)
    assert "report written" in results[winner][0]
    refusal = [line for line in results[loser][1].splitlines() if line.startswith("mpcert fit: error: --out")]
    assert len(refusal) == 1 and ("appeared while this run was working" in refusal[0] or "not empty" in refusal[0])
    assert len(json.loads((out / "fits.json").read_text())["layers"]) == 8 + 4 * winner
    assert staging_leftovers(tmp_path) == []


# --- the family of item 5-8: typed errors instead of tracebacks, named by their flags ---------------------


def _files(folder: Path) -> dict[str, str]:
    """The hostile input files of the table below, written once per module."""
    from safetensors.torch import save_file

    rng = np.random.default_rng(0)
    images = rng.standard_normal((4, 1, 28, 28)).astype(np.float32)
    np.savez(folder / "string_labels.npz", images=images, labels=np.array(list("abcd")))
    g = torch.Generator().manual_seed(0)
    save_file({"a.weight": torch.randn(8, 8, generator=g), "z.weight": torch.zeros(0, 8)},
              str(folder / "zero.safetensors"))
    save_file({".weight": torch.randn(8, 8, generator=g)}, str(folder / "empty_key.safetensors"))
    save_file({"a..b.weight": torch.randn(8, 8, generator=g)}, str(folder / "empty_middle.safetensors"))
    huge = torch.randn(16, 16, generator=g, dtype=torch.float64) * 1e160
    save_file({"a.weight": huge, "b.weight": torch.randn(16, 16, generator=g, dtype=torch.float64)},
              str(folder / "huge.safetensors"))
    default = build_default_model().state_dict()
    torch.save({k: v.to(torch.complex128) if v.is_floating_point() else v for k, v in default.items()},
               str(folder / "complex.pt"))  # safetensors has no complex dtypes
    write_mask_file(folder / "not_json.safetensors", "{not json")
    (folder / "a_file").write_text("x")
    (folder / "existing").mkdir()
    (folder / "existing" / "keep.txt").write_text("the user's file")
    return {path.name: str(path) for path in folder.iterdir()}


CERTIFY = ["certify", *FAST, "--mask", "magnitude"]
CASES = {
    "string labels": (CERTIFY + ["--data", "{string_labels.npz}"], "certify", ["labels must be numeric", "<U1"]),
    "negative seed certify": (CERTIFY + ["--seed", "-1"], "certify", ["--seed: must be an integer in 0.."]),
    "negative seed prune": (["prune", "default", "--method", "magnitude", "--sparsity", "0.5", "--seed", "-1"], "prune",
                            ["--seed"]),
    "negative seed demo": (["demo", "--quick", "--seed", "-1"], "demo", ["--seed"]),
    "zero-size magnitude": (["prune", "{zero.safetensors}", "--method", "magnitude", "--sparsity", "0.5"], "prune",
                            ["z: weight is empty (shape (0, 8))"]),
    "zero-size seb": (["prune", "{zero.safetensors}", "--method", "seb", "--sparsity", "0.5"], "prune",
                      ["z: weight is empty"]),
    "key with a leading dot": (["fit", "{empty_key.safetensors}"], "fit", ["'.weight'", "module name in it is empty"]),
    "key with a doubled dot": (["fit", "{empty_middle.safetensors}"], "fit", ["'a..b.weight'", "is empty"]),
    "huge weights fit": (["fit", "{huge.safetensors}"], "fit", ["a.weight: entries up to", "too large for an MP fit"]),
    "huge weights seb": (["prune", "{huge.safetensors}", "--method", "seb", "--sparsity", "0.5"], "prune",
                         ["too large for an MP fit"]),
    "complex checkpoint": (CERTIFY + ["--checkpoint", "{complex.pt}"], "certify",
                           ["--checkpoint", "complex.pt", "unsupported dtypes:", "complex128 != float32"]),
    "malformed mask metadata": (["certify", *FAST, "--mask", "{not_json.safetensors}"], "certify",
                                ["is not valid JSON"]),
    "grid without bound": (CERTIFY + ["--grid", "1000000000"], "certify", ["--grid 1000000000: at most 1024",
                                                                           "2000000001 forward passes"]),
    "sound budget without bound": (CERTIFY + ["--lipschitz", "sound", "--sound-budget", "1000000000"], "certify",
                                   ["--sound-budget: must be an integer in 1..65536"]),
    "sparsity by its flag": (CERTIFY + ["--sparsity", "1.5"], "certify", ["--sparsity: must lie in [0, 1)"]),
    "calibration by its flag": (["prune", "default", "--method", "cast", "--calibration", "0"], "prune",
                                ["--calibration 0: must be an integer in 1.."]),
    "demo heldout above the split": (["demo", "--quick", "--heldout", "20000"], "demo",
                                     ["--heldout 20000: at most 10000"]),
    "out is the working directory": (["fit", "default", "--out", ".", "--force"], "fit",
                                     ["--out '.' is the working directory"]),
    "out below a file": (["fit", "default", "--out", "{a_file}/nested/report"], "fit", ["is not a directory"]),
    "prune onto a directory with force": (["prune", "default", "--method", "magnitude", "--sparsity", "0.5", "--force",
                                           "--out", "{existing}"], "prune", ["is a directory; name a file"]),
}


@pytest.fixture(scope="module")
def hostile_files(tmp_path_factory):
    return _files(tmp_path_factory.mktemp("hostile"))


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_typed_line_and_nothing_is_written(case, hostile_files, samples, tmp_path):
    """The real entry point (``python -m verification.cli``) in a subprocess: exit 2, one line, nothing written."""
    args, command, fragments = CASES[case]
    args = [re.sub(r"\{([^}]+)\}", lambda m: hostile_files[m.group(1)], a) for a in args]
    if "--data" not in args and command == "certify":
        args += ["--data", samples]
    if "--out" not in args:
        args += ["--out", str(tmp_path / ("out.safetensors" if command == "prune" else "out"))]
    before = sorted(p.name for p in tmp_path.iterdir())
    existing = Path(hostile_files["existing"])
    assert_refused(mpcert(*args, cwd=tmp_path), command, *fragments)
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert [p.name for p in existing.iterdir()] == ["keep.txt"]


def test_a_nan_checkpoint_is_blamed_on_the_checkpoint(tmp_path, samples, capsys):
    """Known-bad: the NaN reached the audit and was reported as "the re-run model produced NaN ... at layer"."""
    from safetensors.torch import save_file

    from verification.cli.app import main

    state = {k: v.clone() for k, v in build_default_model().state_dict().items()}
    state[f"{FC2}.weight"][0, 0] = float("nan")
    checkpoint = tmp_path / "nan.safetensors"
    save_file(state, str(checkpoint))
    mask = tmp_path / "mask.safetensors"
    assert main(["prune", "default", "--method", "magnitude", "--sparsity", "0.5", "--out", str(mask)]) == 0
    capsys.readouterr()
    out = tmp_path / "report"
    assert main(["certify", *FAST, "--checkpoint", str(checkpoint), "--mask", str(mask), "--data", samples,
                 "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "--checkpoint" in err and f"have NaN or Inf entries: {FC2}.weight" in err and "re-run" not in err
    assert not out.exists()


def test_verify_keeps_hypothesis_storage_out_of_the_working_directory(tmp_path):
    """Known-bad: ``mpcert verify`` left a ``.hypothesis/`` folder (87 files) in the user's working directory.
    Also: ``--json`` into a folder that does not exist yet is created with it."""
    env_free = {k: v for k, v in os.environ.items() if k != "HYPOTHESIS_STORAGE_DIRECTORY"}
    env = {**env_free, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-m", "verification.cli", "verify", "--only", "frobenius-identity",
                             "ce-2-lipschitz", "--json", "ledgers/ledger.json"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ledgers"]
    assert json.loads((tmp_path / "ledgers" / "ledger.json").read_text())["profile"] == "ci"


def test_verify_json_into_a_folder_is_refused_before_any_check(tmp_path, monkeypatch, capsys):
    from verification.cli.app import main
    from verification.theorems import theorem_checks

    monkeypatch.setattr(theorem_checks, "run_check", lambda *a, **k: pytest.fail("a check ran"))
    assert main(["verify", "--only", "frobenius-identity", "--json", str(tmp_path)]) == 2
    assert f"--json {str(tmp_path)!r} is a directory" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
