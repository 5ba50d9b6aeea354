"""Reproducible random streams for the finite-N experiments: one independent stream per configuration.

``child_rng(seed, *keys)`` and ``child_seed(seed, *keys)`` derive a stream from the experiment's ``seed``
and the configuration's integer keys (``N``, replicate, ...) through ``numpy.random.SeedSequence``, so
adding a configuration never changes the draws of another and a run is fixed by ``seed`` alone.
"""

from __future__ import annotations

import numpy as np

__all__ = ["child_rng", "child_seed"]


def _sequence(seed: int, keys: tuple[int, ...]) -> np.random.SeedSequence:
    return np.random.SeedSequence([int(seed), *(int(k) for k in keys)])


def child_rng(seed: int, *keys: int) -> np.random.Generator:
    """Generator for configuration ``keys`` of an experiment run with ``seed``."""
    return np.random.default_rng(_sequence(seed, keys))


def child_seed(seed: int, *keys: int) -> int:
    """A 63-bit integer seed for functions that take an ``int`` seed (e.g. ``gaussian_rectangular_split``)."""
    return int(_sequence(seed, keys).generate_state(2, np.uint64)[0] >> np.uint64(1))
