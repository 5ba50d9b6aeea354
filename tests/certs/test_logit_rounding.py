"""The rounding term of Corollary 5.2 (certs/logit_rounding.py, FINDINGS F23).

``rho_s(theta)`` must bound the distance between any two of: the exact logits ``psi_2((S + theta R) v)``, the
exact logits ``psi_2(p^ + theta q^)`` on the computed layer outputs, and the computed float64 logits.  Both
exact sides are evaluated in rational arithmetic (``fractions.Fraction``) on hypothesis-generated networks.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
from hypothesis import given, strategies as st

from certs.budget import PerSampleLipschitz
from certs.intervals.piecewise_linear import tail_segment_bounds
from certs.layer_view import AffineOp, LayerView
from certs.path import path_logits
from certs.logit_rounding import tail_rounding
from certs.single_layer import margin_stability
from tests.verification.theorems import test_theorems_single_layer as single_layer
from verification.theorems.networks import ReluAbsMLP
from verification.theorems.strategies import additive_splits, target_problems, thetas


def _exact_tail(view, outputs: list[list[Fraction]]) -> list[list[Fraction]]:
    rows = outputs
    for op in view.tail.ops:
        if isinstance(op, AffineOp):
            w, b = op.weight.tolist(), op.bias.tolist()
            rows = [[sum((Fraction(wij) * xj for wij, xj in zip(wi, x)), Fraction(bi)) for wi, bi in zip(w, b)]
                    for x in rows]
        elif op.kind == "relu":
            rows = [[max(v, Fraction(0)) for v in x] for x in rows]
        else:
            rows = [[abs(v) for v in x] for x in rows]
    return rows


def _exact_outputs(a: np.ndarray, b: np.ndarray, theta: float, inputs: np.ndarray) -> list[list[Fraction]]:
    """``(a + theta b) x`` per row ``x`` of ``inputs``, exactly."""
    t = Fraction(theta)
    return [
        [sum(((Fraction(p) + t * Fraction(q)) * Fraction(x) for p, q, x in zip(ar, br, row)), Fraction(0))
         for ar, br in zip(a, b)]
        for row in inputs.tolist()
    ]


def _distances(view, s, r, theta) -> np.ndarray:
    """Per sample, the largest of the three pairwise ``l_inf`` distances (as floats rounded up by one ulp)."""
    exact = _exact_tail(view, _exact_outputs(s.tolist(), r.tolist(), theta, view.inputs))
    computed_outputs = np.stack([view.inputs @ s.T, view.inputs @ r.T])
    p_hat, q_hat = computed_outputs[0], computed_outputs[1]
    on_computed = _exact_tail(view, [[Fraction(p) + Fraction(theta) * Fraction(q) for p, q in zip(pr, qr)]
                                     for pr, qr in zip(p_hat.tolist(), q_hat.tolist())])
    computed = path_logits(view, s, r, [theta])[0]
    out = []
    for z_exact, zeta, z_hat in zip(exact, on_computed, computed.tolist()):
        pairs = [(z_exact, zeta), (z_exact, [Fraction(v) for v in z_hat]), (zeta, [Fraction(v) for v in z_hat])]
        worst = max(abs(a - b) for left, right in pairs for a, b in zip(left, right))
        out.append(np.nextafter(float(worst), np.inf) if worst else 0.0)
    return np.array(out)


@st.composite
def rounding_cases(draw):
    problem = draw(target_problems())
    s, r, _ = draw(additive_splits(problem.view.weight))
    return problem.view, s, r, draw(thetas())


@given(rounding_cases())
def test_rho_bounds_every_distance_between_exact_and_computed_logits(case):
    view, s, r, theta = case
    assert np.all(_distances(view, s, r, theta) <= tail_rounding(view, s, r, theta))


def _cancelling_view():
    """``S v = 1e16``, ``R v = 1``, target bias ``-1e16``: ``z^_1 = fl(fl(1e16 + 1) - 1e16) = 0``, exact ``z_1 = 1``."""
    mlp = ReluAbsMLP.from_weights([np.array([[1e16], [0.0]])], [np.array([-1e16, 0.0])], "relu", False)
    return mlp.layer_view(0, np.array([[1.0]]), np.array([0]))


def test_known_bad_one_rounding_per_logit_is_caught():
    """A bound relative to the computed logits (``u |z^|``) misses cancellation after an absorbed addition."""
    view = _cancelling_view()
    s, r = np.array([[1e16], [0.0]]), np.array([[1.0], [0.0]])
    computed = path_logits(view, s, r, [1.0])[0]
    naive = 2.0 ** -53 * np.abs(computed).max(axis=1)
    distance = _distances(view, s, r, 1.0)
    assert distance[0] >= 1.0 and naive[0] == 0.0 and not np.all(distance <= naive)
    assert np.all(distance <= tail_rounding(view, s, r, 1.0))


def test_opaque_tail_makes_corollary_5_2_an_estimate():
    """A sound ``L_s`` is not enough: without a provable rounding error of ``psi_2`` the bound is an estimate."""
    inst = single_layer.issue_21_instance()
    view = inst.view
    opaque = LayerView(view.name, view.weight, view.inputs, view.labels, tail=lambda u: u - 0.5)
    lip = PerSampleLipschitz(np.ones(1), "sound", "given")
    assert margin_stability(view, inst.split, lip, theta=0.5).bound.label == "sound"
    r = margin_stability(opaque, inst.split, lip, theta=0.5)
    assert r.bound.label == "estimate" and not r.hypotheses[-1].holds and np.all(r.rounding == 0.0)


# -------------------------------------------------------------- the bridge's rounding term (interval enclosures)


@given(rounding_cases())
def test_enclosure_rounding_bounds_the_computed_logits_at_both_ends(case):
    """``SegmentBounds.rounding`` (the ViT bridge's ``rho_s``) on op lists: ``||z^(theta) - z(theta)||_inf`` with the
    exact ``z(theta) = psi_2(p^ + theta q^)`` on the engine's points, at ``theta`` = 0 and 1."""
    view, s, r, _ = case
    start, direction = view.inputs @ s.T, view.inputs @ r.T
    segments = tail_segment_bounds(view.tail, start, direction, subintervals=1)
    for theta in (0, 1):
        exact = _exact_tail(view, [[Fraction(p) + theta * Fraction(q) for p, q in zip(pr, qr)]
                                   for pr, qr in zip(start.tolist(), direction.tolist())])
        computed = path_logits(view, s, r, [float(theta)])[0]
        rho = segments.rounding(computed, theta)
        for z_exact, z_hat, bound in zip(exact, computed.tolist(), rho):
            assert max(abs(a - Fraction(b)) for a, b in zip(z_exact, z_hat)) <= Fraction(bound)


def test_enclosure_rounding_is_not_zero_where_the_computed_logits_are_wrong():
    """Known-bad ``rho = 0``: on the cancelling instance the computed dense logit is 0, the exact one 1."""
    view = _cancelling_view()
    start, direction = np.array([[1e16, 0.0]]), np.array([[1.0, 0.0]])
    segments = tail_segment_bounds(view.tail, start, direction, subintervals=1)
    computed = path_logits(view, np.array([[1e16], [0.0]]), np.array([[1.0], [0.0]]), [1.0])[0]
    assert computed[0, 0] == 0.0 and segments.rounding(computed, 1)[0] >= 1.0
