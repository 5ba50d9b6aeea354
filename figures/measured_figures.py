"""The size-trend figures drawn from our own measured ledger (:mod:`verification.models.measured_trend`).

* ``measured_figure2.png/.pdf`` — the Figure 2 analogue: three panels ``s = 0.50 / 0.60 / 0.70``,
  signed ``Delta top-1 = post-FT - dense`` (pp) after Hybrid Magnitude–SER against the dense
  parameter count (millions, log x), one marker/colour per seed, the dashed OLS line on
  ``log10(params)`` over all seeds pooled, slope per decade and ``R`` in the legend;
* ``measured_figure3.png/.pdf`` — the Figure 3 analogue: the unsigned drop ``dense - post-FT`` after
  CAST 2:4 + the same keep-FT budget, labelled by model, with its OLS line;
* ``measured_budget.png/.pdf`` — ``sum over layers of B_T`` (each ``L_s`` a finite-difference
  ESTIMATE, so the sum is an estimate, not a certificate) of each Hybrid mask against the parameters;
* ``measured_fits.json`` — every fit pooled over seeds, per seed (mean and sd over seeds), with a
  percentile bootstrap over points, and the comparison with the paper's slope signs: ``agrees``
  when the measured slope has the paper's sign and its bootstrap interval excludes 0,
  ``disagrees`` when it has the opposite sign and the interval excludes 0, else ``inconclusive``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from .figure_files import new_figure, save_png_pdf
from .measured_rows import CAST, HYBRID, Measurement, MeasuredRow
from .paper_ledgers import FIGURE2_SPARSITIES, figure2_points, figure3_points
from .size_trend import TrendFit, bootstrap_trend, fit_log_trend, legend_text, seed_spread

__all__ = ["MeasuredFigures", "trend_summary", "verdict", "write_measured_figures"]

_SEED_STYLE = (("o", "#1f77b4"), ("s", "#ff7f0e"), ("^", "#2ca02c"), ("D", "#d62728"), ("v", "#9467bd"))
BUDGET_LABEL = "Σ over layers of $B_T$ (ESTIMATE: finite-difference $L_s$; not a certificate)"


@dataclass(frozen=True)
class MeasuredFigures:
    """Written files and the JSON payload of :func:`write_measured_figures`."""

    files: tuple[Path, ...]
    fits: dict[str, Any]

    def summary_lines(self) -> list[str]:
        lines = []
        for key, entry in self.fits["trends"].items():
            pooled, boot, spread = entry["pooled"], entry["bootstrap"], entry["seed_spread"]
            sd = "n/a (one seed)" if spread["slope_sd"] is None else f"{spread['slope_sd']:.3f}"
            lines.append(
                f"{key}: slope {pooled['slope']:+.3f} pp/decade (95% bootstrap [{boot['slope_low']:+.3f}, "
                f"{boot['slope_high']:+.3f}]; per-seed {spread['slope_mean']:+.3f} ± {sd}), "
                f"R {pooled['r']:+.3f} [{boot['r_low']:+.3f}, {boot['r_high']:+.3f}], n={pooled['n']}"
                + (f"; paper {entry['paper_slope']:+.3f} -> {entry['verdict']}" if "paper_slope" in entry else "")
            )
        return lines


def verdict(paper_slope: float, low: float, high: float) -> str:
    """``agrees`` / ``disagrees`` / ``inconclusive`` (module docstring) from the paper's slope and an interval."""
    if low > 0 or high < 0:
        return "agrees" if np.sign(low) == np.sign(paper_slope) else "disagrees"
    return "inconclusive"


def trend_summary(rows: Sequence[MeasuredRow], y: Callable[[MeasuredRow], float], *, resamples: int = 2000,
                  seed: int = 0) -> dict[str, Any]:
    """Pooled OLS fit, bootstrap interval and per-seed spread of ``y(row)`` on ``log10(params_m)``."""
    params = [r.params_m for r in rows]
    values = [y(r) for r in rows]
    per_seed = {}
    for s in sorted({r.seed for r in rows}):
        mine = [r for r in rows if r.seed == s]
        if len({r.params for r in mine}) >= 2 and len(mine) >= 3:
            per_seed[s] = fit_log_trend([r.params_m for r in mine], [y(r) for r in mine])
    return {
        "pooled": fit_log_trend(params, values).to_json(),
        "bootstrap": bootstrap_trend(params, values, resamples=resamples, seed=seed).to_json(),
        "seed_spread": seed_spread(per_seed).to_json(),
    }


def _rows(measurement: Measurement, method: str, sparsity: float | None = None) -> list[MeasuredRow]:
    return [r for r in measurement.rows
            if r.method == method and (sparsity is None or np.isclose(r.sparsity, sparsity))]


def _scatter_by_seed(ax, rows: Sequence[MeasuredRow], y: Callable[[MeasuredRow], float]) -> None:
    for i, s in enumerate(sorted({r.seed for r in rows})):
        marker, colour = _SEED_STYLE[i % len(_SEED_STYLE)]
        mine = [r for r in rows if r.seed == s]
        ax.scatter([r.params_m for r in mine], [y(r) for r in mine], s=60, marker=marker, c=colour,
                   edgecolors="black", linewidths=0.5, label=f"seed {s}")


def _fit_line(ax, rows: Sequence[MeasuredRow], fit, label: str | None) -> None:
    params = np.array([r.params_m for r in rows])
    x = np.logspace(np.log10(0.7 * params.min()), np.log10(1.3 * params.max()), 100)
    ax.plot(x, fit.predict(x), linestyle="--", color="#808080", linewidth=1.2, label=label)


def _log_axis(ax, which: str) -> None:
    """Log scale on ``which`` (``x``/``y``) labelled at 1, 2, 5 times powers of ten in plain numbers."""
    getattr(ax, f"set_{which}scale")("log")
    axis = getattr(ax, f"{which}axis")
    axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    axis.set_minor_formatter(NullFormatter())


def _paper_slopes() -> dict[str, float]:
    slopes = {}
    for s in FIGURE2_SPARSITIES:
        pts = figure2_points(s)
        slopes[f"hybrid_s{s:.2f}"] = fit_log_trend([p.params_m for p in pts], [p.delta_top1_pp for p in pts]).slope
    pts = figure3_points()
    slopes["cast_2:4_drop"] = fit_log_trend([p.params_m for p in pts], [p.drop_pp for p in pts]).slope
    return slopes


def _draw_hybrid(measurement: Measurement, sparsities: list[float], out: Path) -> tuple[tuple[Path, Path], dict]:
    trends = {}
    fig = new_figure(figsize=(5.3 * len(sparsities), 5), layout="tight")
    axes = np.atleast_1d(fig.subplots(1, len(sparsities)))
    for ax, s in zip(axes, sparsities):
        rows = _rows(measurement, HYBRID, s)
        key = f"hybrid_s{s:.2f}"
        trends[key] = trend_summary(rows, lambda r: r.delta_top1_pp)
        fit = TrendFit(**trends[key]["pooled"])
        _scatter_by_seed(ax, rows, lambda r: r.delta_top1_pp)
        ax.grid(True, which="both", color="#b0b0b0", linewidth=0.5, alpha=0.25)
        _fit_line(ax, rows, fit, legend_text(fit))
        ax.axhline(0.0, color="black", linestyle=":", linewidth=0.6, alpha=0.5)
        _log_axis(ax, "x")
        ax.set_title(f"s={s:.2f} (Hybrid Magnitude–SER, measured)", fontsize=12)
        ax.set_xlabel("Dense parameter count (millions, log scale)")
        ax.legend(loc="lower right", fontsize=8)
    axes[0].set_ylabel("ΔTop-1 (post-FT − dense, pp)")
    return save_png_pdf(fig, out, "measured_figure2", dpi=150, tight=True), trends


def _draw_cast(measurement: Measurement, out: Path) -> tuple[tuple[Path, Path], dict]:
    rows = _rows(measurement, CAST)
    trend = trend_summary(rows, lambda r: r.drop_pp)
    fit = TrendFit(**trend["pooled"])
    fig = new_figure(figsize=(6.6, 4.2), layout="constrained")
    ax = fig.add_subplot(1, 1, 1)
    ax.set_axisbelow(True)
    ax.grid(True, which="both", color="#d0d0d0", linewidth=0.6, alpha=0.75)
    _scatter_by_seed(ax, rows, lambda r: r.drop_pp)
    first = min(r.seed for r in rows)
    for r in rows:
        if r.seed == first:
            ax.annotate(r.model, (r.params_m, r.drop_pp), xytext=(5, 3), textcoords="offset points", fontsize=7.2,
                        color="#222222")
    _fit_line(ax, rows, fit, legend_text(fit))
    ax.axhline(0.0, color="black", linestyle=":", linewidth=0.6, alpha=0.5)
    _log_axis(ax, "x")
    ax.set_xlabel("Original dense parameters (millions)")
    ax.set_ylabel("Top-1 drop from dense (percentage points)")
    ax.set_title("CAST 2:4 + keep-FT (measured)", fontsize=10)
    ax.legend(loc="upper right", fontsize=8, framealpha=0.95)
    return save_png_pdf(fig, out, "measured_figure3", dpi=200, tight=False), trend


def _draw_budget(measurement: Measurement, sparsities: list[float], out: Path) -> tuple[tuple[Path, Path], dict]:
    fig = new_figure(figsize=(6.6, 4.6), layout="constrained")
    ax = fig.add_subplot(1, 1, 1)
    budgets = {}
    for i, s in enumerate(sparsities):
        rows = [r for r in _rows(measurement, HYBRID, s) if r.budget_sum is not None]
        marker, colour = _SEED_STYLE[i % len(_SEED_STYLE)]
        ax.scatter([r.params_m for r in rows], [r.budget_sum for r in rows], s=50, marker=marker, c=colour,
                   edgecolors="black", linewidths=0.5, label=f"Hybrid s={s:.2f}")
        budgets[f"hybrid_s{s:.2f}"] = {
            **trend_summary(rows, lambda r: r.budget_sum),
            "labels": sorted({r.budget_label for r in rows}),
            "points": [{"seed": r.seed, "model": r.model, "params": r.params,
                        "budget_sum": r.budget_sum} for r in rows],
        }
    _log_axis(ax, "x")
    _log_axis(ax, "y")
    ax.grid(True, which="both", color="#d0d0d0", linewidth=0.5, alpha=0.6)
    ax.set_xlabel("Dense parameter count (millions, log scale)")
    ax.set_ylabel(BUDGET_LABEL, fontsize=8)
    ax.set_title("Data-path budget of the Hybrid masks on the dense models (ESTIMATE)", fontsize=9)
    ax.legend(fontsize=8)
    return save_png_pdf(fig, out, "measured_budget", dpi=200, tight=False), budgets


def write_measured_figures(measurement: Measurement, out: str | Path) -> MeasuredFigures:
    """Draw the three measured figures (PNG + PDF) and write ``measured_fits.json`` into ``out``."""
    out = Path(out)
    sparsities = sorted({r.sparsity for r in measurement.rows if r.method == HYBRID})
    files2, trends = _draw_hybrid(measurement, sparsities, out)
    files3, trends["cast_2:4_drop"] = _draw_cast(measurement, out)
    files_budget, budgets = _draw_budget(measurement, sparsities, out)
    paper = _paper_slopes()
    for key, entry in trends.items():
        if key in paper:
            entry["paper_slope"] = paper[key]
            entry["verdict"] = verdict(paper[key], entry["bootstrap"]["slope_low"], entry["bootstrap"]["slope_high"])
    cast_macs = sorted({round(r.mac_reduction_pct, 2) for r in _rows(measurement, CAST)
                        if r.mac_reduction_pct is not None})
    fits = {
        "conventions": {"hybrid": "delta_top1_pp = post-FT - dense (signed, Figure 2)",
                        "cast": "drop_pp = dense - post-FT (unsigned, Figure 3)", "x": "log10(params in millions)",
                        "verdict": "agrees/disagrees only when the 95% bootstrap interval of the slope excludes 0"},
        "trends": trends,
        "budget_trends": budgets,
        "budget_label": "estimate (every L_s is a finite-difference estimate)",
        "cast_mac_reduction_pct": cast_macs,
        "cast_note": "our CAST 2:4 rows prune only the block Linears; their whole-model MAC reduction is listed above "
                     "(the paper's Figure 3 uses rows at 48.5-50 %)",
        "ledger_record": {k: measurement.record.get(k) for k in ("config", "timing", "date", "versions")},
    }
    json_path = out / "measured_fits.json"
    json_path.write_text(json.dumps(fits, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return MeasuredFigures(files=(*files2, *files3, *files_budget, json_path), fits=fits)
