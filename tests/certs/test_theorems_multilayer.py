"""Property checks of Theorems 5.8, 5.9 and OR1 Corollary 1.3 (THEORY.md 4, 5, 12), shared with ``mpcert verify``."""

import numpy as np
import pytest
from hypothesis import settings

from verification.multilayer_checks import MultiLayerInstance
from verification.networks import ReluAbsMLP
from verification.strategies import PlanStep
from verification.theorem_checks import CHECKS, run_check

MULTI_LAYER = ("theorem-5.8", "theorem-5.9", "or1-1.3")
BAD_SEARCH_EXAMPLES = 2000
FIXED_COUNTEREXAMPLE = {("theorem-5.9", "lipschitz-halved")}


@pytest.mark.parametrize("check_id", MULTI_LAYER)
def test_sound_result_has_no_violation(check_id):
    current = settings()
    report = run_check(CHECKS[check_id], current.max_examples, derandomize=current.derandomize)
    assert report.examples >= min(current.max_examples, 50)
    assert report.violations == 0, report.counterexample


@pytest.mark.parametrize(
    "check_id, mutation",
    [(c, m) for c in MULTI_LAYER for m in CHECKS[c].mutations if (c, m) not in FIXED_COUNTEREXAMPLE],
)
def test_known_bad_variant_is_caught_by_search(check_id, mutation):
    report = run_check(CHECKS[check_id], BAD_SEARCH_EXAMPLES, mutation=mutation, stop_at_first_violation=True)
    assert report.violations == 1, f"{check_id} did not catch {mutation} in {report.examples} examples"


def test_theorem_5_9_halved_lipschitz_is_caught_on_fixed_counterexample():
    """One step on the last layer whose CE rises at the maximal rate (see test_theorems_single_layer):
    with ``h = 1`` the pointwise form needs the full ``B_T``; ``lambda1 = 0.75`` puts the penalty between
    ``B_T / 2`` and ``B_T``."""
    a = np.array([[10.0, -10.0], [20.0, -10.0]])
    mlp = ReluAbsMLP.from_weights([a], None, "relu", final_activation=False)
    inst = MultiLayerInstance(
        mlp, np.array([[1.0, 1.0]]), np.array([0]), (PlanStep(0, np.array([[False, True], [True, False]])),),
        {0: (0.75, 0.0)},
    )
    check = CHECKS["theorem-5.9"]
    assert all(o.ok for o in check.evaluate(inst, None))
    assert not all(o.ok for o in check.evaluate(inst, "lipschitz-halved"))
