"""Prune–restore certificates: Theorem 5.5 and Corollary 5.6 (THEORY.md 4).

``A = S + Q + P`` with pairwise disjoint supports: ``S`` kept, ``Q`` restored from an over-pruned
reservoir, ``P`` finally removed.  Theorem 5.5 is Theorem 5.4 with ``S + Q`` as the structured part,
on its own path ``S + Q + theta P`` (so ``B_T(P)`` needs ``L_s`` valid there, THEORY.md 3.6).
Corollary 5.6 compares two **upper bounds**, not objective values.
"""

from __future__ import annotations

from dataclasses import dataclass


from rmt.bounds import Bound

from .budget import data_path_budget, resolve_lipschitz
from .errors import CertificateInputError
from .layer_view import LayerView
from .results import HypothesisCheck, theory_tolerance
from .single_layer import ElasticNetCertificate, disjoint_support_check, mask_certificate
from .splits import ElasticNetPenalty, PruneRestoreSplit

__all__ = ["prune_restore_certificate", "RestoreComparison", "restore_comparison"]


def _disjoint_triple(triple: PruneRestoreSplit) -> HypothesisCheck:
    check = disjoint_support_check(triple.kept, triple.restored, triple.removed)
    if not check.holds:
        raise CertificateInputError(f"prune-restore split must have pairwise disjoint S, Q, P: {check.detail}")
    return HypothesisCheck("S ⊙ Q = S ⊙ P = Q ⊙ P = 0", True, check.detail)


def prune_restore_certificate(
    view: LayerView, triple: PruneRestoreSplit, lipschitz, lambda1: float, lambda2: float, theta=0.0
) -> ElasticNetCertificate:
    """Theorem 5.5, path ``A_theta = S + Q + theta P`` with ``L_s`` valid on ``{(S + Q + theta P) v_s}``:

        J(A_theta) - J(A) <= (1 - theta) B_T(P) - lambda2 (1 - theta^2) ||P||_F^2 - lambda1 (1 - theta) ||P||_1;

    final layer ``J(S + Q) <= J(A) - lambda2 ||P||_F^2 - lambda1 ||P||_1 + B_T(P)``, certified decrease whenever
    ``B_T(P) < lambda2 ||P||_F^2 + lambda1 ||P||_1``.
    """
    hypothesis = _disjoint_triple(triple)
    return mask_certificate(
        view, triple.final(), lipschitz, ElasticNetPenalty.create(lambda1, lambda2), theta, "Theorem 5.5",
        "J(S+Q+theta P) - J(A) <= (1-theta) B_T(P) - lambda2 (1-theta^2) ||P||_F^2 - lambda1 (1-theta) ||P||_1",
        (hypothesis,),
    )


@dataclass(frozen=True, eq=False)
class RestoreComparison:
    """Corollary 5.6: ``U_res < U_all  <=>  B_T(R) - B_T(P) > lambda2 ||Q||_F^2 + lambda1 ||Q||_1`` (``R = Q + P``).

    ``u_all = B_T(R) - lambda2 ||R||_F^2 - lambda1 ||R||_1`` (Theorem 5.4 on ``S + R``),
    ``u_restore = B_T(P) - lambda2 ||P||_F^2 - lambda1 ||P||_1`` (Theorem 5.5).  Both budgets use their own
    paths.  ``restore_helps`` is ``u_restore < u_all``; ``criterion`` is the right-hand side of the
    equivalence; ``gap = |u_restore - u_all|`` (the equivalence is exact, so it can only disagree in float
    arithmetic when ``gap`` is below ``tolerance``).
    """

    budget_all: Bound
    budget_restore: Bound
    u_all: float
    u_restore: float
    restored_penalty: float
    restore_helps: bool
    criterion: bool
    tolerance: float
    hypotheses: tuple[HypothesisCheck, ...]

    @property
    def gap(self) -> float:
        return abs(self.u_restore - self.u_all)

    @property
    def equivalence_holds(self) -> bool:
        """The two sides agree, or the bounds are within float tolerance of a tie."""
        return self.restore_helps == self.criterion or self.gap <= self.tolerance


def restore_comparison(
    view: LayerView, triple: PruneRestoreSplit, lipschitz_all, lipschitz_restore, lambda1: float, lambda2: float
) -> RestoreComparison:
    """Corollary 5.6: does restoring ``Q`` improve the bound?  ``lipschitz_all`` must be valid on
    ``{(S + theta (Q + P)) v_s}``, ``lipschitz_restore`` on ``{(S + Q + theta P) v_s}`` (or method names)."""
    hypothesis = _disjoint_triple(triple)
    penalty = ElasticNetPenalty.create(lambda1, lambda2)
    all_split, res_split = triple.all_pruned(), triple.final()
    lip_all = resolve_lipschitz(view, lipschitz_all, all_split.structured, all_split.removed)
    lip_res = resolve_lipschitz(view, lipschitz_restore, res_split.structured, res_split.removed)
    b_all = data_path_budget(all_split.removed, view.inputs, lip_all)
    b_res = data_path_budget(res_split.removed, view.inputs, lip_res)
    pen_r, pen_p, pen_q = penalty(all_split.removed), penalty(triple.removed), penalty(triple.restored)
    u_all = b_all.value - pen_r
    u_res = b_res.value - pen_p
    return RestoreComparison(
        budget_all=b_all,
        budget_restore=b_res,
        u_all=u_all,
        u_restore=u_res,
        restored_penalty=pen_q,
        restore_helps=u_res < u_all,
        criterion=b_all.value - b_res.value > pen_q,
        tolerance=theory_tolerance(u_res, u_all, max(b_all.value, b_res.value, pen_r, pen_q)),
        hypotheses=(hypothesis,),
    )
