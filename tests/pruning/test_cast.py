"""CAST k:n (ALGORITHMS.md 7.3-7.6, 7.9): exact argmin vs brute force, priors, permutation, conv."""

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from pruning.calibration import ActivationCapture, layer_input_rows
from pruning.cast import cast_kn, cast_layer, group_covariances, select_patterns
from pruning.kn_patterns import KNPattern, candidate_patterns
from pruning.magnitude import magnitude_kn


# ---- brute force straight from the formulas of 7.3 ------------------------------------------------
def brute_force(u, h, k, mser=None, alpha=0.0, compat="paper"):
    """Loop over rows, groups and ``combinations(range(n), k)``; cost = mean_h (sum_dropped u h)^2."""
    rows, groups, n = u.shape
    hg = h.reshape(h.shape[0], groups, n)
    combos = list(itertools.combinations(range(n), k))
    cost = np.zeros((rows, groups, len(combos)))
    for i in range(rows):
        for g in range(groups):
            for p, kept in enumerate(combos):
                dropped = [j for j in range(n) if j not in kept]
                cost[i, g, p] = np.mean((hg[:, g, dropped] @ u[i, g, dropped]) ** 2)
    total = cost.copy()
    if mser is not None and alpha:
        keep = np.array([[j in kept for j in range(n)] for kept in combos], dtype=float)
        hamming = np.abs(keep[None, None] - mser[:, :, None, :]).sum(axis=3)
        if compat == "paper":
            scale = np.array([np.mean(u[:, g] ** 2 * np.mean(hg[:, g] ** 2, axis=0)) for g in range(groups)])
            scale = np.broadcast_to(scale, (rows, groups))
        else:
            scale = np.maximum(cost.mean(axis=2), 1e-12)
        total = cost + alpha * scale[..., None] * hamming
    return cost, total


def assert_exact_argmin(choice, total_bf):
    """The chosen pattern attains the brute-force minimum; where the minimum is clear, it is that pattern."""
    picked = np.take_along_axis(total_bf, choice[..., None], axis=2)[..., 0]
    best = total_bf.min(axis=2)
    np.testing.assert_allclose(picked, best, rtol=1e-9, atol=1e-12)
    ordered = np.sort(total_bf, axis=2)
    clear = (ordered[..., 1] - ordered[..., 0]) > 1e-9 * (1 + np.abs(ordered[..., 0]))
    assert (choice[clear] == total_bf.argmin(axis=2)[clear]).all()


problems = st.fixed_dictionaries({
    "seed": st.integers(0, 2**31 - 1),
    "kn": st.sampled_from([(2, 4), (1, 4), (3, 4), (4, 8), (3, 6)]),
    "rows": st.integers(1, 5),
    "groups": st.integers(1, 3),
    "tokens": st.integers(1, 12),
    "alpha": st.sampled_from([0.0, 0.1, 1.0, 50.0]),
    "compat": st.sampled_from(["paper", "reference"]),
    "sparse_src": st.booleans(),
})


def draw_problem(p):
    rng = np.random.default_rng(p["seed"])
    k, n = p["kn"]
    u = rng.standard_normal((p["rows"], p["groups"], n))
    h = rng.standard_normal((p["tokens"], p["groups"] * n)) * rng.uniform(0.1, 3, p["groups"] * n)
    mser = rng.random(u.shape) < 0.6 if p["sparse_src"] else np.ones(u.shape, bool)
    return k, n, u, h, mser


@given(problems)
def test_select_patterns_is_the_exact_argmin(p):
    k, n, u, h, mser = draw_problem(p)
    cands = candidate_patterns(KNPattern(k, n))
    choice, cost = select_patterns(u, group_covariances(h, n), cands, mser=mser, alpha=p["alpha"],
                                   prior_compat=p["compat"])
    cost_bf, total_bf = brute_force(u, h, k, mser, p["alpha"], p["compat"])
    assert_exact_argmin(choice, total_bf)
    np.testing.assert_allclose(cost, np.take_along_axis(cost_bf, choice[..., None], 2)[..., 0], rtol=1e-9, atol=1e-12)


def test_known_bad_variants_are_caught_by_the_brute_force_check():
    k, n, u, h, mser = draw_problem({"seed": 5, "kn": (2, 4), "rows": 6, "groups": 3, "tokens": 9,
                                     "alpha": 0.0, "compat": "paper", "sparse_src": False})
    cands = candidate_patterns(KNPattern(k, n))
    _, total_bf = brute_force(u, h, k)
    cov = group_covariances(h, n)
    argmax_choice = np.argmax(total_bf, axis=2)  # a variant picking the argmax
    identity_choice, _ = select_patterns(u, np.broadcast_to(np.eye(n), cov.shape), cands)  # ignores covariance
    for bad in (argmax_choice, identity_choice):
        with pytest.raises(AssertionError):
            assert_exact_argmin(bad, total_bf)


def test_identity_covariance_is_magnitude_top_k():
    rng = np.random.default_rng(0)
    u = rng.standard_normal((20, 5, 8))
    cands = candidate_patterns(KNPattern(4, 8))
    choice, _ = select_patterns(u, np.broadcast_to(np.eye(8), (5, 8, 8)), cands)
    keep = cands[choice]
    top = np.argsort(-np.abs(u), axis=2, kind="stable")[..., :4]
    expected = np.zeros_like(keep)
    np.put_along_axis(expected, top, True, axis=2)
    assert (keep == expected).all()


def test_rank_one_covariance_drops_the_cancelling_pair():
    u = np.array([[[1.0, -1.0, 0.1, 0.2]]])
    ones = np.ones((1, 4, 4))
    choice, cost = select_patterns(u, ones, candidate_patterns(KNPattern(2, 4)))
    assert candidate_patterns(KNPattern(2, 4))[choice[0, 0]].tolist() == [False, False, True, True]
    assert cost[0, 0] == 0.0  # (1 - 1)^2, unlike magnitude which keeps slots {0, 1}


def test_infinite_alpha_returns_the_ser_mask_when_it_is_k_n():
    rng = np.random.default_rng(1)
    cands = candidate_patterns(KNPattern(2, 4))
    mser = cands[rng.integers(0, 6, size=(7, 4))]
    u = rng.standard_normal(mser.shape)
    h = rng.standard_normal((30, 16))
    for compat in ("paper", "reference"):
        choice, _ = select_patterns(u, group_covariances(h, 4), cands, mser=mser, alpha=1e9, prior_compat=compat)
        assert (cands[choice] == mser).all()


def row_costs(w, keep, h, n):
    """Per-row CAST data cost sum_g mean_h (sum_{dropped} w h)^2 computed directly."""
    removed = np.where(keep, 0.0, w)
    d_out = w.shape[0]
    per_group = np.einsum("igk,tgk->tig", removed.reshape(d_out, -1, n), h.reshape(h.shape[0], -1, n))
    return (per_group**2).mean(axis=0).sum(axis=1)


def tiny_model(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(16, 24), nn.GELU(), nn.Linear(24, 16), nn.Linear(16, 5)).double()


@given(seed=st.integers(0, 10_000))
def test_cast_never_costs_more_than_magnitude_2_4_per_row(seed):
    model = tiny_model(seed)
    x = torch.randn(40, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    calib = ActivationCapture(x)(model, {"0": model[0], "2": model[2]})
    cast, mag = cast_kn(model, "2:4", calib), magnitude_kn(model, "2:4")
    assert set(cast.layer_names) == set(mag.layer_names) == {"0", "2"}
    for name in cast.layer_names:
        w = dict(model.named_modules())[name].weight.detach().numpy()
        c_cast = row_costs(w, cast.keep[name].numpy(), calib[name], 4)
        c_mag = row_costs(w, mag.keep[name].numpy(), calib[name], 4)
        assert (c_cast <= c_mag * (1 + 1e-12) + 1e-15).all()
        # known-bad: keeping the worst pattern of every group violates the same inequality
        _, total = brute_force(w.reshape(w.shape[0], -1, 4), calib[name], 2)
        worst = candidate_patterns(KNPattern(2, 4))[np.argmax(total, axis=2)].reshape(w.shape)
        assert (row_costs(w, worst, calib[name], 4) > c_mag * (1 + 1e-9)).any()


@pytest.mark.parametrize("spec", ["2:4", "4:8", "6:12", "8:16", "12:16"])
def test_every_pattern_gives_an_exact_k_n_mask_and_projection(spec):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(48, 16), nn.ReLU(), nn.Linear(16, 4)).double()
    dense = model
    with torch.no_grad():
        sparse_src = magnitude_kn(model, "1:4", exclude_classifier=False).apply(model)  # an "SER-like" source
    x = torch.randn(24, 48, dtype=torch.float64)
    mask = cast_kn(sparse_src, spec, ActivationCapture(x), dense=dense, alpha_ser=0.1, layers=["0"])
    mask.validate(model)
    pat = KNPattern.parse(spec)
    assert mask.pattern == pat and mask.provenance.options["n_candidates"] == pat.n_candidates
    projected = mask.apply(sparse_src, restore_from=dense)
    w_src, w_dense = sparse_src[0].weight.detach(), dense[0].weight.detach()
    u = torch.where(w_src != 0, w_src, w_dense)
    assert torch.equal(projected[0].weight.detach(), torch.where(mask.keep["0"], u, 0.0))
    nnz = (projected[0].weight != 0).reshape(16, -1, pat.n).sum(dim=2)
    assert (nnz <= pat.k).all()


def test_8_16_streaming_matches_brute_force_on_a_few_rows():
    k, n, u, h, mser = draw_problem({"seed": 11, "kn": (8, 16), "rows": 2, "groups": 1, "tokens": 20,
                                     "alpha": 0.0, "compat": "paper", "sparse_src": False})
    choice, _ = select_patterns(u, group_covariances(h, n), candidate_patterns(KNPattern(k, n)))
    hg = h.reshape(20, 1, 16)
    cands = candidate_patterns(KNPattern(k, n))
    drop = ~cands
    cost = np.stack([((hg[:, 0] @ (drop * u[i, 0]).T) ** 2).mean(axis=0) for i in range(2)])  # (rows, P)
    assert_exact_argmin(choice, cost[:, None, :])


def test_sampled_candidates_give_the_argmin_within_the_sample():
    rng = np.random.default_rng(2)
    u, h = rng.standard_normal((3, 2, 16)), rng.standard_normal((25, 32))
    pat = KNPattern(8, 16)
    sampled = candidate_patterns(pat, "paper", seed=9)
    choice, cost = select_patterns(u, group_covariances(h, 16), sampled)
    _, exact_cost = select_patterns(u, group_covariances(h, 16), candidate_patterns(pat))
    assert (cost >= exact_cost * (1 - 1e-12)).all()
    hg = h.reshape(25, 2, 16)
    direct = np.stack([[((hg[:, g] @ (~sampled * u[i, g]).T) ** 2).mean(axis=0) for g in range(2)] for i in range(3)])
    assert_exact_argmin(choice, direct)


def test_density_scaling_multiplies_alpha_by_the_clipped_density_ratio():
    torch.manual_seed(3)
    model = nn.Sequential(nn.Linear(8, 8), nn.Linear(8, 8), nn.Linear(8, 2)).double()
    with torch.no_grad():
        model[0].weight[:, :6] = 0  # density 0.25 vs 1.0 -> ratios 0.4 and 1.6
    x = torch.randn(10, 8, dtype=torch.float64)
    calib = ActivationCapture(x)(model, {"0": model[0], "1": model[1]})
    mask = cast_kn(model, "2:4", calib, alpha_ser=2.0, prior_compat="reference")
    assert mask.provenance.options["density_scaling"] is True
    cands = candidate_patterns(KNPattern(2, 4))
    for name, ratio in (("0", 0.25 / 0.625), ("1", 1.0 / 0.625)):
        w = dict(model.named_modules())[name].weight.detach().numpy()
        expected = cast_layer(w, calib[name], KNPattern(2, 4), cands, alpha=2.0 * ratio, prior_compat="reference")
        assert torch.equal(mask.keep[name], torch.from_numpy(expected.keep))


def test_permuted_cast_groups_permuted_columns_and_keeps_the_function():
    model = tiny_model(4)
    x = torch.randn(30, 16, dtype=torch.float64)
    for importance in ("weight_l2sq", "weight_l2sq_x_act_sq", "weight_l1_x_act_abs"):
        mask = cast_kn(model, "2:4", ActivationCapture(x), permute=True, importance=importance)
        assert set(mask.permutations) == {"0", "2"}
        mask.validate(model)
        perm = mask.permutations["0"]
        w = model[0].weight.detach()
        assert torch.allclose(F.linear(x[:, perm], w[:, perm]), F.linear(x, w), atol=1e-12)
        # CAST on the permuted layer == the stored mask read in permuted order
        calib = {"0": x.numpy()[:, perm.numpy()]}
        direct = cast_layer(w[:, perm].numpy(), calib["0"], KNPattern(2, 4), candidate_patterns(KNPattern(2, 4)))
        assert torch.equal(mask.grouped_keep("0"), torch.from_numpy(direct.keep))


def test_conv_im2col_rows_reproduce_the_convolution_and_cast_conv_is_exact():
    torch.manual_seed(0)
    conv = nn.Conv2d(8, 6, 3, stride=2, padding=1, dilation=1).double()
    x = torch.randn(2, 8, 9, 9, dtype=torch.float64)
    rows = layer_input_rows(conv, x)
    w2 = conv.weight.reshape(6, -1)
    out = (rows @ w2.T + conv.bias).reshape(2, 5, 5, 6).permute(0, 3, 1, 2)
    assert torch.allclose(out, conv(x), atol=1e-10)
    model = nn.Sequential(conv, nn.ReLU(), nn.Conv2d(6, 4, 1), nn.Flatten(), nn.LazyLinear(3)).double()
    model(x)
    mask = cast_kn(model, "2:4", ActivationCapture(x), permute=True, importance="weight_l2sq_x_act_sq")
    assert set(mask.layer_names) == {"0"}  # C_in = 6 is not a multiple of 4; classifier excluded
    mask.validate(model)
    cands = candidate_patterns(KNPattern(2, 4))
    u = conv.weight.detach().reshape(6, -1).numpy()
    cols = (mask.permutations["0"][:, None] * 9 + torch.arange(9)).reshape(-1).numpy()
    _, total = brute_force(u[:, cols].reshape(6, -1, 4), rows.numpy()[:, cols], 2)
    choice = np.array([[next(i for i, c in enumerate(cands) if (c == g).all()) for g in r]
                       for r in mask.grouped_keep("0").reshape(6, -1, 4).numpy()])
    assert_exact_argmin(choice, total)


def test_cast_kn_above_the_enumeration_threshold_uses_the_sampled_candidates():
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(32, 16), nn.Linear(16, 2)).double()
    x = torch.randn(20, 32, dtype=torch.float64)
    mask = cast_kn(model, "8:16", ActivationCapture(x), sampling="paper", sample_seed=4)
    assert mask.provenance.options["n_candidates"] == 1024 and mask.provenance.seed == 4
    mask.validate(model)
    sampled = candidate_patterns(KNPattern(8, 16), "paper", seed=4)
    groups = mask.keep["0"].reshape(16, 2, 16).numpy()
    assert all(any((g == c).all() for c in sampled) for g in groups.reshape(-1, 16))
    exact = cast_kn(model, "8:16", ActivationCapture(x))
    assert exact.provenance.options["n_candidates"] == 12_870
