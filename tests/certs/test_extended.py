"""Extended-precision product enclosures (certs/intervals/extended.py) contain the exact rational product, are
about ``u |mid|`` wide, and a bound without the accumulation term is caught on a cancelling sum."""

from fractions import Fraction

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from certs.intervals import extended
from certs.intervals.extended import extended_conv2d_enclosure, extended_matmul_enclosure
from certs.intervals.interval import Interval, U

pytestmark = pytest.mark.skipif(not extended.AVAILABLE, reason="numpy longdouble is float64 on this platform")

_FLOATS = st.floats(-1e3, 1e3, allow_nan=False) | st.sampled_from([1.0, 2.0 ** -70, -1.0, 3.0 ** 20, 1e-300])


def _matrix(data, rows: int, cols: int) -> torch.Tensor:
    return torch.tensor(data.draw(st.lists(st.lists(_FLOATS, min_size=cols, max_size=cols),
                                           min_size=rows, max_size=rows)),
                        dtype=torch.float64)


def _contains_exact(box: Interval, x: torch.Tensor, w: torch.Tensor) -> bool:
    for i in range(x.shape[0]):
        for j in range(w.shape[0]):
            exact = sum(Fraction(a) * Fraction(b) for a, b in zip(x[i].tolist(), w[j].tolist()))
            if not Fraction(float(box.lo[i, j])) <= exact <= Fraction(float(box.hi[i, j])):
                return False
    return True


@given(st.integers(1, 3), st.integers(1, 40), st.integers(1, 3), st.data())
def test_matmul_enclosure_contains_the_exact_product_and_is_float64_tight(rows, inner, cols, data):
    x, w = _matrix(data, rows, inner), _matrix(data, cols, inner)
    box = extended_matmul_enclosure(x, w)
    assert _contains_exact(box, x, w)
    mid, radius = box.centre_radius()
    assert torch.all(radius <= 2.0 * U * mid.abs() + 1e-15 * (x.abs() @ w.abs().T) + 2.0 ** -1070)


@given(st.integers(1, 2), st.integers(1, 2), st.integers(1, 3), st.integers(1, 2), st.integers(0, 1), st.data())
def test_conv_enclosure_is_the_unfolded_product(channels, out, kernel, stride, padding, data):
    size = kernel + 2
    x = _matrix(data, channels * size, size).reshape(1, channels, size, size)
    w = _matrix(data, out * channels, kernel * kernel).reshape(out, channels, kernel, kernel)
    box = extended_conv2d_enclosure(x, w, (stride, stride), (padding, padding), (1, 1))
    assert box.shape == F.conv2d(x, w, stride=stride, padding=padding).shape
    cols = F.unfold(x, kernel, padding=padding, stride=stride)[0].T  # exact copies of the inputs (zeros padded)
    flat = box.rearrange(lambda t: t[0].reshape(out, -1).T)
    assert _contains_exact(flat, cols, w.reshape(out, -1))


def test_known_bad_bound_without_the_accumulation_term_misses_a_cancelling_sum():
    x = torch.tensor([[1.0, 2.0 ** -70, -1.0]], dtype=torch.float64)
    w = torch.ones(1, 3, dtype=torch.float64)
    box = extended_matmul_enclosure(x, w)
    assert _contains_exact(box, x, w)
    mid, _ = box.centre_radius()
    assert not _contains_exact(Interval.around(mid, U * mid.abs()), x, w)  # u |mid| alone: [0, 0] misses 2^-70
