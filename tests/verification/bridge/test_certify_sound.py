"""certify(..., lipschitz="sound"): per-layer labels, fallback with a reason, loud violations of sound bounds."""

import dataclasses

import numpy as np
import pytest

from certs.errors import CertificateInputError
from pruning.magnitude import magnitude
from pruning.mask import Mask, Provenance
from verification.bridge import certify as certify_module
from verification.bridge.certify import certify
from verification.models.datasets import calibration_subset, load_default_dataset
from verification.models.default_model import build_default_model
from tests.verification.cast_masks import cast_24_subset
from tests.verification.single_thread import one_thread  # noqa: F401  (autouse)

#: A late block (within the enclosure's reach on the default model), the head, and block 0 (beyond it at budget 2:
#: its 2-piece start blows up in block 0's softmax and no piece may be split).
LAYERS = ("blocks.3.mlp.fc1", "head", "blocks.0.attn.qkv")


@pytest.fixture(scope="module")
def env():
    model = build_default_model()
    cal = calibration_subset(load_default_dataset(), 6, 2)
    return model, cal, cast_24_subset(model, cal.images, LAYERS)


def test_sound_layers_are_certificates_and_the_rest_say_why(env):
    model, cal, mask = env
    report = certify(model, mask, cal, grid=2, fit=False, lipschitz="sound", sound_budget=2)
    by_layer = {a.layer: a for a in report.calibration}
    late = by_layer["blocks.3.mlp.fc1"]
    assert late.is_sound and late.budget.label == "sound" and late.theorem_5_4.bound.label == "sound"
    assert np.all(late.lipschitz.values >= late.lipschitz_estimate * (1 - 1e-12))
    assert late.sound_to_estimate_median >= 1.0 and late.violations() == []
    margin = late.corollary_5_2
    assert late.certified_unchanged == int(np.count_nonzero(~margin.at_risk_prediction))
    # the rounding term of the computed logits against the engine's exact enclosures (FINDINGS F23) enters the risk test
    assert np.all(np.isfinite(margin.rounding)) and np.all(margin.rounding > 0)
    allowance = np.nextafter(margin.eta + margin.rounding, np.inf)
    assert np.array_equal(margin.at_risk_true, np.abs(margin.true_margin) <= 2.0 * allowance)
    early = by_layer["blocks.0.attn.qkv"]
    assert not early.is_sound and early.budget.label == "estimate" and "max_subintervals=2" in early.sound_unavailable
    assert np.all(early.corollary_5_2.rounding == 0.0)  # an estimate has no rounding term
    assert report.multilayer.theorem_5_8.bound.label == "estimate"  # one step without a sound L_s
    assert report.lipschitz_labels()["sound"] >= 1 and "partly certificates" in report.to_markdown()


def test_an_unsound_interval_bound_is_reported_as_a_sound_violation(env, monkeypatch):
    """Known-bad: a 'sound' L_s that is far too small must surface as SOUND BOUND VIOLATED, not pass quietly."""
    model, cal, mask = env
    real = certify_module.sound_path_bounds

    def shrunk(*args, **kwargs):
        bounds = real(*args, **kwargs)
        lip = bounds.lipschitz
        return dataclasses.replace(bounds, lipschitz=type(lip)(lip.values * 1e-3, lip.label, lip.method + "-shrunk"))

    monkeypatch.setattr(certify_module, "sound_path_bounds", shrunk)
    one = Mask(keep={"blocks.3.mlp.fc1": mask.keep["blocks.3.mlp.fc1"]}, provenance=mask.provenance,
               pattern=mask.pattern)
    report = certify(model, one, cal, grid=2, fit=False, multilayer=False, lipschitz="sound", sound_device="cpu")
    assert any("SOUND BOUND VIOLATED" in v for v in report.violations())
    assert report.options["sound_budget"] == certify_module.SOUND_BUDGET and report.options["sound_device"] == "cpu"


def test_unknown_lipschitz_method_or_bad_budget_is_a_typed_error(env):
    model, cal, mask = env
    with pytest.raises(CertificateInputError, match="lipschitz"):
        certify(model, mask, cal, lipschitz="exact")
    for budget in (0, 2.5, True):
        with pytest.raises(CertificateInputError, match="sound_budget"):
            certify(model, mask, cal, lipschitz="sound", sound_budget=budget)
    with pytest.raises(CertificateInputError, match="sound_device"):
        certify(model, mask, cal, lipschitz="sound", sound_device="gpu")


def test_a_larger_sound_budget_reaches_an_earlier_layer(env):
    """CAST 2:4 on blocks.1.attn.qkv: the 2-piece start blows up in the softmax even at order 8 (the loose
    order) and a budget of 4 allows no cover fine enough; with a budget of 64 the loose pieces are split into 8ths
    and the layer gets a sound L_s that dominates the estimate."""
    model, cal, _ = env
    name = "blocks.1.attn.qkv"
    one = cast_24_subset(model, cal.images, (name,))
    data = (cal.images[:3], cal.labels[:3])
    small = certify(model, one, data, grid=2, fit=False, multilayer=False, lipschitz="sound", sound_budget=4)
    assert not small.calibration[0].is_sound and "max_subintervals=4" in small.calibration[0].sound_unavailable
    large = certify(model, one, data, grid=2, fit=False, multilayer=False, lipschitz="sound", sound_budget=64)
    audit = large.calibration[0]
    assert audit.is_sound and audit.violations() == []
    assert audit.lipschitz.method == "interval-forward-taylor8-K8-adaptive-fold0.001"
    assert np.all(audit.lipschitz.values >= audit.lipschitz_estimate * (1 - 1e-12))


def test_sound_is_the_default_of_certify_and_of_the_commands():
    import inspect

    from verification.cli.app import build_parser

    assert inspect.signature(certify).parameters["lipschitz"].default == "sound"
    assert inspect.signature(certify_module.audit_layer).parameters["lipschitz"].default == "sound"
    parser = build_parser()
    assert parser.parse_args(["certify", "--mask", "magnitude", "--out", "x"]).lipschitz == "sound"
    from verification.bridge.demo import DEFAULT_SETTINGS, QUICK_SETTINGS

    assert DEFAULT_SETTINGS.lipschitz == QUICK_SETTINGS.lipschitz == "sound"
    assert parser.parse_args(["demo"]).lipschitz is None  # None: the settings' default (sound)


def test_a_halved_sound_lipschitz_is_reported_as_a_violation(env, monkeypatch):
    """Known-bad: the head's sound L_s (= 1: the post-layer map is the identity) halved but still labelled sound
    must be a violation — counted in the headline — and the unhalved run (the default ``lipschitz``) has none."""
    model, cal, _ = env
    head = Mask(keep={"head": magnitude(model, 0.5, layers=["head"]).keep["head"]}, provenance=Provenance("test"))
    good = certify(model, head, cal, grid=2, fit=False, multilayer=False)
    assert good.calibration[0].is_sound and good.violations() == [] and good.certified()["violations"] == 0
    real = certify_module.sound_path_bounds

    def halved(*args, **kwargs):
        bounds = real(*args, **kwargs)
        lip = bounds.lipschitz
        return dataclasses.replace(bounds, lipschitz=type(lip)(lip.values * 0.5, lip.label, lip.method + "-halved"))

    monkeypatch.setattr(certify_module, "sound_path_bounds", halved)
    bad = certify(model, head, cal, grid=2, fit=False, multilayer=False)
    assert bad.calibration[0].is_sound and bad.estimate_diagnostics() == []
    assert any(v.startswith("head (calibration, SOUND BOUND VIOLATED): per-sample logit change")
               for v in bad.violations())
    assert bad.certified()["violations"] == len(bad.violations()) > 0
    md = bad.to_markdown()
    assert md.index("## **VIOLATIONS**") < md.index("Model:") and f"**{len(bad.violations())}**" in md
