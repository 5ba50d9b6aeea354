"""The remainder trace (verification.bridge.remainder_trace, FINDINGS F22): the stages are the sound walk's, each
stage's carried remainder encloses the float64 value of timm's own forward at that stage, and the Jacobian measure is
``|J| r``.  Known-bad: a walk that drops the rest of the target's block; ``J r`` without the absolute value."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import verification.bridge.remainder_trace as remainder_trace_module
from certs.errors import CertificateInputError
from tests.verification.bridge.test_vit_interval import layer_names, tiny_vit
from verification.bridge.remainder_trace import (_abs_jacobian_times, block_breakdown, breakdown_table, float_substage,
                                          remainder_trace, trace_table)
from verification.bridge.vit_interval import BLOCK_SUBSTAGES
from verification.bridge.vit_views import _add_bias, _layer_op, capture_layer

TOL = 1e-9


def stage_values(model, name, layer, images, sample, theta):
    """Float64 stage outputs of timm's forward with the target output replaced by ``S psi + theta R psi + bias``:
    ``'embed'`` = the input of block 0, ``'blocks.i'`` = block outputs, ``'head'`` = logits (one sample)."""
    module = dict(model.named_modules())[name]
    s_t, r_t = torch.from_numpy(layer.structured), torch.from_numpy(layer.removed)
    seen = {}
    handles = [module.register_forward_hook(
        lambda _m, inputs, _o: _add_bias(
            module, _layer_op(module, inputs[0], s_t) + theta * _layer_op(module, inputs[0], r_t)))]
    handles.append(model.blocks[0].register_forward_pre_hook(lambda _m, inputs: seen.setdefault("embed", inputs[0])))
    for i, block in enumerate(model.blocks):
        handles.append(block.register_forward_hook(lambda _m, _i, out, i=i: seen.setdefault(f"blocks.{i}", out)))
    try:
        with torch.no_grad():
            seen["head"] = model(images)
    finally:
        for h in handles:
            h.remove()
    return {key: value[sample].numpy() for key, value in seen.items()}


@st.composite
def trace_cases(draw):
    depth = draw(st.integers(1, 3))
    model = tiny_vit(draw(st.integers(0, 10_000)), 8, draw(st.sampled_from([1, 2])), depth, "gelu",
                     draw(st.sampled_from(["token", "avg"])), draw(st.sampled_from([0.5, 1.0, 1.5])))
    name = draw(st.sampled_from([n for n in layer_names(depth) if n != "head"]))
    gen = torch.Generator().manual_seed(draw(st.integers(0, 10_000)))
    images = torch.randn(2, 1, 8, 8, generator=gen, dtype=torch.float64)
    keep = torch.rand(dict(model.named_modules())[name].weight.shape, generator=gen) < 0.5
    return (model, name, capture_layer(model, name, keep, images), images, draw(st.integers(0, 1)),
            draw(st.sampled_from([0.0, 0.3, 1.0])))


def _missed(case) -> float:
    """Largest ``|float value - c_0| - carried`` over the stages (<= 0 when every stage encloses timm's value)."""
    model, name, layer, images, sample, theta = case
    trace = remainder_trace(model, layer, images, sample=sample, theta=theta)
    truth = stage_values(model, name, layer, images, sample, theta)
    return max(float(np.max(np.abs(truth[row.stage] - row.centre) - row.carried
                            - TOL * np.maximum(1.0, np.abs(truth[row.stage]))))
               for row in trace)


@settings(max_examples=max(10, settings().max_examples // 10))
@given(trace_cases())
def test_every_stage_encloses_the_float_forward(case):
    model, name, layer, images, sample, theta = case
    trace = remainder_trace(model, layer, images, sample=sample, theta=theta)
    depth = len(model.blocks)
    first = 0 if name == "patch_embed.proj" else int(name.split(".")[1])
    expected = ((["embed"] if name == "patch_embed.proj" else []) + [f"blocks.{i}" for i in range(first, depth)]
                + ["head"])
    assert [row.stage for row in trace] == expected
    assert _missed(case) <= 0.0
    assert trace[0].fresh == trace[0].carried and np.isnan(trace[0].composite)
    assert all(np.isfinite(row.composite) and row.composite >= 0 for row in trace[1:])
    assert all(row.to_logits >= 0 and row.fresh >= 0 for row in trace)
    assert trace[-1].to_logits == trace[-1].fresh
    assert len(trace_table(trace)) == len(trace) + 3


def test_known_bad_walk_without_the_target_block_is_caught(monkeypatch):
    real = remainder_trace_module.path_walk

    def skipping(*args, **kwargs):  # the rest of the target's own block replaced by the identity
        walk = real(*args, **kwargs)
        walk.stages[0] = (walk.stages[0][0], lambda x, rows: x)  # fc2's output taken as the block output
        return walk

    monkeypatch.setattr(remainder_trace_module, "path_walk", skipping)
    gen = torch.Generator().manual_seed(0)
    model = tiny_vit(1, 8, 2, 2, "gelu", "token", 1.0)
    images = torch.randn(2, 1, 8, 8, generator=gen, dtype=torch.float64)
    name = "blocks.0.mlp.fc2"
    layer = capture_layer(model, name, torch.rand(model.blocks[0].mlp.fc2.weight.shape, generator=gen) < 0.5, images)
    assert _missed((model, name, layer, images, 0, 1.0)) > 0.0


@given(arrays(np.float64, (5, 7), elements=st.floats(-3, 3)), arrays(np.float64, (7,), elements=st.floats(0, 2)))
def test_jacobian_measure_is_abs_jacobian_times_radius(weight, radius):
    w = torch.from_numpy(weight)
    got = _abs_jacobian_times(lambda x: x @ w.T, torch.zeros(1, 7, dtype=torch.float64), torch.from_numpy(radius))
    expected = float((np.abs(weight) @ radius).max())
    assert got == pytest.approx(expected, rel=1e-12, abs=1e-300)


def test_known_bad_jacobian_without_abs_is_caught():
    weight = np.array([[1.0, -1.0]])
    radius = np.array([1.0, 1.0])
    assert float((weight @ radius).max()) != pytest.approx(
        _abs_jacobian_times(lambda x: x @ torch.from_numpy(weight).T, torch.zeros(1, 2, dtype=torch.float64),
                            torch.from_numpy(radius)))


@pytest.mark.parametrize("kwargs, word",
                         [({"sample": 2}, "sample"), ({"theta": 1.5}, "theta"), ({"order": 0}, "order")])
def test_bad_arguments_raise_typed_errors(kwargs, word):
    model = tiny_vit(0, 8, 1, 1, "gelu", "token", 1.0)
    images = torch.randn(2, 1, 8, 8, dtype=torch.float64)
    layer = capture_layer(model, "blocks.0.mlp.fc2", torch.ones(8, 16, dtype=torch.bool), images)
    with pytest.raises(CertificateInputError, match=word):
        remainder_trace(model, layer, images, **kwargs)


def test_block_breakdown_ends_where_the_trace_stage_ends():
    gen = torch.Generator().manual_seed(3)
    model = tiny_vit(3, 8, 2, 3, "gelu", "token", 1.0)
    images = torch.randn(2, 1, 8, 8, generator=gen, dtype=torch.float64)
    layer = capture_layer(model, "patch_embed.proj",
                          torch.rand(model.patch_embed.proj.weight.shape, generator=gen) < 0.5, images)
    trace = remainder_trace(model, layer, images, sample=1, theta=0.5)
    rows = block_breakdown(model, layer, images, 2, sample=1, theta=0.5)
    assert [row.substage for row in rows] == list(BLOCK_SUBSTAGES)
    assert rows[-1].carried == trace[3].carried and rows[-1].composite == pytest.approx(trace[3].composite, rel=1e-12)
    assert len(breakdown_table(rows, trace[2].carried)) == len(rows) + 2
    with pytest.raises(CertificateInputError, match="block"):
        block_breakdown(model, capture_layer(model, "blocks.1.attn.qkv", torch.ones(24, 8, dtype=torch.bool), images),
                        images, 1)


def test_float_substages_are_timm_intermediates():
    model = tiny_vit(4, 8, 2, 1, "gelu", "token", 1.0)
    block = model.blocks[0]
    x = torch.randn(2, 5, 8, dtype=torch.float64)
    with torch.no_grad():
        assert torch.equal(float_substage(block, "attn.qkv")(x), block.attn.qkv(block.norm1(x)))
        assert torch.equal(block.attn.proj(float_substage(block, "attn.core")(x)),
                           float_substage(block, "attn.proj")(x))
        assert torch.equal(float_substage(block, "norm2.input")(x), x + block.attn(block.norm1(x)))
        assert torch.equal(float_substage(block, "output")(x), block(x))
    with pytest.raises(CertificateInputError, match="substage"):
        float_substage(block, "attn.softmax")


def test_jacobians_beyond_the_memory_limit_are_nan(monkeypatch):
    monkeypatch.setattr(remainder_trace_module, "MAX_JACOBIAN_ENTRIES", 5 * 7 - 1)
    w = torch.ones(5, 7, dtype=torch.float64)
    assert np.isnan(_abs_jacobian_times(lambda x: x @ w.T, torch.zeros(1, 7, dtype=torch.float64),
                                        torch.ones(7, dtype=torch.float64)))
