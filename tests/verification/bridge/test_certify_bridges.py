"""The paper's three OR2 audit bridges, computed literally from a certify run (ALGORITHMS.md 10.2)."""

import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pruning.magnitude import magnitude
from rmt.fit import fit_mp
from verification.bridge.audit_bridges import audit_bridges, pearson
from verification.bridge.certify import certify
from verification.models.datasets import calibration_subset, load_default_dataset
from verification.models.default_model import build_default_model
from tests.verification.single_thread import one_thread  # noqa: F401  (autouse)

LAYERS = ["blocks.0.attn.qkv", "blocks.1.mlp.fc1", "blocks.2.attn.proj", "blocks.3.mlp.fc2", "head"]


@pytest.fixture(scope="module")
def env():
    model = build_default_model()
    dataset = load_default_dataset()
    cal = calibration_subset(dataset, 12, 2)
    held = (dataset.test_images[:12], dataset.test_labels[:12])
    mask = magnitude(model, 0.7, layers=LAYERS)
    return model, cal, held, mask, certify(model, mask, cal, heldout=held, grid=2, multilayer=False,
                                           lipschitz="estimate")


@given(st.lists(st.tuples(st.floats(-1e3, 1e3), st.floats(-1e3, 1e3)), min_size=3, max_size=30))
def test_pearson_matches_numpy(pairs):
    x, y = (np.array(v) for v in zip(*pairs))
    r = pearson(x, y)
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        assert r is None
    elif min(np.ptp(x), np.ptp(y)) > 1e-3:  # well-conditioned: both formulas agree to rounding
        assert r == pytest.approx(float(np.corrcoef(x, y)[0, 1]), abs=1e-9)


def test_pearson_is_undefined_for_short_or_constant_samples():
    assert pearson([1.0, 2.0], [3.0, 4.0]) is None
    assert pearson([1.0, 1.0, 1.0], [1.0, 2.0, 3.0]) is None
    assert pearson([1.0, 2.0, 3.0], [2.0, 4.0, 6.0]) == pytest.approx(1.0)


def test_rows_are_the_audit_numbers(env):
    model, _, _, _, report = env
    bridges = report.bridges()
    assert set(bridges) == {"calibration", "heldout"}
    modules = dict(model.named_modules())
    for audits in (report.calibration, report.heldout):
        b = bridges[audits[0].sample_set]
        for audit, row in zip(audits, b.rows):
            assert row.layer == audit.layer and row.budget == audit.budget.value and row.proxy == audit.proxy
            assert row.mean_product == pytest.approx(float(np.mean(audit.products)))
            assert row.ce_change == audit.lemma_5_1.realized
            assert row.top1_drop == pytest.approx(float(audit.acc_path[-1] - audit.acc_path[0]))
            assert (row.flips_to_wrong - row.flips_to_right) / audit.products.size == pytest.approx(row.top1_drop)
            expected_sigma = fit_mp(modules[audit.layer].weight.detach().double(), name=audit.layer).sigma_plus
            assert row.sigma_plus == pytest.approx(expected_sigma, rel=1e-12)
            tol = 1e-9 * max(1.0, audit.budget.value)
            assert row.exceeds_budget == (audit.lemma_5_1.realized > audit.budget.value + tol)
        sigma = np.array([r.sigma_plus for r in b.rows])
        means = np.array([np.mean(a.products) for a in audits])
        assert b.r_log_sigma_plus_vs_log_mean_product == pytest.approx(
            float(np.corrcoef(np.log(sigma), np.log(means))[0, 1]), abs=1e-12)
        assert b.exceedances_budget == 0  # Lemma 5.1 at theta = 0 holds for the estimate (an estimation point)


def test_bridges_in_json_and_markdown(env):
    _, _, _, _, report = env
    doc = json.loads(json.dumps(report.to_json(), allow_nan=False))
    for name in ("calibration", "heldout"):
        assert [r["layer"] for r in doc["bridges"][name]["rows"]] == LAYERS
        assert "none of them is a bound" in doc["bridges"][name]["note"]
    assert [f["name"] for f in doc["fits"]] == LAYERS
    md = report.to_markdown()
    assert "Audit bridges of the paper (OR2), literally — calibration set" in md
    assert "Audit bridges of the paper (OR2), literally — heldout set" in md
    assert "Bridge 1" in md and "Bridge 2" in md and "Bridge 3" in md


def test_known_bad_budget_is_counted_as_a_bridge2_exceedance(env):
    """Known-bad: an L_s shrunk 1000x makes |dCE| exceed B_T; Bridge 2 counts it (and so does the violation list)."""
    model, cal, _, mask, good = env
    bad = certify(model, mask, cal, grid=2, multilayer=False, fit=False, lipschitz_factor=1e-3, lipschitz="estimate")
    b = bad.bridges()["calibration"]
    exceeding = [r.layer for r in b.rows if r.exceeds_budget]
    assert b.exceedances_budget == len(exceeding) > 0
    assert all(any(v.startswith(f"{layer} (calibration, estimate exceeded): Lemma 5.1")
                   for v in bad.estimate_diagnostics()) for layer in exceeding)
    assert all(r.sigma_plus is None for r in b.rows) and b.r_log_sigma_plus_vs_log_budget is None  # fit=False


def test_per_sample_bridge1_uses_the_budget_terms(env):
    """r(b_s, d_s) with b_s = 2 L_s p_s and d_s = 1[correct dense] - 1[correct pruned], recomputed by hand."""
    _, _, _, _, report = env
    b = audit_bridges(report.calibration, report.sigma_plus())
    terms, drops = [], []
    for audit, row in zip(report.calibration, b.rows):
        dense_ok = audit.corollary_5_2.true_margin > 0
        pruned_ok = dense_ok ^ audit.corollary_5_2.correctness_changed
        d = dense_ok.astype(float) - pruned_ok.astype(float)
        t = 2 * audit.lipschitz.values * audit.products
        terms.append(t)
        drops.append(d)
        assert row.sample_r == pearson(t, d)
    assert b.r_sample_pooled == pearson(np.concatenate(terms), np.concatenate(drops))
