"""Run the independent units of an audit over ``torch.distributed`` ranks, and launch local ranks.

The audit of :func:`verification.bridge.certify.certify` is a list of independent units (one single-layer
audit per sample set and layer, one per multi-layer step).  :func:`run_units` runs them in the current
process group: the ranks claim units in the given order (dearest first) from a shared counter of the
group's key-value store (``torch.distributed.TCPStore``), so a rank that finishes early takes the next unit;
each unit is computed by one rank exactly as a single process would compute it, so the gathered results do
not depend on the number of ranks (nor on which rank ran what).  ``all_gather_object`` then brings every
result and every rank's error to every rank: if one rank raised, every rank raises :class:`WorkerError`
naming it and its error (the caller writes nothing).  The progress bar (rank 0, stderr) counts the units
finished by all ranks.

:func:`launch` starts ``workers`` local ranks with the elastic launcher behind ``torchrun``
(:func:`torch.distributed.launcher.api.elastic_launch`, standalone c10d rendezvous, no restarts) and
returns rank 0's result; the same code runs multi-node under ``torchrun``, where :func:`init_from_env`
joins the group that ``torchrun`` describes in the environment.  Backend: ``gloo`` on the CPU, ``nccl``
where the units run on CUDA.
"""

from __future__ import annotations

import itertools
import os
import sys
import threading
import traceback
import uuid
import types
from datetime import timedelta
from multiprocessing.reduction import ForkingPickler
from typing import Any, Callable, Sequence

import torch
import torch.distributed as dist
from torch.distributed.elastic.multiprocessing.errors import ChildFailedError, record
from tqdm import tqdm

from rmt.errors import MPCertError

__all__ = ["WorkerError", "rank_and_size", "run_units", "launch", "init_from_env", "available_cores", "in_torchrun"]

#: Numbers the calls of :func:`run_units` (the same sequence on every rank): each call's counters have their own keys.
_CALLS = itertools.count()
#: How often rank 0 redraws the whole-job progress bar (seconds).
_POLL_S = 0.5


def _mappingproxy(items: dict) -> types.MappingProxyType:
    return types.MappingProxyType(items)


# The ranks are spawned: their arguments are pickled by multiprocessing's pickler, which learns here to carry the
# read-only mappings of frozen dataclasses (e.g. pruning.mask.Provenance.options).
ForkingPickler.register(types.MappingProxyType, lambda proxy: (_mappingproxy, (dict(proxy),)))


class WorkerError(MPCertError, RuntimeError):
    """A rank of a distributed audit failed; the message names the rank and its error."""


def available_cores() -> int:
    """The cores this process may run on (``os.sched_getaffinity`` where it exists, else ``os.cpu_count``)."""
    getter = getattr(os, "sched_getaffinity", None)
    return max(1, len(getter(0)) if getter is not None else (os.cpu_count() or 1))


def in_torchrun() -> bool:
    """This process was started by ``torchrun`` / the elastic launcher (its environment names a rank)."""
    return all(key in os.environ for key in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"))


def rank_and_size() -> tuple[int, int]:
    """``(rank, world size)`` of the default process group, ``(0, 1)`` without one."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def init_from_env(cuda: bool = False) -> None:
    """Join the process group described by ``torchrun``'s environment (``env://``), unless already in one.

    ``cuda``: the units run on CUDA (backend ``nccl``, this rank's device ``cuda:LOCAL_RANK``); else ``gloo``."""
    if dist.is_initialized():
        return
    if cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)) % torch.cuda.device_count())
    dist.init_process_group("nccl" if cuda else "gloo", init_method="env://")


def _store(run: str) -> dist.Store:
    """A client of the store that ``torchrun`` (or rank 0) serves at ``MASTER_ADDR:MASTER_PORT``, keys under ``run``."""
    client = dist.TCPStore(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), is_master=False,
                           timeout=timedelta(minutes=30))
    return dist.PrefixStore(run, client)


def run_units(units: Sequence[Any], run: Callable[[Any], Any], *, progress: bool = False,
              desc: str = "certify") -> list[Any]:
    """``[run(u) for u in units]`` over the ranks of the default process group (module docstring).

    Without a process group (or with one rank) the units run here in order.  Raises :class:`WorkerError` on every rank
    when any rank raised.
    """
    rank, size = rank_and_size()
    bar = tqdm(total=len(units), desc=desc, unit="audit", file=sys.stderr, disable=not progress or rank != 0)
    if size == 1:
        out = []
        with bar:  # closed on an error or a signal too (the CLI's message then starts on a line of its own)
            for unit in units:
                out.append(run(unit))
                bar.update()
        return out
    prefix = f"mpcert/{os.environ.get('TORCHELASTIC_RUN_ID', 'run')}/call{next(_CALLS)}/"
    store = _store(prefix)
    stop = threading.Event()
    if not bar.disable:  # rank 0 redraws the bar from the shared counter while its own unit runs
        watcher = threading.Thread(target=_watch, args=(bar, _store(prefix), stop), daemon=True)
        watcher.start()
    done: dict[int, Any] = {}
    error = None
    try:
        while (index := store.add("next", 1) - 1) < len(units):
            done[index] = run(units[index])
            store.add("done", 1)
    except Exception as exc:  # every rank must reach the gather to learn of it
        error = f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"
    gathered: list[Any] = [None] * size
    dist.all_gather_object(gathered, (error, done))
    stop.set()
    bar.n = sum(len(part) for _, part in gathered)
    bar.close()
    for r, (message, _) in enumerate(gathered):
        if message is not None:
            raise WorkerError(f"rank {r} of {size} failed: {message}")
    merged = {i: value for _, part in gathered for i, value in part.items()}
    return [merged[i] for i in range(len(units))]


def _watch(bar: tqdm, store: dist.Store, stop: threading.Event) -> None:
    """Redraw ``bar`` from the store's count of finished units every :data:`_POLL_S` seconds until ``stop``."""
    while not stop.wait(_POLL_S):
        bar.n = store.add("done", 0)
        bar.refresh()


@record
def _rank_main(threads: int, cuda: bool, function: Callable, args: tuple, kwargs: dict):
    """Entry of one launched rank: ``threads`` torch / BLAS threads, join the group, ``function(*args, **kwargs)``."""
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(threads)
    init_from_env(cuda)
    try:
        with threadpool_limits(threads):
            return function(*args, **kwargs)
    finally:
        dist.destroy_process_group()


def launch(workers: int, function: Callable, args: tuple = (), kwargs: dict | None = None, *,
           threads: int | None = None, cuda: bool = False):
    """Run ``function(*args, **kwargs)`` on ``workers`` local ranks (module docstring); rank 0's return value.

    ``threads``: torch / BLAS threads per rank (default: this process's torch threads shared out, at least 1).
    ``function`` and its arguments must pickle (the ranks are spawned).  A failing rank raises
    :class:`WorkerError` here with the rank's message; the other ranks are stopped.
    """
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    threads = max(1, torch.get_num_threads() // workers) if threads is None else int(threads)
    config = LaunchConfig(min_nodes=1, max_nodes=1, nproc_per_node=int(workers), run_id=f"mpcert-{uuid.uuid4().hex}",
                          rdzv_backend="c10d", rdzv_endpoint="localhost:0", max_restarts=0, monitor_interval=1.0)
    try:
        results = elastic_launch(config, _rank_main)(threads, cuda, function, tuple(args), dict(kwargs or {}))
    except ChildFailedError as exc:
        rank, failure = exc.get_first_failure()
        message = (failure.message.get("message", failure.message) if isinstance(failure.message, dict)
                   else failure.message)
        message = str(message).removeprefix(f"{WorkerError.__name__}: ")
        raise WorkerError(message if message.startswith("rank ")
                          else f"rank {rank} of {workers} failed: {message}") from None
    return results[0]
