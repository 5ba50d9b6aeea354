"""One figure per layer: the empirical spectral distribution with the fitted MP density (ALGORITHMS.md 1).

The histogram is of the eigenvalues ``lambda_i = s_i^2 / n`` (the ``n``-normalisation of
ALGORITHMS.md 1.3, so the fitted law is ``MarchenkoPastur(gamma, sigma2)`` with no atom); the curve
is its density, the dashed line the fitted edge ``lambda_plus`` (with the Tracy–Widom margin), the
dotted line the asymptotic edge, the red dash-dotted line (calibrated count only) the threshold of the
spike test's last step (:mod:`rmt.spike_test`), and red ticks mark the spikes.  The x-axis shows the bulk region
``[0, 1.6 lambda_plus]``; spikes beyond it are listed in the legend.  Drawn with matplotlib's Agg
canvas directly (no pyplot state), so it is safe in any process.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from rmt.fit import MPFit
from rmt.mp_law import MarchenkoPastur

__all__ = ["plot_esd"]

_X_SPAN = 1.6  # x-axis upper limit in units of lambda_plus
_MAX_LISTED = 5


def plot_esd(fit: MPFit, path: str | Path, *, dpi: int = 110) -> Path:
    """Draw the ESD of ``fit`` with its fitted MP density and save it as a PNG at ``path``."""
    lam = np.sort(fit.singular_values**2 / fit.n)
    spikes = np.asarray(fit.spikes, dtype=np.float64) ** 2 / fit.n
    x_max = _X_SPAN * max(fit.lambda_plus, fit.lambda_plus_asymptotic)
    shown = lam[lam <= x_max]

    fig = Figure(figsize=(6.4, 4.0))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    bins = int(np.clip(np.sqrt(lam.size) * 2, 20, 120))
    # weights make the bars a density of the whole spectrum (mass of hidden spikes excluded)
    heights, _, _ = ax.hist(shown, bins=bins, range=(0.0, x_max),
                            weights=np.full(shown.size, bins / (x_max * lam.size)),
                            color="#8fb3d9", edgecolor="#5a7fa8", linewidth=0.4, label=f"ESD ({lam.size} eigenvalues)")
    law = MarchenkoPastur(fit.gamma, fit.sigma2)
    grid = np.linspace(law.lambda_minus, law.lambda_plus, 402)[1:-1]  # open interval: pdf may diverge at 0
    ax.plot(grid, law.pdf(grid), color="#c0392b", linewidth=1.6,
            label=f"MP fit: $\\sigma^2$={fit.sigma2:.3g}, $\\gamma$={fit.gamma:.3g}")
    ax.axvline(fit.lambda_plus, color="black", linestyle="--", linewidth=1.0,
               label=f"edge $\\lambda_+$={fit.lambda_plus:.3g} ($\\sigma_+$={fit.sigma_plus:.3g})")
    ax.axvline(fit.lambda_plus_asymptotic, color="gray", linestyle=":", linewidth=1.0, label="asymptotic edge")
    if fit.spike_test == "calibrated":
        ax.axvline(fit.spike_threshold**2 / fit.n, color="#c0392b", linestyle="-.", linewidth=1.0,
                   label=f"spike-test threshold (TW, $\\alpha$={fit.spike_alpha:g})")
    inside = spikes[spikes <= x_max]
    if inside.size:
        ax.plot(inside, np.zeros_like(inside), "|", color="red", markersize=16, markeredgewidth=2,
                label=f"spikes ({fit.n_spikes})")
    beyond = spikes[spikes > x_max]
    if beyond.size:
        listed = ", ".join(f"{v:.3g}" for v in beyond[:_MAX_LISTED]) + (" ..." if beyond.size > _MAX_LISTED else "")
        ax.plot([], [], " ", label=f"{beyond.size} spike(s) beyond axis: $\\lambda$ = {listed}")
    ax.set_xlim(0.0, x_max)
    ax.set_ylim(0.0, 1.35 * max(float(np.max(heights)), float(np.median(law.pdf(grid)))))
    ax.set_xlabel(r"eigenvalue $\lambda = s^2 / n$")
    ax.set_ylabel("density")
    ax.set_title(f"{fit.name}  {fit.shape[0]}x{fit.shape[1]}  bulk {100 * fit.bulk_fraction:.1f}%  "
                 f"fit error {fit.mp_fit_error:.3f}", fontsize=9)
    ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=dpi, format="png")
    return out
