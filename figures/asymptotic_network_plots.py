"""Figures of the network experiments E6–E9, E11 (THEORY.md 10), drawn from an ExperimentResult's series.

* E6: mean ``|r_N(theta)|`` per ``theta`` and the reward ``lambda ||R||_F^2`` against ``N`` (log-log).
* E7: mean ``|total remainder|`` against ``N``.
* E8: bulk edge ``s_{r0+1}``, ``2 sqrt(g_hat)``, ``||R_t||_F`` and ``eps_theta`` against the training step, per ``N``.
* E9: failure rate of ``max|R| <= t`` and exact-recovery rate per configuration.
* E11: ``b_{N,1/N}(T_N)``, mean ``|dL_unreg|`` and the regularised remainder against ``N``.

Matplotlib's Agg canvas is used directly (no pyplot state), as in :mod:`figures.esd_plot`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from matplotlib.figure import Figure

if TYPE_CHECKING:  # figures only draw results; they never import the experiments that make them
    from verification.asymptotics.result import ExperimentResult


__all__ = ["NETWORK_DRAWERS"]


def _loglog_vs_n(ax, series: dict, keys: list[tuple[str, str]]) -> None:
    N = np.asarray(series["N"])
    for key, label in keys:
        values = np.asarray(series[key], dtype=np.float64)
        ax.loglog(N, np.where(values > 0, values, np.nan), marker="o", label=label)
    ax.set_xlabel("N")
    ax.legend(fontsize=7)


def _draw_e6(fig: Figure, result: ExperimentResult) -> None:
    ax = fig.add_subplot(1, 1, 1)
    keys = [(k, "mean |r_N|, theta=" + k.rsplit("_", 1)[1]) for k in result.series
            if k.startswith("mean_abs_remainder")]
    _loglog_vs_n(ax, result.series,
                 keys + [("penalty_mean", "lambda ||R||_F^2"), ("bound_mean", "SOUND bound (theta=0)")])
    ax.set_title("E6: remainder of the loss reduction vs N")


def _draw_e7(fig: Figure, result: ExperimentResult) -> None:
    ax = fig.add_subplot(1, 1, 1)
    _loglog_vs_n(ax, result.series, [("mean_abs_total_remainder", "mean |total remainder|")])
    ax.set_title("E7: telescoping remainder vs N")


def _draw_e11(fig: Figure, result: ExperimentResult) -> None:
    ax = fig.add_subplot(1, 1, 1)
    _loglog_vs_n(ax, result.series, [("b_mean", "b_(N,1/N)(T_N)"), ("mean_abs_ce_change", "mean |dL_unreg|"),
                                     ("mean_abs_remainder", "mean |regularised remainder|")])
    ax.set_title("E11: growing sets |T_N| = N")


def _draw_e8(fig: Figure, result: ExperimentResult) -> None:
    series = result.series
    Ns = sorted({k.split("_")[0] for k in series if k.startswith("N") and k[1:].split("_")[0].isdigit()})
    panels = [("bulk_edge", "bulk edge s_(r0+1)"), ("frob_R", "||R_t||_F"), ("eps_0.99", "eps_theta (theta=0.99)")]
    steps = np.asarray(series["steps"], dtype=np.float64)
    x = np.maximum(steps, 1.0)
    for i, (key, title) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), i + 1)
        for n in Ns:
            values = np.asarray(series[f"{n}_{key}"], dtype=np.float64)
            ax.semilogy(x, np.where(values > 0, values, np.nan), marker="o", label=n.replace("N", "N="))
            if key == "bulk_edge":
                edge = 2.0 * np.sqrt(np.asarray(series[f"{n}_g_hat"], dtype=np.float64))
                ax.semilogy(x, np.where(edge > 0, edge, np.nan), linestyle=":", color="gray")
        ax.set_xscale("symlog", linthresh=100.0)
        ax.set_xlabel("training step t")
        ax.set_title(title, fontsize=9)
        ax.legend(fontsize=7)
    fig.suptitle("E8: collapse under L_CE + lambda ||W2||_F^2 (dotted: 2 sqrt(g_hat))", fontsize=10)


def _draw_e9(fig: Figure, result: ExperimentResult) -> None:
    ax = fig.add_subplot(1, 1, 1)
    labels = result.series.get("config_labels_index", [])
    idx = np.arange(len(result.series["event_failure_rate"]))
    ax.bar(idx - 0.2, result.series["event_failure_rate"], width=0.4, label="P(max|R| > t)")
    ax.bar(idx + 0.2, 1.0 - np.asarray(result.series["recovery_rate"]), width=0.4, label="P(no exact recovery)")
    ax.axhline(0.05, color="black", linestyle="--", linewidth=0.8, label="delta")
    ax.set_xticks(idx)
    ax.set_xticklabels([f"#{int(i)}" for i in (labels or idx)], fontsize=7)
    ax.set_xlabel("configuration (N, g, magnitudes)")
    ax.legend(fontsize=7)
    ax.set_title("E9: entrywise thresholding (OR1 Theorem 3.20)")


#: The figure of each network experiment, drawn on a blank figure by :func:`figures.asymptotic_plots.plot_experiment`.
NETWORK_DRAWERS = {"E6": _draw_e6, "E7": _draw_e7, "E8": _draw_e8, "E9": _draw_e9, "E11": _draw_e11}
