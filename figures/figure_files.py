"""Saving a matplotlib ``Figure`` (Agg canvas, no pyplot state) as PNG and PDF side by side."""

from __future__ import annotations

from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

__all__ = ["new_figure", "save_png_pdf"]


def new_figure(**kwargs) -> Figure:
    """A ``Figure(**kwargs)`` attached to an Agg canvas (safe in any process, no global state)."""
    fig = Figure(**kwargs)
    FigureCanvasAgg(fig)
    return fig


def save_png_pdf(fig: Figure, out: str | Path, stem: str, *, dpi: int, tight: bool) -> tuple[Path, Path]:
    """Write ``out/<stem>.png`` (at ``dpi``) and ``out/<stem>.pdf``; ``tight`` crops to the drawn content."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = (out / f"{stem}.png", out / f"{stem}.pdf")
    extra = {"bbox_inches": "tight"} if tight else {}
    for path in paths:
        fig.savefig(path, dpi=dpi, **extra)
    return paths
