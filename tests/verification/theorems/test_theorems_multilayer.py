"""Property checks of Theorems 5.8, 5.9 and OR1 Corollary 1.3 (THEORY.md 4, 5, 12), shared with ``mpcert verify``."""

import numpy as np
import pytest

from verification.theorems.multilayer_checks import MultiLayerInstance
from verification.theorems.networks import ReluAbsMLP
from verification.theorems.strategies import PlanStep
from verification.theorems.theorem_checks import CHECKS

#: Mutations caught by a fixed counterexample here instead of by search (test_theorem_search.py): a halved
#: ``L_s`` only shows when the CE rises at close to its maximal rate, which random search rarely draws.
FIXED_COUNTEREXAMPLE = {("theorem-5.8", "lipschitz-halved"), ("theorem-5.9", "lipschitz-halved")}


@pytest.mark.parametrize("check_id, mutation", sorted(FIXED_COUNTEREXAMPLE))
def test_halved_lipschitz_is_caught_on_fixed_counterexample(check_id, mutation):
    """One step on the last layer whose CE rises at the maximal rate (see test_theorems_single_layer):
    Theorem 5.8 needs the full ``B_T``; for Theorem 5.9 (``h = 1``, pointwise form) ``lambda1 = 0.75`` puts the
    penalty between ``B_T / 2`` and ``B_T``."""
    a = np.array([[10.0, -10.0], [20.0, -10.0]])
    mlp = ReluAbsMLP.from_weights([a], None, "relu", final_activation=False)
    inst = MultiLayerInstance(
        mlp, np.array([[1.0, 1.0]]), np.array([0]), (PlanStep(0, np.array([[False, True], [True, False]])),),
        {0: (0.75, 0.0)},
    )
    check = CHECKS[check_id]
    assert all(o.ok for o in check.evaluate(inst, None))
    assert not all(o.ok for o in check.evaluate(inst, mutation))
