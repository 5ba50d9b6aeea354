"""Probabilistic data-path budgets for random removed parts (THEORY.md Cor. 5.10, 5.11; OR1 Cor. 1.4–1.6).

The data-path budget of a removed part ``R`` (``n x m``, ``n`` = rows) on the data-path vectors
``v_s = psi_1(s)`` (rows of ``V``, shape ``|T| x m``) with path Lipschitz constants ``L_s >= 0`` is

    B_T(R) = (2/|T|) sum_s L_s ||R v_s||_inf                       (THEORY 1.4, :func:`realised_budget`).

When ``R`` is random and independent of ``V`` and ``L``, each corollary gives per-sample thresholds
``t_s = ||v_s||_2 * k`` such that the good event ``E = {||R v_s||_inf <= t_s for all s}`` has
probability ``>= 1 - delta`` (union bound over the ``n |T|`` row/sample pairs), and on ``E``

    B_T(R) <= (2/|T|) sum_s L_s t_s.

* Corollary 5.10 (entries ``N(0, g/n)``): ``k = sqrt(2 g / n * log(2 n |T| / delta))``;
  general-variance form (entries ``N(0, s_R^2)``): ``k = s_R sqrt(2 log(2 n |T| / delta))``.
* Corollary 5.11 (same bound through the nominal MP edge ``sigma_+ = sqrt(g)(1 + sqrt(m/n))``):
  bound ``= 2 sigma_+ / (1 + sqrt(m/n)) * sqrt(2/n log(2 n |T|/delta)) * (1/|T|) sum_s L_s ||v_s||_2``.
* OR1 Corollary 1.4 (rows with ``P(|<r_i, v>| > t) <= 2 exp(-c n t^2 / (g ||v||^2))``):
  ``k = sqrt(g / (c n) * log(2 n |T| / delta))``; ``c = 1/2`` reproduces 5.10.
* OR1 Corollaries 1.5 / 1.6 (several steps ``j`` with ``delta_j``, ``sum_j delta_j <= delta``): every per-step
  bound holds simultaneously with probability ``>= 1 - delta``.

All results are ``estimate``s (probabilistic, ``confidence = 1 - delta``), never certificates; the
probability statement needs the **true** ``g`` and an ``L_s`` that does not depend on ``R``
(THEORY 11, pitfalls 11–12).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from .bounds import ESTIMATE, Bound
from .errors import InvalidMatrixError, InvalidParameterError

__all__ = [
    "BudgetBound",
    "MultiLayerBudgetBounds",
    "GaussianStep",
    "SubGaussianStep",
    "sample_sup_norms",
    "realised_budget",
    "good_event_holds",
    "gaussian_budget_bound",
    "gaussian_budget_bound_from_variance",
    "mp_edge_budget_bound",
    "subgaussian_budget_bound",
    "multilayer_gaussian_budget_bounds",
    "multilayer_subgaussian_budget_bounds",
]


@dataclass(frozen=True, eq=False)
class BudgetBound:
    """A probabilistic upper bound on ``B_T(R)`` and the good event behind it.

    Attributes
    ----------
    bound: the bound ``(2/|T|) sum_s L_s t_s`` as an ``estimate`` with ``confidence = 1 - delta``.
    thresholds: the per-sample ``t_s`` of the good event ``E = {||R v_s||_inf <= t_s for all s}``.
    delta: failure probability of ``E``.
    summary: the inputs (``n_rows``, ``n_cols``, ``n_samples``, the scale parameters, ``sum_s L_s ||v_s||_2``).
    """

    bound: Bound
    thresholds: np.ndarray
    delta: float
    summary: Mapping[str, Any] = field(default_factory=dict)

    @property
    def value(self) -> float:
        return self.bound.value


@dataclass(frozen=True, eq=False)
class MultiLayerBudgetBounds:
    """Per-step bounds of OR1 Corollary 1.5 / 1.6 holding jointly with probability ``>= 1 - delta``.

    ``total`` bounds ``sum_j B_j(R_j)`` (it replaces ``sum_j B_j`` in Theorem 5.8).
    """

    steps: tuple[BudgetBound, ...]
    total: Bound
    deltas: tuple[float, ...]
    delta: float


@dataclass(frozen=True, eq=False)
class GaussianStep:
    """One step of OR1 Corollary 1.5: data path ``V`` (``|T| x m_j``), ``L`` (``|T|``), entries ``N(0, g/n_rows)``."""

    V: Any
    L: Any
    g: float
    n_rows: int


@dataclass(frozen=True, eq=False)
class SubGaussianStep:
    """One step of OR1 Corollary 1.6: as :class:`GaussianStep` plus the tail constant ``c``."""

    V: Any
    L: Any
    g: float
    c: float
    n_rows: int


# -- validation ---------------------------------------------------------------------------------
def _data_path(V) -> np.ndarray:
    v = np.asarray(V, dtype=np.float64)
    if v.ndim != 2 or v.shape[0] < 1 or v.shape[1] < 1:
        raise InvalidMatrixError(f"V must be a |T| x m matrix of data-path vectors psi_1(s), got shape {v.shape}")
    if not np.all(np.isfinite(v)):
        raise InvalidMatrixError("V (data-path vectors) contains NaN or Inf")
    return v


def _lipschitz(L, n_samples: int) -> np.ndarray:
    lip = np.asarray(L, dtype=np.float64)
    if lip.shape != (n_samples,):
        raise InvalidParameterError(f"L must have one entry per sample, shape ({n_samples},), got {lip.shape}")
    if not np.all(np.isfinite(lip)) or np.any(lip < 0.0):
        raise InvalidParameterError("L (per-sample Lipschitz constants L_s) must be finite and >= 0")
    return lip


def _positive(name: str, value: float) -> float:
    value = float(value)
    if not np.isfinite(value) or value <= 0.0:
        raise InvalidParameterError(f"{name} must be finite and > 0, got {value!r}")
    return value


def _count(name: str, value) -> int:
    if isinstance(value, bool) or int(value) != value or value < 1:
        raise InvalidParameterError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _probability(name: str, value: float) -> float:
    value = float(value)
    if not (0.0 < value < 1.0):
        raise InvalidParameterError(f"{name} must lie in the open interval (0, 1), got {value!r}")
    return value


def _removed_part(R, n_cols: int) -> np.ndarray:
    r = np.asarray(R, dtype=np.float64)
    if r.ndim != 2 or r.shape[1] != n_cols:
        raise InvalidMatrixError(f"R must be an n x {n_cols} matrix (columns = length of v_s), got shape {r.shape}")
    if not np.all(np.isfinite(r)):
        raise InvalidMatrixError("R contains NaN or Inf")
    return r


# -- realised budget ----------------------------------------------------------------------------
def sample_sup_norms(R, V) -> np.ndarray:
    """``||R v_s||_inf`` for every sample (exact matrix–vector products ``R v_s``; never a norm product)."""
    v = _data_path(V)
    r = _removed_part(R, v.shape[1])
    return np.max(np.abs(r @ v.T), axis=0)


def realised_budget(R, V, L) -> float:
    """The data-path budget ``B_T(R) = (2/|T|) sum_s L_s ||R v_s||_inf`` (THEORY 1.4)."""
    v = _data_path(V)
    lip = _lipschitz(L, v.shape[0])
    return float(2.0 / v.shape[0] * np.sum(lip * sample_sup_norms(R, v)))


def good_event_holds(R, V, result: BudgetBound) -> bool:
    """Whether ``E = {||R v_s||_inf <= t_s for all s}`` holds for this ``R`` (on ``E`` the bound is implied)."""
    return bool(np.all(sample_sup_norms(R, V) <= result.thresholds))


# -- single-layer bounds ----------------------------------------------------------------------------
def _budget_bound(v: np.ndarray, lip: np.ndarray, k: float, delta: float, method: str, summary: dict) -> BudgetBound:
    """Thresholds ``t_s = ||v_s||_2 k`` and the bound ``(2/|T|) sum_s L_s t_s``."""
    norms = np.linalg.norm(v, axis=1)
    thresholds = norms * k
    thresholds.setflags(write=False)
    value = float(2.0 / v.shape[0] * np.sum(lip * thresholds))
    summary = dict(summary, n_samples=int(v.shape[0]), n_cols=int(v.shape[1]),
                   weighted_norm_sum=float(np.sum(lip * norms)))
    bound = Bound(value, ESTIMATE, method, options=dict(summary, delta=delta), confidence=1.0 - delta)
    return BudgetBound(bound=bound, thresholds=thresholds, delta=delta, summary=summary)


def _union_log(n_rows: int, n_samples: int, delta: float) -> float:
    """``log(2 n |T| / delta)``: the union bound over ``n |T|`` two-sided tails."""
    return math.log(2.0 * n_rows * n_samples / delta)


def gaussian_budget_bound(V, L, g: float, n_rows: int, delta: float) -> BudgetBound:
    """Corollary 5.10: for ``R`` with iid ``N(0, g/n)`` entries (``n = n_rows``), independent of ``V, L``,
    with probability ``>= 1 - delta``

        B_T(R) <= (2/|T|) sum_s L_s ||v_s||_2 sqrt(2 g / n * log(2 n |T| / delta)).
    """
    v = _data_path(V)
    lip = _lipschitz(L, v.shape[0])
    g = _positive("g", g)
    n = _count("n_rows", n_rows)
    delta = _probability("delta", delta)
    k = math.sqrt(2.0 * g / n * _union_log(n, v.shape[0], delta))
    return _budget_bound(v, lip, k, delta, "corollary-5.10", {"g": g, "n_rows": n})


def gaussian_budget_bound_from_variance(V, L, entry_variance: float, n_rows: int, delta: float) -> BudgetBound:
    """Corollary 5.10, general-variance form [derived]: entries ``N(0, s_R^2)`` with ``s_R^2 = entry_variance``;
    ``sqrt(2 g / n)`` becomes ``s_R sqrt(2)``, i.e. Corollary 5.10 with ``g = s_R^2 n``."""
    s2 = _positive("entry_variance", entry_variance)
    return gaussian_budget_bound(V, L, s2 * _count("n_rows", n_rows), n_rows, delta)


def mp_edge_budget_bound(V, L, sigma_plus: float, n_rows: int, n_cols: int, delta: float) -> BudgetBound:
    """Corollary 5.11: Corollary 5.10 written with the nominal MP edge ``sigma_+ = sqrt(g)(1 + sqrt(m/n))``:

        B_T(R) <= 2 sigma_+ / (1 + sqrt(m/n)) * sqrt(2/n log(2 n |T| / delta)) * (1/|T|) sum_s L_s ||v_s||_2.

    ``sigma_plus`` must be the nominal edge of the true ``g``; a fitted or empirical edge is a heuristic
    (THEORY pitfall 12).  ``n_cols`` must equal the length ``m`` of the ``v_s``.
    """
    v = _data_path(V)
    lip = _lipschitz(L, v.shape[0])
    sigma_plus = _positive("sigma_plus", sigma_plus)
    n = _count("n_rows", n_rows)
    m = _count("n_cols", n_cols)
    if m != v.shape[1]:
        raise InvalidParameterError(f"n_cols = {m} must equal the length of the data-path vectors, {v.shape[1]}")
    delta = _probability("delta", delta)
    k = sigma_plus / (1.0 + math.sqrt(m / n)) * math.sqrt(2.0 / n * _union_log(n, v.shape[0], delta))
    return _budget_bound(v, lip, k, delta, "corollary-5.11", {"sigma_plus": sigma_plus, "n_rows": n})


def subgaussian_budget_bound(V, L, g: float, c: float, n_rows: int, delta: float) -> BudgetBound:
    """OR1 Corollary 1.4: rows independent, centred, with ``P(|<r_i, v>| > t) <= 2 exp(-c n t^2 / (g ||v||_2^2))``;
    with probability ``>= 1 - delta``

        B_T(R) <= (2/|T|) sum_s L_s ||v_s||_2 sqrt(g / (c n) * log(2 n |T| / delta)).

    Gaussian ``N(0, g/n)`` and Rademacher ``+-sqrt(g/n)`` entries have ``c = 1/2``; uniform entries on
    ``[-sqrt(3g/n), sqrt(3g/n)]`` have ``c = 1/6``.
    """
    v = _data_path(V)
    lip = _lipschitz(L, v.shape[0])
    g = _positive("g", g)
    c = _positive("c", c)
    n = _count("n_rows", n_rows)
    delta = _probability("delta", delta)
    k = math.sqrt(g / (c * n) * _union_log(n, v.shape[0], delta))
    return _budget_bound(v, lip, k, delta, "or1-corollary-1.4", {"g": g, "c": c, "n_rows": n})


# -- multi-layer bounds -------------------------------------------------------------------------------
def _require_steps(steps: list) -> None:
    if not steps:
        raise InvalidParameterError("steps must contain at least one pruning step")


def _split_deltas(deltas: Sequence[float], n_steps: int, delta: float | None) -> tuple[tuple[float, ...], float]:
    ds = tuple(_probability(f"deltas[{j}]", d) for j, d in enumerate(deltas))
    if len(ds) != n_steps:
        raise InvalidParameterError(f"deltas must have one entry per step ({n_steps}), got {len(ds)}")
    total = math.fsum(ds)
    if delta is None:
        delta = total
    delta = _probability("delta", delta)
    if total > delta:
        raise InvalidParameterError(f"sum of deltas ({total!r}) must be <= delta ({delta!r})")
    return ds, delta


def _joint(steps: tuple[BudgetBound, ...], ds: tuple[float, ...], delta: float, method: str) -> MultiLayerBudgetBounds:
    total_value = math.fsum(step.value for step in steps)
    total = Bound(total_value, ESTIMATE, method, options={"deltas": ds, "delta": delta}, confidence=1.0 - delta)
    return MultiLayerBudgetBounds(steps=steps, total=total, deltas=ds, delta=delta)


def multilayer_gaussian_budget_bounds(
    steps: Sequence[GaussianStep | tuple], deltas: Sequence[float], delta: float | None = None
) -> MultiLayerBudgetBounds:
    """OR1 Corollary 1.5: step ``j`` removes ``R_j`` (entries ``N(0, g_j/n_j)``, drawn independently of
    ``V_j, L_j``) with failure probability ``delta_j``; with ``sum_j delta_j <= delta`` all bounds

        B_j(R_j) <= (2/|T|) sum_s L_{j,s} ||v_{j,s}||_2 sqrt(2 g_j / n_j log(2 n_j |T| / delta_j))

    hold simultaneously with probability ``>= 1 - delta`` (``delta`` defaults to ``sum_j delta_j``).
    A step is a :class:`GaussianStep` or a tuple ``(V_j, L_j, g_j, n_j)``.
    """
    parsed = [s if isinstance(s, GaussianStep) else GaussianStep(*s) for s in steps]
    _require_steps(parsed)
    ds, delta = _split_deltas(deltas, len(parsed), delta)
    per_step = tuple(gaussian_budget_bound(s.V, s.L, s.g, s.n_rows, d) for s, d in zip(parsed, ds))
    return _joint(per_step, ds, delta, "or1-corollary-1.5")


def multilayer_subgaussian_budget_bounds(
    steps: Sequence[SubGaussianStep | tuple], deltas: Sequence[float], delta: float | None = None
) -> MultiLayerBudgetBounds:
    """OR1 Corollary 1.6: OR1 Corollary 1.5 with the sub-Gaussian row tail of OR1 Corollary 1.4 at each step:
    ``B_j(R_j) <= (2/|T|) sum_s L_{j,s} ||v_{j,s}||_2 sqrt(g_j / (c_j n_j) log(2 n_j |T| / delta_j))`` for all ``j``
    with probability ``>= 1 - delta``.  A step is a :class:`SubGaussianStep` or a tuple ``(V_j, L_j, g_j, c_j, n_j)``.
    """
    parsed = [s if isinstance(s, SubGaussianStep) else SubGaussianStep(*s) for s in steps]
    _require_steps(parsed)
    ds, delta = _split_deltas(deltas, len(parsed), delta)
    per_step = tuple(subgaussian_budget_bound(s.V, s.L, s.g, s.c, s.n_rows, d) for s, d in zip(parsed, ds))
    return _joint(per_step, ds, delta, "or1-corollary-1.6")
