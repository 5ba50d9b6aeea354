"""Bad input gets typed errors (pruning.errors, subclasses of MPCertError) naming the layer / argument."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from pruning.calibration import ActivationCapture
from pruning.cast import cast_kn
from pruning.errors import (CalibrationError, InvalidWeightError, MaskMismatchError, PatternError,
                            PruningError, PruningParameterError, IneligibleLayerError)
from pruning.kn_patterns import KNPattern
from pruning.magnitude import magnitude, magnitude_kn
from rmt.errors import MPCertError


def model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 8), nn.LayerNorm(8), nn.Linear(8, 6), nn.Linear(6, 2))


def test_every_pruning_error_is_an_mpcert_error():
    for err in (CalibrationError, InvalidWeightError, MaskMismatchError, PatternError, PruningParameterError,
                IneligibleLayerError):
        assert issubclass(err, PruningError) and issubclass(err, MPCertError)


@pytest.mark.parametrize("s", [-0.1, 1.0, 1.5, math.nan])
def test_sparsity_outside_unit_interval(s):
    with pytest.raises(PruningParameterError, match="target_sparsity"):
        magnitude(model(), s)


def test_unknown_scope_and_unsupported_or_missing_layers():
    with pytest.raises(PruningParameterError, match="scope"):
        magnitude(model(), 0.5, scope="blockwise")
    with pytest.raises(IneligibleLayerError, match="'1' is a LayerNorm"):
        magnitude(model(), 0.5, layers=["1"])
    with pytest.raises(IneligibleLayerError, match="no module named 'blocks.9'"):
        magnitude(model(), 0.5, layers=["blocks.9"])
    with pytest.raises(IneligibleLayerError, match="no layer is eligible"):
        magnitude_kn(nn.Sequential(nn.Linear(6, 6), nn.Linear(6, 2)), "2:4")


def test_d_in_not_divisible_by_n_and_k_not_below_n():
    with pytest.raises(PatternError, match=r"2: Linear\(d_in=8, d_out=6\) cannot hold pattern 4:8"):
        magnitude_kn(model(), "4:8", layers=["0", "2"])
    with pytest.raises(PatternError, match="3: Linear"):
        magnitude_kn(model(), "2:4", layers=["3"])
    for spec in ("4:4", "5:4"):
        with pytest.raises(PruningParameterError, match="k < n"):
            KNPattern.parse(spec)
        with pytest.raises(PruningParameterError, match="pattern"):
            cast_kn(model(), spec, {"0": np.ones((3, 8)), "2": np.ones((3, 8))})
    with pytest.raises(PatternError, match=r"3: Linear\(d_in=6, d_out=2\) cannot hold pattern 2:4"):
        cast_kn(model(), "2:4", {"3": np.ones((3, 6))}, layers=["3"])


def test_nan_weights_are_named():
    m = model()
    with torch.no_grad():
        m[2].weight[1, 1] = float("nan")
    with pytest.raises(InvalidWeightError, match="2: weight has NaN"):
        magnitude(m, 0.5)
    with pytest.raises(InvalidWeightError, match="2: weight has NaN"):
        cast_kn(m, "2:4", {"0": np.ones((3, 8)), "2": np.ones((3, 8))})


def test_calibration_problems_are_named():
    m = model()
    with pytest.raises(CalibrationError, match=r"2: calibration must be \(rows >= 1\) x 8"):
        cast_kn(m, "2:4", {"0": np.ones((3, 8)), "2": np.ones((3, 6))})
    with pytest.raises(CalibrationError, match="2: no calibration"):
        cast_kn(m, "2:4", {"0": np.ones((3, 8))})
    with pytest.raises(CalibrationError, match="0: calibration activations have NaN"):
        cast_kn(m, "2:4", {"0": np.full((3, 8), np.nan), "2": np.ones((3, 8))})
    with pytest.raises(CalibrationError, match="calibration: expected a mapping"):
        cast_kn(m, "2:4", [np.ones((3, 8))])
    with pytest.raises(PruningParameterError, match="calibration"):
        cast_kn(m, "2:4")
    with pytest.raises(CalibrationError, match="2: the layer was not called"):
        ActivationCapture(torch.zeros(1, 8))(m, {"2": nn.Linear(8, 6)})


def test_bad_cast_options_and_a_dense_model_of_another_shape():
    m = model()
    calib = {"0": np.ones((3, 8)), "2": np.ones((3, 8))}
    for kwargs, arg in (({"alpha_ser": -1.0}, "alpha_ser"), ({"prior_compat": "x"}, "prior_compat"),
                        ({"importance": "x"}, "importance"), ({"sampling": "x"}, "sampling")):
        with pytest.raises(PruningParameterError, match=arg):
            cast_kn(m, "2:4", calib, **kwargs)
    other = nn.Sequential(nn.Linear(8, 4), nn.LayerNorm(4), nn.Linear(4, 6), nn.Linear(6, 2))
    with pytest.raises(MaskMismatchError, match="0: dense model"):
        cast_kn(m, "2:4", calib, dense=other)


def _data():
    g = torch.Generator().manual_seed(0)
    return torch.randn(16, 8, generator=g), torch.randint(0, 2, (16,), generator=g)


def _run(method, model, s, **options):
    """Every unstructured method through the common signature ``method(model, s, calibration=None, **options)``."""
    from pruning.finetune import FinetuneConfig
    from pruning.hybrid import hybrid_magnitude_ser
    from pruning.rmt_baseline import RegulariserConfig, classical_rmt
    from pruning.seb import seb
    from pruning.ser import ser

    short = FinetuneConfig(max_steps=1, batch_size=8)
    calls = {
        "magnitude": lambda: magnitude(model, s, None, **options),
        "seb": lambda: seb(model, s, None, **options),
        "rmt_paper": lambda: classical_rmt(model, s, None, data=_data(), finetune_config=short, **options),
        "rmt_reference": lambda: classical_rmt(model, s, None, compat="reference",
                                               regulariser=RegulariserConfig(steps=1), **options),
        "ser": lambda: ser(model, s, None, data=_data(), selection=short, keep_ft=short, **options),
        "hybrid": lambda: hybrid_magnitude_ser(model, s, None, data=_data(), selection=short, keep_ft=short,
                                               magnitude_ft=short, **options),
    }
    return calls[method]()


UNSTRUCTURED = ["magnitude", "seb", "rmt_paper", "rmt_reference", "ser", "hybrid"]


@pytest.mark.parametrize("method", UNSTRUCTURED)
def test_every_method_names_the_bad_argument_or_layer(method):
    for s in (-0.1, 1.0, math.nan):
        with pytest.raises(PruningParameterError, match="target_sparsity"):
            _run(method, model(), s)
    with pytest.raises(IneligibleLayerError, match="'1' is a LayerNorm"):
        _run(method, model(), 0.3, layers=["0", "1"])
    bad = model()
    with torch.no_grad():
        bad[3].weight[0, 2] = float("nan")
    with pytest.raises(InvalidWeightError, match="^3: weight has NaN"):
        _run(method, bad, 0.3)
