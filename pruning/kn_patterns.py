"""k:n keep patterns: parsing, candidate enumeration / sampling, and the exact-k check (ALGORITHMS.md 7.2-7.4).

A k:n pattern keeps exactly ``k`` of every ``n`` contiguous weights along the *input* axis of each
output row (groups are columns ``[g n, (g+1) n)``; for a conv, of the row-major flattened fan-in,
ALGORITHMS.md 0.2).  The candidate keep patterns of one group are the ``C(n, k)`` subsets in
``itertools.combinations(range(n), k)`` order, which is also the tie-break order of CAST (7.3).

Sampled candidate sets (ALGORITHMS.md 7.4, 11 C11):

* ``"paper"`` (OR2): when ``C(n, k) >= 5000`` draw 1,024 *distinct* patterns uniformly without
  replacement (kept in combinations order); below the threshold the enumeration is exact.
* ``"reference"``: 10,000 independent uniformly random k-subsets (duplicates possible), no
  threshold.  The random stream of the authors' code cannot be reproduced; only the law is.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
import torch

from .errors import PatternError, PruningParameterError

__all__ = [
    "KNPattern",
    "PATTERN_24",
    "SAMPLING_MODES",
    "candidate_patterns",
    "check_kn_groups",
    "MAX_EXACT_CANDIDATES",
]

#: Above this many candidates exact enumeration is refused (use a sampled mode) [I].
MAX_EXACT_CANDIDATES = 1_000_000
SAMPLING_MODES = ("none", "paper", "reference")
PAPER_SAMPLE_THRESHOLD = 5000
PAPER_SAMPLE_SIZE = 1024
REFERENCE_SAMPLE_SIZE = 10_000


@dataclass(frozen=True)
class KNPattern:
    """Keep exactly ``k`` of every ``n`` contiguous input-axis weights (``1 <= k < n``)."""

    k: int
    n: int

    def __post_init__(self) -> None:
        if not (isinstance(self.k, int) and isinstance(self.n, int)) or not 1 <= self.k < self.n:
            raise PruningParameterError(f"pattern: need integers 1 <= k < n, got k={self.k!r}, n={self.n!r}")

    @classmethod
    def parse(cls, spec: "str | KNPattern | tuple[int, int]") -> "KNPattern":
        """Accept ``"2:4"``, ``(2, 4)`` or a :class:`KNPattern`."""
        if isinstance(spec, KNPattern):
            return spec
        if isinstance(spec, tuple) and len(spec) == 2:
            return cls(int(spec[0]), int(spec[1]))
        if isinstance(spec, str) and spec.count(":") == 1:
            k, n = spec.split(":")
            if k.strip().isdigit() and n.strip().isdigit():
                return cls(int(k), int(n))
        raise PruningParameterError(f"pattern: expected 'k:n' (e.g. '2:4'), got {spec!r}")

    def __str__(self) -> str:
        return f"{self.k}:{self.n}"

    @property
    def n_candidates(self) -> int:
        """``|P| = C(n, k)`` (ALGORITHMS.md 7.4: 2:4 -> 6, 8:16 -> 12,870)."""
        return math.comb(self.n, self.k)

    @property
    def density(self) -> float:
        return self.k / self.n


PATTERN_24 = KNPattern(2, 4)


def _unrank_combinations(ranks: np.ndarray, n: int, k: int) -> np.ndarray:
    """Keep-pattern rows (bool, ``len(ranks) x n``) of the given lexicographic combination ranks."""
    ranks = ranks.astype(np.int64).copy()
    out = np.zeros((ranks.size, n), dtype=bool)
    start = np.zeros(ranks.size, dtype=np.int64)
    for pos in range(k):
        c = start.copy()
        remaining = k - 1 - pos
        for _ in range(n):
            count = np.array([math.comb(n - 1 - int(ci), remaining) if ci < n else 0 for ci in c], dtype=np.int64)
            move = ranks >= count
            if not move.any():
                break
            ranks = np.where(move, ranks - count, ranks)
            c = np.where(move, c + 1, c)
        out[np.arange(ranks.size), c] = True
        start = c + 1
    return out


def candidate_patterns(pattern: KNPattern, sampling: str = "none", seed: int = 42) -> np.ndarray:
    """Candidate keep patterns, a boolean ``(|P|, n)`` array (ALGORITHMS.md 7.4, C11).

    ``sampling="none"`` enumerates all ``C(n, k)`` patterns in ``combinations`` order.
    """
    if sampling not in SAMPLING_MODES:
        raise PruningParameterError(f"sampling: expected one of {SAMPLING_MODES}, got {sampling!r}")
    n, k, total = pattern.n, pattern.k, pattern.n_candidates
    rng = np.random.default_rng(seed)
    if sampling == "reference":
        draws = np.argsort(rng.random((REFERENCE_SAMPLE_SIZE, n)), axis=1)[:, :k]
        out = np.zeros((REFERENCE_SAMPLE_SIZE, n), dtype=bool)
        np.put_along_axis(out, draws, True, axis=1)
        return out
    if sampling == "paper" and total >= PAPER_SAMPLE_THRESHOLD:
        ranks = np.sort(rng.choice(total, size=PAPER_SAMPLE_SIZE, replace=False))
        return _unrank_combinations(ranks, n, k)
    if total > MAX_EXACT_CANDIDATES:
        raise PruningParameterError(
            f"pattern {pattern}: C(n,k) = {total} candidates is too many to enumerate; use sampling='paper'"
        )
    combos = np.array(list(itertools.combinations(range(n), k)), dtype=np.int64)
    out = np.zeros((total, n), dtype=bool)
    np.put_along_axis(out, combos, True, axis=1)
    return out


def check_kn_groups(keep2d: torch.Tensor, pattern: KNPattern, name: str) -> None:
    """Raise :class:`PatternError` unless every n-group of every row of ``keep2d`` keeps exactly k.

    ``keep2d`` is ``(d_out, fan_in)`` in the layout the groups are formed in (permuted if a
    permutation applies).  The message names the layer and the first offending (row, group).
    """
    d_out, fan_in = keep2d.shape
    if fan_in % pattern.n:
        raise PatternError(f"{name}: input width {fan_in} is not divisible by n={pattern.n} (pattern {pattern})")
    counts = keep2d.reshape(d_out, fan_in // pattern.n, pattern.n).sum(dim=2)
    bad = torch.nonzero(counts != pattern.k)
    if bad.numel():
        row, group = (int(v) for v in bad[0])
        raise PatternError(
            f"{name}: row {row}, group {group} keeps {int(counts[row, group])} weights, pattern {pattern} "
            f"needs exactly {pattern.k} ({bad.shape[0]} bad groups in total)"
        )
