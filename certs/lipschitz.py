"""Sound local Lipschitz constants ``L_s`` of a piecewise-linear ``psi_2`` (THEORY.md 3).

``L_s`` must bound the ℓ∞→ℓ∞ Lipschitz constant of ``psi_2`` on the segment
``P_s = {u_0 + theta d : theta in [0, 1]}`` with ``u_0 = S v_s`` (``start``) and ``d = R v_s``
(``direction``) (THEORY.md 1.4, 3.1).  ``psi_2`` is a :class:`certs.layer_view.PiecewiseLinearTail`:
affine ops ``x -> W x + b`` (the first adds the target bias, ``W = I``) and coordinatewise ReLU/abs.

Methods (THEORY.md 3.2–3.5), ordered ``L^G >= L^P >= L^S >= L^D >=`` every sampled ratio (3.6):

* ``G`` — ``prod ||W||_inf`` over the affine ops (induced max-row-sum norm); valid on all of R^n,
  independent of ``R`` and of the sample.
* ``P`` — box ``[min(u_0, u_0+d), max(u_0, u_0+d)]`` propagated by interval arithmetic
  (``lo' = W^+ lo + W^- hi + b``, ...); at each ReLU ``Delta_ii = 0`` iff ``hi_i <= 0`` (else 1, always 1
  for abs); ``L^P`` = max row sum of ``|W_L| Delta ... |W_1| Delta |I|``, evaluated as
  ``max(|W_L| Delta (... (|W_1| Delta 1)))`` because every factor is non-negative.
  :func:`lipschitz_on_box` is the same bound over an ``R``-independent box ``{u : ||u - c||_inf <= t}``
  (THEORY.md 3.6, admissible for the probabilistic budgets of Corollaries 5.10–5.11).
* ``S`` — exact enumeration of the linear pieces of ``theta -> psi_2(u_0 + theta d)``: pieces
  ``(t_0, t_1, a, b, J)`` with current vector ``a + theta b`` and Jacobian ``J``; affine ops map
  ``a <- W a + c, b <- W b, J <- W J``; activations split pieces at the roots ``-a_i / b_i`` inside
  ``(t_0, t_1)`` and apply the sign pattern ``D`` of the sub-piece midpoint.  ``L^S = max_k ||J_k||_inf``.
* ``D`` — ``L^D = max_k ||J_k d||_inf / ||d||_inf`` (``0`` when ``d = 0``), the exact local constant on the
  segment.  ``J_k d`` is the slope ``b`` of piece ``k``, so method D needs no Jacobian.
  When a sample has more than ``piece_cap`` pieces, methods S/D fall back to method P for it.

Rounding (THEORY.md 3.6).  Every returned value is labelled ``sound``:

* ``exact=True`` runs the whole computation in rational arithmetic (:class:`fractions.Fraction`; every
  float64 input is a rational) and rounds the exact result up to the next float64.  Meant for small
  networks (it is slow).
* ``exact=False`` (float64).  Let ``c = sum over affine ops of (fan-in + 1)`` plus the number of ops.
  G and P are products of non-negative matrices and vectors: each computed entry has relative error at
  most ``gamma_c <= c * eps`` (standard bound for sums of non-negative terms, eps = 2^-52), so the value
  is rounded up by :func:`rmt.bounds.round_up` with ``terms = c`` (relative margin ``max(1e-10, c eps)``).
  The interval box of P is widened after every affine op by ``(fan-in + 2) eps (|W| max(|lo|,|hi|) + |b|)``,
  so a ReLU is declared dead only when it provably is.  For S/D the computed ``J`` and ``b`` differ from
  the exact products of the same patterns by at most ``c eps |W_L| D ... |W_1|`` entrywise, i.e. by at most
  ``c eps L^P`` in the norms used, so ``c eps L^P`` is added before rounding up.  Float64 can mis-sign
  the pattern of a sub-piece narrower than ~1e-12 (THEORY.md 3.6), and then the true Jacobian on that
  sliver would be missing from the maximum.  Every pattern is therefore checked against the error bound
  ``c eps (|a| + theta |b|)`` of the pre-activation (magnitudes propagated with ``|W|``): a sample with a
  pre-activation that is within that bound of 0 at a piece midpoint, or at a piece end where another
  kink (or the segment end) lies, is *uncertain* and gets method P's value (``fell_back``).  This check
  is a first-order error analysis, not a machine-checked proof; ``exact=True`` is the reference.

``start`` and ``direction`` are taken as exact: the segment certified is the one through the given
float64 points.  The rounding of ``S v_s`` and ``R v_s`` themselves is the caller's to account for
(e.g. by :func:`lipschitz_on_box` on a box widened by that error).

:func:`empirical_ratio_max` gives the sampled lower end of the chain (label ``estimate``); its ratios
divide logit differences by ``|t_1 - t_0| ||d||_inf`` and so amplify float noise when ``||d||`` is tiny.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Literal, Mapping, Sequence

import numpy as np

from rmt.bounds import ESTIMATE, SOUND, Label, round_up

from .errors import CertificateInputError, UnsupportedLayerError
from .layer_view import ActivationOp, AffineOp, Op, PiecewiseLinearTail

__all__ = [
    "Method",
    "METHODS",
    "LipschitzResult",
    "SegmentPieces",
    "tail_ops",
    "lipschitz_constants",
    "lipschitz_on_box",
    "segment_pieces",
    "empirical_ratio_max",
]

Method = Literal["G", "P", "S", "D"]
METHODS: tuple[str, ...] = ("G", "P", "S", "D")
_EPS = np.finfo(np.float64).eps
_TINY = np.finfo(np.float64).smallest_subnormal
#: Memory budget (number of float64 entries) of the Jacobians of one chunk of samples in method S.
_JACOBIAN_BUDGET = 1 << 22


@dataclass(frozen=True, eq=False)
class LipschitzResult:
    """Per-sample Lipschitz constants of ``psi_2`` on the segments (or boxes) given.

    values: ``(B,)`` float64 bounds (outward rounded when ``label == 'sound'``).
    label: ``'sound'`` for methods G/P/S/D, ``'estimate'`` for :func:`empirical_ratio_max`.
    method: ``'G'``, ``'P'``, ``'S'``, ``'D'``, ``'P-box'`` or ``'empirical'``.
    options: the options used (``exact``, ``piece_cap``, rounding terms, ...).
    n_pieces: ``(B,)`` number of linear pieces on each segment for S/D (``-1`` where it fell back), else None.
    fell_back: ``(B,)`` bool, ``True`` where S/D hit ``piece_cap`` or (float64) could not certify an
    activation pattern (:class:`SegmentPieces`), and method P's value is returned instead.
    """

    values: np.ndarray
    label: Label
    method: str
    options: Mapping[str, Any] = field(default_factory=dict)
    n_pieces: np.ndarray | None = None
    fell_back: np.ndarray | None = None

    def __post_init__(self) -> None:
        values = np.asarray(self.values, dtype=np.float64)
        fell_back = np.zeros(values.shape, dtype=bool) if self.fell_back is None else np.asarray(self.fell_back)
        object.__setattr__(self, "values", values)
        object.__setattr__(self, "fell_back", fell_back)


# ---------------------------------------------------------------------- inputs


def tail_ops(tail) -> tuple[Op, ...]:
    """The op list of ``psi_2``: a :class:`PiecewiseLinearTail` or a sequence of ``AffineOp``/``ActivationOp``.

    Raises :class:`UnsupportedLayerError` naming the first op (or the callable) that has no rule here.
    """
    if isinstance(tail, PiecewiseLinearTail):
        return tail.ops
    if isinstance(tail, (list, tuple)):
        for i, op in enumerate(tail):
            if not isinstance(op, (AffineOp, ActivationOp)):
                raise UnsupportedLayerError(
                    f"psi_2 op {i} ({type(op).__name__}: {op!r}) has no Lipschitz rule; "
                    "only AffineOp and ActivationOp('relu'|'abs') are supported"
                )
        return PiecewiseLinearTail(tuple(tail)).ops
    raise UnsupportedLayerError(
        f"psi_2 of type {type(tail).__name__} is not a PiecewiseLinearTail; methods G/P/S/D need an op list"
    )


def _batch(name: str, array, width: int) -> np.ndarray:
    arr = np.asarray(array, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[1] != width or arr.shape[0] == 0:
        raise CertificateInputError(f"{name} must have shape (B, {width}) with B >= 1, got {np.shape(array)}")
    if not np.all(np.isfinite(arr)):
        raise CertificateInputError(f"{name} contains NaN or Inf")
    return arr


def _rounding_terms(ops: Sequence[Op]) -> int:
    """``c = sum (fan-in + 1)`` over affine ops plus the op count: relative error of the products is ``<= c eps``."""
    return sum(op.weight.shape[1] + 1 for op in ops if isinstance(op, AffineOp)) + len(ops)


# ---------------------------------------------------------------------- arithmetic (float64 or exact)


class _Arithmetic:
    """float64 arrays, or object arrays of :class:`Fraction` for exact rational arithmetic."""

    def __init__(self, exact: bool) -> None:
        self.exact = exact

    def array(self, x) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        if not self.exact:
            return x
        out = np.empty(x.shape, dtype=object)
        out.ravel()[:] = [Fraction(v) for v in x.ravel()]
        return out

    def zeros(self, shape) -> np.ndarray:
        return self.array(np.zeros(shape))

    def widen(self, lo, hi, err):
        """Outward-round the box ``[lo, hi]`` by the absolute error bound ``err`` (exact: nothing to do)."""
        if self.exact:
            return lo, hi
        return np.nextafter(lo - err, -np.inf), np.nextafter(hi + err, np.inf)

    def ceil_float(self, x) -> np.ndarray:
        """Smallest float64 array ``>=`` the value (exact), or ``x`` itself (float)."""
        if not self.exact:
            return np.asarray(x, dtype=np.float64)
        flat = []
        for v in np.asarray(x, dtype=object).ravel():
            f = float(v)
            flat.append(np.nextafter(f, np.inf) if Fraction(f) < v else f)
        return np.asarray(flat, dtype=np.float64).reshape(np.shape(x))


def _affine_error(op: AffineOp, magnitude: np.ndarray) -> np.ndarray:
    """Bound on the float error of ``W x + b`` when ``|x| <= magnitude``: ``(fan-in + 2) eps (|W| m + |b|) + tiny``."""
    fan_in = op.weight.shape[1]
    return (fan_in + 2) * _EPS * (magnitude @ np.abs(op.weight).T + np.abs(op.bias)) + (fan_in + 2) * _TINY


def _pattern_box_bound(ops: Sequence[Op], lo, hi, arith: _Arithmetic):
    """Method P on the boxes ``[lo_b, hi_b]`` (THEORY.md 3.3): returns ``max(|W_L| Delta ... |W_1| Delta 1)``
    per row."""
    ones = arith.array(np.ones(lo.shape))
    x = ones
    for op in ops:
        if isinstance(op, AffineOp):
            W, b = arith.array(op.weight), arith.array(op.bias)
            Wp, Wn = np.maximum(W, 0), np.minimum(W, 0)
            magnitude = np.maximum(np.abs(lo), np.abs(hi))
            lo, hi = lo @ Wp.T + hi @ Wn.T + b, hi @ Wp.T + lo @ Wn.T + b
            if not arith.exact:
                lo, hi = arith.widen(lo, hi, _affine_error(op, magnitude))
            x = x @ np.abs(W).T
        elif op.kind == "relu":
            x = x * (hi > 0)
            lo, hi = np.maximum(lo, 0), np.maximum(hi, 0)
        else:
            straddles = (lo <= 0) & (hi >= 0)
            big = np.maximum(np.abs(lo), np.abs(hi))
            lo, hi = np.where(straddles, 0, np.minimum(np.abs(lo), np.abs(hi))), big
    return x.max(axis=1)


def _segment_box(start, direction, arith: _Arithmetic):
    u0, d = arith.array(start), arith.array(direction)
    end = u0 + d
    lo, hi = np.minimum(u0, end), np.maximum(u0, end)
    return arith.widen(lo, hi, _EPS * np.abs(end) + _TINY)


# ---------------------------------------------------------------------- piece enumeration (methods S and D)


@dataclass(frozen=True, eq=False)
class SegmentPieces:
    """Linear pieces of ``theta -> psi_2(u_0 + theta d)`` for a batch of segments (THEORY.md 3.4).

    owner: ``(P,)`` sample index of each piece; t0, t1: ``(P,)`` its ``theta`` interval;
    slope: ``(P, K)`` ``J_k d``; jacobian: ``(P, K, n)`` ``J_k`` or None.
    over_cap: ``(B,)`` samples whose piece count exceeded the cap (their pieces are dropped).
    uncertain: ``(B,)`` samples (float64 only) where some activation pattern could not be certified:
    a pre-activation within its rounding-error bound of 0 at a piece midpoint, or near-zero at a piece
    end that is a kink of an earlier op or a segment end, or two near-zero coordinates at one end (then
    a sliver with an unseen pattern may exist); their pieces are dropped too.
    Arrays hold float64, or :class:`Fraction` objects when ``exact``.
    """

    owner: np.ndarray
    t0: np.ndarray
    t1: np.ndarray
    slope: np.ndarray
    jacobian: np.ndarray | None
    over_cap: np.ndarray
    uncertain: np.ndarray

    @property
    def dropped(self) -> np.ndarray:
        return self.over_cap | self.uncertain


def _split_at_kinks(a, b, t0, t1):
    """Sub-pieces of each piece at the roots ``-a_i/b_i`` strictly inside ``(t0, t1)``.

    Returns the parent index of each sub-piece, its bounds, and whether each bound is inherited
    from the parent piece (rather than a root of this op).
    """
    safe_b = np.where(b != 0, b, 1)
    with np.errstate(over="ignore"):  # a root beyond float range lies outside (t0, t1) anyway
        roots = -a / safe_b
    inside = (b != 0) & (roots > t0[:, None]) & (roots < t1[:, None])
    roots = np.where(inside, roots, np.inf)
    roots.sort(axis=1)
    if roots.shape[1] > 1:  # drop exact duplicates, so no zero-width sub-piece is created
        dup = np.zeros(roots.shape, dtype=bool)
        dup[:, 1:] = (roots[:, 1:] == roots[:, :-1]) & (roots[:, 1:] < np.inf)
        roots = np.where(dup, np.inf, roots)
        roots.sort(axis=1)
    counts = (roots < np.inf).sum(axis=1)
    cuts = np.concatenate([t0[:, None], roots, np.full((len(t0), 1), np.inf, dtype=roots.dtype)], axis=1)
    cuts[np.arange(len(t0)), counts + 1] = t1
    lefts, rights = cuts[:, :-1], cuts[:, 1:]
    keep = np.arange(lefts.shape[1])[None, :] <= counts[:, None]
    parent, column = np.nonzero(keep)
    return parent, lefts[keep], rights[keep], column == 0, column == counts[parent]


def _uncertain_pieces(a, b, a_mag, b_mag, t0, t1, left_inherited, right_inherited, terms: int) -> np.ndarray:
    """Float64 pieces whose activation pattern is not certified (see :class:`SegmentPieces`).

    ``x(t) = a + t b`` is known to within ``err(t) = terms eps (|a|_mag + t |b|_mag)``, where the
    magnitudes are the same products with ``|W|``, ``|c|`` (the error of non-negative-term sums).
    """
    def near_zero(t):
        err = terms * _EPS * (a_mag + t[:, None] * b_mag)
        return (np.abs(a + t[:, None] * b) <= err) & (err > 0)

    at_left, at_right = near_zero(t0).sum(axis=1), near_zero(t1).sum(axis=1)
    return (
        near_zero((t0 + t1) / 2).any(axis=1)
        | (at_left >= 2) | (at_right >= 2)
        | ((at_left >= 1) & left_inherited) | ((at_right >= 1) & right_inherited)
    )


def _enumerate(ops, start, direction, arith: _Arithmetic, with_jacobian: bool, piece_cap: int | None) -> SegmentPieces:
    B, n = start.shape
    owner = np.arange(B)
    t0, t1 = arith.array(np.zeros(B)), arith.array(np.ones(B))
    a, b = arith.array(start), arith.array(direction)
    a_mag, b_mag = np.abs(np.asarray(start, dtype=np.float64)), np.abs(np.asarray(direction, dtype=np.float64))
    J = np.broadcast_to(arith.array(np.eye(n)), (B, n, n)).copy() if with_jacobian else None
    terms = _rounding_terms(ops)
    over_cap = np.zeros(B, dtype=bool)
    uncertain = np.zeros(B, dtype=bool)
    for op in ops:
        if isinstance(op, AffineOp):
            W = arith.array(op.weight)
            a, b = a @ W.T + arith.array(op.bias), b @ W.T
            if not arith.exact:
                abs_w = np.abs(op.weight)
                a_mag, b_mag = a_mag @ abs_w.T + np.abs(op.bias), b_mag @ abs_w.T
            if J is not None:
                J = np.matmul(W, J)
            continue
        parent, t0, t1, left_inherited, right_inherited = _split_at_kinks(a, b, t0, t1)
        a, b, owner = a[parent], b[parent], owner[parent]
        mid = a + ((t0 + t1) / 2)[:, None] * b
        pattern = (mid > 0).astype(np.int64)
        if op.kind == "abs":
            pattern = pattern - (mid < 0).astype(np.int64)
        drop = np.zeros(B, dtype=bool)
        if not arith.exact:
            a_mag, b_mag = a_mag[parent], b_mag[parent]
            bad = _uncertain_pieces(a, b, a_mag, b_mag, t0, t1, left_inherited, right_inherited, terms)
            drop |= np.bincount(owner[bad], minlength=B) > 0
            uncertain |= drop
            a_mag, b_mag = a_mag * np.abs(pattern), b_mag * np.abs(pattern)
        a, b = a * pattern, b * pattern
        if J is not None:
            J = J[parent] * pattern[:, :, None]
        if piece_cap is not None:
            over = (np.bincount(owner, minlength=B) > piece_cap) & ~drop
            over_cap |= over
            drop |= over
        if drop.any():
            live = ~drop[owner]
            owner, t0, t1, a, b = owner[live], t0[live], t1[live], a[live], b[live]
            if not arith.exact:
                a_mag, b_mag = a_mag[live], b_mag[live]
            J = None if J is None else J[live]
    return SegmentPieces(owner=owner, t0=t0, t1=t1, slope=b, jacobian=J, over_cap=over_cap, uncertain=uncertain)


def segment_pieces(tail, start, direction, *, exact: bool = False, with_jacobian: bool = True,
                   piece_cap: int | None = None) -> SegmentPieces:
    """The linear pieces of ``psi_2`` along each segment ``start_b + theta direction_b`` (THEORY.md 3.4)."""
    ops = tail_ops(tail)
    start = _batch("start", start, ops[0].weight.shape[1])
    direction = _batch("direction", direction, start.shape[1])
    if direction.shape[0] != start.shape[0]:
        raise CertificateInputError(f"start has {start.shape[0]} rows but direction has {direction.shape[0]}")
    return _enumerate(ops, start, direction, _Arithmetic(exact), with_jacobian, piece_cap)


def _max_per_owner(values, owner, B: int, arith: _Arithmetic) -> np.ndarray:
    out = arith.zeros(B)
    np.maximum.at(out, owner, values)
    return out


# ---------------------------------------------------------------------- public API


def _check_cap(piece_cap) -> int:
    if not isinstance(piece_cap, (int, np.integer)) or piece_cap < 1:
        raise CertificateInputError(f"piece_cap must be a positive integer, got {piece_cap!r}")
    return int(piece_cap)


def lipschitz_constants(tail, start, direction, method: Method, *, piece_cap: int = 1024,
                        exact: bool = False) -> LipschitzResult:
    """Sound ``L_s`` of ``psi_2 = tail`` on each segment ``{start_b + theta direction_b : theta in [0, 1]}``.

    ``start``: ``(B, n)`` rows ``S v_s``; ``direction``: ``(B, n)`` rows ``R v_s``; ``method`` in G/P/S/D
    (THEORY.md 3.2–3.5; see the module docstring for the rounding guarantees).
    """
    if method not in METHODS:
        raise CertificateInputError(f"method must be one of {METHODS}, got {method!r}")
    piece_cap = _check_cap(piece_cap)
    ops = tail_ops(tail)
    start = _batch("start", start, ops[0].weight.shape[1])
    direction = _batch("direction", direction, start.shape[1])
    if direction.shape[0] != start.shape[0]:
        raise CertificateInputError(f"start has {start.shape[0]} rows but direction has {direction.shape[0]}")
    arith = _Arithmetic(bool(exact))
    terms = _rounding_terms(ops)
    B = start.shape[0]
    options = {"exact": bool(exact), "rounding_terms": terms}

    if method == "G":
        product = arith.array(1.0)
        for op in ops:
            if isinstance(op, AffineOp):
                product = product * np.abs(arith.array(op.weight)).sum(axis=1).max()
        value = arith.ceil_float(product) if exact else round_up(float(product), terms=terms)
        return LipschitzResult(np.full(B, value), SOUND, "G", options)

    lo, hi = _segment_box(start, direction, arith)
    pattern_bound = _pattern_box_bound(ops, lo, hi, arith)
    p_values = arith.ceil_float(pattern_bound) if exact else round_up(pattern_bound, terms=terms)
    if method == "P":
        return LipschitzResult(np.atleast_1d(p_values), SOUND, "P", options)

    options["piece_cap"] = piece_cap
    width = max(op.weight.shape[0] for op in ops if isinstance(op, AffineOp))
    chunk = B if method == "D" else max(1, _JACOBIAN_BUDGET // (start.shape[1] * max(width, start.shape[1])))
    values = np.empty(B)
    n_pieces = np.empty(B, dtype=np.int64)
    fell_back = np.zeros(B, dtype=bool)
    for first in range(0, B, chunk):
        rows = slice(first, min(first + chunk, B))
        pieces = _enumerate(ops, arith.array(start[rows]), arith.array(direction[rows]), arith,
                            with_jacobian=(method == "S"), piece_cap=piece_cap)
        nb = rows.stop - rows.start
        if method == "S":
            per_piece = np.abs(pieces.jacobian).sum(axis=2).max(axis=1)
            exact_part = _max_per_owner(per_piece, pieces.owner, nb, arith)
        else:
            d_norm = np.abs(arith.array(direction[rows])).max(axis=1)
            per_piece = np.abs(pieces.slope).max(axis=1)
            slope_max = _max_per_owner(per_piece, pieces.owner, nb, arith)
            exact_part = np.where(d_norm > 0, slope_max / np.where(d_norm > 0, d_norm, 1), 0)
        if exact:
            chunk_values = arith.ceil_float(exact_part)
        else:
            chunk_values = round_up(exact_part + terms * _EPS * pattern_bound[rows], terms=terms)
        dropped = pieces.dropped
        if method == "D":  # d = 0: the segment is a point and L^D = 0, whatever the pieces
            point = ~np.any(direction[rows] != 0, axis=1)
            chunk_values, dropped = np.where(point, 0.0, chunk_values), dropped & ~point
        values[rows] = np.where(dropped, p_values[rows], chunk_values)
        n_pieces[rows] = np.where(pieces.dropped, -1, np.bincount(pieces.owner, minlength=nb))
        fell_back[rows] = dropped
    return LipschitzResult(values, SOUND, method, options, n_pieces=n_pieces, fell_back=fell_back)


def lipschitz_on_box(tail, center, radius, *, exact: bool = False) -> LipschitzResult:
    """Method P over the boxes ``{u : ||u - center_b||_inf <= radius_b}`` (THEORY.md 3.3, 3.6).

    ``radius``: scalar, ``(B,)`` or ``(B, n)`` (per coordinate), ``>= 0``.  Valid for every segment
    inside the box, so with ``radius = t_s`` chosen before ``R`` is drawn it is ``R``-independent.
    """
    ops = tail_ops(tail)
    center = _batch("center", center, ops[0].weight.shape[1])
    r = np.asarray(radius, dtype=np.float64)
    if r.ndim == 1:
        r = r[:, None]
    try:
        r = np.broadcast_to(r, center.shape)
    except ValueError:
        raise CertificateInputError(f"radius of shape {np.shape(radius)} does not fit center {center.shape}") from None
    if not np.all(np.isfinite(r)) or np.any(r < 0):
        raise CertificateInputError("radius must be finite and >= 0")
    arith = _Arithmetic(bool(exact))
    c, rr = arith.array(center), arith.array(r)
    lo, hi = c - rr, c + rr
    lo, hi = arith.widen(lo, hi, _EPS * np.maximum(np.abs(lo), np.abs(hi)) + _TINY)
    bound = _pattern_box_bound(ops, lo, hi, arith)
    terms = _rounding_terms(ops)
    values = arith.ceil_float(bound) if exact else round_up(bound, terms=terms)
    return LipschitzResult(np.atleast_1d(values), SOUND, "P-box", {"exact": bool(exact), "rounding_terms": terms})


def empirical_ratio_max(tail, start, direction, thetas) -> LipschitzResult:
    """``max over theta_0 != theta_1`` of ``||psi_2(u(t1)) - psi_2(u(t0))||_inf / (|t1 - t0| ||d||_inf)``
    (THEORY.md 3.6), ``0`` when ``d = 0``.  A sampled LOWER bound of ``L^D``: label ``estimate``."""
    ops = tail_ops(tail)
    start = _batch("start", start, ops[0].weight.shape[1])
    direction = _batch("direction", direction, start.shape[1])
    t = np.unique(np.asarray(thetas, dtype=np.float64).ravel())
    if t.size < 2 or t.min() < 0 or t.max() > 1:
        raise CertificateInputError("thetas must contain at least two distinct values in [0, 1]")
    points = start[:, None, :] + t[None, :, None] * direction[:, None, :]
    out = PiecewiseLinearTail(ops)(points.reshape(-1, start.shape[1])).reshape(start.shape[0], t.size, -1)
    ratio = np.zeros(start.shape[0])
    for i in range(t.size - 1):  # pairs (i, j > i); memory O(B |thetas| K)
        diff = np.abs(out[:, i + 1 :, :] - out[:, i : i + 1, :]).max(axis=2)
        ratio = np.maximum(ratio, (diff / (t[i + 1 :] - t[i])).max(axis=1))
    d_norm = np.abs(direction).max(axis=1)
    values = np.where(d_norm > 0, ratio / np.where(d_norm > 0, d_norm, 1.0), 0.0)
    return LipschitzResult(values, ESTIMATE, "empirical", {"n_thetas": int(t.size)})
