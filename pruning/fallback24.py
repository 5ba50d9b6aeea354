"""Per-layer choice between 2:4 and dense execution from measured times (ALGORITHMS.md 8.1-8.2).

A converted model must never run slower than its dense twin by more than the timing noise, so each
:class:`pruning.packed24.SparseLinear24` is timed on its own deployed shape (``tokens x d_in``)
twice through its own ``forward`` — once with the 2:4 kernel (:mod:`pruning.kernels24`, default
cuSPARSELt), once with the dense fallback kernel — and keeps 2:4 if and only if

    dense_ms >= min_speedup * sparse_ms          (:func:`keeps_sparse`; min_speedup = 1 by default)

A layer whose 2:4 kernel cannot run (the library refuses its dtype or shape) runs dense.  Every
decision is returned as a :class:`LayerChoice` (the record: times, ratio, the kernel chosen and why).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from .errors import KernelUnavailableError, PruningParameterError
from .packed24 import SparseLinear24
from .timing24 import median_ms

__all__ = ["LayerChoice", "keeps_sparse", "choose_execution", "tune_24", "use_kernels"]

#: ``timer(fn, layer) -> ms``: the time of ``fn()`` (one forward of ``layer`` with its current kernel)
Timer = Callable[[Callable[[], object], SparseLinear24], float]


@dataclass(frozen=True)
class LayerChoice:
    """The measured times of one layer and the kernel it runs from now on (``chosen``)."""

    layer: str
    d_in: int
    d_out: int
    tokens: int
    sparse_kernel: str
    sparse_ms: float | None  # None: the 2:4 kernel could not run (``reason`` says why)
    dense_ms: float
    min_speedup: float
    chosen: str
    reason: str

    @property
    def speedup(self) -> float | None:
        """``dense_ms / sparse_ms`` (> 1: 2:4 is faster), ``None`` without a 2:4 time."""
        return None if self.sparse_ms is None else self.dense_ms / self.sparse_ms


def _check_time(value: float, what: str) -> None:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        raise PruningParameterError(f"{what}: a measured time must be a finite positive number of ms, got {value!r}")


def keeps_sparse(dense_ms: float, sparse_ms: float, min_speedup: float = 1.0) -> bool:
    """True iff ``dense_ms >= min_speedup * sparse_ms`` (module docstring)."""
    _check_time(dense_ms, "dense_ms")
    _check_time(sparse_ms, "sparse_ms")
    _check_time(min_speedup, "min_speedup")
    return dense_ms >= min_speedup * sparse_ms


def choose_execution(layer: str, shape: tuple[int, int, int], sparse_kernel: str, sparse_ms: float | None,
                     dense_ms: float, min_speedup: float = 1.0, unavailable: str = "") -> LayerChoice:
    """The :class:`LayerChoice` for measured times; ``shape = (d_in, d_out, tokens)``; ``sparse_ms=None`` runs dense."""
    d_in, d_out, tokens = shape
    if sparse_ms is None:
        _check_time(dense_ms, "dense_ms")
        chosen, reason = "dense", f"2:4 kernel unavailable: {unavailable}"
    elif keeps_sparse(dense_ms, sparse_ms, min_speedup):
        chosen, reason = sparse_kernel, f"2:4 {dense_ms / sparse_ms:.3f}x dense (>= {min_speedup:g})"
    else:
        chosen, reason = "dense", f"2:4 only {dense_ms / sparse_ms:.3f}x dense (< {min_speedup:g})"
    return LayerChoice(layer=layer, d_in=d_in, d_out=d_out, tokens=tokens, sparse_kernel=sparse_kernel,
                       sparse_ms=sparse_ms, dense_ms=dense_ms, min_speedup=min_speedup, chosen=chosen, reason=reason)


def tune_24(model: nn.Module, tokens: int, *, kernel: str = "cusparselt", min_speedup: float = 1.0,
            timer: Timer | None = None, warmup: int = 10, iters: int = 50, seed: int = 0) -> list[LayerChoice]:
    """Time every :class:`SparseLinear24` of ``model`` on ``tokens`` random rows, 2:4 against dense, and switch
    each to the faster (module docstring); returns the decisions in module order.

    ``kernel`` is a name of :data:`pruning.kernels24.KERNELS` or :data:`pruning.packed24.REFERENCE_EXECUTION`
    (the CPU-runnable reference, for dry runs).  ``timer(fn, layer) -> ms`` defaults to
    :func:`pruning.timing24.median_ms` (``warmup``, ``iters``) on the layer's device.  The model is changed in place
    (its modules' kernels only; no weight changes).
    """
    if not (isinstance(tokens, int) and tokens >= 1):
        raise PruningParameterError(f"tokens: must be a positive int, got {tokens!r}")
    _check_time(min_speedup, "min_speedup")
    generators: dict[torch.device, torch.Generator] = {}
    choices = []
    for name, module in model.named_modules():
        if not isinstance(module, SparseLinear24):
            continue
        device, dtype = module.values.device, module.values.dtype
        clock = timer or (lambda fn, _layer, device=device: median_ms(fn, warmup, iters, device))
        generator = generators.setdefault(device, torch.Generator(device=device).manual_seed(seed))
        x = torch.randn(tokens, module.in_features, generator=generator, device=device, dtype=dtype)
        sparse_ms, unavailable = None, ""
        with torch.inference_mode():
            try:
                module.use_kernel(kernel, probe_tokens=tokens)
                sparse_ms = clock(lambda: module(x), module)
            except KernelUnavailableError as exc:
                unavailable = str(exc)
            module.use_kernel("dense")
            dense_ms = clock(lambda: module(x), module)
        choice = choose_execution(name, (module.in_features, module.out_features, tokens), kernel, sparse_ms,
                                  dense_ms, min_speedup, unavailable)
        if choice.chosen != "dense":
            module.use_kernel(kernel, probe_tokens=tokens)
        choices.append(choice)
    return choices


def use_kernels(model: nn.Module, kernel: str = "cusparselt", *, probe_tokens: int = 4096) -> dict[str, str]:
    """Switch every :class:`SparseLinear24` of ``model`` to ``kernel`` without timing; a layer whose kernel
    cannot run gets the dense fallback.  Returns ``{layer: why}`` for those layers (empty: all run ``kernel``)."""
    refused = {}
    for name, module in model.named_modules():
        if isinstance(module, SparseLinear24):
            try:
                module.use_kernel(kernel, probe_tokens=probe_tokens)
            except KernelUnavailableError as exc:
                refused[name] = str(exc)
                module.use_kernel("dense")
    return refused
