"""Sound local Lipschitz constants (certs/lipschitz.py, THEORY.md 3).

Properties on the MLPs of THEORY.md 9.1 with every split kind of 9.2:
* the chain ``L^G >= L^P >= L^S >= L^D >=`` sampled ratios (3.6);
* the realized logit path bound ``||psi_2(u(theta)) - psi_2(u(1))||_inf <= (1 - theta) L ||d||_inf`` (3.7);
* exact rational arithmetic agrees with float64, and the float G/P never undercut the exact values;
* known-bad variants (signed P, D at the endpoints only, halved L, a box that is too small) are caught.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import Phase, find, given, settings, strategies as st

from certs.errors import CertificateInputError, UnsupportedLayerError
from certs.layer_view import ActivationOp, AffineOp, PiecewiseLinearTail
from certs.lipschitz import (
    empirical_ratio_max,
    lipschitz_constants,
    lipschitz_on_box,
    segment_pieces,
    tail_ops,
)
from verification.theorems.strategies import additive_splits, target_problems, thetas

THETA_GRID = np.linspace(0.0, 1.0, 41)
#: ``find`` settings: deterministic, no shrinking (we only need one failing example of a known-bad variant).
SEARCH = settings(max_examples=600, database=None, derandomize=True, phases=(Phase.generate,))


def tol(*values) -> float:
    """THEORY.md 0.3: ``1e-9 * max(1, |lhs|, |rhs|, scale)``."""
    return 1e-9 * max([1.0] + [float(np.max(np.abs(v))) for v in values])


@st.composite
def segments(draw):
    """``(tail, start, direction)`` with ``start = S v_s``, ``direction = R v_s`` for a drawn split of the target."""
    problem = draw(target_problems())
    S, R, _ = draw(additive_splits(problem.view.weight))
    V = problem.view.inputs
    return problem.view.tail, V @ S.T, V @ R.T


def realized_changes(tail, start, direction, grid=THETA_GRID):
    """``(B, len(grid))`` ``||psi_2(u(theta)) - psi_2(u(1))||_inf`` and the logit scale."""
    points = start[:, None, :] + grid[None, :, None] * direction[:, None, :]
    out = tail(points.reshape(-1, start.shape[1])).reshape(start.shape[0], grid.size, -1)
    dense = tail(start + direction)
    return np.abs(out - dense[:, None, :]).max(axis=2), max(np.abs(out).max(), np.abs(dense).max())


def path_bound_holds(tail, start, direction, L) -> bool:
    change, scale = realized_changes(tail, start, direction)
    rhs = (1.0 - THETA_GRID)[None, :] * L[:, None] * np.abs(direction).max(axis=1)[:, None]
    return bool(np.all(change <= rhs + tol(change, rhs, scale)))


# ---------------------------------------------------------------------- soundness properties


@given(segments())
def test_chain_G_P_S_D_empirical(segment):
    tail, start, direction = segment
    G, P, S, D = (lipschitz_constants(tail, start, direction, m).values for m in "GPSD")
    emp = empirical_ratio_max(tail, start, direction, THETA_GRID).values
    for upper, lower in ((G, P), (P, S), (S, D)):
        assert np.all(lower <= upper + tol(lower, upper))
    # D >= every sampled ratio, compared un-divided: ratio * gap * ||d|| <= D * gap * ||d|| + tol(logits),
    # since the logit differences carry float error relative to the logits, not to their difference.
    _, scale = realized_changes(tail, start, direction)
    d_norm = np.abs(direction).max(axis=1)
    min_gap = np.diff(THETA_GRID).min()
    assert np.all(emp * min_gap * d_norm <= D * min_gap * d_norm + tol(D, scale))


@given(segments(), thetas())
def test_every_method_bounds_the_realized_logit_change(segment, theta):
    tail, start, direction = segment
    grid = np.unique(np.append(THETA_GRID, theta))
    for method in "GPSD":
        result = lipschitz_constants(tail, start, direction, method)
        assert result.label == "sound" and result.values.shape == (start.shape[0],)
        change, scale = realized_changes(tail, start, direction, grid)
        rhs = (1.0 - grid)[None, :] * result.values[:, None] * np.abs(direction).max(axis=1)[:, None]
        assert np.all(change <= rhs + tol(change, rhs, scale)), method


@settings(max_examples=min(30, settings().max_examples))  # rational arithmetic on object arrays is slow
@given(segments())
def test_exact_rational_results_agree_with_float(segment):
    tail, start, direction = segment
    for method in "GPSD":
        fast = lipschitz_constants(tail, start, direction, method).values
        exact = lipschitz_constants(tail, start, direction, method, exact=True).values
        if method in "GP":
            # outward rounding: the float64 value never undercuts the exact one.  P may exceed it by more
            # than rounding: the widened float box keeps a ReLU with exact hi = 0 alive (both are sound).
            assert np.all(fast >= exact), method
        else:  # samples whose float64 pattern is uncertain fall back to method P (sound, >= exact)
            result = lipschitz_constants(tail, start, direction, method)
            certain = ~result.fell_back
            assert np.all(np.abs(fast - exact)[certain] <= tol(fast, exact)), method
            assert np.all(fast[~certain] >= exact[~certain] - tol(fast, exact)), method


@given(segments())
def test_pieces_cover_the_segment_and_psi2_is_affine_on_each(segment):
    tail, start, direction = segment
    pieces = segment_pieces(tail, start, direction)
    exact = segment_pieces(tail, start, direction, exact=True, with_jacobian=False)
    assert not exact.dropped.any()
    for sample in range(start.shape[0]):
        for enumeration in (pieces, exact):
            own = enumeration.owner == sample
            t0, t1 = enumeration.t0[own], enumeration.t1[own]
            if enumeration is pieces and pieces.dropped[sample]:  # uncertain float pattern: no pieces
                assert not own.any()
                continue
            assert t0[0] == 0 and t1[-1] == 1 and np.all(t0[1:] == t1[:-1]) and np.all(t0 < t1)
        if not pieces.dropped[sample]:
            own = pieces.owner == sample
            assert affine_on_pieces(tail, start[sample], direction[sample], pieces.t0[own], pieces.t1[own],
                                    pieces.slope[own])


def affine_on_pieces(tail, u0, d, t0, t1, slope) -> bool:
    """``psi_2(u(t)) = psi_2(u(t0)) + (t - t0) slope`` at 3/4 of every piece."""
    t = t0 + 0.75 * (t1 - t0)
    left = tail(u0[None, :] + t0[:, None] * d[None, :])
    inside = tail(u0[None, :] + t[:, None] * d[None, :])
    predicted = left + (t - t0)[:, None] * slope
    return bool(np.all(np.abs(inside - predicted) <= tol(inside, predicted, left)))


@given(segments())
def test_zero_direction_gives_zero_D_and_box_bounds_dominate_the_segment(segment):
    tail, start, direction = segment
    assert np.array_equal(lipschitz_constants(tail, start, np.zeros_like(direction), "D").values, np.zeros(len(start)))
    assert np.array_equal(empirical_ratio_max(tail, start, np.zeros_like(direction), THETA_GRID).values,
                          np.zeros(len(start)))
    radius = np.abs(direction).max(axis=1)  # the ball of radius ||d||_inf around S v_s contains the segment
    box = lipschitz_on_box(tail, start, radius)
    assert box.label == "sound" and box.method == "P-box"
    P = lipschitz_constants(tail, start, direction, "P").values
    G = lipschitz_constants(tail, start, direction, "G").values
    assert np.all(P <= box.values + tol(P, box.values)) and np.all(box.values <= G + tol(G, box.values))
    assert path_bound_holds(tail, start, direction, box.values)
    exact_box = lipschitz_on_box(tail, start, radius, exact=True).values
    assert np.all(box.values >= exact_box)  # outward rounding (the float box may keep a boundary ReLU alive)


def test_G_is_the_product_of_induced_infinity_norms():
    W2, W3 = np.array([[1.0, -2.0], [0.5, 0.5]]), np.array([[3.0, 1.0]])
    tail = PiecewiseLinearTail((AffineOp(np.eye(2), np.zeros(2)), ActivationOp("abs"), AffineOp(W2, np.zeros(2)),
                                ActivationOp("relu"), AffineOp(W3, np.zeros(1))))
    G = lipschitz_constants(tail, np.zeros((1, 2)), np.ones((1, 2)), "G").values[0]
    assert 12.0 <= G <= 12.0 * (1 + 1e-9)  # ||I|| * ||W2|| * ||W3|| = 1 * 3 * 4


def test_piece_cap_falls_back_to_method_P():
    # relu(u1) - relu(u2) along u(theta) = (-1 + 3 theta, -2 + 3 theta): three pieces
    tail = PiecewiseLinearTail((AffineOp(np.eye(2), np.zeros(2)), ActivationOp("relu"),
                                AffineOp(np.array([[1.0, -1.0]]), np.zeros(1))))
    start, direction = np.array([[-1.0, -2.0], [1.0, 1.0]]), np.array([[3.0, 3.0], [0.5, 0.5]])
    full = lipschitz_constants(tail, start, direction, "S")
    assert np.array_equal(full.n_pieces, [3, 1]) and not full.fell_back.any()
    capped = lipschitz_constants(tail, start, direction, "S", piece_cap=2)
    P = lipschitz_constants(tail, start, direction, "P").values
    assert np.array_equal(capped.fell_back, [True, False]) and np.array_equal(capped.n_pieces, [-1, 1])
    assert capped.values[0] == P[0] and capped.values[1] == full.values[1]


# ---------------------------------------------------------------------- known-bad variants are caught


def signed_pattern_bound(tail, start, direction) -> np.ndarray:
    """KNOWN-BAD method P: the signed ``W`` instead of ``|W|`` in the product (THEORY.md 3.3 step 4)."""
    lo, hi = np.minimum(start, start + direction), np.maximum(start, start + direction)
    x = np.ones_like(start)
    for op in tail.ops:
        if isinstance(op, AffineOp):
            Wp, Wn = np.maximum(op.weight, 0), np.minimum(op.weight, 0)
            lo, hi = lo @ Wp.T + hi @ Wn.T + op.bias, hi @ Wp.T + lo @ Wn.T + op.bias
            x = x @ op.weight.T
        elif op.kind == "relu":
            x, lo, hi = x * (hi > 0), np.maximum(lo, 0), np.maximum(hi, 0)
        else:
            lo, hi = np.where((lo <= 0) & (hi >= 0), 0, np.minimum(abs(lo), abs(hi))), np.maximum(abs(lo), abs(hi))
    return x.max(axis=1)


def endpoint_only_D(tail, start, direction) -> np.ndarray:
    """KNOWN-BAD method D: slopes of the pieces at theta = 0 and theta = 1 only."""
    pieces = segment_pieces(tail, start, direction, with_jacobian=False)
    at_ends = (pieces.t0 == 0) | (pieces.t1 == 1)
    slopes = np.zeros(start.shape[0])
    np.maximum.at(slopes, pieces.owner[at_ends], np.abs(pieces.slope[at_ends]).max(axis=1))
    d_norm = np.abs(direction).max(axis=1)
    return np.where(d_norm > 0, slopes / np.where(d_norm > 0, d_norm, 1), 0.0)


def halved_D(tail, start, direction) -> np.ndarray:
    """KNOWN-BAD: ``L^D / 2``."""
    return lipschitz_constants(tail, start, direction, "D").values / 2


def check_fails(variant):
    return lambda seg: not path_bound_holds(*seg, variant(*seg))


@pytest.mark.parametrize("variant", [signed_pattern_bound, endpoint_only_D, halved_D])
def test_hypothesis_finds_a_counterexample_for_each_known_bad_variant(variant):
    found = find(segments(), check_fails(variant), settings=SEARCH)
    assert not path_bound_holds(*found, variant(*found))
    assert path_bound_holds(*found, lipschitz_constants(*found, "D").values)


def test_explicit_counterexample_middle_piece_is_steepest():
    """``relu(u1) - relu(u2)`` with slopes 0, 1, 0 along the path: endpoint-only D reports 0."""
    tail = PiecewiseLinearTail((AffineOp(np.eye(2), np.zeros(2)), ActivationOp("relu"),
                                AffineOp(np.array([[1.0, -1.0]]), np.zeros(1))))
    seg = (tail, np.array([[-1.0, -2.0]]), np.array([[3.0, 3.0]]))
    assert endpoint_only_D(*seg)[0] == 0.0 and not path_bound_holds(*seg, endpoint_only_D(*seg))
    D = lipschitz_constants(*seg, "D").values
    assert abs(D[0] - 1.0) <= 1e-9 and path_bound_holds(*seg, D)
    assert lipschitz_constants(*seg, "D", exact=True).values[0] == 1.0


def test_explicit_counterexample_signed_product_cancels():
    """``psi_2(u) = u_1 - u_2`` along ``d = (1, -1)``: the signed row sum is 0 while the true constant is 2."""
    tail = PiecewiseLinearTail((AffineOp(np.eye(2), np.zeros(2)), AffineOp(np.array([[1.0, -1.0]]), np.zeros(1))))
    seg = (tail, np.zeros((1, 2)), np.array([[1.0, -1.0]]))
    assert signed_pattern_bound(*seg)[0] == 0.0 and not path_bound_holds(*seg, signed_pattern_bound(*seg))
    P = lipschitz_constants(*seg, "P").values
    assert 2.0 <= P[0] <= 2.0 * (1 + 1e-9) and path_bound_holds(*seg, P)


def test_box_that_is_too_small_is_caught():
    """KNOWN-BAD box: radius 0 (the pattern at ``S v_s`` only) misses the units that switch on along the path."""
    tail = PiecewiseLinearTail((AffineOp(np.eye(1), np.array([-1.0])), ActivationOp("relu")))
    seg = (tail, np.array([[0.0]]), np.array([[2.0]]))
    too_small = lipschitz_on_box(tail, seg[1], 0.0).values
    assert too_small[0] < 1e-300 and not path_bound_holds(*seg, too_small)  # 0, rounded up by one ulp
    assert path_bound_holds(*seg, lipschitz_on_box(tail, seg[1], 2.0).values)


# ---------------------------------------------------------------------- errors


def test_unsupported_ops_and_callables_are_named():
    with pytest.raises(UnsupportedLayerError, match="op 1.*str"):
        tail_ops([AffineOp(np.eye(2), np.zeros(2)), "softmax"])
    with pytest.raises(UnsupportedLayerError, match="function"):
        lipschitz_constants(lambda u: u, np.zeros((1, 2)), np.zeros((1, 2)), "P")


def test_bad_arguments_raise_typed_errors():
    tail = PiecewiseLinearTail((AffineOp(np.eye(2), np.zeros(2)), ActivationOp("relu")))
    with pytest.raises(CertificateInputError, match="method"):
        lipschitz_constants(tail, np.zeros((1, 2)), np.zeros((1, 2)), "X")
    with pytest.raises(CertificateInputError, match="direction"):
        lipschitz_constants(tail, np.zeros((1, 2)), np.zeros((1, 3)), "P")
    with pytest.raises(CertificateInputError, match="start"):
        lipschitz_constants(tail, np.full((1, 2), np.nan), np.zeros((1, 2)), "P")
    with pytest.raises(CertificateInputError, match="piece_cap"):
        lipschitz_constants(tail, np.zeros((1, 2)), np.zeros((1, 2)), "S", piece_cap=0)
    with pytest.raises(CertificateInputError, match="radius"):
        lipschitz_on_box(tail, np.zeros((1, 2)), -1.0)
    with pytest.raises(CertificateInputError, match="thetas"):
        empirical_ratio_max(tail, np.zeros((1, 2)), np.zeros((1, 2)), [0.5])
