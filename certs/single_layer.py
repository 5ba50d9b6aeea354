"""Single-layer certificates of the paper's Section 5 and OR1 Corollary 1.1 (THEORY.md 4, 5).

Setting (THEORY.md 4): a target layer ``A = S + R`` inside a frozen network, samples ``T``,
``A_theta = S + theta R``, ``v_s = psi_1(s)``, ``L_s`` valid on ``{A_theta v_s : theta in [0, 1]}`` and
``B_T(R) = (2/|T|) sum_s L_s ||R v_s||_inf``.  ``lipschitz`` is either numbers valid on that path or
a method name ``'G' | 'P' | 'S' | 'D'`` evaluated on it (:mod:`certs.budget`).

* :func:`ce_path_bound` — Lemma 5.1: ``|L_CE(A_theta) - L_CE(A)| <= (1 - theta) B_T(R)``.
* :func:`margin_stability` — Corollary 5.2: flips only where ``Delta_pred <= 2 (eta_s(theta) + r_s)``;
  ``|acc(A_theta) - acc(A)| <= #{s : |Delta_true(s)| <= 2 (eta_s(theta) + r_s)} / |T|``, with the float64
  rounding term ``r_s`` of :mod:`certs.logit_rounding` (FINDINGS F23).
* :func:`frobenius_certificate` — Theorem 5.3 (any additive split, cross term kept).
* :func:`elastic_net_certificate` — Theorem 5.4 (mask split, ``S ⊙ R = 0``).
* :func:`weighted_mask_certificate` — OR1 Corollary 1.1 (entrywise weights ``Gamma``).

Every bound is rounded outward (:func:`certs.budget.upper_sum`) and is ``sound`` only if every
``L_s`` is.  Realised values are exact differences along the path (stable log-sum-exp CE).

Each certificate is "evaluate the path" (:func:`evaluate_path` -> :class:`PathEvaluation`) followed by a
public assembler that takes the evaluated path: :func:`ce_path_bound_from_path` (Lemma 5.1),
:func:`margin_stability_from_path` (Corollary 5.2, with the rounding term and its hypothesis),
:func:`elastic_net_from_path` / :func:`mask_certificate_from_path` (Theorem 5.4 and its siblings).  A caller that
evaluates the path its own way — the timm bridge :mod:`verification.bridge.certify`, whose logits come from the
real model and whose rounding term from the interval engine — assembles the same typed results with the same code.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rmt.bounds import ESTIMATE, SOUND, Bound

from .budget import PerSampleLipschitz, budget_from_products, eta_from_products, resolve_lipschitz, upper_sum
from .classification import accuracy, mean_cross_entropy, prediction_margins, true_margins
from .errors import CertificateInputError
from .layer_view import LayerView, PiecewiseLinearTail
from .logit_rounding import tail_rounding
from .path import max_abs_rows, path_logits_from_outputs, validated_thetas
from .results import CertificateResult, HypothesisCheck
from .splits import AdditiveSplit, ElasticNetPenalty, frobenius_inner, frobenius_sq

__all__ = [
    "PathEvaluation",
    "evaluate_path",
    "disjoint_support_check",
    "CEPathCertificate",
    "ce_path_bound",
    "ce_path_bound_from_path",
    "MarginStabilityCertificate",
    "margin_stability",
    "margin_stability_from_path",
    "evaluation_rounding",
    "ROUNDING_CHECK",
    "FrobeniusCertificate",
    "frobenius_certificate",
    "ElasticNetCertificate",
    "elastic_net_certificate",
    "elastic_net_from_path",
    "THEOREM_5_4",
    "weighted_mask_certificate",
    "mask_certificate",
    "mask_certificate_from_path",
    "mask_path_bound",
    "objective_change",
    "same_unique_argmax",
]


def _scalar_theta(theta) -> float:
    t = validated_thetas(theta)
    if t.size != 1:
        raise CertificateInputError(f"theta must be a single number in [0, 1], got {theta!r}")
    return float(t[0])


def _check_split_matches(view: LayerView, split: AdditiveSplit) -> None:
    a = view.weight
    for name, part in (("structured (S)", split.structured), ("removed (R)", split.removed)):
        if np.shape(part) != a.shape:
            raise CertificateInputError(
                f"layer {view.name!r}: {name} has shape {np.shape(part)}, the weight has {a.shape}"
            )
    s, r = split.structured, split.removed
    if np.any(np.abs(s + r - a) > 4 * np.finfo(np.float64).eps * np.maximum(np.abs(a), np.abs(s) + np.abs(r))):
        raise CertificateInputError(f"layer {view.name!r}: split S + R does not reproduce the layer weight A")


def disjoint_support_check(*parts: np.ndarray) -> HypothesisCheck:
    """Verify ``X ⊙ Y = 0`` for every pair of ``parts`` (entrywise, no tolerance)."""
    for i in range(len(parts)):
        for j in range(i + 1, len(parts)):
            overlap = int(np.count_nonzero((parts[i] != 0) & (parts[j] != 0)))
            if overlap:
                return HypothesisCheck("disjoint supports", False, f"parts {i} and {j} overlap in {overlap} entries")
    return HypothesisCheck("disjoint supports", True, "verified entrywise")


@dataclass(frozen=True, eq=False)
class PathEvaluation:
    """The data-path ingredients of one certificate at one ``theta``.

    ``products[s] = ||R v_s||_inf``; ``logits_theta``/``logits_dense`` are ``z_{A_theta}`` and ``z_{A_1}``.
    """

    split: AdditiveSplit
    lipschitz: PerSampleLipschitz
    budget: Bound
    theta: float
    products: np.ndarray
    logits_theta: np.ndarray
    logits_dense: np.ndarray
    ce_theta: float
    ce_dense: float

    @property
    def eta(self) -> np.ndarray:
        """``eta_s(theta) = (1 - theta) L_s ||R v_s||_inf`` (Corollary 5.2), rounded up."""
        return eta_from_products(self.products, self.lipschitz, self.theta, self.split.removed.shape[1])

    @property
    def sound_lipschitz(self) -> HypothesisCheck:
        return HypothesisCheck(
            "L_s valid on the path", self.lipschitz.label == SOUND, f"{self.lipschitz.method} ({self.lipschitz.label})"
        )


def evaluate_path(view: LayerView, split: AdditiveSplit, lipschitz, theta=0.0) -> PathEvaluation:
    """``L_s``, ``B_T(R)`` and the exact logits / CE at ``A_theta`` and ``A_1`` (THEORY.md 1.4)."""
    t = _scalar_theta(theta)
    _check_split_matches(view, split)
    lip = resolve_lipschitz(view, lipschitz, split.structured, split.removed)
    base, step = view.inputs @ split.structured.T, view.inputs @ split.removed.T
    products = max_abs_rows(step)
    budget = budget_from_products(products, lip, split.removed.shape[1])
    z = path_logits_from_outputs(view, base, step, [t, 1.0])
    ce = mean_cross_entropy(z, view.labels)
    return PathEvaluation(
        split=split,
        lipschitz=lip,
        budget=budget,
        theta=t,
        products=products,
        logits_theta=z[0],
        logits_dense=z[1],
        ce_theta=float(ce[0]),
        ce_dense=float(ce[1]),
    )


def objective_change(path: PathEvaluation, penalty: ElasticNetPenalty) -> tuple[float, float]:
    """``J(A_theta) - J(A_1)`` exactly, and the largest absolute term summed into it (THEORY.md 0.3)."""
    dense = path.split.dense
    moved = path.split.at(path.theta)
    pen_moved, pen_dense = penalty(moved), penalty(dense)
    change = (path.ce_theta - path.ce_dense) + (pen_moved - pen_dense)
    return change, max(abs(path.ce_theta), abs(path.ce_dense), pen_moved, pen_dense)


def _bound(value: float, path: PathEvaluation, method: str, **options) -> Bound:
    options = {"lipschitz": path.lipschitz.method, **options}
    return Bound(value=value, label=path.budget.label, method=method, options=options)


# ---------------------------------------------------------------------------- Lemma 5.1


@dataclass(frozen=True, kw_only=True, eq=False)
class CEPathCertificate(CertificateResult):
    """Lemma 5.1 result; also the per-sample logit path bound of THEORY.md 3.7.

    ``eta[s] = (1 - theta) L_s ||R v_s||_inf`` bounds ``logit_change[s] = ||z_{A_theta}(s) - z_{A_1}(s)||_inf``.
    """

    theta: float
    budget: Bound
    ce_dense: float
    ce_theta: float
    eta: np.ndarray
    logit_change: np.ndarray

    @property
    def logit_bound_holds(self) -> bool:
        tol = 1e-9 * np.maximum(1.0, np.maximum(np.abs(self.eta), np.abs(self.logit_change)))
        return bool(np.all(self.logit_change <= self.eta + tol))


def ce_path_bound(view: LayerView, split: AdditiveSplit, lipschitz, theta=0.0) -> CEPathCertificate:
    """Lemma 5.1: ``|L_CE(A_theta) - L_CE(A_1)| <= (1 - theta) B_T(R)`` for any split ``A = S + R``.

    Also returns the per-sample logit bound ``||z_{A_theta}(s) - z_{A_1}(s)||_inf <= (1 - theta) L_s ||R v_s||_inf``
    (THEORY.md 3.7), whose sum over ``s`` with the CE's ``2``-Lipschitz constant gives the lemma.
    :func:`ce_path_bound_from_path` of :func:`evaluate_path`.
    """
    return ce_path_bound_from_path(evaluate_path(view, split, lipschitz, theta))


def ce_path_bound_from_path(path: PathEvaluation) -> CEPathCertificate:
    """Lemma 5.1 assembled from an evaluated path (:func:`ce_path_bound`, or a caller that evaluated the path
    itself, e.g. the timm bridge): bound ``upper_sum((1 - theta) B_T(R))``, realised ``|L_CE(A_theta) - L_CE(A_1)|``
    and the per-sample ``eta_s`` against ``||z_{A_theta}(s) - z_{A_1}(s)||_inf``."""
    value = upper_sum([(1.0 - path.theta) * path.budget.value], n_ops=2)
    return CEPathCertificate(
        theorem="Lemma 5.1",
        statement="|L_CE(A_theta) - L_CE(A)| <= (1 - theta) B_T(R)",
        bound=_bound(value, path, "lemma-5.1", theta=path.theta),
        realized=abs(path.ce_theta - path.ce_dense),
        scale=max(abs(path.ce_theta), abs(path.ce_dense)),
        condition="none (two-sided bound, always informative)",
        condition_holds=True,
        hypotheses=(path.sound_lipschitz,),
        theta=path.theta,
        budget=path.budget,
        ce_dense=path.ce_dense,
        ce_theta=path.ce_theta,
        eta=path.eta,
        logit_change=np.abs(path.logits_theta - path.logits_dense).max(axis=1),
    )


# ---------------------------------------------------------------------------- Corollary 5.2


def same_unique_argmax(z_dense: np.ndarray, z_moved: np.ndarray) -> np.ndarray:
    """``True`` where ``z_moved`` has the same, unique, argmax as ``z_dense``."""
    p = np.argmax(z_dense, axis=1)
    own = np.take_along_axis(z_moved, p[:, None], axis=1)[:, 0]
    others = z_moved.copy()
    np.put_along_axis(others, p[:, None], -np.inf, axis=1)
    return (own > others.max(axis=1)) & (prediction_margins(z_dense) > 0)


@dataclass(frozen=True, kw_only=True, eq=False)
class MarginStabilityCertificate(CertificateResult):
    """Corollary 5.2 result.

    ``rounding[s] = rho_s(theta) + 2 rho_s(1)`` (:mod:`certs.logit_rounding`); ``prediction_margin`` / ``true_margin``:
    ``Delta_pred`` / ``Delta_true`` of the computed dense logits ``z^_1``;
    ``at_risk_prediction[s]``: ``Delta_pred_{A_1}(s) <= 2 (eta_s + rounding_s)``; ``at_risk_true[s]``:
    ``|Delta_true_{A_1}(s)| <= 2 (eta_s + rounding_s)``
    (margins of the computed dense logits).
    ``prediction_changed[s]``: ``A_theta`` does not have the same unique argmax as ``A_1``;
    ``correctness_changed[s]``: the sign test ``Delta_true > 0`` differs between ``A_1`` and ``A_theta``.
    ``bound`` is the accuracy-change bound ``#at_risk_true / |T|``; ``realized`` is ``|acc(A_theta) - acc(A_1)|``.
    """

    theta: float
    eta: np.ndarray
    rounding: np.ndarray
    prediction_margin: np.ndarray
    true_margin: np.ndarray
    at_risk_prediction: np.ndarray
    at_risk_true: np.ndarray
    prediction_changed: np.ndarray
    correctness_changed: np.ndarray

    @property
    def unexplained_prediction_changes(self) -> int:
        """Samples whose prediction changed although their margin exceeded ``2 (eta_s + rounding_s)`` (0 if sound)."""
        return int(np.count_nonzero(self.prediction_changed & ~self.at_risk_prediction))

    @property
    def unexplained_correctness_changes(self) -> int:
        """Samples whose correctness changed although ``|Delta_true| > 2 (eta_s + rounding_s)`` (0 if sound)."""
        return int(np.count_nonzero(self.correctness_changed & ~self.at_risk_true))


#: Name of Corollary 5.2's rounding hypothesis (:func:`evaluation_rounding`, and the bridge's interval term).
ROUNDING_CHECK = "float evaluation error of the logits bounded"


def evaluation_rounding(view: LayerView, split: AdditiveSplit, theta: float) -> tuple[np.ndarray, HypothesisCheck]:
    """``rho_s(theta) + 2 rho_s(1)`` (:func:`certs.logit_rounding.tail_rounding`), rounded up, and whether it is proven
    (``psi_2`` a :class:`PiecewiseLinearTail`); zeros and a failed hypothesis for an opaque ``psi_2``."""
    name = ROUNDING_CHECK
    if not isinstance(view.tail, PiecewiseLinearTail):
        return np.zeros(view.n_samples), HypothesisCheck(name, False, "psi_2 is opaque: rounding not bounded")
    moved = tail_rounding(view, split.structured, split.removed, theta)
    dense = tail_rounding(view, split.structured, split.removed, 1.0)
    proven = HypothesisCheck(name, True, "rho_s(theta) + 2 rho_s(1), certs.logit_rounding")
    return np.nextafter(moved + 2.0 * dense, np.inf), proven


def margin_stability(view: LayerView, split: AdditiveSplit, lipschitz, theta=0.0) -> MarginStabilityCertificate:
    """Corollary 5.2 with ``eta_s(theta) = (1 - theta) L_s ||R psi_1(s)||_inf`` (no factor 2), made sound for
    float64 logits by the rounding term ``r_s = rho_s(theta) + 2 rho_s(1)`` of :mod:`certs.logit_rounding`:

    (a) a prediction can change only if ``Delta_pred_{A_1}(s) <= 2 (eta_s + r_s)``;
    (b) ``|acc(A_theta) - acc(A_1)| <= #{s : |Delta_true_{A_1}(s)| <= 2 (eta_s + r_s)} / |T|`` (strict ``> 0``
    accuracy).

    Margins are those of the computed dense logits ``z^_1``.  Proof of the float form: ``||z^_theta - z^_1||_inf
    <= rho(theta) + eta + rho(1)`` (``rho`` bounds the distance of ``z^`` to ``zeta``, on whose segment ``L_s``
    holds), and ``Delta_pred`` / ``Delta_true`` are 2-Lipschitz in ``l_inf``, so both the *computed* and the
    *exact* (``z_theta`` vs ``z_1``, margin ``>= Delta^ - 2 rho(1)``) predictions of a sample outside the
    at-risk set keep the same unique argmax.  Without the rounding term a dense tie computed as a one-ulp
    margin is "certified" (FINDINGS F23).  The bound is ``sound`` only if ``L_s`` is and ``psi_2`` is a
    :class:`PiecewiseLinearTail` (else ``r_s = 0`` and the label is ``estimate``).
    :func:`margin_stability_from_path` of :func:`evaluate_path` and :func:`evaluation_rounding`.
    """
    path = evaluate_path(view, split, lipschitz, theta)
    rounding, rounding_check = evaluation_rounding(view, split, path.theta)
    return margin_stability_from_path(path, view.labels, rounding, rounding_check)


def margin_stability_from_path(
    path: PathEvaluation, labels: np.ndarray, rounding: np.ndarray, rounding_check: HypothesisCheck
) -> MarginStabilityCertificate:
    """Corollary 5.2 (:func:`margin_stability`) assembled from an evaluated path, the integer ``labels`` of its
    samples and the rounding term ``r_s`` with the hypothesis that proves it: :func:`evaluation_rounding` here, the
    interval engine's ``rho_s(theta) + 2 rho_s(1)`` in the timm bridge.  At-risk sets
    ``Delta_pred(z^_1) <= 2 (eta_s + r_s)`` and ``|Delta_true(z^_1)| <= 2 (eta_s + r_s)``; the bound loses its
    ``sound`` label when ``rounding_check`` does not hold."""
    eta = path.eta
    n = path.products.size
    allowance = np.nextafter(eta + rounding, np.inf)
    margin = prediction_margins(path.logits_dense)
    risk_pred = margin <= 2.0 * allowance
    true_dense = true_margins(path.logits_dense, labels)
    risk_true = np.abs(true_dense) <= 2.0 * allowance
    correct_moved = true_margins(path.logits_theta, labels) > 0
    acc_change = abs(float(accuracy(path.logits_theta, labels)) - float(accuracy(path.logits_dense, labels)))
    bound = _bound(float(np.count_nonzero(risk_true)) / n, path, "corollary-5.2", theta=path.theta)
    if not rounding_check.holds:
        bound = Bound(value=bound.value, label=ESTIMATE, method=bound.method, options=bound.options)
    return MarginStabilityCertificate(
        theorem="Corollary 5.2",
        statement="|acc(A_theta) - acc(A)| <= #{s : |Delta_true(s)| <= 2 (eta_s(theta) + r_s)} / |T|",
        bound=bound,
        realized=acc_change,
        scale=1.0,
        condition="no sample at risk: Delta_pred(s) > 2 (eta_s(theta) + r_s) for all s (every prediction certified)",
        condition_holds=not bool(np.any(risk_pred)),
        hypotheses=(path.sound_lipschitz, rounding_check),
        theta=path.theta,
        eta=eta,
        rounding=rounding,
        prediction_margin=margin,
        true_margin=true_dense,
        at_risk_prediction=risk_pred,
        at_risk_true=risk_true,
        prediction_changed=~same_unique_argmax(path.logits_dense, path.logits_theta),
        correctness_changed=(true_dense > 0) != correct_moved,
    )


# ---------------------------------------------------------------------------- Theorem 5.3


@dataclass(frozen=True, kw_only=True, eq=False)
class FrobeniusCertificate(CertificateResult):
    """Theorem 5.3 result (``realized = J_2(A_theta) - J_2(A)``).

    ``eta_bound`` is the bound with ``|<S, R>_F| <= cross_term_bound`` in place of the cross term (``None``
    when no ``cross_term_bound`` was given); ``condition`` is the full-removal predicate.
    """

    theta: float
    budget: Bound
    removed_frobenius_sq: float
    cross_term: float
    cross_term_bound: float | None
    eta_bound: Bound | None


def frobenius_certificate(
    view: LayerView, split: AdditiveSplit, lipschitz, lambda2: float, theta=0.0, cross_term_bound: float | None = None
) -> FrobeniusCertificate:
    """Theorem 5.3 (any additive split ``A = S + R``; ``J_2 = L_CE + lambda2 ||A||_F^2``):

        J_2(A_theta) - J_2(A) <= (1 - theta) B_T(R) - lambda2 (1 - theta^2) ||R||_F^2 - 2 lambda2 (1 - theta) <S, R>_F;

    with ``|<S, R>_F| <= eta``: ``... + 2 lambda2 (1 - theta) eta`` in place of the cross term; full removal
    is certified (``J_2(S) < J_2(A)``) whenever ``B_T(R) + 2 lambda2 |<S, R>_F| < lambda2 ||R||_F^2``.
    """
    penalty = ElasticNetPenalty.create(0.0, lambda2)
    path = evaluate_path(view, split, lipschitz, theta)
    t, b = path.theta, path.budget.value
    s, r = split.structured, split.removed
    r_sq, cross = frobenius_sq(r), frobenius_inner(s, r)
    lam2 = float(penalty.l2)
    n_ops = r.size + 4
    value = upper_sum([(1 - t) * b, -lam2 * (1 - t * t) * r_sq, -2 * lam2 * (1 - t) * cross], n_ops)
    hypotheses = [path.sound_lipschitz]
    eta_bound = None
    if cross_term_bound is not None:
        eta = float(cross_term_bound)
        if not np.isfinite(eta) or eta < 0:
            raise CertificateInputError(f"cross_term_bound must be finite and >= 0, got {cross_term_bound!r}")
        detail = f"<S, R>_F = {cross:.6g}, eta = {eta:.6g}"
        hypotheses.append(HypothesisCheck("|<S, R>_F| <= eta", abs(cross) <= eta, detail))
        eta_value = upper_sum([(1 - t) * b, -lam2 * (1 - t * t) * r_sq, 2 * lam2 * (1 - t) * eta], n_ops)
        eta_bound = _bound(eta_value, path, "theorem-5.3-eta", theta=t, cross_term_bound=eta)
    realized, scale = objective_change(path, penalty)
    removal = upper_sum([b, 2 * lam2 * abs(cross), -lam2 * r_sq], n_ops)
    return FrobeniusCertificate(
        theorem="Theorem 5.3",
        statement="J_2(A_theta) - J_2(A) <= (1-theta) B_T(R) - lambda2 (1-theta^2) ||R||_F^2 "
                  "- 2 lambda2 (1-theta) <S,R>_F",
        bound=_bound(value, path, "theorem-5.3", theta=t, lambda2=lam2),
        realized=realized,
        scale=max(scale, abs(b), lam2 * r_sq, 2 * lam2 * abs(cross)),
        condition="B_T(R) + 2 lambda2 |<S, R>_F| < lambda2 ||R||_F^2 (full removal certified)",
        condition_holds=removal < 0,
        hypotheses=tuple(hypotheses),
        theta=t,
        budget=path.budget,
        removed_frobenius_sq=r_sq,
        cross_term=cross,
        cross_term_bound=None if cross_term_bound is None else float(cross_term_bound),
        eta_bound=eta_bound,
    )


# ---------------------------------------------------------------------------- Theorem 5.4 / OR1 1.1


@dataclass(frozen=True, kw_only=True, eq=False)
class ElasticNetCertificate(CertificateResult):
    """Theorem 5.4 / 5.5 / OR1 Corollary 1.1 result (``realized = J(A_theta) - J(A)``).

    ``removed_quadratic = sum gamma2 R^2`` (``lambda2 ||R||_F^2``), ``removed_linear = sum gamma1 |R|``
    (``lambda1 ||R||_1``, entrywise); ``full_pruning_bound`` is ``B_T(R) - removed_quadratic - removed_linear``,
    the bound on ``J(S) - J(A)``; the condition is ``full_pruning_bound < 0``.
    """

    theta: float
    budget: Bound
    removed_quadratic: float
    removed_linear: float
    full_pruning_bound: Bound


def mask_path_bound(path: PathEvaluation, penalty: ElasticNetPenalty) -> tuple[float, float, float, float]:
    """``(1 - theta) B_T(R) - (1 - theta^2) sum gamma2 R^2 - (1 - theta) sum gamma1 |R|`` rounded up, the bound
    at ``theta = 0``, and the two removed penalties (Theorem 5.4 / OR1 1.1; needs ``S ⊙ R = 0``)."""
    t, b, r = path.theta, path.budget.value, path.split.removed
    quad, lin = penalty.quadratic(r), penalty.linear(r)
    n_ops = r.size + 4
    value = upper_sum([(1 - t) * b, -(1 - t * t) * quad, -(1 - t) * lin], n_ops)
    full = upper_sum([b, -quad, -lin], n_ops)
    return value, full, quad, lin


def _mask_split_check(split: AdditiveSplit, theorem: str) -> HypothesisCheck:
    """``S ⊙ R = 0`` verified entrywise; raises :class:`CertificateInputError` naming ``theorem`` when it fails."""
    disjoint = disjoint_support_check(split.structured, split.removed)
    if not disjoint.holds:
        raise CertificateInputError(f"{theorem} needs a mask split (S ⊙ R = 0): {disjoint.detail}")
    return disjoint


def mask_certificate(
    view: LayerView, split: AdditiveSplit, lipschitz, penalty: ElasticNetPenalty, theta, theorem: str, statement: str,
    extra_hypotheses: tuple[HypothesisCheck, ...] = (),
) -> ElasticNetCertificate:
    """The mask certificate shared by Theorems 5.4, 5.5 and OR1 Corollary 1.1 (``theorem`` names which):
    :func:`mask_certificate_from_path` of :func:`evaluate_path`, the split checked before the path is evaluated."""
    _check_split_matches(view, split)
    _mask_split_check(split, theorem)
    path = evaluate_path(view, split, lipschitz, theta)
    return mask_certificate_from_path(path, penalty, theorem, statement, extra_hypotheses)


def mask_certificate_from_path(
    path: PathEvaluation, penalty: ElasticNetPenalty, theorem: str, statement: str,
    extra_hypotheses: tuple[HypothesisCheck, ...] = (),
) -> ElasticNetCertificate:
    """The mask certificate (:func:`mask_certificate`) assembled from an evaluated path of a mask split: the bound
    of :func:`mask_path_bound` at ``path.theta``, the full-pruning bound at ``theta = 0`` and the exact
    ``J(A_theta) - J(A_1)`` (:func:`objective_change`).  Raises :class:`CertificateInputError` unless
    ``S ⊙ R = 0``."""
    disjoint = _mask_split_check(path.split, theorem)
    value, full, quad, lin = mask_path_bound(path, penalty)
    realized, scale = objective_change(path, penalty)
    tag = theorem.lower().replace(" ", "-")
    return ElasticNetCertificate(
        theorem=theorem,
        statement=statement,
        bound=_bound(value, path, tag, theta=path.theta),
        realized=realized,
        scale=max(scale, abs(path.budget.value), quad, lin),
        condition="B_T(R) < removed penalty (certified decrease of J)",
        condition_holds=full < 0,
        hypotheses=(disjoint, *extra_hypotheses, path.sound_lipschitz),
        theta=path.theta,
        budget=path.budget,
        removed_quadratic=quad,
        removed_linear=lin,
        full_pruning_bound=_bound(full, path, tag, theta=0.0),
    )


#: Theorem 5.4's statement (:func:`elastic_net_certificate`, :func:`elastic_net_from_path`).
THEOREM_5_4 = "J(A_theta) - J(A) <= (1-theta) B_T(R) - lambda2 (1-theta^2) ||R||_F^2 - lambda1 (1-theta) ||R||_1"


def elastic_net_certificate(
    view: LayerView, split: AdditiveSplit, lipschitz, lambda1: float, lambda2: float, theta=0.0
) -> ElasticNetCertificate:
    """Theorem 5.4 (mask split ``S ⊙ R = 0``; ``J = L_CE + lambda2 ||A||_F^2 + lambda1 ||A||_1``, entrywise
    ``||.||_1``):

        J(A_theta) - J(A) <= (1 - theta) B_T(R) - lambda2 (1 - theta^2) ||R||_F^2 - lambda1 (1 - theta) ||R||_1;

    full pruning ``J(S) <= J(A) - lambda2 ||R||_F^2 - lambda1 ||R||_1 + B_T(R)``; certified decrease whenever
    ``B_T(R) < lambda2 ||R||_F^2 + lambda1 ||R||_1``.
    """
    penalty = ElasticNetPenalty.create(lambda1, lambda2)
    return mask_certificate(view, split, lipschitz, penalty, theta, "Theorem 5.4", THEOREM_5_4)


def elastic_net_from_path(path: PathEvaluation, penalty: ElasticNetPenalty) -> ElasticNetCertificate:
    """Theorem 5.4 (:func:`elastic_net_certificate`) assembled from an evaluated path of a mask split and the
    elastic-net ``penalty`` (:meth:`ElasticNetPenalty.create`)."""
    return mask_certificate_from_path(path, penalty, "Theorem 5.4", THEOREM_5_4)


def weighted_mask_certificate(
    view: LayerView, split: AdditiveSplit, lipschitz, gamma1, gamma2, theta=0.0
) -> ElasticNetCertificate:
    """OR1 Corollary 1.1 (``J_Gamma = L_CE + sum gamma2_ij A_ij^2 + sum gamma1_ij |A_ij|``, ``Gamma >= 0``):

        J_Gamma(A_theta) - J_Gamma(A) <= (1 - theta) B_T(R) - (1 - theta^2) sum gamma2 R^2 - (1 - theta) sum gamma1 |R|;

    certified decrease whenever ``B_T(R) < sum gamma2 R^2 + sum gamma1 |R|``.
    """
    penalty = ElasticNetPenalty.create(gamma1, gamma2, view.weight.shape)
    return mask_certificate(
        view, split, lipschitz, penalty, theta, "OR1 Corollary 1.1",
        "J_Gamma(A_theta) - J_Gamma(A) <= (1-theta) B_T(R) - (1-theta^2) sum g2 R^2 - (1-theta) sum g1 |R|",
    )
