"""Tests of the empirical spectral distributions and the KS distance (THEORY.md Definition 2.1)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from rmt.errors import InvalidMatrixError, InvalidParameterError
from rmt.esd import EmpiricalSpectrum, eig_esd, ks_distance, sv_esd

shapes = st.tuples(st.integers(1, 12), st.integers(1, 12))


def _random_matrix(seed: int, n: int, m: int, rank: int | None = None) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if rank is None:
        return rng.standard_normal((n, m))
    return rng.standard_normal((n, rank)) @ rng.standard_normal((rank, m))


@given(shape=shapes, seed=st.integers(0, 2**32 - 1), rank=st.one_of(st.none(), st.integers(0, 4)))
def test_sv_esd_is_transpose_invariant(shape, seed, rank):
    g = _random_matrix(seed, *shape, rank=rank)
    a, b = sv_esd(g), sv_esd(g.T)
    assert a.size == b.size == min(shape)
    assert np.allclose(a.values, b.values, rtol=1e-12, atol=1e-12 * max(1.0, float(a.values[-1])))
    assert a.weight == pytest.approx(1.0 / min(shape))


@given(shape=shapes, seed=st.integers(0, 2**32 - 1), rank=st.one_of(st.none(), st.integers(0, 4)))
def test_gram_eigenvalues_are_squared_singular_values_and_atom(shape, seed, rank):
    n, m = shape
    g = _random_matrix(seed, n, m, rank=rank)
    if not np.any(g):
        g[0, 0] = 1.0
    eig = eig_esd(g.T @ g)
    sv = sv_esd(g)
    assert eig.size == m
    # rank: skip the (rare) matrices with a squared singular value near the 1e-9 lambda_max clip
    rel = sv.values**2 / sv.values[-1] ** 2
    assume(not np.any((rel > 1e-13) & (rel < 1e-6)))
    r = int(np.sum(rel >= 1e-6))
    # non-zero eigenvalues of G^T G = squared non-zero singular values of G
    nonzero = eig.values[eig.values > 0.0]
    assert nonzero.size == r
    assert np.allclose(nonzero, np.sort(sv.values[-r:] ** 2), rtol=1e-9, atol=0.0)
    # atom at 0 of mass >= (M - min(N, M)) / M, exactly (M - rank) / M after zero-clipping
    assert eig.mass_at(0.0) >= (m - min(n, m)) / m - 1e-15
    assert eig.mass_at(0.0) == pytest.approx((m - r) / m)


def test_known_bad_unclipped_eigenvalues_miss_the_atom():
    """Known-bad: without the 1e-9 lambda_max clip, rounding noise hides the atom of a rank-deficient Gram."""
    g = _random_matrix(7, 5, 40)
    raw = EmpiricalSpectrum(np.linalg.eigvalsh(g.T @ g))
    assert raw.mass_at(0.0) < 35 / 40
    assert eig_esd(g.T @ g).mass_at(0.0) == pytest.approx(35 / 40)


def test_empirical_cdf_counts_ties():
    esd = EmpiricalSpectrum(np.array([2.0, 1.0, 1.0, 3.0]))
    assert list(esd.values) == [1.0, 1.0, 2.0, 3.0]
    assert esd.cdf(1.0) == 0.5 and esd.cdf_left(1.0) == 0.0
    assert esd.cdf(0.999) == 0.0 and esd.cdf(3.0) == 1.0 and esd.cdf_left(3.0) == 0.75
    assert esd.mass_at(1.0) == 0.5 and esd.mass_at(1.5) == 0.0


def _uniform_cdf(x):
    return np.clip(np.asarray(x, dtype=np.float64), 0.0, 1.0)


def _half_atom_cdf(x):
    """CDF of 1/2 delta_0 + 1/2 U(0, 1)."""
    x = np.asarray(x, dtype=np.float64)
    return np.where(x < 0.0, 0.0, 0.5 + 0.5 * np.clip(x, 0.0, 1.0))


def test_ks_distance_exact_small_cases():
    # a single point at 0.9 vs U(0, 1): the supremum is the left limit at 0.9
    assert ks_distance(np.array([0.9]), _uniform_cdf) == pytest.approx(0.9)
    # known-bad: a KS that only looks at right limits reports 0.1
    right_only = float(np.max(np.abs(EmpiricalSpectrum(np.array([0.9])).cdf([0.9]) - 0.9)))
    assert right_only == pytest.approx(0.1)
    # law with an atom: sample {0, 0.5} vs 1/2 delta_0 + 1/2 U(0, 1)
    assert ks_distance(np.array([0.0, 0.5]), _half_atom_cdf, jump_points=(0.0,)) == pytest.approx(0.25)
    # sample without zeros vs the atom law: the gap opens right at the atom
    assert ks_distance(np.array([0.6, 0.7]), _half_atom_cdf, jump_points=(0.0,)) == pytest.approx(0.8)


@given(
    values=st.lists(st.sampled_from([0.0, 0.1, 0.25, 0.5, 0.5, 0.75, 0.9, 1.0]), min_size=1, max_size=12),
)
def test_ks_distance_equals_dense_grid_supremum(values):
    """The jump-point evaluation equals the supremum over a dense grid that includes points just left
    and right of every jump (ties and the atom of the law included)."""
    sample = np.array(values)
    ks = ks_distance(sample, _half_atom_cdf, jump_points=(0.0,))
    grid = np.linspace(-0.5, 1.5, 4001)
    jumps = np.unique(np.concatenate([sample, [0.0]]))
    grid = np.concatenate([grid, jumps, jumps - 1e-12, jumps + 1e-12])
    esd = EmpiricalSpectrum(sample)
    brute = float(np.max(np.abs(esd.cdf(grid) - _half_atom_cdf(grid))))
    assert brute - 1e-9 <= ks <= brute + 1e-9


def test_bad_input_raises():
    with pytest.raises(InvalidMatrixError, match="G"):
        sv_esd(np.ones(3))
    with pytest.raises(InvalidMatrixError, match="G"):
        sv_esd(np.array([[1.0, np.nan]]))
    with pytest.raises(InvalidMatrixError, match="square"):
        eig_esd(np.ones((2, 3)))
    with pytest.raises(InvalidMatrixError, match="symmetric"):
        eig_esd(np.array([[1.0, 2.0], [0.0, 1.0]]))
    with pytest.raises(InvalidParameterError, match="empty"):
        EmpiricalSpectrum(np.array([]))
    with pytest.raises(InvalidParameterError, match="jump_points"):
        ks_distance(np.array([0.5]), _uniform_cdf, jump_points=(np.nan,))
