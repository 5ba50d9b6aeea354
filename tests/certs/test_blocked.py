"""Blocked sums and products (certs/intervals/blocked.py): value equals the plain result up to rounding, and
the stated ``units * u`` bound holds against exact rational arithmetic; an understated bound is caught."""

from fractions import Fraction

import torch
from hypothesis import given
from hypothesis import strategies as st

from certs.intervals.blocked import blocked_matmul, blocked_sum

U = Fraction(1, 2 ** 53)
_FLOATS = st.floats(-1e3, 1e3, allow_nan=False) | st.sampled_from([1.0, 2.0 ** -53, -(2.0 ** -30), 3.0 ** 20])


def _excess_of_dot(x: list[float], y: list[float], computed: float, units: int, underflow: bool = False) -> Fraction:
    """``|computed - exact| - units u sum |x_i y_i|`` (``- k 2^-1075`` for products that may underflow) in exact
    arithmetic (``> 0``: the bound fails)."""
    exact = sum(Fraction(a) * Fraction(b) for a, b in zip(x, y))
    scale = sum(abs(Fraction(a) * Fraction(b)) for a, b in zip(x, y))
    return abs(Fraction(computed) - exact) - units * U * scale - (len(x) * Fraction(1, 2 ** 1075) if underflow else 0)


@given(st.integers(1, 3), st.integers(1, 70), st.integers(1, 3), st.data())
def test_blocked_matmul_meets_its_bound_in_exact_arithmetic(rows, inner, cols, data):
    x = torch.tensor(data.draw(st.lists(st.lists(_FLOATS, min_size=inner, max_size=inner),
                                        min_size=rows, max_size=rows)),
                     dtype=torch.float64)
    w = torch.tensor(data.draw(st.lists(st.lists(_FLOATS, min_size=cols, max_size=cols),
                                        min_size=inner, max_size=inner)),
                     dtype=torch.float64)
    for y in (w, w.expand(rows, inner, cols)[:1].expand(1, inner, cols)):  # a weight, and a batched operand
        out, units = blocked_matmul(x if y.dim() == 2 else x[None], y)
        out = out.reshape(rows, cols)
        # two float evaluations of one product differ by at most the sum of their error bounds
        assert torch.all((out - x @ w).abs() <= (units + inner + 2) * 2.0 ** -53 * (x.abs() @ w.abs()) * (1 + 1e-9)
                         + 2 * inner * 2.0 ** -1074)
        for i in range(rows):
            for j in range(cols):
                assert _excess_of_dot(x[i].tolist(), w[:, j].tolist(), float(out[i, j]), units, underflow=True) <= 0


@given(st.lists(_FLOATS, min_size=1, max_size=200), st.integers(1, 20))
def test_blocked_sum_meets_its_bound_in_exact_arithmetic(terms, parts):
    x = torch.tensor(terms, dtype=torch.float64)
    total, units = blocked_sum(x, 0, parts=parts)
    assert _excess_of_dot(terms, [1.0] * len(terms), float(total), units) <= 0
    kept, _ = blocked_sum(x[None, :, None], 1, keepdim=True, parts=parts)
    assert kept.shape == (1, 1, 1) and float(kept) == float(total)


def test_units_are_short_for_the_vit_sizes_and_an_understated_bound_is_caught():
    assert blocked_matmul(torch.ones(2, 192), torch.ones(192, 3))[1] == 52
    assert blocked_matmul(torch.ones(2, 768), torch.ones(768, 3))[1] == 196
    assert blocked_sum(torch.ones(192), 0)[1] == 28
    terms = [1.0] + [2.0 ** -53] * 63  # one block, in order: every tiny term rounds away
    total, units = blocked_sum(torch.tensor(terms, dtype=torch.float64), 0, parts=1)
    assert units == 65 and _excess_of_dot(terms, [1.0] * 64, float(total), units) <= 0
    assert _excess_of_dot(terms, [1.0] * 64, float(total), 1) > 0  # known-bad: gamma_1 for 64 terms


def test_a_matrix_operand_keeps_the_short_last_block_and_a_dropped_block_is_caught():
    """Inner size 70 in 4 blocks of 18: the last block has 16 terms (no padding on the matrix path)."""
    x = torch.arange(1.0, 71.0, dtype=torch.float64)[None]
    w = torch.full((70, 2), 0.5, dtype=torch.float64)
    out, units = blocked_matmul(x, w)
    assert units == 22 and _excess_of_dot(x[0].tolist(), w[:, 0].tolist(), float(out[0, 0]), units) <= 0
    full = 18 * (70 // 18)  # known-bad: the partial products of the full blocks only
    dropped = sum(float(x[0, s:s + 18] @ w[s:s + 18, 0]) for s in range(0, full, 18))
    assert _excess_of_dot(x[0].tolist(), w[:, 0].tolist(), dropped, units) > 0
