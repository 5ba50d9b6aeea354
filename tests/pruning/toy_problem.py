"""A small ReLU MLP and a 4-class toy task shared by the SER and Hybrid tests."""

import torch
from torch import nn


def toy_mlp(seed: int = 0) -> nn.Sequential:
    """``12 -> 32 -> 24 -> 4`` ReLU MLP initialised under ``torch.manual_seed(seed)``."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(12, 32), nn.ReLU(), nn.Linear(32, 24), nn.ReLU(), nn.Linear(24, 4))


def toy_data(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` Gaussian inputs in R^12 labelled by the signs of their first two coordinates (4 classes)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 12, generator=g)
    return x, (x[:, 0] > 0).long() + 2 * (x[:, 1] > 0).long()
