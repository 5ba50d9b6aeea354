"""Every script under benchmarks/ imports names that exist: the benchmarks are not run by the test suite, so a moved
function (e.g. ``load_audit_sets`` leaving ``verification.cli``) would otherwise break them silently."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PROJECT = ("rmt", "certs", "pruning", "verification", "figures")
SCRIPTS = sorted((REPO / "benchmarks").glob("*.py"))


def missing_imports(source: str) -> list[str]:
    """``module.name`` of every ``from <project module> import name`` in ``source`` that does not resolve."""
    missing = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module.split(".")[0] in PROJECT:
            try:
                module = importlib.import_module(node.module)
            except ImportError:
                missing.append(node.module)
                continue
            missing += [f"{node.module}.{a.name}" for a in node.names
                        if not hasattr(module, a.name) and not _is_submodule(node.module, a.name)]
    return missing


def _is_submodule(package: str, name: str) -> bool:
    try:
        importlib.import_module(f"{package}.{name}")
    except ImportError:
        return False
    return True


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_benchmark_imports_resolve(script):
    assert missing_imports(script.read_text()) == []


def test_a_moved_name_is_caught():
    """known-bad: the import that broke benchmarks/remainder_trace.py when the CLI became argument parsing only."""
    bad = "from verification.cli.certify import load_audit_sets\nfrom rmt.no_such_module import x\n"
    assert missing_imports(bad) == ["verification.cli.certify.load_audit_sets", "rmt.no_such_module"]
    assert missing_imports("from verification.bridge.certify_folder import load_audit_sets\nimport numpy\n") == []
