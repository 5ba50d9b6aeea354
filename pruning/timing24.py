"""Timing of a forward call for the 2:4 benchmarks and the per-layer fallback (ALGORITHMS.md 8.2).

:func:`median_ms` is the protocol of 8.2: ``warmup`` untimed calls, then the **median** of
``iters`` timed calls, with CUDA events on a CUDA device (the GPU time between two events,
synchronised after each call) and ``time.perf_counter`` on the CPU (wall time; no speed claim).
:func:`host_ms` is the host side alone: the median wall time to *issue* one call without waiting
for the GPU, so that ``host_ms`` close to :func:`median_ms` means the call is bound by host
overhead, not by the kernel.  :func:`cuda_graph` captures a call in a CUDA graph (replaying it costs
one launch: host overhead drops out of both endpoints alike).
"""

from __future__ import annotations

import statistics
import time
from typing import Callable

import torch

__all__ = ["median_ms", "host_ms", "cuda_graph"]


def median_ms(fn: Callable[[], object], warmup: int, iters: int, device: torch.device | str) -> float:
    """Median time of ``fn()`` in milliseconds over ``iters`` calls after ``warmup`` calls (module docstring)."""
    device = torch.device(device)
    for _ in range(warmup):
        fn()
    times = []
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        for _ in range(iters):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end))
    else:
        for _ in range(iters):
            start = time.perf_counter()
            fn()
            times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def host_ms(fn: Callable[[], object], iters: int, device: torch.device | str) -> float:
    """Median wall time to issue ``fn()`` (no synchronisation inside the timed span), in milliseconds."""
    device = torch.device(device)
    times = []
    for _ in range(iters):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return statistics.median(times)


def cuda_graph(fn: Callable[[], torch.Tensor], warmup: int = 3) -> Callable[[], torch.Tensor]:
    """``fn`` captured in a ``torch.cuda.CUDAGraph``: the returned callable replays it and returns its output.

    ``fn`` must read its inputs from fixed tensors (a closure) and run on the current CUDA device;
    it is warmed up on a side stream first, as the CUDA-graph documentation requires.
    """
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(warmup):
            fn()
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = fn()

    def replay() -> torch.Tensor:
        graph.replay()
        return out

    return replay
