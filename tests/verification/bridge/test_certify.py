"""certify(model, mask, data) on the default timm ViT: realised side, estimated bounds, known-bad variants."""

import json

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from certs.classification import accuracy, mean_cross_entropy
from certs.errors import CertificateInputError, UnsupportedLayerError
from pruning.calibration import ActivationCapture
from pruning.cast import cast_kn
from pruning.magnitude import magnitude
from pruning.mask import Mask, Provenance
from verification.bridge.certify import AuditData, audit_layer, certify
from verification.models.datasets import calibration_subset, load_default_dataset
from verification.models.default_model import build_default_model
from verification.bridge.vit_views import audit_copy

GRID = 4


@pytest.fixture(scope="module")
def env():
    model = build_default_model()
    dataset = load_default_dataset()
    cal = calibration_subset(dataset, 16, 0)
    held = (dataset.test_images[:16], dataset.test_labels[:16])
    return model, cal, held


@pytest.fixture(scope="module")
def magnitude_report(env):
    model, cal, held = env
    mask = magnitude(model, 0.5)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    report = certify(model, mask, cal, heldout=held, lambda2=1e-3, grid=GRID, lipschitz="estimate")
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # the user's model is untouched
    assert all(p.dtype == torch.float32 for p in model.parameters())
    return mask, report


def _forward_metrics(model, mask_layers, cal):
    """CE and accuracy of ``model`` with ``mask_layers`` applied, by a plain float64 forward (independent path)."""
    net = audit_copy(Mask(keep=mask_layers, provenance=Provenance("test")).apply(model) if mask_layers else model)
    with torch.no_grad():
        z = net(cal.images.double()).numpy()
    y = cal.labels.numpy()
    return float(mean_cross_entropy(z, y)), float(accuracy(z, y))


def test_report_is_labelled_estimate_and_serialises(magnitude_report):
    mask, report = magnitude_report
    doc = json.loads(json.dumps(report.to_json(), allow_nan=False))
    assert doc["schema"] == "mpcert.certify/3"
    assert [a["layer"] for a in doc["calibration"]] == list(mask.layer_names)
    assert len(doc["heldout"]) == len(doc["calibration"])
    for audit in doc["calibration"] + doc["heldout"] + doc["multilayer"]["steps"]:
        assert audit["budget"]["label"] == "estimate" and audit["theorem_5_4"]["bound"]["label"] == "estimate"
        assert audit["proxy_label"] == "not-a-bound"
    assert doc["multilayer"]["theorem_5_8"]["bound"]["label"] == "estimate"
    transfer = {t["layer"]: t for t in doc["heldout_transfer"]}
    for cal_audit, held_audit in zip(doc["calibration"], doc["heldout"]):
        row = transfer[cal_audit["layer"]]
        assert row["budget_calibration"] == cal_audit["budget"]["value"]
        assert row["exceeds"] == (held_audit["lemma_5_1"]["realized"] > cal_audit["budget"]["value"])
    md = report.to_markdown()
    assert "Held-out transfer" in md and "not a bound" in md and "estimate" in md
    assert "**Nothing**: every `L_s` is an estimate" in md and "certified sound" not in md and "(certified)" not in md
    assert all(a.layer in md for a in report.calibration)


def test_realised_side_matches_an_independent_forward(env, magnitude_report):
    model, cal, _ = env
    mask, report = magnitude_report
    ce_dense, acc_dense = _forward_metrics(model, {}, cal)
    for audit in report.calibration[::6]:
        ce_pruned, acc_pruned = _forward_metrics(model, {audit.layer: mask.keep[audit.layer]}, cal)
        assert audit.lemma_5_1.ce_dense == pytest.approx(ce_dense, abs=1e-10)
        assert audit.lemma_5_1.ce_theta == pytest.approx(ce_pruned, abs=1e-10)
        assert audit.corollary_5_2.realized == pytest.approx(abs(acc_pruned - acc_dense), abs=1e-12)
        assert audit.removed_fraction == pytest.approx(float((~mask.keep[audit.layer]).float().mean()))


def test_bounds_hold_at_the_estimation_grid_end(magnitude_report):
    """At theta = 0 (an estimation-grid point) the estimated bounds hold by the triangle inequality."""
    _, report = magnitude_report
    for audit in report.calibration + report.heldout:
        lemma, margin, elastic = audit.lemma_5_1, audit.corollary_5_2, audit.theorem_5_4
        tol = 1e-9 * np.maximum(1.0, lemma.eta)
        assert np.all(lemma.logit_change <= lemma.eta + tol), audit.layer
        assert lemma.realized <= audit.budget.value + 1e-9, audit.layer
        assert lemma.slack >= -1e-9
        assert margin.realized <= margin.bound.value + 1e-12
        assert not audit.unexplained_correctness and not audit.unexplained_prediction
        assert elastic.realized <= elastic.bound.value + 1e-9 * max(1.0, elastic.scale)
        np.testing.assert_allclose(audit.budget.value, 2 * np.mean(audit.lipschitz.values * audit.products), rtol=1e-8)


def test_head_has_lipschitz_exactly_one_and_no_violation(magnitude_report):
    """After the head the post-layer map is the identity plus a bias: L_s = 1 exactly, the path is linear."""
    _, report = magnitude_report
    head = next(a for a in report.calibration if a.layer == "head")
    assert head.tokens == 1
    np.testing.assert_allclose(head.lipschitz.values[head.products > 0], 1.0, rtol=1e-9)
    assert head.violations() == []


def test_an_exceeded_estimate_is_a_diagnostic_never_a_violation(env):
    """L_s halved on the head (true value 1) is exceeded: a diagnostic of the estimate, never a violation (known-bad
    for the diagnostics: the halved estimate must be caught there; a halved SOUND L_s is a violation,
    tests/verification/bridge/test_certify_sound.py)."""
    model, cal, _ = env
    mask = magnitude(model, 0.5, layers=["head"])
    report = certify(model, mask, cal, grid=GRID, multilayer=False, lipschitz_factor=0.5, lipschitz="estimate")
    assert any("head (calibration, estimate exceeded): per-sample logit change" in d
               for d in report.estimate_diagnostics())
    assert report.violations() == [] and report.certified()["violations"] == 0
    md = report.to_markdown()
    assert "## Diagnostics of the estimate" in md and "VIOLATIONS" not in md and "No violation" in md
    doc = report.to_json()
    assert doc["violations"] == [] and doc["estimate_diagnostics"] == report.estimate_diagnostics()


def test_shrunk_lipschitz_breaks_the_ce_bounds(env):
    """Known-bad for the CE side: an L_s shrunk below what the realised CE change needs is flagged."""
    model, cal, _ = env
    mask = magnitude(model, 0.5)
    data = AuditData(cal.images.double(), cal.labels, "calibration")
    work = audit_copy(model)
    name = "blocks.2.attn.qkv"
    good = audit_layer(work, name, mask.keep[name], data, grid=GRID, lipschitz="estimate")
    eta = good.lemma_5_1.eta
    active = eta > 0
    per_sample = float(np.max(good.sample_ce_change[active] / (2 * eta[active])))
    lemma = good.lemma_5_1.realized / good.budget.value
    assert per_sample <= 1 + 1e-9 and lemma <= 1 + 1e-9
    bad = audit_layer(work, name, mask.keep[name], data, grid=GRID, lipschitz_factor=per_sample / 2,
                      lipschitz="estimate")
    assert any("|d l_s| > 2" in v for v in bad.estimate_diagnostics()) and bad.violations() == []
    bad = audit_layer(work, name, mask.keep[name], data, grid=GRID, lipschitz_factor=lemma / 2, lipschitz="estimate")
    assert bad.lemma_violation_thetas and bad.lemma_violation_thetas[0] == 0.0
    assert any("Lemma 5.1" in v for v in bad.estimate_diagnostics()) and bad.violations() == []


def test_smallest_lambdas_are_the_thresholds(env, magnitude_report):
    model, cal, _ = env
    mask, report = magnitude_report
    data = AuditData(cal.images.double(), cal.labels, "calibration")
    work = audit_copy(model)
    audit = next(a for a in report.calibration if a.layer == "blocks.1.mlp.fc1")
    for key, threshold in (("lambda2", audit.lambda2_threshold), ("lambda1", audit.lambda1_threshold)):
        above = audit_layer(work, audit.layer, mask.keep[audit.layer], data, grid=GRID, lipschitz="estimate",
                            **{key: 1.01 * threshold})
        below = audit_layer(work, audit.layer, mask.keep[audit.layer], data, grid=GRID, lipschitz="estimate",
                            **{key: 0.99 * threshold})
        assert above.theorem_5_4.condition_holds and not below.theorem_5_4.condition_holds


def test_multilayer_runs_on_intermediate_networks(env, magnitude_report):
    model, cal, _ = env
    mask, report = magnitude_report
    ml = report.multilayer
    assert ml.order == mask.layer_names
    first = report.calibration[0]
    assert ml.steps[0].budget.value == pytest.approx(first.budget.value, rel=1e-12)
    # later steps see the already-pruned network: their dense CE is the previous step's pruned CE
    for prev, step in zip(ml.steps, ml.steps[1:]):
        assert step.lemma_5_1.ce_dense == pytest.approx(prev.lemma_5_1.ce_theta, abs=1e-10)
    ce_final, acc_final = _forward_metrics(model, dict(mask.keep), cal)
    assert ml.ce_final == pytest.approx(ce_final, abs=1e-10) and ml.acc_final == pytest.approx(acc_final)
    theorem = ml.theorem_5_8
    assert sum(s.theorem_5_4.realized for s in ml.steps) == pytest.approx(theorem.realized, abs=1e-9)
    penalties = sum(1e-3 * s.removed_frobenius_sq for s in ml.steps)
    assert theorem.bound.value == pytest.approx(sum(s.budget.value for s in ml.steps) - penalties, rel=1e-8)
    assert theorem.realized <= theorem.bound.value


def test_cast_24_mask_with_reverse_order(env):
    model, cal, _ = env
    mask = cast_kn(model, "2:4", ActivationCapture(cal.images))
    report = certify(model, mask, cal, grid=2, order="reverse", lipschitz="estimate")
    assert "head" not in [a.layer for a in report.calibration] and report.heldout == ()
    assert [a.removed_fraction for a in report.calibration] == [0.5] * len(report.calibration)
    assert report.multilayer.order == tuple(reversed([a.layer for a in report.calibration]))
    assert report.mask["pattern"] == "2:4"


def test_proxy_is_not_a_bound():
    """THEORY.md 11.2 counterexample: R = e_1 1^T, psi = 1 gives ||R psi||_inf = m > ||R||_op ||psi||_inf = sqrt(m)."""
    m = 16
    model = nn.Sequential(nn.Flatten(), nn.Linear(m, 2))
    with torch.no_grad():
        model[1].weight.copy_(torch.ones(2, m))
        model[1].bias.zero_()
    keep = torch.ones(2, m, dtype=torch.bool)
    keep[0] = False
    report = certify(model, {"1": keep}, (torch.ones(1, 1, 4, 4), torch.tensor([0])), grid=2, multilayer=False,
                     lipschitz="estimate")
    audit = report.calibration[0]
    assert audit.products[0] == pytest.approx(m)
    assert audit.lipschitz.values[0] == pytest.approx(1.0)
    assert audit.proxy == pytest.approx(np.sqrt(m))
    assert audit.proxy < audit.products[0] < audit.budget.value


def test_bad_inputs_raise_typed_errors(env):
    model, cal, _ = env
    mask = magnitude(model, 0.5)
    with pytest.raises(CertificateInputError, match="do not exist"):
        certify(model, {"features.0": torch.ones(8, 3, 3, 3, dtype=torch.bool)}, cal)
    with pytest.raises(CertificateInputError, match="channels"):
        certify(model, mask, (torch.zeros(2, 3, 28, 28), torch.zeros(2, dtype=torch.long)))
    with pytest.raises(CertificateInputError, match="do not fit"):
        certify(model, mask, (torch.zeros(2, 1, 20, 20), torch.zeros(2, dtype=torch.long)))
    with pytest.raises(CertificateInputError, match="outside the head's classes"):
        certify(model, mask, (cal.images[:2], torch.tensor([3, 10])))
    with pytest.raises(CertificateInputError, match="heldout"):
        certify(model, mask, cal, heldout=(cal.images[:2], torch.tensor([0.5, 1.0])))
    with pytest.raises(UnsupportedLayerError, match="no nn.Linear"):
        certify(nn.Sequential(nn.Flatten()), {}, cal)
    with pytest.raises(CertificateInputError, match="order"):
        certify(model, mask, cal, order="random")
    with pytest.raises(CertificateInputError, match="lambda2"):
        certify(model, mask, cal, lambda2=-1.0)


@st.composite
def tiny_relu_network(draw):
    hidden = draw(st.integers(2, 6))
    seed = draw(st.integers(0, 2**31 - 1))
    g = torch.Generator().manual_seed(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, hidden), nn.ReLU(), nn.Linear(hidden, 3)).double()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64))
    keep = torch.rand(hidden, 4, generator=g) < draw(st.floats(0.0, 1.0))
    images = torch.randn(draw(st.integers(1, 5)), 1, 2, 2, generator=g, dtype=torch.float64)
    labels = torch.randint(0, 3, (images.shape[0],), generator=g)
    return model, keep, images, labels


@given(tiny_relu_network())
def test_estimate_never_exceeds_the_global_bound(case):
    """THEORY.md 3.6 chain: an empirical ratio is <= L^G = ||W_2||_inf (induced) for a Linear-ReLU-Linear tail."""
    model, keep, images, labels = case
    audit = certify(model, {"1": keep}, (images, labels), grid=GRID, multilayer=False,
                    lipschitz="estimate").calibration[0]
    global_bound = float(model[3].weight.detach().abs().sum(dim=1).max())
    lip, lemma = audit.lipschitz.values, audit.lemma_5_1
    assert np.all(lip <= global_bound * (1 + 1e-9))
    assert np.all(lemma.logit_change <= lemma.eta + 1e-9 * np.maximum(1.0, lemma.eta))
    if lip.max() > 0:  # known-bad: a wrong constant (1.5 L^G / max L_s) is caught by the same comparison
        factor = 1.5 * global_bound / lip.max()
        bad = certify(model, {"1": keep}, (images, labels), grid=GRID, multilayer=False, lipschitz_factor=factor,
                      lipschitz="estimate")
        assert not np.all(bad.calibration[0].lipschitz.values <= global_bound * (1 + 1e-9))
