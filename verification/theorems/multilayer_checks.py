"""Property checks of the multi-layer certificates: Theorems 5.8, 5.9 and OR1 Corollary 1.3 (THEORY.md 4, 5, 12).

Instances are random ReLU/abs MLPs (THEORY.md 9.1) with ordered pruning plans: repeated layers allowed for
Theorem 5.8 and OR1 1.3, distinct layers for Theorem 5.9.  Every per-step budget is computed in its
intermediate network with ``L_{j,s}`` from :mod:`certs.lipschitz` (Methods D and G).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from hypothesis import strategies as st

from certs.budget import segment_lipschitz
from certs.classification import prediction_margins, true_margins
from certs.multilayer import multilayer_certificate, multilayer_margin_stability, multilayer_stationarity

from .check_outcomes import CheckOutcome, identity, inequality
from .networks import ReluAbsMLP
from .single_layer_checks import CHECKED_METHODS
from .strategies import datasets, mlps, multi_step_plans, penalties

__all__ = [
    "H_GRID",
    "MultiLayerInstance",
    "multilayer_instances",
    "check_theorem_5_8",
    "check_theorem_5_9",
    "check_multilayer_margin",
]

#: Fractions removed in the Theorem 5.9 check (``h = 1 - theta``, ``h in (0, 1]``).
H_GRID = (1e-3, 0.1, 0.25, 0.5, 0.75, 1.0)


@dataclass(frozen=True, eq=False)
class MultiLayerInstance:
    mlp: ReluAbsMLP
    X: np.ndarray
    labels: np.ndarray
    steps: tuple[Any, ...]
    penalties: dict[int, tuple[float, float]]


@st.composite
def multilayer_instances(draw, allow_repeats: bool):
    mlp = draw(mlps())
    X, labels = draw(datasets(mlp.widths[0], mlp.widths[-1]))
    steps = draw(multi_step_plans(mlp, allow_repeats=allow_repeats))
    pens = {i: draw(penalties()) for i in range(mlp.n_layers)}
    return MultiLayerInstance(mlp, X, labels, steps, pens)


def _lipschitz(method: str, mutation: str | None):
    factor = 0.5 if mutation == "lipschitz-halved" else 1.0
    return lambda view, start, direction: segment_lipschitz(view, start, direction, method).scaled(factor)


def check_theorem_5_8(inst: MultiLayerInstance, mutation: str | None = None) -> list[CheckOutcome]:
    """Theorem 5.8: total bound with per-step budgets in the intermediate networks; every step's own
    Theorem 5.4 bound; the step changes telescope exactly to the total change.

    Mutations: ``lipschitz-halved``, ``last-step-budget-only`` (drops the budgets of all but the last step).
    """
    out = []
    for method in CHECKED_METHODS:
        c = multilayer_certificate(inst.mlp, inst.X, inst.labels, inst.steps, _lipschitz(method, mutation),
                                   inst.penalties)
        steps = c.sequence.steps
        bound = c.bound.value
        if mutation == "last-step-budget-only":
            bound -= sum(step.budget.value for step in steps[:-1])
        offset = -sum(step.removed_quadratic + step.removed_linear for step in steps)
        out.append(inequality(c.realized, bound, c.scale, offset))
        out += [inequality(step.objective_change, b, c.scale) for step, b in zip(steps, c.step_bounds)]
        out.append(identity(sum(step.objective_change for step in steps), c.realized, c.scale))
    return out


def check_theorem_5_9(inst: MultiLayerInstance, mutation: str | None = None) -> list[CheckOutcome]:
    """Theorem 5.9, pointwise form on a grid of ``h``: ``sum_j [(2 - h) lambda2_j ||R_j||_F^2 + lambda1_j ||R_j||_1]
    <= sum_j B_j^(h) + eps_h``.  Mutations: ``factor-2-instead-of-2-minus-h``, ``lipschitz-halved``."""
    out = []
    for method in CHECKED_METHODS:
        for h in H_GRID:
            c = multilayer_stationarity(
                inst.mlp, inst.X, inst.labels, inst.steps, h, _lipschitz(method, mutation), inst.penalties
            )
            realized = c.realized
            if mutation == "factor-2-instead-of-2-minus-h":
                realized += h * sum(c.removed_quadratic)
            out.append(inequality(realized, c.bound.value, c.scale, offset=c.epsilon_h))
    return out


def check_multilayer_margin(inst: MultiLayerInstance, mutation: str | None = None) -> list[CheckOutcome]:
    """OR1 Corollary 1.3: CE bound ``(2/|T|) sum_s eta_tot(s)``, telescoped logit bound, no prediction change
    outside ``Delta_pred_0 <= 2 eta_tot``, accuracy-change bound.

    Mutation: ``eta-total-max`` (``max_j eta_{j,s}`` in place of the sum over steps).
    """
    out = []
    for method in CHECKED_METHODS:
        c = multilayer_margin_stability(inst.mlp, inst.X, inst.labels, inst.steps, _lipschitz(method, mutation))
        eta, bound = c.eta_total, c.bound.value
        risk_pred, risk_true, acc_bound = c.at_risk_prediction, c.at_risk_true, c.accuracy_bound
        if mutation == "eta-total-max":
            z0, y = c.sequence.logits_start, c.sequence.labels
            eta = np.stack([step.eta for step in c.sequence.steps]).max(axis=0)
            bound = 2.0 * eta.sum() / eta.size
            risk_pred = prediction_margins(z0) <= 2 * eta
            risk_true = np.abs(true_margins(z0, y)) <= 2 * eta
            acc_bound = np.count_nonzero(risk_true) / eta.size
        out.append(inequality(c.realized, bound, c.scale))
        out += [inequality(change, e) for change, e in zip(c.logit_change, eta)]
        out.append(inequality(np.count_nonzero(c.prediction_changed & ~risk_pred), 0.0))
        out.append(inequality(c.accuracy_change, acc_bound, 1.0))
    return out

