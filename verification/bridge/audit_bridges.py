"""The paper's three audit "bridges" of Online Resource 2 (ALGORITHMS.md 10.2), computed literally.

For one sample set (calibration ``T`` or held-out) and the single-layer audits of
:func:`verification.bridge.certify.certify` (each layer pruned alone), per layer ``l``:

* **Bridge 1** (budget against top-1 drop).  Per sample, the budget term ``b_s = 2 L_s ||R psi_1(s)||_inf``
  (so ``B_T = mean_s b_s``) against the top-1 drop ``d_s = 1[correct dense] - 1[correct pruned]``
  (``-1, 0, 1``): the Pearson ``r`` across samples per layer and pooled over all (layer, sample)
  pairs; across layers, ``r`` between ``B_T(R_l)`` (and the paper's proxy) and the layer's top-1
  drop ``acc(A) - acc(S)``.  The paper correlates *sums over layers* across sparsity cycles; one
  certify run has one mask, so the literal per-layer / per-sample version is what is computable here.
* **Bridge 2** (realised CE change against the budget).  ``|L_CE(S) - L_CE(A)|`` against ``B_T(R_l)``
  (an exceedance is also a Lemma 5.1 violation of the estimate) and against the paper's audit scalar,
  the proxy ``||R_l||_op mean_s ||psi_1(s)||_inf`` with ``L_s`` held at 1 (the paper: 0/282 exceedances).
* **Bridge 3** (spectral edge against the budget).  ``sigma_plus(l)`` of the MP fit of the dense
  weight (:func:`rmt.fit.fit_mp`) against ``Bbar_l = mean_s ||R_l psi_1(s)||_inf`` (the paper's
  table), the proxy (the paper's figure) and ``B_T(R_l)``: Pearson ``r`` of the logarithms across layers.

Correlations are ``None`` where undefined (fewer than 3 points or a constant side).  None of these
numbers is a bound; they are the comparisons the paper reports, done with exact per-sample products.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Mapping, Sequence

import numpy as np

__all__ = ["pearson", "BridgeRow", "Bridges", "audit_bridges"]


def pearson(x, y) -> float | None:
    """Pearson correlation of two equal-length samples; ``None`` for fewer than 3 points or a constant side."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.size < 3 or x.shape != y.shape or np.ptp(x) == 0 or np.ptp(y) == 0:
        return None  # a constant side (tested exactly: its float mean may differ from its value by rounding)
    dx, dy = x - x.mean(), y - y.mean()
    sx, sy = float(np.sqrt(np.sum(dx * dx))), float(np.sqrt(np.sum(dy * dy)))
    if sx == 0.0 or sy == 0.0:
        return None
    return float(np.clip(np.sum(dx * dy) / (sx * sy), -1.0, 1.0))


def _log_pearson(x, y) -> float | None:
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    ok = np.isfinite(x) & np.isfinite(y) & (x > 0) & (y > 0)
    return pearson(np.log(x[ok]), np.log(y[ok]))


@dataclass(frozen=True)
class BridgeRow:
    """One layer's numbers for the three bridges on one sample set (module docstring)."""

    layer: str
    budget: float
    proxy: float
    mean_product: float
    sigma_plus: float | None
    ce_change: float
    top1_drop: float
    flips_to_wrong: int
    flips_to_right: int
    sample_r: float | None
    exceeds_budget: bool
    exceeds_proxy: bool


@dataclass(frozen=True)
class Bridges:
    """The three bridges on one sample set: per-layer rows and the summary correlations / counts."""

    sample_set: str
    rows: tuple[BridgeRow, ...]
    r_budget_vs_drop: float | None
    r_proxy_vs_drop: float | None
    r_sample_pooled: float | None
    exceedances_budget: int
    exceedances_proxy: int
    r_log_sigma_plus_vs_log_mean_product: float | None
    r_log_sigma_plus_vs_log_proxy: float | None
    r_log_sigma_plus_vs_log_budget: float | None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["rows"] = [asdict(r) for r in self.rows]
        out["note"] = "comparisons the paper reports (OR2), done literally; none of them is a bound"
        return out


def _drops(audit) -> np.ndarray:
    """``d_s = 1[correct dense] - 1[correct pruned]`` of one :class:`LayerAudit` (its Corollary 5.2 result)."""
    margin = audit.corollary_5_2
    return np.where(margin.correctness_changed, np.where(margin.true_margin > 0, 1.0, -1.0), 0.0)


def audit_bridges(audits: Sequence, sigma_plus: Mapping[str, float]) -> Bridges:
    """Bridges 1-3 (module docstring) of the single-layer audits of one sample set.

    ``sigma_plus``: layer name -> fitted ``sigma_plus`` of its dense weight (layers without a fit get ``None``).
    """
    rows, pooled_b, pooled_d = [], [], []
    for a in audits:
        terms = 2.0 * a.lipschitz.values * a.products
        ce_change = a.lemma_5_1.realized
        drops = _drops(a)
        pooled_b.append(terms)
        pooled_d.append(drops)
        tol = a.tolerance * max(1.0, a.budget.value)
        rows.append(BridgeRow(
            layer=a.layer,
            budget=float(a.budget.value),
            proxy=float(a.proxy),
            mean_product=float(np.mean(a.products)),
            sigma_plus=None if sigma_plus.get(a.layer) is None else float(sigma_plus[a.layer]),
            ce_change=float(ce_change),
            top1_drop=float(a.acc_path[-1] - a.acc_path[0]),
            flips_to_wrong=int(np.count_nonzero(drops > 0)),
            flips_to_right=int(np.count_nonzero(drops < 0)),
            sample_r=pearson(terms, drops),
            exceeds_budget=bool(ce_change > a.budget.value + tol),
            exceeds_proxy=bool(ce_change > a.proxy + a.tolerance * max(1.0, a.proxy)),
        ))
    sigma = np.array([np.nan if r.sigma_plus is None else r.sigma_plus for r in rows])
    column = {name: np.array([getattr(r, name) for r in rows], dtype=np.float64)
              for name in ("budget", "proxy", "mean_product", "top1_drop")}
    return Bridges(
        sample_set=audits[0].sample_set if audits else "",
        rows=tuple(rows),
        r_budget_vs_drop=pearson(column["budget"], column["top1_drop"]),
        r_proxy_vs_drop=pearson(column["proxy"], column["top1_drop"]),
        r_sample_pooled=pearson(np.concatenate(pooled_b), np.concatenate(pooled_d)) if rows else None,
        exceedances_budget=sum(r.exceeds_budget for r in rows),
        exceedances_proxy=sum(r.exceeds_proxy for r in rows),
        r_log_sigma_plus_vs_log_mean_product=_log_pearson(sigma, column["mean_product"]),
        r_log_sigma_plus_vs_log_proxy=_log_pearson(sigma, column["proxy"]),
        r_log_sigma_plus_vs_log_budget=_log_pearson(sigma, column["budget"]),
    )
