"""Figures of a certify report (:class:`verification.bridge.certificate_report.CertificateReport`).

* ``budgets.png`` — per-layer data-path budget ``B_T(R)`` (estimate) as bars, calibration and
  held-out, with the paper's proxy ``||R||_op mean ||psi_1||_inf`` (not a bound) as markers; log scale.
* ``bound_vs_realized.png`` — log-log scatter of bound against realised value with the line
  ``y = x`` (points above it violate the estimate): per sample and layer, ``eta_s = L_s ||R psi_1(s)||_inf``
  against ``||z_S(s) - z_A(s)||_inf`` at theta = 0; per layer, ``B_T`` against ``|dCE|``.  Zero
  values cannot be drawn on a log axis; their count is in the legend.
* ``margins.png`` — histogram of the dense true margins ``|Delta_true(s)|`` of the calibration set
  with the Corollary 5.2 threshold ``2 eta_s``: per sample the largest single-layer ``2 eta_s``
  (step histogram) and its median (dashed line); a sample is at risk for a layer when its margin is
  at most that layer's ``2 eta_s``.
* ``esd/<layer>.png`` — ESD with the MP fit of each masked layer (:func:`figures.esd_plot.plot_esd`).

Drawn with matplotlib's Agg canvas directly (no pyplot state).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter

from .esd_plot import plot_esd

__all__ = ["plot_layer_budgets", "plot_bound_vs_realized", "plot_margin_histogram", "write_esd_plots",
           "write_certificate_plots"]

_DPI = 110


def _figure(width: float, height: float):
    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot(1, 1, 1)


def _save(fig, path: str | Path) -> Path:
    out = Path(path)
    fig.tight_layout()
    fig.savefig(out, dpi=_DPI, format="png")
    return out


def _positive_floor(*arrays: np.ndarray) -> float:
    values = np.concatenate([np.ravel(a) for a in arrays])
    values = values[np.isfinite(values) & (values > 0)]
    return float(values.min()) if values.size else 1e-12


def plot_layer_budgets(report, path: str | Path) -> Path:
    """Bars of ``B_T(R)`` per layer (calibration, held-out) with the proxy as markers; log y-axis."""
    layers = [a.layer for a in report.calibration]
    x = np.arange(len(layers))
    sets = [a for a in (report.calibration, report.heldout) if a]
    width = 0.8 / len(sets)
    fig, ax = _figure(max(6.4, 0.45 * len(layers) + 2), 4.2)
    floor = _positive_floor(*[[a.budget.value for a in audits] for audits in sets]) / 10
    for k, audits in enumerate(sets):
        values = np.array([max(a.budget.value, floor) for a in audits])
        ax.bar(x + (k - (len(sets) - 1) / 2) * width, values, width, label=f"B_T (estimate), {audits[0].sample_set}",
               color=("#4c72b0", "#dd8452")[k])
    ax.plot(x, [max(a.proxy, floor) for a in report.calibration], "k_", markersize=14, markeredgewidth=2,
            label="paper's proxy ||R||_op mean||psi_1||_inf (not a bound)")
    ax.set_yscale("log")
    ax.set_xticks(x)
    ax.set_xticklabels(layers, rotation=60, ha="right", fontsize=7)
    ax.set_ylabel("data-path budget")
    ax.set_title("Per-layer data-path budget B_T(R) — L_s estimated, so an estimate", fontsize=9)
    ax.legend(fontsize=7)
    return _save(fig, path)


def plot_bound_vs_realized(report, path: str | Path) -> Path:
    """Log-log scatter of bound against realised value with the ``y = x`` line (module docstring)."""
    audits = report.calibration + report.heldout
    eta = np.concatenate([a.lemma_5_1.eta for a in audits])
    change = np.concatenate([a.lemma_5_1.logit_change for a in audits])
    budgets = np.array([a.budget.value for a in audits])
    dce = np.array([a.lemma_5_1.realized for a in audits])
    sample_ok = (eta > 0) & (change > 0)
    layer_ok = (budgets > 0) & (dce > 0)
    fig, ax = _figure(5.6, 5.0)
    ax.scatter(eta[sample_ok], change[sample_ok], s=5, alpha=0.35, color="#4c72b0",
               label=f"per sample: eta_s vs ||dz||_inf ({int((~sample_ok).sum())} zero points not drawn)")
    ax.scatter(budgets[layer_ok], dce[layer_ok], s=30, marker="D", color="#c44e52",
               label=f"per layer: B_T vs |dCE| ({int((~layer_ok).sum())} zero points not drawn)")
    shown = np.concatenate([eta[sample_ok], change[sample_ok], budgets[layer_ok], dce[layer_ok]])
    lo, hi = (float(shown.min()), float(shown.max())) if shown.size else (1e-6, 1.0)
    line = np.array([lo / 2, hi * 2])
    ax.plot(line, line, "k--", linewidth=1, label="y = x (above: bound violated)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("bound (estimate; theta = 0)")
    ax.set_ylabel("realised")
    ax.set_title("Bound vs realised, all layers and sample sets", fontsize=9)
    ax.legend(fontsize=7, loc="upper left")
    return _save(fig, path)


def plot_margin_histogram(report, path: str | Path) -> Path:
    """Histogram of dense ``|Delta_true(s)|`` on the calibration set with the ``2 eta_s`` threshold."""
    audits = report.calibration
    margins = np.abs(audits[0].corollary_5_2.true_margin)
    threshold = 2.0 * np.max(np.stack([a.corollary_5_2.eta for a in audits]), axis=0)
    at_risk = np.any(np.stack([a.corollary_5_2.at_risk_true for a in audits]), axis=0)
    floor = _positive_floor(margins, threshold) / 2
    edges = np.logspace(np.log10(floor), np.log10(max(margins.max(), threshold.max(), floor * 10)), 40)
    fig, ax = _figure(6.4, 4.0)
    ax.hist(np.maximum(margins, floor), bins=edges, color="#8fb3d9", edgecolor="#5a7fa8", linewidth=0.4,
            label=f"dense margin |Delta_true(s)| ({margins.size} samples)")
    ax.hist(np.maximum(threshold, floor), bins=edges, histtype="step", color="#c0392b", linewidth=1.4,
            label="threshold 2 eta_s (largest over layers)")
    ax.axvline(float(np.median(threshold)), color="#c0392b", linestyle="--", linewidth=1.0,
               label=f"median 2 eta_s = {np.median(threshold):.3g}")
    ax.set_xscale("log")
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("margin / threshold (logit units)")
    ax.set_ylabel("samples")
    ax.set_title(f"Corollary 5.2: {int(at_risk.sum())} of {margins.size} samples at risk for some layer "
                 f"(|Delta_true| <= 2 eta_s)", fontsize=9)
    ax.legend(fontsize=7)
    return _save(fig, path)


def write_esd_plots(fits, folder: str | Path) -> list[Path]:
    """``folder/<layer>.png`` for every :class:`rmt.fit.MPFit` of ``fits`` (:func:`figures.esd_plot.plot_esd`)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    return [plot_esd(fit, folder / f"{fit.name}.png") for fit in fits]


def write_certificate_plots(report, folder: str | Path, *, esd: bool = True) -> list[Path]:
    """Write every figure of the module docstring into ``folder`` (the ESD ones only with ``esd``); return their
    paths."""
    folder = Path(folder)
    paths = []
    if report.calibration:
        paths.append(plot_layer_budgets(report, folder / "budgets.png"))
        paths.append(plot_bound_vs_realized(report, folder / "bound_vs_realized.png"))
        paths.append(plot_margin_histogram(report, folder / "margins.png"))
    if esd and report.fits:
        paths += write_esd_plots(report.fits, folder / "esd")
    return paths
