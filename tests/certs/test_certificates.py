"""Single- and multi-layer certificate objects: conditions, hypotheses, labels, bad inputs (THEORY.md 4, 5).

The inequalities themselves are property-tested in test_theorems_*.py; here each result's fields are
checked on small hand-made networks whose values are known in closed form.
"""

import json
import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from certs.errors import CertificateInputError
from certs.multilayer import (MultiLayerBound, multilayer_certificate, multilayer_margin_stability,
                              multilayer_stationarity, theorem_5_8_bound, theorem_5_8_result)
from certs.prune_restore import prune_restore_certificate, restore_comparison
from certs.single_layer import (
    ce_path_bound,
    elastic_net_certificate,
    frobenius_certificate,
    margin_stability,
    weighted_mask_certificate,
)
from certs.splits import AdditiveSplit, PruneRestoreSplit, checked_split, mask_split, prune_restore_split
from certs.stationarity import stationarity_certificate
from verification.theorems.networks import ReluAbsMLP
from verification.theorems.strategies import PlanStep

# Last layer, identity tail (L_s = 1 for every method): z_A = (0, 10), label 0; the mask removes
# R v = (10, -10), so z_S = (-10, 20) and CE(S) - CE(A) = log(1 + e^30) - log(1 + e^10).
A = np.array([[10.0, -10.0], [20.0, -10.0]])
KEEP = np.array([[False, True], [True, False]])
MLP = ReluAbsMLP.from_weights([A], None, "relu", final_activation=False)
X, LABELS = np.array([[1.0, 1.0]]), np.array([0])
VIEW = MLP.layer_view(0, X, LABELS)
CE_CHANGE = math.log1p(math.exp(30)) - math.log1p(math.exp(10))


def test_lemma_5_1_fields_on_the_closed_form_example():
    r = ce_path_bound(VIEW, mask_split(A, KEEP), "G", theta=0.0)
    assert r.bound.label == "sound" and r.budget.value == pytest.approx(20.0)
    assert r.realized == pytest.approx(CE_CHANGE, rel=1e-12)
    assert r.bound_holds and r.slack == pytest.approx(20.0 - CE_CHANGE, abs=1e-8)
    np.testing.assert_allclose(r.eta, [10.0], rtol=1e-9)
    np.testing.assert_allclose(r.logit_change, [10.0])
    json.dumps(r.to_dict())


def test_elastic_net_certificate_condition_and_label():
    split = mask_split(A, KEEP)
    # removed penalty: lambda1 ||R||_1 = 20 lambda1; budget 20 => certified iff lambda1 > 1
    certified = elastic_net_certificate(VIEW, split, "D", lambda1=1.5, lambda2=0.0)
    assert certified.condition_holds and certified.is_certificate and certified.realized < 0
    assert certified.removed_linear == 30.0 and certified.full_pruning_bound.value == pytest.approx(-10.0)
    assert any(h.name == "disjoint supports" and h.holds for h in certified.hypotheses)
    assert not elastic_net_certificate(VIEW, split, "D", lambda1=0.5, lambda2=0.0).condition_holds
    estimate = elastic_net_certificate(VIEW, split, np.array([1.0]), lambda1=1.5, lambda2=0.0)
    assert estimate.bound.label == "estimate" and not estimate.is_certificate


def test_weighted_mask_certificate_with_constant_weights_equals_theorem_5_4():
    split = mask_split(A, KEEP)
    plain = elastic_net_certificate(VIEW, split, "G", 0.3, 0.2, theta=0.4)
    weighted = weighted_mask_certificate(VIEW, split, "G", np.full(A.shape, 0.3), np.full(A.shape, 0.2), theta=0.4)
    assert weighted.theorem == "OR1 Corollary 1.1"
    assert weighted.bound.value == pytest.approx(plain.bound.value, rel=1e-12)
    assert weighted.realized == pytest.approx(plain.realized, rel=1e-12)


def test_margin_stability_flags_risk_and_flips():
    same = margin_stability(VIEW, mask_split(A, KEEP), "D", theta=0.0)
    # Delta_pred = 10 <= 2 eta = 20: at risk, although the prediction (class 1) survives
    assert bool(same.at_risk_prediction[0]) and not bool(same.prediction_changed[0]) and not same.condition_holds
    # x = (-0.1, 0.5): z_A = (-6, -7) predicts 0, z_S = (-5, -2) predicts 1; margin 1 <= 2 eta = 10
    view = MLP.layer_view(0, np.array([[-0.1, 0.5]]), np.array([0]))
    flip = margin_stability(view, mask_split(A, KEEP), "D", theta=0.0)
    assert bool(flip.prediction_changed[0]) and bool(flip.correctness_changed[0])
    assert flip.unexplained_prediction_changes == 0 and flip.realized == 1.0 and flip.bound.value == 1.0
    assert not bool(margin_stability(view, mask_split(A, KEEP), "D", theta=0.95).prediction_changed[0])


def test_perfect_pruning_changes_nothing():
    """R psi_1(s) = 0 for every s (the removed column meets a zero input): CE and accuracy are unchanged exactly."""
    x = np.array([[1.0, 0.0], [2.0, 0.0]])
    view = MLP.layer_view(0, x, np.array([0, 1]))
    keep = np.array([[True, False], [True, False]])
    r = margin_stability(view, mask_split(A, keep), "D", theta=0.0)
    assert r.realized == 0.0 and np.all(r.eta == 0.0) and not np.any(r.correctness_changed)
    assert ce_path_bound(view, mask_split(A, keep), "D").realized == 0.0


def test_frobenius_certificate_records_the_cross_term_hypothesis():
    s = np.array([[1.0, 0.5], [0.0, 2.0]])
    split = checked_split(A, s, A - s)
    cross = float(np.sum(s * (A - s)))
    ok = frobenius_certificate(VIEW, split, "G", lambda2=0.1, theta=0.5, cross_term_bound=abs(cross))
    bad = frobenius_certificate(VIEW, split, "G", lambda2=0.1, theta=0.5, cross_term_bound=abs(cross) / 2)
    assert ok.hypotheses[-1].holds and not bad.hypotheses[-1].holds
    assert ok.cross_term == pytest.approx(cross)
    assert ok.eta_bound.value >= ok.bound.value - 1e-9


def test_prune_restore_and_restore_comparison():
    final = np.array([[False, True], [True, True]])
    triple = prune_restore_split(A, final, KEEP)  # Q = A[1, 1], P = A[0, 0]
    r = prune_restore_certificate(VIEW, triple, "D", lambda1=1.0, lambda2=0.0)
    assert r.theorem == "Theorem 5.5" and r.bound_holds
    c = restore_comparison(VIEW, triple, "D", "D", lambda1=1.0, lambda2=0.0)
    assert (c.equivalence_holds and c.budget_all.value == pytest.approx(20.0)
            and c.budget_restore.value == pytest.approx(20.0))
    assert c.restored_penalty == 10.0 and not c.restore_helps  # same budget, less penalty removed


def test_stationarity_pointwise_and_global_forms():
    split = mask_split(A, KEEP)
    r = stationarity_certificate(VIEW, split, "D", lambda1=0.75, lambda2=0.0, theta=0.5, epsilon=100.0)
    assert r.bound_holds and r.hypothesis_on_grid
    assert r.limit_penalty == pytest.approx(15.0) and r.limit_bound.value >= 120.0
    assert r.epsilon_theta >= 0.0


@pytest.mark.parametrize(
    "call, word",
    [
        (lambda: elastic_net_certificate(VIEW, AdditiveSplit(0.5 * A, 0.5 * A, True), "G", 0, 0), "S ⊙ R = 0"),
        (lambda: elastic_net_certificate(VIEW, mask_split(A, KEEP), "G", -1.0, 0), "lambda1"),
        (lambda: elastic_net_certificate(VIEW, mask_split(A, KEEP), "G", 0, 0, theta=1.5), "theta"),
        (lambda: ce_path_bound(VIEW, mask_split(np.ones((3, 2)), np.ones((3, 2))), "G"), "shape"),
        (lambda: ce_path_bound(VIEW, AdditiveSplit(A, A, False), "G"), "does not reproduce"),
        (lambda: ce_path_bound(VIEW, mask_split(A, KEEP), np.array([1.0, 2.0])), "one L_s per sample"),
        (lambda: weighted_mask_certificate(VIEW, mask_split(A, KEEP), "G", np.ones((3, 3)), 0.0), "lambda1"),
        (lambda: stationarity_certificate(VIEW, mask_split(A, KEEP), "G", 0, 0, theta=1.0), "theta must be < 1"),
        (lambda: prune_restore_certificate(VIEW, PruneRestoreSplit(A, A, np.zeros_like(A)), "G", 0, 0), "disjoint"),
        (lambda: frobenius_certificate(VIEW, mask_split(A, KEEP), "G", 0.1, cross_term_bound=-1.0), "cross_term_bound"),
    ],
)
def test_bad_inputs_raise_typed_errors(call, word):
    with pytest.raises(CertificateInputError, match=word):
        call()


def test_bad_labels_raise():
    view = MLP.layer_view(0, X, np.array([5]))
    with pytest.raises(CertificateInputError, match="labels out of range"):
        ce_path_bound(view, mask_split(A, KEEP), "G")


# ---------------------------------------------------------------------------- multi-layer

NET = ReluAbsMLP.from_weights(
    [np.array([[1.0, -1.0], [0.5, 2.0]]), A], [np.zeros(2), np.zeros(2)], "abs", final_activation=False
)


def test_multilayer_certificate_telescopes_and_uses_intermediate_networks():
    steps = (PlanStep(1, KEEP), PlanStep(0, np.array([[True, False], [True, True]])),
             PlanStep(1, np.zeros((2, 2), bool)))
    c = multilayer_certificate(NET, X, LABELS, steps, "D", {0: (0.1, 0.2), 1: (0.3, 0.0)})
    assert c.bound.label == "sound" and c.bound_holds
    assert sum(s.objective_change for s in c.sequence.steps) == pytest.approx(c.realized, abs=1e-9)
    # the third step removes what the first kept: its R is the kept part S_1, not a part of the original A
    assert c.sequence.steps[2].removed_linear == pytest.approx(0.3 * np.abs(A[KEEP]).sum())
    assert json.loads(json.dumps(c.to_dict()))["sequence"]["steps"][2]["index"] == 1
    m = multilayer_margin_stability(NET, X, LABELS, steps, "G")
    assert m.bound_holds and np.all(m.logit_change <= m.eta_total + 1e-9)


def test_theorem_5_8_result_is_the_assembly_of_multilayer_certificate():
    """The assembler the timm bridge uses gives the certificate's Theorem 5.8 part from its steps, field for field;
    known-bad: a budget list of the wrong length is a typed error, not a silently shortened sum."""
    steps = (PlanStep(1, KEEP), PlanStep(0, np.array([[True, False], [True, True]])))
    c = multilayer_certificate(NET, X, LABELS, steps, "D", {0: (0.1, 0.2), 1: (0.3, 0.0)})
    budgets = [s.budget for s in c.sequence.steps]
    penalties = [s.removed_quadratic + s.removed_linear for s in c.sequence.steps]
    entries = [s.removed_entries for s in c.sequence.steps]
    r = theorem_5_8_result(budgets, penalties, entries, realized=c.realized, scale=c.scale, options={"steps": 2})
    assert type(r) is MultiLayerBound and isinstance(c, MultiLayerBound)
    assert r.to_dict() == {k: v for k, v in c.to_dict().items() if k != "sequence"}
    assert r.budget_sum == sum(b.value for b in budgets) and r.penalty_sum == sum(penalties)
    with pytest.raises(CertificateInputError, match="one budget, penalty"):
        theorem_5_8_result(budgets[:1], penalties, entries, realized=c.realized, scale=c.scale, options={})


def test_multilayer_stationarity_needs_distinct_layers_and_h_in_range():
    steps = (PlanStep(1, KEEP), PlanStep(0, np.array([[True, False], [True, True]])))
    r = multilayer_stationarity(NET, X, LABELS, steps, 0.5, "D", {0: (0.1, 0.2), 1: (0.3, 0.1)})
    assert r.bound_holds and len(r.budgets) == 2
    with pytest.raises(CertificateInputError, match="distinct"):
        multilayer_stationarity(NET, X, LABELS, steps + (PlanStep(1, KEEP),), 0.5)
    with pytest.raises(CertificateInputError, match="h must"):
        multilayer_stationarity(NET, X, LABELS, steps, 0.0)
    with pytest.raises(CertificateInputError, match="at least one"):
        multilayer_certificate(NET, X, LABELS, ())
    with pytest.raises(CertificateInputError, match="penalties"):
        multilayer_certificate(NET, X, LABELS, steps, "G", {0: (1.0,)})


@given(budgets=st.lists(st.floats(0, 1e6), min_size=1, max_size=6), data=st.data())
def test_theorem_5_8_bound_encloses_the_exact_sum(budgets, data):
    """The one rounding rule of Theorem 5.8 (certs and the timm bridge): never below the exact rational sum."""
    penalties = data.draw(st.lists(st.floats(0, 1e6), min_size=len(budgets), max_size=len(budgets)))
    entries = data.draw(st.lists(st.integers(0, 10_000), min_size=len(budgets), max_size=len(budgets)))
    exact = sum(map(Fraction, budgets)) - sum(map(Fraction, penalties))
    assert Fraction(theorem_5_8_bound(budgets, penalties, entries)) >= exact
