"""``mpcert`` works with the runtime dependencies alone: hypothesis and pytest (the test extra) blocked from import.

Each command runs the real entry point (``python -m verification.cli``) in a subprocess that sees this
environment's site-packages without the test extra's packages (``python -S`` and a symlinked copy), as an
installation without ``[test]`` would.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
#: What `mpcert fit` writes (besides the figures).
FIT_OUTPUT = {"fits.json", "report.md"}

TEST_EXTRA = ("hypothesis", "pytest", "_pytest", "pytest_benchmark")


@pytest.fixture(scope="module")
def runtime_only_path(tmp_path_factory) -> Path:
    """A copy (by symlinks) of this environment's site-packages without the test extra's packages."""
    farm = tmp_path_factory.mktemp("runtime-site-packages")
    site = Path(sysconfig.get_paths()["purelib"])
    for entry in site.iterdir():
        if not entry.name.lower().replace("-", "_").startswith(TEST_EXTRA):
            (farm / entry.name).symlink_to(entry)
    return farm


def run_without_test_extra(code: str, *args: str, cwd: Path, site: Path) -> subprocess.CompletedProcess:
    """``python -S`` (no site-packages) with the project and the filtered site-packages on the path."""
    env = {"PYTHONPATH": f"{ROOT}{os.pathsep}{site}", "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-S", "-c", "import runpy, sys\n" + code, *args], cwd=cwd,
                          capture_output=True, text=True, env=env, timeout=600)


def mpcert(*args: str, cwd: Path, site: Path) -> subprocess.CompletedProcess:
    code = "sys.argv = ['mpcert', *sys.argv[1:]]\nrunpy.run_module('verification.cli', run_name='__main__')\n"
    return run_without_test_extra(code, *args, cwd=cwd, site=site)


def test_the_filtered_environment_lacks_the_test_extra(tmp_path, runtime_only_path):
    """Known-bad: a module that needs hypothesis fails there (so a pass below means something)."""
    result = run_without_test_extra("import verification.theorems.strategies\n", cwd=tmp_path, site=runtime_only_path)
    assert result.returncode == 1 and "No module named 'hypothesis'" in result.stderr


def test_help_fit_and_prune_run_without_the_test_extra(tmp_path, runtime_only_path):
    help_ = mpcert("--help", cwd=tmp_path, site=runtime_only_path)
    assert help_.returncode == 0, help_.stderr
    assert "verify" in help_.stdout and "certify" in help_.stdout

    fit = mpcert("fit", "default", "--out", str(tmp_path / "fit"), cwd=tmp_path, site=runtime_only_path)
    assert fit.returncode == 0, fit.stderr
    assert FIT_OUTPUT <= {p.name for p in (tmp_path / "fit").iterdir()}

    prune = mpcert("prune", "default", "--method", "cast", "--pattern", "2:4", "--calibration", "16",
                   "--out", str(tmp_path / "cast.safetensors"), cwd=tmp_path, site=runtime_only_path)
    assert prune.returncode == 0, prune.stderr
    assert "pattern 2:4" in prune.stdout and (tmp_path / "cast.safetensors").stat().st_size > 0


def test_verify_without_hypothesis_says_what_to_install(tmp_path, runtime_only_path):
    result = mpcert("verify", "--only", "ce-2-lipschitz", cwd=tmp_path, site=runtime_only_path)
    assert result.returncode == 2
    assert result.stderr.strip() == ("mpcert verify: error: mpcert verify needs hypothesis: install the test extra "
                                     "(pip install 'mpcert[test]')")
