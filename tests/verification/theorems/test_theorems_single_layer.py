"""Property checks of Lemma 5.1 – Theorem 5.7 and OR1 Corollaries 1.1–1.2 (THEORY.md 4, 5, 12).

The checks live in :mod:`verification.theorems.theorem_checks` and are run here exactly as ``mpcert verify`` runs
them (the search itself is in test_theorem_search.py); here: the known-bad variants that random search
rarely catches, shown caught on a fixed counterexample.
"""

import numpy as np
import pytest

from certs.single_layer import margin_stability
from certs.splits import PruneRestoreSplit, checked_split, mask_split
from verification.theorems.networks import ReluAbsMLP
from verification.theorems.single_layer_checks import SingleLayerInstance, THETA_GRID
from verification.theorems.strategies import TargetProblem
from verification.theorems.theorem_checks import CHECKS

#: Mutations that random search rarely catches because they need a CE change near its maximal rate 2 eta_s
#: (caught on :func:`worst_case_instance`) ...
WORST_CASE_COUNTEREXAMPLE = {
    ("theorem-5.4", "lipschitz-halved"),
    ("theorem-5.7", "lipschitz-halved"),
    ("or1-1.1", "lipschitz-halved"),
    ("theorem-5.5", "lipschitz-halved"),
}
#: ... or a dense tie computed as a one-ulp margin (caught on :func:`issue_21_instance`).
FIXED_COUNTEREXAMPLE = WORST_CASE_COUNTEREXAMPLE | {("corollary-5.2", "rounding-dropped")}


def worst_case_instance(lambda1: float) -> SingleLayerInstance:
    """One sample whose CE rises at the maximal rate 2 eta_s: the target is the last layer (identity tail,
    ``L_s = 1``), ``z_A = (0, 10)`` with label 0, and pruning moves the two logits by ``R v = (10, -10)``
    in opposite directions, so ``CE(S) - CE(A) = log(1+e^30) - log(1+e^10) ~ 20 = B_T(R)``.  Its prune–restore
    triple restores nothing (``Q = 0``), so Theorem 5.5 meets the same worst case."""
    a = np.array([[10.0, -10.0], [20.0, -10.0]])
    mlp = ReluAbsMLP.from_weights([a], None, "relu", final_activation=False)
    X, labels = np.array([[1.0, 1.0]]), np.array([0])
    view = mlp.layer_view(0, X, labels)
    problem = TargetProblem(mlp=mlp, index=0, X=X, labels=labels, view=view)
    split = mask_split(a, np.array([[False, True], [True, False]]))
    gamma1, gamma2 = np.full(a.shape, lambda1), np.zeros(a.shape)
    triple = PruneRestoreSplit(kept=split.structured, restored=np.zeros(a.shape), removed=split.removed)
    return SingleLayerInstance(problem, split, "mask", THETA_GRID, lambda1, 0.0, gamma1, gamma2, triple=triple)


@pytest.mark.parametrize("check_id, mutation", sorted(WORST_CASE_COUNTEREXAMPLE))
def test_known_bad_variant_is_caught_on_fixed_counterexample(check_id, mutation):
    inst = worst_case_instance(lambda1=0.75)
    assert all(o.ok for o in CHECKS[check_id].evaluate(inst, None))
    assert not all(o.ok for o in CHECKS[check_id].evaluate(inst, mutation))


def test_worst_case_instance_is_nearly_tight_for_lemma_5_1():
    outcomes = CHECKS["lemma-5.1"].evaluate(worst_case_instance(0.0), None)
    ratios = [o.slack_ratio for o in outcomes if np.isfinite(o.slack_ratio)]
    assert all(o.ok for o in outcomes)
    assert min(ratios) < 1.0 + 1e-4


# -------------------------------------------------------------- the counterexample of issue 21

#: Two equal rows and biases (dense logits tie exactly); the rank-1 SVD part ``S`` of LAPACK, fixed bit for bit:
#: its row 0 is one ulp off ``A``, and ``R = A - S`` is at the rounding level (``-2^-53, 2^-54``).
ISSUE_21_A = np.array([[-0.684, 0.333], [-0.684, 0.333]])
ISSUE_21_S = np.array([[float.fromhex("-0x1.5e353f7ced916p-1"), float.fromhex("0x1.54fdf3b645a1cp-2")],
                       [float.fromhex("-0x1.5e353f7ced917p-1"), float.fromhex("0x1.54fdf3b645a1dp-2")]])


def issue_21_instance() -> SingleLayerInstance:
    """One ReLU layer, identity tail with bias -0.5, the sample ``(1.14839323, -1.04252223)``: the exact dense
    logits tie (``(S + R) v`` has equal entries), the computed ones differ by one ulp (``2.2e-16``), above
    ``2 eta_s = 1.9e-16`` at ``theta = 0.5``; the computed ``A_0.5`` logits tie, a "prediction change"."""
    mlp = ReluAbsMLP.from_weights([ISSUE_21_A], [np.array([-0.5, -0.5])], "relu", False)
    X, labels = np.array([[1.14839323, -1.04252223]]), np.array([0])
    view = mlp.layer_view(0, X, labels)
    split = checked_split(ISSUE_21_A, ISSUE_21_S, ISSUE_21_A - ISSUE_21_S)
    return SingleLayerInstance(TargetProblem(mlp, 0, X, labels, view), split, "svd", THETA_GRID, 0.0, 0.0)


def test_issue_21_counterexample_is_at_risk_and_rounding_dropped_is_caught():
    inst = issue_21_instance()
    check = CHECKS["corollary-5.2"]
    r = margin_stability(inst.view, inst.split, "D", theta=0.5)
    assert bool(r.prediction_changed[0]) and bool(r.at_risk_prediction[0])
    assert r.rounding[0] > r.eta[0] > 0 and r.hypotheses[-1].holds and r.bound.label == "sound"
    assert all(o.ok for o in check.evaluate(inst, None))
    assert not all(o.ok for o in check.evaluate(inst, "rounding-dropped"))
