"""Property checks of the single-layer certificates (THEORY.md 4, 5, 12): Lemma 5.1 to OR1 1.2.

Each ``check_*`` function takes one generated instance and an optional ``mutation`` (the name of a
known-bad variant of the certificate formula) and returns :class:`CheckOutcome` s: the certificate's
bound against the exact realised value on a fine theta grid including both endpoints.  ``L_s`` come
from :mod:`certs.lipschitz` on the certificate's own path, Method D (the tightest, so checks are
sharp) and Method G.  The same functions run under pytest and ``mpcert verify``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Iterator

import numpy as np
from hypothesis import strategies as st

from certs.budget import PerSampleLipschitz, segment_lipschitz
from certs.prune_restore import prune_restore_certificate, restore_comparison
from certs.single_layer import (
    ce_path_bound,
    elastic_net_certificate,
    evaluate_path,
    frobenius_certificate,
    margin_stability,
    mask_path_bound,
    objective_change,
    weighted_mask_certificate,
)
from certs.splits import AdditiveSplit, ElasticNetPenalty, PruneRestoreSplit, checked_split, mask_split
from certs.stationarity import stationarity_certificate, weighted_stationarity_certificate

from .check_outcomes import CheckOutcome, decreases, identity, implication, inequality
from .strategies import (
    TargetProblem,
    additive_splits,
    gamma_weights,
    masks,
    penalties,
    prune_restore_triples,
    target_problems,
    thetas,
)

__all__ = [
    "THETA_GRID",
    "CHECKED_METHODS",
    "SingleLayerInstance",
    "split_instances",
    "mask_instances",
    "triple_instances",
    "induced_l1",
    "segment_points",
    "check_lemma_5_1",
    "check_corollary_5_2",
    "check_theorem_5_3",
    "check_theorem_5_4",
    "check_theorem_5_5",
    "check_corollary_5_6",
    "check_theorem_5_7",
    "check_weighted_mask",
    "check_weighted_stationarity",
]

#: The fine theta grid every path check evaluates (both endpoints included), plus one drawn theta.
THETA_GRID = tuple(float(t) for t in np.linspace(0.0, 1.0, 11))
#: Lipschitz methods used by the checks: D is exact on the segment (sharpest test), G the global product.
CHECKED_METHODS = ("D", "G")


@dataclass(frozen=True, eq=False)
class SingleLayerInstance:
    """A target layer with a split, a theta grid and penalties (``gamma*`` only for OR1 1.1–1.2)."""

    problem: TargetProblem
    split: AdditiveSplit
    kind: str
    thetas: tuple[float, ...]
    lambda1: float
    lambda2: float
    gamma1: np.ndarray | None = None
    gamma2: np.ndarray | None = None
    triple: PruneRestoreSplit | None = None

    @property
    def view(self):
        return self.problem.view


def _grid(draw) -> tuple[float, ...]:
    return tuple(sorted({*THETA_GRID, draw(thetas())}))


@st.composite
def split_instances(draw, kinds=("mask", "additive", "svd", "gaussian")):
    """Any additive split (THEORY.md 9.2) of a random target layer (THEORY.md 9.1)."""
    problem = draw(target_problems())
    a = problem.view.weight
    s, r, kind = draw(additive_splits(a, kinds))
    lam1, lam2 = draw(penalties())
    return SingleLayerInstance(problem, checked_split(a, s, r), kind, _grid(draw), lam1, lam2)


@st.composite
def mask_instances(draw, weighted: bool = False):
    """A mask split (Bernoulli, magnitude, k:n, empty, full) with penalties and, if ``weighted``, Gamma."""
    problem = draw(target_problems())
    a = problem.view.weight
    keep = draw(masks(a.shape, weight=a))
    lam1, lam2 = draw(penalties())
    g1 = draw(gamma_weights(a.shape)) if weighted else None
    g2 = draw(gamma_weights(a.shape)) if weighted else None
    return SingleLayerInstance(problem, mask_split(a, keep), "mask", _grid(draw), lam1, lam2, g1, g2)


@st.composite
def triple_instances(draw):
    """A prune–restore partition ``A = S + Q + P`` (THEORY.md 9.2)."""
    problem = draw(target_problems())
    a = problem.view.weight
    s, q, p = draw(prune_restore_triples(a))
    triple = PruneRestoreSplit(kept=s, restored=q, removed=p)
    lam1, lam2 = draw(penalties())
    return SingleLayerInstance(problem, triple.final(), "prune-restore", _grid(draw), lam1, lam2, triple=triple)


def segment_points(
    inst: SingleLayerInstance, mutation: str | None, split=None, halving: str = "lipschitz-halved"
) -> Iterator[tuple[str, PerSampleLipschitz, float]]:
    """Every ``(method, L_s, theta)`` a single-layer check evaluates: for each of :data:`CHECKED_METHODS`, the
    segment ``L_s`` of ``split`` (default ``inst.split``; halved under the mutation ``halving``), with every theta."""
    split = inst.split if split is None else split
    for method in CHECKED_METHODS:
        lip = segment_lipschitz(inst.view, split.structured, split.removed, method)
        if mutation == halving:
            lip = lip.scaled(0.5)
        for theta in inst.thetas:
            yield method, lip, theta


def induced_l1(a: np.ndarray) -> float:
    """The induced 1-norm ``max_j sum_i |A_ij|`` (max column sum): the WRONG reading of ``||A||_1`` (THEORY.md 1.1)."""
    return float(np.abs(a).sum(axis=0).max()) if a.size else 0.0


# ------------------------------------------------------------------------------ Lemma 5.1


def check_lemma_5_1(inst: SingleLayerInstance, mutation: str | None = None) -> list[CheckOutcome]:
    """Lemma 5.1: ``|L_CE(A_theta) - L_CE(A)| <= (1 - theta) B_T(R)``; exact zero change when every ``R v_s = 0``.

    Mutations: ``budget-without-factor-2`` (``B_T`` with ``1/|T|``), ``theta-not-complemented`` (``theta B_T``),
    ``lipschitz-halved``.
    """
    out = []
    for _, lip, theta in segment_points(inst, mutation):
        r = ce_path_bound(inst.view, inst.split, lip, theta)
        bound = r.bound.value
        if mutation == "budget-without-factor-2":
            bound = 0.5 * bound
        elif mutation == "theta-not-complemented":
            bound = theta * r.budget.value
        out.append(inequality(r.realized, bound, r.scale))
        if not np.any(r.eta):
            out.append(inequality(r.realized, 0.0))
    return out


# ------------------------------------------------------------------------------ Corollary 5.2


def check_corollary_5_2(inst: SingleLayerInstance, mutation: str | None = None) -> list[CheckOutcome]:
    """Corollary 5.2: no prediction (correctness) change outside ``Delta_pred <= 2 (eta_s + r_s)``
    (``|Delta_true| <= 2 (eta_s + r_s)``); ``|acc(A_theta) - acc(A)| <= #{|Delta_true| <= 2 (eta_s + r_s)} / |T|``.
    Changes are read on the computed float64 logits, with the tie rule of FINDINGS F4 (a changed prediction is
    one without the dense argmax as *unique* argmax) and no tolerance: ``r_s`` is the proven rounding term.

    Mutations: ``eta-halved`` (an extra 1/2), ``rounding-dropped`` (``r_s = 0``, the paper's literal
    statement read on float logits; FINDINGS F23)."""
    out = []
    for _, lip, theta in segment_points(inst, mutation, halving="eta-halved"):
        r = margin_stability(inst.view, inst.split, lip, theta)
        if mutation == "rounding-dropped":
            r = replace(r, rounding=np.zeros_like(r.rounding), at_risk_prediction=r.prediction_margin <= 2.0 * r.eta,
                        at_risk_true=np.abs(r.true_margin) <= 2.0 * r.eta)
        out.append(inequality(r.unexplained_prediction_changes, 0.0))
        out.append(inequality(r.unexplained_correctness_changes, 0.0))
        out.append(inequality(r.realized, r.bound.value, 1.0))
    return out


# ------------------------------------------------------------------------------ Theorem 5.3


def check_theorem_5_3(inst: SingleLayerInstance, mutation: str | None = None) -> list[CheckOutcome]:
    """Theorem 5.3: path bound with the cross term, the eta version with ``eta = |<S, R>_F|``, and
    "full-removal predicate => J_2(S) < J_2(A)".  Mutation: ``cross-term-dropped``."""
    split = inst.split
    cross = float(np.sum(split.structured * split.removed))
    out = []
    for _, lip, theta in segment_points(inst, None):
        r = frobenius_certificate(inst.view, split, lip, inst.lambda2, theta, cross_term_bound=abs(cross))
        bound = r.bound.value
        if mutation == "cross-term-dropped":
            bound += 2.0 * inst.lambda2 * (1.0 - theta) * r.cross_term
        offset = bound - (1.0 - theta) * r.budget.value
        out.append(inequality(r.realized, bound, r.scale, offset))
        out.append(inequality(r.realized, r.eta_bound.value, r.scale,
                              r.eta_bound.value - (1.0 - theta) * r.budget.value))
        if theta == 0.0:
            out.append(implication(r.condition_holds, decreases(r.realized, r.scale)))
    return out


# ------------------------------------------------------------------------------ Theorem 5.4


def _induced_variant(view, split, lip, lam1, lam2, theta) -> tuple[float, float, float]:
    """Theorem 5.4 read with the induced 1-norm in both the objective and the bound (known-bad)."""
    r = elastic_net_certificate(view, split, lip, 0.0, lam2, theta)
    a_theta, a = split.at(theta), split.dense
    realized = r.realized + lam1 * (induced_l1(a_theta) - induced_l1(a))
    bound = r.bound.value - lam1 * (1.0 - theta) * induced_l1(split.removed)
    return realized, bound, r.scale + lam1 * induced_l1(a)


def _overlap_variant(view, split, method, lam1, lam2, theta) -> tuple[float, float, float]:
    """Theorem 5.4's formula applied to overlapping parts ``S' = 1.5 S``, ``R' = R - 0.5 S`` (known-bad)."""
    bad = AdditiveSplit(structured=1.5 * split.structured, removed=split.removed - 0.5 * split.structured,
                        disjoint=True)
    lip = segment_lipschitz(view, bad.structured, bad.removed, method)
    penalty = ElasticNetPenalty.create(lam1, lam2)
    path = evaluate_path(view, bad, lip, theta)
    value, _, _, _ = mask_path_bound(path, penalty)
    realized, scale = objective_change(path, penalty)
    return realized, value, scale


def check_theorem_5_4(inst: SingleLayerInstance, mutation: str | None = None) -> list[CheckOutcome]:
    """Theorem 5.4 on mask splits: path bound on the grid, "B_T(R) < penalty => J(S) < J(A)".

    Mutations: ``induced-l1`` (``||.||_1`` read as the induced norm), ``overlapping-parts`` (the formula applied
    to a split with ``S ⊙ R != 0``), ``lipschitz-halved``.
    """
    view, split = inst.view, inst.split
    out = []
    for method, lip, theta in segment_points(inst, mutation):
        if mutation == "induced-l1":
            realized, bound, scale = _induced_variant(view, split, lip, inst.lambda1, inst.lambda2, theta)
            out.append(inequality(realized, bound, scale))
            continue
        if mutation == "overlapping-parts":
            realized, bound, scale = _overlap_variant(view, split, method, inst.lambda1, inst.lambda2, theta)
            out.append(inequality(realized, bound, scale))
            continue
        r = elastic_net_certificate(view, split, lip, inst.lambda1, inst.lambda2, theta)
        out.append(inequality(r.realized, r.bound.value, r.scale, r.bound.value - (1 - theta) * r.budget.value))
        if theta == 0.0:
            out.append(inequality(r.realized, r.full_pruning_bound.value, r.scale))
            out.append(implication(r.condition_holds, decreases(r.realized, r.scale)))
    return out


# ------------------------------------------------------------------------------ Theorem 5.5 / Corollary 5.6


def check_theorem_5_5(inst: SingleLayerInstance, mutation: str | None = None) -> list[CheckOutcome]:
    """Theorem 5.5 with ``B_T(P)`` on its own path ``S + Q + theta P``.

    Mutations: ``restored-penalty-counted`` (subtracts the penalty of ``Q + P``), ``lipschitz-halved``.
    """
    triple = inst.triple
    penalty = ElasticNetPenalty.create(inst.lambda1, inst.lambda2)
    out = []
    for _, lip, theta in segment_points(inst, mutation, split=triple.final()):
        r = prune_restore_certificate(inst.view, triple, lip, inst.lambda1, inst.lambda2, theta)
        bound = r.bound.value
        if mutation == "restored-penalty-counted":
            bound -= ((1 - theta * theta) * penalty.quadratic(triple.restored)
                      + (1 - theta) * penalty.linear(triple.restored))
        out.append(inequality(r.realized, bound, r.scale, bound - (1 - theta) * r.budget.value))
        if theta == 0.0:
            out.append(implication(r.condition_holds, decreases(r.realized, r.scale)))
    return out


def check_corollary_5_6(inst: SingleLayerInstance, mutation: str | None = None) -> list[CheckOutcome]:
    """Corollary 5.6 (EXACT): ``U_res < U_all  <=>  B_T(R) - B_T(P) > lambda2 ||Q||_F^2 + lambda1 ||Q||_1``, each budget
    on its own path; near-ties (``|U_res - U_all| <= tol``) are skipped.  Mutation: ``restored-penalty-ignored``."""
    view, triple = inst.view, inst.triple
    all_split, res_split = triple.all_pruned(), triple.final()
    out = []
    for method in CHECKED_METHODS:
        lip_all = segment_lipschitz(view, all_split.structured, all_split.removed, method)
        lip_res = segment_lipschitz(view, res_split.structured, res_split.removed, method)
        c = restore_comparison(view, triple, lip_all, lip_res, inst.lambda1, inst.lambda2)
        criterion = c.criterion
        if mutation == "restored-penalty-ignored":
            criterion = c.budget_all.value - c.budget_restore.value > 0.0
        out.append(implication(c.gap > c.tolerance, c.restore_helps == criterion))
    return out


# ------------------------------------------------------------------------------ Theorem 5.7 / OR1 1.1 / OR1 1.2


def _stationarity_outcomes(inst, certify, mutation) -> list[CheckOutcome]:
    out = []
    for _, lip, theta in segment_points(inst, mutation):
        if theta >= 1.0:
            continue
        r = certify(inst.view, inst.split, lip, theta)
        bound = r.bound.value
        if mutation == "epsilon-not-divided":
            bound = r.budget.value + r.epsilon_theta * (1.0 - theta)
        out.append(inequality(r.realized, bound, r.scale, offset=r.epsilon_theta))
    return out


def check_theorem_5_7(inst: SingleLayerInstance, mutation: str | None = None) -> list[CheckOutcome]:
    """Theorem 5.7, pointwise form: ``lambda2 (1 + theta) ||R||_F^2 + lambda1 ||R||_1 <= B_T(R) + eps_theta`` for
    theta < 1.

    Mutations: ``epsilon-not-divided`` (``eps_theta`` without the ``1/(1 - theta)``), ``lipschitz-halved``.
    """
    return _stationarity_outcomes(
        inst, lambda v, s, lip, t: stationarity_certificate(v, s, lip, inst.lambda1, inst.lambda2, t), mutation
    )


def check_weighted_stationarity(inst: SingleLayerInstance, mutation: str | None = None) -> list[CheckOutcome]:
    """OR1 Corollary 1.2, pointwise form with entrywise weights.  Mutation: ``epsilon-not-divided``."""
    return _stationarity_outcomes(
        inst, lambda v, s, lip, t: weighted_stationarity_certificate(v, s, lip, inst.gamma1, inst.gamma2, t), mutation
    )


def check_weighted_mask(inst: SingleLayerInstance, mutation: str | None = None) -> list[CheckOutcome]:
    """OR1 Corollary 1.1: weighted path bound; constant weights reproduce Theorem 5.4 exactly.

    Mutations: ``quadratic-factor-2(1-theta)`` (``2 (1 - theta)`` in place of ``1 - theta^2``), ``lipschitz-halved``.
    """
    view, split = inst.view, inst.split
    out = []
    for method in CHECKED_METHODS:
        lip = segment_lipschitz(view, split.structured, split.removed, method)
        lip = lip.scaled(0.5) if mutation == "lipschitz-halved" else lip
        for theta in inst.thetas:
            r = weighted_mask_certificate(view, split, lip, inst.gamma1, inst.gamma2, theta)
            bound = r.bound.value
            if mutation == "quadratic-factor-2(1-theta)":
                bound += ((1 - theta * theta) - 2 * (1 - theta)) * r.removed_quadratic
            out.append(inequality(r.realized, bound, r.scale, bound - (1 - theta) * r.budget.value))
        ones = np.ones(split.removed.shape)
        const = weighted_mask_certificate(view, split, lip, inst.lambda1 * ones, inst.lambda2 * ones, inst.thetas[1])
        plain = elastic_net_certificate(view, split, lip, inst.lambda1, inst.lambda2, inst.thetas[1])
        out.append(identity(const.bound.value, plain.bound.value, plain.scale))
        out.append(identity(const.realized, plain.realized, plain.scale))
    return out
