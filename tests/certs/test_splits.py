"""Validated decompositions and penalties (THEORY.md 1.1, 1.5, 3.7, 9.2)."""

import numpy as np
import pytest

from certs.errors import CertificateInputError
from certs.splits import (
    ElasticNetPenalty,
    checked_split,
    entrywise_l1,
    frobenius_inner,
    frobenius_sq,
    mask_split,
    prune_restore_split,
)

A = np.array([[1.0, -2.0, 0.0], [3.0, 0.5, -4.0]])


def test_mask_split_is_exact_and_disjoint():
    split = mask_split(A, np.array([[1, 0, 1], [0, 1, 1]]))
    np.testing.assert_array_equal(split.dense, A)
    assert split.disjoint and frobenius_inner(split.structured, split.removed) == 0.0
    np.testing.assert_array_equal(split.removed, [[0.0, -2.0, 0.0], [3.0, 0.0, 0.0]])
    np.testing.assert_array_equal(split.at(0.5), split.structured + 0.5 * split.removed)


def test_norms_are_entrywise():
    assert entrywise_l1(A) == 10.5  # not the induced max column sum 4.0
    assert frobenius_sq(A) == 1 + 4 + 9 + 0.25 + 16


@pytest.mark.parametrize(
    "mask, word",
    [(np.ones((3, 2)), "shape"), (np.full(A.shape, 0.5), "only 0 and 1"), (np.ones((2, 3, 1)), "shape")],
)
def test_bad_masks_raise(mask, word):
    with pytest.raises(CertificateInputError, match=word):
        mask_split(A, mask)


def test_checked_split_rejects_non_decompositions_and_overlaps():
    with pytest.raises(CertificateInputError, match="does not reproduce"):
        checked_split(A, A, np.ones_like(A))
    overlapping = checked_split(A, 0.5 * A, 0.5 * A)
    assert not overlapping.disjoint
    with pytest.raises(CertificateInputError, match="overlap"):
        checked_split(A, 0.5 * A, 0.5 * A, require_disjoint=True)
    with pytest.raises(CertificateInputError, match="structured"):
        checked_split(A, A[:1], A[:1])
    with pytest.raises(CertificateInputError, match="NaN"):
        checked_split(A, np.full(A.shape, np.nan), A)


def test_prune_restore_split_partitions_the_weight():
    final = np.array([[1, 1, 0], [1, 0, 1]], dtype=bool)
    over = np.array([[1, 0, 0], [0, 0, 1]], dtype=bool)
    triple = prune_restore_split(A, final, over)
    np.testing.assert_array_equal(triple.kept + triple.restored + triple.removed, A)
    np.testing.assert_array_equal(triple.final().removed, triple.removed)
    np.testing.assert_array_equal(triple.all_pruned().removed, triple.restored + triple.removed)
    with pytest.raises(CertificateInputError, match="sub-mask"):
        prune_restore_split(A, over, final)


def test_penalties_scalar_and_weighted():
    pen = ElasticNetPenalty.create(0.5, 2.0)
    assert pen(A) == pytest.approx(2.0 * frobenius_sq(A) + 0.5 * entrywise_l1(A))
    weighted = ElasticNetPenalty.create(np.full(A.shape, 0.5), np.full(A.shape, 2.0), A.shape)
    assert weighted.is_weighted and weighted(A) == pytest.approx(pen(A))


@pytest.mark.parametrize("l1, l2, word",
                         [(-0.1, 1.0, "lambda1"), (0.0, -1.0, "lambda2"), (np.ones((3, 3)), 0.0, "lambda1"),
                          (0.0, np.inf, "lambda2")])
def test_bad_penalties_raise(l1, l2, word):
    with pytest.raises(CertificateInputError, match=word):
        ElasticNetPenalty.create(l1, l2, A.shape)
