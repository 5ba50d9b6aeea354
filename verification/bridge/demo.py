"""The work of ``mpcert demo``: the whole chain on a shipped model, in one command.

    mpcert demo [--model default|deep] [--out DIR] [--quick]

1. the embedded Fashion-MNIST ViT ``--model`` (``default``: 4 blocks of width 64, the main job; ``deep``: 12 blocks
   of width 192, :mod:`verification.models.deep_model`), loaded by :func:`verification.models.model_source.load_model`,
   and its MP fits (:func:`pruning.sigma_cache.spectral_cache`, the cache SER / Hybrid use);
2. two masks: Hybrid Magnitude–SER at ``--sparsity`` (:func:`pruning.hybrid.hybrid_magnitude_ser`,
   trained on ``--train-images`` class-balanced training images for at most ``--steps`` optimiser
   steps per phase) and CAST 2:4 (:func:`pruning.cast.cast_kn`, calibrated on the calibration images);
3. :func:`verification.bridge.certify.certify` of each mask on the **dense** model (the masks'
   certificates are about ``R = (1 - M) * A`` of the dense weights; the Hybrid's fine-tuned weights
   only choose the mask) with the calibration set (class-balanced training images) and the held-out
   set (seeded test images) of :func:`verification.bridge.certify_folder.load_audit_sets`; the CAST mask's
   realised side runs through the packed 2:4 path;
4. one report folder per mask (``hybrid/``, ``cast-2of4/``: ``report.json``, ``report.md``, figures,
   ``mask.safetensors``) and a top-level ``summary.md`` / ``summary.json`` comparing them; the ESD
   figures with the MP fit of every layer are the same for both masks (dense weights), so they are
   drawn once, in ``esd/``.

Defaults: 256 calibration and 256 held-out images, ``grid = 8`` (17 theta values per layer on the
check grid), sparsity 0.5, 256 training images and 20 steps per phase (wall times in the README and
benchmarks/RESULTS-sound-lipschitz.md).  ``--quick`` (tests, a first look): 8 + 8 images, grid 2, 32 training
images, 1 step, no multi-layer audit.  The audit runs many small float64 ops, so one rank of one thread per
core (the default) uses the cores better than one rank of many threads.  The whole ``--out``
folder is written atomically (:mod:`verification.bridge.report_folder`).  ``L_s`` is ``sound`` by default
(``--lipschitz estimate`` for the finite-difference estimate): the summary and each report lead with what is
certified.  ``--workers N`` (default: every core available) shares each mask's audits among ``N`` local
``torch.distributed`` ranks of ``max(1, --threads / N)`` threads (:mod:`verification.bridge.distributed`).
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from pruning.registry import build_mask
from rmt.errors import InvalidParameterError
from verification.bridge.arguments import check_integer, check_seed
from verification.bridge.certificate_report import CertificateReport, write_report_files
from verification.bridge.certify import LIPSCHITZ_METHODS, MAX_SOUND_BUDGET, certify, check_grid
from verification.bridge.certify_folder import load_audit_sets
from verification.bridge.fit_report import spike_count_cell
from verification.bridge.report_folder import check_out, staged_folder
from verification.bridge.vit_interval import resolve_device
from verification.models.model_source import DEEP_SOURCE, DEFAULT_SOURCE, load_model

__all__ = ["DEMO_MODELS", "MASK_FOLDERS", "DemoSettings", "DEFAULT_SETTINGS", "QUICK_SETTINGS", "run_demo"]


#: The embedded models the demo runs on (:mod:`verification.models.model_source`).
DEMO_MODELS = (DEFAULT_SOURCE, DEEP_SOURCE)
#: Report sub-folder of each mask.
MASK_FOLDERS = {"hybrid": "hybrid", "cast-2:4": "cast-2of4"}


@dataclass(frozen=True)
class DemoSettings:
    """Sizes of one demo run (module docstring)."""

    calibration: int = 256
    heldout: int = 256
    grid: int = 8
    sparsity: float = 0.5
    train_images: int = 256
    steps: int = 20
    multilayer: bool = True
    seed: int = 0
    lipschitz: str = "sound"
    model: str = "default"
    sound_budget: int | None = None  # None: SOUND_BUDGET on the CPU, SOUND_BUDGET_CUDA on CUDA
    sound_device: str = "auto"

    def check(self) -> "DemoSettings":
        for name in ("calibration", "heldout", "train_images"):
            check_integer(getattr(self, name), f"--{name.replace('_', '-')}", 1)
        check_grid(self.grid, "--grid")
        if self.model not in DEMO_MODELS:
            raise InvalidParameterError(f"--model: expected one of {DEMO_MODELS}, got {self.model!r}")
        if self.sound_budget is not None:
            check_integer(self.sound_budget, "--sound-budget", 1, MAX_SOUND_BUDGET)
        check_integer(self.steps, "--steps", 0)
        check_seed(self.seed)
        if self.lipschitz not in LIPSCHITZ_METHODS:
            raise InvalidParameterError(f"--lipschitz: expected one of {LIPSCHITZ_METHODS}, got {self.lipschitz!r}")
        resolve_device(self.sound_device, "--sound-device")
        if not 0.0 < self.sparsity < 1.0:  # also NaN
            raise InvalidParameterError(f"--sparsity: must lie in (0, 1), got {self.sparsity!r}")
        return self


DEFAULT_SETTINGS = DemoSettings()
QUICK_SETTINGS = DemoSettings(calibration=8, heldout=8, grid=2, train_images=32, steps=1, multilayer=False)


def _hybrid_training_data(settings: DemoSettings) -> tuple[torch.Tensor, torch.Tensor]:
    """The Hybrid mask's training images: ``train_images`` class-balanced Fashion-MNIST images, seed + 2."""
    from verification.models.datasets import calibration_subset, load_default_dataset

    train = calibration_subset(load_default_dataset(), settings.train_images, settings.seed + 2, "--train-images")
    return train.images, train.labels


def _summary_row(name: str, mask, report: CertificateReport) -> dict[str, Any]:
    ml = report.multilayer
    bridges = report.bridges()
    cal = bridges["calibration"]
    held = bridges.get("heldout")
    return {
        "mask": name,
        "folder": MASK_FOLDERS[name],
        "method": report.mask.get("method"),
        "pattern": report.mask.get("pattern"),
        "sparsity": mask.sparsity_report().global_sparsity,
        "layers": len(report.calibration),
        "execution": report.execution()["global"],
        "max_packed_abs_diff": report.execution()["max_packed_abs_diff"],
        "budget_sum_calibration": report.totals()["budget_sum_calibration"],
        "proxy_sum_calibration": report.totals()["proxy_sum_calibration"],
        "largest_single_layer_ce_change": max(a.lemma_5_1.realized for a in report.calibration),
        "multilayer": None if ml is None else {
            "bound": ml.theorem_5_8.bound.value, "objective_change": ml.theorem_5_8.realized, "ce_dense": ml.ce_dense,
            "ce_final": ml.ce_final, "acc_dense": ml.acc_dense, "acc_final": ml.acc_final},
        "bridge2_exceedances": {"calibration": cal.exceedances_budget,
                                "heldout": None if held is None else held.exceedances_budget},
        "bridge3_r_log_sigma_plus_vs_log_mean_product": cal.r_log_sigma_plus_vs_log_mean_product,
        "violations": len(report.violations()),
        "estimate_diagnostics": len(report.estimate_diagnostics()),
        "certified": report.certified(),
        "lipschitz_labels": report.lipschitz_labels(),
        "label_note": report.label_note(),
        "workers": report.timings.get("workers", 1),
        "phase_times_s": {k[len("phase_"):-2]: v for k, v in report.timings.items() if k.startswith("phase_")},
    }


def _fmt(value) -> str:
    if value is None:
        return "-"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _set_cell(name: str, cell):
    """A summary cell from the ``certified`` block of sample set ``name`` (``-`` where the set is absent)."""
    def render(row: dict[str, Any]) -> str:
        info = row["certified"]["sets"].get(name)
        return "-" if info is None else cell(info)
    return render


def _largest_budget(info: dict[str, Any]) -> str:
    if not info["rows"]:
        return "-"
    row = max(info["rows"], key=lambda r: r["budget"])
    return f"{row['budget']:.4g} / {row['ce_change']:.4g} ({row['layer']})"


def _multilayer_cell(row: dict[str, Any]) -> str:
    ml = row["certified"]["multilayer"]
    return "-" if ml is None else f"{_fmt(ml['bound'])} ({ml['label']}) / {_fmt(ml['objective_change'])}"


#: The summary's first table: what each mask's audit certifies (:meth:`CertificateReport.certified`).
_CERTIFIED_ROWS = (
    ("layers certified sound (calibration)",
     _set_cell("calibration", lambda i: f"**{i['layers_sound']} / {i['layers']}**")),
    ("layers certified sound (held-out)", _set_cell("heldout", lambda i: f"{i['layers_sound']} / {i['layers']}")),
    ("samples certified unchanged, fewest over layers (Cor. 5.2, calibration)",
     _set_cell("calibration", lambda i: f"{_fmt(i['min_certified_unchanged'])} / {i['samples']}")),
    ("certified accuracy-change bound / realised, largest over layers (calibration)",
     _set_cell("calibration", lambda i: f"{_fmt(i['max_acc_change_bound'])} / {_fmt(i['max_acc_change'])}")),
    ("B_T / realised dCE, the sound layer of largest B_T (calibration)", _set_cell("calibration", _largest_budget)),
    ("Thm 5.8 bound on the J change (label) / realised, all layers pruned", _multilayer_cell),
    ("violations (broken sound bounds, failed literal checks)",
     lambda r: f"**{r['violations']}**" if r["violations"] else "0"),
    ("diagnostics of the estimate", lambda r: r["estimate_diagnostics"]),
)


def _summary_markdown(summary: dict[str, Any]) -> str:
    s = summary["settings"]
    masks = summary["masks"]
    lines = [
        f"# mpcert demo — Hybrid Magnitude–SER vs CAST 2:4 on the {s['model']} model (L_s: {s['lipschitz']})",
        "",
        "## What is certified",
        "",
        "| | " + " | ".join(f"[{r['mask']}]({r['folder']}/report.md)" for r in masks) + " |",
        "|---|" + "---|" * len(masks),
    ]
    lines += [f"| {label} | " + " | ".join(str(cell(r)) for r in masks) + " |" for label, cell in _CERTIFIED_ROWS]
    lines += [
        "",
        "A violation is a broken sound bound or a failed literal check (must be 0: a bug or a finding).  Where a",
        "layer's `L_s` is an estimate (its report says why), a realised value above a bound built on it is a",
        "diagnostic of the estimate (FINDINGS F11), counted apart.  Labels per mask:",
        *[f"- {r['mask']}: {r['label_note']}" for r in masks],
        "",
        f"Model: {summary['model']}",
        "",
        f"Data: {summary['data']}",
        "",
        f"Settings: calibration {s['calibration']}, held-out {s['heldout']}, grid {s['grid']}, Hybrid sparsity "
        f"{s['sparsity']}, Hybrid training {s['train_images']} images / {s['steps']} steps per phase, "
        f"multi-layer audit {'on' if s['multilayer'] else 'off'}, seed {s['seed']}, {summary['workers']} worker(s)",
        "",
        "Both masks are audited on the dense model (R = removed part of the dense weights).",
        "",
        "## Audit details",
        "",
        "| | " + " | ".join(f"[{r['mask']}]({r['folder']}/report.md)" for r in masks) + " |",
        "|---|" + "---|" * len(masks),
    ]
    rows = [
        ("method / pattern", lambda r: f"{r['method']} / {r['pattern']}"),
        ("sparsity of the masked layers", lambda r: f"{r['sparsity']:.4f}"),
        ("layers audited", lambda r: r["layers"]),
        ("execution of the realised side", lambda r: r["execution"]),
        ("max abs(z_packed - z_masked_dense)", lambda r: _fmt(r["max_packed_abs_diff"])),
        ("L_s labels of the audits (sound / estimate)",
         lambda r: f"{r['lipschitz_labels']['sound']} / {r['lipschitz_labels']['estimate']}"),
        ("sum of single-layer B_T", lambda r: _fmt(r["budget_sum_calibration"])),
        ("sum of the paper's proxy (not a bound)", lambda r: _fmt(r["proxy_sum_calibration"])),
        ("largest single-layer dCE", lambda r: _fmt(r["largest_single_layer_ce_change"])),
        ("accuracy dense -> pruned (calibration)",
         lambda r: ("-" if not r["multilayer"]
                    else f"{r['multilayer']['acc_dense']:.4f} -> {r['multilayer']['acc_final']:.4f}")),
        ("Bridge 2: layers with dCE > B_T (cal / held-out)",
         lambda r: f"{r['bridge2_exceedances']['calibration']} / {_fmt(r['bridge2_exceedances']['heldout'])}"),
        ("Bridge 3: r(log sigma_+, log mean ||R psi_1||)",
         lambda r: _fmt(r["bridge3_r_log_sigma_plus_vs_log_mean_product"])),
    ]
    lines += [f"| {label} | " + " | ".join(str(cell(r)) for r in masks) + " |" for label, cell in rows]
    lines += ["", "## MP fits of the dense weights", "", "| layer | shape | sigma_+ | spikes | bulk fraction |",
              "|---|---|---|---|---|"]
    lines += [f"| {f['name']} | {f['shape'][0]}x{f['shape'][1]} | {f['sigma_plus']:.4g} | {spike_count_cell(f)} | "
              f"{f['bulk_fraction']:.3f} |" for f in summary["mp_fits"]]
    alphas = sorted({f["spike_alpha"] for f in summary["mp_fits"] if f["spike_test"] == "calibrated"})
    lines += ["", f"Spikes: the sequential Tracy-Widom test of `rmt.spike_test` at family-wise false-alarm rate "
              f"alpha = {', '.join(f'{a:g}' for a in alphas) or '-'} ('k+': the test's cap, every value tested was a "
              "spike); the paper's count #{s > sigma_+} is `mpcert fit --spike-test paper`."]
    lines += ["", "ESD with MP fit per layer: " + ", ".join(f"[{Path(p).stem}]({p})" for p in summary["esd_figures"])]
    lines += ["", "## Wall time per step (s)", ""] + [f"- {k}: {v:.1f}" for k, v in summary["step_times_s"].items()]
    lines += [f"- total: {summary['wall_time_s']:.1f}", ""]
    lines += ["Audit phases, seconds summed over all audits and ranks: "
              + "; ".join(f"{r['mask']}: " + ", ".join(f"{k} {v:.1f}" for k, v in r["phase_times_s"].items())
                          for r in masks), ""]
    return "\n".join(lines) + "\n"


def run_demo(out: Path, settings: DemoSettings = DEFAULT_SETTINGS, *, force: bool = False,
             progress: bool = False, workers: int = 1) -> dict[str, Any]:
    """Run the chain of the module docstring and write the folder ``out`` atomically; return ``summary.json``.

    ``workers``: local ``torch.distributed`` ranks per certification (:func:`verification.bridge.certify.certify`)."""
    from pruning.sigma_cache import spectral_cache

    settings.check()
    out = Path(out)
    check_out(out, force)
    begin = time.perf_counter()
    times: dict[str, float] = {}

    def lap(step: str, start: float) -> float:
        now = time.perf_counter()
        times[step] = now - start
        return now

    start = time.perf_counter()
    loaded = load_model(settings.model, runnable=True, argument="--model")
    # typed errors before the bar
    sets = load_audit_sets("default", settings.calibration, settings.heldout, settings.seed)
    # the bar is closed on an error or a signal too: the CLI's message then starts on a line of its own
    with tqdm(total=5, desc="mpcert demo", unit="step", file=sys.stderr, disable=not progress) as steps:
        cache = spectral_cache(loaded.model)
        start = lap("model, data and MP fits", start)
        steps.update()
        masks = {}
        steps.set_postfix_str("Hybrid Magnitude-SER mask")
        masks["hybrid"] = build_mask("hybrid", loaded.model, sparsity=settings.sparsity,
                                     train_data=_hybrid_training_data(settings), cache=cache, steps=settings.steps,
                                     batch_size=64, seed=settings.seed)
        start = lap("Hybrid Magnitude-SER mask", start)
        steps.update()
        steps.set_postfix_str("CAST 2:4 mask")
        masks["cast-2:4"] = build_mask("cast-2:4", loaded.model, calibration_images=sets.calibration[0],
                                       calibration_source=sets.source)
        start = lap("CAST 2:4 mask", start)
        steps.update()
        reports = {}
        for name, mask in masks.items():
            steps.set_postfix_str(f"certify {name}")
            reports[name] = certify(loaded.model, mask, sets.calibration, heldout=sets.heldout, grid=settings.grid,
                                    multilayer=settings.multilayer, lipschitz=settings.lipschitz,
                                    sound_budget=settings.sound_budget, sound_device=settings.sound_device,
                                    model_description=loaded.description, progress=progress, workers=workers)
            start = lap(f"certify {name}", start)
        steps.update()
        steps.set_postfix_str("reports")
        summary = {
            "schema": "mpcert.demo/1",
            "model": loaded.description,
            "data": sets.source,
            "settings": settings.__dict__,
            "mp_fits": [fit.to_dict() for fit in cache.fits.values()],
            "mp_unfitted": list(cache.unfitted),
            "masks": [_summary_row(name, masks[name], reports[name]) for name in masks],
            "workers": workers,
        }
        with staged_folder(out, force) as tmp:
            from figures.certificate_plots import write_esd_plots

            summary["esd_figures"] = [p.relative_to(tmp).as_posix()
                                      for p in write_esd_plots(cache.fits.values(), tmp / "esd")]
            for name, report in reports.items():
                folder = tmp / MASK_FOLDERS[name]
                folder.mkdir()
                masks[name].save(folder / "mask.safetensors")
                document = report.to_json()
                document["data"]["source"] = sets.source
                write_report_files(report, folder, document=document, esd_plots=False)
            lap("reports", start)
            summary["step_times_s"] = times
            summary["wall_time_s"] = time.perf_counter() - begin
            (tmp / "summary.json").write_text(json.dumps(summary, indent=2, allow_nan=False) + "\n")
            (tmp / "summary.md").write_text(_summary_markdown(summary))
        steps.update()
    return summary
