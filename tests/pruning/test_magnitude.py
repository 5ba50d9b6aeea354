"""Magnitude pruning (ALGORITHMS.md 3): exact count, selection, nestedness, layerwise, k:n top-k."""

import math

import numpy as np
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from pruning.magnitude import exact_count_prune, magnitude, magnitude_kn
from pruning.mask import weight_sparsity


def small_model(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Linear(4 * 4 * 4, 8), nn.ReLU(), nn.Linear(8, 4))


def selection_violations(keep: np.ndarray, scores: np.ndarray) -> int:
    """Number of pruned entries strictly larger than some kept entry (0 for a magnitude selection)."""
    if keep.all() or not keep.any():
        return 0
    return int((scores[~keep] > scores[keep].min()).sum())


@given(seed=st.integers(0, 10_000), s=st.floats(0, 0.99), quantize=st.booleans())
def test_global_exact_count_and_selection(seed, s, quantize):
    model = small_model(seed)
    if quantize:  # many ties
        with torch.no_grad():
            for p in model.parameters():
                p.copy_(torch.round(p * 4) / 4)
    mask = magnitude(model, s)
    report = mask.sparsity_report()
    assert report.zeros == math.floor(s * report.total)
    scores = np.concatenate([m.weight.detach().abs().double().reshape(-1).numpy()
                             for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d))])
    keep = np.concatenate([k.reshape(-1).numpy() for k in mask.keep.values()])
    assert selection_violations(keep, scores) == 0
    assert len(mask.keep) == 3  # every Linear and Conv2d


@given(seed=st.integers(0, 10_000), s=st.floats(0, 0.99))
def test_layerwise_prunes_floor_s_numel_in_every_layer(seed, s):
    model = small_model(seed)
    mask = magnitude(model, s, scope="layerwise")
    modules = dict(model.named_modules())
    for name, keep in mask.keep.items():
        scores = modules[name].weight.detach().abs().double().reshape(-1).numpy()
        assert int((~keep).sum()) == math.floor(s * keep.numel())
        assert selection_violations(keep.reshape(-1).numpy(), scores) == 0


def test_selection_check_catches_a_largest_first_mask():
    scores = np.array([0.1, 0.5, 0.2, 0.9])
    good = exact_count_prune(scores, 2)
    assert good.tolist() == [False, True, False, True]
    assert selection_violations(~good, scores) > 0  # known-bad: prune the largest


def test_ties_go_to_the_lowest_flat_index():
    keep = exact_count_prune(np.ones(10), 4)
    assert keep.tolist() == [False] * 4 + [True] * 6
    keep = exact_count_prune(np.array([0.0, 2.0, 1.0, 1.0, 1.0]), 3)
    assert keep.tolist() == [False, True, False, False, True]


def test_cumulative_masks_are_nested():
    model = small_model(7)
    previous = None
    for s in (0.2, 0.4, 0.6, 0.8):
        mask = magnitude(model, s)
        model = mask.apply(model)
        assert weight_sparsity(model).zeros >= mask.sparsity_report().zeros
        if previous is not None:
            for name, keep in mask.keep.items():
                assert not (keep & ~previous.keep[name]).any()  # zeros stay zeros
        previous = mask


def test_global_differs_from_layerwise_on_heterogeneous_layers():
    model = small_model(1)
    with torch.no_grad():
        model[4].weight.mul_(100)  # a layer of large weights keeps everything under global
    g, lw = magnitude(model, 0.5), magnitude(model, 0.5, scope="layerwise")
    assert g.sparsity_report().per_layer["4"] == 0.0
    assert lw.sparsity_report().per_layer["4"] == 0.5


@given(seed=st.integers(0, 10_000), spec=st.sampled_from(["2:4", "1:4", "4:8", "3:4"]))
def test_magnitude_kn_keeps_the_k_largest_per_group(seed, spec):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(16, 8), nn.Linear(8, 8), nn.Linear(8, 3))
    mask = magnitude_kn(model, spec)
    k, n = (int(v) for v in spec.split(":"))
    assert set(mask.layer_names) == {"0", "1"}  # classifier excluded
    mask.validate(model)
    for name, keep in mask.keep.items():
        w = dict(model.named_modules())[name].weight.detach().abs().reshape(keep.shape[0], -1, n)
        kg = keep.reshape(w.shape)
        kept_min = torch.where(kg, w, torch.inf).amin(dim=2)
        dropped_max = torch.where(~kg, w, -torch.inf).amax(dim=2)
        assert (kept_min >= dropped_max).all()
