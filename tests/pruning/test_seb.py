"""SEB (ALGORITHMS.md 4.5): beta = 0 is global magnitude, monotonicity in z, the 0.1 floor, regimes."""

from __future__ import annotations

import copy
import inspect
import math

import numpy as np
import pytest
import torch
from hypothesis import given, strategies as st
from torch import nn

from pruning.errors import InvalidWeightError, PruningParameterError
from pruning.magnitude import magnitude
from pruning.seb import (
    WEIGHT_FLOOR, Regime, layer_type, regime_for, seb, seb_weights, standardise, weighted_exact_prune,
)
from pruning.rmt_baseline import haar_sv_sparsify
from pruning.sigma_cache import spectral_cache


def mlp(seed: int, widths=(12, 24, 16, 6)) -> nn.Sequential:
    torch.manual_seed(seed)
    layers = []
    for a, b in zip(widths, widths[1:]):
        layers += [nn.Linear(a, b), nn.ReLU()]
    return nn.Sequential(*layers[:-1])


def keeps_equal(a, b) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@given(seed=st.integers(0, 10_000), s=st.floats(0.0, 0.95))
def test_beta_zero_is_global_magnitude_bit_for_bit(seed, s):
    model = mlp(seed)
    cache = spectral_cache(model)
    assert keeps_equal(seb(model, s, cache=cache, regime=Regime(beta=0.0), sv_z_base=None).keep,
                       magnitude(model, s).keep)
    # s >= s_d also switches the re-weighting off
    assert keeps_equal(seb(model, max(s, 0.5), cache=cache, regime=Regime(beta=2.0, s_d=0.5), sv_z_base=None).keep,
                       magnitude(model, max(s, 0.5)).keep)


def test_known_bad_nonzero_beta_is_not_magnitude():
    model = mlp(3)
    cache = spectral_cache(model)
    assert len(set(cache.sigma_plus.values())) > 1
    assert not keeps_equal(seb(model, 0.5, cache=cache, regime=Regime(beta=1.5, s_d=0.9), sv_z_base=None).keep,
                           magnitude(model, 0.5).keep)


def two_identical_layers(seed: int):
    torch.manual_seed(seed)
    w = torch.randn(8, 8)
    modules = {"a": nn.Linear(8, 8), "b": nn.Linear(8, 8), "c": nn.Linear(8, 8)}
    with torch.no_grad():
        modules["a"].weight.copy_(w)
        modules["b"].weight.copy_(w)
        modules["c"].weight.copy_(torch.randn(8, 8))
    return modules


def densities(modules, weights, s):
    total = sum(m.weight.numel() for m in modules.values())
    keep = weighted_exact_prune(modules, weights, math.floor(s * total))
    return {n: float(k.float().mean()) for n, k in keep.items()}


@given(seed=st.integers(0, 1000), x=st.lists(st.floats(-5, 5), min_size=3, max_size=3),
       beta=st.floats(0.0, 3.0), s=st.floats(0.05, 0.9))
def test_larger_z_never_ends_denser(seed, x, beta, s):
    modules = two_identical_layers(seed)
    signal = dict(zip("abc", x))
    weights = seb_weights(signal, modules, s, Regime(beta=beta, s_d=1.0))
    dens = densities(modules, weights, s)
    if x[0] > x[1] and weights["a"] > weights["b"]:
        assert dens["a"] <= dens["b"]
    elif x[0] > x[1]:  # equal weights (both floored or d = 0): identical scores, only index ties differ
        assert abs(dens["a"] - dens["b"]) <= 1 / 64


def test_known_bad_negative_beta_reverses_monotonicity():
    modules = two_identical_layers(0)
    weights = seb_weights({"a": 2.0, "b": 0.0, "c": 1.0}, modules, 0.5, Regime(beta=-0.5, s_d=1.0))
    dens = densities(modules, weights, 0.5)
    assert dens["a"] > dens["b"]


def test_floor_and_formula():
    names = ["l0", "l1", "l2", "l3"]
    signal = {"l0": 0.0, "l1": 0.0, "l2": 0.0, "l3": 10.0}
    x = np.array(list(signal.values()))
    z = (x - x.mean()) / x.std()
    regime = Regime(beta=4.0, s_d=1.0)
    s = 0.2
    d = 1 - s / 1.0
    weights = seb_weights(signal, names, s, regime)
    assert 4.0 * d * z[0] <= -0.9
    assert weights["l0"] == WEIGHT_FLOOR
    assert weights["l3"] == pytest.approx(1 + 4.0 * d * z[3], rel=1e-15)
    # known-bad: the unfloored formula goes below the floor (here even negative)
    assert 1 + 4.0 * d * z[0] < WEIGHT_FLOOR


def test_standardise_uses_population_sd_and_handles_missing():
    values = {"a": 1.0, "b": 2.0, "c": 4.0}
    z = standardise(values, values)
    x = np.array([1.0, 2.0, 4.0])
    assert z["c"] == pytest.approx((4 - x.mean()) / x.std(ddof=0), rel=1e-14)
    assert z["c"] != pytest.approx((4 - x.mean()) / x.std(ddof=1), rel=1e-6)  # known-bad: sample sd
    with_missing = standardise({"a": 1.0, "b": 2.0, "c": 4.0, "d": None}, ["a", "b", "c", "d"])
    assert with_missing["d"] == 0.0 and with_missing["c"] == z["c"]
    reference = standardise({"a": 1.0, "b": 2.0, "c": 4.0, "d": None}, ["a", "b", "c", "d"], "reference")
    assert reference["d"] != 0.0  # the reference substitutes 0 before standardising
    assert standardise({"a": 3.0, "b": 3.0}, ["a", "b"]) == {"a": 0.0, "b": 0.0}


def test_regime_table_matches_spec_4_3():
    assert regime_for(0.10) == Regime("hill", 0.5, 0.3)
    assert regime_for(0.20).signal == "hill"
    assert regime_for(0.30) == Regime("sigma_plus", 1.0, 0.5)
    assert regime_for(0.50) == Regime("sigma_plus", 1.25, 0.7)
    high = regime_for(0.60)
    assert (high.beta_for("attn"), high.beta_for("mlp"), high.beta_for("other"), high.s_d) == (1.0, 2.0, 1.5, 0.85)
    assert regime_for(0.10, "sigma_plus") == Regime("sigma_plus", 1.0, 0.5)
    assert regime_for(0.29, "final_comparison").beta == 0.0
    assert regime_for(0.30, "final_comparison").beta == 1.0


def test_layer_type_rule():
    assert [layer_type(n) for n in ("blocks.0.attn.qkv", "blocks.0.mlp.fc1", "stages.1.fc2", "head",
                                    "patch_embed.proj")] \
        == ["attn", "mlp", "mlp", "other", "other"]


def test_exact_count_and_provenance():
    model = mlp(1)
    mask = seb(model, 0.37)
    report = mask.sparsity_report()
    assert report.zeros == math.floor(0.37 * report.total)
    assert mask.provenance.method == "seb" and "layer_weights" in mask.provenance.options
    assert mask.provenance.options["row"]["s_d"] == 0.5


def test_bad_input_typed_errors():
    model = mlp(0)
    for bad in (1.0, -0.1, float("nan"), "x"):
        with pytest.raises(PruningParameterError, match="target_sparsity"):
            seb(model, bad)
    with pytest.raises(PruningParameterError, match="regime"):
        seb(model, 0.5, regime="nope")
    with pytest.raises(PruningParameterError, match="s_d"):
        Regime(s_d=0.0)
    for bad in (-0.5, float("nan")):
        with pytest.raises(PruningParameterError, match="sv_z_base"):
            seb(model, 0.5, sv_z_base=bad)
    with torch.no_grad():
        model[2].weight[0, 0] = float("nan")
    with pytest.raises(InvalidWeightError, match="^2:"):
        seb(model, 0.5)


def test_haar_sv_preprocessing_is_on_by_default_with_the_paper_row_values():
    params = inspect.signature(seb).parameters
    assert (params["sv_z_base"].default, params["sv_power"].default) == (0.5, 3)
    mask = seb(mlp(2), 0.4)
    prep = mask.provenance.options["sv_preprocess"]
    assert (prep["method"], prep["z_base"], prep["power"], prep["hill_scaling"]) == ("haar_sv_sparsify", 0.5, 3, True)
    assert seb(mlp(2), 0.4, sv_z_base=None).provenance.options["sv_preprocess"] is None


def test_haar_sv_preprocessing_runs_once_before_the_budget():
    model = mlp(5, widths=(40, 64, 48, 10))
    dense = copy.deepcopy(model)
    cache = spectral_cache(dense)
    assert len(cache.fits) >= 2
    mask = seb(model, 0.45, cache=cache, inplace=True)
    alpha = cache.hill_alpha
    alpha_mean = float(np.mean(list(alpha.values())))
    z_used = mask.provenance.options["sv_preprocess"]["z_per_layer"]
    some_layer_changed = hill_scaling_matters = False
    for name, module in dense.named_modules():
        if name not in mask.keep:
            continue
        w = module.weight.detach().double().numpy()
        if name in cache.fits:
            z = 0.5 * alpha[name] / alpha_mean
            assert z_used[name] == pytest.approx(z, rel=1e-12)
            expected = haar_sv_sparsify(w, cache.sigma_plus[name], z, 3)
            # known-bad: without the Hill scaling of z the weights would differ
            unscaled = haar_sv_sparsify(w, cache.sigma_plus[name], 0.5, 3)
            hill_scaling_matters |= not np.allclose(expected, unscaled, atol=1e-7)
            some_layer_changed |= not np.allclose(expected, w, atol=1e-6)
        else:
            expected = w
        got = dict(model.named_modules())[name].weight.detach().double().numpy()
        np.testing.assert_allclose(got, expected, atol=1e-6)
    assert some_layer_changed and hill_scaling_matters
    # the budget is the plain SEB budget of the preprocessed weights ...
    assert keeps_equal(mask.keep, seb(model, 0.45, cache=cache, sv_z_base=None).keep)
    # ... and not that of the raw weights (known-bad: preprocessing skipped)
    assert not keeps_equal(mask.keep, seb(dense, 0.45, cache=cache, sv_z_base=None).keep)


def test_haar_sv_preprocessing_leaves_the_model_alone_unless_inplace():
    model = mlp(6, widths=(40, 64, 48, 10))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    copy_mask = seb(model, 0.3)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert copy_mask.provenance.options["sv_preprocess"]["weights_written_to_model"] is False
    assert keeps_equal(copy_mask.keep, seb(model, 0.3, inplace=True).keep)
    assert not all(torch.equal(before[k], v) for k, v in model.state_dict().items())
