"""The work of ``mpcert fit``: fit the MP law to every prunable layer and write a report folder.

The report folder (``--out``, default ``mpcert-report``) holds

* ``fits.json`` — schema ``mpcert.fit/2``: mpcert version, source and its description, the fit
  options (``spike_test`` and ``spike_alpha`` among them), and one :meth:`rmt.fit.MPFit.to_dict` record
  per layer (ALGORITHMS.md 1.2; with the spike test, its ``alpha``, per-step p-values and threshold);
* ``esd/NNN_<layer>.png`` — one ESD figure per layer (:func:`figures.esd_plot.plot_esd`),
  unless ``--no-plots``;
* ``report.md`` — the per-layer table and links to the figures.

The spike count is the calibrated sequential Tracy–Widom test at family-wise false-alarm rate
``--spike-alpha`` (default 0.05, :mod:`rmt.spike_test`) unless ``--spike-test paper`` asks for the
paper's ``#{s_i > sigma_plus}`` (schema ``mpcert.fit/1`` counted that way); the table's ``spike test``
column says which.

``SOURCE`` is resolved by :func:`verification.models.model_source.load_model` (``default`` = the trained
default model, a timm name with ``--checkpoint``, or a state-dict file).  The folder is written
**atomically** (:mod:`verification.bridge.report_folder`): an error never leaves a partial report.  An
existing non-empty ``--out`` is refused unless ``--force`` (then it is replaced, again atomically).
"""

from __future__ import annotations

import json
import re
import sys
from importlib import metadata
from pathlib import Path

from tqdm import tqdm

from figures.esd_plot import plot_esd
from rmt.fit import MPFit, fit_mp
from rmt.spike_test import DEFAULT_SPIKE_ALPHA
from verification.bridge.report_folder import check_out, staged_folder
from verification.models.model_source import load_model

__all__ = ["SCHEMA", "spike_count_cell", "format_table", "run_fit"]


SCHEMA = "mpcert.fit/2"
_COLUMNS = ("layer", "shape", "sigma2", "sigma_plus", "spikes", "spike test", "bulk %", "fit error")


def _version() -> str:
    try:
        return metadata.version("mpcert")
    except metadata.PackageNotFoundError:  # running from a source tree that is not installed
        return "unknown"


def _row(layer: dict) -> tuple[str, ...]:
    return (
        layer["name"],
        "x".join(str(d) for d in layer["shape"]),
        f"{layer['sigma2']:.4g}",
        f"{layer['sigma_plus']:.4g}",
        spike_count_cell(layer),
        _spike_test_label(layer),
        f"{100 * layer['bulk_fraction']:.2f}",
        f"{layer['mp_fit_error']:.4f}",
    )


def spike_count_cell(layer: dict) -> str:
    """``n_spikes`` of an :meth:`rmt.fit.MPFit.to_dict` record; ``"k+"`` when the test stopped at its cap."""
    return f"{layer['n_spikes']}+" if layer["spikes_capped"] else str(layer["n_spikes"])


def _spike_test_label(layer: dict) -> str:
    """``"TW alpha=0.05"`` for the calibrated test, ``"paper"`` for the count above ``sigma_plus``."""
    return f"TW alpha={layer['spike_alpha']:g}" if layer["spike_test"] == "calibrated" else "paper"


def format_table(layers: list[dict]) -> str:
    """Plain-text per-layer table (name, shape, sigma2, sigma_plus, spikes, spike test, bulk %, fit error)."""
    rows = [_COLUMNS] + [_row(layer) for layer in layers]
    widths = [max(len(r[i]) for r in rows) for i in range(len(_COLUMNS))]
    lines = ["  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(r, widths)))
             for r in rows]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


def _markdown(document: dict, figures: list[str | None]) -> str:
    head = "| " + " | ".join(_COLUMNS) + " | figure |\n|" + "---|" * (len(_COLUMNS) + 1) + "\n"
    body = "".join(
        "| " + " | ".join(_row(layer)) + f" | {f'[png]({fig})' if fig else '-'} |\n"
        for layer, fig in zip(document["layers"], figures)
    )
    opts = ", ".join(f"{k}={v}" for k, v in document["options"].items())
    return (
        f"# MP fit report\n\nSource: {document['description']}\n\nmpcert {document['mpcert_version']}; {opts}.\n\n"
        "sigma2 is the noise variance in the n = max(d_out, d_in) normalisation; sigma_plus the bulk edge in "
        "singular-value units with the Tracy-Widom margin (ALGORITHMS.md 1.3-1.5).  spikes: 'TW alpha=a' is the "
        "sequential Tracy-Widom test (noise variance re-estimated from the remaining bulk) whose chance of "
        "flagging any spike in pure noise is a; 'paper' counts the singular values above sigma_plus, which "
        "flags pure noise most of the time (FINDINGS F8, F21); 'k+' means the test stopped at its cap (the top "
        "alpha_bema share of the spectrum) with every value a spike.\n\n" + head + body
    )


def _figure_name(index: int, name: str) -> str:
    return f"esd/{index:03d}_{re.sub(r'[^A-Za-z0-9._-]+', '_', name)}.png"


def run_fit(
    source: str,
    *,
    out: Path,
    checkpoint: str | None = None,
    method: str = "bema",
    alpha_bema: float = 0.25,
    beta_tw: float = 0.8,
    tw_form: str = "reference",
    spike_test: str = "calibrated",
    spike_alpha: float = DEFAULT_SPIKE_ALPHA,
    plots: bool = True,
    force: bool = False,
) -> dict:
    """Fit every prunable layer of ``source`` and write the report folder ``out`` atomically.

    Returns the ``fits.json`` document.  Raises the :class:`rmt.errors.MPCertError` of the first
    failing step (bad source, bad layer, bad option); no folder is left behind in that case.
    """
    out = Path(out)
    check_out(out, force)
    loaded = load_model(source, checkpoint=checkpoint, argument="SOURCE")
    description, weights = loaded.description, loaded.prunable_weights()
    with staged_folder(out, force) as tmp:
        fits: list[MPFit] = []
        figures: list[str | None] = []
        if plots:
            (tmp / "esd").mkdir()
        # closed on the way out of an error or a signal too: the CLI's message then starts on a line of its own
        with tqdm(weights.items(), desc="mpcert fit", unit="layer", file=sys.stderr) as bar:
            for index, (name, weight) in enumerate(bar):
                fit = fit_mp(weight, method, alpha_bema=alpha_bema, beta_tw=beta_tw, tw_form=tw_form,
                             spike_test=spike_test, spike_alpha=spike_alpha, name=name)
                fits.append(fit)
                figure = _figure_name(index, name) if plots else None
                if figure:
                    plot_esd(fit, tmp / figure)
                figures.append(figure)
        document = {
            "schema": SCHEMA,
            "mpcert_version": _version(),
            "source": str(source),
            "checkpoint": checkpoint,
            "description": description,
            "options": {"method": method, "alpha_bema": alpha_bema, "beta_tw": beta_tw, "tw_form": tw_form,
                        "spike_test": spike_test, "spike_alpha": spike_alpha if spike_test == "calibrated" else None},
            "layers": [fit.to_dict() for fit in fits],
        }
        for layer, figure in zip(document["layers"], figures):
            layer["figure"] = figure
        (tmp / "fits.json").write_text(json.dumps(document, indent=2) + "\n")
        (tmp / "report.md").write_text(_markdown(document, figures))
    return document
