"""2:4 packed format and execution (ALGORITHMS.md 8.1, 8.5)."""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from pruning.calibration import ActivationCapture
from pruning.cast import cast_kn
from pruning.errors import PatternError
from pruning.kn_patterns import candidate_patterns, KNPattern
from pruning.magnitude import magnitude, magnitude_kn
from pruning.packed24 import SparseLinear24, convert_to_24, convert_to_dense, pack_24, unpack_24


def random_24(seed, d_out, groups, zero_fraction=0.0):
    g = torch.Generator().manual_seed(seed)
    cands = torch.from_numpy(candidate_patterns(KNPattern(2, 4)))
    keep = cands[torch.randint(0, 6, (d_out, groups), generator=g)].reshape(d_out, 4 * groups)
    w = torch.randn(d_out, 4 * groups, generator=g, dtype=torch.float64)
    w = torch.where(torch.rand(w.shape, generator=g) < zero_fraction, 0.0, w)
    return w * keep, keep


@given(seed=st.integers(0, 2**31 - 1), d_out=st.integers(1, 9), groups=st.integers(1, 6),
       zeros=st.sampled_from([0.0, 0.3, 1.0]))
def test_pack_unpack_round_trip_is_exact(seed, d_out, groups, zeros):
    w, keep = random_24(seed, d_out, groups, zeros)
    packed = pack_24(w, keep)
    assert packed.values.shape == (d_out, 2 * groups) and packed.codes.shape == (d_out, groups)
    assert packed.codes.dtype == torch.uint8 and int(packed.codes.max()) < 16
    assert torch.equal(unpack_24(packed), w)
    assert torch.equal(unpack_24(pack_24(w)), w)  # from the nonzeros alone
    pos = torch.stack([packed.codes & 3, packed.codes >> 2], -1).long()
    assert torch.equal(torch.zeros_like(keep.reshape(d_out, -1, 4)).scatter_(2, pos, True).reshape(keep.shape), keep)


def test_corrupted_metadata_is_caught_by_the_round_trip():
    w, keep = random_24(0, 4, 3)
    packed = pack_24(w, keep)
    bad = type(packed)(packed.values, packed.codes ^ 0b0101)  # flip the low bit of both positions
    assert not torch.equal(unpack_24(bad), w)


def test_non_24_input_names_the_layer_and_row():
    w = torch.tensor([[1.0, 2.0, 0.0, 0.0], [1.0, 2.0, 3.0, 0.0]])
    with pytest.raises(PatternError, match=r"blocks\.0\.fc1: row 1, group 0 has 3 nonzeros"):
        pack_24(w, name="blocks.0.fc1")
    with pytest.raises(PatternError, match=r"fc: row 0, group 0 keeps 3"):
        pack_24(w, torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]], dtype=torch.bool), name="fc")
    with pytest.raises(PatternError, match="d_in % 4"):
        pack_24(torch.zeros(2, 6), name="odd")


@given(seed=st.integers(0, 10_000), permute=st.booleans())
def test_sparse_linear_equals_the_masked_dense_layer(seed, permute):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(16, 12), nn.ReLU(), nn.Linear(12, 8), nn.Linear(8, 3))
    x = torch.randn(2, 5, 16)
    mask = cast_kn(model, "2:4", ActivationCapture(x), permute=permute)
    masked = mask.apply(model)
    sparse = convert_to_24(masked, mask)
    assert sum(isinstance(m, SparseLinear24) for m in sparse.modules()) == 2
    assert isinstance(sparse[3], nn.Linear)
    with torch.no_grad():
        torch.testing.assert_close(sparse(x), masked(x), rtol=1e-5, atol=1e-6)
        back = convert_to_dense(sparse)
        assert not any(isinstance(m, SparseLinear24) for m in back.modules())
        assert torch.equal(back[0].weight, masked[0].weight) and torch.equal(back[2].weight, masked[2].weight)
    state = sparse.state_dict()
    assert "0.codes" in state and ("0.input_permutation" in state) == permute


def test_convert_refuses_masks_that_are_not_2_4():
    model = nn.Sequential(nn.Linear(8, 8), nn.Linear(8, 2))
    with pytest.raises(PatternError, match="unstructured is not 2:4"):
        convert_to_24(model, magnitude(model, 0.5))
    with pytest.raises(PatternError, match="4:8 is not 2:4"):
        convert_to_24(model, magnitude_kn(model, "4:8", layers=["0"]))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="semi-structured 2:4 needs CUDA")
def test_cuda_semi_structured_matches_the_packed_execution():
    torch.manual_seed(0)
    layer = nn.Sequential(nn.Linear(256, 128), nn.Linear(128, 2))
    mask = magnitude_kn(layer, "2:4")
    masked = mask.apply(layer).half().cuda()
    sparse = convert_to_24(masked, mask)
    sparse[0].use_kernel("semi-structured")
    x = torch.randn(64, 256, device="cuda", dtype=torch.float16)
    with torch.no_grad():
        torch.testing.assert_close(sparse(x), masked(x), rtol=2e-2, atol=2e-2)
        assert torch.equal(sparse[0].kernel.weight.to_dense(), masked[0].weight)
