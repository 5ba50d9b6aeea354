"""Mean-value consolidation of the remainders at the residual halves of a pre-norm transformer block (issue 15).

The box rules of :mod:`certs.intervals.taylor` propagate a remainder ``r`` through a chain of maps as
``|J_n| ... |J_1| r``; the exact first-order image is ``|J_n ... J_1| r``, and through a ViT block the two differ by
x1e2–x1e4 (verification/FINDINGS.md F22), so the remainder compounds block by block.  Here a *residual half*

    A(x)  = x  + ls1 proj(attn(qkv(norm1 x)))            (the attention half)
    B(x1) = x1 + ls2 fc2(act(fc1(norm2 x1)))              (the MLP half)

is taken as one map ``F``.  For an input form ``x(eps) in p(eps) + [-r, r]`` (value) with tangent
``t(eps) in q(eps) + [-r_t, r_t]``:

* value: ``F(x) = F(p) + int_0^1 J_F(p + s (x - p)) (x - p) ds``, so ``|F(x) - F(p)| <= M r`` with
  ``M >= sup_X |J_F|`` entrywise over the set ``X = {p(eps) + delta: |eps| <= 1, |delta| <= r}`` (mean-value
  theorem, per output entry).  ``F(p)`` is the form of the half on the *bare* input (remainder 0, value only): its own
  remainder holds only the rounding and truncation of this half (``fresh``), and the value leaves with
  ``fresh + M r``;
* tangent: ``J_F(x) t = J_F(x) q + J_F(x) (t - q)``; the first term is enclosed by the half on the input value
  *with* its remainder and the bare tangent ``q`` (the box rules, inside one half only), the second is at most
  ``M r_t``.

So the remainder passes each half through ``M`` (the composite growth, x1.4–x6 per block on the trained models)
instead of the product of the per-operation boxes.

*Whole blocks* (:func:`consolidate_block`, FINDINGS F25).  Chaining the halves still wraps once per half:
``M_B M_A r = (|L| + dev_B)(|J| + dev_A) r`` with ``J`` / ``L`` the halves' float centre Jacobians, and ``|L| |J|``
loses the cancellations of the product ``L J`` (on the deep model's 24 halves, float Jacobians at calibration image
0, ``benchmarks/composite_growth.py``: row sums of ``|H| |J_24| ... |J_1|`` up to 4.8e9 against 154 for
``|H J_24 ... J_1|``, 4.4e7 with the two halves of every block multiplied first).  The MLP half is tokenwise, so
``L J`` costs ``N^2 d^3`` per group of pieces (a ``d x d`` product per token pair) and a block passes its input
remainders through ``|L J| r + M_B (dev_A r) + dev_B (main_A r)`` instead.

``M`` is an interval evaluation of the exact Jacobian of the
half over ``X`` in the structured forms below; every factor is an interval that holds the true intermediate for
every point of ``X`` (the boxes of the forms computed on ``x`` with its remainder), and every product is Rump's
midpoint-radius product of :meth:`certs.intervals.interval.Interval.matmul` (rounding included), so ``M`` is a
sound entrywise bound.

*LayerNorm* ``y = w xhat + b`` with ``xhat = (x - mean x) s``, ``s = (var + eps)^(-1/2)`` (biased variance over
the ``d`` features): ``J = diag(w) s (I - 1 1^T / d - xhat xhat^T / d)``; a matrix ``X`` times it is
``s (X diag(w) - (X w) 1^T / d - (X (w xhat)) xhat^T / d)`` (:func:`times_layer_norm`).

*MLP half* (tokenwise): ``J = I + diag(ls2) W2 diag(act'(h)) W1 J_norm2`` with ``h`` the ``fc1`` output.

*Attention half*, per head ``h`` with ``q = scale Wq u``, ``k = Wk u``, ``v = Wv u`` (``u = norm1 x``),
``P = softmax(q k^T)``, ``o_i = sum_l P_il v_l`` and ``Wp_h`` the head's columns of ``proj``: softmax perturbations
sum to zero per row, ``d o_i = sum_l P_il dv_l + sum_l P_il (v_l - o_i) dS_il``, so

    d o_i / d u_j = P_ij Wv + [i = j] C_i (scale Wq) + P_ij (v_j - o_i) (Wk^T q_i)^T,
    C_i = sum_l P_il (v_l - o_i) k_l^T,

and ``J_ij = [i = j] I + diag(ls1) sum_h Wp_h (d o_i / d u_j) J_norm1,j`` (``d x d`` blocks for every token pair).

*Shared centres.*  ``M`` is the float Jacobian ``J_c`` at the centres of those enclosures plus bounds of ``|J - J_c|``
over the set; any centre will do as long as the radii are taken about it (:class:`Centred`).  Pieces of one
sample that lie close on the path (``groups``) share one centre, the midpoint of the hull of their enclosures, and so
one ``J_c`` (one matrix product for the group's remainders) — each piece keeps its own radii about it.  ``J_norm`` is
applied to the small factors (``A_h``, ``b_i``, ``B_i``) before the only ``(N d) x (N d)`` tensor is formed, in
chunks of input tokens of :data:`JACOBIAN_ENTRIES` entries; the ``B_i`` deviation terms are factored through ``C_i``
(``|B - B_c| <= |Wp| |C - C_c| |scale Wq|``, no ``d x d`` matrix per piece, token and head).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from .dual import gelu_derivative_enclosure
from .interval import EPS, TINY, Interval
from .smooth import RSQRT
from .taylor import TaylorDual, TaylorForm, _up
from .transformer import variance_floor

__all__ = ["LayerNormStats", "layer_norm_stats", "Centred", "centred", "HalfBound", "AttentionCentre",
           "mlp_half_bound", "attention_half_bound", "block_products", "consolidate", "consolidate_block", "ignore",
           "JACOBIAN_ENTRIES", "COMPOSITE_SHARE"]


@dataclass(frozen=True, eq=False)
class LayerNormStats:
    """Enclosures over a set of inputs of ``xhat = (x - mean x) s`` ``(..., d)`` and ``s = (var + eps)^(-1/2)``
    ``(..., 1)`` of a LayerNorm over the last dim."""

    xhat: Interval
    s: Interval


def layer_norm_stats(x: TaylorForm, eps: float) -> LayerNormStats:
    """:class:`LayerNormStats` for every point of the form ``x`` (the Taylor rules on the value alone; the floor of
    ``var + eps`` is that of :func:`certs.intervals.transformer.inverse_std`)."""
    c = x.minus_mean(-1)
    var = (c * c).mean(-1, keepdim=True)
    s = (var + float(eps)).apply(RSQRT, variance_floor(c.box(), eps))
    return LayerNormStats((c * s).box(), s.box())


def _point(t: torch.Tensor) -> Interval:
    return Interval.point(t)


@dataclass(frozen=True, eq=False)
class Centred:
    """An enclosure over pieces ``(P, ...)`` about a centre shared by the pieces of a group: ``[lo, hi] subset
    [c - r, c + r]`` exactly with ``c = shared[groups]`` (``shared`` ``(G, ...)``: the float midpoint of the hull of
    the group's intervals), ``mag`` the largest ``|x|`` over ``[lo, hi]`` and ``c``.  One group per piece is the
    plain midpoint-radius form."""

    shared: torch.Tensor
    c: torch.Tensor
    r: torch.Tensor
    mag: torch.Tensor


def centred(x: Interval, groups: torch.Tensor | None) -> Centred:
    """:class:`Centred` form of ``x`` for the piece groups ``groups`` (``(P,)``, ids ``0 .. G - 1``, every id used;
    ``None``: a group per piece)."""
    if groups is None:
        c, r = x.centre_radius()
        return Centred(c, c, r, x.mag())
    count = int(groups.max()) + 1
    index = groups.reshape((-1,) + (1,) * (x.lo.ndim - 1)).expand_as(x.lo)
    shape = (count,) + tuple(x.lo.shape[1:])
    lo = x.lo.new_full(shape, float("inf")).scatter_reduce(0, index, x.lo, "amin")
    hi = x.hi.new_full(shape, float("-inf")).scatter_reduce(0, index, x.hi, "amax")
    shared = (lo + hi) * 0.5
    c = shared[groups]
    return Centred(shared, c, x.radius_about(c), torch.maximum(x.mag(), c.abs()))


def _margin(x: torch.Tensor, terms: int) -> torch.Tensor:
    """``x (1 + (terms + 4) eps) + (terms + 1) 2^-1022`` rounded up: a float sum of non-negative products with at
    most ``terms`` rounded operations behind each entry, raised above the exact sum."""
    return _up(x.mul_(1.0 + (terms + 4) * EPS).add_((terms + 1) * TINY), fresh=True)


@dataclass(frozen=True, eq=False)
class HalfBound:
    """Upper bounds for each ``r_k`` of a list: ``main[k] >= |J_c| r_k`` (``J_c`` the float centre Jacobian of the
    half, one per group of pieces) and ``dev[k] >= sup_X |J - J_c| r_k``, so that :meth:`total` ``>= sup_X |J| r_k``;
    ``centre``: what :func:`block_products` needs to compose the half with the next one (the attention half: its
    :class:`AttentionCentre`; the MLP half: its signed ``J_c`` ``(G, N, d, d)``, tokenwise)."""

    main: list[torch.Tensor]
    dev: list[torch.Tensor]
    centre: object

    def total(self) -> list[torch.Tensor]:
        """``sup_X |J| r_k <= |J_c| r_k + sup_X |J - J_c| r_k`` (the float sum rounded up)."""
        return [_margin(m + d, 2) for m, d in zip(self.main, self.dev)]


@dataclass(frozen=True, eq=False)
class _NormCentre:
    """A LayerNorm's Jacobian ``J = s K``, ``K = diag(w) - w 1^T / d - (w xhat) xhat^T / d``, at the centres ``s_c``,
    ``xhat_c`` (``J_c``, shaped by the caller to broadcast against the matrices it multiplies), and the weight ``w``."""

    s_c: torch.Tensor
    xhat_c: torch.Tensor
    w: torch.Tensor


def _weight_or_ones(weight: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor:
    return torch.ones(like.shape[-1], dtype=like.dtype, device=like.device) if weight is None else weight


def _norm_vectors(xhat: Centred, s: Centred, weight: torch.Tensor | None,
                  r: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(y, z)`` with ``y >= |J| r`` for every point of the set and at the centre, and ``z >= |J - J_c| r`` for every
    point of the set (:class:`_NormCentre`; ``J - J_c = (s - s_c) K + s_c (K - K_c)``, triangle inequality on the
    three terms of ``K``)."""
    d = r.shape[-1]
    aw = _weight_or_ones(weight, r).abs()
    xm, sm = xhat.mag, s.mag
    kr = _margin(aw * r + aw * (r.sum(-1, keepdim=True) + xm * (xm * r).sum(-1, keepdim=True)) / d, d + 4)
    dk = aw * (xhat.r * (xm * r).sum(-1, keepdim=True) + xhat.c.abs() * (xhat.r * r).sum(-1, keepdim=True)) / d
    return _margin(sm * kr, 1), _margin(s.r * kr + s.c.abs() * _margin(dk, d + 4), 2)


def _times_norm_centre(t: torch.Tensor, centre: _NormCentre, tx: torch.Tensor) -> torch.Tensor:
    """Float ``T J_c`` on the last dim of ``t`` (``centre`` broadcast against ``t``) by the structure of ``K``:
    ``s_c (T diag(w) - (T w) 1^T / d - (T (w xhat_c)) xhat_c^T / d)``, with ``tx = T (w xhat_c)`` (the one product
    that depends on both, computed by the caller as a matrix product, last dim kept); its float error is at most
    ``(d + 8) u |T| |s_c| |K_c|`` (entrywise, the absolute terms), charged by the callers as ``(d + 8) eps |T| y``."""
    d = t.shape[-1]
    out = (tx * centre.xhat_c).add_((t @ centre.w).unsqueeze(-1)).div_(d)
    return out.neg_().add_(t * centre.w).mul_(centre.s_c)


def _grouped_products(matrices: torch.Tensor, vectors: list[torch.Tensor],
                      groups: torch.Tensor | None) -> list[torch.Tensor]:
    """Float ``matrices[groups[p]] @ v[p]`` for each ``v`` in ``vectors``: ``matrices`` ``(G, T, R, C)``, each ``v``
    ``(P, T, C)`` -> ``(P, T, R)`` (``groups`` ``None``: ``G = P``, piece ``p`` with matrix ``p``); the pieces of a
    group are one matrix product."""
    stacked = torch.stack(vectors, -1)  # (P, T, C, k)
    if groups is None:
        return list((matrices @ stacked).unbind(-1))
    pieces, tokens, cols, k = stacked.shape
    rows = matrices.shape[-2]
    out = stacked.new_empty((pieces, tokens, rows, k))
    for g in range(matrices.shape[0]):
        sel = (groups == g).nonzero().squeeze(1)
        part = stacked[sel].permute(1, 2, 0, 3).reshape(tokens, cols, -1)
        out[sel] = (matrices[g] @ part).reshape(tokens, rows, -1, k).permute(2, 0, 1, 3)
    return list(out.unbind(-1))


def _activation_slope(kind: str, h: Interval) -> Interval:
    """Enclosure of ``act'`` over the box ``h`` (``'gelu'``: exact GELU; ``'relu'``: 0, 1 or [0, 1])."""
    if kind == "gelu":
        return gelu_derivative_enclosure(h)
    if kind == "relu":
        lo = (h.lo > 0).to(h.lo.dtype)
        return Interval(lo, (h.hi >= 0).to(h.lo.dtype))
    raise ValueError(f"activation {kind!r}: no Jacobian rule (gelu or relu)")


def _scaled(x: torch.Tensor, ls: torch.Tensor | None) -> torch.Tensor:
    return x if ls is None else x * ls.abs()


def mlp_half_bound(stats: LayerNormStats, h: Interval, norm_weight: torch.Tensor | None, fc1: torch.Tensor,
                   fc2: torch.Tensor, activation: str, ls: torch.Tensor | None, remainders: list[torch.Tensor],
                   groups: torch.Tensor | None = None) -> HalfBound:
    """:class:`HalfBound` of ``sup_X |J| r`` (``(..., N, d)``) of the MLP half (module docstring) for each ``r`` in
    ``remainders``: ``stats`` of ``norm2`` and ``h`` (the ``fc1`` output box) over the set, ``fc1`` ``(m, d)`` /
    ``fc2`` ``(d, m)`` weights, ``ls`` the LayerScale (or ``None``); ``groups``: the pieces that share one centre
    (:func:`centred`; ``None``: a centre per piece).

    With ``Q = W2 diag(act'(h)) W1`` per token and centres ``c``: ``|J| r <= fl(|J_c| r) + |ls| (|W2| (act'_rad |W1|
    y) + |Q_c| z + g |W2| (|act'_c| |W1| y) + (d + 8) eps |Q_c| y)``, ``J_c = I + ls Q_c J_norm,c`` the float centre
    matrix (one per group), ``y >= |J_norm| r``, ``z >= |J_norm - J_norm,c| r`` (:func:`_norm_vectors`),
    ``g = (m + 4) eps`` the error of the float ``Q_c``."""
    slope = centred(_activation_slope(activation, h), groups)
    xhat, s = centred(stats.xhat, groups), centred(stats.s, groups)
    m, d = fc1.shape
    q_shared = (fc2 * slope.shared.unsqueeze(-2)) @ fc1  # (G, N, d, d)
    w = _weight_or_ones(norm_weight, fc1)
    wx = w * xhat.shared  # (G, N, d)
    j_c = _times_norm_centre(q_shared, _NormCentre(s.shared.unsqueeze(-1), xhat.shared.unsqueeze(-2), w),
                             q_shared @ wx.unsqueeze(-1))
    j_c = (j_c if ls is None else j_c * ls[:, None]) + torch.eye(d, dtype=j_c.dtype, device=j_c.device)
    a1, a2 = fc1.abs(), fc2.abs()
    devs = []
    mains = [_margin(main, d + 2) for main in _grouped_products(j_c.abs(), remainders, groups)]
    for r in remainders:
        y, z = _norm_vectors(xhat, s, norm_weight, r)
        dev = (slope.r * (y @ a1.T)) @ a2.T + _grouped_products(q_shared.abs(), [z + (d + 8) * EPS * y], groups)[0]
        dev = dev + (m + 4) * EPS * ((slope.c.abs() * ((y + z) @ a1.T)) @ a2.T)
        devs.append(_scaled(_margin(dev, m + d + 8), ls))
    return HalfBound(mains, devs, j_c)


def _factored(p_w, a_w, u_w, b_w, vec: torch.Tensor) -> torch.Tensor:
    """``sum_h sum_j p_w[h, i, j] (a_w[h] vec_j) + u_w[h, i, j] (b_w[h, i] . vec_j)`` (all non-negative): the factored
    bound of the token-mixing terms of :func:`attention_half_bound`."""
    av = torch.einsum("hab,...jb->...hja", a_w, vec)
    first = torch.einsum("...hij,...hja->...ia", p_w, av)
    dots = torch.einsum("...hib,...jb->...hij", b_w, vec)
    return first + torch.einsum("...hija,...hij->...ia", u_w, dots)


def _through_b(wp_abs: torch.Tensor, c_w: torch.Tensor, wq_w: torch.Tensor, vec: torch.Tensor) -> torch.Tensor:
    """``sum_h wp_abs[h] (c_w[h, i] (wq_w[h] vec_i))`` (all non-negative): the factored bound of the ``B_i`` terms
    of :func:`attention_half_bound` (``wp_abs`` ``(H, d, dh)``, ``c_w`` ``(..., H, N, dh, dh)``, ``wq_w``
    ``(H, dh, d)``)."""
    t = torch.einsum("hed,...id->...hie", wq_w, vec)
    t = (c_w @ t.unsqueeze(-1)).squeeze(-1)
    return torch.einsum("hde,...hie->...id", wp_abs, t)


@dataclass(frozen=True, eq=False)
class AttentionCentre:
    """The float centre Jacobian ``J_c = I + ls T_c J_norm,c`` of the attention half, kept as its small shared factors
    (one set per group of pieces): ``p`` ``(G, H, N, N)``, ``u`` ``(G, H, Ni, Nj, d)``, ``b`` ``(G, H, N, d)``,
    ``b_sum`` ``(G, N, d, d)`` (the float ``sum_h B_i``), the LayerNorm centres ``xhat`` ``(G, N, d)`` / ``s``
    ``(G, N, 1)`` and weight ``w``, ``a`` ``(H, d, d)`` (the float ``A_h``) and the LayerScale ``ls``; the ``d x d``
    blocks are formed by :func:`_dense_main`, in chunks of input tokens."""

    p: torch.Tensor
    u: torch.Tensor
    b: torch.Tensor
    b_sum: torch.Tensor
    xhat: torch.Tensor
    s: torch.Tensor
    w: torch.Tensor
    a: torch.Tensor
    ls: torch.Tensor | None

    def factors(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(A_h J_j, b_i^T J_j, B_i J_i)`` at the centres: ``(G, H, Nj, d, d)``, ``(G, H, Ni, Nj, d)``,
        ``(G, Ni, d, d)`` (:func:`_times_norm_centre`: ``J_norm,c`` applied to the small factors)."""
        wx = self.w * self.xhat  # (G, N, d)
        a_j = _times_norm_centre(self.a.unsqueeze(-3), _NormCentre(self.s[..., None, :, None, :],
                                                                   self.xhat[..., None, :, None, :], self.w),
                                 torch.einsum("hab,...jb->...hja", self.a, wx).unsqueeze(-1))
        b_j = _times_norm_centre(self.b.unsqueeze(-2), _NormCentre(self.s[..., None, None, :, :],
                                                                   self.xhat[..., None, None, :, :], self.w),
                                 torch.einsum("...hib,...jb->...hij", self.b, wx).unsqueeze(-1))
        bb_i = _times_norm_centre(self.b_sum, _NormCentre(self.s.unsqueeze(-1), self.xhat.unsqueeze(-2), self.w),
                                  self.b_sum @ wx.unsqueeze(-1))
        return a_j, b_j, bb_i


def _dense_main(centre: AttentionCentre, remainders: list[torch.Tensor], groups: torch.Tensor | None,
                left: torch.Tensor | None = None) -> list[torch.Tensor]:
    """Float ``|J_c| r`` of :func:`attention_half_bound` for each ``r`` (``left`` given: ``|L J_c| r`` with ``L``
    ``(G, Ni, d, d)`` a tokenwise matrix applied on the output side, ``(L J_c)_ij = L_i J_c,ij``), with
    ``J_c = I + ls T_c J_norm,c`` built in the layout ``(G, j, i, a, b)`` (blocks of ``d x d`` per token pair, input
    token ``j`` outermost) for chunks of input tokens of about :data:`JACOBIAN_ENTRIES` entries and summed over
    ``j``."""
    a_j, b_j, bb_i = centre.factors()
    p_c, u_c, ls = centre.p, centre.u, centre.ls
    n, d = a_j.shape[-3], a_j.shape[-1]
    mains = [torch.zeros_like(r).flatten(-2) for r in remainders]
    step = max(1, JACOBIAN_ENTRIES // (p_c.shape[0] * n * d * d))
    for first in range(0, n, step):
        last = min(n, first + step)
        j_c = torch.einsum("...hij,...hjab->...jiab", p_c[..., first:last], a_j[..., first:last, :, :])
        j_c = j_c.contiguous()  # (G, j, i, a, b); + sum_h u_ij,a (b_i^T J_j)_b as one batched product over h:
        u_part = u_c[..., first:last, :].movedim(-4, -1).movedim(-3, -4).reshape(-1, d, u_c.shape[-4])  # j i a h
        b_part = b_j[..., first:last, :].movedim(-2, -4).movedim(-3, -2).reshape(-1, b_j.shape[-4], d)  # j i h b
        j_c.view(-1, d, d).baddbmm_(u_part, b_part)
        diagonal = j_c.diagonal(offset=first, dim1=-4, dim2=-3)  # (G, a, b, j): the blocks i = j
        diagonal.add_(bb_i[..., first:last, :, :].movedim(-3, -1))
        j_c = j_c if ls is None else j_c.mul_(ls[:, None])
        j_c.diagonal(offset=first, dim1=-4, dim2=-3).diagonal(dim1=-3, dim2=-2).add_(1.0)
        if left is not None:
            j_c = left.unsqueeze(-4) @ j_c  # (G, 1, Ni, d, d) @ (G, j, Ni, d, d)
        j_c = j_c.abs_().reshape(j_c.shape[:-3] + (n * d, d))  # (G, j, Ni d, d)
        parts = _grouped_products(j_c, [r[..., first:last, :] for r in remainders], groups)
        for total, part in zip(mains, parts):
            total += part.sum(-2)  # sum over j of |J_c|_j r_j
    return [m.reshape(r.shape) for m, r in zip(mains, remainders)]


def attention_half_bound(stats: LayerNormStats, q: Interval, k: Interval, v: Interval, probs: Interval,
                         out: Interval, norm_weight: torch.Tensor | None, qkv: torch.Tensor, proj: torch.Tensor,
                         scale: float, ls: torch.Tensor | None, remainders: list[torch.Tensor],
                         groups: torch.Tensor | None = None) -> HalfBound:
    """:class:`HalfBound` of ``sup_X |J| r`` (``(..., N, d)``) of the attention half (module docstring) for each
    ``r`` in ``remainders``.  ``q`` (scaled), ``k``, ``v``, ``out``: ``(..., H, N, dh)``; ``probs``:
    ``(..., H, N, N)``; ``qkv`` ``(3 H dh, d)``, ``proj`` ``(d, H dh)`` weights; ``groups``: the pieces that share
    one centre (:func:`centred`; ``None``: a centre per piece).

    ``J_ij = [i = j] I + ls T_ij J_norm,j`` with ``T_ij = sum_h (P_ij A_h + u_ij b_i^T) + [i = j] sum_h B_i``,
    ``A_h = Wp Wv``, ``u_ij = P_ij Wp (v_j - o_i)``, ``b_i = Wk^T q_i``, ``B_i = Wp C_i (scale Wq)`` (enclosed by
    interval products, all small).  The float centre ``J_c`` (at the group centres of those enclosures:
    ``P_c (A_h J_norm,c) + u_c (b_c^T J_norm,c) + B_c J_norm,c`` with ``B_c = fl(Wp C_c scale Wq)``,
    :class:`AttentionCentre`) is the only ``N x N x d x d`` tensor, one per group (:func:`_dense_main`);
    ``|J - J_c| r`` is bounded by the factored products
    ``|T - T_c| y + |T_c|_abs z'`` (``|T - T_c| <= P_rad |A| + |P_c| A_rad + u_rad |b|^T + |u_c| b_rad^T + |B - B_c|``,
    radii about the group centres, ``|B - B_c| <= |Wp| (C_rad |scale Wq| + |C_c| (Wq_rad + (2 dh + 2) eps |Wq_c|))``
    covering the float ``B_c``; ``|T_c|_abs`` the same sum of absolute terms, ``z' = z + (d + 3 H + 12) eps y``
    covering the float error of ``J_c`` from the factors: each entry is a sum of at most ``2 H + 1`` products of
    factors computed by :func:`_times_norm_centre` within ``(d + 8) u`` of their absolute terms, in any order)."""
    *lead, heads, n, dh = q.shape
    d = proj.shape[0]
    rows = qkv.reshape(3, heads, dh, d)
    wq = _point(rows[0]) * scale
    wk, wv = rows[1], rows[2]
    wp = proj.reshape(d, heads, dh).movedim(1, 0)  # (H, d, dh)
    a = _point(wp).matmul(_point(wv))  # (H, d, d)
    e = v.rearrange(lambda t: t.unsqueeze(-3)) - out.rearrange(lambda t: t.unsqueeze(-2))  # (..., H, Ni, Nj, dh)
    wp_t = _point(wp.transpose(-1, -2))  # (H, dh, d)
    wp_v, wp_o = v.matmul(wp_t), out.matmul(wp_t)  # (..., H, N, d)
    u = wp_v.rearrange(lambda t: t.unsqueeze(-3)) - wp_o.rearrange(lambda t: t.unsqueeze(-2))  # Wp v_j - Wp o_i
    u = u * probs.rearrange(lambda t: t.unsqueeze(-1))  # (..., H, Ni, Nj, d): P_ij Wp (v_j - o_i)
    b = q.matmul(_point(wk))  # (..., H, N, d)
    spread = (e * probs.rearrange(lambda t: t.unsqueeze(-1))).rearrange(lambda t: t.transpose(-1, -2))
    c = spread.matmul(k.rearrange(lambda t: t.unsqueeze(-3)))  # (..., H, Ni, dh, dh)
    ac, ar = a.centre_radius()
    p_, u_, b_, c_ = (centred(x, groups) for x in (probs, u, b, c))
    wqc, wqr = wq.centre_radius()
    b_sum, b_abs = None, None  # (G, N, d, d): float sum_h B_i at the centres and sum_h |B_i|, head by head
    for h in range(heads):
        b_h = wp[h] @ (c_.shared[..., h, :, :, :] @ wqc[h])
        b_sum = b_h.clone() if b_sum is None else b_sum.add_(b_h)
        b_abs = b_h.abs_() if b_abs is None else b_abs.add_(b_h.abs_())
    xhat, s = centred(stats.xhat, groups), centred(stats.s, groups)
    am = a.mag()
    centre = AttentionCentre(p_.shared, u_.shared, b_.shared, b_sum, xhat.shared, s.shared,
                             _weight_or_ones(norm_weight, ac), ac, ls)
    wp_abs = wp.abs()
    wq_float = wqr + (2 * dh + 2) * EPS * wqc.abs()  # with |C_c|: |B_i(C_c) - fl(B_i)| (two float products)
    mains = [_margin(main, n * d + 2) for main in _dense_main(centre, remainders, groups)]
    devs = []
    for r in remainders:
        y, z = _norm_vectors(xhat, s, norm_weight, r)
        zz = z + (d + 3 * heads + 12) * EPS * y
        dev = _factored(p_.r, am, u_.r, b_.mag, y) + _factored(p_.c.abs(), ar, u_.c.abs(), b_.r, y)
        dev = dev + _factored(p_.c.abs(), ac.abs(), u_.c.abs(), b_.c.abs(), zz)
        dev = dev + _through_b(wp_abs, c_.r, wq.mag(), y) + _through_b(wp_abs, c_.c.abs(), wq_float, y)
        dev = dev + _grouped_products(b_abs, [zz], groups)[0]
        devs.append(_scaled(_margin(dev, 2 * n * d + 3 * heads + 16), ls))
    return HalfBound(mains, devs, centre)


def block_products(attention: AttentionCentre, left: torch.Tensor, remainders: list[torch.Tensor],
                   chained: list[torch.Tensor], groups: torch.Tensor | None = None) -> list[torch.Tensor]:
    """Upper bounds of ``|L J| r`` for each ``r`` in ``remainders``, ``J`` the float centre Jacobian of an attention
    half (``attention``) and ``L`` that of the MLP half after it (``left``, tokenwise ``(G, N, d, d)``): the float
    ``|fl(L J)| r`` rounded up (``N d`` products per entry) plus ``(d + 4) eps |L| |J| r`` for the float ``L_i J_ij``
    (``d`` products per entry), with ``chained[k] >= |L| |J| r_k`` (the halves' own ``main`` bounds chained)."""
    n, d = attention.b_sum.shape[-3], attention.b_sum.shape[-1]
    products = _dense_main(attention, remainders, groups, left=left)
    return [_margin(_margin(prod, n * d + 2) + (d + 4) * EPS * chain, 2) for prod, chain in zip(products, chained)]


def _better(a: TaylorForm, b: TaylorForm) -> TaylorForm:
    """Entrywise the form with the smaller remainder (both enclose the same quantity)."""
    use_a = a.r <= b.r
    return TaylorForm(tuple(torch.where(use_a, x, y) for x, y in zip(a.coef, b.coef)), torch.where(use_a, a.r, b.r))


#: Jacobian entries computed at once (8 MiB: below the allocator's threshold for fresh pages, so the buffers are
#: reused; groups and, in the attention half, input tokens are taken in chunks of about this many entries).
JACOBIAN_ENTRIES = 2 ** 20


def _rows(item, sel: slice | torch.Tensor):
    return item.rearrange(lambda t: t[sel])


def _chunks(pieces: int, groups: torch.Tensor | None, entries: int):
    """``(sel, part_groups)`` for chunks of about :data:`JACOBIAN_ENTRIES` // ``entries`` groups of pieces: ``sel``
    the pieces of the chunk, ``part_groups`` their group ids renumbered ``0 ..`` (``None``: a group per piece)."""
    count = pieces if groups is None else int(groups.max()) + 1
    step = max(1, JACOBIAN_ENTRIES // max(1, entries))
    for first in range(0, count, step):
        last = min(count, first + step)
        if groups is None:
            yield slice(first, last), None
        else:
            sel = ((groups >= first) & (groups < last)).nonzero().squeeze(1)
            yield sel, torch.unique(groups[sel], return_inverse=True)[1]


def _observed(half: Callable[[TaylorDual, Callable], TaylorDual],
              x: TaylorDual) -> tuple[TaylorDual, TaylorDual, dict[str, TaylorDual]]:
    """The two runs of a half: on the value with its remainder and the bare tangent (``carried``, with the
    intermediates it reports) and on the bare value alone (``fresh``)."""
    seen: dict[str, TaylorDual] = {}
    carried = half(TaylorDual(x.value, x.tangent.bare()), lambda label, dual: seen.__setitem__(label, dual))
    return carried, half(TaylorDual(x.value.bare(), None), ignore), seen


def _leaving(fresh: TaylorDual, carried: TaylorDual, through_value: torch.Tensor,
             through_tangent: torch.Tensor) -> TaylorDual:
    """The output of a consolidated map: the bare run's value with ``through_value`` added to its remainder (or the
    carried run's value where that is tighter), the carried run's tangent with ``through_tangent`` added."""
    value = TaylorForm(fresh.value.coef, _up(fresh.value.r + through_value, fresh=True))
    tangent = TaylorForm(carried.tangent.coef, _up(carried.tangent.r + through_tangent, fresh=True))
    return TaylorDual(_better(value, carried.value), tangent)


def consolidate(half: Callable[[TaylorDual, Callable], TaylorDual], x: TaylorDual, bound: Callable[..., HalfBound],
                entries: int, groups: torch.Tensor | None = None) -> TaylorDual:
    """The residual half ``half(dual, observe)`` applied to ``x`` with the remainders passed through ``M`` (module
    docstring).  ``bound(value, seen, [r_1, r_2], groups)`` returns the :class:`HalfBound` of ``sup_X |J| r_k`` over
    the set of the value form ``value``, from the intermediates ``seen`` (label -> dual) that ``half`` reported on
    ``x`` with its remainder (:func:`attention_half_bound`, :func:`mlp_half_bound`), with one centre Jacobian per group
    of pieces (``groups`` ``(P,)``: ids ``0 .. G - 1``; ``None``: a group per piece); it is called on chunks of about
    :data:`JACOBIAN_ENTRIES` entries (``entries``: the largest intermediate per group)."""
    carried, fresh, seen = _observed(half, x)
    through_value, through_tangent = torch.empty_like(x.value.r), torch.empty_like(x.tangent.r)
    for sel, part_groups in _chunks(x.shape[0], groups, entries):
        part = {label: _rows(dual, sel) for label, dual in seen.items()}
        mv, mt = bound(_rows(x.value, sel), part, [x.value.r[sel], x.tangent.r[sel]], part_groups).total()
        through_value[sel], through_tangent[sel] = mv, mt
    return _leaving(fresh, carried, through_value, through_tangent)


#: :func:`consolidate_block` forms the composite product ``L J`` of a chunk only where the two halves' chained centre
#: term ``|L| |J| r`` (all the product can remove) is more than this share of the bound (summed over the chunk): on
#: wide sets the deviation terms dominate and the ``N^2 d^3`` product would change the bound by less.
COMPOSITE_SHARE = 0.1


def consolidate_block(attention_half: Callable[[TaylorDual, Callable], TaylorDual],
                      mlp_half: Callable[[TaylorDual, Callable], TaylorDual], x: TaylorDual,
                      attention_bound: Callable[..., HalfBound], mlp_bound: Callable[..., HalfBound], entries: int,
                      groups: torch.Tensor | None = None) -> TaylorDual:
    """A whole pre-norm block ``F = B o A`` (attention half ``A``, MLP half ``B``) applied to ``x`` with the block
    input's remainders passed through the composite Jacobian ``J_B J_A`` instead of ``M_B M_A`` (issue 15).

    Each half runs as in :func:`consolidate` (``carried``: value with remainder, bare tangent; ``fresh``: bare value).
    With ``p`` the block input's polynomial, ``r`` / ``r_t`` its value / tangent remainders, ``p1`` the polynomial of
    the ``norm2`` input form ``x1`` (entrywise the better of ``fresh_A`` with ``f_A + M_A r`` and ``carried_A``) and
    ``e`` the remainder of that choice that is *not* caused by ``r`` (``f_A`` or ``carried_A``'s whole remainder):

    * value: ``B(A(x)) - B(p1) = [B(A(x)) - B(A(p))] + [B(A(p)) - B(p1)]``, at most ``M_F r + M_B e``;
    * tangent: ``J_B(A x) J_A(x) t = J_B(A x) q1 + J_B(A x) (J_A(x) q - q1) + J_F(x) (t - q)`` with ``q1`` the
      polynomial of ``carried_A``'s tangent (remainder ``c_A``): at most ``carried_B`` + ``M_B c_A + M_F r_t``,

    where ``M_F v >= sup |J_B J_A| v`` over the sets: ``J_B J_A = L J + L (J_A - J) + (J_B - L) J_A`` with ``J`` /
    ``L`` the halves' float centres, so ``M_F v <= |L J| v`` (:func:`block_products`) ``+ M_B (dev_A v) +`` ``dev_B
    (main_A v)`` (the mean-value theorem on the segment ``p .. x``: ``A`` of it lies in the ``norm2`` input set, on
    which ``M_B`` is taken).  Where ``M_B (main_A v)`` (the two halves' product, :func:`consolidate` twice) is smaller
    it is taken instead, entry by entry, and where that product term is at most :data:`COMPOSITE_SHARE` of the bound
    the composite is not formed.  The two halves' bounds run on the same chunks of groups of pieces (``entries``: the
    largest intermediate per group of either half)."""
    carried_a, fresh_a, seen_a = _observed(attention_half, x)
    chunks = list(_chunks(x.shape[0], groups, entries))
    names = ("main_v", "dev_v", "main_t", "dev_t")
    first = {key: torch.empty_like(x.value.r) for key in names}
    centres = []
    for sel, part_groups in chunks:
        part = {label: _rows(dual, sel) for label, dual in seen_a.items()}
        got = attention_bound(_rows(x.value, sel), part, [x.value.r[sel], x.tangent.r[sel]], part_groups)
        for key, tensor in zip(names, (got.main[0], got.dev[0], got.main[1], got.dev[1])):
            first[key][sel] = tensor
        centres.append(got.centre)
    through_a = HalfBound([first["main_v"]], [first["dev_v"]], None).total()[0]  # M_A r
    value_a = TaylorForm(fresh_a.value.coef, _up(fresh_a.value.r + through_a, fresh=True))
    use_a = value_a.r <= carried_a.value.r
    x1 = TaylorDual(_better(value_a, carried_a.value), carried_a.tangent)
    own = torch.where(use_a, fresh_a.value.r, carried_a.value.r)  # e: the x1 remainder not caused by r
    carried_b, fresh_b, seen_b = _observed(mlp_half, x1)
    through_value, through_tangent = torch.empty_like(x.value.r), torch.empty_like(x.tangent.r)
    for (sel, part_groups), centre in zip(chunks, centres):
        part = {label: _rows(dual, sel) for label, dual in seen_b.items()}
        vectors = [_up(own[sel] + first["dev_v"][sel], 2), first["main_v"][sel],
                   _up(carried_a.tangent.r[sel] + first["dev_t"][sel], 2), first["main_t"][sel]]
        got = mlp_bound(_rows(x1.value, sel), part, vectors, part_groups)
        totals = got.total()
        sides = ((through_value, 0, x.value.r[sel]), (through_tangent, 2, x.tangent.r[sel]))
        wanted = [k for _, k, _ in sides if float(got.main[k + 1].sum())
                  > COMPOSITE_SHARE * float((got.main[k + 1] + totals[k] + got.dev[k + 1]).sum())]
        products = {} if not wanted else dict(zip(wanted, block_products(
            centre, got.centre, [r for _, k, r in sides if k in wanted], [got.main[k + 1] for k in wanted],
            part_groups)))
        for out, k, _ in sides:
            through = totals[k + 1]
            if k in products:
                through = torch.minimum(through, _up(products[k] + got.dev[k + 1], 2))
            out[sel] = _up(totals[k] + through, 2)
    return _leaving(fresh_b, carried_b, through_value, through_tangent)


def ignore(label: str, dual) -> None:
    """An observer that keeps nothing."""
    return None
