"""The pruner registry (pruning.registry): names, options, aliases, data needs; the same masks as the methods."""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import pruning
from pruning import build_mask, list_pruners, pruner_spec
from pruning.cast import cast_kn
from pruning.calibration import ActivationCapture
from pruning.errors import CalibrationError, PruningParameterError
from pruning.magnitude import magnitude, magnitude_kn
from pruning.registry import register_pruner
from tests.pruning.toy_problem import toy_data, toy_mlp

PAPER_METHODS = {"magnitude", "rmt", "seb", "ser", "hybrid", "cast"}


def same_keep(a, b) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_every_method_of_the_paper_is_registered_with_its_aliases():
    names = set(list_pruners())
    assert PAPER_METHODS <= names
    assert {"magnitude-layerwise", "cast-2:4"} <= names
    assert list_pruners() == sorted(names)


def test_unknown_name_is_a_typed_error_listing_the_known_ones():
    with pytest.raises(PruningParameterError, match=r"unknown pruner 'magnitud'; known: cast, cast-2:4, hybrid"):
        build_mask("magnitud", toy_mlp(), sparsity=0.5)


def test_unknown_option_is_named():
    with pytest.raises(PruningParameterError, match=r"unknown option\(s\) \['compat'\]"):
        build_mask("magnitude", toy_mlp(), sparsity=0.5, compat="paper")


def test_magnitude_with_a_pattern_is_the_kn_baseline():
    model = toy_mlp(4)
    assert same_keep(build_mask("magnitude", model, pattern="2:4").keep, magnitude_kn(model, "2:4").keep)
    for options in ({}, {"sparsity": 0.5, "pattern": "2:4"}):
        with pytest.raises(PruningParameterError, match="exactly one of sparsity or pattern"):
            build_mask("magnitude", model, **options)


def test_alias_fixed_option_cannot_be_overridden():
    with pytest.raises(PruningParameterError, match=r"fixes \['scope'\]"):
        build_mask("magnitude-layerwise", toy_mlp(), sparsity=0.5, scope="global")


def test_registering_a_name_twice_is_refused():
    with pytest.raises(PruningParameterError, match="registered twice"):
        register_pruner("magnitude", summary="again")(lambda model, *, sparsity: None)


@given(seed=st.integers(0, 1000), sparsity=st.floats(0.0, 0.95), layerwise=st.booleans())
def test_magnitude_by_name_is_the_method(seed, sparsity, layerwise):
    model = toy_mlp(seed)
    name = "magnitude-layerwise" if layerwise else "magnitude"
    built = build_mask(name, model, sparsity=sparsity)
    direct = magnitude(model, sparsity, scope="layerwise" if layerwise else "global")
    assert same_keep(built.keep, direct.keep)


def test_alias_options_reach_the_method():
    """Known-bad guard: an alias whose fixed options were dropped would build the global mask."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.ReLU(), torch.nn.Linear(8, 4))
    with torch.no_grad():
        model[0].weight.mul_(100.0)  # global magnitude then prunes only the second layer
    layerwise = build_mask("magnitude-layerwise", model, sparsity=0.5)
    global_ = build_mask("magnitude", model, sparsity=0.5)
    assert not same_keep(layerwise.keep, global_.keep)


def test_cast_by_name_is_the_method_and_needs_calibration():
    model = toy_mlp(1)
    images, _ = toy_data(64, 2)
    built = build_mask("cast-2:4", model, calibration_images=images)
    direct = cast_kn(model, "2:4", ActivationCapture(images))
    assert same_keep(built.keep, direct.keep)
    assert pruner_spec("cast").data_need() == "calibration" and pruner_spec("cast").takes == "pattern"
    with pytest.raises(CalibrationError, match="needs calibration_images"):
        build_mask("cast", model)


def test_data_needs_follow_the_options():
    assert pruner_spec("rmt").data_need() == "train"
    assert pruner_spec("rmt").data_need(compat="reference") == "none"
    assert pruner_spec("ser").data_need() == pruner_spec("hybrid").data_need() == "train"
    assert pruner_spec("magnitude").data_need() == pruner_spec("seb").data_need() == "none"


def test_building_a_mask_never_changes_the_model():
    model = toy_mlp(3)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    for name in ("magnitude", "seb"):
        build_mask(name, model, sparsity=0.5)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_the_package_face_is_the_registry():
    assert pruning.build_mask is build_mask and pruning.list_pruners is list_pruners


def test_accepted_keeps_only_the_pruners_options():
    """Known-bad guard: passing everything offered would hit build_mask's unknown-option error."""
    offered = dict(sparsity=0.5, pattern=None, compat="paper", calibration_images=None, steps=3)
    assert pruner_spec("magnitude").accepted(**offered) == {"sparsity": 0.5}
    assert pruner_spec("rmt").accepted(**offered) == {"sparsity": 0.5, "compat": "paper", "steps": 3}
