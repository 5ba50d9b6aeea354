"""Multi-layer certificates: Theorems 5.8, 5.9 and OR1 Corollary 1.3 (THEORY.md 4, 5).

Ordered steps ``j = 1..M``; step ``j`` applies a keep-mask to layer ``index_j`` **as it is at that step**
(after steps ``1..j-1``): ``A_j = S_j + R_j``, ``S_j = M_j ⊙ A_j``.  Every budget ``B_j(R_j)`` is computed in
that intermediate network (its own ``psi_1``, ``psi_2``, ``L_{j,s}``; THEORY.md 3.6).

``network`` is anything with ``layer_view(index, X, labels) -> LayerView``, ``logits_np(X)``,
``weights()`` and ``with_weight(index, W) -> network`` (a new network; e.g.
``verification.theorems.networks.ReluAbsMLP``).  ``J(alpha) = L_CE + sum_l penalty_l(W_l)`` over the layers given in
``penalties`` (``{index: (lambda1, lambda2)}``).
``lipschitz`` is a method name ``'G' | 'P' | 'S' | 'D'`` or a callable
``(view, start_weight, direction_weight) -> PerSampleLipschitz`` valid on
``{(start + t direction) v_s : t in [0, 1]}``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Protocol, Sequence

import numpy as np

from rmt.bounds import SOUND, Bound

from .budget import PerSampleLipschitz, budget_from_products, data_path_budget, segment_lipschitz, upper_sum
from .classification import accuracy, mean_cross_entropy, prediction_margins, true_margins
from .errors import CertificateInputError
from .layer_view import LayerView
from .path import removed_products
from .results import CertificateResult, HypothesisCheck
from .single_layer import same_unique_argmax
from .splits import ElasticNetPenalty, mask_split

__all__ = [
    "PrunableNetwork",
    "StepRecord",
    "PruningSequence",
    "prune_sequence",
    "theorem_5_8_bound",
    "THEOREM_5_8",
    "theorem_5_8_result",
    "MultiLayerBound",
    "MultiLayerCertificate",
    "multilayer_certificate",
    "MultiLayerStationarityCertificate",
    "multilayer_stationarity",
    "MultiLayerMarginCertificate",
    "multilayer_margin_stability",
]


class PrunableNetwork(Protocol):
    """What the multi-layer certificates need from a network (``ReluAbsMLP`` provides it)."""

    def layer_view(self, index: int, X, labels) -> LayerView: ...

    def logits_np(self, X) -> np.ndarray: ...

    def weights(self) -> list[np.ndarray]: ...

    def with_weight(self, index: int, weight: np.ndarray) -> "PrunableNetwork": ...


LipschitzSpec = str | Callable[[LayerView, np.ndarray, np.ndarray], PerSampleLipschitz]


def _lipschitz_fn(lipschitz: LipschitzSpec) -> Callable[[LayerView, np.ndarray, np.ndarray], PerSampleLipschitz]:
    if isinstance(lipschitz, str):
        return lambda view, start, direction: segment_lipschitz(view, start, direction, lipschitz)
    if not callable(lipschitz):
        raise CertificateInputError("lipschitz must be a method name or a callable (view, start, direction)")
    return lipschitz


def _penalties(penalties: Mapping[int, Any] | None) -> dict[int, ElasticNetPenalty]:
    """``{layer index: (lambda1, lambda2)}`` (scalars or weight matrices) as penalties; missing layers: 0."""
    out = {}
    for index, pair in (penalties or {}).items():
        if not isinstance(pair, ElasticNetPenalty):
            if len(pair) != 2:
                raise CertificateInputError(f"penalties[{index}] must be (lambda1, lambda2), got {pair!r}")
            pair = ElasticNetPenalty.create(*pair)
        out[int(index)] = pair
    return out


def _objective(network, X, labels, penalties: dict[int, ElasticNetPenalty]) -> tuple[float, np.ndarray, float]:
    """``J(alpha) = L_CE + sum_l penalty_l(W_l)`` exactly, the logits, and the largest absolute term."""
    z = np.asarray(network.logits_np(X), dtype=np.float64)
    ce = float(mean_cross_entropy(z, labels))
    weights = network.weights()
    pens = [p(weights[i]) for i, p in penalties.items()]
    return ce + sum(pens), z, max([abs(ce), *pens])


def _steps(steps) -> list[tuple[int, np.ndarray]]:
    out = []
    for j, step in enumerate(steps):
        if not hasattr(step, "index") or not hasattr(step, "keep"):
            raise CertificateInputError(f"steps[{j}] must have .index and .keep, got {step!r}")
        out.append((int(step.index), np.asarray(step.keep)))
    if not out:
        raise CertificateInputError("steps must contain at least one pruning step")
    return out


@dataclass(frozen=True, eq=False)
class StepRecord:
    """One step of a pruning sequence, evaluated in its intermediate network.

    ``budget = B_j(R_j)`` (with ``L_{j,s}`` on that step's path); ``removed_quadratic``/``removed_linear`` are
    the layer's penalty terms of ``R_j``; ``eta[s] = L_{j,s} ||R_j v_{j,s}||_inf`` (OR1 1.3);
    ``objective_change = J(after) - J(before)`` and ``logit_change[s] = ||z^{(j)}(s) - z^{(j-1)}(s)||_inf``, exact.
    """

    index: int
    budget: Bound
    removed_quadratic: float
    removed_linear: float
    eta: np.ndarray
    objective_change: float
    logit_change: np.ndarray
    removed_entries: int = 0


@dataclass(frozen=True, eq=False)
class PruningSequence:
    """The steps plus ``J`` and logits of the first and last network (``scale`` = largest term of either ``J``)."""

    steps: tuple[StepRecord, ...]
    objective_start: float
    objective_end: float
    logits_start: np.ndarray
    logits_end: np.ndarray
    labels: np.ndarray
    scale: float

    @property
    def sound(self) -> bool:
        return all(step.budget.label == SOUND for step in self.steps)


def prune_sequence(
    network: PrunableNetwork, X, labels, steps, lipschitz: LipschitzSpec = "D",
    penalties: Mapping[int, Any] | None = None,
) -> PruningSequence:
    """Apply the steps in order, computing every per-step budget in its intermediate network (Theorem 5.8)."""
    lip = _lipschitz_fn(lipschitz)
    pens = _penalties(penalties)
    plan = _steps(steps)
    j_start, z_start, scale = _objective(network, X, labels, pens)
    records, current, z_prev, j_prev = [], network, z_start, j_start
    for index, keep in plan:
        view = current.layer_view(index, X, labels)
        split = mask_split(view.weight, keep, name=f"steps[{index}].keep")
        lipschitz_values = lip(view, split.structured, split.removed)
        products = removed_products(split.removed, view.inputs)
        budget = budget_from_products(products, lipschitz_values, split.removed.shape[1])
        penalty = pens.get(index, ElasticNetPenalty(0.0, 0.0))
        current = current.with_weight(index, split.structured)
        j_next, z_next, step_scale = _objective(current, X, labels, pens)
        records.append(StepRecord(
            index=index,
            budget=budget,
            removed_quadratic=penalty.quadratic(split.removed),
            removed_linear=penalty.linear(split.removed),
            eta=lipschitz_values.values * products,
            objective_change=j_next - j_prev,
            logit_change=np.abs(z_next - z_prev).max(axis=1),
            removed_entries=int(np.count_nonzero(split.removed)),
        ))
        scale = max(scale, step_scale)
        z_prev, j_prev = z_next, j_next
    return PruningSequence(tuple(records), j_start, j_prev, z_start, z_prev, np.asarray(labels), scale)


def _label(sound: bool) -> str:
    return "sound" if sound else "estimate"


@dataclass(frozen=True, kw_only=True, eq=False)
class MultiLayerBound(CertificateResult):
    """Theorem 5.8 assembled from the steps of a pruning sequence (:func:`theorem_5_8_result`):
    ``realized = J(alpha^(M)) - J(alpha^(0))``; ``budget_sum = sum_j B_j``, ``penalty_sum = sum_j P_j`` (float sums
    in step order), ``step_bounds[j] = B_j - P_j`` rounded up."""

    budget_sum: float
    penalty_sum: float
    step_bounds: tuple[float, ...]


@dataclass(frozen=True, kw_only=True, eq=False)
class MultiLayerCertificate(MultiLayerBound):
    """Theorem 5.8 result of :func:`multilayer_certificate`: the assembled bound and the evaluated ``sequence``."""

    sequence: PruningSequence


def theorem_5_8_bound(budgets, penalties, removed_entries) -> float:
    """``sum_j [B_j(R_j) - P_j]`` rounded up, ``P_j = lambda2_j ||R_j||_F^2 + lambda1_j ||R_j||_1`` (Theorem 5.8).

    The one rounding rule of Theorem 5.8 (:func:`theorem_5_8_result` applies it): each ``P_j`` is a float sum over
    the step's removed entries, so the margin of :func:`certs.budget.upper_sum` counts
    ``n_ops = sum_j removed_entries_j + 4 M`` operations for ``M`` steps.
    """
    terms = [*map(float, budgets), *(-float(p) for p in penalties)]
    return upper_sum(terms, n_ops=int(sum(removed_entries)) + 4 * len(budgets))


#: Theorem 5.8's statement and certification predicate (:func:`theorem_5_8_result`).
THEOREM_5_8 = "J(alpha^M) - J(alpha^0) <= sum_j [B_j(R_j) - lambda2_j ||R_j||_F^2 - lambda1_j ||R_j||_1]"
_DECREASE = "sum_j B_j(R_j) < sum_j (lambda2_j ||R_j||_F^2 + lambda1_j ||R_j||_1) (certified decrease)"


def theorem_5_8_result(
    budgets: Sequence[Bound], penalties: Sequence[float], removed_entries: Sequence[int], *, realized: float,
    scale: float, options: Mapping[str, Any], result: type[MultiLayerBound] = MultiLayerBound, **extra,
) -> MultiLayerBound:
    """Theorem 5.8 assembled from the per-step budgets ``B_j`` (each computed in its intermediate network), the
    removed penalties ``P_j``, the removed-entry counts (:func:`theorem_5_8_bound`'s rounding) and the realised
    ``J(alpha^(M)) - J(alpha^(0))`` with its ``scale`` (THEORY.md 0.3).  The bound is ``sound`` only if every
    ``B_j`` is; ``options`` go into it.  Shared by :func:`multilayer_certificate` (``result=MultiLayerCertificate``,
    ``extra``: its ``sequence``) and the timm bridge's multi-layer audit."""
    if not len(budgets) == len(penalties) == len(removed_entries) > 0:
        raise CertificateInputError(
            f"Theorem 5.8: one budget, penalty and removed-entry count per step, at least one step; got "
            f"{len(budgets)}, {len(penalties)} and {len(removed_entries)}")
    values = [float(b.value) for b in budgets]
    sound = all(b.label == SOUND for b in budgets)
    value = theorem_5_8_bound(values, penalties, removed_entries)
    return result(
        theorem="Theorem 5.8",
        statement=THEOREM_5_8,
        bound=Bound(value, _label(sound), "theorem-5.8", dict(options)),
        realized=realized,
        scale=scale,
        condition=_DECREASE,
        condition_holds=value < 0,
        hypotheses=(
            HypothesisCheck("S_j ⊙ R_j = 0 at every step", True, "mask splits"),
            HypothesisCheck("L_{j,s} valid in each intermediate network", sound, "per-step budgets"),
        ),
        budget_sum=float(sum(values)),
        penalty_sum=float(sum(penalties)),
        step_bounds=tuple(theorem_5_8_bound([b], [p], [e]) for b, p, e in zip(values, penalties, removed_entries)),
        **extra,
    )


def multilayer_certificate(
    network: PrunableNetwork, X, labels, steps, lipschitz: LipschitzSpec = "D",
    penalties: Mapping[int, Any] | None = None,
) -> MultiLayerCertificate:
    """Theorem 5.8: ``J(alpha^(M)) <= J(alpha^(0)) - sum_j lambda2_j ||R_j||_F^2 - sum_j lambda1_j ||R_j||_1
    + sum_j B_j(R_j)``, every ``B_j`` computed in the intermediate network of step ``j`` (masks may repeat a layer):
    :func:`prune_sequence`, then :func:`theorem_5_8_result`."""
    seq = prune_sequence(network, X, labels, steps, lipschitz, penalties)
    terms = [t for s in seq.steps for t in (s.budget.value, -s.removed_quadratic, -s.removed_linear)]
    return theorem_5_8_result(
        [s.budget for s in seq.steps], [s.removed_quadratic + s.removed_linear for s in seq.steps],
        [s.removed_entries for s in seq.steps], realized=seq.objective_end - seq.objective_start,
        scale=max([seq.scale, *(abs(t) for t in terms)]), options={"steps": len(seq.steps)},
        result=MultiLayerCertificate, sequence=seq,
    )


@dataclass(frozen=True, kw_only=True, eq=False)
class MultiLayerStationarityCertificate(CertificateResult):
    """Theorem 5.9 pointwise result: ``realized = sum_j [(2 - h) quad_j + lin_j]``,
    ``bound = sum_j B_j^(h) + eps_h``."""

    h: float
    budgets: tuple[Bound, ...]
    removed_quadratic: tuple[float, ...]
    removed_linear: tuple[float, ...]
    epsilon_h: float


def multilayer_stationarity(
    network: PrunableNetwork, X, labels, steps, h: float, lipschitz: LipschitzSpec = "D",
    penalties: Mapping[int, Any] | None = None,
) -> MultiLayerStationarityCertificate:
    """Theorem 5.9, pointwise form [derived, THEORY.md 4]: for ``h in (0, 1]`` and **distinct** layers,
    ``alpha_h`` replaces each ``A_j = S_j + R_j`` by ``S_j + (1 - h) R_j`` in order; ``B_j^(h)`` is computed in the
    ``h``-fractional intermediate network with ``L_{j,s}`` valid on ``theta in [1 - h, 1]``;
    ``eps_h = max(0, (J(alpha^(0)) - J(alpha_h)) / h)``.  Then
    ``sum_j lambda2_j (2 - h) ||R_j||_F^2 + sum_j lambda1_j ||R_j||_1 <= sum_j B_j^(h) + eps_h``."""
    h = float(h)
    if not (0.0 < h <= 1.0):
        raise CertificateInputError(f"h must lie in (0, 1], got {h!r}")
    plan = _steps(steps)
    indices = [index for index, _ in plan]
    if len(set(indices)) != len(indices):
        raise CertificateInputError(f"Theorem 5.9 needs distinct layers in steps, got {indices}")
    lip = _lipschitz_fn(lipschitz)
    pens = _penalties(penalties)
    j_start, _, scale = _objective(network, X, labels, pens)
    current, budgets, quads, lins, sound = network, [], [], [], True
    for index, keep in plan:
        view = current.layer_view(index, X, labels)
        split = mask_split(view.weight, keep, name=f"steps[{index}].keep")
        start = split.structured + (1.0 - h) * split.removed
        lipschitz_values = lip(view, start, h * split.removed)
        budgets.append(data_path_budget(split.removed, view.inputs, lipschitz_values))
        sound = sound and lipschitz_values.label == SOUND
        penalty = pens.get(index, ElasticNetPenalty(0.0, 0.0))
        quads.append(penalty.quadratic(split.removed))
        lins.append(penalty.linear(split.removed))
        current = current.with_weight(index, start)
    j_h, _, scale_h = _objective(current, X, labels, pens)
    eps_h = max(0.0, (j_start - j_h) / h)
    value = upper_sum([b.value for b in budgets] + [eps_h], len(budgets) + 2)
    lhs_terms = [(2.0 - h) * q for q in quads] + lins
    realized = float(sum(lhs_terms))
    return MultiLayerStationarityCertificate(
        theorem="Theorem 5.9",
        statement="sum_j [(2-h) lambda2_j ||R_j||_F^2 + lambda1_j ||R_j||_1] <= sum_j B_j^(h) + eps_h",
        bound=Bound(value, _label(sound), "theorem-5.9", {"h": h}),
        realized=realized,
        scale=max([max(scale, scale_h) / h, *(b.value for b in budgets), *lhs_terms]),
        condition="the penalties of the sequence are controlled by its budgets",
        condition_holds=realized <= value,
        hypotheses=(
            HypothesisCheck("distinct layers", True, f"layers {indices}"),
            HypothesisCheck("L_{j,s} valid on theta in [1 - h, 1] in each fractional network", sound, ""),
        ),
        h=h,
        budgets=tuple(budgets),
        removed_quadratic=tuple(quads),
        removed_linear=tuple(lins),
        epsilon_h=eps_h,
    )


@dataclass(frozen=True, kw_only=True, eq=False)
class MultiLayerMarginCertificate(CertificateResult):
    """OR1 Corollary 1.3 result.  ``bound``/``realized``: the CE bound ``(2/|T|) sum_s eta_tot(s)`` and
    ``|L_CE(alpha^M) - L_CE(alpha^0)|``.  ``eta_total[s] = sum_j eta_{j,s}`` bounds ``logit_change[s] =
    ||z^(M)(s) - z^(0)(s)||_inf``; ``accuracy_bound = #{s : |Delta_true_0(s)| <= 2 eta_tot(s)} / |T|``."""

    sequence: PruningSequence
    eta_total: np.ndarray
    logit_change: np.ndarray
    at_risk_prediction: np.ndarray
    at_risk_true: np.ndarray
    prediction_changed: np.ndarray
    accuracy_bound: float
    accuracy_change: float


def multilayer_margin_stability(
    network: PrunableNetwork, X, labels, steps, lipschitz: LipschitzSpec = "D"
) -> MultiLayerMarginCertificate:
    """OR1 Corollary 1.3 with ``eta_{j,s} = L_{j,s} ||R_j v_{j,s}||_inf`` and ``eta_tot(s) = sum_j eta_{j,s}``:
    (a) ``|L_CE(alpha^M) - L_CE(alpha^0)| <= (2/|T|) sum_s eta_tot(s)``; (b) a prediction can change only if
    ``Delta_pred_0(s) <= 2 eta_tot(s)``; (c) ``|acc_M - acc_0| <= #{s : |Delta_true_0(s)| <= 2 eta_tot(s)} / |T|``."""
    seq = prune_sequence(network, X, labels, steps, lipschitz)
    etas = np.stack([step.eta for step in seq.steps])
    eta_tot = etas.sum(axis=0)
    scale_eta = max(1e-10, (len(seq.steps) + 8) * np.finfo(np.float64).eps)
    eta_tot = np.where(eta_tot > 0, np.nextafter(eta_tot * (1 + scale_eta), np.inf), 0.0)
    z0, zm, y = seq.logits_start, seq.logits_end, seq.labels
    n = z0.shape[0]
    ce0, cem = float(mean_cross_entropy(z0, y)), float(mean_cross_entropy(zm, y))
    risk_true = np.abs(true_margins(z0, y)) <= 2 * eta_tot
    return MultiLayerMarginCertificate(
        theorem="OR1 Corollary 1.3",
        statement="|L_CE(alpha^M) - L_CE(alpha^0)| <= (2/|T|) sum_s eta_tot(s)",
        bound=Bound(upper_sum(2.0 * eta_tot / n, n + 2), _label(seq.sound), "or1-corollary-1.3", {}),
        realized=abs(cem - ce0),
        scale=max(abs(ce0), abs(cem)),
        condition="no sample at risk: Delta_pred_0(s) > 2 eta_tot(s) for all s",
        condition_holds=not bool(np.any(prediction_margins(z0) <= 2 * eta_tot)),
        hypotheses=(HypothesisCheck("L_{j,s} valid in each intermediate network", seq.sound, ""),),
        sequence=seq,
        eta_total=eta_tot,
        logit_change=np.abs(zm - z0).max(axis=1),
        at_risk_prediction=prediction_margins(z0) <= 2 * eta_tot,
        at_risk_true=risk_true,
        prediction_changed=~same_unique_argmax(z0, zm),
        accuracy_bound=float(np.count_nonzero(risk_true)) / n,
        accuracy_change=abs(float(accuracy(zm, y)) - float(accuracy(z0, y))),
    )
