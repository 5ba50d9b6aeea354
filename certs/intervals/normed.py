"""LayerNorm on Taylor duals with two rank-one remainder terms per token, for the linear map that follows.

``y = c s w + b`` with ``c = x - mean(x)`` (last dim, size ``k``) and ``s = (mean(c^2) + eps)^(-1/2)`` a scalar per
token.  The box rule of :func:`certs.intervals.transformer.layer_norm` puts every remainder into a box; two of
them are one scalar per token times a *known* vector:

* the centring error ``-mean(delta)`` (``delta`` the input remainder, ``|mean(delta)| <= m = mean(r_x)``; the
  rounding of the float mean, also one scalar per token, is added to ``m``): a multiple of ``w s``;
* the remainder ``sigma`` of ``s`` (``|sigma| <= r_s``, carrying the variance's dependence on ``c``): a multiple of
  ``c w``.

Writing ``c = P_c + beta + mu 1`` (``|beta| <=`` the box ``r_x`` plus the per-entry rounding, ``|mu| <= m``) and
``s = P_s + sigma``,

    c s = (P_c + beta) P_s  +  mu s_0 1  +  sigma c_0  +  mu (P_s - s_0) + sigma (P_c - c_0 + beta) + mu sigma,

so ``y = core + (w s_0) mu + (c_0 w) sigma`` with ``core = ((P_c + beta) P_s) w + b`` (the Taylor-form rules) and the
last three products as a box ``|w| (m (tail_s + r_s) + r_s (tail_c + r_beta))`` (``tail`` = ``sum_{i >= 1} |coef_i|``).
The tangent ``c' s + c s'`` splits the same way, with the symbols ``mu'`` (the tangent's centring), ``sigma'``
(remainder of ``s'``) and the value's ``mu``, ``sigma``: directions ``w s_0``, ``c'_0 w``, ``c_0 w``, ``w s'_0``.

:meth:`NormedDual.linear` maps the directions exactly through ``W`` and only then takes absolute values:
``|W (c_0 w)| r_s`` instead of ``|W| |c_0 w| r_s``, the same for ``|W w|``.  On the default ViT this halves the
remainder growth of each LayerNorm + Linear pair (F20).  :meth:`NormedDual.boxed` is the plain box (any
other consumer).  Directions are computed in float: their rounding (``u`` per entry, ``gamma`` through ``W``) is
bounded by ``max |direction| sum_j |W_rj|`` and added to the box.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .interval import TINY, U, Interval
from .taylor import TaylorDual, TaylorForm, _up
from .transformer import inverse_std

__all__ = ["NormedDual", "layer_norm_normed"]


@dataclass(frozen=True, eq=False)
class NormedDual:
    """LayerNorm output: ``core`` plus symbol terms (module docstring); ``value_terms`` / ``tangent_terms`` are
    ``(direction, magnitude)`` pairs (direction ``(..., k)``, magnitude ``(..., 1)``, ``>= 0``)."""

    core: TaylorDual
    value_terms: tuple[tuple[torch.Tensor, torch.Tensor], ...]
    tangent_terms: tuple[tuple[torch.Tensor, torch.Tensor], ...]

    @property
    def shape(self) -> torch.Size:
        return self.core.shape

    def _extra(self, terms, weight: torch.Tensor | None) -> torch.Tensor:
        """``sum_t |W g_t| m_t`` (``W = I`` when ``None``) plus the rounding of the directions and of ``W g_t``."""
        out = 0.0
        for direction, magnitude in terms:
            if weight is None:
                mapped, rounding = direction.abs(), U * direction.abs()
            else:
                mapped = (direction @ weight.T).abs()
                m = weight.shape[-1]
                rounding = (m + 4) * U * direction.abs().amax(-1, keepdim=True) * weight.abs().sum(-1) + (m + 1) * TINY
            out = out + (mapped + rounding) * magnitude
        return out

    def _finish(self, core: TaylorDual, weight: torch.Tensor | None) -> TaylorDual:
        value = TaylorForm(core.value.coef, _up(core.value.r + self._extra(self.value_terms, weight)))
        return TaylorDual(value, core._tangent(lambda: TaylorForm(
            core.tangent.coef, _up(core.tangent.r + self._extra(self.tangent_terms, weight)))))

    def linear(self, weight: torch.Tensor, bias: torch.Tensor | None = None) -> TaylorDual:
        """``y W^T + b``: the symbol directions go through ``W`` before their absolute values."""
        return self._finish(self.core.linear(weight, bias), weight)

    def select(self, fn) -> "NormedDual":
        """Apply ``fn`` (an indexing of the *leading* dims, e.g. ``t[:, 0]``: the same for every last-dim
        slice) to the core, the directions and the magnitudes."""
        def terms(pairs):
            return tuple((fn(direction), fn(magnitude)) for direction, magnitude in pairs)

        return NormedDual(self.core.rearrange(fn), terms(self.value_terms), terms(self.tangent_terms))

    def boxed(self) -> TaylorDual:
        """The plain enclosure (symbols folded into the box)."""
        return self._finish(self.core, None)

    def enclosures(self) -> tuple[Interval, Interval]:
        return self.boxed().enclosures()


def layer_norm_normed(x: TaylorDual, weight: torch.Tensor | None, bias: torch.Tensor | None, eps: float) -> NormedDual:
    """``torch.nn.functional.layer_norm`` over the last dim, keeping the two rank-one remainders (module docstring)."""
    k = x.shape[-1]
    s = inverse_std(x.minus_mean(-1), eps)  # value s_v, tangent s_t: remainders r_s, r_st
    c_v, m_v = x.value.centred()
    s_v = s.value
    w = torch.ones(k, dtype=x.value.r.dtype, device=x.value.r.device) if weight is None else weight
    spread_sv = s_v.spread()  # bound of |s - s_0|: tail + remainder
    value = (c_v * s_v.bare()) * w
    value = value if bias is None else value + bias
    value = TaylorForm(value.coef, _up(value.r + w.abs() * (m_v * spread_sv + s_v.r * c_v.spread())))
    c0w = c_v.coef[0] * w
    value_terms = ((w * s_v.coef[0], m_v), (c0w, s_v.r))
    if x.tangent is None:
        core, tangent_terms = TaylorDual(value, None), ()
    else:
        c_t, m_t = x.tangent.centred()
        s_t = s.tangent
        tangent = (c_t * s_v.bare() + c_v * s_t.bare()) * w
        box_t = m_t * spread_sv + s_v.r * c_t.spread() + m_v * s_t.spread() + s_t.r * c_v.spread()
        core = TaylorDual(value, TaylorForm(tangent.coef, _up(tangent.r + w.abs() * box_t)))
        tangent_terms = ((w * s_v.coef[0], m_t), (c_t.coef[0] * w, s_v.r), (c0w, s_t.r), (w * s_t.coef[0], m_v))
    return NormedDual(core, value_terms, tangent_terms)
