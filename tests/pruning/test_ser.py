"""SER prune–restore step (ALGORITHMS.md 5.4)."""

from __future__ import annotations

import copy
import math
from dataclasses import replace

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st
from torch import nn

from pruning.errors import PruningParameterError
from pruning.finetune import FinetuneConfig, finetune, train_masked
from pruning.seb import Regime, seb
from pruning.ser import restoration_scores, select_restored, selection_phase, ser, ser_step
from pruning.sigma_cache import spectral_cache
from tests.pruning.toy_problem import toy_data, toy_mlp

SELECT = FinetuneConfig(optimizer="adamw", lr=1e-2, weight_decay=0.0, warmup_steps=0, min_lr_ratio=0.25, batch_size=16,
                        label_smoothing=0.0)
KEEP = FinetuneConfig(optimizer="sgd", lr=1e-2, batch_size=16, max_steps=4)


mlp = toy_mlp


def data(n: int = 64):
    return toy_data(n, seed=7)


@settings(max_examples=min(12, settings().max_examples))  # each example trains two phases
@given(s=st.floats(0.05, 0.8), r=st.floats(0.0, 0.1), seed=st.integers(0, 50),
       value=st.sampled_from(["trained", "original"]), reservoir=st.sampled_from(["all_zeros", "newly_pruned"]))
def test_exact_zero_count_after_a_step(s, r, seed, value, reservoir):
    model = mlp(seed)
    cache = spectral_cache(model)
    step = ser_step(model, s, data(), cache=cache, r=r, selection=SELECT, keep_ft=KEEP, restore_value=value,
                    reservoir=reservoir)
    report = step.mask.sparsity_report()
    assert report.zeros == math.floor(s * report.total) == step.target_zeros
    assert sum(step.restored_per_layer.values()) == step.restore_budget == round(r * report.total)
    for name, module in model.named_modules():
        if name in step.mask.keep:
            assert torch.count_nonzero(module.weight.detach()[~step.mask.keep[name]]) == 0


def test_non_target_layers_untouched_by_the_mask():
    model = mlp(1)
    before = model[4].weight.detach().clone()
    step = ser_step(model, 0.5, data(), cache=spectral_cache(model, ["0", "2"]), r=0.05, layers=["0", "2"],
                    selection=SELECT, keep_ft=None)
    assert set(step.mask.keep) == {"0", "2"}
    assert torch.equal(model[4].weight, before)  # frozen in selection, no keep-FT


def test_k_zero_is_seb_plus_keep_ft():
    model = mlp(2)
    cache = spectral_cache(model)
    regime = Regime(beta=1.0, s_d=0.9)
    mask = ser(model, 0.45, data=data(), cache=cache, r=0.0, regime=regime, keep_ft=KEEP, selection=SELECT, seed=4)
    reference = seb(model, 0.45, cache=cache, regime=regime)
    assert all(torch.equal(mask.keep[n], reference.keep[n]) for n in reference.keep)
    a = copy.deepcopy(model)
    ser_step(a, 0.45, data(), cache=cache, r=0.0, regime=regime, keep_ft=KEEP, selection=SELECT)
    b = finetune(model, reference, data(), KEEP, progress=False).model
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    # known-bad: a positive budget changes the mask
    other = ser(model, 0.45, data=data(), cache=cache, r=0.05, regime=regime, keep_ft=None, selection=SELECT)
    assert any(not torch.equal(other.keep[n], reference.keep[n]) for n in reference.keep)


def _reservoir_setup(seed: int):
    model = mlp(seed)
    modules = {n: m for n, m in model.named_modules() if isinstance(m, nn.Linear)}
    reservoir = {}
    with torch.no_grad():
        for n, m in modules.items():
            reservoir[n] = m.weight.abs() < m.weight.abs().median()
            m.weight[reservoir[n]] = 0.0
    return model, modules, reservoir


def test_selection_phase_leaves_non_reservoir_bit_identical():
    model, modules, reservoir = _reservoir_setup(3)
    before = copy.deepcopy(model.state_dict())
    steps = selection_phase(model, modules, reservoir, data(), replace_steps(SELECT, 8), logit_l2=1.0, progress=False)
    assert steps == 4  # 64 examples / 16 per batch, one epoch
    after = model.state_dict()
    for name in modules:
        key = f"{name}.weight"
        assert torch.equal(after[key][~reservoir[name]], before[key][~reservoir[name]])
        assert torch.equal(after[f"{name}.bias"], before[f"{name}.bias"])
    assert any(not torch.equal(after[f"{n}.weight"], before[f"{n}.weight"]) for n in modules)
    assert all(p.requires_grad for p in model.parameters())  # flags restored


def replace_steps(config, steps):
    return replace(config, max_steps=steps)


def test_known_bad_unmasked_or_decayed_selection_moves_kept_weights():
    for grad_mask, decay in ((False, 0.0), (True, 0.5)):
        model, modules, reservoir = _reservoir_setup(3)
        before = {n: m.weight.detach().clone() for n, m in modules.items()}
        weights = [m.weight for m in modules.values()]
        masks = {m.weight: reservoir[n].float() for n, m in modules.items()} if grad_mask else {}
        config = replace(SELECT, max_steps=4, weight_decay=decay)
        train_masked(model, data(), config, lambda net, x, y: nn.functional.cross_entropy(net(x), y),
                     trainable=weights, grad_masks=masks, zero_masks={})
        assert any(not torch.equal(m.weight[~reservoir[n]], before[n][~reservoir[n]]) for n, m in modules.items())


def critical_toy():
    """x7 = +-1 decides the label through hidden unit 7, whose only input weight W1[7,7] = 0.05 is tiny."""
    net = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 2))
    with torch.no_grad():
        w1 = torch.zeros(8, 8)
        w1[7, 7] = 0.05
        w1[:7, :7] = torch.eye(7)
        w2 = torch.zeros(2, 8)
        w2[0, 7], w2[1, 7] = 3.0, -3.0
        w2[:, :7] = 1.0
        net[0].weight.copy_(w1)
        net[2].weight.copy_(w2)
        net[0].bias.zero_()
        net[0].bias[7] = 0.1
        net[2].bias.zero_()
    x = torch.zeros(32, 8)
    x[:, 7] = torch.tensor([1.0, -1.0]).repeat(16)
    y = (x[:, 7] < 0).long()
    return net, (x, y)


def test_toy_critical_removed_entry_is_restored():
    net, train = critical_toy()
    total = 80
    nonzero = int(sum(torch.count_nonzero(m.weight) for m in (net[0], net[2])))
    s = (total - nonzero) / total  # Z* = the existing zeros, so over-pruning removes exactly the smallest weight
    step = ser_step(net, s, train, cache=spectral_cache(net), r=1 / total, regime=Regime(beta=0.0),
                    selection=SELECT, keep_ft=None, logit_l2=0.0)
    assert step.restore_budget == 1
    assert step.mask.keep["0"][7, 7]
    assert net[0].weight[7, 7] != 0
    # known-bad: without a selection phase nothing moves and the restored entry is just the first index
    net, train = critical_toy()
    step = ser_step(net, s, train, cache=spectral_cache(net), r=1 / total, regime=Regime(beta=0.0),
                    selection=replace_steps(SELECT, 0), keep_ft=None, logit_l2=0.0)
    assert not step.mask.keep["0"][7, 7]


def test_restoration_multiplier_direction():
    delta = {"a": np.array([1.0, 2.0]), "b": np.array([1.5, 0.0])}
    weights = {"a": 0.5, "b": 2.0}
    w = restoration_scores(delta, weights, "w")
    inv = restoration_scores(delta, weights, "inv_w")
    assert np.array_equal(w["b"], [3.0, 0.0]) and np.array_equal(inv["a"], [2.0, 4.0])
    reservoir = {"a": np.array([True, True]), "b": np.array([True, True])}
    assert select_restored(w, reservoir, 1)["b"][0]  # "w" favours the heavily pruned (high sigma_+) layer
    assert select_restored(inv, reservoir, 1)["a"][1]
    with pytest.raises(PruningParameterError, match="restoration budget"):
        select_restored(w, {"a": np.array([True, False]), "b": np.array([False, False])}, 2)


def test_user_model_not_mutated_and_provenance():
    model = mlp(0)
    before = copy.deepcopy(model.state_dict())
    mask = ser(model, 0.5, data=data(), r=0.03, selection=SELECT, keep_ft=KEEP, seed=9)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    options = mask.provenance.options
    assert mask.provenance.seed == 9 and options["restore_multiplier"] == "w" and options["reservoir"] == "all_zeros"
    assert options["selection"]["seed"] == 9 and options["keep_ft"]["lr"] == KEEP.lr


def test_bad_options_typed_errors():
    model = mlp(0)
    cache = spectral_cache(model)
    for kwargs, word in (({"r": -0.1}, "r"), ({"r": float("nan")}, "r"), ({"restore_value": "x"}, "restore_value"),
                         ({"reservoir": "x"}, "reservoir"), ({"restore_multiplier": "x"}, "restore_multiplier"),
                         ({"r": 0.6}, "r")):
        with pytest.raises(PruningParameterError, match=word):
            ser_step(copy.deepcopy(model), 0.5, data(), cache=cache, keep_ft=None, **kwargs)
    with pytest.raises(PruningParameterError, match="target_sparsity"):
        ser_step(model, 1.2, data(), cache=cache)
