"""Data-path budget B_T(R) and per-sample eta_s (THEORY.md 1.4, eq. 8; Corollary 5.2; pitfalls 2 and 4)."""

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from certs.budget import (
    PerSampleLipschitz,
    data_path_budget,
    logit_perturbations,
    per_sample_lipschitz,
    segment_lipschitz,
    upper_sum,
)
from certs.errors import CertificateInputError
from certs.layer_view import LayerView
from certs.lipschitz import lipschitz_constants
from certs.path import removed_products
from rmt.bounds import Bound

R = np.array([[1.0, -1.0], [2.0, 0.0]])
V = np.array([[1.0, 1.0], [0.0, 3.0]])


def sound(values):
    return PerSampleLipschitz(np.asarray(values, dtype=float), "sound", "test")


def test_budget_of_a_hand_computed_example():
    # R v_1 = (0, 2), R v_2 = (-3, 0): B_T = (2/2) (2 * 2 + 0.5 * 3) = 5.5
    np.testing.assert_array_equal(removed_products(R, V), [2.0, 3.0])
    b = data_path_budget(R, V, sound([2.0, 0.5]))
    assert b.label == "sound" and 5.5 <= b.value <= 5.5 * (1 + 1e-9)


def test_budget_uses_the_exact_product_not_a_norm_product():
    """Pitfall 2: R = e_1 1^T / sqrt(m), psi = 1: ||R psi||_inf = sqrt(m) > ||R||_op ||psi||_inf = 1."""
    m = 16
    r = np.zeros((3, m))
    r[0] = 1 / np.sqrt(m)
    psi = np.ones((1, m))
    proxy = np.linalg.norm(r, 2) * np.abs(psi).max()
    b = data_path_budget(r, psi, sound([1.0]))
    assert proxy == pytest.approx(1.0)
    assert b.value >= 2 * np.sqrt(m) > 2 * proxy


@given(
    hnp.arrays(np.float64, (3, 4), elements=st.floats(-5, 5)),
    hnp.arrays(np.float64, (5, 4), elements=st.floats(-5, 5)),
    hnp.arrays(np.float64, (5,), elements=st.floats(0, 5)),
)
def test_budget_is_rounded_above_the_exact_rational_value(r, v, lip):
    exact = sum(
        Fraction(2) * Fraction(float(l))
        * max(abs(sum(Fraction(float(a)) * Fraction(float(b)) for a, b in zip(row, vs))) for row in r)
        for l, vs in zip(lip, v)
    ) / len(v)
    assert Fraction(data_path_budget(r, v, sound(lip)).value) >= exact


def test_label_is_sound_only_if_every_lipschitz_constant_is():
    assert data_path_budget(R, V, per_sample_lipschitz(np.array([1.0, 1.0]), 2)).label == "estimate"
    assert data_path_budget(R, V, per_sample_lipschitz(Bound(1.0, "estimate", "x"), 2)).label == "estimate"
    assert data_path_budget(R, V, per_sample_lipschitz(Bound(1.0, "sound", "x"), 2)).label == "sound"
    assert sound([1.0, 1.0]).scaled(0.5).label == "estimate"
    assert sound([1.0, 1.0]).scaled(2.0).label == "sound"


def test_lipschitz_result_of_certs_lipschitz_is_accepted():
    from certs.layer_view import AffineOp, PiecewiseLinearTail

    tail = PiecewiseLinearTail((AffineOp(np.eye(2), np.zeros(2)),))
    result = lipschitz_constants(tail, V @ np.zeros((2, 2)).T, V @ R.T, "D")
    lip = per_sample_lipschitz(result, 2)
    assert lip.label == "sound" and lip.values.shape == (2,)


def test_eta_has_no_factor_two_and_vanishes_at_theta_one():
    lip = sound([2.0, 0.5])
    eta = logit_perturbations(R, V, lip, 0.25)
    np.testing.assert_allclose(eta, [0.75 * 2 * 2, 0.75 * 0.5 * 3], rtol=1e-9)
    assert np.all(eta >= [3.0, 1.125])
    np.testing.assert_array_equal(logit_perturbations(R, V, lip, 1.0), [0.0, 0.0])


def test_upper_sum_dominates_cancellation():
    big = 1e16
    assert upper_sum([big, 1.0, -big]) >= 1.0


@pytest.mark.parametrize(
    "removed, inputs, lip, word",
    [
        (R, V[:, :1], [1.0, 1.0], "cannot multiply"),
        (R, np.zeros((0, 2)), [], "empty"),
        (R, np.array([[np.inf, 0.0]]), [1.0], "non-finite"),
        (R, V, [1.0], "one L_s per sample"),
    ],
)
def test_bad_budget_inputs_raise(removed, inputs, lip, word):
    with pytest.raises(CertificateInputError, match=word):
        data_path_budget(removed, inputs, per_sample_lipschitz(np.asarray(lip, dtype=float), len(lip)))


def test_negative_or_nan_lipschitz_raises():
    with pytest.raises(CertificateInputError, match="lipschitz"):
        sound([-1.0, 1.0])
    with pytest.raises(CertificateInputError, match="lipschitz"):
        sound([np.nan, 1.0])


def test_method_name_needs_a_piecewise_linear_tail():
    view = LayerView("opaque", R, V, np.array([0, 1]), tail=lambda u: u)
    with pytest.raises(CertificateInputError, match="PiecewiseLinearTail"):
        segment_lipschitz(view, np.zeros_like(R), R, "D")
    with pytest.raises(CertificateInputError, match="method"):
        segment_lipschitz(view, np.zeros_like(R), R, "X")
