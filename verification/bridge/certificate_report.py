"""The typed result of :func:`verification.bridge.certify.certify`: JSON (versioned schema) and Markdown.

Schema ``mpcert.certify/3`` (``report.json``): ``schema``, ``mpcert_version``, ``model``, ``mask``
(provenance), ``options``, ``data`` (sizes, sources), ``calibration`` and ``heldout`` (one
:class:`LayerAudit` per masked layer, each layer pruned alone in the dense network),
``multilayer`` (:class:`MultiLayerAudit`, Theorem 5.8 in the stated pruning order), ``totals``,
``certified`` (:meth:`CertificateReport.certified`), ``violations`` and ``estimate_diagnostics``.
Version 2 split the version-1 ``violations`` into the last two.

Version 3 groups the per-theorem results: each audit carries ``lemma_5_1``, ``corollary_5_2`` and
``theorem_5_4`` — the ``to_dict`` of :class:`certs.single_layer.CEPathCertificate`,
:class:`~certs.single_layer.MarginStabilityCertificate` and :class:`~certs.single_layer.ElasticNetCertificate`
(``theorem``, ``statement``, ``bound``, ``realized``, ``scale``, ``condition``, ``condition_holds``,
``hypotheses``, ``slack``, ``bound_holds`` and their own fields), assembled by the same ``certs`` code as the
library certificates — and ``multilayer`` carries ``theorem_5_8`` (:class:`certs.multilayer.MultiLayerBound`).
Where the version-2 values went (values unchanged; every other key kept its place):

* ``lipschitz`` (values), ``lipschitz_label``, ``lipschitz_method`` -> ``lipschitz.values`` / ``.label`` /
  ``.method``;
* ``eta``, ``logit_change``, ``ce_dense``, ``ce_pruned``, ``ce_change``, ``lemma_slack`` -> ``lemma_5_1.eta`` (also
  ``corollary_5_2.eta``), ``.logit_change``, ``.ce_dense``, ``.ce_theta``, ``.realized``, ``.slack``;
* ``rounding``, ``at_risk_true``, ``at_risk_prediction``, ``correctness_changed``, ``prediction_changed``,
  ``true_margin_dense``, ``acc_change``, ``acc_change_bound`` -> ``corollary_5_2.rounding``, ..., ``.true_margin``,
  ``.realized``, ``.bound.value``; ``correct_dense`` is ``corollary_5_2.true_margin > 0``;
* ``elastic_bound``, ``objective_change``, ``elastic_scale``, ``elastic_condition`` -> ``theorem_5_4.bound`` (also
  ``.full_pruning_bound``; its ``options`` name ``lipschitz`` and ``theta``, the lambdas are the audit's
  ``lambda1`` / ``lambda2``), ``.realized``, ``.scale``, ``.condition_holds``;
* ``multilayer``: ``bound``, ``objective_change``, ``scale``, ``slack``, ``condition``, ``budget_sum``,
  ``penalty_sum`` -> ``theorem_5_8.bound``, ``.realized``, ``.scale``, ``.slack``, ``.condition_holds``,
  ``.budget_sum``, ``.penalty_sum`` (new: ``.step_bounds``).

Every layer's ``L_s`` carries a label.  ``sound`` (interval / Taylor forward mode,
:mod:`verification.bridge.vit_interval`; the default of ``certify``): the layer's bounds are certificates.
``estimate`` (finite differences along the path, THEORY.md 3.6: an empirical ratio is a lower bound on the
true local constant): every budget and bound built on it is labelled ``estimate`` and never called a
certificate.  Vocabulary: a **violation** is a realised value above a ``sound`` bound, or a failed literal
check (the packed 2:4 execution against the float64 masked dense path) — it must not happen, it is a bug or
a finding, and it is reported loudly.  A realised value above a bound built on an ``estimate`` is a
**diagnostic of the estimate** (FINDINGS F11): counted and listed in its own section, never in the
violations or the headline.  ``report.md`` leads with what is certified.
The paper's proxy ``||R||_op * mean_s ||psi_1(s)||_inf`` (ALGORITHMS.md 10.2 step 3) is shown beside
``B_T`` and labelled ``not-a-bound`` (ALGORITHMS.md 10.3, THEORY.md 11.2-11.3).

Also in the schema: ``execution`` (per layer ``packed-2:4`` / ``dense-float64`` and the largest
``|z_packed - z_masked_dense|``; a difference above float tolerance is a violation), ``bridges``
(the paper's three OR2 bridges per sample set, :mod:`verification.bridge.audit_bridges`) and ``fits``
(:func:`rmt.fit.fit_mp` of every masked layer's dense weight).  :func:`write_report` writes the folder
(``report.json``, ``report.md``, the PNG figures of :mod:`figures.certificate_plots`) atomically;
:func:`write_report_files` writes the same files into a folder staged by the caller.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from certs.budget import PerSampleLipschitz
from certs.multilayer import MultiLayerBound
from certs.results import jsonable
from certs.single_layer import CEPathCertificate, ElasticNetCertificate, MarginStabilityCertificate
from rmt.bounds import SOUND, Bound
from rmt.fit import MPFit

from .audit_bridges import Bridges, audit_bridges

__all__ = ["SCHEMA", "LayerAudit", "MultiLayerAudit", "CertificateReport", "write_report_files", "write_report"]

SCHEMA = "mpcert.certify/3"
NOT_A_BOUND = "not-a-bound"


def _indices(flags: np.ndarray) -> list[int]:
    return [int(i) for i in np.flatnonzero(flags)]


def _packed_mismatch(diff: float | None, tolerance: float, scale: float) -> bool:
    return diff is not None and not diff <= tolerance * max(1.0, scale)


@dataclass(frozen=True, eq=False)
class LayerAudit:
    """Single-layer audit of one masked layer on one sample set: the layer, its ``L_s``, the check-grid path and the
    per-theorem results at theta = 0 (Lemma 5.1, Corollary 5.2, Theorem 5.4) as the typed results of
    :mod:`certs.single_layer`, assembled by its own ``*_from_path`` functions from the bridge's path evaluation.

    The layer: ``shape`` of ``R`` (out x in), ``tokens`` per sample, ``removed_entries`` / ``removed_fraction`` /
    ``removed_frobenius_sq`` / ``removed_l1`` / ``removed_op_norm`` of ``R``, ``input_sup[s] = ||psi_1(s)||_inf``,
    ``products[s] = ||R psi_1(s)||_inf``, the elastic-net ``lambda1`` / ``lambda2``.  ``L_s``: ``lipschitz`` (values,
    label, method: the sound interval enclosure or the finite-difference estimate), ``lipschitz_estimate`` (the
    finite differences, always kept), ``sound_unavailable`` (why a requested sound ``L_s`` is missing) and
    ``budget`` ``B_T(R)``.  The check grid ``thetas`` (``theta = 1`` dense last; the estimation grid is every second
    point, ``estimation_points`` of them): ``ce_path``, its bound ``ce_bound_path = (1 - theta) B_T`` rounded up, the
    thetas where Lemma 5.1 fails (``lemma_violation_thetas``), ``acc_path``; per sample ``sample_ce_change`` at
    theta = 0 and the ``realized - bound`` maxima over the grid ``logit_excess`` (bound ``(1 - theta) eta_s``) and
    ``sample_ce_excess`` (bound ``2 (1 - theta) eta_s``); ``> 0`` exceeds the bound.  ``corollary_5_2.rounding``:
    the float rounding term ``r_s`` (FINDINGS F23; 0 with an estimated ``L_s``); a sample is at risk when its margin
    is ``<= 2 (eta_s + r_s)``.
    """

    layer: str
    sample_set: str
    shape: tuple[int, int]
    tokens: int
    removed_entries: int
    removed_fraction: float
    removed_frobenius_sq: float
    removed_l1: float
    removed_op_norm: float
    input_sup: np.ndarray
    products: np.ndarray
    lambda1: float
    lambda2: float
    lipschitz: PerSampleLipschitz
    lipschitz_estimate: np.ndarray | None
    sound_unavailable: str | None
    budget: Bound
    thetas: np.ndarray
    estimation_points: int
    ce_path: np.ndarray
    ce_bound_path: np.ndarray
    lemma_violation_thetas: tuple[float, ...]
    acc_path: np.ndarray
    sample_ce_change: np.ndarray
    logit_excess: np.ndarray
    sample_ce_excess: np.ndarray
    lemma_5_1: CEPathCertificate
    corollary_5_2: MarginStabilityCertificate
    theorem_5_4: ElasticNetCertificate
    execution: str
    packed_max_abs_diff: float | None
    logit_scale: float
    tolerance: float

    # -- derived quantities ---------------------------------------------------------------------
    @property
    def unexplained_correctness(self) -> list[int]:
        """Samples whose correctness changed outside Corollary 5.2's at-risk set (must be empty)."""
        c = self.corollary_5_2
        return _indices(c.correctness_changed & ~c.at_risk_true)

    @property
    def unexplained_prediction(self) -> list[int]:
        """Samples whose prediction changed although their margin exceeded ``2 (eta_s + r_s)`` (must be empty)."""
        c = self.corollary_5_2
        return _indices(c.prediction_changed & ~c.at_risk_prediction)

    @property
    def lambda2_threshold(self) -> float | None:
        """With ``lambda1 = 0`` the condition holds for every ``lambda2 > B_T / ||R||_F^2`` (None if ``R = 0``)."""
        return self.budget.value / self.removed_frobenius_sq if self.removed_frobenius_sq > 0 else None

    @property
    def lambda1_threshold(self) -> float | None:
        """With ``lambda2 = 0`` the condition holds for every ``lambda1 > B_T / ||R||_1`` (None if ``R = 0``)."""
        return self.budget.value / self.removed_l1 if self.removed_l1 > 0 else None

    @property
    def proxy(self) -> float:
        """The paper's ``||R||_op * mean_s ||psi_1(s)||_inf`` — NOT an upper bound on anything."""
        return self.removed_op_norm * float(np.mean(self.input_sup))

    @property
    def is_sound(self) -> bool:
        """``L_s`` (hence ``B_T``, ``eta_s`` and every bound of this audit) is labelled ``sound``."""
        return self.lipschitz.label == SOUND

    @property
    def certified_unchanged(self) -> int | None:
        """Samples whose prediction provably stays, exactly and as computed (Corollary 5.2 with a sound ``L_s``:
        margin ``> 2 (eta_s + r_s)``)."""
        return int(np.count_nonzero(~self.corollary_5_2.at_risk_prediction)) if self.is_sound else None

    @property
    def sound_to_estimate_median(self) -> float | None:
        """Median over samples (with ``p_s > 0``) of sound ``L_s`` / finite-difference estimate."""
        if not self.is_sound or self.lipschitz_estimate is None:
            return None
        ok = (self.products > 0) & (self.lipschitz_estimate > 0)
        ratio = self.lipschitz.values[ok] / self.lipschitz_estimate[ok]
        return float(np.median(ratio)) if ok.any() else None

    @property
    def packed_mismatch(self) -> bool:
        """The packed 2:4 execution differs from the float64 masked dense path beyond float tolerance."""
        return _packed_mismatch(self.packed_max_abs_diff, self.tolerance, self.logit_scale)

    def _exceedances(self) -> list[str]:
        """Every realised value above a bound of this audit on the check grid, in words (whatever the label)."""
        kind = "SOUND BOUND VIOLATED" if self.is_sound else "estimate exceeded"
        where = f"{self.layer} ({self.sample_set}, {kind})"
        out = []
        if self.lemma_violation_thetas:
            out.append(f"{where}: Lemma 5.1 |dCE| > (1-theta) B_T at theta in {list(self.lemma_violation_thetas)}")
        eta = self.lemma_5_1.eta
        for label, excess, scale in (("logit change > (1-theta) L_s p_s", self.logit_excess, eta),
                                     ("|d l_s| > 2 (1-theta) L_s p_s", self.sample_ce_excess, 2.0 * eta)):
            flags = excess > self.tolerance * np.maximum(1.0, scale)
            if flags.any():
                worst = float(np.max(excess[flags] / np.maximum(scale[flags], np.finfo(np.float64).tiny)))
                out.append(f"{where}: per-sample {label} on {int(flags.sum())} samples {_indices(flags)[:10]} "
                           f"(largest excess {worst:.3g} x its theta = 0 value)")
        if self.unexplained_correctness:
            out.append(f"{where}: Corollary 5.2 correctness changed outside the at-risk set on "
                       f"{self.unexplained_correctness}")
        if self.unexplained_prediction:
            out.append(f"{where}: Corollary 5.2 prediction changed outside the at-risk set on "
                       f"{self.unexplained_prediction}")
        elastic = self.theorem_5_4
        if elastic.realized > elastic.bound.value + self.tolerance * max(1.0, elastic.scale):
            out.append(f"{where}: Theorem 5.4 J(S) - J(A) = {elastic.realized:.6g} > bound {elastic.bound.value:.6g}")
        return out

    def violations(self) -> list[str]:
        """Broken ``sound`` bounds and failed literal checks, in words (must be empty: each is a bug or a finding):
        a packed 2:4 execution that differs from the float64 masked dense path, and — where ``L_s`` is sound —
        every realised value above its bound on the check grid (said in capitals)."""
        out = []
        if self.packed_mismatch:
            out.append(f"{self.layer} ({self.sample_set}): PACKED 2:4 EXECUTION DIFFERS from the masked dense "
                       f"float64 path: max |dz| = {self.packed_max_abs_diff:.3g} (a wrongly packed layer?)")
        return out + (self._exceedances() if self.is_sound else [])

    def estimate_diagnostics(self) -> list[str]:
        """Where ``L_s`` is an ``estimate``: the realised values above the bounds built on it, in words.  A finite
        difference is a lower bound on the local constant (THEORY.md 3.6, FINDINGS F11), so an exceeded estimate
        says how far the estimate falls short — a diagnostic of the estimate, never a violation."""
        return [] if self.is_sound else self._exceedances()

    def to_dict(self) -> dict[str, Any]:
        """Schema 3: the fields (each theorem's result by its ``to_dict``), then the derived quantities."""
        out = {f.name: jsonable(getattr(self, f.name)) for f in fields(self) if f.name not in _THEOREMS}
        out.update({name: getattr(self, name).to_dict() for name in _THEOREMS})
        for name in ("unexplained_correctness", "unexplained_prediction", "lambda2_threshold", "lambda1_threshold",
                     "proxy", "packed_mismatch", "certified_unchanged", "sound_to_estimate_median"):
            out[name] = jsonable(getattr(self, name))
        out["proxy_label"] = NOT_A_BOUND
        out["at_risk_samples"] = _indices(self.corollary_5_2.at_risk_true)
        out["violations"] = self.violations()
        out["estimate_diagnostics"] = self.estimate_diagnostics()
        return out


#: The per-theorem results of a :class:`LayerAudit`, serialised by their own ``to_dict``.
_THEOREMS = ("lemma_5_1", "corollary_5_2", "theorem_5_4")


@dataclass(frozen=True, eq=False)
class MultiLayerAudit:
    """Theorem 5.8 on the intermediate networks: the layers are pruned one at a time in ``order``.

    ``steps[j]`` is the single-layer audit of layer ``order[j]`` in the network where the layers
    ``order[:j]`` are already pruned (its own ``psi_1``, ``psi_2`` and ``L_{j,s}``).  ``theorem_5_8``
    (:class:`certs.multilayer.MultiLayerBound`, assembled by :func:`certs.multilayer.theorem_5_8_result`) bounds
    ``J(alpha^(M)) - J(alpha^(0)) <= sum_j B_j - sum_j (lambda2 ||R_j||_F^2 + lambda1 ||R_j||_1)`` (``realized``: the
    executed final network against the dense one); ``ce_*`` / ``acc_*``: the dense and the final network.
    """

    order: tuple[str, ...]
    steps: tuple[LayerAudit, ...]
    theorem_5_8: MultiLayerBound
    ce_dense: float
    ce_final: float
    acc_dense: float
    acc_final: float
    tolerance: float
    execution: str = "dense-float64"
    packed_max_abs_diff: float | None = None
    logit_scale: float = 1.0

    @property
    def is_sound(self) -> bool:
        """Every step's ``L_s`` is sound, hence the Theorem 5.8 bound is a certificate."""
        return self.theorem_5_8.bound.label == SOUND

    def _bound_exceeded(self) -> list[str]:
        t = self.theorem_5_8
        if t.realized > t.bound.value + self.tolerance * max(1.0, t.scale):
            kind = "SOUND BOUND VIOLATED" if self.is_sound else "estimate exceeded"
            return [f"multi-layer (Theorem 5.8, {kind}): J change {t.realized:.6g} > bound {t.bound.value:.6g}"]
        return []

    def violations(self) -> list[str]:
        """The steps' violations, a packed mismatch of the final network and, with a sound bound, ``J`` change
        above it."""
        out = [v for step in self.steps for v in step.violations()]
        if _packed_mismatch(self.packed_max_abs_diff, self.tolerance, self.logit_scale):
            out.append(f"multi-layer final network: PACKED 2:4 EXECUTION DIFFERS from the masked dense float64 path: "
                       f"max |dz| = {self.packed_max_abs_diff:.3g}")
        return out + (self._bound_exceeded() if self.is_sound else [])

    def estimate_diagnostics(self) -> list[str]:
        """The steps' diagnostics and, with an estimated bound, ``J`` change above it (not violations)."""
        steps = [d for step in self.steps for d in step.estimate_diagnostics()]
        return steps + ([] if self.is_sound else self._bound_exceeded())

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: jsonable(getattr(self, f.name)) for f in fields(self) if f.name not in ("steps", "theorem_5_8")}
        out["steps"] = [step.to_dict() for step in self.steps]
        out["theorem_5_8"] = self.theorem_5_8.to_dict()
        out["violations"] = self.violations()
        out["estimate_diagnostics"] = self.estimate_diagnostics()
        return out


@dataclass(frozen=True, eq=False)
class CertificateReport:
    """Everything :func:`verification.bridge.certify.certify` found (see the module docstring)."""

    mpcert_version: str
    model: str
    mask: dict
    options: dict
    data: dict
    calibration: tuple[LayerAudit, ...]
    heldout: tuple[LayerAudit, ...]
    multilayer: MultiLayerAudit | None
    timings: dict = field(default_factory=dict)
    fits: tuple[MPFit, ...] = ()
    fit_errors: dict = field(default_factory=dict)

    def sigma_plus(self) -> dict[str, float]:
        """Fitted ``sigma_plus`` of every masked layer's dense weight (layers whose fit failed are absent)."""
        return {f.name: f.sigma_plus for f in self.fits}

    def bridges(self) -> dict[str, Bridges]:
        """The paper's three OR2 bridges (:mod:`verification.bridge.audit_bridges`) per sample set."""
        sigma = self.sigma_plus()
        return {audits[0].sample_set: audit_bridges(audits, sigma)
                for audits in (self.calibration, self.heldout) if audits}

    def execution(self) -> dict[str, Any]:
        """How the realised side was executed, per layer and sample set, and the worst packed-vs-dense gap."""
        rows = [{"layer": a.layer, "sample_set": a.sample_set, "execution": a.execution,
                 "packed_max_abs_diff": a.packed_max_abs_diff, "mismatch": a.packed_mismatch}
                for a in self.calibration + self.heldout]
        diffs = [r["packed_max_abs_diff"] for r in rows if r["packed_max_abs_diff"] is not None]
        ml = self.multilayer
        if ml is not None and ml.packed_max_abs_diff is not None:
            diffs.append(ml.packed_max_abs_diff)
        kinds = sorted({r["execution"] for r in rows} | ({ml.execution} if ml is not None else set()))
        return {
            "global": kinds[0] if len(kinds) == 1 else "mixed: " + ", ".join(kinds),
            "layers": rows,
            "multilayer_final": None if ml is None else {"execution": ml.execution,
                                                         "packed_max_abs_diff": ml.packed_max_abs_diff},
            "max_packed_abs_diff": max(diffs) if diffs else None,
            "note": "theta-path re-runs (0 < theta <= 1) are float64 masked dense: S + theta R is not 2:4",
        }

    def violations(self) -> list[str]:
        """Broken sound bounds and failed literal checks of every audit (must be empty: a bug or a finding)."""
        out = [v for audit in self.calibration + self.heldout for v in audit.violations()]
        return out + (self.multilayer.violations() if self.multilayer is not None else [])

    def estimate_diagnostics(self) -> list[str]:
        """Realised values above bounds built on an ``estimate`` ``L_s`` (diagnostics of the estimate, not
        violations)."""
        out = [d for audit in self.calibration + self.heldout for d in audit.estimate_diagnostics()]
        return out + (self.multilayer.estimate_diagnostics() if self.multilayer is not None else [])

    def certified(self) -> dict[str, Any]:
        """What is certified, per sample set: the layers with a sound ``L_s`` and, for each, the samples whose
        prediction provably stays (Corollary 5.2: margin ``> 2 eta_s``), the certified accuracy-change bound beside
        the realised change and ``B_T`` (Lemma 5.1 at theta = 0) beside the realised ``|dCE|``; the layers without
        a sound ``L_s`` with the reason; the Theorem 5.8 bound beside the realised ``J`` change."""
        sets = {}
        for audits in (self.calibration, self.heldout):
            if not audits:
                continue
            sound = [a for a in audits if a.is_sound]
            sets[audits[0].sample_set] = {
                "samples": int(audits[0].products.size),
                "layers": len(audits),
                "layers_sound": len(sound),
                "not_sound": {a.layer: a.sound_unavailable or "sound L_s not requested"
                              for a in audits if not a.is_sound},
                "min_certified_unchanged": min((a.certified_unchanged for a in sound), default=None),
                "max_acc_change_bound": max((a.corollary_5_2.bound.value for a in sound), default=None),
                "max_acc_change": max((a.corollary_5_2.realized for a in sound), default=None),
                "rows": [{"layer": a.layer, "certified_unchanged": a.certified_unchanged,
                          "acc_change_bound": a.corollary_5_2.bound.value, "acc_change": a.corollary_5_2.realized,
                          "budget": a.budget.value, "ce_change": a.lemma_5_1.realized,
                          "sound_to_estimate_median": a.sound_to_estimate_median} for a in sound],
            }
        ml = self.multilayer
        return {
            "sets": sets,
            "multilayer": None if ml is None else {"label": ml.theorem_5_8.bound.label,
                                                   "bound": ml.theorem_5_8.bound.value,
                                                   "objective_change": ml.theorem_5_8.realized,
                                                   "ce_change": ml.ce_final - ml.ce_dense},
            "violations": len(self.violations()),
            "estimate_diagnostics": len(self.estimate_diagnostics()),
        }

    def transfer(self) -> list[dict[str, Any]]:
        """ALGORITHMS.md 10.2 Bridge 2 done literally: the calibration ``B_T(R)`` beside the realised ``|dCE|`` on
        the held-out set.  No theorem says one bounds the other (the budget is about ``T`` only)."""
        held = {a.layer: a for a in self.heldout}
        return [
            {"layer": a.layer, "budget_calibration": a.budget.value,
             "ce_change_heldout": held[a.layer].lemma_5_1.realized,
             "exceeds": held[a.layer].lemma_5_1.realized > a.budget.value}
            for a in self.calibration if a.layer in held
        ]

    def totals(self) -> dict[str, Any]:
        return {
            "budget_sum_calibration": float(sum(a.budget.value for a in self.calibration)),
            "proxy_sum_calibration": float(sum(a.proxy for a in self.calibration)),
            "proxy_label": NOT_A_BOUND,
            "layers": len(self.calibration),
        }

    def lipschitz_labels(self) -> dict[str, int]:
        """How many single-layer audits (both sample sets) have a ``sound`` and an ``estimate`` ``L_s``."""
        audits = self.calibration + self.heldout
        sound = sum(a.is_sound for a in audits)
        return {"sound": sound, "estimate": len(audits) - sound}

    def label_note(self) -> str:
        counts = self.lipschitz_labels()
        if counts["sound"] == 0:
            return "every L_s is an ESTIMATE (finite differences); no bound here is a certificate"
        if counts["estimate"] == 0:
            return "every L_s is SOUND (interval forward mode): every bound here is a certificate"
        return (f"L_s is SOUND on {counts['sound']} audits (their bounds are certificates) and an ESTIMATE on "
                f"{counts['estimate']} (no sound enclosure: see sound_unavailable; those bounds are not certificates)")

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "mpcert_version": self.mpcert_version,
            "label_note": self.label_note(),
            "lipschitz_labels": self.lipschitz_labels(),
            "model": self.model,
            "mask": jsonable(self.mask),
            "options": jsonable(self.options),
            "data": jsonable(self.data),
            "calibration": [a.to_dict() for a in self.calibration],
            "heldout": [a.to_dict() for a in self.heldout],
            "multilayer": None if self.multilayer is None else self.multilayer.to_dict(),
            "heldout_transfer": self.transfer(),
            "heldout_transfer_note": "B_T on T beside |dCE| on held-out data: a comparison, not a theorem",
            "totals": self.totals(),
            "execution": jsonable(self.execution()),
            "bridges": {name: jsonable(b.to_dict()) for name, b in self.bridges().items()},
            "fits": [f.to_dict() for f in self.fits],
            "fit_errors": dict(self.fit_errors),
            "timings": jsonable(self.timings),
            "certified": jsonable(self.certified()),
            "violations": self.violations(),
            "estimate_diagnostics": self.estimate_diagnostics(),
        }

    def to_markdown(self, figures: Sequence[str] = ()) -> str:
        """The readable summary; ``figures`` (paths relative to the report folder) are linked at the end."""
        counts = self.lipschitz_labels()
        kind = ("ESTIMATES, not certificates" if counts["sound"] == 0 else
                "certificates: every L_s sound" if counts["estimate"] == 0 else
                "partly certificates: see the L_s labels")
        lines = [f"# mpcert certify — literal audit of the Section 5 bounds ({kind})", ""]
        lines += _certified_lines(self.certified()) + _violation_lines(self.violations())
        lines += [f"Model: {self.model}", "", f"Mask: {self.mask.get('method')} ({self.mask.get('pattern')}); "
                  f"realised side executed as **{self.execution()['global']}**", ""]
        lines += ["Options: " + ", ".join(f"{k}={v}" for k, v in self.options.items()), ""]
        lines += ["Data: " + ", ".join(f"{k}={v}" for k, v in self.data.items()), ""]
        lines += [
            "An `estimate` `L_s` is the largest directional finite difference of the post-layer map along a",
            "theta grid (a lower bound on the true local constant, THEORY.md 3.6): bounds built on it are",
            "labelled `estimate` and are not certificates.  A `sound` `L_s` (interval / Taylor forward mode in",
            "theta, outward rounding) makes the layer's bounds certificates.  Realised values are checked on a",
            "finer grid (the estimation grid plus its midpoints).",
            "",
            f"**L_s labels:** {self.label_note()}.",
            "",
        ]
        if counts["estimate"]:
            lines += ["Where `L_s` is an estimate, a realised value above a bound built on it is a *diagnostic of the",
                      "estimate* (FINDINGS F11), listed in its own section below, never a violation.", ""]
        lines += _diagnostic_lines(self.estimate_diagnostics())
        for title, audits in (("Calibration set T", self.calibration), ("Held-out set", self.heldout)):
            if audits:
                lines += [f"## {title}: each layer pruned alone", ""] + _layer_table(audits) + [""]
                lines += _risk_lines(audits) + [""]
        if self.heldout:
            lines += ["## Held-out transfer (paper's Bridge 2, literally; a comparison, not a theorem)", "",
                      "| layer | B_T on T | dCE on held-out | exceeds |", "|---|---|---|---|"]
            lines += [f"| {t['layer']} | {t['budget_calibration']:.4g} | {t['ce_change_heldout']:.4g} | "
                      f"{'**yes**' if t['exceeds'] else 'no'} |" for t in self.transfer()] + [""]
        if self.multilayer is not None:
            ml, t = self.multilayer, self.multilayer.theorem_5_8
            verdict = ("estimated decrease of J (sum B_j < removed penalty)" if t.condition_holds
                       else "no estimated decrease (sum B_j >= removed penalty)")
            lines += [
                "## Multi-layer (Theorem 5.8) on the intermediate networks",
                "",
                f"Order: {', '.join(ml.order)}",
                "",
                *_layer_table(ml.steps),
                "",
                f"- sum of step budgets B_j ({t.bound.label}): {t.budget_sum:.6g}; "
                f"removed penalty: {t.penalty_sum:.6g}",
                f"- bound on J change ({t.bound.label}): {t.bound.value:.6g}; realised: {t.realized:.6g}; "
                f"slack: {t.slack:.6g}",
                f"- CE {ml.ce_dense:.6g} -> {ml.ce_final:.6g}; accuracy {ml.acc_dense:.4f} -> {ml.acc_final:.4f}",
                f"- verdict: {verdict}",
                "",
            ]
        totals = self.totals()
        lines += [
            "## Totals",
            "",
            f"- sum of single-layer B_T (labels as above): {totals['budget_sum_calibration']:.6g}",
            f"- sum of the paper's proxy ||R||_op mean||psi_1||_inf (**not a bound**): "
            f"{totals['proxy_sum_calibration']:.6g}",
            "",
        ]
        lines += _execution_lines(self.execution())
        for bridges in self.bridges().values():
            lines += _bridge_lines(bridges)
        if self.fit_errors:
            lines += ["MP fits that failed: " + "; ".join(f"{k}: {v}" for k, v in self.fit_errors.items()), ""]
        if self.timings:
            times = "; ".join(f"{k.removesuffix('_s')} {v:.1f}" if k.endswith("_s") else f"{k} {v}"
                              for k, v in self.timings.items())
            lines += ["## Timings (s)", "", times, "",
                      "(`phase_*`: seconds summed over all audits and ranks; `audit_wall`: all audit units, "
                      "wall clock)", ""]
        if figures:
            lines += ["## Figures", ""] + [f"![{Path(f).stem}]({f})" for f in figures] + [""]
        return "\n".join(lines) + "\n"


_HEADER = (
    "| layer | removed | L_s | B_T | proxy (not a bound) | dCE real | Lemma 5.1 slack | acc change real / bound "
    "| J change real / bound | verdict | lambda2 > | lambda1 > |"
)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def _layer_table(audits) -> list[str]:
    rows = [_HEADER, "|" + "---|" * (_HEADER.count("|") - 1)]
    for a in audits:
        tag = "certified" if a.is_sound else "est."
        lemma, margin, elastic = a.lemma_5_1, a.corollary_5_2, a.theorem_5_4
        verdict = f"decrease ({tag})" if elastic.condition_holds else f"no decrease ({tag})"
        if a.violations():
            verdict += "; **VIOLATED**"
        elif a.estimate_diagnostics():
            verdict += "; estimate exceeded"
        rows.append(
            f"| {a.layer} | {a.removed_fraction:.3f} | {a.lipschitz.label} | {a.budget.value:.4g} | {a.proxy:.4g} "
            f"| {lemma.realized:.4g} | {lemma.slack:.4g} | {margin.realized:.4f} / {margin.bound.value:.4f} "
            f"| {elastic.realized:.4g} / {elastic.bound.value:.4g} | {verdict} "
            f"| {_fmt(a.lambda2_threshold)} | {_fmt(a.lambda1_threshold)} |"
        )
    return rows


def _certified_lines(certified: dict[str, Any]) -> list[str]:
    """The report's first section: what is certified (:meth:`CertificateReport.certified`)."""
    lines = ["## What is certified", ""]
    if not any(info["layers_sound"] for info in certified["sets"].values()):
        return lines + ["**Nothing**: every `L_s` is an estimate (finite differences), so no bound below is a "
                        "certificate.",
                        f"Violations (failed literal checks): **{certified['violations']}**; diagnostics of the "
                        f"estimate: {certified['estimate_diagnostics']}.", ""]
    for name, info in certified["sets"].items():
        detail = (f"; fewest samples certified unchanged (Corollary 5.2) {info['min_certified_unchanged']} / "
                  f"{info['samples']}; largest certified accuracy-change bound {info['max_acc_change_bound']:.4f} "
                  f"(realised {info['max_acc_change']:.4f})" if info["layers_sound"] else "")
        lines.append(f"- {name} set ({info['samples']} samples): **{info['layers_sound']} of {info['layers']} layers "
                     f"certified sound**" + detail)
        for layer, reason in info["not_sound"].items():
            lines.append(f"  - {layer}: estimate only ({reason.replace('|', '/')[:240]})")
    ml = certified["multilayer"]
    if ml is not None:
        lines.append(f"- Theorem 5.8, all layers pruned in order ({ml['label']}): J change <= {ml['bound']:.6g}; "
                     f"realised {ml['objective_change']:.6g} (CE change {ml['ce_change']:.6g})")
    lines += [f"- violations (broken sound bounds, failed literal checks): **{certified['violations']}**; "
              f"diagnostics of the estimate: {certified['estimate_diagnostics']}", ""]
    for name, info in certified["sets"].items():
        if info["rows"]:
            lines += [f"### Certified per layer — {name} set", "",
                      "| layer | samples certified unchanged | acc. change bound / realised | B_T / realised dCE "
                      "| median sound / estimate L_s |", "|---|---|---|---|---|"]
            lines += [f"| {r['layer']} | {r['certified_unchanged']} / {info['samples']} | "
                      f"{r['acc_change_bound']:.4f} / {r['acc_change']:.4f} | {r['budget']:.4g} / {r['ce_change']:.4g} "
                      f"| {_fmt(r['sound_to_estimate_median'])} |" for r in info["rows"]] + [""]
    return lines


def _violation_lines(violations: list[str]) -> list[str]:
    if not violations:
        return ["No violation: no sound bound is broken and every literal check held.", ""]
    return ["## **VIOLATIONS** (a broken sound bound or a failed literal check: a bug or a finding)", ""] + \
        [f"- **{v}**" for v in violations] + [""]


def _diagnostic_lines(diagnostics: list[str]) -> list[str]:
    if not diagnostics:
        return []
    return [f"## Diagnostics of the estimate ({len(diagnostics)})", "",
            "Realised values above bounds built on an `estimate` `L_s` on the check grid: the finite difference",
            "under-estimates the local constant there (FINDINGS F11).  Not violations: no certificate is involved.",
            ""] + [f"- {d}" for d in diagnostics] + [""]


def _risk_lines(audits) -> list[str]:
    lines = ["At-risk samples (Corollary 5.2 at theta = 0: |Delta_true| <= 2 (eta_s + r_s)):", ""]
    for a in audits:
        risk = _indices(a.corollary_5_2.at_risk_true)
        changed = _indices(a.corollary_5_2.correctness_changed)
        lines.append(f"- {a.layer}: at risk {risk if risk else 'none'}; "
                     f"correctness changed {changed if changed else 'none'}")
    return lines


def _execution_lines(info: dict[str, Any]) -> list[str]:
    lines = ["## Execution of the realised side (theta = 0)", "", f"- execution: **{info['global']}**"]
    if info["max_packed_abs_diff"] is not None:
        mismatched = [r["layer"] + f" ({r['sample_set']})" for r in info["layers"] if r["mismatch"]]
        lines.append(f"- largest |z_packed - z_masked_dense| over all audits: {info['max_packed_abs_diff']:.3g}"
                     + (f" — **MISMATCH on {mismatched}**" if mismatched else " (float tolerance)"))
    lines += [f"- {info['note']}", ""]
    return lines


def _r(value: float | None) -> str:
    return "undefined" if value is None else f"{value:+.3f}"


def _bridge_lines(b: Bridges) -> list[str]:
    n = len(b.rows)
    lines = [
        f"## Audit bridges of the paper (OR2), literally — {b.sample_set} set",
        "",
        "Comparisons the paper reports, computed with exact per-sample products; none is a bound.",
        "",
        "| layer | B_T | proxy (not a bound) | mean ||R psi_1||_inf | sigma_+ | dCE real | top-1 drop "
        "| flips to wrong / right | r(b_s, d_s) | dCE > B_T | dCE > proxy |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in b.rows:
        lines.append(
            f"| {r.layer} | {r.budget:.4g} | {r.proxy:.4g} | {r.mean_product:.4g} | {_fmt(r.sigma_plus)} "
            f"| {r.ce_change:.4g} | {r.top1_drop:+.4f} | {r.flips_to_wrong} / {r.flips_to_right} | {_r(r.sample_r)} "
            f"| {'**yes**' if r.exceeds_budget else 'no'} | {'yes' if r.exceeds_proxy else 'no'} |"
        )
    lines += [
        "",
        f"- Bridge 1 (budget vs top-1 drop): across layers r(B_T, drop) = {_r(b.r_budget_vs_drop)}, "
        f"r(proxy, drop) = {_r(b.r_proxy_vs_drop)}; pooled over (layer, sample) r(2 L_s p_s, d_s) = "
        f"{_r(b.r_sample_pooled)}",
        f"- Bridge 2 (realised |dCE| vs budget): exceeds B_T on {b.exceedances_budget}/{n} layers; "
        f"exceeds the paper's proxy (L_s = 1) on {b.exceedances_proxy}/{n} layers",
        f"- Bridge 3 (log sigma_+ vs log budget, across layers): r with mean ||R psi_1||_inf = "
        f"{_r(b.r_log_sigma_plus_vs_log_mean_product)}, with the proxy = {_r(b.r_log_sigma_plus_vs_log_proxy)}, "
        f"with B_T = {_r(b.r_log_sigma_plus_vs_log_budget)}",
        "",
    ]
    return lines


def write_report_files(report: CertificateReport, folder: str | Path, *, document: dict[str, Any] | None = None,
                       plots: bool = True, esd_plots: bool = True) -> dict[str, Any]:
    """Write ``report.json`` (``document``, default ``report.to_json()``), ``report.md`` and (``plots``) the
    figures of :mod:`figures.certificate_plots` (the per-layer ESD ones only with ``esd_plots``) into the
    existing ``folder`` — meant to run inside :func:`verification.bridge.report_folder.staged_folder`, which
    makes the whole folder atomic.  Returns the document written (``figures``: PNG paths relative to ``folder``)."""
    folder = Path(folder)
    document = dict(report.to_json() if document is None else document)
    figures: list[str] = []
    if plots:
        from figures.certificate_plots import write_certificate_plots

        figures = [p.relative_to(folder).as_posix() for p in write_certificate_plots(report, folder, esd=esd_plots)]
    document["figures"] = figures
    (folder / "report.json").write_text(json.dumps(document, indent=2, allow_nan=False) + "\n")
    (folder / "report.md").write_text(report.to_markdown(figures))
    return document


def write_report(
    report: CertificateReport,
    out: str | Path,
    *,
    plots: bool = True,
    force: bool = False,
    extra_json: Mapping[str, Any] | None = None,
    extra_files: Mapping[str, Callable[[Path], Any]] | None = None,
) -> dict[str, Any]:
    """Write the report folder ``out`` atomically (:func:`verification.bridge.report_folder.staged_folder`):
    :func:`write_report_files` plus ``extra_files[name](path)`` (e.g. ``{"mask.safetensors": mask.save}``);
    ``extra_json`` entries are merged into the top level of ``report.json``.  A failure at any step
    leaves nothing; an existing non-empty ``out`` is refused unless ``force``.  Returns the document.
    """
    from verification.bridge.report_folder import check_out, staged_folder

    out = Path(out)
    check_out(out, force)
    document = report.to_json()
    document.update(jsonable(dict(extra_json or {})))
    with staged_folder(out, force) as tmp:
        for name, write in (extra_files or {}).items():
            write(tmp / name)
        document = write_report_files(report, tmp, document=document, plots=plots)
    return document
