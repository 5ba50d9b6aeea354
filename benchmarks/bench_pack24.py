"""Benchmarks of 2:4 packing (``pruning.packed24``, ALGORITHMS.md 8.1) against a per-row loop.

Run: ``.venv/bin/python -m pytest benchmarks/bench_pack24.py -s`` (results: benchmarks/RESULTS-pruning.md).

Workload: a 3072x768 fp32 weight (ViT-B fc1) with a random exact-2:4 mask.  ``pack_24`` /
``unpack_24`` are timed with pytest-benchmark; ``test_throughput_ratio_against_loop`` times them
interleaved with :func:`loop_pack` / :func:`loop_unpack` (one row at a time) and prints weights/s
and ratios; the results must be identical.
"""

from __future__ import annotations

import pytest
import torch
from timing import timed_median

from pruning.kn_patterns import KNPattern, candidate_patterns
from pruning.packed24 import Packed24, pack_24, unpack_24

SHAPE = (3072, 768)
REPEATS = 5


@pytest.fixture(scope="module")
def weight_24():
    g = torch.Generator().manual_seed(0)
    cands = torch.from_numpy(candidate_patterns(KNPattern(2, 4)))
    keep = cands[torch.randint(0, 6, (SHAPE[0], SHAPE[1] // 4), generator=g)].reshape(SHAPE)
    return torch.randn(SHAPE, generator=g) * keep, keep


def loop_pack(w: torch.Tensor, keep: torch.Tensor) -> Packed24:
    values, codes = [], []
    for row_w, row_k in zip(w, keep):
        pos = torch.nonzero(row_k.reshape(-1, 4))[:, 1].reshape(-1, 2)
        values.append(torch.gather(row_w.reshape(-1, 4), 1, pos).reshape(-1))
        codes.append((pos[:, 0] | (pos[:, 1] << 2)).to(torch.uint8))
    return Packed24(torch.stack(values), torch.stack(codes))


def loop_unpack(packed: Packed24) -> torch.Tensor:
    rows = []
    for vals, code in zip(packed.values, packed.codes):
        pos = torch.stack([code.long() & 3, code.long() >> 2], 1)
        rows.append(torch.zeros(code.numel(), 4).scatter_(1, pos, vals.reshape(-1, 2)).reshape(-1))
    return torch.stack(rows)


def test_pack_24(benchmark, weight_24):
    benchmark.pedantic(pack_24, args=weight_24, rounds=REPEATS, iterations=1)


def test_unpack_24(benchmark, weight_24):
    packed = pack_24(*weight_24)
    benchmark.pedantic(unpack_24, args=(packed,), rounds=REPEATS, iterations=1)


def test_throughput_ratio_against_loop(weight_24):
    w, keep = weight_24
    t_pack, packed = timed_median(lambda: pack_24(w, keep), REPEATS)
    t_loop_pack, packed_loop = timed_median(lambda: loop_pack(w, keep), REPEATS)
    assert torch.equal(packed.values, packed_loop.values) and torch.equal(packed.codes, packed_loop.codes)
    t_unpack, dense = timed_median(lambda: unpack_24(packed), REPEATS)
    t_loop_unpack, dense_loop = timed_median(lambda: loop_unpack(packed), REPEATS)
    assert torch.equal(dense, w) and torch.equal(dense_loop, w)
    n = w.numel()
    print(f"\npack_24   {n / t_pack / 1e6:.0f} M weights/s, loop {n / t_loop_pack / 1e6:.1f} M/s, "
          f"ratio {t_loop_pack / t_pack:.1f}x")
    print(f"unpack_24 {n / t_unpack / 1e6:.0f} M weights/s, loop {n / t_loop_unpack / 1e6:.1f} M/s, "
          f"ratio {t_loop_unpack / t_unpack:.1f}x")
