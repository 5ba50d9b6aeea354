"""Malformed masks are typed errors naming the layer or file (issue 19, item 1).

A keep-tensor must be bool or hold exactly {0, 1}; ``.bool()`` would read a soft 0.5, -1, 2 or NaN
as "kept" and audit a mask that prunes nothing.  A float permutation would be truncated; a mask file
whose metadata is malformed or does not list exactly its keep-tensors is refused.
"""

import json

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from safetensors.torch import save_file

from pruning.errors import InvalidMaskError
from pruning.mask import Mask, Provenance, binary_keep, integer_permutation

FLOAT_DTYPES = [np.float16, np.float32, np.float64]
INT_DTYPES = [np.int8, np.int16, np.int32, np.int64, np.uint8]


def mostly_binary(dtype):
    """Arrays of 0 / 1 with, sometimes, other values (0.5, -1, 2, NaN, inf, ...)."""
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        elements = st.one_of(st.sampled_from([0, 1]), st.integers(int(info.min), int(info.max)))
    else:
        elements = st.one_of(st.sampled_from([0.0, 1.0]), st.floats(width=np.dtype(dtype).itemsize * 8))
    return arrays(dtype, st.tuples(st.integers(1, 4), st.integers(1, 5)), elements=elements)


@given(st.sampled_from(FLOAT_DTYPES + INT_DTYPES).flatmap(mostly_binary))
def test_keep_tensor_is_accepted_exactly_when_every_entry_is_0_or_1(values):
    """Both sides computed exactly: accepted iff all entries are 0 or 1, and then ``keep == (values == 1)``.
    The known-bad ``.bool()`` reading turns 0.5 into True and fails the first branch."""
    tensor = torch.from_numpy(values)
    binary = np.isin(values, [0, 1]).all()
    if binary:
        keep = binary_keep("blocks.3.mlp.fc2", tensor)
        assert keep.dtype == torch.bool and torch.equal(keep, torch.from_numpy(values == 1))
    else:
        with pytest.raises(InvalidMaskError, match=r"^blocks\.3\.mlp\.fc2: keep-tensor .* must hold only 0 and 1"):
            binary_keep("blocks.3.mlp.fc2", tensor)


def test_bool_reading_would_be_wrong():
    """The known-bad case: ``.bool()`` of a soft mask keeps everything; ``binary_keep`` refuses it."""
    soft = torch.full((2, 3), 0.5)
    assert bool(soft.bool().all())
    with pytest.raises(InvalidMaskError, match="e.g. 0.5"):
        binary_keep("fc", soft)


@pytest.mark.parametrize("value", [0.5, -1.0, 2.0, float("nan")])
def test_mask_refuses_non_binary_keep_tensors(value):
    keep = torch.ones(4, 4)
    keep[1, 2] = value
    with pytest.raises(InvalidMaskError, match="^fc2: keep-tensor"):
        Mask(keep={"fc2": keep}, provenance=Provenance(method="hand-made"))
    with pytest.raises(InvalidMaskError, match="complex"):
        binary_keep("fc2", torch.ones(2, dtype=torch.complex64))
    with pytest.raises(InvalidMaskError, match="fc2: keep-tensor is not a tensor"):
        binary_keep("fc2", "all")


def test_float_and_bool_permutations_are_refused():
    keep = torch.ones(2, 4, dtype=torch.bool)
    for perm in (torch.tensor([0.7, 1.7, 2.7, 3.7]), torch.tensor([True, False, True, False])):
        with pytest.raises(InvalidMaskError, match="^fc: permutation must be an integer tensor"):
            Mask(keep={"fc": keep}, permutations={"fc": perm}, provenance=Provenance(method="hand-made"))
    assert torch.equal(integer_permutation("fc", np.array([3, 2, 1, 0], dtype=np.int32)), torch.tensor([3, 2, 1, 0]))


def _meta(**changes):
    meta = {"format_version": 1, "pattern": "unstructured", "group_axis": "input", "layers": ["fc"],
            "provenance": {"method": "hand-made", "options": {}, "sparsity": None, "calibration_source": None,
                           "seed": None}}
    meta.update(changes)
    return meta


def write_mask_file(path, metadata, tensors=None):
    tensors = {"keep/fc": torch.ones(2, 4, dtype=torch.bool)} if tensors is None else tensors
    raw = metadata if isinstance(metadata, str) else json.dumps(metadata)
    save_file(tensors, str(path), metadata={"mpcert_mask": raw})
    return path


MALFORMED_FILES = {
    "invalid JSON": ("{not json", None, "is not valid JSON"),
    "a JSON list": (json.dumps([1, 2]), None, "must be a JSON object, got list"),
    "missing pattern": ({k: v for k, v in _meta().items() if k != "pattern"}, None, "metadata has no 'pattern'"),
    "layers a string": (_meta(layers="fc"), None, "'layers' must be a JSON list"),
    "layers not names": (_meta(layers=[1]), None, "'layers' must list layer names"),
    "listed layer without tensor": (_meta(layers=["fc", "head"]), None, r"lists layers \['head'\] with no keep-tensor"),
    "unlisted keep-tensor": (_meta(), {"keep/fc": torch.ones(2, 4, dtype=torch.bool),
                                       "keep/head": torch.zeros(1, 2, dtype=torch.bool)},
                             r"keep-tensors \['keep/head'\] are not listed"),
    "foreign tensor": (_meta(), {"keep/fc": torch.ones(2, 4, dtype=torch.bool), "bias/fc": torch.ones(2)},
                       r"tensors \['bias/fc'\] are neither"),
    "unknown provenance key": (_meta(provenance={"method": "m", "colour": "red"}), None, "'provenance' has unknown"),
    "bad pattern": (_meta(pattern="2-4"), None, "metadata pattern: expected 'k:n'"),
    "soft keep-tensor": (_meta(), {"keep/fc": torch.full((2, 4), 0.5)}, "fc: keep-tensor .* must hold only 0 and 1"),
    "float permutation": (_meta(), {"keep/fc": torch.ones(2, 4, dtype=torch.bool), "perm/fc": torch.arange(4.0) + 0.7},
                          "fc: permutation must be an integer tensor"),
}


@pytest.mark.parametrize("case", list(MALFORMED_FILES))
def test_malformed_mask_files_are_refused_naming_the_problem(tmp_path, case):
    metadata, tensors, message = MALFORMED_FILES[case]
    path = write_mask_file(tmp_path / "mask.safetensors", metadata, tensors)
    with pytest.raises(InvalidMaskError, match=message):
        Mask.load(path)


def test_a_well_formed_file_still_loads(tmp_path):
    """The known-good twin of the malformed files above (same writer), so the refusals are not blanket ones."""
    mask = Mask.load(write_mask_file(tmp_path / "mask.safetensors", _meta()))
    assert list(mask.keep) == ["fc"] and bool(mask.keep["fc"].all())
