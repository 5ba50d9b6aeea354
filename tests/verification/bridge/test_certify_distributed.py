"""certify(..., workers=2): two gloo ranks on the CPU give the report of one process; a failing rank writes nothing.

Each test launches two local ranks through torch.distributed's elastic launcher (seconds of start-up each).
"""

import json
import os

import pytest
import torch
from torch import nn

from verification.bridge.certify import certify
from verification.bridge.distributed import WorkerError, run_units
from verification.bridge.certify_folder import AuditSets, certify_to_folder
from verification.models.datasets import calibration_subset, load_default_dataset
from verification.models.default_model import build_default_model
from verification.models.model_source import LoadedModel
from tests.verification.cast_masks import cast_24_subset
from tests.verification.single_thread import one_thread  # noqa: F401  (autouse)

#: Late layers (sound at a small budget, seconds per audit) and the head.
LAYERS = ("blocks.3.attn.proj", "blocks.3.mlp.fc1", "head")


def _document(report) -> str:
    doc = report.to_json()
    doc.pop("timings")  # wall-clock seconds and the rank count differ, nothing else may
    return json.dumps(doc, sort_keys=True, allow_nan=False)


def test_two_ranks_give_the_report_of_one_process():
    """Bounds bit-identical (JSON floats round-trip exactly), same labels, same counts, 1 rank vs 2 ranks."""
    model = build_default_model()
    cal = calibration_subset(load_default_dataset(), 3, 4)
    held = calibration_subset(load_default_dataset(), 2, 5)
    mask = cast_24_subset(model, cal.images, LAYERS)
    options = dict(heldout=held, grid=2, fit=False, sound_budget=8, sound_device="cpu")
    one = certify(model, mask, cal, **options)
    two = certify(model, mask, cal, workers=2, **options)
    assert one.timings["workers"] == 1 and two.timings["workers"] == 2
    assert one.lipschitz_labels() == two.lipschitz_labels() == {"sound": 2 * len(mask.keep), "estimate": 0}
    assert _document(one) == _document(two)
    for a, b in zip(one.calibration + one.heldout + one.multilayer.steps,
                    two.calibration + two.heldout + two.multilayer.steps):
        assert a.lipschitz.values.tobytes() == b.lipschitz.values.tobytes() and a.budget == b.budget
    # known-bad for the comparison: a report from other data is told apart
    other = certify(model, mask, held, heldout=cal, grid=2, fit=False, sound_budget=8, sound_device="cpu",
                    multilayer=False)
    assert _document(other) != _document(one)


class RaisesOnRankOne(nn.Module):
    """Identity, except in the process that ``torchrun`` / the launcher names rank 1, where every call raises."""

    def forward(self, x):
        if os.environ.get("RANK") == "1":
            raise RuntimeError("injected failure on rank 1")
        return x


def test_a_failing_rank_fails_the_run_and_leaves_no_report_folder(tmp_path):
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 10), RaisesOnRankOne())
    loaded = LoadedModel(model=model, source="hand-made", kind="timm", description="a linear map that fails on rank 1",
                         checkpoint=None, trained_default=False)
    images = torch.randn(4, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    sets = AuditSets(calibration=(images, torch.tensor([0, 1, 2, 3])), heldout=None, source="noise", seed=0)
    out = tmp_path / "report"
    with pytest.raises(WorkerError, match=r"rank 1 of 2 failed: .*injected failure on rank 1"):
        certify_to_folder(loaded, sets, mask="magnitude", out=out, grid=1, lipschitz="estimate", plots=False, workers=2)
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == []


def test_units_without_a_process_group_run_in_order():
    seen = []
    assert run_units([3, 1, 2], lambda u: seen.append(u) or u * u) == [9, 1, 4] and seen == [3, 1, 2]
