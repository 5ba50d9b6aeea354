"""Write and read the measured ledger: ``<stem>.csv`` (one row per measurement) + ``<stem>.json`` (rows + record).

The CSV columns are the fields of :class:`figures.measured_rows.MeasuredRow` in order (empty cell =
``None``); the JSON holds ``{"rows": [...], "record": {...}}`` with the run record (config, seeds,
training cards, fine-tuning configs, timings, versions, date).  Figures are redrawn from either
file without retraining; a CSV given alone is read with its sibling JSON's record when present.
"""

from __future__ import annotations

import csv
import importlib.resources
import json
from dataclasses import asdict, fields
from pathlib import Path

from rmt.errors import MPCertError

from .measured_rows import Measurement, MeasuredRow

__all__ = ["LedgerError", "LEDGER_STEM", "committed_ledger_path", "write_ledger", "read_ledger"]

LEDGER_STEM = "measured_ledger"
_FIELDS = tuple(f.name for f in fields(MeasuredRow))
_INT_FIELDS = {"seed", "embed_dim", "depth", "num_heads", "params", "budget_layers"}
_STR_FIELDS = {"model", "method", "budget_label"}


class LedgerError(MPCertError):
    """A measured ledger file is missing, unreadable or lacks columns (the message names the path)."""


def committed_ledger_path() -> Path:
    """The committed full measurement shipped as package data: ``figures/data/measured/measured_ledger.csv``."""
    return Path(str(importlib.resources.files("figures"))) / "data" / "measured" / f"{LEDGER_STEM}.csv"


def write_ledger(measurement: Measurement, folder: str | Path, stem: str = LEDGER_STEM) -> tuple[Path, Path]:
    """Write ``folder/<stem>.csv`` and ``folder/<stem>.json``; return both paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    csv_path, json_path = folder / f"{stem}.csv", folder / f"{stem}.json"
    with csv_path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(_FIELDS)
        for row in measurement.rows:
            writer.writerow(["" if v is None else repr(v) if isinstance(v, float) else v for v in asdict(row).values()])
    payload = {"rows": [asdict(r) for r in measurement.rows], "record": measurement.record}
    json_path.write_text(json.dumps(payload, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return csv_path, json_path


def _parse(name: str, text):
    if text is None or text == "":
        return None
    if name in _STR_FIELDS:
        return str(text)
    return int(text) if name in _INT_FIELDS else float(text)


def _rows(records, path: Path) -> tuple[MeasuredRow, ...]:
    out = []
    for i, record in enumerate(records):
        missing = [f for f in _FIELDS if f not in record]
        if missing:
            raise LedgerError(f"ledger {str(path)!r}: row {i} lacks fields {missing}")
        try:
            out.append(MeasuredRow(**{f: _parse(f, record[f]) for f in _FIELDS}))
        except (TypeError, ValueError) as exc:
            raise LedgerError(f"ledger {str(path)!r}: row {i} is malformed ({exc})") from exc
    if not out:
        raise LedgerError(f"ledger {str(path)!r} has no rows")
    return tuple(out)


def read_ledger(path: str | Path) -> Measurement:
    """Read a ledger written by :func:`write_ledger` from its ``.csv`` or ``.json`` file."""
    path = Path(path)
    if not path.is_file():
        raise LedgerError(f"ledger {str(path)!r} does not exist")
    try:
        if path.suffix == ".json":
            payload = json.loads(path.read_text(encoding="utf-8"))
            return Measurement(rows=_rows(payload["rows"], path), record=payload.get("record", {}))
        with path.open(newline="", encoding="utf-8") as handle:
            rows = _rows(list(csv.DictReader(handle)), path)
        sibling = path.with_suffix(".json")
        record = json.loads(sibling.read_text(encoding="utf-8")).get("record", {}) if sibling.is_file() else {}
        return Measurement(rows=rows, record=record)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise LedgerError(f"ledger {str(path)!r} is not readable: {exc}") from exc
