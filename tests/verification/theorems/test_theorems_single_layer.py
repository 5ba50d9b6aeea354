"""Property checks of Lemma 5.1 – Theorem 5.7 and OR1 Corollaries 1.1–1.2 (THEORY.md 4, 5, 12).

The checks live in :mod:`verification.theorems.theorem_checks` and are run here exactly as ``mpcert verify`` runs
them (the search itself is in test_theorem_search.py); here: the known-bad variants that random search
rarely catches, shown caught on a fixed counterexample.
"""

import numpy as np
import pytest

from certs.splits import PruneRestoreSplit, mask_split
from verification.theorems.networks import ReluAbsMLP
from verification.theorems.single_layer_checks import SingleLayerInstance, THETA_GRID
from verification.theorems.strategies import TargetProblem
from verification.theorems.theorem_checks import CHECKS

#: Mutations that random search rarely catches: they need a CE change near its maximal rate 2 eta_s.
FIXED_COUNTEREXAMPLE = {
    ("theorem-5.4", "lipschitz-halved"),
    ("theorem-5.7", "lipschitz-halved"),
    ("or1-1.1", "lipschitz-halved"),
    ("theorem-5.5", "lipschitz-halved"),
}


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


@pytest.mark.parametrize("check_id, mutation", sorted(FIXED_COUNTEREXAMPLE))
def test_known_bad_variant_is_caught_on_fixed_counterexample(check_id, mutation):
    inst = worst_case_instance(lambda1=0.75)
    assert all(o.ok for o in CHECKS[check_id].evaluate(inst, None))
    assert not all(o.ok for o in CHECKS[check_id].evaluate(inst, mutation))


def test_worst_case_instance_is_nearly_tight_for_lemma_5_1():
    outcomes = CHECKS["lemma-5.1"].evaluate(worst_case_instance(0.0), None)
    ratios = [o.slack_ratio for o in outcomes if np.isfinite(o.slack_ratio)]
    assert all(o.ok for o in outcomes)
    assert min(ratios) < 1.0 + 1e-4
