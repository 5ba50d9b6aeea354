"""rmt.weights.as_weight_matrix: layouts (ALGORITHMS.md 0.2) and typed errors for bad weights."""

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from rmt.errors import InvalidMatrixError
from rmt.weights import as_weight_matrix


def test_dense_numpy_is_float64_copy_of_values():
    w = np.arange(12, dtype=np.float32).reshape(3, 4) + 1.0
    out = as_weight_matrix(w)
    assert out.dtype == np.float64 and out.shape == (3, 4) and out.flags.c_contiguous
    np.testing.assert_array_equal(out, w.astype(np.float64))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16, torch.float64])
def test_torch_tensors_with_grad_are_converted(dtype):
    w = torch.randn(5, 7, dtype=dtype, requires_grad=dtype.is_floating_point and dtype != torch.float16)
    out = as_weight_matrix(w)
    np.testing.assert_array_equal(out, w.detach().double().numpy())


def test_conv_kernel_flattens_in_im2col_order():
    """conv2d(x, K) == W @ unfold(x): the column order of the flattened kernel is im2col's."""
    torch.manual_seed(0)
    kernel = torch.randn(6, 3, 3, 2, dtype=torch.float64)
    x = torch.randn(1, 3, 5, 4, dtype=torch.float64)
    W = torch.from_numpy(as_weight_matrix(kernel))
    assert tuple(W.shape) == (6, 3 * 3 * 2)
    direct = torch.nn.functional.conv2d(x, kernel).reshape(6, -1)
    lowered = W @ torch.nn.functional.unfold(x, kernel_size=(3, 2))[0]
    torch.testing.assert_close(lowered, direct, rtol=1e-12, atol=1e-12)
    # known-bad: a column-major flattening is not the im2col order
    wrong = torch.from_numpy(kernel.numpy().reshape(6, -1, order="F").copy())
    assert not torch.allclose(wrong @ torch.nn.functional.unfold(x, kernel_size=(3, 2))[0], direct)


def test_depthwise_conv_becomes_c_by_k2():
    assert as_weight_matrix(np.ones((32, 1, 7, 7))).shape == (32, 49)


@pytest.mark.parametrize(
    "bad, fragment",
    [
        (np.ones(5), "2-D"),
        (np.ones((2, 3, 4)), "2-D"),
        (np.ones((2, 3, 4, 5, 6)), "2-D"),
        (np.ones((0, 4)), "empty"),
        (np.ones((0, 3, 3, 3)), "empty"),
        (np.zeros((4, 4)), "zero"),
        (np.array([[1.0, np.nan], [0.0, 1.0]]), "NaN"),
        (np.array([[1.0, np.inf], [0.0, 1.0]]), "NaN or Inf"),
        (np.ones((3, 3), dtype=np.int64), "floating"),
        (np.ones((3, 3), dtype=bool), "floating"),
        (np.ones((3, 3), dtype=np.complex128), "floating"),
        (torch.ones(3, 3, dtype=torch.int32), "floating"),
        (torch.ones(3, 3, dtype=torch.complex64), "floating"),
        ("not a matrix", "floating"),
    ],
)
def test_bad_weights_raise_typed_error_naming_the_layer(bad, fragment):
    with pytest.raises(InvalidMatrixError, match=fragment) as info:
        as_weight_matrix(bad, name="blocks.3.mlp.fc1.weight")
    assert "blocks.3.mlp.fc1.weight" in str(info.value)


@given(
    hnp.arrays(
        np.float64,
        hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=6),
        elements=st.floats(allow_nan=True, allow_infinity=True, width=64),
    )
)
def test_random_matrices_either_convert_exactly_or_raise_typed(w):
    """Any float matrix: finite and not all zero -> converted exactly; otherwise InvalidMatrixError."""
    valid = bool(np.all(np.isfinite(w)) and np.any(w))
    if valid:
        np.testing.assert_array_equal(as_weight_matrix(w, name="L"), w)
    else:
        with pytest.raises(InvalidMatrixError, match="L"):
            as_weight_matrix(w, name="L")
