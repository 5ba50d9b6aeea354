"""Sound path bounds by interval forward mode over sub-intervals of ``theta`` (THEORY.md 3.1, 3.7).

For one sample the path output is ``z(theta) = psi_2(u_0 + theta d)``, ``theta in [0, 1]``.  An
*evaluator* maps a batch of ``(sample, [a, b])`` pairs to a :class:`certs.intervals.dual.Dual` whose
value encloses ``z(theta)`` and whose tangent encloses ``z'(theta)`` for every ``theta in [a, b]``.
On a cover of ``[0, 1]`` by sub-intervals ``I_j``:

* ``slope_j = max_k |T_k(I_j)|`` bounds ``sup_{theta in I_j} ||z'(theta)||_inf``, so
  ``D_s = max_j slope_j >= sup_theta ||z'(theta)||_inf`` and, with ``d = R psi_1(s)``,
  ``L_s = D_s / ||d||_inf`` is a valid Lipschitz constant of ``psi_2`` on the segment
  (THEORY.md 3.5: every difference of two segment points is a multiple of ``d``, and
  ``||z(t_1) - z(t_0)||_inf <= |t_1 - t_0| sup ||z'||_inf``).  Valid for Lemma 5.1 and Corollary 5.2.
* ``change_j = max_k max(hi_k(I_j) - lo_k(1), hi_k(1) - lo_k(I_j))`` bounds
  ``sup_{theta in I_j} ||z(theta) - z(1)||_inf`` directly (the logit path bound of THEORY.md 3.7 without
  the Lipschitz step; it is often much tighter for Corollary 5.2).
* a rigorous *lower* bound of ``sup ||z'||_inf`` comes from point evaluations ``[m, m]`` (the ends ``0``, ``1``
  and the midpoints of the pieces): the true ``z'(m)_k`` lies in ``T_k``, so ``|z'(m)_k| >= mig(T_k)``.  The
  same point evaluations give
  ``point_s = max_m max_k mag(T_k(m))``: a point enclosure's width is rounding error only, so no
  sub-interval bound can be expected below it; and ``reference_s = max(lower_s, max_m max_k |centre T_k(m)|)``,
  the float64 value of ``||z'(m)||_inf`` (not a bound: it only steers the work below).

Adaptive refinement: in each round, every sub-interval with ``slope_j > (1 + rtol) point_s`` is halved
(at most ``max_subintervals`` per sample, largest slopes first); the children evaluate their midpoints
too.  Midpoints are evaluated lazily: those of the start pieces only for the samples that need work under the
ends' statistics alone (a loose sample, or a piece above ``(1 + rtol) point_s``), those of children only for the
samples that still need work under the points so far: more points can only raise ``point_s`` and
``reference_s``, so for the other samples they could not change a decision (the same cover and bounds, one
evaluation per piece less; ``derivative_lower`` then rests on fewer points).  A child keeps
``min(child bound, parent bound)`` (the parent's bound is valid on the child), so the per-sample bounds never
increase.  Work is batched over samples and sub-intervals.  Whatever steers
the work, every returned bound is an enclosure bound; the heuristics only decide where to spend time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Union

import numpy as np
import torch

from certs.budget import PerSampleLipschitz
from certs.errors import CertificateInputError
from rmt.bounds import SOUND

from .taylor import TaylorDual, TaylorForm
from .dual import Dual
from .interval import EPS, Interval, IntervalDomainError

__all__ = ["PathEvaluator", "SegmentBounds", "path_start", "segment_bounds"]

#: ``evaluate(owner, theta_lo, theta_hi)`` -> a :class:`Dual` or :class:`TaylorDual` of the outputs, shape
#: ``(P, K)`` (anything with ``enclosures() -> (value Interval, tangent Interval)``); ``owner`` are sample indices.
PathEvaluator = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], Union[Dual, TaylorDual]]

_FLOOR = 1e-200


@dataclass(frozen=True, eq=False)
class SegmentBounds:
    """Final sub-intervals of every sample with their sound bounds (see the module docstring).

    owner, theta_lo, theta_hi, slope, change: one entry per final sub-interval.
    derivative: ``(B,)`` sound upper bound of ``sup_theta ||z'(theta)||_inf``.
    derivative_lower: ``(B,)`` rigorous lower bound of the same supremum (from point evaluations).
    subintervals: the resolution of the cover before refinement, ``1 / narrowest piece`` (``K`` times a power of 2
    where loose pieces were split, see :func:`segment_bounds`).
    evaluations: number of (sample, sub-interval or point) evaluations done; rounds: refinement rounds run.
    ends_lo, ends_hi: ``(2, B, K)`` point enclosures of the exact ``z(0)`` (row 0) and ``z(1)`` (row 1).
    """

    owner: np.ndarray
    theta_lo: np.ndarray
    theta_hi: np.ndarray
    slope: np.ndarray
    change: np.ndarray
    tangent_lo: np.ndarray
    tangent_hi: np.ndarray
    derivative: np.ndarray
    derivative_lower: np.ndarray
    subintervals: int
    evaluations: int
    rounds: int
    ends_lo: np.ndarray
    ends_hi: np.ndarray

    def rounding(self, computed: np.ndarray, theta: int) -> np.ndarray:
        """``max_k max(z^_k - lo_k, hi_k - z^_k)`` rounded up, per sample: bounds ``||z^ - z(theta)||_inf`` for computed
        logits ``z^`` (any float evaluation, ``(B, K)``) against the exact ``z(theta)`` enclosed at ``theta`` in
        {0, 1}."""
        if theta not in (0, 1):
            raise CertificateInputError(f"theta: the ends are 0 and 1, got {theta!r}")
        z = np.asarray(computed, dtype=np.float64)
        if z.shape != self.ends_lo.shape[1:]:
            raise CertificateInputError(f"computed logits: expected shape {self.ends_lo.shape[1:]}, got {z.shape}")
        gap = np.maximum(z - self.ends_lo[theta], self.ends_hi[theta] - z).max(axis=1)
        return np.nextafter(np.maximum(gap, 0.0), np.inf)

    def logit_change(self, theta0: float = 0.0) -> np.ndarray:
        """Sound bound of ``sup_{theta in [theta0, 1]} ||z(theta) - z(1)||_inf`` per sample."""
        if not 0.0 <= theta0 <= 1.0:
            raise CertificateInputError(f"theta0: must lie in [0, 1], got {theta0!r}")
        use = self.theta_hi >= theta0
        bound = np.minimum(self.change, self._integrated_change(theta0))
        out = np.zeros(self.derivative.shape[0])
        np.maximum.at(out, self.owner[use], bound[use])
        return out

    def _integrated_change(self, theta0: float) -> np.ndarray:
        """Per sub-interval ``I_j = [a_j, b_j]``: bound of
        ``sup_{theta in I_j, theta >= theta0} ||z(theta) - z(1)||_inf``
        from ``z(1) - z(theta) = int_theta^1 z' in [0, b_j - max(a_j, theta0)] T_j + sum_{i: a_i >= b_j} |I_i| T_i``
        (componentwise; sums rounded outward with the margin ``(P + 4) eps sum |terms|``)."""
        order = np.lexsort((-self.theta_lo, self.owner))  # per sample, right to left
        owner, a, b = self.owner[order], self.theta_lo[order], self.theta_hi[order]
        width = (b - a)[:, None]
        lo_terms, hi_terms = width * self.tangent_lo[order], width * self.tangent_hi[order]
        margin = (order.size + 4) * EPS
        first = np.r_[True, owner[1:] != owner[:-1]]
        out = np.empty(order.size)
        group = np.cumsum(first) - 1
        for g in np.unique(group):
            rows = np.flatnonzero(group == g)
            after_lo = np.cumsum(lo_terms[rows], axis=0) - lo_terms[rows]  # strictly later sub-intervals
            after_hi = np.cumsum(hi_terms[rows], axis=0) - hi_terms[rows]
            scale = np.cumsum(np.abs(lo_terms[rows]) + np.abs(hi_terms[rows]), axis=0)
            part = np.clip(b[rows] - np.maximum(a[rows], theta0), 0.0, None)[:, None]
            own_lo = np.minimum(0.0, part * self.tangent_lo[order][rows])
            own_hi = np.maximum(0.0, part * self.tangent_hi[order][rows])
            lo = after_lo + own_lo - margin * (scale + np.abs(own_lo))
            hi = after_hi + own_hi + margin * (scale + np.abs(own_hi))
            out[rows] = np.nextafter(np.maximum(np.abs(lo), np.abs(hi)).max(axis=1), np.inf)
        result = np.empty_like(out)
        result[order] = out
        return result

    def lipschitz(self, products: np.ndarray, method: str) -> PerSampleLipschitz:
        """``L_s = D_s / ||R psi_1(s)||_inf`` rounded up (``0`` where the product is 0), labelled sound."""
        p = np.asarray(products, dtype=np.float64)
        if p.shape != self.derivative.shape:
            raise CertificateInputError(f"products: expected shape {self.derivative.shape}, got {p.shape}")
        safe = np.where(p > 0, p, 1.0)
        values = np.where(p > 0, np.nextafter(self.derivative / safe, np.inf), 0.0)
        return PerSampleLipschitz(values, SOUND, method)


def path_start(base: Interval, step: Interval, theta_lo: torch.Tensor, theta_hi: torch.Tensor,
               bias: torch.Tensor | None, order: int = 2):
    """The path point ``base + theta step + bias`` for ``theta in [theta_lo, theta_hi]``, tangent ``step``.

    ``base``/``step``: enclosures of ``S psi_1`` and ``R psi_1`` (``theta_lo``/``theta_hi`` broadcast
    against them).  ``order >= 1``: a :class:`TaylorDual` of that order with ``theta = theta_c + h eps``;
    ``order = 0``: a plain-interval :class:`Dual`.
    """
    if isinstance(order, bool) or not isinstance(order, int) or order < 0:
        raise CertificateInputError(f"order: must be an integer >= 0, got {order!r}")
    if order == 0:
        u = base + step * Interval(theta_lo, theta_hi)
        return Dual(u if bias is None else u + bias, step)
    bc, br = base.centre_radius()
    sc, sr = step.centre_radius()
    tc = 0.5 * (theta_lo + theta_hi)
    th = Interval(theta_lo, theta_hi).radius_about(tc)  # 0 at a point (no subnormal coefficients there)
    zero = torch.zeros_like(tc)
    theta = TaylorForm((tc, th) + (zero,) * (order - 1), zero)
    step_form = TaylorForm((sc,) + (torch.zeros_like(sc),) * order, sr)
    u = TaylorForm((bc,) + (torch.zeros_like(bc),) * order, br) + step_form * theta
    return TaylorDual(u if bias is None else u + bias, step_form)


def _run(evaluate: PathEvaluator, owner, lo, hi, batch: int, device) -> tuple[Interval, Interval]:
    values, tangents = [], []
    for start in range(0, len(owner), batch):
        part = slice(start, start + batch)
        out = evaluate(
            torch.as_tensor(owner[part], dtype=torch.long, device=device),
            torch.as_tensor(lo[part], dtype=torch.float64, device=device),
            torch.as_tensor(hi[part], dtype=torch.float64, device=device),
        )
        value, tangent = out.enclosures()
        values.append(value.unbounded_where_nan())
        tangents.append(tangent.unbounded_where_nan())
    cat = lambda parts: Interval(torch.cat([p.lo for p in parts]).cpu(), torch.cat([p.hi for p in parts]).cpu())
    return cat(values), cat(tangents)


def _piece_bounds(value: Interval, tangent: Interval, owner: np.ndarray,
                  end: Interval) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    slope = tangent.mag().amax(-1).numpy()
    idx = torch.as_tensor(owner, dtype=torch.long)
    gap = torch.maximum(value.hi - end.lo[idx], end.hi[idx] - value.lo)
    change = np.nextafter(gap.amax(-1).numpy(), np.inf)
    return slope, np.maximum(change, 0.0), tangent.lo.numpy(), tangent.hi.numpy()


def _scatter_max(values: np.ndarray, owner: np.ndarray, n: int) -> np.ndarray:
    out = np.zeros(n)
    np.maximum.at(out, owner, values)
    return out


def _gap(upper: np.ndarray, lower: np.ndarray) -> np.ndarray:
    """``upper / lower`` per sample (1 where the upper bound is negligible; ``inf`` where it overflowed)."""
    with np.errstate(over="ignore", invalid="ignore"):
        ratio = np.where(upper > _FLOOR, upper / np.maximum(lower, _FLOOR), 1.0)
        return np.nan_to_num(ratio, nan=np.inf, posinf=np.inf)


@dataclass(frozen=True)
class _Points:
    """Per-sample statistics of the midpoint evaluations (module docstring): ``lower`` (rigorous),
    ``upper`` (``point_s``) and ``reference`` (``reference_s``)."""

    lower: np.ndarray
    upper: np.ndarray
    reference: np.ndarray

    @staticmethod
    def of(tangent: Interval, owner: np.ndarray, n: int) -> "_Points":
        lower = _scatter_max(tangent.mig().amax(-1).numpy(), owner, n)
        centre = tangent.centre_radius()[0].abs().amax(-1).numpy()
        # an unbounded enclosure has no value
        centre = _scatter_max(np.where(np.isfinite(centre), centre, 0.0), owner, n)
        return _Points(lower, _scatter_max(tangent.mag().amax(-1).numpy(), owner, n), np.maximum(lower, centre))

    def merge(self, other: "_Points") -> "_Points":
        return _Points(*(np.maximum(a, b) for a, b in ((self.lower, other.lower), (self.upper, other.upper),
                                                        (self.reference, other.reference))))


def _needs_work(slope: np.ndarray, owner: np.ndarray, points: "_Points", n: int, give_up: float | None,
                refine: int, rtol: float) -> np.ndarray:
    """Per sample: is it loose (``give_up``) or has it a piece that the refinement would halve, under ``points``?"""
    need = np.zeros(n, dtype=bool)
    if give_up is not None:
        need |= ~(_gap(_scatter_max(slope, owner, n), points.reference) <= give_up)
    if refine:
        need[owner[slope > (1.0 + rtol) * points.upper[owner] + _FLOOR]] = True
    return need


#: ``needs(slope, owner, points)`` -> per sample: does it need work (:func:`_needs_work` with the run's options)?
NeedsWork = Callable[[np.ndarray, np.ndarray, "_Points"], np.ndarray]


def _uniform_pass(evaluate: PathEvaluator, n: int, k: int, end: Interval, ends: "_Points", batch: int, device,
                  needs: NeedsWork):
    """Bounds on the ``k`` uniform sub-intervals of each of the ``n`` samples, and the point statistics: the ends'
    (``ends``) with the midpoints of the samples that need work under the ends' alone (module docstring).

    Returns ``owner, lo, hi, slope, change, tangent_lo, tangent_hi`` per sub-interval, the :class:`_Points` and the
    number of midpoints evaluated."""
    edges = np.linspace(0.0, 1.0, k + 1)
    owner = np.repeat(np.arange(n), k)
    lo, hi = np.tile(edges[:-1], n), np.tile(edges[1:], n)
    value, tangent = _run(evaluate, owner, lo, hi, batch, device)
    slope, change, t_lo, t_hi = _piece_bounds(value, tangent, owner, end)
    rows = np.flatnonzero(needs(slope, owner, ends)[owner])
    points = ends
    if rows.size:
        mid = 0.5 * (lo[rows] + hi[rows])
        points = ends.merge(_Points.of(_run(evaluate, owner[rows], mid, mid, batch, device)[1], owner[rows], n))
    return owner, lo, hi, slope, change, t_lo, t_hi, points, rows.size


def _learned_start(first: SegmentBounds, n: int) -> int:
    """The uniform start that every sample of the probe run ``first`` split to everywhere: ``1 / (widest piece of
    any sample)``, rounded down (the coarser levels would only be evaluated to be split again)."""
    widest = np.zeros(n)
    np.maximum.at(widest, first.owner, first.theta_hi - first.theta_lo)
    return int(np.floor(1.0 / float(widest.max()) + 1e-9))


def _finest(lo: np.ndarray, hi: np.ndarray) -> int:
    """``1 / (narrowest piece width)``, rounded: the resolution of the cover."""
    return int(round(1.0 / float(np.min(hi - lo))))


def _split(pieces: tuple, points: "_Points", rows: np.ndarray, parts: int, evaluate: PathEvaluator, end: Interval,
           batch: int, device, n: int, needs: NeedsWork) -> tuple[tuple, "_Points", int]:
    """Replace the pieces ``rows`` by ``parts`` equal children each (shared float endpoints, so the cover stays
    exact); each child keeps ``min(child bound, parent bound)`` (the parent's bound is valid on it); the midpoints
    of the children of the samples that still need work (``needs``, under the points so far) join the point
    statistics (module docstring).  ``pieces = (owner, lo, hi, slope, change, tangent_lo, tangent_hi)``; returns
    the new pieces, points and the number of evaluations."""
    owner, lo, hi, slope, change, t_lo, t_hi = pieces
    a, b = lo[rows], hi[rows]
    edges = [a] + [a + (b - a) * (j / parts) for j in range(1, parts)] + [b]
    parent = np.tile(rows, parts)
    c_owner = owner[parent]
    c_lo, c_hi = np.concatenate(edges[:-1]), np.concatenate(edges[1:])
    value, tangent = _run(evaluate, c_owner, c_lo, c_hi, batch, device)
    c_slope, c_change, c_t_lo, c_t_hi = _piece_bounds(value, tangent, c_owner, end)
    keep = np.ones(owner.size, dtype=bool)
    keep[rows] = False
    pieces = (np.concatenate([owner[keep], c_owner]), np.concatenate([lo[keep], c_lo]),
              np.concatenate([hi[keep], c_hi]),
              np.concatenate([slope[keep], np.minimum(c_slope, slope[parent])]),
              np.concatenate([change[keep], np.minimum(c_change, change[parent])]),
              np.concatenate([t_lo[keep], np.maximum(c_t_lo, t_lo[parent])]),
              np.concatenate([t_hi[keep], np.minimum(c_t_hi, t_hi[parent])]))
    late = np.flatnonzero(needs(pieces[3], pieces[0], points)[c_owner])
    if late.size:
        mid = 0.5 * (c_lo[late] + c_hi[late])
        points = points.merge(_Points.of(_run(evaluate, c_owner[late], mid, mid, batch, device)[1], c_owner[late], n))
    return pieces, points, c_owner.size + late.size


def segment_bounds(
    evaluate: PathEvaluator, n_samples: int, *, subintervals: int = 8, refine: int = 0, rtol: float = 0.25,
    max_subintervals: int = 64, batch: int = 512, device: str | torch.device = "cpu", give_up: float | None = None,
    probe: int = 4,
) -> SegmentBounds:
    """Bounds of ``z`` and ``z'`` on ``[0, 1]`` for ``n_samples`` paths (module docstring).

    ``subintervals``: initial uniform count ``K`` (at most ``max_subintervals``); ``refine``: maximum refinement
    rounds (0 = none);
    ``rtol``: stop splitting a sub-interval once ``slope <= (1 + rtol) point_s``; ``max_subintervals``:
    per-sample cap; ``batch``: evaluator batch size; ``give_up``: the samples whose ``max slope / reference_s``
    exceeds it after the initial pass (a remainder that blew up: refinement by halving cannot close it)
    get each loose piece (``slope_j / reference_s > give_up``) split into 4 equal pieces (2 where 4 would
    exceed ``max_subintervals`` pieces for the sample), repeatedly, while the budget allows;
    :class:`IntervalDomainError` is raised — an error, never a number — when even the finest allowed cover stays
    above ``give_up``, or at once when already ``point_s / reference_s > give_up`` (rounding errors alone swamp the
    value: no finer cover can help).
    ``None``: no check, no splitting.  ``probe``: with ``give_up`` set and more than ``probe`` samples, the
    initial pass first runs on samples ``0..probe-1`` alone, and the first split of loose pieces on the
    first ``probe`` loose samples alone, so that an enclosure that is too loose fails after a few samples
    instead of all of them; the run then starts from the uniform cover that every probe sample split to
    everywhere (if finer than ``subintervals``).
    """
    for label, value, low in (("subintervals", subintervals, 1), ("refine", refine, 0),
                              ("max_subintervals", max_subintervals, 1), ("batch", batch, 1),
                              ("n_samples", n_samples, 1)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise CertificateInputError(f"{label}: must be an integer >= {low}, got {value!r}")
    if not np.isfinite(rtol) or rtol < 0:
        raise CertificateInputError(f"rtol: must be finite and >= 0, got {rtol!r}")
    n, k = int(n_samples), int(min(subintervals, max_subintervals))
    if give_up is not None and 0 < probe < n:
        first = segment_bounds(evaluate, probe, subintervals=subintervals, refine=0, max_subintervals=max_subintervals,
                               batch=batch, device=device, give_up=give_up, probe=0)
        k = max(k, _learned_start(first, probe))
    samples = np.arange(n)
    ones = np.ones(n)
    end, end_tangent = _run(evaluate, samples, ones, ones, batch, device)
    start, start_tangent = _run(evaluate, samples, np.zeros(n), np.zeros(n), batch, device)
    ends = _Points.of(end_tangent, samples, n).merge(_Points.of(start_tangent, samples, n))
    def needs(slope: np.ndarray, owner: np.ndarray, points: _Points) -> np.ndarray:
        return _needs_work(slope, owner, points, n, give_up, refine, rtol)

    owner, lo, hi, slope, change, t_lo, t_hi, points, midpoints = _uniform_pass(
        evaluate, n, k, end, ends, batch, device, needs)
    evaluations = 2 * n + owner.size + midpoints
    chunk = probe  # the first split of loose pieces runs on a few samples: a layer that cannot be enclosed fails early
    while give_up is not None:
        gap = _gap(_scatter_max(slope, owner, n), points.reference)
        bad = np.flatnonzero(~(gap <= give_up))
        if bad.size == 0:
            break
        hopeless = bad[~(_gap(points.upper[bad], points.reference[bad]) <= give_up)]
        loose = ~(_gap(slope, points.reference[owner]) <= give_up)
        count, n_loose = np.bincount(owner, minlength=n), np.bincount(owner[loose], minlength=n)
        if hopeless.size or np.any(count[bad] + n_loose[bad] > max_subintervals):
            if hopeless.size:
                worst = np.max(_gap(points.upper[hopeless], points.reference[hopeless]))
                why = (f"even point enclosures exceed the value {worst:.3g} times (rounding errors amplified through "
                       "the network: no finer cover can help)")
            else:
                why = f"max_subintervals={max_subintervals} allows no finer cover"
            raise IntervalDomainError(
                f"samples {bad[:5].tolist()}: derivative bound / float value up to {np.max(gap):.3g} > "
                f"give_up={give_up:g} with pieces down to 1/{_finest(lo, hi)} (the enclosure is too loose: remainders "
                f"grow through the network; {why})"
            )
        if 0 < chunk < bad.size:
            bad = bad[:chunk]
        chunk = 0
        # split every loose piece of the bad samples into 4 (a blown-up remainder shrinks as width^(n+1)), into 2
        # for the samples where 4 would exceed the budget
        quarter = bad[count[bad] + 3 * n_loose[bad] <= max_subintervals]
        rows4 = np.flatnonzero(loose & np.isin(owner, quarter))
        rows2 = np.flatnonzero(loose & np.isin(owner, np.setdiff1d(bad, quarter)))
        rows2 = np.searchsorted(np.setdiff1d(np.arange(owner.size), rows4), rows2)  # _split keeps the others first
        for parts, rows in ((4, rows4), (2, rows2)):
            if rows.size:
                (owner, lo, hi, slope, change, t_lo, t_hi), points, added = _split(
                    (owner, lo, hi, slope, change, t_lo, t_hi), points, rows, parts, evaluate, end, batch, device, n,
                    needs)
                evaluations += added
    finest = _finest(lo, hi)
    rounds = 0
    for _ in range(refine):
        count = np.bincount(owner, minlength=n)
        need = slope > (1.0 + rtol) * points.upper[owner] + _FLOOR
        order = np.lexsort((-slope, owner))
        rank = np.empty_like(order)
        rank[order] = np.arange(order.size) - np.searchsorted(owner[order], owner[order], side="left")
        need &= rank < (max_subintervals - count[owner])
        if not need.any():
            break
        rounds += 1
        (owner, lo, hi, slope, change, t_lo, t_hi), points, added = _split(
            (owner, lo, hi, slope, change, t_lo, t_hi), points, np.flatnonzero(need), 2, evaluate, end, batch, device,
            n, needs)
        evaluations += added
    derivative = _scatter_max(slope, owner, n)
    if not np.all(np.isfinite(derivative)):
        bad = np.flatnonzero(~np.isfinite(derivative))
        raise IntervalDomainError(
            f"samples {bad[:5].tolist()}: the interval enclosure overflowed on some sub-interval even after "
            "refinement; raise subintervals or max_subintervals"
        )
    return SegmentBounds(
        owner=owner, theta_lo=lo, theta_hi=hi, slope=slope, change=change, tangent_lo=t_lo, tangent_hi=t_hi,
        derivative=derivative, derivative_lower=points.lower,
        subintervals=finest, evaluations=int(evaluations), rounds=rounds,
        ends_lo=np.stack([start.lo.numpy(), end.lo.numpy()]), ends_hi=np.stack([start.hi.numpy(), end.hi.numpy()]),
    )
