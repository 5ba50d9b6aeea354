"""The hypothesis strategies (verification/theorems/strategies.py) produce valid objects and reach the degenerate
cases."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import Phase, find, given, settings, strategies as st

from rmt.errors import InvalidParameterError
from verification.theorems.strategies import (
    additive_splits,
    gamma_weights,
    kn_masks,
    masks,
    multi_step_plans,
    penalties,
    prune_restore_triples,
    target_problems,
    thetas,
    weight_arrays,
)

SHAPES = st.tuples(st.integers(1, 8), st.integers(1, 8))
#: ``find`` without shrinking: we only need to know that an example is reachable.
REACHABLE = settings(max_examples=300, database=None, phases=(Phase.generate,))


def keeps_exactly_k_per_group(keep: np.ndarray, k: int, n: int) -> bool:
    rows, m = keep.shape
    return bool(np.all(keep.reshape(rows, m // n, n).sum(axis=-1) == k))


def is_partition(A: np.ndarray, parts) -> bool:
    supports = [part != 0 for part in parts]
    pairwise_disjoint = all(
        not np.any(supports[i] & supports[j]) for i in range(len(parts)) for j in range(i + 1, len(parts))
    )
    return pairwise_disjoint and np.array_equal(sum(parts), A)


@given(target_problems())
def test_target_problems_are_consistent(problem):
    view, mlp = problem.view, problem.mlp
    assert 0 <= problem.index < mlp.n_layers
    assert 1 <= problem.X.shape[0] <= 6 and 1 <= problem.X.shape[1] <= 6
    assert 2 <= mlp.widths[-1] <= 5
    assert all(1 <= w <= 8 for w in view.weight.shape)
    assert np.all((problem.labels >= 0) & (problem.labels < mlp.widths[-1]))
    assert np.all(np.abs(np.concatenate([w.ravel() for w in mlp.weights()])) <= 3.0)
    assert np.all(np.abs(np.concatenate(mlp.biases())) <= 1.0)
    dense = mlp.logits_np(problem.X)
    assert np.abs(view.logits() - dense).max() <= 1e-12 * max(1.0, np.abs(dense).max())


@pytest.mark.parametrize(
    "what, predicate",
    [
        ("psi_1(s) = 0", lambda p: bool(np.any(np.all(p.view.inputs == 0, axis=1)))),
        ("|T| = 1", lambda p: p.X.shape[0] == 1),
        ("tied logits",
         lambda p: bool(np.any(np.sum(p.mlp.logits_np(p.X) == p.mlp.logits_np(p.X).max(axis=1, keepdims=True), axis=1)
                               > 1))),
        (
            "all ReLUs after the target dead",
            lambda p: p.mlp.activation == "relu"
            and p.index + 2 < p.mlp.n_layers
            and not np.any(p.view.tail.ops[3](p.view.tail.ops[2](p.view.tail.ops[1](p.view.tail.ops[0](
                np.full((1, p.view.weight.shape[0]), 5.0)))))),
        ),
        ("abs activation without final activation", lambda p: p.mlp.activation == "abs" and not p.mlp.final_activation),
    ],
)
def test_degenerate_cases_are_generated(what, predicate):
    found = find(target_problems(), predicate, settings=REACHABLE)
    assert predicate(found), what


@given(SHAPES.flatmap(lambda shape: st.tuples(st.just(shape), weight_arrays(shape))), st.data())
def test_masks_are_boolean_keep_arrays_of_the_right_shape(case, data):
    shape, A = case
    keep = data.draw(masks(shape, weight=A))
    assert keep.dtype == np.bool_ and keep.shape == shape
    magnitude = data.draw(masks(shape, kinds=("magnitude",), weight=A))
    if magnitude.any() and not magnitude.all():
        assert np.abs(A[magnitude]).min() >= np.abs(A[~magnitude]).max()


@given(st.integers(1, 6), st.integers(1, 4), st.integers(1, 4), st.data())
def test_kn_masks_keep_exactly_k_in_every_group(rows, groups, n, data):
    k = data.draw(st.integers(0, n))
    shape = (rows, groups * n)
    A = data.draw(weight_arrays(shape))
    keep = data.draw(kn_masks(shape, k, n, weight=A))
    assert keeps_exactly_k_per_group(keep, k, n)
    if k < n:  # known-bad: one more kept entry breaks the check
        worse = keep.copy()
        worse[0, np.flatnonzero(~keep[0, :n])[0]] = True
        assert not keeps_exactly_k_per_group(worse, k, n)


def test_magnitude_kn_mask_keeps_the_largest_entries():
    A = np.array([[0.1, -3.0, 2.0, 0.0, 1.0, -1.5]])
    keep = find(kn_masks(A.shape, 1, 3, weight=A), lambda k: True, settings=settings(database=None))
    assert np.array_equal(keep, [[False, True, False, False, False, True]])


@given(SHAPES.flatmap(weight_arrays), st.data())
def test_prune_restore_triples_partition_the_matrix(A, data):
    S, Q, P = data.draw(prune_restore_triples(A))
    assert is_partition(A, (S, Q, P))
    # known-bad: one non-zero entry of A counted in two parts is rejected
    nonzero = np.argwhere(A != 0)
    if nonzero.size:
        extra = np.zeros_like(A)
        extra[tuple(nonzero[0])] = A[tuple(nonzero[0])]
        doubled = (S, Q + extra, P) if S[tuple(nonzero[0])] else (S + extra, Q, P)
        assert not is_partition(A, doubled)


@given(SHAPES.flatmap(weight_arrays), st.data())
def test_additive_splits_add_up_and_svd_is_orthogonal(A, data):
    S, R, kind = data.draw(additive_splits(A))
    scale = max(1.0, np.abs(A).sum())
    if kind == "mask":
        assert is_partition(A, (S, R))
    else:
        assert np.abs(S + R - A).max() <= 1e-15 * scale
    if kind == "svd":
        assert abs(np.sum(S * R)) <= 1e-12 * max(1.0, np.sum(A * A))


def test_svd_split_hits_every_rank_and_the_known_bad_split_is_not_orthogonal():
    A = np.array([[3.0, 1.0], [1.0, 2.0], [0.0, -1.0]])
    for rank in (0, 1, 2):
        S, R, _ = find(
            additive_splits(A, kinds=("svd",)),
            lambda split, rank=rank: np.linalg.matrix_rank(split[0]) == rank,
            settings=settings(database=None),
        )
        assert abs(np.sum(S * R)) <= 1e-12 * np.sum(A * A)
    # known-bad: truncating the matrix entries (not the singular values) leaves a cross term
    S_bad = np.where(np.abs(A) >= 2.0, A, 0.0) * 0.5
    assert abs(np.sum(S_bad * (A - S_bad))) > 1e-3


@given(thetas(), penalties(), st.tuples(st.integers(1, 4), st.integers(1, 4)).flatmap(gamma_weights))
def test_scalars_stay_in_their_ranges(theta, lambdas, gamma):
    assert 0.0 <= theta <= 1.0
    assert all(0.0 <= lam <= 2.0 for lam in lambdas)
    assert np.all((gamma >= 0.0) & (gamma <= 2.0))


def test_endpoints_and_zeros_are_generated():
    settings_ = settings(database=None)
    assert find(thetas(), lambda t: t == 0.0, settings=settings_) == 0.0
    assert find(thetas(), lambda t: t == 1.0, settings=settings_) == 1.0
    assert find(penalties(), lambda lam: lam == (0.0, 0.0), settings=settings_) == (0.0, 0.0)
    gamma = find(gamma_weights((3, 3)), lambda g: np.any(g == 0) and np.any(g > 0), settings=settings_)
    assert np.any(gamma == 0)


@given(target_problems(), st.booleans(), st.data())
def test_multi_step_plans_match_the_network(problem, repeats, data):
    plan = data.draw(multi_step_plans(problem.mlp, allow_repeats=repeats))
    shapes = [w.shape for w in problem.mlp.weights()]
    assert len(plan) >= 1
    assert all(step.keep.dtype == np.bool_ and step.keep.shape == shapes[step.index] for step in plan)
    if not repeats:
        assert len({step.index for step in plan}) == len(plan)


def test_repeated_layers_occur_when_allowed():
    problem = find(target_problems(), lambda p: p.mlp.n_layers >= 2, settings=REACHABLE)
    plan = find(
        multi_step_plans(problem.mlp, allow_repeats=True),
        lambda steps: len({s.index for s in steps}) < len(steps),
        settings=settings(database=None),
    )
    assert len({s.index for s in plan}) < len(plan)


def test_bad_strategy_arguments_raise_typed_errors():
    with pytest.raises(InvalidParameterError, match="k:n"):
        kn_masks((2, 5), 1, 2)
    with pytest.raises(InvalidParameterError, match="kinds"):
        masks((2, 2), kinds=("striped",))
    with pytest.raises(InvalidParameterError, match="weight"):
        masks((2, 2), kinds=("magnitude",))
