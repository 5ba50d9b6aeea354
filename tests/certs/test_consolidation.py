"""Mean-value consolidation of the residual halves (certs.intervals.consolidation): the bounds of ``sup |J| r`` against
autograd Jacobians at points of the set, and the consolidated half against timm's float forward."""

from __future__ import annotations

import pytest
import torch
import torch.autograd.forward_ad as fwad
from hypothesis import given, settings
from hypothesis import strategies as st
from timm.models.vision_transformer import Block
from torch import nn

import certs.intervals.consolidation as consolidation
from certs.intervals.taylor import TaylorDual, TaylorForm
from verification.bridge import vit_interval

TOL = 1e-12
HALVES = {
    "attention": (vit_interval._attention_half, vit_interval._attention_bound,
                  lambda blk, z: z + blk.ls1(blk.attn(blk.norm1(z)))),
    "mlp": (vit_interval._mlp_half, vit_interval._mlp_bound, lambda blk, z: z + blk.ls2(blk.mlp(blk.norm2(z)))),
}


def make_block(seed: int, dim: int, heads: int, act: str, layer_scale: bool, spread: float) -> nn.Module:
    torch.manual_seed(seed)
    block = Block(dim, heads, mlp_ratio=2.0, qkv_bias=True, init_values=0.7 if layer_scale else None,
                  act_layer=nn.ReLU if act == "relu" else nn.GELU).double().eval()
    block.attn.fused_attn = False  # forward-mode autograd has no rule for the fused kernel
    with torch.no_grad():
        for p in block.parameters():
            p.add_(spread * torch.randn_like(p))
    return block


@st.composite
def half_cases(draw):
    dim, heads = draw(st.sampled_from([(8, 1), (8, 2), (12, 2), (16, 4)]))
    block = make_block(draw(st.integers(0, 10_000)), dim, heads, draw(st.sampled_from(["gelu", "relu"])),
                       draw(st.booleans()), draw(st.sampled_from([0.05, 0.2, 0.5])))
    gen = torch.Generator().manual_seed(draw(st.integers(0, 10_000)))
    pieces, tokens = 2, draw(st.integers(2, 5))
    width = draw(st.sampled_from([0.0, 1e-3, 3e-2]))
    coef = (torch.randn(pieces, tokens, dim, generator=gen, dtype=torch.float64),
            width * torch.randn(pieces, tokens, dim, generator=gen, dtype=torch.float64))
    r = draw(st.sampled_from([1e-12, 1e-6, 1e-3])) * torch.rand(pieces, tokens, dim, generator=gen, dtype=torch.float64)
    weights = torch.rand(pieces, tokens, dim, generator=gen, dtype=torch.float64)
    groups = draw(st.sampled_from([None, torch.zeros(pieces, dtype=torch.long)]))  # a centre per piece, or shared
    return block, TaylorForm(coef, r), weights, gen, groups


def sample_points(value: TaylorForm, gen: torch.Generator, count: int) -> torch.Tensor:
    """``count`` points ``c_0 + c_1 eps + delta`` of the set of an order-1 form, ``(count, P, N, d)``."""
    c0, c1 = value.coef
    eps = 2 * torch.rand(count, c0.shape[0], 1, 1, generator=gen, dtype=torch.float64) - 1
    delta = (2 * torch.rand((count,) + tuple(c0.shape), generator=gen, dtype=torch.float64) - 1) * value.r
    eps[0], delta[0] = 1.0, value.r  # a corner
    return c0 + c1 * eps + delta


def zero_tangent(value: TaylorForm) -> TaylorDual:
    zero = torch.zeros_like(value.r)
    return TaylorDual(value, TaylorForm((zero, zero), zero))


def bound_violations(block: nn.Module, half: str, value: TaylorForm, weights: torch.Tensor,
                     gen: torch.Generator, count: int = 6, groups: torch.Tensor | None = None) -> int:
    """Entries where ``|J(x)| w`` (autograd, at points ``x`` of the set) exceeds the half's bound of ``sup |J| w``
    (centre Jacobians shared by the pieces of ``groups``)."""
    run, bound, forward = HALVES[half]
    seen: dict = {}
    run(block, zero_tangent(value), lambda label, dual: seen.__setitem__(label, dual))
    limit = bound(block, value, seen, [weights], groups).total()[0]
    bad = 0
    for x in sample_points(value, gen, count):
        for p in range(x.shape[0]):
            jac = torch.autograd.functional.jacobian(lambda z: forward(block, z), x[p:p + 1])[0, :, :, 0]
            exact = torch.einsum("iajb,jb->ia", jac.abs(), weights[p])
            bad += int((exact > limit[p] * (1 + TOL) + TOL).sum())
    return bad


@settings(max_examples=max(15, settings().max_examples // 50), deadline=None)
@given(half_cases(), st.sampled_from(sorted(HALVES)))
def test_half_bounds_dominate_autograd_jacobians_on_the_set(case, half):
    block, value, weights, gen, groups = case
    assert bound_violations(block, half, value, weights, gen, groups=groups) == 0


def _wide_case() -> tuple[nn.Module, TaylorForm, torch.Tensor, torch.Generator]:
    block = make_block(3, 8, 2, "gelu", False, 0.5)
    gen = torch.Generator().manual_seed(5)
    coef = (torch.randn(2, 4, 8, generator=gen, dtype=torch.float64),
            0.3 * torch.randn(2, 4, 8, generator=gen, dtype=torch.float64))
    r = 1e-3 * torch.ones(2, 4, 8, dtype=torch.float64)
    return block, TaylorForm(coef, r), torch.rand(2, 4, 8, generator=gen, dtype=torch.float64), gen


def test_known_bad_dropping_the_deviation_terms_is_caught(monkeypatch):
    """Known-bad: the bound taken at the centres only (no ``|J - J_c|`` terms) misses Jacobians of a wide set."""
    for half in HALVES:
        block, value, weights, gen = _wide_case()
        assert bound_violations(block, half, value, weights, gen) == 0
    monkeypatch.setattr(consolidation, "_factored", lambda *args: torch.zeros_like(args[-1]))
    monkeypatch.setattr(consolidation, "_through_b", lambda *args: torch.zeros_like(args[-1]))
    monkeypatch.setattr(consolidation, "_margin", lambda x, terms: x)
    block, value, weights, gen = _wide_case()
    assert bound_violations(block, "attention", value, weights, gen, count=12) > 0


def test_known_bad_a_shared_centre_with_each_pieces_own_radius_is_caught(monkeypatch):
    """Known-bad: two pieces sharing a centre Jacobian but each keeping the radius about its own midpoint (not about
    the shared centre) misses Jacobians of the set."""
    block = make_block(3, 8, 2, "gelu", False, 0.5)
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(1, 4, 8, generator=gen, dtype=torch.float64)
    # two near-points, the second the first scaled by 3: the same xhat, a third of the LayerNorm's s
    value = TaylorForm((torch.cat([x, 3 * x]), torch.zeros(2, 4, 8, dtype=torch.float64)),
                       1e-9 * torch.ones(2, 4, 8, dtype=torch.float64))
    weights = torch.rand(2, 4, 8, generator=gen, dtype=torch.float64)
    groups = torch.zeros(2, dtype=torch.long)
    for half in HALVES:
        assert bound_violations(block, half, value, weights, gen, groups=groups) == 0
    shared = consolidation.centred

    def own_radius(x, groups):
        got = shared(x, groups)
        return consolidation.Centred(got.shared, got.c, x.centre_radius()[1], got.mag)

    monkeypatch.setattr(consolidation, "centred", own_radius)
    assert bound_violations(block, "attention", value, weights, gen, groups=groups) > 0


def _tangent_of_half(block: nn.Module, half: str, x: torch.Tensor,
                     t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    forward = HALVES[half][2]
    with fwad.dual_level():
        out = forward(block, fwad.make_dual(x, t))
        value, tangent = fwad.unpack_dual(out)
    return value.detach(), tangent.detach()


def block_tangent(block: nn.Module):
    """The float forward of the whole block with its forward-mode tangent: ``(x, t) -> (y, dy)``."""
    def forward(x: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return _tangent_of_half(block, "mlp", *_tangent_of_half(block, "attention", x, t))
    return forward


def enclosure_misses(out: TaylorDual, forward, value: TaylorForm, tangent: TaylorForm, gen: torch.Generator) -> int:
    """Points of the input set (order-1 forms ``value`` / ``tangent``) whose float image ``forward(x, t) -> (y, dy)``
    leaves the enclosures of ``out``."""
    v_box, t_box = out.enclosures()
    misses = 0
    c0, c1 = value.coef
    t0, t1 = tangent.coef
    for _ in range(6):
        eps = 2 * torch.rand(c0.shape[0], 1, 1, generator=gen, dtype=torch.float64) - 1
        x = c0 + c1 * eps + (2 * torch.rand(c0.shape, generator=gen, dtype=torch.float64) - 1) * value.r
        t = t0 + t1 * eps + (2 * torch.rand(t0.shape, generator=gen, dtype=torch.float64) - 1) * tangent.r
        y, dy = forward(x, t)
        misses += int((~v_box.contains(y, 1e-10)).sum() + (~t_box.contains(dy, 1e-10)).sum())
    return misses


def consolidated_misses(block: nn.Module, half: str, value: TaylorForm, tangent: TaylorForm,
                        gen: torch.Generator, groups: torch.Tensor | None = None) -> int:
    """Points of the input set whose float value / tangent image leaves the consolidated half's enclosure."""
    run = HALVES[half][0]
    bound = HALVES[half][1]
    out = consolidation.consolidate(lambda dual, seen: run(block, dual, seen), TaylorDual(value, tangent),
                                    lambda v, seen, rs, g: bound(block, v, seen, rs, g), 1, groups)
    return enclosure_misses(out, lambda x, t: _tangent_of_half(block, half, x, t), value, tangent, gen)


def random_tangent(shape: tuple[int, ...], gen: torch.Generator) -> TaylorForm:
    """An order-1 tangent form with random coefficients and a small random remainder."""
    return TaylorForm((torch.randn(shape, generator=gen, dtype=torch.float64),
                       0.1 * torch.randn(shape, generator=gen, dtype=torch.float64)),
                      1e-4 * torch.rand(shape, generator=gen, dtype=torch.float64))


@settings(max_examples=max(15, settings().max_examples // 50), deadline=None)
@given(half_cases(), st.sampled_from(sorted(HALVES)))
def test_consolidated_half_encloses_the_float_forward_and_its_tangent(case, half):
    block, value, _, gen, groups = case
    tangent = random_tangent(value.r.shape, gen)
    assert consolidated_misses(block, half, value, tangent, gen, groups) == 0


@settings(max_examples=max(15, settings().max_examples // 50), deadline=None)
@given(half_cases(), st.sampled_from(sorted(HALVES)))
def test_a_value_only_half_computes_exactly_the_value_of_the_full_dual(case, half):
    """The bare run of :func:`consolidate` is value only: every rule of the half (LayerNorm with its rank-one terms,
    attention, GELU / ReLU, LayerScale) must give the value the full dual gives, to the bit, and no tangent."""
    block, value, _, gen, _ = case
    run = HALVES[half][0]
    shape = value.r.shape
    tangent = TaylorForm((torch.randn(shape, generator=gen, dtype=torch.float64),
                          torch.randn(shape, generator=gen, dtype=torch.float64)),
                         1e-6 * torch.rand(shape, generator=gen, dtype=torch.float64))
    full = run(block, TaylorDual(value, tangent), consolidation.ignore)
    only = run(block, TaylorDual(value, None), consolidation.ignore)
    assert only.tangent is None
    assert all(torch.equal(a, b) for a, b in zip(full.value.coef, only.value.coef))
    assert torch.equal(full.value.r, only.value.r)


def test_a_value_only_dual_mixed_with_a_full_one_is_an_error():
    """Known-bad use: a value-only dual added to or multiplied by one with a tangent (which would drop a tangent
    term) raises instead of computing."""
    form = TaylorForm((torch.ones(2, 3, dtype=torch.float64), torch.zeros(2, 3, dtype=torch.float64)),
                      torch.zeros(2, 3, dtype=torch.float64))
    full, only = TaylorDual(form, form), TaylorDual(form, None)
    for combine in (lambda a, b: a + b, lambda a, b: a * b, lambda a, b: b * a):
        with pytest.raises(ValueError, match="value-only"):
            combine(only, full)
    assert (only + only).tangent is None and (full * full).tangent is not None


def _wide_block_case() -> tuple[nn.Module, TaylorForm, TaylorForm, torch.Generator]:
    """A block and affine value / tangent forms with a wide remainder (0.05): the known-bad cases' input set."""
    block = make_block(1, 8, 2, "gelu", False, 0.2)
    gen = torch.Generator().manual_seed(2)
    shape = (2, 4, 8)
    zero, wide = torch.zeros(shape, dtype=torch.float64), 0.05 * torch.ones(shape, dtype=torch.float64)
    value = TaylorForm((torch.randn(shape, generator=gen, dtype=torch.float64), zero), wide)
    tangent = TaylorForm((torch.randn(shape, generator=gen, dtype=torch.float64), zero), wide)
    return block, value, tangent, gen


def test_known_bad_consolidation_without_the_jacobian_term_is_caught():
    """Known-bad: passing the remainders through ``M = 0`` (only the bare input's image) loses the true values."""
    block, value, tangent, gen = _wide_block_case()
    assert consolidated_misses(block, "mlp", value, tangent, gen) == 0
    zero = {name: (run, lambda blk, v, seen, rs, g: consolidation.HalfBound([torch.zeros_like(r) for r in rs],
                                                                           [torch.zeros_like(r) for r in rs], None),
                   fwd) for name, (run, _, fwd) in HALVES.items()}
    original = dict(HALVES)
    HALVES.update(zero)
    try:
        assert consolidated_misses(block, "mlp", value, tangent, gen) > 0
    finally:
        HALVES.update(original)


def mlp_only_block_misses(block: nn.Module, value: TaylorForm, tangent: TaylorForm, gen: torch.Generator) -> int:
    """Points of the input set whose float block output / tangent leaves the enclosure of
    :func:`verification.bridge.vit_interval._consolidated_block` with ``attention=False`` (box rules through the
    attention half, the MLP half consolidated)."""
    out = vit_interval._consolidated_block(block, TaylorDual(value, tangent), None, attention=False)
    return enclosure_misses(out, block_tangent(block), value, tangent, gen)


@settings(max_examples=max(15, settings().max_examples // 50), deadline=None)
@given(half_cases())
def test_a_block_with_only_its_mlp_half_consolidated_encloses_the_float_forward(case):
    block, value, _, gen, _ = case
    tangent = random_tangent(value.r.shape, gen)
    assert mlp_only_block_misses(block, value, tangent, gen) == 0


def test_known_bad_mlp_only_block_that_drops_the_attention_halfs_remainder_is_caught(monkeypatch):
    """Known-bad: the MLP half consolidated on the attention half's output with its remainders dropped (the bare
    form passed on) loses the true values of a wide input set."""
    block, value, tangent, gen = _wide_block_case()
    assert mlp_only_block_misses(block, value, tangent, gen) == 0
    attention_half = vit_interval._attention_half

    def bare_attention_half(blk, dual, seen):
        out = attention_half(blk, dual, seen)
        return TaylorDual(out.value.bare(), out.tangent.bare())

    monkeypatch.setattr(vit_interval, "_attention_half", bare_attention_half)
    assert mlp_only_block_misses(block, value, tangent, gen) > 0


def consolidated_block(block: nn.Module, value: TaylorForm, tangent: TaylorForm, groups: torch.Tensor | None = None,
                       entries: int = 1) -> TaylorDual:
    """:func:`consolidation.consolidate_block` on a timm block (``entries``: the chunking of the groups of pieces;
    ``JACOBIAN_ENTRIES`` puts every group in a chunk of its own)."""
    return consolidation.consolidate_block(
        lambda dual, seen: vit_interval._attention_half(block, dual, seen),
        lambda dual, seen: vit_interval._mlp_half(block, dual, seen), TaylorDual(value, tangent),
        lambda v, seen, rs, g: vit_interval._attention_bound(block, v, seen, rs, g),
        lambda v, seen, rs, g: vit_interval._mlp_bound(block, v, seen, rs, g), entries, groups)


@settings(max_examples=max(15, settings().max_examples // 50), deadline=None)
@given(half_cases(), st.sampled_from([1, consolidation.JACOBIAN_ENTRIES]))
def test_a_block_consolidated_as_one_map_encloses_the_float_forward_and_its_tangent(case, entries):
    block, value, _, gen, groups = case
    tangent = random_tangent(value.r.shape, gen)
    out = consolidated_block(block, value, tangent, groups, entries)
    assert enclosure_misses(out, block_tangent(block), value, tangent, gen) == 0


def block_jacobian_violations(block: nn.Module, value: TaylorForm, weights: torch.Tensor, gen: torch.Generator,
                              groups: torch.Tensor | None = None, count: int = 6) -> int:
    """Entries where ``|J_F(x)| w`` (autograd Jacobian of the whole block at points ``x`` of the value set) exceeds
    the tangent enclosure of :func:`consolidation.consolidate_block` for a tangent that is only a remainder ``w`` (every
    ``t`` with ``|t| <= w``, so the enclosure must hold ``sup_X |J_F| w``: the composite bound ``M_F w``)."""
    zero = torch.zeros_like(weights)
    out = consolidated_block(block, value, TaylorForm((zero, zero), weights), groups)
    limit = out.tangent.box().mag()
    attention, mlp = HALVES["attention"][2], HALVES["mlp"][2]
    bad = 0
    for x in sample_points(value, gen, count):
        for p in range(x.shape[0]):
            jac = torch.autograd.functional.jacobian(lambda z: mlp(block, attention(block, z)), x[p:p + 1])
            exact = torch.einsum("iajb,jb->ia", jac[0, :, :, 0].abs(), weights[p])
            bad += int((exact > limit[p] * (1 + TOL) + TOL).sum())
    return bad


@settings(max_examples=max(15, settings().max_examples // 50), deadline=None)
@given(half_cases())
def test_the_composite_block_bound_dominates_autograd_jacobians_on_the_set(case):
    block, value, weights, gen, groups = case
    assert block_jacobian_violations(block, value, weights, gen, groups) == 0


def test_the_composite_bound_is_tighter_than_the_two_halves_chained():
    """The point of :func:`consolidation.consolidate_block`: on a trained-like block the composite ``|L J| r`` is
    below the two halves' product ``M_B M_A r`` (their tangent remainders from the same input)."""
    block, value, tangent, _ = _wide_block_case()
    narrow = TaylorForm(value.coef, 1e-9 * torch.ones_like(value.r))
    loose = TaylorForm(tangent.coef, 1e-3 * torch.ones_like(tangent.r))
    chained = consolidation.consolidate(lambda d, s: vit_interval._attention_half(block, d, s),
                                        TaylorDual(narrow, loose),
                                        lambda v, s, rs, g: vit_interval._attention_bound(block, v, s, rs, g), 1)
    chained = consolidation.consolidate(lambda d, s: vit_interval._mlp_half(block, d, s), chained,
                                        lambda v, s, rs, g: vit_interval._mlp_bound(block, v, s, rs, g), 1)
    composite = consolidated_block(block, narrow, loose)
    assert bool((composite.tangent.r <= chained.tangent.r * (1 + 1e-9)).all())
    assert float(composite.tangent.r.sum()) < float(chained.tangent.r.sum())


def test_known_bad_a_composite_that_forgets_the_mlp_halfs_centre_jacobian_is_caught(monkeypatch):
    """Known-bad: the composite's product term taken as ``|J| r`` (the attention half's centre Jacobian alone, the MLP
    half's ``L`` not applied) misses Jacobians of the block on a narrow set."""
    block = make_block(4, 8, 2, "gelu", False, 0.5)
    gen = torch.Generator().manual_seed(3)
    shape = (2, 4, 8)
    zero = torch.zeros(shape, dtype=torch.float64)
    value = TaylorForm((torch.randn(shape, generator=gen, dtype=torch.float64), zero), 1e-9 + zero)
    weights = torch.rand(shape, generator=gen, dtype=torch.float64)
    assert block_jacobian_violations(block, value, weights, gen) == 0

    def without_left(attention, left, remainders, chained, groups=None):
        return [prod * (1 + 1e-6) for prod in consolidation._dense_main(attention, remainders, groups)]

    monkeypatch.setattr(consolidation, "block_products", without_left)
    assert block_jacobian_violations(block, value, weights, gen) > 0
