"""Our own measurement of the size trend: train a ViT family, prune, fine-tune, evaluate, certify.

For every seed and every :class:`verification.models.model_family.FamilyMember` (in
:class:`MeasuredConfig` order):

1. train the member on ``train_images`` class-balanced Fashion-MNIST training images by the default
   model's recipe (:func:`verification.models.model_family.train_member`); dense top-1 on the first
   ``test_images`` test images;
2. **Hybrid Magnitude–SER** (:func:`pruning.hybrid.hybrid_schedule`, ALGORITHMS.md 6) on the
   cumulative ``grid`` from the dense model, every phase (magnitude keep-FT, SER selection, SER
   keep-FT) one epoch over ``finetune_images`` class-balanced training images with the package's
   default learning rates; top-1 after fine-tuning at every sparsity in ``sparsities``;
3. **CAST 2:4** (:func:`pruning.cast.cast_kn`, 7.2-7.6) from the dense model with free restoration,
   calibrated on ``calibration_images`` training images, then the same frozen-mask keep-FT budget
   (:func:`pruning.finetune.finetune`, one epoch over the same images); top-1; MAC reduction by the
   analytical ViT model (8.3);
4. ``B_T`` summed over layers from :func:`verification.bridge.certify.certify` of each Hybrid mask applied to
   the dense model on the ``calibration_images`` set (single-layer audits, grid ``certify_grid``).
   Every ``L_s`` there is a finite-difference **estimate**, so the sum is labelled ``estimate``.

Each row of the ledger is one (seed, member, method, sparsity); ``delta_top1_pp = top1 - dense``
(signed, Figure 2 convention), ``drop_pp = dense - top1`` (Figure 3 convention), in percentage points.
:func:`measure_and_draw` (``mpcert figures measured``) runs the measurement or reads a ledger, then draws it.
"""

from __future__ import annotations

import datetime
import os
import platform
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Callable

import torch

from pruning.calibration import ActivationCapture
from pruning.cast import cast_kn
from pruning.finetune import finetune
from pruning.hybrid import MAGNITUDE_FT_DEFAULT, HybridPoint, hybrid_schedule
from pruning.ser import KEEP_FT_DEFAULT, SELECTION_DEFAULT
from rmt.errors import InvalidParameterError
from figures.measured_figures import MeasuredFigures, write_measured_figures
from figures.measured_ledger import committed_ledger_path, read_ledger, write_ledger
from figures.measured_rows import CAST, HYBRID, MeasuredRow, Measurement
from verification.bridge.certify import certify
from verification.models.datasets import ImageDataset, calibration_subset, load_default_dataset
from verification.models.model_family import FamilyMember, member_mac_report, parameter_count, train_member
from verification.models.train_default import TrainingRecipe, evaluate_accuracy

__all__ = ["MeasuredConfig", "SMALL_CONFIG", "FULL_CONFIG", "CONFIGS", "run_measurement", "measure_and_draw"]

@dataclass(frozen=True)
class MeasuredConfig:
    """Everything that defines one measurement (recorded verbatim in the ledger JSON)."""

    name: str
    members: tuple[FamilyMember, ...]
    seeds: tuple[int, ...]
    train_images: int
    epochs: int
    batch_size: int = 128
    lr: float = 3e-3
    test_images: int = 2000
    finetune_images: int = 2048
    finetune_batch: int = 128
    grid: tuple[float, ...] = tuple(round(0.05 * i, 2) for i in range(1, 15))
    switch: float = 0.20
    sparsities: tuple[float, ...] = (0.50, 0.60, 0.70)
    calibration_images: int = 64
    certify_grid: int = 4

    def __post_init__(self) -> None:
        if len(self.members) < 3:
            raise InvalidParameterError(f"members: a size trend needs at least 3 models, got {len(self.members)}")
        if not self.seeds:
            raise InvalidParameterError("seeds: need at least one seed")
        missing = [s for s in self.sparsities if s not in self.grid]
        if missing:
            raise InvalidParameterError(f"sparsities: {missing} are not points of the grid {list(self.grid)}")

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["members"] = [{**asdict(m), "name": m.name} for m in self.members]
        return out


SMALL_CONFIG = MeasuredConfig(
    name="small",
    members=(FamilyMember(8, 1, 2), FamilyMember(16, 1, 2), FamilyMember(24, 2, 2), FamilyMember(32, 2, 2)),
    seeds=(0,), train_images=300, epochs=1, batch_size=64, test_images=200, finetune_images=64, finetune_batch=32,
    grid=(0.20, 0.50, 0.60, 0.70), calibration_images=8, certify_grid=1,
)
#: The committed measurement: four members, the 0.10-step grid, three seeds (its run time is in the ledger's record).
FULL_CONFIG = MeasuredConfig(
    name="full",
    members=(FamilyMember(32, 2, 2), FamilyMember(48, 3, 3), FamilyMember(64, 4, 4), FamilyMember(96, 4, 4)),
    seeds=(0, 1, 2), train_images=10000, epochs=2, grid=(0.10, 0.20, 0.30, 0.40, 0.50, 0.60, 0.70),
)
CONFIGS = {"small": SMALL_CONFIG, "full": FULL_CONFIG}


def _percent(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    return 100.0 * evaluate_accuracy(model, images, labels)


def _finetune_configs(config: MeasuredConfig, seed: int):
    budget = dict(epochs=1, batch_size=config.finetune_batch, seed=seed)
    return (replace(MAGNITUDE_FT_DEFAULT, **budget), replace(KEEP_FT_DEFAULT, **budget),
            replace(SELECTION_DEFAULT, **budget))


def _measure_member(member: FamilyMember, seed: int, config: MeasuredConfig, dataset: ImageDataset,
                    log: Callable[[str], None]) -> tuple[list[MeasuredRow], dict[str, Any]]:
    test_x, test_y = dataset.test_images[:config.test_images], dataset.test_labels[:config.test_images]
    recipe = TrainingRecipe(epochs=config.epochs, batch_size=config.batch_size, lr=config.lr, seed=seed,
                            subset=config.train_images, test_limit=config.test_images)
    start = time.perf_counter()
    dense, card = train_member(member, dataset, recipe)
    train_wall = time.perf_counter() - start
    dense_top1 = _percent(dense, test_x, test_y)
    params = parameter_count(dense)
    tune = calibration_subset(dataset, config.finetune_images, seed)
    cal = calibration_subset(dataset, config.calibration_images, seed + 1)
    magnitude_ft, keep_ft, selection = _finetune_configs(config, seed)
    log(f"seed {seed} {member.name}: {params} params, dense top-1 {dense_top1:.2f}% ({train_wall:.0f} s)")

    targets: dict[float, tuple[HybridPoint, float]] = {}

    def record(point: HybridPoint, model: torch.nn.Module) -> None:
        if point.sparsity in config.sparsities:
            targets[point.sparsity] = (point, _percent(model, test_x, test_y))

    start = time.perf_counter()
    torch.manual_seed(seed)
    hybrid_schedule(dense, (tune.images, tune.labels), config.grid, switch=config.switch, magnitude_ft=magnitude_ft,
                    keep_ft=keep_ft, selection=selection, on_point=record, seed=seed)
    hybrid_wall = time.perf_counter() - start
    base = dict(seed=seed, model=member.name, embed_dim=member.embed_dim, depth=member.depth,
                num_heads=member.num_heads, params=params, dense_top1=dense_top1)
    rows = []
    for s in config.sparsities:
        point, top1 = targets[s]
        start = time.perf_counter()
        report = certify(dense, point.mask, (cal.images, cal.labels), grid=config.certify_grid, multilayer=False,
                         lipschitz="estimate")
        certify_wall = time.perf_counter() - start
        labels = sorted({a.budget.label for a in report.calibration})
        rows.append(MeasuredRow(**base, method=HYBRID, sparsity=s, top1=top1, delta_top1_pp=top1 - dense_top1,
                                drop_pp=dense_top1 - top1, mac_reduction_pct=None,
                                budget_sum=report.totals()["budget_sum_calibration"], budget_label="+".join(labels),
                                budget_layers=len(report.calibration), train_wall_s=train_wall,
                                prune_wall_s=hybrid_wall, certify_wall_s=certify_wall))
        log(f"  hybrid s={s:.2f}: top-1 {top1:.2f}%, sum B_T {rows[-1].budget_sum:.4g} ({labels})")

    start = time.perf_counter()
    mask = cast_kn(dense, "2:4", ActivationCapture(cal.images), dense=dense,
                   calibration_source=f"{dataset.name} train, {config.calibration_images} images, seed {seed + 1}")
    projected = mask.apply(dense, restore_from=dense)
    tuned = finetune(projected, mask, (tune.images, tune.labels), keep_ft, inplace=True, progress=False).model
    top1 = _percent(tuned, test_x, test_y)
    rows.append(MeasuredRow(**base, method=CAST, sparsity=float(mask.provenance.sparsity), top1=top1,
                            delta_top1_pp=top1 - dense_top1, drop_pp=dense_top1 - top1,
                            mac_reduction_pct=100.0 * member_mac_report(member, "2:4").reduction,
                            budget_sum=None, budget_label=None, budget_layers=None, train_wall_s=train_wall,
                            prune_wall_s=time.perf_counter() - start, certify_wall_s=None))
    log(f"  cast 2:4: top-1 {top1:.2f}%")
    slim_card = {k: card[k] for k in ("config", "parameters", "seed", "data", "test_accuracy", "timing")}
    slim_card["training"] = {k: v for k, v in card["training"].items() if k != "epoch_mean_losses"}
    return rows, slim_card


def run_measurement(config: MeasuredConfig, dataset: ImageDataset, log: Callable[[str], None] = lambda _: None,
                    threads: int = 1, on_rows: Callable[[tuple[MeasuredRow, ...]], None] | None = None) -> Measurement:
    """Run the pipeline of the module docstring for every seed and member; return the ledger.

    ``on_rows`` receives all rows measured so far after every member (e.g. to save a partial ledger).
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    wall0, cpu0, load0 = time.perf_counter(), time.process_time(), os.getloadavg()[0]
    rows, cards = [], []
    try:
        for seed in config.seeds:
            for member in config.members:
                member_rows, card = _measure_member(member, seed, config, dataset, log)
                rows += member_rows
                cards.append(card)
                if on_rows is not None:
                    on_rows(tuple(rows))
    finally:
        torch.set_num_threads(previous)
    import timm

    record = {
        "config": config.to_json(),
        "dataset": {"name": dataset.name, "source": dataset.source},
        "finetune": {name: asdict(c) for name, c in zip(("magnitude_ft", "keep_ft", "selection"),
                                                         _finetune_configs(config, 0))},
        "finetune_note": "seed field shown for seed 0; each seed uses its own; every phase is one epoch",
        "budget_note": "budget_sum = sum over layers of B_T(R) = (2/|T|) sum_s L_s p_s with L_s a finite-difference "
                       "ESTIMATE (verification.bridge.certify); Hybrid mask applied to the dense model",
        "training_cards": cards,
        "timing": {"wall_s": round(time.perf_counter() - wall0, 1), "cpu_s": round(time.process_time() - cpu0, 1),
                   "torch_threads": threads, "load_average_1min_start": round(load0, 2),
                   "load_average_1min_end": round(os.getloadavg()[0], 2)},
        "versions": {"torch": torch.__version__, "timm": timm.__version__, "python": platform.python_version()},
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    return Measurement(rows=tuple(rows), record=record)


def measure_and_draw(out: str | Path, *, config: str = "small", from_ledger: str | Path | None = None,
                     ledger_dir: str | Path | None = None, data: str | None = None,
                     log: Callable[[str], None] = lambda _: None) -> MeasuredFigures:
    """Draw the measured size-trend figures into ``out``
    (:func:`figures.measured_figures.write_measured_figures`) from a ledger that is either read or measured.

    With ``from_ledger`` (a ``.csv`` / ``.json`` ledger; ``"committed"``: the shipped full measurement,
    :func:`figures.measured_ledger.committed_ledger_path`) nothing is trained.  Otherwise
    :func:`run_measurement` runs ``CONFIGS[config]`` on :func:`verification.models.datasets.load_default_dataset`
    ``(data)`` and the ledger is written into ``ledger_dir`` (default: ``out``); ``log`` receives the
    measurement's progress lines and ``wrote PATH`` for each ledger file.
    """
    if from_ledger is not None:
        measurement = read_ledger(committed_ledger_path() if str(from_ledger) == "committed" else from_ledger)
    else:
        if config not in CONFIGS:
            raise InvalidParameterError(f"config must be one of {sorted(CONFIGS)}, got {config!r}")
        measurement = run_measurement(CONFIGS[config], load_default_dataset(data), log=log)
        for path in write_ledger(measurement, ledger_dir if ledger_dir is not None else out):
            log(f"wrote {path}")
    return write_measured_figures(measurement, out)
