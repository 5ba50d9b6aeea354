"""Per-layer 2:4 / dense choice (pruning.fallback24), the kernels of SparseLinear24 and the 2:4 checkpoint (load_24)."""

from unittest.mock import patch

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from pruning.calibration import ActivationCapture
from pruning.cast import cast_kn
from pruning.errors import KernelUnavailableError, MaskMismatchError, PruningParameterError
from pruning.fallback24 import choose_execution, keeps_sparse, tune_24, use_kernels
from pruning.kernels24 import stack_versions
from pruning.magnitude import magnitude_kn
from pruning.packed24 import REFERENCE_EXECUTION, SparseLinear24, convert_to_24, load_24

times = st.floats(1e-3, 1e3, allow_nan=False)


def _converted(seed: int, permute: bool):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(16, 12), nn.ReLU(), nn.Linear(12, 8), nn.ReLU(), nn.Linear(8, 3))
    x = torch.randn(2, 5, 16)
    mask = cast_kn(model, "2:4", ActivationCapture(x), permute=permute)
    masked = mask.apply(model)
    return model, masked, convert_to_24(masked, mask), x


@given(dense=times, sparse=times, margin=st.floats(0.5, 2.0))
def test_keeps_sparse_exactly_when_dense_is_at_least_margin_times_slower(dense, sparse, margin):
    assert keeps_sparse(dense, sparse, margin) == (dense >= margin * sparse)
    choice = choose_execution("fc1", (768, 3072, 25216), "cusparselt", sparse, dense, margin)
    assert (choice.chosen == "cusparselt") == (dense >= margin * sparse)
    assert choice.speedup == pytest.approx(dense / sparse)
    # the known-bad case: a layer where 2:4 is slower than dense must never stay sparse
    if sparse > dense:
        assert choose_execution("fc1", (768, 3072, 1), "cusparselt", sparse, dense).chosen == "dense"


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf")])
def test_measured_times_must_be_finite_and_positive(bad):
    with pytest.raises(PruningParameterError, match="sparse_ms"):
        keeps_sparse(1.0, bad)
    with pytest.raises(PruningParameterError, match="dense_ms"):
        choose_execution("fc", (4, 4, 1), "cusparselt", None, bad)


@given(seed=st.integers(0, 1000), permute=st.booleans(),
       sparse_faster=st.lists(st.booleans(), min_size=2, max_size=2))
def test_tune_follows_fake_timings_and_keeps_the_outputs(seed, permute, sparse_faster):
    _, masked, sparse, x = _converted(seed, permute)
    layers = [name for name, m in sparse.named_modules() if isinstance(m, SparseLinear24)]
    # (sparse, dense) times
    fake = {name: (1.0, 2.0) if faster else (3.0, 2.0) for name, faster in zip(layers, sparse_faster)}
    seen = []

    def timer(fn, layer):
        fn()  # the forward really runs with the kernel being timed
        seen.append((layer.layer_name, layer.execution))
        return fake[layer.layer_name][0 if layer.execution == REFERENCE_EXECUTION else 1]

    choices = tune_24(sparse, 7, kernel=REFERENCE_EXECUTION, timer=timer)
    assert seen == [(name, e) for name in layers for e in (REFERENCE_EXECUTION, "dense")]
    assert [c.layer for c in choices] == layers
    for choice, faster in zip(choices, sparse_faster):
        expected = REFERENCE_EXECUTION if faster else "dense"
        assert choice.chosen == expected == sparse.get_submodule(choice.layer).execution
        assert (choice.sparse_ms, choice.dense_ms) == fake[choice.layer]
    with torch.no_grad():
        torch.testing.assert_close(sparse(x), masked(x), rtol=1e-5, atol=1e-6)


def test_tune_falls_back_to_dense_where_the_kernel_cannot_run():
    _, masked, sparse, x = _converted(0, permute=True)
    if torch.cuda.is_available():
        pytest.skip("checks the CPU refusal of the CUDA kernel")
    choices = tune_24(sparse, 4, timer=lambda fn, layer: 1.0)  # default kernel: cuSPARSELt, CUDA-only
    assert all(c.chosen == "dense" and c.sparse_ms is None and "CUDA" in c.reason for c in choices)
    assert all(m.execution == "dense" for m in sparse.modules() if isinstance(m, SparseLinear24))
    with torch.no_grad():
        torch.testing.assert_close(sparse(x), masked(x), rtol=1e-5, atol=1e-6)
    refused = use_kernels(sparse, "semi-structured")
    assert set(refused) == {"0", "2"} and all("CUDA device" in why for why in refused.values())


def test_kernel_refusals_are_typed_and_name_the_layer():
    _, _, sparse, _ = _converted(0, permute=False)
    if not torch.cuda.is_available():
        with pytest.raises(KernelUnavailableError, match=r"^2: the cusparselt 2:4 kernel needs .* CUDA"):
            sparse[2].use_kernel("cusparselt")
    with pytest.raises(PruningParameterError, match="0: unknown 2:4 kernel 'cutlas'"):
        sparse[0].use_kernel("cutlas")
    with pytest.raises(PruningParameterError, match="tokens"):
        tune_24(sparse, 0)


def test_moving_the_module_drops_its_kernel():
    _, _, sparse, _ = _converted(0, permute=False)
    sparse[0].use_kernel("dense")
    assert sparse[0].execution == "dense"
    sparse.double()
    assert sparse[0].execution == REFERENCE_EXECUTION  # a stale fp32 kernel would fail on fp64 input


def test_stack_versions_names_the_stack():
    stack = stack_versions()
    assert stack["torch"] == torch.__version__ and set(stack["cusparselt"]) >= {"available", "version",
                                                                                "algorithm_search"}
    assert (stack["gpu"] is None) == (not torch.cuda.is_available())


@given(seed=st.integers(0, 1000), permute=st.booleans())
def test_checkpoint_loads_as_the_24_model(seed, permute):
    dense_source, masked, sparse, x = _converted(seed, permute)
    fresh = nn.Sequential(nn.Linear(16, 12), nn.ReLU(), nn.Linear(12, 8), nn.ReLU(), nn.Linear(8, 3))
    loaded = load_24(fresh, sparse.state_dict())
    assert [type(m).__name__ for m in loaded] == ["SparseLinear24", "ReLU", "SparseLinear24", "ReLU", "Linear"]
    assert all(isinstance(m, nn.Linear) for m in fresh if not isinstance(m, nn.ReLU))  # the input is left alone
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), masked(x), rtol=1e-5, atol=1e-6)
        assert not torch.equal(loaded(x), dense_source(x))  # it is the pruned model, not the source
    assert (loaded[0].input_permutation is not None) == permute


def test_checkpoint_that_does_not_fit_is_refused():
    _, _, sparse, _ = _converted(0, permute=True)
    state = sparse.state_dict()
    with pytest.raises(MaskMismatchError, match="0: the 2:4 checkpoint packs it, the model has ReLU"):
        load_24(nn.Sequential(nn.ReLU(), nn.ReLU(), nn.Linear(12, 8), nn.ReLU(), nn.Linear(8, 3)), state)
    wide = nn.Sequential(nn.Linear(32, 12), nn.ReLU(), nn.Linear(12, 8), nn.ReLU(), nn.Linear(8, 3))
    with pytest.raises(MaskMismatchError, match=r"0: packed values / codes do not fit an nn.Linear\(32, 12\)"):
        load_24(wide, state)
    fresh = nn.Sequential(nn.Linear(16, 12), nn.ReLU(), nn.Linear(12, 8), nn.ReLU(), nn.Linear(8, 3))
    corrupt = dict(state, **{"2.codes": state["2.codes"] ^ 0b0101})  # the known-bad metadata: p0 >= p1 somewhere
    with pytest.raises(MaskMismatchError, match="2: stored 2:4 codes"):
        load_24(fresh, corrupt)
    with pytest.raises(MaskMismatchError, match="2: stored input_permutation"):
        load_24(fresh, dict(state, **{"2.input_permutation": torch.zeros(12, dtype=torch.long)}))
    with pytest.raises(MaskMismatchError, match="Missing key"):
        load_24(fresh, {k: v for k, v in state.items() if k != "4.bias"})


@pytest.mark.skipif(not torch.cuda.is_available(), reason="2:4 kernels need CUDA")
@pytest.mark.parametrize("kernel", ["cusparselt", "semi-structured"])
@pytest.mark.parametrize("tokens", [64, 100])  # 100: not a multiple of the padding unit
def test_cuda_kernels_match_the_masked_dense_layer(kernel, tokens):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(256, 128), nn.Linear(128, 2))
    mask = magnitude_kn(model, "2:4")
    masked = mask.apply(model).to("cuda", torch.bfloat16)
    sparse = convert_to_24(masked, mask)
    sparse[0].use_kernel(kernel, probe_tokens=tokens)
    x = torch.randn(3, tokens, 256, device="cuda", dtype=torch.bfloat16)
    with torch.no_grad():
        y = sparse(x)
        assert y.is_contiguous() and y.shape == (3, tokens, 2)
        torch.testing.assert_close(y, masked(x), rtol=3e-2, atol=3e-2)


def _cslt_contract(compressed, dense_b, bias=None, alpha=None, out_dtype=None, transpose_result=False, alg_id=0,
                   **kwargs):
    """torch._cslt_sparse_mm's contract, on the uncompressed A: ``A @ B + bias[:, None]``, returned transposed
    (contiguous ``(n, m)``) when ``transpose_result``."""
    result = compressed @ dense_b + (0 if bias is None else bias[:, None])
    return result.t().contiguous() if transpose_result else result


@given(tokens=st.integers(1, 40), bias=st.booleans(), strided=st.booleans())
def test_cusparselt_kernel_pads_transposes_and_slices_as_the_op_contract_requires(tokens, bias, strided):
    """The wrapper logic of CusparseltKernel against the op's contract (the real op: the CUDA test above)."""
    from pruning.kernels24 import TOKEN_MULTIPLE, CusparseltKernel

    calls = []

    def fake(compressed, dense_b, *args, **kwargs):
        calls.append(tuple(dense_b.shape))
        return _cslt_contract(compressed, dense_b, *args, **kwargs)

    g = torch.Generator().manual_seed(tokens)
    weight = torch.randn(8, 12, generator=g, dtype=torch.float64)
    b = torch.randn(8, generator=g, dtype=torch.float64) if bias else None
    x = torch.randn(tokens, 24 if strided else 12, generator=g, dtype=torch.float64)[:, ::2 if strided else 1]
    kernel = CusparseltKernel(compressed=weight, bias=b, alg_id=0, searched=False)
    with patch.object(torch, "_cslt_sparse_mm", fake):
        y = kernel(x)
    assert calls == [(12, -(-tokens // TOKEN_MULTIPLE) * TOKEN_MULTIPLE)]  # xᵀ, tokens padded to the multiple
    assert y.shape == (tokens, 8) and y.is_contiguous()
    torch.testing.assert_close(y, torch.nn.functional.linear(x, weight, b))
