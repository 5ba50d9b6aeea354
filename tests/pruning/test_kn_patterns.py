"""k:n candidate enumeration and sampling (ALGORITHMS.md 7.4, C11; counts of 12.1)."""

import itertools
import math

import numpy as np
import pytest
import torch

from pruning.errors import PatternError, PruningParameterError
from pruning.kn_patterns import KNPattern, candidate_patterns, check_kn_groups


@pytest.mark.parametrize("spec,count", [("2:4", 6), ("4:8", 70), ("6:12", 924), ("8:16", 12_870), ("12:16", 1_820)])
def test_candidate_counts_match_the_paper(spec, count):
    pat = KNPattern.parse(spec)
    cands = candidate_patterns(pat)
    assert pat.n_candidates == count and cands.shape == (count, pat.n)
    assert (cands.sum(axis=1) == pat.k).all()
    assert len(np.unique(cands, axis=0)) == count


def test_enumeration_is_in_combinations_order():
    cands = candidate_patterns(KNPattern(3, 7))
    kept = [tuple(np.flatnonzero(row)) for row in cands]
    assert kept == list(itertools.combinations(range(7), 3))
    assert kept != sorted(kept, reverse=True)  # known-bad order would differ


def test_paper_sampling_draws_distinct_sorted_subset_above_threshold():
    pat = KNPattern(8, 16)
    full = {tuple(r) for r in candidate_patterns(pat)}
    sampled = candidate_patterns(pat, "paper", seed=3)
    rows = [tuple(r) for r in sampled]
    assert len(rows) == 1024 and len(set(rows)) == 1024 and set(rows) <= full
    order = [tuple(np.flatnonzero(r)) for r in sampled]
    assert order == sorted(order)
    # below the threshold the paper variant enumerates exactly
    assert candidate_patterns(KNPattern(4, 8), "paper").shape == (70, 8)


def test_paper_sampling_unranks_like_itertools():
    """C(16,6) = 8008 >= 5000: every sampled row is the combination of its rank (checked with itertools)."""
    pat = KNPattern(6, 16)
    all_combos = list(itertools.combinations(range(16), 6))
    sampled = candidate_patterns(pat, "paper", seed=0)
    index = {c: i for i, c in enumerate(all_combos)}
    ranks = [index[tuple(np.flatnonzero(r))] for r in sampled]
    assert ranks == sorted(ranks) and len(set(ranks)) == 1024
    assert math.comb(16, 6) == len(all_combos)


def test_reference_sampling_has_duplicates_allowed_and_exact_k():
    cands = candidate_patterns(KNPattern(2, 4), "reference")
    assert cands.shape == (10_000, 4) and (cands.sum(axis=1) == 2).all()
    assert len(np.unique(cands, axis=0)) == 6  # duplicates: only 6 distinct 2:4 patterns exist


@pytest.mark.parametrize("spec", ["4:2", "2:2", "0:4", "a:b", "2-4", (5, 3)])
def test_bad_pattern_specs_raise(spec):
    with pytest.raises(PruningParameterError, match="pattern"):
        KNPattern.parse(spec)


def test_unknown_sampling_and_huge_exact_enumeration_raise():
    with pytest.raises(PruningParameterError, match="sampling"):
        candidate_patterns(KNPattern(2, 4), "sometimes")
    with pytest.raises(PruningParameterError, match="16:32"):
        candidate_patterns(KNPattern(16, 32))


def test_check_kn_groups_names_layer_row_and_group():
    keep = torch.tensor([[1, 1, 0, 0, 1, 0, 1, 0], [1, 1, 1, 0, 0, 0, 1, 1]], dtype=torch.bool)
    with pytest.raises(PatternError, match=r"blk\.fc1: row 1, group 0 keeps 3"):
        check_kn_groups(keep, KNPattern(2, 4), "blk.fc1")
    check_kn_groups(keep[:1], KNPattern(2, 4), "ok")
    with pytest.raises(PatternError, match="not divisible"):
        check_kn_groups(keep[:, :6], KNPattern(2, 4), "x")
