"""Train the embedded default model: ``python -m verification.models.train_default [--epochs E] [--out DIR] ...``.

Recipe (fixed seed, CPU, no download): timm ``VisionTransformer(**DEFAULT_CONFIG)`` initialised
under ``torch.manual_seed(seed)``; Fashion-MNIST from :func:`verification.models.datasets.load_fashion_mnist`
(optionally a class-balanced seeded training subset of ``--subset`` images); AdamW
(lr ``--lr``, weight decay 0.05, betas (0.9, 0.999)); per-step schedule: linear warm-up over the
first ``WARMUP_FRACTION`` of the steps, then cosine decay to 0; cross-entropy with label
smoothing ``LABEL_SMOOTHING``; light augmentation: random horizontal flip with probability 1/2;
batch shuffling from a seeded ``torch.Generator``.  Threads: ``--threads`` (default 1; on the shared
2-core machine two intra-op threads measured 4-10x slower per step than one, the ViT's matrices
being too small to gain from splitting).  After training the model is evaluated on the
test split and two files are written into ``--out``: the weights
(:data:`verification.models.default_model.DEFAULT_WEIGHTS_NAME`, safetensors) and the model card
(:data:`~verification.models.default_model.DEFAULT_CARD_NAME`, JSON) with the config, seed, data source,
epochs, optimiser, test accuracy, the training loss on a fixed probe of training images before
and after training, wall and CPU time, thread count and load average, torch/timm versions and the
date.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import math
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import torch
import torch.nn.functional as F

from verification.models.datasets import ImageDataset, calibration_subset, load_fashion_mnist
from verification.models.default_model import (
    DEFAULT_CARD_NAME,
    DEFAULT_CONFIG,
    DEFAULT_WEIGHTS_NAME,
    default_assets_dir,
)

__all__ = [
    "TrainingRecipe", "train_default_model", "train_vision_transformer", "evaluate_accuracy", "mean_loss",
    "write_outputs", "run_training", "main",
]

CARD_FORMAT_VERSION = 1
WARMUP_FRACTION = 0.05
LABEL_SMOOTHING = 0.1
WEIGHT_DECAY = 0.05
PROBE_IMAGES = 1024
EVAL_BATCH = 1000


@dataclass(frozen=True)
class TrainingRecipe:
    """Hyper-parameters of one training run (all recorded in the model card)."""

    epochs: int = 15
    batch_size: int = 128
    lr: float = 3e-3
    seed: int = 0
    subset: int | None = None
    test_limit: int | None = None
    threads: int = 1


def _lr_factor(step: int, total: int) -> float:
    """Linear warm-up to 1 over ``WARMUP_FRACTION * total`` steps, then cosine decay to 0 at ``total``."""
    warmup = max(1, int(WARMUP_FRACTION * total))
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1.0 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


@torch.no_grad()
def evaluate_accuracy(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    """Top-1 accuracy of ``model`` (in eval mode) on ``images``, in batches of ``EVAL_BATCH``."""
    model.eval()
    correct = sum(
        int((model(images[i : i + EVAL_BATCH]).argmax(dim=1) == labels[i : i + EVAL_BATCH]).sum())
        for i in range(0, len(labels), EVAL_BATCH)
    )
    return correct / len(labels)


@torch.no_grad()
def mean_loss(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    """Mean plain cross-entropy of ``model`` (in eval mode) on ``images``."""
    model.eval()
    total = sum(
        float(F.cross_entropy(model(images[i : i + EVAL_BATCH]), labels[i : i + EVAL_BATCH], reduction="sum"))
        for i in range(0, len(labels), EVAL_BATCH)
    )
    return total / len(labels)


def _augment(batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    flip = torch.rand(batch.shape[0], generator=generator) < 0.5
    return torch.where(flip[:, None, None, None], batch.flip(-1), batch)


def train_default_model(
    dataset: ImageDataset, recipe: TrainingRecipe, progress: Callable[[str], None] | None = None
) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Train ``VisionTransformer(**DEFAULT_CONFIG)`` on ``dataset`` by ``recipe``; return it (eval mode) and its card.

    Runs with ``torch.set_num_threads(recipe.threads)`` and restores the previous thread count;
    ``progress`` (e.g. ``print``) receives one line per epoch.
    """
    return train_vision_transformer(DEFAULT_CONFIG, dataset, recipe, progress)


def train_vision_transformer(
    config: Mapping[str, Any], dataset: ImageDataset, recipe: TrainingRecipe,
    progress: Callable[[str], None] | None = None,
) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Train ``timm VisionTransformer(**config)`` (initialised under ``torch.manual_seed(recipe.seed)``) by ``recipe``.

    The same recipe and card as :func:`train_default_model` (which is this function with
    ``DEFAULT_CONFIG``); used by :mod:`verification.models.model_family` for ViTs of other widths/depths.
    """
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(recipe.threads)
    try:
        return _train(config, dataset, recipe, progress)
    finally:
        torch.set_num_threads(previous_threads)


def _new_vit(config: Mapping[str, Any], seed: int) -> torch.nn.Module:
    """``VisionTransformer(**config)`` under ``torch.manual_seed(seed)`` (as :func:`new_default_model` does)."""
    from timm.models.vision_transformer import VisionTransformer

    torch.manual_seed(seed)
    return VisionTransformer(**config)


def _train(
    config: Mapping[str, Any], dataset: ImageDataset, recipe: TrainingRecipe, progress: Callable[[str], None] | None
) -> tuple[torch.nn.Module, dict[str, Any]]:
    if recipe.subset is None:
        train_x, train_y = dataset.train_images, dataset.train_labels
    else:
        chosen = calibration_subset(dataset, recipe.subset, recipe.seed)
        train_x, train_y = chosen.images, chosen.labels
    test_count = (len(dataset.test_labels) if recipe.test_limit is None
                  else min(recipe.test_limit, len(dataset.test_labels)))
    probe = slice(0, min(PROBE_IMAGES, len(train_y)))

    load_start = os.getloadavg()
    wall0, cpu0 = time.perf_counter(), time.process_time()
    model = _new_vit(config, recipe.seed)
    generator = torch.Generator().manual_seed(recipe.seed)
    probe_loss_before = mean_loss(model, train_x[probe], train_y[probe])
    optimizer = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=WEIGHT_DECAY)
    steps_per_epoch = math.ceil(len(train_y) / recipe.batch_size)
    total_steps = recipe.epochs * steps_per_epoch
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: _lr_factor(step, total_steps))
    epoch_losses = []
    for _ in range(recipe.epochs):
        model.train()
        order = torch.randperm(len(train_y), generator=generator)
        running = 0.0
        for start in range(0, len(order), recipe.batch_size):
            index = order[start : start + recipe.batch_size]
            logits = model(_augment(train_x[index], generator))
            loss = F.cross_entropy(logits, train_y[index], label_smoothing=LABEL_SMOOTHING)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            running += loss.item() * len(index)
        epoch_losses.append(running / len(order))
        if progress is not None:
            progress(f"epoch {len(epoch_losses)}/{recipe.epochs}: mean training loss {epoch_losses[-1]:.4f}, "
                     f"{time.perf_counter() - wall0:.0f} s")
    train_wall, train_cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    probe_loss_after = mean_loss(model, train_x[probe], train_y[probe])
    accuracy = evaluate_accuracy(model, dataset.test_images[:test_count], dataset.test_labels[:test_count])
    import timm

    card = {
        "format_version": CARD_FORMAT_VERSION,
        "model": "timm.models.vision_transformer.VisionTransformer",
        "config": dict(config),
        "parameters": sum(p.numel() for p in model.parameters()),
        "seed": recipe.seed,
        "data": {
            "name": dataset.name,
            "source": dataset.source,
            "normalisation": {"mean": dataset.mean, "std": dataset.std, "formula": "(pixel / 255 - mean) / std"},
            "train_images": len(train_y),
            "train_subset": recipe.subset,
            "test_images": test_count,
        },
        "training": {
            "epochs": recipe.epochs,
            "batch_size": recipe.batch_size,
            "steps": total_steps,
            "optimizer": {"name": "AdamW", "lr": recipe.lr, "weight_decay": WEIGHT_DECAY, "betas": [0.9, 0.999]},
            "schedule": f"linear warm-up over {WARMUP_FRACTION:g} of the steps, then cosine to 0 (per step)",
            "loss": f"cross-entropy, label smoothing {LABEL_SMOOTHING:g}",
            "augmentation": "random horizontal flip p=0.5",
            "epoch_mean_losses": epoch_losses,
            "probe_images": probe.stop,
            "probe_loss_before": probe_loss_before,
            "probe_loss_after": probe_loss_after,
        },
        "test_accuracy": accuracy,
        "timing": {
            "wall_time_s": round(train_wall, 2),
            "cpu_time_s": round(train_cpu, 2),
            "torch_threads": torch.get_num_threads(),
            "cpu_count": os.cpu_count(),
            "load_average_1min_start": round(load_start[0], 2),
            "load_average_1min_end": round(os.getloadavg()[0], 2),
            "note": "wall time is inflated when the machine is shared; cpu_time_s sums all threads",
        },
        "versions": {"torch": torch.__version__, "timm": timm.__version__, "python": platform.python_version()},
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    return model.eval(), card


def write_outputs(model: torch.nn.Module, card: dict[str, Any], out: Path, weights_name: str = DEFAULT_WEIGHTS_NAME,
                  card_name: str = DEFAULT_CARD_NAME) -> tuple[Path, Path]:
    """Write ``weights_name`` (safetensors) and ``card_name`` (JSON, with the weights' sha256) into ``out``."""
    from safetensors.torch import save_file

    out.mkdir(parents=True, exist_ok=True)
    weights_path, card_path = out / weights_name, out / card_name
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(weights_path), metadata={"format": "pt", "card": card_name})
    card = {**card, "weights_file": weights_name,
            "weights_sha256": hashlib.sha256(weights_path.read_bytes()).hexdigest()}
    card_path.write_text(json.dumps(card, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return weights_path, card_path


def _parser(prog: str, description: str, defaults: TrainingRecipe) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--epochs", type=int, default=defaults.epochs)
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--lr", type=float, default=defaults.lr)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--subset", type=int, default=None, help="train on N class-balanced training images")
    parser.add_argument("--test-limit", type=int, default=None, help="evaluate on the first N test images only")
    parser.add_argument("--threads", type=int, default=defaults.threads)
    parser.add_argument("--data", default=None, help="folder of Fashion-MNIST idx files (default: Debian package)")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: the package assets)")
    return parser


def run_training(argv: Sequence[str] | None, *, prog: str, description: str, config: Mapping[str, Any],
                 defaults: TrainingRecipe, weights_name: str, card_name: str) -> int:
    """The command line of a training script: parse ``argv`` (defaults from ``defaults``), train
    ``VisionTransformer(**config)`` (:func:`train_vision_transformer`) and write ``weights_name`` / ``card_name``."""
    parser = _parser(prog, description, defaults)
    args = parser.parse_args(argv)
    if args.epochs < 1 or args.batch_size < 1 or args.threads < 1 or args.lr <= 0:
        parser.error("--epochs, --batch-size, --threads must be >= 1 and --lr > 0")
    recipe = TrainingRecipe(
        epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
        subset=args.subset, test_limit=args.test_limit, threads=args.threads,
    )
    dataset = load_fashion_mnist(args.data)
    model, card = train_vision_transformer(config, dataset, recipe, progress=print)
    out = args.out if args.out is not None else default_assets_dir()
    weights_path, card_path = write_outputs(model, card, out, weights_name, card_name)
    print(
        f"test accuracy {card['test_accuracy']:.4f} on {card['data']['test_images']} images; "
        f"wall {card['timing']['wall_time_s']} s, cpu {card['timing']['cpu_time_s']} s; "
        f"wrote {weights_path} and {card_path}"
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_training(argv, prog="python -m verification.models.train_default", description=__doc__.split("\n")[0],
                        config=DEFAULT_CONFIG, defaults=TrainingRecipe(), weights_name=DEFAULT_WEIGHTS_NAME,
                        card_name=DEFAULT_CARD_NAME)


if __name__ == "__main__":
    raise SystemExit(main())
