"""Execution kernels of :class:`pruning.packed24.SparseLinear24` on CUDA, and the stack they run on (ALGORITHMS.md 8.1).

Every kernel maps a 2-D input ``x`` of shape ``(tokens, d_in)`` (already in the kernel's input
order) to the row-major ``y = x Wᵀ + b`` of shape ``(tokens, d_out)``:

* :class:`CusparseltKernel` — cuSPARSELt directly: ``torch._cslt_compress(W)`` once, then
  ``torch._cslt_sparse_mm(W_c, xᵀ, b, transpose_result=True, alg_id=a)``, i.e. ``(W xᵀ)ᵀ`` written
  row-major by the library (no transposed output, no tensor-subclass dispatch).  The algorithm
  ``a`` is chosen once per layer by ``torch._cslt_sparse_mm_search`` on a probe of the layer's
  token count (``alg_id = 0``, ``searched = False`` where the search op is missing or fails).
  ``tokens`` is zero-padded to a multiple of :data:`TOKEN_MULTIPLE` (the dense-operand constraint).
* :func:`semi_structured_kernel` — ``F.linear`` with ``torch.sparse.to_sparse_semi_structured(W)``
  (the library's default backend: cuSPARSELt on Hopper, CUTLASS where forced or where cuSPARSELt
  is missing).
* :class:`LinearKernel` named ``dense`` — ``F.linear`` with the unpacked dense weight in the
  *original* input order (the input permutation folded back), the per-layer fallback of
  :mod:`pruning.fallback24`; it also runs on the CPU.

:func:`stack_versions` says which stack a measurement ran on.  No kernel claims a speed: which one
is fastest per shape is measured (``benchmarks/gpu_24.py``) and chosen by :mod:`pruning.fallback24`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from .errors import KernelUnavailableError, PruningParameterError

__all__ = ["KERNELS", "TOKEN_MULTIPLE", "LinearKernel", "CusparseltKernel", "semi_structured_kernel", "make_kernel",
           "cusparselt_features", "stack_versions"]

#: kernel names accepted by :meth:`pruning.packed24.SparseLinear24.use_kernel`
KERNELS = ("cusparselt", "semi-structured", "dense")
#: the token count is padded to a multiple of this for cuSPARSELt (its bf16/fp16 dense minimum is 8; 16 covers int8)
TOKEN_MULTIPLE = 16
#: weight dtypes cuSPARSELt multiplies here (the benchmark's endpoints)
CUSPARSELT_DTYPES = (torch.bfloat16, torch.float16)
#: cuSPARSELt's constraint on the sparse operand ``W`` (d_out, d_in) for 16-bit dtypes: both multiples of 16
SPARSE_MULTIPLE = 16


def cusparselt_features() -> dict:
    """Which cuSPARSELt entry points this torch build has (feature detection, torch >= 2.11)."""
    backend = getattr(torch.backends, "cusparselt", None)
    available = bool(backend is not None and backend.is_available())
    return {
        "available": available,
        "version": backend.version() if available else None,
        "compress": hasattr(torch, "_cslt_compress"),
        "sparse_mm": hasattr(torch, "_cslt_sparse_mm"),
        "algorithm_search": hasattr(torch, "_cslt_sparse_mm_search"),
    }


def stack_versions() -> dict:
    """torch / CUDA / cuSPARSELt versions, the semi-structured default backend and the GPU name."""
    from torch.sparse import SparseSemiStructuredTensor

    cuda = torch.cuda.is_available()
    features = cusparselt_features()
    default_backend = ("cutlass" if SparseSemiStructuredTensor._FORCE_CUTLASS or not features["available"]
                       else "cusparselt")
    return {
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cusparselt": features,
        "semi_structured_default_backend": default_backend,
        "gpu": torch.cuda.get_device_name() if cuda else None,
        "compute_capability": ".".join(map(str, torch.cuda.get_device_capability())) if cuda else None,
    }


@dataclass
class LinearKernel:
    """``F.linear(x, W, b)``: the dense fallback (``W`` in the original input order, ``permuted_input=False``)
    or, with ``W = to_sparse_semi_structured(...)`` of the permuted weight, the semi-structured kernel."""

    weight: torch.Tensor
    bias: torch.Tensor | None
    name: str = "dense"
    permuted_input: bool = False

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight, self.bias)


def _require_cuda(weight: torch.Tensor, kernel: str, layer: str) -> None:
    if not weight.is_cuda:
        raise KernelUnavailableError(f"{layer}: the {kernel} 2:4 kernel needs the module on a CUDA device, "
                                     f"it is on {weight.device}")


@dataclass
class CusparseltKernel:
    """cuSPARSELt ``(W xᵀ)ᵀ`` with fused transpose and a searched algorithm (module docstring)."""

    compressed: torch.Tensor
    bias: torch.Tensor | None
    alg_id: int
    searched: bool
    name: str = field(default="cusparselt", init=False)
    permuted_input: bool = field(default=True, init=False)

    @classmethod
    def build(cls, weight: torch.Tensor, bias: torch.Tensor | None, probe_tokens: int,
              layer: str) -> "CusparseltKernel":
        """Compress ``weight`` (exactly 2:4) and search the algorithm on a ``probe_tokens x d_in`` input."""
        _require_cuda(weight, "cusparselt", layer)
        features = cusparselt_features()
        if not (features["available"] and features["compress"] and features["sparse_mm"]):
            raise KernelUnavailableError(f"{layer}: this torch build has no cuSPARSELt ({features})")
        if weight.dtype not in CUSPARSELT_DTYPES:
            raise KernelUnavailableError(f"{layer}: cuSPARSELt runs {CUSPARSELT_DTYPES} here, the weight is "
                                         f"{weight.dtype}")
        d_out, d_in = weight.shape
        if d_out % SPARSE_MULTIPLE or d_in % SPARSE_MULTIPLE:
            raise KernelUnavailableError(f"{layer}: cuSPARSELt needs d_out and d_in multiples of {SPARSE_MULTIPLE}, "
                                         f"got ({d_out}, {d_in})")
        compressed = torch._cslt_compress(weight.contiguous())
        bias = None if bias is None else bias.detach().to(weight.dtype).contiguous()
        probe = torch.randn(_padded(probe_tokens), d_in, device=weight.device, dtype=weight.dtype)
        alg_id, searched = 0, False
        if features["algorithm_search"]:
            try:
                alg_id = int(torch._cslt_sparse_mm_search(compressed, probe.t(), bias=bias, transpose_result=True))
                searched = True
            except RuntimeError:  # a build whose search op is deprecated or broken: the library default stands
                pass
        return cls(compressed=compressed, bias=bias, alg_id=alg_id, searched=searched)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        tokens = x.shape[0]
        pad = _padded(tokens) - tokens
        x = F.pad(x, (0, 0, 0, pad)) if pad else x.contiguous()  # xᵀ must be column-major
        y = torch._cslt_sparse_mm(self.compressed, x.t(), self.bias, transpose_result=True, alg_id=self.alg_id)
        return y[:tokens] if pad else y


def _padded(tokens: int) -> int:
    return -(-tokens // TOKEN_MULTIPLE) * TOKEN_MULTIPLE


def semi_structured_kernel(weight: torch.Tensor, bias: torch.Tensor | None, layer: str) -> LinearKernel:
    """``F.linear`` with ``torch.sparse.to_sparse_semi_structured(weight)`` (the library's default path)."""
    _require_cuda(weight, "semi-structured", layer)
    from torch.sparse import to_sparse_semi_structured

    try:
        sparse = to_sparse_semi_structured(weight)
    except (RuntimeError, ValueError) as exc:  # the library's shape / dtype refusals
        raise KernelUnavailableError(f"{layer}: to_sparse_semi_structured refused: {str(exc).splitlines()[0]}") from exc
    return LinearKernel(weight=sparse, bias=bias, name="semi-structured", permuted_input=True)


def make_kernel(kind: str, packed_weight: torch.Tensor, original_weight: torch.Tensor, bias: torch.Tensor | None, *,
                probe_tokens: int, layer: str):
    """The kernel ``kind`` (:data:`KERNELS`) of one layer.

    ``packed_weight`` is the dense 2:4 weight in the module's (permuted) input order, ``original_weight``
    the same weight in the original input order (what the dense :class:`LinearKernel` multiplies).
    """
    if kind == "dense":
        return LinearKernel(weight=original_weight, bias=bias)
    if kind == "cusparselt":
        return CusparseltKernel.build(packed_weight, bias, probe_tokens, layer)
    if kind == "semi-structured":
        return semi_structured_kernel(packed_weight, bias, layer)
    raise PruningParameterError(f"{layer}: unknown 2:4 kernel {kind!r}; expected one of {KERNELS}")
