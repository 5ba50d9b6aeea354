"""The experiment registry and ``mpcert verify --asymptotic`` (ledger rows, JSON records, figures, exit status)."""

from __future__ import annotations

import json

import pytest

from rmt.errors import InvalidParameterError
from verification import cli
from verification.asymptotics import registry
from verification.asymptotics.ledger import experiment_record, format_experiment_row, violation_lines
from verification.asymptotics.noise_experiments import run_e10
from verification.asymptotics.registry import EXPERIMENTS, SPECTRAL_EXPERIMENTS, ExperimentRun, run_experiment
from verification.theorems.ledger import HEADER


def test_registry_lists_every_spectral_experiment_in_theory_order():
    assert set(SPECTRAL_EXPERIMENTS) == {"E1", "E2", "E3", "E4", "E5", "E10", "E12", "E13"}
    assert set(SPECTRAL_EXPERIMENTS) <= set(EXPERIMENTS)
    numbers = [int(k[1:]) for k in EXPERIMENTS]
    assert numbers == sorted(numbers)


@pytest.mark.parametrize(("experiment_id", "size"), [("E99", "ci"), ("E10", "medium")])
def test_run_experiment_rejects_unknown_id_and_size(experiment_id, size):
    with pytest.raises(InvalidParameterError):
        run_experiment(experiment_id, size)


def test_ledger_row_has_the_verify_columns_and_counts():
    run = ExperimentRun(run_e10("ci", 0), 1.25)
    row = format_experiment_row(run)
    assert len(row) == len(HEADER)
    fields = row.split()
    assert fields[0] == "E10" and "asym" in fields
    assert int(fields[-5]) == len(run.result.assertions) and int(fields[-4]) == 0
    assert violation_lines(run) == []


def test_failed_assertions_become_violation_lines_and_json():
    run = ExperimentRun(run_e10("ci", 0, mutation="fan-in-variance"), 0.5)
    lines = violation_lines(run)
    assert len(lines) == len(run.result.violations) > 0
    assert all(line.startswith("VIOLATION E10: ") for line in lines)
    record = experiment_record(run)
    json.dumps(record, allow_nan=False)  # non-finite values are turned into null
    assert record["passed"] is False and record["violations"] == len(lines)
    assert {a["name"] for a in record["assertions"] if not a["ok"]} == {a.name for a in run.result.violations}


def test_verify_asymptotic_writes_rows_json_and_figures(tmp_path, capsys):
    out = tmp_path / "ledger.json"
    figs = tmp_path / "figs"
    status = cli.main(["verify", "--asymptotic", "E10", "E12", "--skip-checks", "--json", str(out),
                       "--figures", str(figs)])
    assert status == 0
    printed = capsys.readouterr().out
    assert printed.splitlines()[0] == HEADER
    assert any(line.startswith("E10 ") for line in printed.splitlines())
    payload = json.loads(out.read_text())
    assert payload["checks"] == []
    assert [e["experiment"] for e in payload["experiments"]] == ["E10", "E12"]
    assert all(e["passed"] for e in payload["experiments"])
    assert sorted(p.name for p in figs.iterdir()) == ["E10_ci.png", "E12_ci.png"]
    assert all(e["figure"].endswith(f"{e['experiment']}_ci.png") for e in payload["experiments"])


def test_verify_asymptotic_exits_1_on_a_failing_experiment(monkeypatch, capsys):
    monkeypatch.setitem(registry.EXPERIMENTS, "E10", lambda size, seed: run_e10(size, seed, "fan-in-variance"))
    assert cli.main(["verify", "--asymptotic", "E10", "--skip-checks"]) == 1
    assert "VIOLATION E10" in capsys.readouterr().out


@pytest.mark.parametrize("argv", [["verify", "--asymptotic", "E99", "--skip-checks"], ["verify", "--skip-checks"]])
def test_verify_asymptotic_bad_arguments_exit_2(argv, capsys):
    assert cli.main(argv) == 2
    assert "error" in capsys.readouterr().err
