"""One figure per finite-N experiment of THEORY.md 10, drawn from the result's measured series.

* E1 — eigenvalue ESD at each N (histogram) with the Marchenko–Pastur density;
* E2 — relative top-edge error against ``min(N, M)`` with the ``+-3 min(N, M)^(-2/3)`` envelope;
* E3 — outlier location, inverse-BBP estimate and the truth against N; E4 — observed vs predicted outliers;
* E5 — the collapse series (``||R||_op``, spike error, tail energy, projector distance) against N, log-log,
  and the singular spectra at each N;
* E10 — sample vs predicted cross-term variance; E12 — CDFs of ``nu_W``, ``nu_R`` and the MP singular law;
* E13 — failure frequency against ``d_2(N) = 1/N``;
* any other experiment (e.g. the network experiments) — each series of the same length as ``N`` (or ``t``)
  against it.

Drawn with matplotlib's Agg canvas directly (no pyplot state), like :mod:`figures.esd_plot`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from figures.asymptotic_network_plots import NETWORK_DRAWERS
from rmt.mp_law import MarchenkoPastur, MarchenkoPasturSingular

if TYPE_CHECKING:  # figures only draw results; they never import the experiments that make them
    from verification.asymptotics.result import ExperimentResult

__all__ = ["plot_experiment"]


def _e1(fig: Figure, s: dict) -> None:
    ax = fig.add_subplot(1, 1, 1)
    law = MarchenkoPastur(s["plot_ratio"][0], s["plot_sigma2"][0])
    for key in sorted((k for k in s if k.startswith("eig_N")), key=lambda k: int(k[5:])):
        ax.hist(s[key], bins=40, density=True, histtype="step", linewidth=1.2, label=f"ESD, N={key[5:]}")
    grid = np.linspace(law.lambda_minus, law.lambda_plus, 400)[1:-1]
    ax.plot(grid, law.pdf(grid), color="black", linewidth=1.6, label=f"MP(c={law.ratio:g}, sigma^2={law.sigma2:g})")
    ax.set_xlabel(r"eigenvalue of $W^\top W/N$")
    ax.set_ylabel("density")


def _e2(fig: Figure, s: dict) -> None:
    ax = fig.add_subplot(1, 1, 1)
    k = np.asarray(s["min_dim"])
    ax.scatter(k, s["edge_rel_error"], s=10, label=r"$\lambda_{max}/\lambda_+ - 1$")
    grid = np.geomspace(k.min(), k.max(), 100)
    ax.plot(grid, 3 * grid ** (-2 / 3), "k--", label=r"$\pm 3\min(N,M)^{-2/3}$")
    ax.plot(grid, -3 * grid ** (-2 / 3), "k--")
    ax.set_xscale("log")
    ax.set_xlabel("min(N, M)")


def _e3(fig: Figure, s: dict) -> None:
    ax, ax2 = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    n, spike = np.asarray(s["N"]), np.asarray(s["spike"])
    g = np.asarray(s["g"])
    for gv in np.unique(g):
        for sv in np.unique(spike[g == gv]):
            sel = (g == gv) & (spike == sv)
            line, = ax.plot(n[sel], np.asarray(s["estimate_mean"])[sel], "o-", label=f"g={gv:g}, sigma={sv:.3g}")
            ax.plot(n[sel], np.asarray(s["s_mean"])[sel], "x:", color=line.get_color())
            ax.axhline(sv, color=line.get_color(), linewidth=0.6)
            ax2.plot(n[sel], np.asarray(s["rmse_sqrt_n_over_g"])[sel], "o-", color=line.get_color())
    ax.set_xscale("log")
    ax.set_xlabel("N")
    ax.set_ylabel("inverse-BBP estimate (o), raw outlier (x), truth (line)")
    ax2.set_xscale("log")
    ax2.set_xlabel("N")
    ax2.set_ylabel(r"RMSE of $\hat\sigma$ times $\sqrt{N/g}$")


def _e4(fig: Figure, s: dict) -> None:
    ax = fig.add_subplot(1, 1, 1)
    ax.scatter(s["predicted_location"], s["s_mean"], label="outlier: observed vs rho(theta)")
    ax.scatter(s["spike"], s["estimate_mean"], marker="x", label="theta_hat vs theta")
    lo = min(min(s["spike"]), min(s["s_mean"]))
    hi = max(max(s["predicted_location"]), max(s["s_mean"]))
    ax.plot([lo, hi], [lo, hi], "k--", linewidth=0.8)
    ax.set_xlabel("prediction / truth")
    ax.set_ylabel("measured (mean over replicates)")


def _e5(fig: Figure, s: dict) -> None:
    ax = fig.add_subplot(1, 2, 1)
    for key in ("mean_r_op", "mean_spike_error", "mean_tail_energy", "mean_projector_distance",
                "mean_estimator_error"):
        ax.plot(s["N"], s[key], "o-", label=key[5:])
    ax.plot(s["N"], s["predicted_r_op"], "k--", label="2 sqrt(g_N)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("N")
    ax2 = fig.add_subplot(1, 2, 2)
    for key in sorted((k for k in s if k.startswith("sv_N")), key=lambda k: int(k[4:])):
        vals = np.sort(s[key])[::-1]
        ax2.semilogy(np.arange(1, vals.size + 1) / vals.size, vals, label=f"N={key[4:]}")
    ax2.set_xlabel("i / N")
    ax2.set_ylabel("s_i(W)")
    ax2.legend(fontsize=7)


def _e10(fig: Figure, s: dict) -> None:
    ax = fig.add_subplot(1, 1, 1)
    ax.plot(s["N"], s["sample_variance"], "o", label="sample variance")
    ax.plot(s["N"], s["predicted_variance"], "k--", label="g ||S||_F^2 / N")
    ax.set_xlabel("N")


def _e12(fig: Figure, s: dict) -> None:
    ax = fig.add_subplot(1, 1, 1)
    for key, label in (("sv_W", "nu_W (S + R)"), ("sv_R", "nu_R")):
        vals = np.sort(s[key])
        ax.step(vals, np.arange(1, vals.size + 1) / vals.size, where="post", label=label)
    n, m = (int(v) for v in s["plot_shape"])
    law = MarchenkoPasturSingular(m / n, s["plot_g"][0] / n, n)
    grid = np.linspace(*law.edges(), 300)
    ax.plot(grid, law.cdf(grid), "k--", label="MP singular law")
    ax.set_xlabel("singular value")
    ax.set_ylabel("CDF")


def _e13(fig: Figure, s: dict) -> None:
    ax = fig.add_subplot(1, 1, 1)
    n = np.asarray(s["N"])
    ax.plot(n, s["failure_rate"], "o-", label="failure frequency")
    ax.plot(n, 1.0 / n, "k--", label="d_2(N) = 1/N")
    ax.set_xscale("log")
    ax.set_xlabel("N")


def _generic(fig: Figure, s: dict) -> None:
    ax = fig.add_subplot(1, 1, 1)
    axis = next((k for k in ("N", "t") if k in s), None)
    x = s[axis] if axis else None
    for key, values in s.items():
        if key == axis or (x is not None and len(values) != len(x)):
            continue
        ax.plot(x if x is not None else np.arange(len(values)), values, "o-", label=key)
    ax.set_xlabel(axis or "index")


_PLOTTERS = {"E1": _e1, "E2": _e2, "E3": _e3, "E4": _e4, "E5": _e5, "E10": _e10, "E12": _e12, "E13": _e13}


def plot_experiment(result: ExperimentResult, directory: str | Path, *, dpi: int = 110) -> ExperimentResult:
    """Draw ``result``'s figure as ``<directory>/<id>_<size>.png``; returns the result with ``figure`` set."""
    out_dir = Path(directory)
    out_dir.mkdir(parents=True, exist_ok=True)
    wide = result.experiment in ("E3", "E5", "E8")
    fig = Figure(figsize=(10.0 if wide else 6.4, 4.2))
    FigureCanvasAgg(fig)
    if result.experiment in NETWORK_DRAWERS:
        NETWORK_DRAWERS[result.experiment](fig, result)
    else:
        _PLOTTERS.get(result.experiment, _generic)(fig, result.series)
    for ax in fig.axes:
        if ax.get_legend_handles_labels()[0] and ax.get_legend() is None:
            ax.legend(fontsize=7)
    status = "passed" if result.passed else f"{len(result.violations)} violation(s)"
    fig.suptitle(f"{result.experiment} ({result.size}): {result.title} — {status}", fontsize=9)
    fig.tight_layout()
    path = out_dir / f"{result.experiment}_{result.size}.png"
    fig.savefig(path, dpi=dpi, format="png")
    return dataclasses.replace(result, figure=str(path))
