"""MAC accounting (ALGORITHMS.md 8.3, 12.1): the paper's exact numbers from architecture descriptions."""

from fractions import Fraction

import pytest
import torch
import torchvision
from torch import nn

from pruning.kn_patterns import KNPattern
from pruning.macs import ViTMacModel, kn_mac_report, layer_macs, vit_mac_report, vit_macs
from pruning.target_layers import kn_layers

VIT_B = ViTMacModel(dim=768, mlp_dim=3072, depth=12)
VIT_L = ViTMacModel(dim=1024, mlp_dim=4096, depth=24)


def test_vit_b_dense_tome_and_2_4_numbers():
    assert vit_macs(VIT_B) == 17_563_828_224
    assert round(vit_mac_report(VIT_B, tome_r=8).reduction * 100, 2) == 22.81
    both = vit_mac_report(VIT_B, tome_r=8, pattern="2:4")
    assert round(both.reduction * 100, 2) == 59.81
    assert round(float(both.sparse_exec) / 1e9, 2) == 7.06
    assert round(both.theoretical_speedup, 2) == 2.49


def test_vit_l_dense():
    assert round(float(vit_macs(VIT_L)) / 1e9, 2) == 61.55


def test_known_bad_token_charging_is_caught():
    """Charging block j at its post-merge count T0 - r j (instead of T0 - r (j-1)) misses 59.81 %."""
    d, h = VIT_B.dim, VIT_B.mlp_dim
    wrong = Fraction(VIT_B.patches * d * VIT_B.patch_fan_in + d * VIT_B.classes)
    for j in range(1, 13):
        t = 197 - 8 * j
        wrong += Fraction(1, 2) * t * (4 * d * d + 2 * d * h) + 2 * t * t * d
    assert round(float(1 - wrong / vit_macs(VIT_B)) * 100, 2) != 59.81


def test_resnet50_cast_conv_2_4():
    model = torchvision.models.resnet50(weights=None)
    macs = layer_macs(model)
    eligible = kn_layers(model, KNPattern(2, 4))
    assert len(eligible) == 52  # 48 bottleneck convs + 4 downsample convs
    report = kn_mac_report(macs, eligible, "2:4")
    assert round(float(report.dense) / 1e9, 2) == 4.09
    assert round(report.eligible_fraction * 100, 2) == 97.06
    assert round(report.reduction * 100, 1) == 48.5 and round(report.theoretical_speedup, 2) == 1.94
    # known-bad: counting the classifier as eligible changes the reduction
    assert round(kn_mac_report(macs, list(eligible) + ["fc"], "2:4").reduction * 100, 2) != 48.53


def test_resnet50d_cast_conv_2_4():
    timm = pytest.importorskip("timm")
    model = timm.create_model("resnet50d", pretrained=False)
    report = kn_mac_report(layer_macs(model), kn_layers(model, KNPattern(2, 4)), "2:4")
    assert round(report.reduction * 100, 2) == 49.85 and round(report.theoretical_speedup, 2) == 1.99


def test_hook_counts_follow_the_formulas():
    model = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.Conv2d(8, 8, 3, groups=2), nn.Flatten(),
                          nn.LazyLinear(5))
    model(torch.zeros(1, 3, 16, 16))
    macs = layer_macs(model, (1, 3, 16, 16))
    assert macs == {"0": 8 * 8 * 8 * 3 * 9, "1": 8 * 6 * 6 * 4 * 9, "3": 8 * 6 * 6 * 5}
    wide = kn_mac_report(macs, ["1"], "6:12")
    assert wide.sparse_exec == sum(macs.values()) - Fraction(1, 2) * macs["1"]
