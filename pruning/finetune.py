"""Frozen-mask fine-tuning and distillation (ALGORITHMS.md 9.1, 9.2).

Every step: forward, loss, backward, ``grad <- grad * M`` on every masked weight, gradient-norm
clip, optimiser step, ``W <- W * M`` (momentum and weight decay would otherwise regrow pruned
entries, 9.2).  The learning rate warms up linearly from ``warmup_start * lr`` over
``min(500, steps // 4)`` steps (or ``warmup_steps``) and then follows a cosine down to
``min_lr_ratio * lr`` (9.1).  The loss is label-smoothed cross entropy, or with a ``teacher``::

    L = (1 - alpha_d) CE_ls(y_S, y) + alpha_d tau^2 KL(softmax(y_T / tau) || softmax(y_S / tau))

(9.2; the teacher is the target distribution, runs under ``no_grad`` and is never updated).

Training data (also used by SER and Hybrid) is any re-iterable of ``(inputs, labels)`` batches
(e.g. a ``DataLoader``), a pair of tensors ``(inputs, labels)`` cut into seeded shuffled batches of
``batch_size``, or an object with ``images`` and ``labels`` tensors
(:class:`verification.models.datasets.CalibrationSubset` style).
"""

from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass
from typing import Any, Callable, Iterator, Mapping

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from .errors import PruningParameterError
from .mask import Mask

__all__ = [
    "OPTIMIZERS", "FinetuneConfig", "FinetuneResult", "training_batches", "batches_per_epoch", "lr_factor",
    "distillation_loss", "masked_parameters", "train_masked", "finetune",
]

OPTIMIZERS = ("sgd", "adamw")
MAX_WARMUP_STEPS = 500

Batch = tuple[torch.Tensor, torch.Tensor]
LossFn = Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class FinetuneConfig:
    """One training phase (defaults: the 9.1 unstructured keep-FT recipe, base LR of the magnitude prefix)."""

    epochs: int = 1
    max_steps: int | None = None
    optimizer: str = "sgd"
    lr: float = 3e-5
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 1e-6
    label_smoothing: float = 0.1
    grad_clip: float | None = 1.0
    warmup_steps: int | None = None
    warmup_start: float = 0.01
    min_lr_ratio: float = 0.01
    batch_size: int = 128
    kd_alpha: float = 0.5
    kd_tau: float = 2.0
    bf16_autocast: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise PruningParameterError(f"optimizer: expected one of {OPTIMIZERS}, got {self.optimizer!r}")
        for label in ("epochs", "batch_size"):
            if not (isinstance(getattr(self, label), int) and getattr(self, label) >= 1):
                raise PruningParameterError(f"{label}: must be an integer >= 1, got {getattr(self, label)!r}")
        if self.max_steps is not None and not (isinstance(self.max_steps, int) and self.max_steps >= 0):
            raise PruningParameterError(f"max_steps: must be None or an integer >= 0, got {self.max_steps!r}")
        if not (math.isfinite(self.lr) and self.lr >= 0):
            raise PruningParameterError(f"lr: must be finite and >= 0, got {self.lr!r}")
        if not 0.0 <= self.kd_alpha <= 1.0:
            raise PruningParameterError(f"kd_alpha: must lie in [0, 1], got {self.kd_alpha!r}")
        if not self.kd_tau > 0:
            raise PruningParameterError(f"kd_tau: must be positive, got {self.kd_tau!r}")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class FinetuneResult:
    """The trained model, the number of optimiser steps taken and the loss of every step."""

    model: nn.Module
    steps: int
    losses: tuple[float, ...]
    config: FinetuneConfig


def _tensor_pair(data: Any) -> Batch | None:
    if hasattr(data, "images") and hasattr(data, "labels"):
        return data.images, data.labels
    if isinstance(data, tuple) and len(data) == 2 and all(isinstance(t, torch.Tensor) for t in data):
        if data[0].shape[0] != data[1].shape[0]:
            raise PruningParameterError(
                f"data: inputs and labels disagree on the number of examples ({data[0].shape[0]} vs {data[1].shape[0]})"
            )
        return data
    return None


def batches_per_epoch(data: Any, batch_size: int) -> int:
    """Number of batches one pass over ``data`` yields."""
    pair = _tensor_pair(data)
    if pair is not None:
        return math.ceil(pair[0].shape[0] / batch_size)
    try:
        return len(data)
    except TypeError as exc:
        raise PruningParameterError("data: expected tensors (inputs, labels) or a sized iterable of batches, got "
                                    f"{type(data).__name__}") from exc


def training_batches(data: Any, batch_size: int, seed: int, epoch: int) -> Iterator[Batch]:
    """Batches of one epoch; tensor pairs are shuffled with ``torch.Generator`` seeded ``seed + epoch``."""
    pair = _tensor_pair(data)
    if pair is None:
        yield from data
        return
    inputs, labels = pair
    order = torch.randperm(inputs.shape[0], generator=torch.Generator().manual_seed(seed + epoch))
    for start in range(0, inputs.shape[0], batch_size):
        idx = order[start:start + batch_size]
        yield inputs[idx], labels[idx]


def lr_factor(step: int, total: int, warmup: int, warmup_start: float, min_ratio: float) -> float:
    """LR multiplier at ``step`` (0-based): linear warm-up ``warmup_start -> 1``, then cosine ``1 -> min_ratio``."""
    if step < warmup:
        return warmup_start + (1.0 - warmup_start) * step / warmup
    span = max(1, total - warmup)
    progress = min(1.0, (step - warmup) / span)
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def distillation_loss(
    student: torch.Tensor, teacher: torch.Tensor | None, labels: torch.Tensor, config: FinetuneConfig
) -> torch.Tensor:
    """``CE_ls`` without a teacher; ``(1 - a) CE_ls + a tau^2 KL(p_T || p_S)`` with one (9.2)."""
    ce = F.cross_entropy(student, labels, label_smoothing=config.label_smoothing)
    if teacher is None:
        return ce
    tau = config.kd_tau
    kl = F.kl_div(F.log_softmax(student / tau, dim=-1), F.log_softmax(teacher / tau, dim=-1),
                  reduction="batchmean", log_target=True)
    return (1.0 - config.kd_alpha) * ce + config.kd_alpha * tau**2 * kl


def masked_parameters(model: nn.Module, mask: Mask) -> dict[str, tuple[nn.Parameter, torch.Tensor]]:
    """``{layer: (weight parameter, float keep-tensor on its device)}`` for every layer of ``mask``."""
    mask.validate(model)
    modules = dict(model.named_modules())
    return {
        name: (modules[name].weight, keep.to(device=modules[name].weight.device, dtype=modules[name].weight.dtype))
        for name, keep in mask.keep.items()
    }


def _optimizer(params: list[nn.Parameter], config: FinetuneConfig) -> torch.optim.Optimizer:
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, nesterov=config.nesterov,
                               weight_decay=config.weight_decay)
    return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)


def train_masked(
    model: nn.Module,
    data: Any,
    config: FinetuneConfig,
    loss_fn: LossFn,
    *,
    trainable: list[nn.Parameter],
    grad_masks: Mapping[nn.Parameter, torch.Tensor],
    zero_masks: Mapping[nn.Parameter, torch.Tensor],
    progress: bool = False,
    description: str = "fine-tune",
    on_step: Callable[[int, nn.Module], None] | None = None,
) -> tuple[int, tuple[float, ...]]:
    """The training loop shared by keep-FT and the SER selection phase (module docstring).

    Only ``trainable`` parameters are optimised; ``grad_masks[p]`` multiplies ``p.grad`` after
    backward; ``zero_masks[p]`` multiplies ``p`` after every optimiser step.  Returns
    ``(steps, losses)``.
    """
    per_epoch = batches_per_epoch(data, config.batch_size)
    total = per_epoch * config.epochs
    if config.max_steps is not None:
        total = min(total, config.max_steps)
    if total == 0 or not trainable:
        return 0, ()
    warmup = min(MAX_WARMUP_STEPS, total // 4) if config.warmup_steps is None else config.warmup_steps
    optimizer = _optimizer(trainable, config)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, total, warmup, config.warmup_start, config.min_lr_ratio)
    )
    device = trainable[0].device
    was_training = model.training
    model.train()
    losses: list[float] = []
    torch.manual_seed(config.seed)
    with tqdm(total=total, desc=description, disable=not progress, leave=False) as bar:
        for epoch in range(config.epochs):
            for inputs, labels in training_batches(data, config.batch_size, config.seed, epoch):
                if len(losses) == total:
                    break
                inputs, labels = inputs.to(device), labels.to(device)
                optimizer.zero_grad(set_to_none=True)
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=config.bf16_autocast):
                    loss = loss_fn(model, inputs, labels)
                if not torch.isfinite(loss):
                    raise PruningParameterError(f"{description}: the loss became {float(loss.detach())} at step "
                                                f"{len(losses)}")
                loss.backward()
                with torch.no_grad():
                    for param, keep in grad_masks.items():
                        if param.grad is not None:
                            param.grad.mul_(keep)
                if config.grad_clip is not None:
                    torch.nn.utils.clip_grad_norm_(trainable, config.grad_clip)
                optimizer.step()
                scheduler.step()
                with torch.no_grad():
                    for param, keep in zero_masks.items():
                        param.mul_(keep)
                losses.append(float(loss.detach()))
                bar.update(1)
                bar.set_postfix(loss=f"{losses[-1]:.4f}")
                if on_step is not None:
                    on_step(len(losses), model)
    model.train(was_training)
    return len(losses), tuple(losses)


def finetune(
    model: nn.Module,
    mask: Mask,
    data: Any,
    config: FinetuneConfig = FinetuneConfig(),
    *,
    teacher: nn.Module | None = None,
    inplace: bool = False,
    progress: bool = True,
    on_step: Callable[[int, nn.Module], None] | None = None,
) -> FinetuneResult:
    """Fine-tune ``model`` (a copy unless ``inplace``) with ``mask`` frozen: pruned weights stay exactly 0.

    The mask is applied before the first step.  ``teacher`` switches on distillation (9.2); it is
    put in eval mode, run under ``no_grad`` and receives no gradients.  ``on_step(step, model)`` is
    called after every optimiser step (after the mask is re-applied).
    """
    target = model if inplace else copy.deepcopy(model)
    mask.apply(target, inplace=True)
    masked = masked_parameters(target, mask)
    keeps = {param: keep for param, keep in masked.values()}
    if teacher is not None:
        teacher.eval()

    def loss_fn(net: nn.Module, inputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        teacher_logits = None
        if teacher is not None:
            with torch.no_grad():
                teacher_logits = teacher(inputs)
        return distillation_loss(net(inputs), teacher_logits, labels, config)

    trainable = [p for p in target.parameters() if p.requires_grad]
    steps, losses = train_masked(
        target, data, config, loss_fn, trainable=trainable, grad_masks=keeps, zero_masks=keeps,
        progress=progress, description="distill" if teacher is not None else "fine-tune", on_step=on_step,
    )
    return FinetuneResult(model=target, steps=steps, losses=losses, config=config)
