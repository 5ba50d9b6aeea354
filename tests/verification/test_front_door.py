"""The front door: each package's ``__all__`` resolves, and the README's "From Python" example runs."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("rmt", "certs", "pruning", "verification")


@pytest.mark.parametrize("package", PACKAGES)
def test_every_public_name_resolves(package):
    module = importlib.import_module(package)
    assert module.__all__, f"{package} exports nothing"
    missing = [name for name in module.__all__ if not hasattr(module, name)]
    assert not missing, f"{package}.__all__ names missing attributes: {missing}"
    assert len(set(module.__all__)) == len(module.__all__), f"{package}.__all__ has duplicates"


def test_faces_carry_what_the_issue_promises():
    expected = {
        "rmt": {"MarchenkoPastur", "fit_mp", "MPFit", "bbp_threshold", "gaussian_budget_bound"},
        "certs": {"margin_stability", "ce_path_bound", "LayerView", "CertificateResult", "CertificateInputError"},
        "pruning": {"Mask", "build_mask", "list_pruners", "magnitude", "cast_kn", "hybrid_magnitude_ser"},
        "verification": {"certify", "CertificateReport", "load_model", "load_default_dataset"},
    }
    for package, names in expected.items():
        assert names <= set(importlib.import_module(package).__all__), package


def _readme_python_block() -> str:
    text = (ROOT / "README.md").read_text()
    section = text.split("### From Python", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, "README has no python block under 'From Python'"
    return match.group(1)


def test_readme_python_example_runs(capsys):
    source = _readme_python_block()
    assert len(source.strip().splitlines()) <= 14
    namespace: dict = {}
    exec(compile(source, "README.md", "exec"), namespace)
    out = capsys.readouterr().out
    assert "certified unchanged:" in out and "sound" in out.splitlines()[-1]
    report = namespace["report"]
    assert report.calibration[0].layer == "blocks.3.mlp.fc2"
