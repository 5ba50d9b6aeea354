"""Reference numbers parsed from the shipped data README (``figures/data/paper/README.md``).

The tests compare the fits computed from the ledgers with these published numbers; nothing here
is computed from the ledgers.  The README writes negative numbers with a Unicode minus sign.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from figures.paper_ledgers import paper_data_dir

_NUM = r"([+\-−]?\d+(?:\.\d+)?)"


def _float(text: str) -> float:
    return float(text.replace("−", "-"))


def readme_text() -> str:
    return (paper_data_dir() / "README.md").read_text(encoding="utf-8")


@dataclass(frozen=True)
class Figure2Reference:
    sparsity: float
    slope: float
    intercept: float
    r: float
    fit_at_start: float
    fit_at_end: float
    legend: str


def figure2_reference() -> dict[float, Figure2Reference]:
    """The "Numbers to check against" table of section 3, keyed by sparsity."""
    rows = re.findall(r"^\| (0\.\d\d) \| " + r" \| ".join([_NUM] * 5) + r" \| (OLS: [^|]+?) \|$", readme_text(), re.M)
    return {float(r[0]): Figure2Reference(float(r[0]), *map(_float, r[1:6]), r[6]) for r in rows}


def figure2_raw_intercepts() -> tuple[float, ...]:
    match = re.search(r"intercepts become\s+" + _NUM + r", " + _NUM + r" and " + _NUM, readme_text())
    return tuple(_float(g) for g in match.groups())


def figure2_axis_limits() -> dict[str, tuple[float, float]]:
    """``x`` and ``y, s=...`` limits of section 3 ("Axis limits")."""
    text = readme_text()
    out = {"x": tuple(map(_float, re.search(r"\* x: \[" + _NUM + ", " + _NUM + r"\] M", text).groups()))}
    for s, lo, hi in re.findall(r"\* y, s=(0\.\d\d): \[" + _NUM + ", " + _NUM + r"\]", text):
        out[s] = (_float(lo), _float(hi))
    return out


@dataclass(frozen=True)
class Figure3Reference:
    slope: float
    intercept: float
    intercept_raw: float
    r: float
    fit_at_start: float
    fit_at_end: float
    labels: tuple[str, ...]
    table_rows: tuple[int, ...]
    params_m: tuple[float, ...]
    drops: tuple[float, ...]


def figure3_reference() -> Figure3Reference:
    """Section 4: the 14-row table and the "Numbers to check against" bullets."""
    text = readme_text()
    section = text[text.index("## 4. Figure 3"):]
    rows = re.findall(r"^\| ([A-Za-z0-9\-:+ ]+?) \| (\d+)[^|]* \| (\d+\.\d) \| (\d\.\d\d) \| [oDs] \|", section, re.M)
    slope = _float(re.search(r"slope = \*\*" + _NUM, section).group(1))
    intercept, raw = re.search(r"intercept = \*\*" + _NUM + r"\*\* \(drop at 1 M params; " + _NUM, section).groups()
    r = _float(re.search(r"Pearson R = " + _NUM, section).group(1))
    start, end = re.search(r"fit value " + _NUM + r" at [\d.]+ M and " + _NUM, section).groups()
    return Figure3Reference(
        slope=slope, intercept=_float(intercept), intercept_raw=_float(raw), r=r, fit_at_start=_float(start),
        fit_at_end=_float(end), labels=tuple(x[0] for x in rows), table_rows=tuple(int(x[1]) for x in rows),
        params_m=tuple(float(x[2]) for x in rows), drops=tuple(float(x[3]) for x in rows),
    )
