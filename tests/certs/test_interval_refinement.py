"""Sub-interval driver (certs.intervals.refinement) on the ReLU/abs MLPs of verification.theorems.networks.

Where the exact methods of certs.lipschitz exist, the interval forward-mode ``L_s`` must dominate
``L^D`` (the exact local constant on the segment, THEORY.md 3.5) and every sampled ratio; the direct
logit-change bound must dominate the realised change; halving the sub-intervals never loosens the
bound.  Known-bad: halving the sound ``L_s`` is caught by the ``L^D`` comparison.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from certs.errors import CertificateInputError
from certs.intervals.dual import Dual
from certs.intervals.interval import EPS, Interval, IntervalDomainError, widen
from certs.intervals.piecewise_linear import tail_evaluator, tail_segment_bounds, tail_sound_lipschitz
from certs.intervals import refinement
from certs.intervals.refinement import segment_bounds
from certs.lipschitz import lipschitz_constants
from verification.theorems.networks import ReluAbsMLP

TOL = 1e-9


@st.composite
def mlp_segments(draw):
    widths = [draw(st.integers(2, 6))] + [draw(st.integers(2, 8)) for _ in range(draw(st.integers(2, 4)))]
    net = ReluAbsMLP(widths, activation=draw(st.sampled_from(["relu", "abs"])), final_activation=draw(st.booleans()),
                     seed=draw(st.integers(0, 10_000)))
    rng = np.random.default_rng(draw(st.integers(0, 10_000)))
    index = draw(st.integers(0, len(widths) - 3))
    X = rng.normal(0, draw(st.sampled_from([0.5, 2.0, 5.0])), (4, widths[0]))
    view = net.layer_view(index, X, np.zeros(4, dtype=int))
    keep = rng.random(view.weight.shape) < draw(st.sampled_from([0.2, 0.5, 0.9]))
    S = np.where(keep, view.weight, 0.0)
    return view.tail, view.inputs @ S.T, view.inputs @ (view.weight - S).T


def _tail_outputs(tail, start, direction, thetas):
    return np.stack([tail(start + t * direction) for t in thetas])


@given(mlp_segments(), st.sampled_from([1, 2]), st.sampled_from([0, 3]), st.sampled_from([0, 1, 2, 4]))
def test_interval_bound_dominates_exact_method_d_and_sampled_ratios(segment, k, refine, order):
    tail, start, direction = segment
    sound = tail_sound_lipschitz(tail, start, direction, subintervals=k, refine=refine, order=order)
    exact = lipschitz_constants(tail, start, direction, method="D").values
    assert sound.label == "sound"
    assert np.all(exact <= sound.values * (1 + TOL) + TOL)
    thetas = np.linspace(0, 1, 33)
    z = _tail_outputs(tail, start, direction, thetas)
    products = np.abs(direction).max(axis=1)
    ratios = np.abs(np.diff(z, axis=0)).max(axis=2) / np.diff(thetas)[:, None]
    assert np.all(ratios.max(axis=0) <= sound.values * products * (1 + TOL) + TOL)
    bounds = tail_segment_bounds(tail, start, direction, subintervals=k, refine=refine, order=order)
    realised = np.abs(z - z[-1]).max(axis=2)
    assert np.all(realised.max(axis=0) <= bounds.logit_change(0.0) * (1 + TOL) + TOL)
    assert np.all(realised[thetas >= 0.5].max(axis=0) <= bounds.logit_change(0.5) * (1 + TOL) + TOL)
    assert np.all(bounds.derivative_lower <= bounds.derivative * (1 + TOL) + TOL)


@given(mlp_segments(), st.sampled_from([1, 2, 3]))
def test_halving_subintervals_never_loosens_plain_interval_bounds(segment, k):
    """Plain intervals are inclusion-isotone: each child's raw bound is at most its parent's."""
    tail, start, direction = segment
    evaluate = tail_evaluator(tail, start, direction, order=0)
    parent = segment_bounds(evaluate, start.shape[0], subintervals=k)
    child = segment_bounds(evaluate, start.shape[0], subintervals=2 * k)
    for j in range(k):
        p = parent.slope[parent.theta_lo == j / k]
        for c_lo in (j / k, (2 * j + 1) / (2 * k)):
            c = child.slope[np.isclose(child.theta_lo, c_lo)]
            assert np.all(c <= p * (1 + TOL) + TOL)


def test_known_bad_halved_bound_is_flagged_on_a_fixed_network():
    net = ReluAbsMLP([3, 6, 6, 2], activation="abs", final_activation=False, seed=4)
    X = np.random.default_rng(1).normal(0, 2.0, (5, 3))
    view = net.layer_view(1, X, np.zeros(5, dtype=int))
    S = view.weight * (np.random.default_rng(2).random(view.weight.shape) < 0.5)
    start, direction = view.inputs @ S.T, view.inputs @ (view.weight - S).T
    sound = tail_sound_lipschitz(start=start, direction=direction, tail=view.tail, subintervals=8, refine=4)
    exact = lipschitz_constants(view.tail, start, direction, method="D").values
    assert np.all(exact <= sound.values * (1 + TOL))
    assert np.any(exact > sound.values / 2 * (1 + TOL))


def test_bad_options_raise_typed_errors_naming_them():
    net = ReluAbsMLP([2, 3, 2], seed=0)
    view = net.layer_view(0, np.ones((2, 2)), np.zeros(2, dtype=int))
    start = view.inputs @ view.weight.T
    for option, value in (("subintervals", 0), ("refine", -1), ("max_subintervals", 0), ("rtol", -1.0)):
        with pytest.raises(CertificateInputError, match=option):
            tail_segment_bounds(view.tail, start, 0 * start, **{option: value})
    with pytest.raises(CertificateInputError, match="theta0"):
        tail_segment_bounds(view.tail, start, 0 * start).logit_change(2.0)
    with pytest.raises(CertificateInputError, match="start/direction"):
        tail_evaluator(view.tail, start, start[:1])
    X = np.random.default_rng(0).normal(size=(3, 2))
    moving = ReluAbsMLP([2, 3, 3], seed=1, final_activation=False).layer_view(0, X, np.zeros(3, dtype=int))
    with pytest.raises(IntervalDomainError, match="give_up"):  # upper >= lower always, so a give_up below 1 must fire
        step = moving.inputs @ moving.weight.T
        tail_segment_bounds(moving.tail, 0 * step, step, give_up=0.5)
    zero = tail_sound_lipschitz(view.tail, start, 0 * start)
    assert np.all(zero.values == 0.0)  # R psi_1 = 0: the path is a point


def test_give_up_fires_on_the_probe_before_the_full_pass():
    """With ``give_up`` the first ``probe`` samples run alone first: a too-loose enclosure never reaches the rest."""
    X = np.random.default_rng(0).normal(size=(12, 2))
    moving = ReluAbsMLP([2, 3, 3], seed=1, final_activation=False).layer_view(0, X, np.zeros(12, dtype=int))
    inner = tail_evaluator(moving.tail, 0 * (moving.inputs @ moving.weight.T), moving.inputs @ moving.weight.T)
    seen: list[int] = []

    def evaluate(owner, lo, hi):
        seen.extend(int(i) for i in np.asarray(owner))
        return inner(owner, lo, hi)

    with pytest.raises(IntervalDomainError, match="give_up"):
        segment_bounds(evaluate, 12, give_up=0.5, probe=3)
    assert seen and max(seen) < 3
    seen.clear()
    with pytest.raises(IntervalDomainError, match="give_up"):  # without the probe every sample is evaluated first
        segment_bounds(evaluate, 12, give_up=0.5, probe=0)
    assert max(seen) == 11


class _Widened:
    """Enclosures of ``inner`` widened by ``margin`` per row (a stand-in for a remainder that blew up)."""

    def __init__(self, inner, margin):
        self.inner, self.margin = inner, margin

    def enclosures(self):
        value, tangent = self.inner.enclosures()
        m = self.margin[:, None]
        return widen(value.lo, value.hi, m), widen(tangent.lo, tangent.hi, m)


def _loose_when_wide(inner, loose_samples, width):
    """Evaluator whose enclosures explode (margin 1e12) on sub-intervals wider than ``width`` of ``loose_samples``."""

    def evaluate(owner, lo, hi):
        loose = torch.isin(owner, torch.as_tensor(loose_samples)) & (hi - lo > width)
        return _Widened(inner(owner, lo, hi), torch.where(loose, 1e12, 0.0).double())

    return evaluate


def _six_relu_paths():
    """Six pruning paths of a small ReLU network (layer 0, half the weights removed): ``view, start, direction`` and
    the exact tail evaluator."""
    X = np.random.default_rng(3).normal(size=(6, 3))
    net = ReluAbsMLP([3, 5, 5, 2], activation="relu", final_activation=False, seed=2)
    view = net.layer_view(0, X, np.zeros(6, dtype=int))
    S = view.weight * (np.random.default_rng(4).random(view.weight.shape) < 0.5)
    start, direction = view.inputs @ S.T, view.inputs @ (view.weight - S).T
    return view, start, direction, tail_evaluator(view.tail, start, direction)


def test_loose_pieces_are_split_finer_and_stay_sound():
    view, start, direction, inner = _six_relu_paths()
    evaluate = _loose_when_wide(inner, [1, 4], 1 / 16)
    bounds = segment_bounds(evaluate, 6, subintervals=8, max_subintervals=64, give_up=1e6, refine=2)
    counts = np.bincount(bounds.owner, minlength=6)
    assert bounds.subintervals == 32
    assert np.all(counts[[1, 4]] >= 32) and np.all(counts[[0, 2, 3, 5]] < 32)
    exact = lipschitz_constants(view.tail, start, direction, method="D").values
    products = np.abs(direction).max(axis=1)
    assert np.all(exact * products <= bounds.derivative * (1 + TOL) + TOL)
    assert np.all(bounds.derivative < 1e6)  # the loose start was replaced, not kept
    halved = segment_bounds(evaluate, 6, subintervals=8, max_subintervals=16, give_up=1e6)  # 4x would need 32 pieces
    assert halved.subintervals == 16 and np.all(np.bincount(halved.owner, minlength=6)[[1, 4]] == 16)
    assert np.all(exact * products <= halved.derivative * (1 + TOL) + TOL) and np.all(halved.derivative < 1e6)
    with pytest.raises(IntervalDomainError, match="max_subintervals=15"):  # not even 2x fits the cap
        segment_bounds(evaluate, 6, subintervals=8, max_subintervals=15, give_up=1e6)
    # known-bad: without escalation (no give_up) the exploded start is what comes back
    assert np.all(segment_bounds(evaluate, 6, subintervals=8, max_subintervals=64).derivative[[1, 4]] > 1e11)


def test_quarter_and_half_splits_mix_and_keep_an_exact_cover():
    """Cap 16, start 8: sample 1 is loose on its two pieces left of 1/4 (4x fits: 14 pieces), sample 4 on all eight
    (4x would need 32: halved to 16); both covers still tile [0, 1] and the bounds stay above method D."""
    view, start, direction, inner = _six_relu_paths()

    def evaluate(owner, lo, hi):
        wide = hi - lo > 1 / 16
        loose = wide & (((owner == 1) & (hi <= 0.25)) | (owner == 4))
        return _Widened(inner(owner, lo, hi), torch.where(loose, 1e12, 0.0).double())

    bounds = segment_bounds(evaluate, 6, subintervals=8, max_subintervals=16, give_up=1e6)
    counts = np.bincount(bounds.owner, minlength=6)
    assert counts[1] == 14 and counts[4] == 16 and bounds.subintervals == 32
    for sample in range(6):
        mine = bounds.owner == sample
        lo, hi = np.sort(bounds.theta_lo[mine]), np.sort(bounds.theta_hi[mine])
        assert lo[0] == 0.0 and hi[-1] == 1.0 and np.array_equal(lo[1:], hi[:-1])
    exact = lipschitz_constants(view.tail, start, direction, method="D").values
    assert np.all(exact * np.abs(direction).max(axis=1) <= bounds.derivative * (1 + TOL) + TOL)
    assert np.all(bounds.derivative < 1e6)


def test_a_layer_that_stays_loose_fails_after_splitting_a_few_samples():
    """Samples 4-9 are loose on every sub-interval wider than 1/64, the cap is 32: the first split (``probe`` = 4
    loose samples) still fails, and the error comes before samples 8 and 9 are split."""
    X = np.random.default_rng(5).normal(size=(10, 3))
    net = ReluAbsMLP([3, 4, 2], activation="relu", final_activation=False, seed=3)
    view = net.layer_view(0, X, np.zeros(10, dtype=int))
    inner = tail_evaluator(view.tail, 0 * (view.inputs @ view.weight.T), view.inputs @ view.weight.T)
    loose = _loose_when_wide(inner, list(range(4, 10)), 1 / 64)
    restarted: set[int] = set()

    def evaluate(owner, lo, hi):
        restarted.update(int(o) for o, w in zip(owner, hi - lo) if 0 < w < 1 / 16)
        return loose(owner, lo, hi)

    with pytest.raises(IntervalDomainError, match="max_subintervals=32"):
        segment_bounds(evaluate, 10, subintervals=8, max_subintervals=32, give_up=1e6, probe=4)
    assert restarted == {4, 5, 6, 7}


def _bounds(segment, k: int, refine: int):
    tail, start, direction = segment
    evaluate = tail_evaluator(tail, start, direction, order=2)
    return segment_bounds(evaluate, start.shape[0], subintervals=k, refine=refine, rtol=0.05, give_up=1e6)


def _same_cover(a, b) -> bool:
    """The same pieces with the same bounds (in any order)."""
    fields = ("owner", "theta_lo", "theta_hi", "slope", "change")
    ia, ib = np.lexsort((a.theta_lo, a.owner)), np.lexsort((b.theta_lo, b.owner))
    return all(np.array_equal(getattr(a, f)[ia], getattr(b, f)[ib]) for f in fields)


@given(mlp_segments(), st.sampled_from([1, 2, 4]), st.sampled_from([0, 3]))
def test_midpoints_skipped_where_no_decision_needs_them_give_the_same_cover_and_bounds(segment, k, refine):
    """The start pieces' midpoints are evaluated only for samples that need work under the ends' statistics alone
    (refinement.py): the cover and bounds equal those with every midpoint evaluated (more points only raise
    ``point_s``, so they cannot change a skipped sample's decisions).  The rigorous lower bound rests on fewer points,
    so it is at most the eager one up to the rounding of a point enclosure, which depends on the batch it is
    evaluated in (BLAS blocking; found by the thorough profile: 1 ulp above, relative 1.7e-16): a few ulps allowed."""
    lazy = _bounds(segment, k, refine)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(refinement, "_needs_work", lambda slope, owner, points, n, *rest: np.ones(n, dtype=bool))
        eager = _bounds(segment, k, refine)
    assert _same_cover(lazy, eager)
    assert np.array_equal(lazy.derivative, eager.derivative)
    assert np.all(lazy.derivative_lower <= eager.derivative_lower * (1.0 + 16 * EPS) + np.finfo(float).tiny)


def _bump_evaluator(owner, lo, hi):
    """``z(theta) = (1 - cos(pi theta)) / pi`` (``z' = sin(pi theta)``: 0 at both ends, 1 in the middle) with
    enclosures widened by the piece's width: only the midpoints show how large ``z'`` is."""
    a, b = lo.double()[:, None] * torch.pi, hi.double()[:, None] * torch.pi
    width = (hi - lo).double()[:, None]
    top = torch.where((a <= torch.pi / 2) & (b >= torch.pi / 2), torch.ones_like(a), torch.maximum(a.sin(), b.sin()))
    value = Interval((1 - a.cos()) / torch.pi - width, (1 - b.cos()) / torch.pi + width)
    return Dual(value, Interval(torch.minimum(a.sin(), b.sin()) - 0.1 * width, top + 0.1 * width))


def test_known_bad_skipping_every_midpoint_changes_the_cover():
    """Known-bad: skipping the midpoints of samples that do need work (here: the ends say ``z' = 0``) changes what
    the refinement does (or leaves no reference value at all: an error); the real rule evaluates them and matches
    the eager cover."""
    options = dict(subintervals=2, refine=3, rtol=0.05, give_up=1e6)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(refinement, "_needs_work", lambda slope, owner, points, n, *rest: np.ones(n, dtype=bool))
        eager = segment_bounds(_bump_evaluator, 3, **options)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(refinement, "_needs_work", lambda slope, owner, points, n, *rest: np.zeros(n, dtype=bool))
        try:
            none = segment_bounds(_bump_evaluator, 3, **options)
        except IntervalDomainError:
            none = None
    assert _same_cover(segment_bounds(_bump_evaluator, 3, **options), eager)
    assert none is None or not _same_cover(none, eager)


def _blowup_evaluator(scale: np.ndarray):
    """``z = theta`` with a tangent enclosure of radius ``scale[owner] width^6``: pieces wider than about
    ``(1e6 / scale)^(1/6)`` are loose (``give_up = 1e6``) and get split 4x."""
    def evaluate(owner, lo, hi):
        width = (hi - lo).double()[:, None]
        radius = torch.as_tensor(scale)[owner][:, None] * width ** 6
        value = Interval(lo.double()[:, None] - width, hi.double()[:, None] + width)
        return Dual(value, Interval(1.0 - radius, 1.0 + radius))
    return evaluate


@pytest.mark.parametrize("scale, start", [([1e12] * 6, 32), ([1e12, 1.0, 1e12, 1e12, 1e12, 1e12], 2)])
def test_the_run_starts_from_the_cover_every_probe_sample_split_to(scale, start):
    """With a probe, the run starts from the uniform cover that every probe sample split to everywhere (32 here
    when all blow up; the given start 2 when one probe sample needs no split): the same cover and bounds as from the
    given start, with fewer evaluations where it is finer."""
    evaluate = _blowup_evaluator(np.asarray(scale))
    options = dict(subintervals=2, refine=2, rtol=0.25, give_up=1e6, max_subintervals=64)
    first = segment_bounds(evaluate, 3, **{**options, "refine": 0}, probe=0)  # what the probe run does
    assert refinement._learned_start(first, 3) == start
    learned = segment_bounds(evaluate, 6, **options, probe=3)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(refinement, "_learned_start", lambda first, n: 0)
        given_start = segment_bounds(evaluate, 6, **options, probe=3)
    assert _same_cover(learned, given_start) and np.array_equal(learned.derivative, given_start.derivative)
    assert (learned.evaluations < given_start.evaluations) == (start > 2)
