"""MAC accounting (ALGORITHMS.md 8.2-8.3).

Convention: 1 MAC = one multiply-add; Conv2d and Linear (and, for ViTs, the two attention matmuls)
are counted; norms, activations, softmax, pooling and ToMe matching are ignored.

* CNN (hook-based, batch 1, native resolution): ``MAC_conv = C_out H_out W_out (C_in/groups) k_h k_w``,
  ``MAC_linear = tokens d_in d_out``; with ``k:n`` on the eligible layers
  ``MACs_sparse_exec = MACs_dense - (1 - k/n) sum_eligible MACs``.
* ViT (analytical): per block ``j`` with incoming tokens ``T_j = T_0 - r (j - 1)`` (ToMe ``r``),
  ``density T_j (4 D^2 + 2 D H) + 2 T_j^2 D``, plus ``patches D k_patch`` (patch embedding) and
  ``D classes`` (head); ``density = k/n`` on qkv, proj, fc1, fc2 only.

``MAC reduction = 1 - sparse / dense``; ``theoretical speedup = 1 / (1 - reduction)`` (8.2).
All counts are exact rationals (``fractions.Fraction``) until reported.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Iterable, Mapping

import torch
from torch import nn

from .errors import PruningParameterError, IneligibleLayerError
from .kn_patterns import KNPattern

__all__ = ["MacReport", "ViTMacModel", "layer_macs", "kn_mac_report", "vit_macs", "vit_mac_report"]


@dataclass(frozen=True)
class MacReport:
    """Dense and sparse-execution MACs of one configuration."""

    dense: Fraction
    sparse_exec: Fraction
    eligible: Fraction

    @property
    def reduction(self) -> float:
        return float(1 - self.sparse_exec / self.dense)

    @property
    def theoretical_speedup(self) -> float:
        return float(self.dense / self.sparse_exec)

    @property
    def eligible_fraction(self) -> float:
        return float(self.eligible / self.dense)


def layer_macs(model: nn.Module, input_shape: tuple[int, ...] = (1, 3, 224, 224)) -> dict[str, int]:
    """MACs of every Conv2d / Linear for one forward pass on a zero input of ``input_shape``."""
    counts: dict[str, int] = {}

    def counter(name: str):
        def hook(module, inputs, output):
            if isinstance(module, nn.Conv2d):
                c_out, c_in_g, k_h, k_w = module.weight.shape
                macs = output.shape[0] * c_out * output.shape[2] * output.shape[3] * c_in_g * k_h * k_w
            else:
                macs = output[..., 0].numel() * module.in_features * module.out_features
            counts[name] = counts.get(name, 0) + int(macs)

        return hook

    handles = [m.register_forward_hook(counter(name)) for name, m in model.named_modules()
               if isinstance(m, (nn.Conv2d, nn.Linear))]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(input_shape))
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    return counts


def kn_mac_report(macs: Mapping[str, int], eligible: Iterable[str], pattern: str | KNPattern) -> MacReport:
    """Whole-model accounting of a k:n projection of the ``eligible`` layers (8.3, C15)."""
    pat = KNPattern.parse(pattern)
    names = list(eligible)
    missing = [n for n in names if n not in macs]
    if missing:
        raise IneligibleLayerError(f"eligible: layers {missing} have no MAC count")
    dense = Fraction(sum(macs.values()))
    eligible_macs = Fraction(sum(macs[n] for n in names))
    sparse = dense - (1 - Fraction(pat.k, pat.n)) * eligible_macs
    return MacReport(dense=dense, sparse_exec=sparse, eligible=eligible_macs)


@dataclass(frozen=True)
class ViTMacModel:
    """Numbers of the analytical ViT model: width ``D``, MLP width ``H``, depth ``L`` and I/O sizes."""

    dim: int
    mlp_dim: int
    depth: int
    tokens: int = 197
    patches: int = 196
    patch_fan_in: int = 768
    classes: int = 1000


def vit_macs(cfg: ViTMacModel, *, tome_r: int = 0, density: Fraction | float = 1) -> Fraction:
    """Analytical ViT MACs (8.3) with ToMe ``r`` and k:n ``density`` on qkv, proj, fc1, fc2."""
    if tome_r < 0 or cfg.tokens - tome_r * (cfg.depth - 1) < 1:
        raise PruningParameterError(f"tome_r: {tome_r} leaves no tokens in the last of {cfg.depth} blocks")
    dens = Fraction(density)
    d, h = cfg.dim, cfg.mlp_dim
    total = Fraction(cfg.patches * d * cfg.patch_fan_in + d * cfg.classes)
    for j in range(1, cfg.depth + 1):
        t = cfg.tokens - tome_r * (j - 1)
        total += dens * t * (4 * d * d + 2 * d * h) + 2 * t * t * d
    return total


def vit_mac_report(cfg: ViTMacModel, *, tome_r: int = 0, pattern: str | KNPattern | None = None) -> MacReport:
    """Dense ViT vs the same ViT with ToMe ``r`` and (optionally) a k:n pattern on the block Linears."""
    density = Fraction(1) if pattern is None else Fraction(KNPattern.parse(pattern).k, KNPattern.parse(pattern).n)
    dense = vit_macs(cfg)
    block_linear = Fraction(cfg.depth * cfg.tokens * (4 * cfg.dim**2 + 2 * cfg.dim * cfg.mlp_dim))
    return MacReport(dense=dense, sparse_exec=vit_macs(cfg, tome_r=tome_r, density=density), eligible=block_linear)
