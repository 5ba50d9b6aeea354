"""One-sided stationarity: Theorem 5.7 and OR1 Corollary 1.2 (THEORY.md 4, 5).

Mask split ``S ⊙ R = 0``, penalty ``sum gamma2 A^2 + sum gamma1 |A|`` (``lambda2 ||A||_F^2 + lambda1 ||A||_1``
for scalars).

* Pointwise form [derived, THEORY.md 4]: for one ``theta < 1`` put
  ``eps_theta = max(0, (J(A) - J(A_theta)) / (1 - theta))``; then, for any network,
  ``(1 + theta) sum gamma2 R^2 + sum gamma1 |R| <= B_T(R) + eps_theta`` (Theorem 5.4 rearranged).
* Global form: if ``J(A_theta) >= J(A) - eps (1 - theta)`` for all ``theta in [0, 1]`` then
  ``(1 + theta) sum gamma2 R^2 + sum gamma1 |R| <= B_T(R) + eps`` for every ``theta < 1``, and in the limit
  ``theta -> 1`` (the liminf form) ``2 sum gamma2 R^2 + sum gamma1 |R| <= B_T(R) + eps``.  The hypothesis is a
  statement about a continuum of ``theta``; it is checked here only on a grid and reported as such.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rmt.bounds import Bound

from .budget import upper_sum
from .classification import mean_cross_entropy
from .errors import CertificateInputError
from .layer_view import LayerView
from .path import path_logits
from .results import CertificateResult, HypothesisCheck
from .single_layer import disjoint_support_check, evaluate_path, objective_change
from .splits import AdditiveSplit, ElasticNetPenalty

__all__ = ["StationarityCertificate", "stationarity_certificate", "weighted_stationarity_certificate"]

#: Number of theta values on which the global hypothesis ``J(A_theta) >= J(A) - eps (1 - theta)`` is checked.
GLOBAL_GRID = 65


@dataclass(frozen=True, kw_only=True, eq=False)
class StationarityCertificate(CertificateResult):
    """Theorem 5.7 / OR1 Corollary 1.2 result.

    ``realized`` is the penalty side ``(1 + theta) sum gamma2 R^2 + sum gamma1 |R|``; ``bound`` is
    ``B_T(R) + eps_theta``.  With ``epsilon`` given: ``limit_penalty = 2 sum gamma2 R^2 + sum gamma1 |R|``,
    ``limit_bound = B_T(R) + epsilon`` and ``hypothesis_on_grid`` says whether
    ``J(A_theta) >= J(A) - epsilon (1 - theta)`` held on a grid of theta values.
    """

    theta: float
    budget: Bound
    epsilon_theta: float
    epsilon: float | None
    limit_penalty: float
    limit_bound: Bound | None
    hypothesis_on_grid: bool | None


def _stationarity(
    view: LayerView, split: AdditiveSplit, lipschitz, penalty: ElasticNetPenalty, theta, epsilon, theorem: str
) -> StationarityCertificate:
    disjoint = disjoint_support_check(split.structured, split.removed)
    if not disjoint.holds:
        raise CertificateInputError(f"{theorem} needs a mask split (S ⊙ R = 0): {disjoint.detail}")
    path = evaluate_path(view, split, lipschitz, theta)
    t = path.theta
    if t >= 1.0:
        raise CertificateInputError(f"{theorem}: theta must be < 1 for the pointwise form, got {t}")
    change, scale = objective_change(path, penalty)
    eps_theta = max(0.0, -change / (1.0 - t))
    quad, lin = penalty.quadratic(split.removed), penalty.linear(split.removed)
    b = path.budget.value
    hypotheses = [disjoint, path.sound_lipschitz]
    limit_bound = None
    on_grid = None
    if epsilon is not None:
        eps = float(epsilon)
        if not np.isfinite(eps) or eps < 0:
            raise CertificateInputError(f"epsilon must be finite and >= 0, got {epsilon!r}")
        grid = np.linspace(0.0, 1.0, GLOBAL_GRID)
        z = path_logits(view, split.structured, split.removed, grid)
        objective = mean_cross_entropy(z, view.labels) + np.array([penalty(split.at(g)) for g in grid])
        on_grid = bool(np.all(objective >= objective[-1] - eps * (1.0 - grid) - 1e-12 * np.abs(objective).max()))
        hypotheses.append(HypothesisCheck(
            "J(A_theta) >= J(A) - epsilon (1 - theta) for all theta", on_grid,
            f"checked on {GLOBAL_GRID} theta values only"
        ))
        limit_bound = Bound(upper_sum([b, eps], 2), path.budget.label, f"{theorem.lower().replace(' ', '-')}-limit",
                            {"epsilon": eps})
    realized = (1.0 + t) * quad + lin
    bound_value = upper_sum([b, eps_theta], 2)
    return StationarityCertificate(
        theorem=theorem,
        statement="(1+theta) sum gamma2 R^2 + sum gamma1 |R| <= B_T(R) + eps_theta",
        bound=Bound(bound_value, path.budget.label, theorem.lower().replace(" ", "-"), {"theta": t}),
        realized=realized,
        scale=max(scale / (1.0 - t), b, quad, lin),
        condition="the mask's penalty is controlled by its budget: penalty <= B_T(R) + eps_theta",
        condition_holds=realized <= bound_value,
        hypotheses=tuple(hypotheses),
        theta=t,
        budget=path.budget,
        epsilon_theta=eps_theta,
        epsilon=None if epsilon is None else float(epsilon),
        limit_penalty=2.0 * quad + lin,
        limit_bound=limit_bound,
        hypothesis_on_grid=on_grid,
    )


def stationarity_certificate(
    view: LayerView, split: AdditiveSplit, lipschitz, lambda1: float, lambda2: float, theta: float, epsilon=None
) -> StationarityCertificate:
    """Theorem 5.7: ``lambda2 (1 + theta) ||R||_F^2 + lambda1 ||R||_1 <= B_T(R) + eps_theta`` (pointwise form);
    with ``epsilon`` also the global/limit form ``2 lambda2 ||R||_F^2 + lambda1 ||R||_1 <= B_T(R) + epsilon``."""
    return _stationarity(view, split, lipschitz, ElasticNetPenalty.create(lambda1, lambda2), theta, epsilon,
                         "Theorem 5.7")


def weighted_stationarity_certificate(
    view: LayerView, split: AdditiveSplit, lipschitz, gamma1, gamma2, theta: float, epsilon=None
) -> StationarityCertificate:
    """OR1 Corollary 1.2: ``(1 + theta) sum gamma2 R^2 + sum gamma1 |R| <= B_T(R) + eps_theta``; with ``epsilon``
    also ``2 sum gamma2 R^2 + sum gamma1 |R| <= B_T(R) + epsilon``."""
    penalty = ElasticNetPenalty.create(gamma1, gamma2, view.weight.shape)
    return _stationarity(view, split, lipschitz, penalty, theta, epsilon, "OR1 Corollary 1.2")
