"""Turn one layer weight (numpy array or torch tensor) into the 2-D float64 matrix of ALGORITHMS.md 0.2.

* A dense weight ``W`` of shape ``(d_out, d_in)`` (PyTorch ``Linear.weight`` layout) is used as is.
* A Conv2d kernel ``K`` of shape ``(C_out, C_in/groups, k_h, k_w)`` is flattened **row-major** to
  ``C_out x (C_in/groups * k_h * k_w)``: flat column ``j = c k_h k_w + u k_w + v``, the column order
  of the im2col ("unfold") patch matrix, so ``conv(x) == W @ unfold(x)`` (ALGORITHMS.md 0.2, 1.6).

Torch tensors are recognised by duck typing (a ``detach`` method) so that ``rmt`` never imports
torch.  Anything that cannot be analysed raises :class:`rmt.errors.InvalidMatrixError` naming the
layer: non-floating dtypes (integers, booleans, complex), ranks other than 2 or 4, empty arrays,
NaN/Inf entries, and the all-zero matrix (its spectrum has no bulk to fit).
"""

from __future__ import annotations

import numpy as np

from .errors import InvalidMatrixError

__all__ = ["as_weight_matrix"]


def _to_numpy(w, name: str) -> np.ndarray:
    if hasattr(w, "detach"):  # torch.Tensor (duck-typed: rmt never imports torch)
        tensor = w.detach().cpu()
        if getattr(tensor, "is_floating_point", lambda: False)():
            tensor = tensor.double()  # also handles float16 / bfloat16, which numpy cannot take
        try:
            return tensor.numpy()
        except (TypeError, RuntimeError) as exc:
            raise InvalidMatrixError(f"{name}: cannot convert tensor of dtype {tensor.dtype} to numpy ({exc})") from exc
    try:
        return np.asarray(w)
    except (TypeError, ValueError) as exc:
        raise InvalidMatrixError(f"{name}: not an array-like weight ({exc})") from exc


def as_weight_matrix(w, name: str = "weight") -> np.ndarray:
    """Return ``w`` as a C-contiguous float64 matrix (conv kernels flattened as in ALGORITHMS.md 0.2).

    Parameters
    ----------
    w:
        A 2-D dense weight or a 4-D conv kernel, as a numpy array or a torch tensor.
    name:
        Layer name used in error messages.

    Raises
    ------
    InvalidMatrixError
        For non-floating dtypes, ranks other than 2 and 4, empty or all-zero weights, NaN/Inf.
    """
    arr = _to_numpy(w, name)
    if arr.dtype.kind != "f":
        raise InvalidMatrixError(f"{name}: weight must have a real floating dtype, got {arr.dtype}")
    if arr.ndim not in (2, 4):
        raise InvalidMatrixError(
            f"{name}: weight must be 2-D (Linear) or 4-D (Conv2d kernel), got shape {tuple(arr.shape)}"
        )
    if arr.size == 0:
        raise InvalidMatrixError(f"{name}: weight is empty (shape {tuple(arr.shape)})")
    if arr.ndim == 4:
        arr = arr.reshape(arr.shape[0], -1)  # row-major: (C_out, C_in/g * k_h * k_w), im2col order
    matrix = np.ascontiguousarray(arr, dtype=np.float64)
    if not np.all(np.isfinite(matrix)):
        raise InvalidMatrixError(f"{name}: weight contains NaN or Inf entries")
    if not np.any(matrix):
        raise InvalidMatrixError(f"{name}: weight is identically zero; its spectrum has no bulk to fit")
    return matrix
