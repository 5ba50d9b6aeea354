"""One certificate stack: the bridge's per-theorem results are the typed results of ``certs``, made by the same code.

On a Linear-ReLU-Linear network (a :class:`certs.layer_view.PiecewiseLinearTail` after either layer) each audit's
``lemma_5_1``, ``corollary_5_2`` and ``theorem_5_4`` equal what :func:`certs.single_layer.ce_path_bound`,
:func:`~certs.single_layer.margin_stability_from_path` (the bridge's rounding term) and
:func:`~certs.single_layer.elastic_net_certificate` compute on a :class:`certs.layer_view.LayerView` of the same
layer with the same ``L_s`` (up to the rounding of torch's forward against numpy's), and ``theorem_5_8`` is
:func:`certs.multilayer.theorem_5_8_result` of the steps, exactly.  Known-bad: a tampered ``eta`` and an ``L_s``
scaled by the bridge are told apart.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from certs.layer_view import ActivationOp, AffineOp, LayerView, PiecewiseLinearTail
from certs.multilayer import MultiLayerBound, theorem_5_8_bound, theorem_5_8_result
from certs.single_layer import (CEPathCertificate, ElasticNetCertificate, MarginStabilityCertificate, ce_path_bound,
                                elastic_net_certificate, evaluate_path, margin_stability_from_path)
from certs.splits import mask_split
from verification.bridge.certificate_report import SCHEMA
from verification.bridge.certify import certify

LAMBDA1, LAMBDA2 = 1e-3, 1e-2
#: Relative / absolute tolerance between the bridge (torch float64 forward) and certs (numpy) on the same inputs.
RTOL, ATOL = 1e-9, 1e-12


@st.composite
def relu_networks(draw):
    """A float64 Linear-ReLU-Linear network, keep-masks of both Linear layers, images and labels."""
    hidden = draw(st.integers(2, 6))
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, hidden), nn.ReLU(), nn.Linear(hidden, 3)).double()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64))
    keep = {name: torch.rand(model[int(name)].weight.shape, generator=g) < draw(st.floats(0.05, 0.95))
            for name in ("1", "3")}
    images = torch.randn(draw(st.integers(1, 5)), 1, 2, 2, generator=g, dtype=torch.float64)
    return model, keep, images, torch.randint(0, 3, (images.shape[0],), generator=g)


def layer_view(model: nn.Sequential, name: str, images: torch.Tensor, labels: torch.Tensor) -> LayerView:
    """The certs view of layer ``name`` ("1" or "3"): ``psi_1`` in numpy, ``psi_2`` as a piecewise-linear tail."""
    w1, b1 = (t.detach().numpy() for t in (model[1].weight, model[1].bias))
    w3, b3 = (t.detach().numpy() for t in (model[3].weight, model[3].bias))
    x = images.reshape(images.shape[0], -1).numpy()
    if name == "1":
        tail = (AffineOp(np.eye(w1.shape[0]), b1), ActivationOp("relu"), AffineOp(w3, b3))
        return LayerView("1", w1, x, labels.numpy(), PiecewiseLinearTail(tail))
    hidden = np.maximum(x @ w1.T + b1, 0.0)
    return LayerView("3", w3, hidden, labels.numpy(), PiecewiseLinearTail((AffineOp(np.eye(w3.shape[0]), b3),)))


def mismatches(bridge, library) -> list[str]:
    """Fields where two results of the same certs class differ: discrete ones exactly, floats to RTOL / ATOL."""
    assert type(bridge) is type(library)
    out = []
    for f in dataclasses.fields(bridge):
        a, b = getattr(bridge, f.name), getattr(library, f.name)
        if f.name in ("bound", "budget", "full_pruning_bound"):
            same = (a.label, a.method) == (b.label, b.method) and np.isclose(a.value, b.value, rtol=RTOL, atol=ATOL)
        elif f.name == "hypotheses":
            same = [(h.name, h.holds) for h in a] == [(h.name, h.holds) for h in b]
        elif isinstance(a, np.ndarray) and a.dtype == bool or isinstance(a, (str, bool)):
            same = np.array_equal(a, b)
        else:
            same = np.allclose(a, b, rtol=RTOL, atol=ATOL)
        if not same:
            out.append(f.name)
    return out


@given(relu_networks())
def test_the_bridge_results_are_what_certs_computes(case):
    model, keep, images, labels = case
    report = certify(model, keep, (images, labels), grid=2, lambda1=LAMBDA1, lambda2=LAMBDA2, lipschitz="estimate",
                     fit=False)
    for audit in report.calibration:
        view = layer_view(model, audit.layer, images, labels)
        split = mask_split(view.weight, keep[audit.layer].numpy())
        lemma, margin, elastic = audit.lemma_5_1, audit.corollary_5_2, audit.theorem_5_4
        assert isinstance(lemma, CEPathCertificate) and isinstance(margin, MarginStabilityCertificate)
        assert isinstance(elastic, ElasticNetCertificate) and lemma.budget is audit.budget is elastic.budget
        assert mismatches(lemma, ce_path_bound(view, split, audit.lipschitz)) == []
        path = evaluate_path(view, split, audit.lipschitz)
        rounding_check = margin.hypotheses[-1]
        assert not rounding_check.holds and np.all(margin.rounding == 0.0)  # an estimated L_s has no rounding term
        assert mismatches(margin, margin_stability_from_path(path, view.labels, margin.rounding, rounding_check)) == []
        assert mismatches(elastic, elastic_net_certificate(view, split, audit.lipschitz, LAMBDA1, LAMBDA2)) == []
        # known-bad: a tampered eta, and certs run on an L_s the bridge did not use, are told apart
        assert "eta" in mismatches(dataclasses.replace(margin, eta=2.0 * margin.eta + 1.0), margin)
        if np.any(audit.products > 0):  # p_s = 0 everywhere (R psi_1 = 0): no L_s enters any bound
            wrong = ce_path_bound(view, split, dataclasses.replace(audit.lipschitz, values=audit.lipschitz.values + 1))
            assert {"bound", "budget", "eta"} <= set(mismatches(lemma, wrong))
    ml = report.multilayer
    steps = ml.steps
    penalties = [LAMBDA2 * s.removed_frobenius_sq + LAMBDA1 * s.removed_l1 for s in steps]
    assert isinstance(ml.theorem_5_8, MultiLayerBound)
    assert ml.theorem_5_8.bound.value == theorem_5_8_bound([s.budget.value for s in steps], penalties,
                                                           [s.removed_entries for s in steps])
    again = theorem_5_8_result([s.budget for s in steps], penalties, [s.removed_entries for s in steps],
                               realized=ml.theorem_5_8.realized, scale=ml.theorem_5_8.scale,
                               options=ml.theorem_5_8.bound.options)
    assert again.to_dict() == ml.theorem_5_8.to_dict()


@given(relu_networks())
def test_the_grouped_json_round_trips(case):
    """Schema 3: every audit carries its three results as their own ``to_dict`` and the multi-layer audit its
    Theorem 5.8 result; the JSON is strict (no NaN) and reads back to the same document."""
    model, keep, images, labels = case
    report = certify(model, keep, (images, labels), grid=1, lipschitz="estimate", fit=False)
    doc = report.to_json()
    assert doc["schema"] == SCHEMA == "mpcert.certify/3"
    assert json.loads(json.dumps(doc, allow_nan=False)) == doc
    for audit, row in zip(report.calibration, doc["calibration"]):
        for name in ("lemma_5_1", "corollary_5_2", "theorem_5_4"):
            assert row[name] == json.loads(json.dumps(getattr(audit, name).to_dict()))
        assert row["lipschitz"] == {"values": audit.lipschitz.values.tolist(), "label": "estimate",
                                    "method": audit.lipschitz.method}
    assert doc["multilayer"]["theorem_5_8"]["bound"] == report.multilayer.theorem_5_8.bound.to_dict()
