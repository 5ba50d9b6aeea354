"""Property checks of the helper facts of THEORY.md 3.7 (CE 2-Lipschitz, logit path bound, Frobenius
identity, disjoint-support identities), shared with ``mpcert verify``."""

import numpy as np
import pytest
from hypothesis import settings

from verification.helper_fact_checks import LogitPair
from verification.theorem_checks import CHECKS, run_check

HELPER_FACTS = ("ce-2-lipschitz", "logit-path-bound", "frobenius-identity", "disjoint-identities")
BAD_SEARCH_EXAMPLES = 500


@pytest.mark.parametrize("check_id", HELPER_FACTS)
def test_helper_fact_has_no_violation(check_id):
    current = settings()
    report = run_check(CHECKS[check_id], current.max_examples, derandomize=current.derandomize)
    assert report.examples >= min(current.max_examples, 50)
    assert report.violations == 0, report.counterexample


@pytest.mark.parametrize("check_id, mutation", [(c, m) for c in HELPER_FACTS for m in CHECKS[c].mutations])
def test_known_bad_variant_is_caught_by_search(check_id, mutation):
    report = run_check(CHECKS[check_id], BAD_SEARCH_EXAMPLES, mutation=mutation, stop_at_first_violation=True)
    assert report.violations == 1, f"{check_id} did not catch {mutation} in {report.examples} examples"


def test_ce_constant_two_is_attained_in_the_limit():
    """``z = (0, 10)``, ``z' = (-t, 10 + t)`` with label 0: ``(l(z') - l(z)) / ||z - z'||_inf -> 2`` (THEORY.md 3.7)."""
    pair = LogitPair(np.array([[0.0, 10.0]]), np.array([[-5.0, 15.0]]), np.array([0]))
    [lipschitz_outcome, *_] = CHECKS["ce-2-lipschitz"].evaluate(pair, None)
    assert lipschitz_outcome.ok
    assert lipschitz_outcome.slack_ratio == pytest.approx(1.0, abs=1e-4)
