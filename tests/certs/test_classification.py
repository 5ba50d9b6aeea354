"""Cross-entropy, margins and accuracy on logits (THEORY.md 1.3)."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from certs.classification import (accuracy, cross_entropy_per_sample, mean_cross_entropy, prediction_margins,
                                  true_margins)
from certs.errors import CertificateInputError


def test_cross_entropy_matches_the_definition_on_small_logits():
    z = np.array([[1.0, 2.0, 0.5]])
    expected = -1.0 + math.log(math.exp(1.0) + math.exp(2.0) + math.exp(0.5))
    assert cross_entropy_per_sample(z, np.array([0]))[0] == pytest.approx(expected, rel=1e-15)


def test_cross_entropy_is_stable_for_huge_logits():
    z = np.array([[1e4, 0.0], [-1e4, 1e4]])
    ce = cross_entropy_per_sample(z, np.array([1, 0]))
    assert ce[0] == pytest.approx(1e4) and ce[1] == pytest.approx(2e4)


@given(hnp.arrays(np.float64, (3, 4), elements=st.floats(-30, 30)), st.floats(-100, 100))
def test_cross_entropy_is_shift_invariant_and_positive(z, shift):
    labels = np.array([0, 1, 3])
    ce = cross_entropy_per_sample(z, labels)
    assert np.all(ce >= -1e-12)
    np.testing.assert_allclose(cross_entropy_per_sample(z + shift, labels), ce, rtol=1e-9, atol=1e-9)


def test_margins_and_strict_accuracy_with_ties():
    z = np.array([[2.0, 2.0, 0.0], [3.0, 1.0, 0.0], [0.0, 1.0, 5.0]])
    labels = np.array([0, 0, 1])
    np.testing.assert_array_equal(prediction_margins(z), [0.0, 2.0, 4.0])
    np.testing.assert_array_equal(true_margins(z, labels), [0.0, 2.0, -4.0])
    assert accuracy(z, labels) == pytest.approx(1 / 3)  # the tie counts as an error
    assert mean_cross_entropy(z, labels) == pytest.approx(cross_entropy_per_sample(z, labels).mean())


def test_batched_logits_of_a_theta_grid():
    z = np.stack([np.eye(3), 2 * np.eye(3)])
    assert accuracy(z, np.array([0, 1, 2])).shape == (2,)


@pytest.mark.parametrize(
    "z, labels, word",
    [
        (np.zeros((2, 3)), np.array([0, 3]), "labels out of range"),
        (np.zeros((2, 3)), np.array([0]), "labels"),
        (np.zeros((2, 3)), np.array([0.0, 1.0]), "labels"),
        (np.zeros((0, 3)), np.zeros(0, dtype=int), "empty"),
        (np.array([[0.0, np.nan]]), np.array([0]), "non-finite"),
        (np.zeros((2, 1)), np.array([0, 0]), "K >= 2"),
    ],
)
def test_bad_logits_or_labels_raise(z, labels, word):
    with pytest.raises(CertificateInputError, match=word):
        cross_entropy_per_sample(z, labels)
