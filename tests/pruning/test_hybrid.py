"""Hybrid Magnitude–SER schedule (ALGORITHMS.md 6.3)."""

from __future__ import annotations

import math

import pytest
import torch

from pruning.errors import PruningParameterError
from pruning.finetune import FinetuneConfig, finetune
from pruning.hybrid import DEFAULT_GRID, hybrid_magnitude_ser, hybrid_schedule
from pruning.magnitude import magnitude
from pruning.mask import weight_sparsity
from tests.pruning.toy_problem import toy_data, toy_mlp

FT = FinetuneConfig(optimizer="sgd", lr=0.02, batch_size=16, max_steps=3)
SELECT = FinetuneConfig(optimizer="adamw", lr=1e-2, weight_decay=0.0, warmup_steps=0, batch_size=16, max_steps=3)


mlp = toy_mlp


def data(n: int = 64):
    return toy_data(n, seed=3)


def nested(earlier, later) -> bool:
    """Zeros stay zeros: every entry pruned in ``earlier`` is pruned in ``later``."""
    return all(bool((~earlier.keep[n] & later.keep[n]).sum() == 0) for n in earlier.keep)


def run(model, grid=(0.05, 0.10, 0.15, 0.20, 0.25, 0.30), seed=0, **kw):
    return hybrid_schedule(model, data(), grid, magnitude_ft=FT, keep_ft=FT, selection=SELECT, seed=seed, **kw)


def test_nested_stage_one_and_exact_sparsity_at_every_grid_point():
    result = run(mlp())
    stages = [p.stage for p in result.points]
    assert stages == ["magnitude"] * 4 + ["ser"] * 2 and result.ser_start == 0.25
    for point in result.points:
        report = point.mask.sparsity_report()
        assert report.zeros == math.floor(point.sparsity * report.total)
    stage_one = [p.mask for p in result.points if p.stage == "magnitude"]
    assert all(nested(a, b) for a, b in zip(stage_one, stage_one[1:]))
    assert weight_sparsity(result.model).zeros == result.points[-1].mask.sparsity_report().zeros


def test_known_bad_non_nested_pair_is_flagged():
    model = mlp()
    early = magnitude(model, 0.1)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(torch.rand_like(p))
    assert not nested(early, magnitude(model, 0.2))


def test_hybrid_equals_magnitude_pipeline_up_to_switch():
    grid = (0.05, 0.10, 0.15, 0.20)
    hybrid = run(mlp(), grid, seed=5).model
    manual = mlp()
    for s in grid:
        finetune(manual, magnitude(manual, s), data(), FinetuneConfig(**{**FT.to_json(), "seed": 5}), inplace=True,
                 progress=False)
    assert all(torch.equal(p, q) for p, q in zip(hybrid.parameters(), manual.parameters()))
    # known-bad: another seed reshuffles the batches and the weights differ
    other = run(mlp(), grid, seed=6).model
    assert any(not torch.equal(p, q) for p, q in zip(other.parameters(), manual.parameters()))


def test_drop_threshold_moves_the_switch():
    def evaluate(net):  # a score that falls by 10 points per unit of sparsity
        return 100.0 - 10.0 * weight_sparsity(net).global_sparsity

    grid = (0.1, 0.2, 0.3, 0.4)
    result = run(mlp(), grid, switch=0.1, evaluate=evaluate, drop_threshold=2.5)
    assert [p.stage for p in result.points] == ["magnitude"] * 3 + ["ser"] and result.ser_start == 0.4
    assert [p.score for p in result.points][:3] == pytest.approx([99.0, 98.0, 97.0], abs=0.01)
    plain = run(mlp(), grid, switch=0.1)  # known-bad reference: without the variant SER starts after 0.1
    assert [p.stage for p in plain.points] == ["magnitude"] + ["ser"] * 3


def test_hybrid_magnitude_ser_mask_and_no_mutation():
    model = mlp()
    before = [p.detach().clone() for p in model.parameters()]
    mask = hybrid_magnitude_ser(model, 0.27, data=data(), magnitude_ft=FT, keep_ft=FT, selection=SELECT, seed=1)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    report = mask.sparsity_report()
    assert report.zeros == math.floor(0.27 * report.total)
    assert mask.provenance.options["grid"] == [0.05, 0.1, 0.15, 0.2, 0.25, 0.27]
    assert mask.provenance.options["stages"][-1] == "ser" and mask.provenance.seed == 1
    assert DEFAULT_GRID == (0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7)


def test_bad_input_typed_errors():
    with pytest.raises(PruningParameterError, match="grid"):
        run(mlp(), (0.2, 0.1))
    with pytest.raises(PruningParameterError, match="grid"):
        run(mlp(), (0.2, 1.0))
    with pytest.raises(PruningParameterError, match="drop_threshold"):
        run(mlp(), (0.1,), drop_threshold=0.7)
    with pytest.raises(PruningParameterError, match="target_sparsity"):
        hybrid_magnitude_ser(mlp(), -0.5, data=data())
    with pytest.raises(PruningParameterError, match="grid_step"):
        hybrid_magnitude_ser(mlp(), 0.5, data=data(), grid_step=0.0)
