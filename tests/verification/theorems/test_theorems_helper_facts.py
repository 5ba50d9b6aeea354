"""Property checks of the helper facts of THEORY.md 3.7 (CE 2-Lipschitz, logit path bound, Frobenius
identity, disjoint-support identities), shared with ``mpcert verify``."""

import numpy as np
import pytest

from verification.theorems.helper_fact_checks import LogitPair
from verification.theorems.theorem_checks import CHECKS


def test_ce_constant_two_is_attained_in_the_limit():
    """``z = (0, 10)``, ``z' = (-t, 10 + t)`` with label 0: ``(l(z') - l(z)) / ||z - z'||_inf -> 2`` (THEORY.md 3.7)."""
    pair = LogitPair(np.array([[0.0, 10.0]]), np.array([[-5.0, 15.0]]), np.array([0]))
    [lipschitz_outcome, *_] = CHECKS["ce-2-lipschitz"].evaluate(pair, None)
    assert lipschitz_outcome.ok
    assert lipschitz_outcome.slack_ratio == pytest.approx(1.0, abs=1e-4)
