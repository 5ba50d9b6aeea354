"""``mpcert fit SOURCE``: fit the MP law to every prunable layer and write a report folder.

The report folder (``--out``, default ``mpcert-report``) holds

* ``fits.json`` — schema ``mpcert.fit/1``: mpcert version, source and its description, the fit
  options, and one :meth:`rmt.fit.MPFit.to_dict` record per layer (ALGORITHMS.md 1.2);
* ``esd/NNN_<layer>.png`` — one ESD figure per layer (:func:`figures.esd_plot.plot_esd`),
  unless ``--no-plots``;
* ``report.md`` — the per-layer table and links to the figures.

``SOURCE`` is resolved by :func:`verification.models.model_source.load_model` (``default`` = the trained
default model, a timm name with ``--checkpoint``, or a state-dict file).  The folder is written
**atomically** (:mod:`verification.bridge.report_folder`): an error never leaves a partial report.  An
existing non-empty ``--out`` is refused unless ``--force`` (then it is replaced, again atomically).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from importlib import metadata
from pathlib import Path

from tqdm import tqdm

from figures.esd_plot import plot_esd
from rmt.fit import METHODS, TW_FORMS, MPFit, fit_mp
from verification.models.model_source import load_model
from verification.bridge.report_folder import check_out, staged_folder

__all__ = ["register", "run_fit", "format_table", "SCHEMA"]

SCHEMA = "mpcert.fit/1"
_COLUMNS = ("layer", "shape", "sigma2", "sigma_plus", "spikes", "bulk %", "fit error")


def register(subparsers) -> None:
    """Add the ``fit`` sub-command to the ``mpcert`` parser."""
    parser = subparsers.add_parser(
        "fit",
        help="fit the Marchenko-Pastur law to every Linear/Conv2d weight of a model",
        description=__doc__.split("\n\n")[0],
    )
    parser.add_argument("source", help="a .safetensors/.pt/.pth state dict, a timm model name, or 'default'")
    parser.add_argument("--checkpoint", metavar="FILE", help="local weights for a timm model name (loaded strictly)")
    parser.add_argument("--out", metavar="DIR", default="mpcert-report", help="report folder (default: %(default)s)")
    parser.add_argument("--force", action="store_true", help="replace a non-empty existing --out folder")
    parser.add_argument("--method", choices=METHODS, default="bema", help="variance estimator (default: %(default)s)")
    parser.add_argument("--alpha-bema", type=float, default=0.25, help="BEMA window trim in (0, 1/2) (default: %(default)s)")
    parser.add_argument("--beta-tw", type=float, default=0.8, help="Tracy-Widom level in (0, 1) (default: %(default)s)")
    parser.add_argument("--tw-form", choices=TW_FORMS, default="reference", help="TW margin form (default: %(default)s)")
    parser.add_argument("--no-plots", action="store_true", help="do not draw the per-layer ESD figures")
    parser.add_argument("--json-only", action="store_true",
                        help="print the fits.json document to stdout instead of the table (the folder is still written)")
    parser.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    document = run_fit(
        args.source,
        out=Path(args.out),
        checkpoint=args.checkpoint,
        method=args.method,
        alpha_bema=args.alpha_bema,
        beta_tw=args.beta_tw,
        tw_form=args.tw_form,
        plots=not args.no_plots,
        force=args.force,
    )
    if args.json_only:
        print(json.dumps(document, indent=2))
    else:
        print(document["description"])
        print(format_table(document["layers"]))
        print(f"report written to {args.out}")
    return 0


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
        str(layer["n_spikes"]),
        f"{100 * layer['bulk_fraction']:.2f}",
        f"{layer['mp_fit_error']:.4f}",
    )


def format_table(layers: list[dict]) -> str:
    """Plain-text per-layer table (name, shape, sigma2, sigma_plus, spikes, bulk %, fit error)."""
    rows = [_COLUMNS] + [_row(layer) for layer in layers]
    widths = [max(len(r[i]) for r in rows) for i in range(len(_COLUMNS))]
    lines = ["  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(r, widths))) for r in rows]
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
        "singular-value units with the Tracy-Widom margin (ALGORITHMS.md 1.3-1.5).\n\n" + head + body
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
        for index, (name, weight) in enumerate(tqdm(weights.items(), desc="mpcert fit", unit="layer", file=sys.stderr)):
            fit = fit_mp(weight, method, alpha_bema=alpha_bema, beta_tw=beta_tw, tw_form=tw_form, name=name)
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
            "options": {"method": method, "alpha_bema": alpha_bema, "beta_tw": beta_tw, "tw_form": tw_form},
            "layers": [fit.to_dict() for fit in fits],
        }
        for layer, figure in zip(document["layers"], figures):
            layer["figure"] = figure
        (tmp / "fits.json").write_text(json.dumps(document, indent=2) + "\n")
        (tmp / "report.md").write_text(_markdown(document, figures))
    return document
