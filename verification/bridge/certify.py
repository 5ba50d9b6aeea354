"""``certify(model, mask, data)``: the literal audit of the Section 5 bounds on a real timm model.

For every masked layer (token convention: :mod:`verification.bridge.vit_views`), on the calibration set
``T`` and on a held-out set:

* ``p_s = ||R psi_1(s)||_inf`` exactly (one batched matmul);
* ``L_s`` — with ``lipschitz="sound"`` (the default) each layer first tries the SOUND bound of interval /
  Taylor forward mode in theta (:func:`verification.bridge.vit_interval.sound_path_bounds`, issue 6); where
  that enclosure blows up (``IntervalDomainError``) or meets an unsupported module, the layer keeps the
  estimate below, labelled ``estimate``, and the reason is recorded (``sound_unavailable``).  With
  ``lipschitz="estimate"`` every layer takes the ESTIMATE: the largest directional finite difference of the
  post-layer map along the estimation grid ``theta_i = i / G`` of the segment,
  ``L_s = max_i ||z(theta_{i+1}) - z(theta_i)||_inf / ((theta_{i+1} - theta_i) p_s)`` (``0`` when ``p_s = 0``).
  By THEORY.md 3.6 an empirical ratio is a *lower* bound on the true local constant, so every
  quantity built on it is labelled ``estimate`` and never called a certificate.  The finite-difference
  values are always kept (``lipschitz_estimate``) so that the report can show the ratio sound / estimate;
* ``eta_s = L_s p_s`` (Corollary 5.2, no factor 2), ``B_T(R) = (2/|T|) sum_s L_s p_s`` (THEORY.md 1.4);
* Lemma 5.1 ``|L_CE(A_theta) - L_CE(A)| <= (1 - theta) B_T``, the per-sample logit bound
  ``||z(theta) - z(1)||_inf <= (1 - theta) L_s p_s`` and per-sample CE bound ``|d l_s| <= 2 (1 - theta) L_s p_s``
  (THEORY.md 3.7), checked on the **check grid** = estimation grid plus midpoints (so the check is
  not a tautology of the estimate);
* Corollary 5.2 at ``theta = 0``: at-risk samples (``Delta_pred(z^(1)) <= 2 (eta_s + r_s)``) and the accuracy-change
  bound; with a sound ``L_s`` the rounding term ``r_s = rho_s(0) + 2 rho_s(1)`` bounds how far the computed
  logits (float64, or packed 2:4 at ``theta = 0``) lie from the exact ones enclosed by the same interval forward
  mode (:meth:`certs.intervals.refinement.SegmentBounds.rounding`), so that a sample counted "certified unchanged"
  can change neither exactly nor as computed (FINDINGS F23); with an estimate ``r_s = 0``;
* Theorem 5.4 for the given ``lambda1, lambda2`` and the thresholds ``B_T / ||R||_F^2`` (``lambda1 = 0``)
  and ``B_T / ||R||_1`` (``lambda2 = 0``) above which the condition holds;
* the paper's proxy ``||R||_op mean_s ||psi_1(s)||_inf`` (not a bound, ALGORITHMS.md 10.3).

One certificate stack: the bridge evaluates the path itself (the real model's logits, the interval engine's rounding
term) into a :class:`certs.single_layer.PathEvaluation` at theta = 0, and the typed per-theorem results of the audit
are assembled from it by the same ``certs`` code as the library certificates
(:func:`certs.single_layer.ce_path_bound_from_path`, :func:`~certs.single_layer.margin_stability_from_path`,
:func:`~certs.single_layer.elastic_net_from_path`; Theorem 5.8: :func:`certs.multilayer.theorem_5_8_result`, one
rounding rule).  The check-grid arrays (every theta of the grid) stay the bridge's own.

**2:4 execution** (the audited network is the one that is executed).  When the mask's pattern is 2:4
(:class:`pruning.mask.Mask` with ``pattern`` 2:4), the realised side at ``theta = 0`` — the pruned
logits, hence the realised CE, accuracy, flips and ``J`` change — comes from the network whose pruned
``nn.Linear`` layers are executed through the packed path (:func:`pruning.packed24.convert_to_24`,
:class:`pruning.packed24.SparseLinear24`); the report says ``execution: "packed-2:4"`` per layer and
records ``max |z_packed - z_masked_dense|`` against the float64 masked dense path, which must be at
float tolerance (else a violation is reported).  The theta-path re-runs (``0 < theta <= 1``) stay in
float64 masked dense form: ``S + theta R`` at intermediate ``theta`` is not a 2:4 matrix, so it has no
packed form.  Other layers (and every layer of a non-2:4 mask) run as ``execution: "dense-float64"``.
In the multi-layer audit, step ``j`` executes the already-pruned layers and the target packed, and so
does the final network.

Speed: the theta-path re-runs (which dominate the cost) start at the target's restart point — its
ViT block, MLP branch or the head — from a state cached during the capture, with the target replaced
by its precomputed ``S psi_1 + theta R psi_1`` (:func:`verification.bridge.vit_views.path_logits`); other
models re-run in full.

Bridges and fits: the dense weight of every masked layer is fitted with :func:`rmt.fit.fit_mp`
(``sigma_plus`` for the paper's Bridge 3 and the ESD plots); :mod:`verification.bridge.audit_bridges`
computes the paper's three bridges on each sample set.

Theorem 5.8: the layers are pruned one at a time in ``order`` (``"forward"`` = the model's module
order, ``"reverse"``), and each step is audited in the intermediate network with its own ``psi_1``
and ``L_s`` (:func:`multilayer_step`; step 0 is the calibration audit of the first layer, reused); the
realised ``J(alpha^(M)) - J(alpha^(0))`` is compared with the summed bound (:func:`multilayer_audit`).

Scale-out: every single-layer audit and every multi-layer step is an independent unit
(:class:`AuditUnit`), shared among ``torch.distributed`` ranks by :mod:`verification.bridge.distributed`
(``certify(..., workers=N)``, or any process group such as ``torchrun``'s).

The user's model is never modified: everything runs on a float64 copy (:func:`vit_views.audit_copy`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from importlib import metadata
from typing import Any, Mapping

import numpy as np
import torch
from torch import nn

from certs.budget import PerSampleLipschitz, budget_from_products, eta_from_products, upper_sum
from certs.classification import accuracy, cross_entropy_per_sample, mean_cross_entropy
from certs.errors import CertificateInputError, UnsupportedLayerError
from certs.intervals.interval import IntervalDomainError
from certs.multilayer import theorem_5_8_result
from certs.results import HypothesisCheck
from certs.single_layer import (ROUNDING_CHECK, PathEvaluation, ce_path_bound_from_path, elastic_net_from_path,
                                margin_stability_from_path)
from certs.splits import ElasticNetPenalty, mask_split
from rmt.bounds import ESTIMATE

from pruning.kn_patterns import PATTERN_24
from pruning.mask import Mask, binary_keep
from pruning.packed24 import convert_to_24
from rmt.errors import MPCertError
from rmt.fit import MPFit, fit_mp

from .certificate_report import CertificateReport, LayerAudit, MultiLayerAudit
from .distributed import launch, rank_and_size, run_units
from .vit_interval import resolve_device, sound_path_bounds
from .vit_views import CapturedLayer, audit_copy, capture_layer, check_mask_layers, path_logits, supported_layers

__all__ = ["AuditData", "AuditUnit", "certify", "audit_layer", "multilayer_step", "multilayer_audit",
           "estimate_lipschitz", "check_grid", "MAX_GRID", "MAX_SOUND_BUDGET", "ORDERS", "LIPSCHITZ_METHODS",
           "SOUND_BUDGET", "SOUND_BUDGET_CUDA", "SOUND_START", "ROUNDING_CHECK", "check_samples_fit",
           "parameter_dtype", "PACKED", "DENSE", "packing_mask", "executed_logits", "fit_layers"]

ORDERS = ("forward", "reverse")
#: ``L_s`` methods of :func:`certify`: finite differences (``estimate``) or interval forward mode (``sound``).
LIPSCHITZ_METHODS = ("estimate", "sound")
#: Default sub-intervals of theta per sample for ``lipschitz="sound"`` on the CPU and on CUDA: more reaches earlier
#: layers, or tightens them, at a cost (measured tightness and cost per budget: benchmarks/RESULTS-sound-lipschitz.md).
SOUND_BUDGET, SOUND_BUDGET_CUDA = 64, 256
#: Sub-intervals of theta that the sound enclosure starts from (``subintervals`` of
#: :func:`verification.bridge.vit_interval.sound_path_bounds`).  Two, not that function's 8: a layer whose path is
#: nearly linear in theta (most layers after block 0) then needs a few evaluations per sample instead of 17 with the
#: same bound, the refinement halves where the bound is loose, and loose layers start from the cover their probe
#: samples split to (benchmarks/RESULTS-sound-lipschitz.md, "start cover" and "Speed (issue 16)" for the counts).
SOUND_START = 2
#: Largest accepted ``sound_budget`` (sub-intervals of theta per sample; the enclosure cost grows linearly in it).
MAX_SOUND_BUDGET = 65536
#: Largest accepted theta grid ``G`` (:func:`check_grid`).
MAX_GRID = 1024
#: Relative tolerance of every realised-versus-bound comparison (THEORY.md 0.3).
TOLERANCE = 1e-9
#: Execution labels of the realised side at theta = 0.
PACKED, DENSE = "packed-2:4", "dense-float64"


@dataclass(frozen=True, eq=False)
class AuditData:
    """Images ``(N, C, H, W)`` and integer labels ``(N,)`` of one sample set, with its name."""

    images: torch.Tensor
    labels: torch.Tensor
    name: str


def _as_data(data, name: str) -> AuditData:
    if hasattr(data, "images") and hasattr(data, "labels"):
        images, labels = data.images, data.labels
    elif isinstance(data, (tuple, list)) and len(data) == 2:
        images, labels = data
    else:
        raise CertificateInputError(f"{name}: expected (images, labels) or an object with .images and .labels")
    images = torch.as_tensor(images)
    labels = torch.as_tensor(labels)
    if images.ndim != 4 or images.shape[0] == 0:
        raise CertificateInputError(
            f"{name}: images must be a non-empty (N, C, H, W) tensor, got shape {tuple(images.shape)}")
    if labels.shape != (images.shape[0],) or labels.dtype.is_floating_point or labels.dtype == torch.bool:
        raise CertificateInputError(
            f"{name}: labels must be integers of shape ({images.shape[0]},), got {labels.dtype} {tuple(labels.shape)}")
    if not torch.isfinite(images).all():
        raise CertificateInputError(f"{name}: images contain NaN or Inf")
    return AuditData(images.to(torch.float64), labels.to(torch.int64), name)


def parameter_dtype(model: nn.Module) -> torch.dtype:
    """The dtype of ``model``'s first floating-point parameter (float32 if it has none)."""
    return next((p.dtype for p in model.parameters() if p.is_floating_point()), torch.float32)


def check_samples_fit(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, name: str) -> int:
    """One forward pass on ``images[:1]``: the images fit ``model`` and the labels lie in its classes.

    Returns the number of classes ``K`` of the head.  Raises :class:`CertificateInputError` naming
    ``name`` and the problem: a channel count different from the first convolution's, a shape the
    model rejects, an output that is not ``(N, K)`` logits, labels outside ``0..K-1``.
    """
    first = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    if first is not None and images.ndim == 4 and first.in_channels != images.shape[1]:
        raise CertificateInputError(
            f"{name}: images have {images.shape[1]} channels, the model's first convolution expects {first.in_channels}"
        )
    try:
        with torch.no_grad():
            logits = model(images[:1].to(parameter_dtype(model)))
    except Exception as exc:  # the model rejects the image shape
        raise CertificateInputError(
            f"{name}: images of shape {tuple(images.shape[1:])} do not fit the model ({type(exc).__name__}: {exc})"
        ) from exc
    if logits.ndim != 2:
        raise CertificateInputError(f"model: its output must be logits (N, K), got shape {tuple(logits.shape)}")
    k = int(logits.shape[1])
    bad = (labels < 0) | (labels >= k)
    if bad.any():
        raise CertificateInputError(
            f"{name}: labels {sorted(set(labels[bad].tolist()))[:5]} lie outside the head's classes 0..{k - 1}"
        )
    return k


def check_grid(points: int, argument: str = "grid") -> np.ndarray:
    """The check grid: ``2 G + 1`` points ``j / (2 G)``; the estimation grid is every second point.

    ``G`` must lie in ``1 .. MAX_GRID``: each layer audit runs ``2 G + 1`` forward passes per sample, so a
    larger ``G`` would run for days (and a theta step of ``1 / 2048`` is far finer than the bounds need).
    """
    if isinstance(points, bool) or not isinstance(points, (int, np.integer)) or points < 1:
        raise CertificateInputError(f"{argument}: must be an integer >= 1, got {points!r}")
    if points > MAX_GRID:
        raise CertificateInputError(
            f"{argument} {points}: at most {MAX_GRID} (each layer audit would run 2 G + 1 = {2 * int(points) + 1} "
            "forward passes per sample)"
        )
    return np.linspace(0.0, 1.0, 2 * int(points) + 1)


def estimate_lipschitz(z: np.ndarray, thetas: np.ndarray, products: np.ndarray) -> np.ndarray:
    """``L_s = max_i ||z(theta_{i+1}) - z(theta_i)||_inf / ((theta_{i+1} - theta_i) p_s)`` (0 where ``p_s = 0``).

    ``z`` has shape ``(len(thetas), |T|, K)`` on the estimation grid (increasing ``thetas``).
    """
    steps = np.abs(np.diff(z, axis=0)).max(axis=2) / np.diff(thetas)[:, None]
    slope = steps.max(axis=0)
    return np.where(products > 0, slope / np.where(products > 0, products, 1.0), 0.0)


def packing_mask(model: nn.Module, mask, names) -> Mask | None:
    """The 2:4 sub-mask of the ``nn.Linear`` layers among ``names`` (executed packed), or ``None``.

    ``None`` when ``mask`` is not a 2:4 :class:`pruning.mask.Mask` or no layer of ``names`` is Linear.
    """
    if not isinstance(mask, Mask) or mask.pattern != PATTERN_24:
        return None
    modules = dict(model.named_modules())
    linear = [n for n in names if isinstance(modules.get(n), nn.Linear)]
    if not linear:
        return None
    return Mask(keep={n: mask.keep[n] for n in linear}, provenance=mask.provenance, pattern=mask.pattern,
                permutations={n: p for n, p in mask.permutations.items() if n in linear})


def executed_logits(model: nn.Module, packing: Mask, images: torch.Tensor) -> np.ndarray:
    """Logits of ``model`` with the layers of ``packing`` masked and executed as :class:`SparseLinear24` (a copy)."""
    packed = convert_to_24(model, packing)
    with torch.no_grad():
        return packed(images).numpy().astype(np.float64)


def _tick(clock: dict | None, phase: str, start: float) -> float:
    now = time.perf_counter()
    if clock is not None:
        clock[phase] = clock.get(phase, 0.0) + now - start
    return now


def audit_layer(
    model: nn.Module, name: str, keep: torch.Tensor, data: AuditData, *, grid: int = 16,
    lambda1: float = 0.0, lambda2: float = 0.0, lipschitz_factor: float = 1.0, packing: Mask | None = None,
    clock: dict | None = None, lipschitz: str = "sound", sound_budget: int = SOUND_BUDGET, sound_device: str = "auto",
) -> LayerAudit:
    """Single-layer audit of layer ``name`` (pruned by ``keep``) in the float64 ``model`` (see module docstring).

    ``lipschitz_factor`` multiplies the ``L_s`` used (``> 1``: a safety margin; ``< 1``: the
    known-bad variant used by the tests to show that violations are flagged; a sound ``L_s`` scaled
    below 1 loses its label).  ``lipschitz``: ``"estimate"`` or ``"sound"`` (module docstring); ``sound_budget``:
    sub-intervals of theta allowed per sample for the sound ``L_s`` (``max_subintervals`` of
    :func:`verification.bridge.vit_interval.sound_path_bounds`); ``sound_device``: where it runs (``"auto"``: CUDA when
    available, :func:`verification.bridge.vit_interval.resolve_device`).  ``packing``: the 2:4
    sub-mask (:func:`packing_mask`, containing ``name``) whose layers are executed packed for the
    realised theta = 0 side.  ``clock`` accumulates seconds per phase (``capture``, ``lipschitz``,
    ``realized``, ``budgets``).
    """
    start = time.perf_counter()
    thetas = check_grid(grid)
    layer: CapturedLayer = capture_layer(model, name, keep, data.images)
    start = _tick(clock, "capture", start)
    estimation = path_logits(model, layer, data.images, thetas[::2])
    values = estimate_lipschitz(estimation, thetas[::2], layer.products) * float(lipschitz_factor)
    start = _tick(clock, "lipschitz", start)
    z = np.empty((thetas.size,) + estimation.shape[1:])
    z[::2] = estimation
    z[1::2] = path_logits(model, layer, data.images, thetas[1::2])
    execution, packed_diff = DENSE, None
    if packing is not None and name in packing.keep:
        executed = executed_logits(model, packing, data.images)
        packed_diff = float(np.max(np.abs(executed - z[0])))
        z[0] = executed
        execution = PACKED
    start = _tick(clock, "realized", start)
    method = f"finite-difference-grid-{grid}" + ("" if lipschitz_factor == 1 else f"*{lipschitz_factor:g}")
    lip, sound_unavailable = PerSampleLipschitz(values, ESTIMATE, method), None
    rounding = np.zeros(layer.products.shape), HypothesisCheck(ROUNDING_CHECK, False, "L_s is an estimate")
    if lipschitz == "sound":
        try:
            sound = sound_path_bounds(model, layer, data.images, subintervals=min(SOUND_START, sound_budget),
                                      max_subintervals=sound_budget, device=sound_device)
        except (IntervalDomainError, UnsupportedLayerError) as exc:
            sound_unavailable = str(exc)
        else:
            lip = sound.lipschitz if lipschitz_factor == 1 else sound.lipschitz.scaled(lipschitz_factor)
            rho = sound.segments.rounding(z[0], 0) + 2.0 * sound.segments.rounding(z[-1], 1)
            rounding = np.nextafter(rho, np.inf), HypothesisCheck(ROUNDING_CHECK, True, ROUNDING_DETAIL)
        start = _tick(clock, "sound_lipschitz", start)
    audit = _layer_audit(layer, keep, data, z, thetas, lip, rounding, lambda1=lambda1, lambda2=lambda2)
    _tick(clock, "budgets", start)
    return LayerAudit(
        layer=name,
        sample_set=data.name,
        shape=tuple(int(d) for d in layer.removed.shape),
        tokens=layer.tokens,
        removed_entries=int(np.count_nonzero(~keep.numpy())),
        removed_fraction=float((~keep).float().mean()),
        removed_frobenius_sq=float(np.sum(layer.removed ** 2)),
        removed_l1=float(np.sum(np.abs(layer.removed))),
        removed_op_norm=float(np.linalg.norm(layer.removed, 2)) if layer.removed.size else 0.0,
        input_sup=layer.input_sup,
        products=layer.products,
        lambda1=float(lambda1),
        lambda2=float(lambda2),
        lipschitz=lip,
        lipschitz_estimate=values,
        sound_unavailable=sound_unavailable,
        thetas=thetas,
        estimation_points=int(thetas[::2].size),
        execution=execution,
        packed_max_abs_diff=packed_diff,
        logit_scale=float(np.max(np.abs(z))),
        tolerance=TOLERANCE,
        **audit,
    )


#: How the bridge proves Corollary 5.2's rounding hypothesis (:data:`certs.single_layer.ROUNDING_CHECK`).
ROUNDING_DETAIL = "rho_s(0) + 2 rho_s(1) of the interval enclosure (SegmentBounds.rounding)"


def _layer_audit(layer: CapturedLayer, keep: torch.Tensor, data: AuditData, z: np.ndarray, thetas: np.ndarray,
                 lip: PerSampleLipschitz, rounding: tuple[np.ndarray, HypothesisCheck], *, lambda1: float,
                 lambda2: float) -> dict[str, Any]:
    """The budget, the check-grid arrays and the per-theorem results of one audit from the logits ``z`` on the check
    grid (``z[0]``: the executed pruned network, ``z[-1]``: the dense one).  Lemma 5.1, Corollary 5.2 and Theorem 5.4
    at theta = 0 are assembled by :mod:`certs.single_layer` from a :class:`certs.single_layer.PathEvaluation`."""
    y = data.labels.numpy()
    width = layer.removed.shape[1]
    budget = budget_from_products(layer.products, lip, width)
    eta_path = np.stack([eta_from_products(layer.products, lip, float(t), width) for t in thetas])
    ce_samples = cross_entropy_per_sample(z, y)
    ce_path = ce_samples.mean(axis=1)
    ce_bound_path = np.array([upper_sum([(1.0 - t) * budget.value], n_ops=2) for t in thetas])
    ce_real_path = np.abs(ce_path - ce_path[-1])
    tol = TOLERANCE * np.maximum(1.0, np.maximum(ce_bound_path, np.abs(ce_path)))
    logit_change = np.abs(z - z[-1]).max(axis=2)
    sample_ce_change = np.abs(ce_samples - ce_samples[-1])
    split = mask_split(layer.structured + layer.removed, keep.reshape(layer.structured.shape).numpy())
    path = PathEvaluation(
        split=split, lipschitz=lip, budget=budget, theta=0.0, products=layer.products,
        logits_theta=z[0], logits_dense=z[-1], ce_theta=float(ce_path[0]), ce_dense=float(ce_path[-1]),
    )
    return dict(
        budget=budget,
        ce_path=ce_path,
        ce_bound_path=ce_bound_path,
        lemma_violation_thetas=tuple(float(t) for t in thetas[ce_real_path > ce_bound_path + tol]),
        acc_path=accuracy(z, y),
        sample_ce_change=sample_ce_change[0],
        logit_excess=(logit_change - eta_path).max(axis=0),
        sample_ce_excess=(sample_ce_change - 2.0 * eta_path).max(axis=0),
        lemma_5_1=ce_path_bound_from_path(path),
        corollary_5_2=margin_stability_from_path(path, y, *rounding),
        theorem_5_4=elastic_net_from_path(path, ElasticNetPenalty.create(lambda1, lambda2)),
    )


def _apply_keep(model: nn.Module, name: str, keep: torch.Tensor) -> None:
    weight = dict(model.named_modules())[name].weight
    with torch.no_grad():
        weight.mul_(keep.to(weight.dtype))


def _objective(model: nn.Module, data: AuditData, names, penalty: ElasticNetPenalty,
               logits: np.ndarray | None = None) -> tuple[float, float, float]:
    """``(J, L_CE, acc)`` of ``model`` on ``data`` (or of the given executed ``logits``); ``J`` penalises ``names``
    only."""
    if logits is None:
        with torch.no_grad():
            logits = model(data.images).numpy()
    y = data.labels.numpy()
    modules = dict(model.named_modules())
    pen = sum(penalty(modules[n].weight.detach().reshape(modules[n].weight.shape[0], -1).numpy()) for n in names)
    ce = float(mean_cross_entropy(logits, y))
    return ce + pen, ce, float(accuracy(logits, y))


def multilayer_step(
    model: nn.Module, keep: Mapping[str, torch.Tensor], data: AuditData, order: tuple[str, ...], step: int, *,
    mask=None, **options,
) -> LayerAudit:
    """Step ``step`` of Theorem 5.8: :func:`audit_layer` of ``order[step]`` in the network where ``order[:step]`` are
    pruned (a float64 copy of ``model``; ``model`` is not modified).  With a 2:4 ``mask`` the realised theta = 0
    side executes ``order[:step + 1]`` packed (:func:`packing_mask`).  ``options``: those of :func:`audit_layer`.
    Step 0 is the single-layer audit of ``order[0]`` on ``data``."""
    net = audit_copy(model)
    for name in order[:step]:
        _apply_keep(net, name, keep[name])
    name = order[step]
    return audit_layer(net, name, keep[name], data, packing=packing_mask(net, mask, order[:step + 1]), **options)


def multilayer_audit(
    model: nn.Module, keep: Mapping[str, torch.Tensor], data: AuditData, order: tuple[str, ...],
    steps: tuple[LayerAudit, ...], *, lambda1: float, lambda2: float, mask=None,
) -> MultiLayerAudit:
    """Theorem 5.8 from the audited ``steps`` (:func:`multilayer_step`, in ``order``): the summed bound against the
    realised ``J(alpha^(M)) - J(alpha^(0))`` of the network with every layer of ``order`` pruned (a float64 copy of
    ``model``).  With a 2:4 ``mask`` the final network executes the layers of ``order`` packed
    (:func:`packing_mask`).  The bound is :func:`certs.multilayer.theorem_5_8_result` of the steps' budgets and
    removed penalties ``lambda2 ||R_j||_F^2 + lambda1 ||R_j||_1``."""
    penalty = ElasticNetPenalty.create(lambda1, lambda2)
    net = audit_copy(model)
    j0, ce0, acc0 = _objective(net, data, order, penalty)
    for name in order:
        _apply_keep(net, name, keep[name])
    final_packing = packing_mask(net, mask, order)
    execution, packed_diff, executed = DENSE, None, None
    if final_packing is not None:
        executed = executed_logits(net, final_packing, data.images)
        with torch.no_grad():
            packed_diff = float(np.max(np.abs(executed - net(data.images).numpy())))
        execution = PACKED
    j1, ce1, acc1 = _objective(net, data, order, penalty, executed)
    budgets = [s.budget for s in steps]
    penalties = [lambda2 * s.removed_frobenius_sq + lambda1 * s.removed_l1 for s in steps]
    scale = max(abs(j0), abs(j1), float(sum(b.value for b in budgets)), float(sum(penalties)))
    theorem = theorem_5_8_result(budgets, penalties, [s.removed_entries for s in steps], realized=j1 - j0,
                                 scale=scale, options={"order": list(order), "lambda1": lambda1, "lambda2": lambda2})
    return MultiLayerAudit(
        order=tuple(order),
        steps=tuple(steps),
        theorem_5_8=theorem,
        ce_dense=ce0,
        ce_final=ce1,
        acc_dense=acc0,
        acc_final=acc1,
        tolerance=TOLERANCE,
        execution=execution,
        packed_max_abs_diff=packed_diff,
        logit_scale=1.0 if executed is None else float(np.max(np.abs(executed))),
    )


@dataclass(frozen=True)
class AuditUnit:
    """One independent audit of :func:`certify`: ``layer`` on the sample set ``sets[set_index]``, alone in the dense
    network (``step`` None) or as step ``step`` of the multi-layer audit (calibration set)."""

    layer: str
    set_index: int
    step: int | None = None


def _unit_cost(unit: AuditUnit, names: list[str], samples: int) -> float:
    """Rough relative cost, for claiming the dearest units first: the sound enclosure is carried through every later
    block, and ``patch_embed.proj`` / ``attn.qkv`` need several times the pieces of the other layers
    (benchmarks/RESULTS-sound-lipschitz.md, "Speed (issue 16)": evaluations per sample by layer)."""
    downstream = len(names) - names.index(unit.layer)
    dear = unit.layer == "patch_embed.proj" or unit.layer.endswith("attn.qkv")
    return samples * downstream * (3.0 if dear else 1.0)


def fit_layers(model: nn.Module, names) -> tuple[tuple[MPFit, ...], dict[str, str]]:
    """:func:`rmt.fit.fit_mp` of the dense weight of every layer in ``names`` (float64); failures by layer."""
    modules = dict(model.named_modules())
    fits, errors = [], {}
    for name in names:
        try:
            fits.append(fit_mp(modules[name].weight.detach().to(torch.float64), name=name))
        except MPCertError as exc:
            errors[name] = str(exc)
    return tuple(fits), errors


def _version() -> str:
    try:
        return metadata.version("mpcert")
    except metadata.PackageNotFoundError:
        return "unknown"


def certify(
    model: nn.Module,
    mask,
    data,
    *,
    heldout=None,
    lambda1: float = 0.0,
    lambda2: float = 0.0,
    grid: int = 16,
    order: str = "forward",
    multilayer: bool = True,
    lipschitz_factor: float = 1.0,
    lipschitz: str = "sound",
    sound_budget: int | None = None,
    sound_device: str = "auto",
    model_description: str | None = None,
    progress: bool = False,
    fit: bool = True,
    workers: int = 1,
) -> CertificateReport | None:
    """Audit ``mask`` on ``model`` with the calibration ``data`` (and ``heldout``); see the module docstring.

    ``mask``: a :class:`pruning.mask.Mask` or a mapping ``layer name -> keep-tensor``; ``data`` and
    ``heldout``: ``(images, labels)`` or objects with ``.images``/``.labels``.  Raises
    :class:`certs.errors.CertificateInputError` / ``UnsupportedLayerError`` naming the bad argument
    before any work is done.  ``sound_device`` (with ``lipschitz="sound"``): ``"auto"`` (CUDA when available),
    ``"cpu"`` or ``"cuda[:N]"``; ``sound_budget``: sub-intervals of theta per sample (``None``:
    :data:`SOUND_BUDGET` on the CPU, :data:`SOUND_BUDGET_CUDA` on CUDA).  ``progress`` shows a tqdm bar of the whole
    audit on stderr (rank 0).  ``fit``: MP-fit
    every masked layer's dense weight (Bridge 3, ESD plots).  ``timings`` records seconds per set,
    the multi-layer audit, the fits, and per phase summed over all audits (``phase_capture_s``,
    ``phase_lipschitz_s`` = estimation-grid re-runs, ``phase_realized_s`` = check-grid midpoints and
    the packed execution, ``phase_sound_lipschitz_s`` = the sound enclosures, ``phase_budgets_s`` = budgets and
    bounds), ``audit_wall_s`` (all units, wall clock) and ``workers`` (ranks).

    Scale-out (:mod:`verification.bridge.distributed`): the single-layer audits and the multi-layer steps are
    independent units.  ``workers=N > 1`` launches ``N`` local ranks (``torch.distributed``, gloo on the CPU,
    nccl when the sound bounds run on CUDA; this process's torch threads are shared out among them) and
    returns rank 0's report.  Called with ``workers=1`` inside a process group (e.g. every rank of
    ``torchrun ... -m verification.cli certify``), the units are shared among the group's ranks; rank 0 returns
    the report, the other ranks ``None``.  Every unit is computed as a single process computes it, so the
    report does not depend on the number of ranks (timings aside); a failing rank raises
    :class:`verification.bridge.distributed.WorkerError` on every rank.
    """
    if isinstance(workers, bool) or not isinstance(workers, (int, np.integer)) or workers < 1:
        raise CertificateInputError(f"workers: must be an integer >= 1, got {workers!r}")
    if order not in ORDERS:
        raise CertificateInputError(f"order: expected one of {ORDERS}, got {order!r}")
    for label, value in (("lambda1", lambda1), ("lambda2", lambda2)):
        if not np.isfinite(value) or value < 0:
            raise CertificateInputError(f"{label}: must be finite and >= 0, got {value!r}")
    if lipschitz not in LIPSCHITZ_METHODS:
        raise CertificateInputError(f"lipschitz: expected one of {LIPSCHITZ_METHODS}, got {lipschitz!r}")
    if sound_budget is not None and (isinstance(sound_budget, bool) or not isinstance(sound_budget, (int, np.integer))
                                     or not 1 <= sound_budget <= MAX_SOUND_BUDGET):
        raise CertificateInputError(
            f"sound_budget: must be an integer in 1..{MAX_SOUND_BUDGET} or None, got {sound_budget!r}")
    device = resolve_device(sound_device, "sound_device")
    if sound_budget is None:
        sound_budget = SOUND_BUDGET_CUDA if device.type == "cuda" else SOUND_BUDGET
    sound_budget = int(sound_budget)
    device = str(device)
    if not np.isfinite(lipschitz_factor) or lipschitz_factor <= 0:
        raise CertificateInputError(f"lipschitz_factor: must be finite and > 0, got {lipschitz_factor!r}")
    check_grid(grid)
    if not isinstance(model, nn.Module):
        raise CertificateInputError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
    supported = supported_layers(model)
    keep_map = getattr(mask, "keep", mask)
    if not isinstance(keep_map, Mapping):
        raise CertificateInputError(
            f"mask: expected a pruning.Mask or a mapping of keep-tensors, got {type(mask).__name__}")
    keep = {name: binary_keep(f"mask: layer {name}", t) for name, t in keep_map.items()}
    check_mask_layers(model, keep)
    unsupported = sorted(name for name in keep if name not in supported)
    if unsupported:
        raise UnsupportedLayerError(f"mask: layers {unsupported} are convolutions with non-numeric or non-zero padding")
    names = [name for name in supported if name in keep]
    steps = tuple(names[::-1] if order == "reverse" else names)
    work = audit_copy(model)
    sets = [_as_data(data, "calibration")] + ([_as_data(heldout, "heldout")] if heldout is not None else [])
    for s in sets:
        check_samples_fit(work, s.images, s.labels, s.name)
    rank, size = rank_and_size()
    if workers > 1:
        if size > 1:
            raise CertificateInputError(
                f"workers: this process is already rank {rank} of a group of {size}; pass workers=1")
        return launch(workers, certify, (model, mask, data), dict(
            heldout=heldout, lambda1=lambda1, lambda2=lambda2, grid=grid, order=order, multilayer=multilayer,
            lipschitz_factor=lipschitz_factor, lipschitz=lipschitz, sound_budget=sound_budget, sound_device=device,
            model_description=model_description, progress=progress, fit=fit),
            cuda=lipschitz == "sound" and device.startswith("cuda"))
    if size > 1 and device.startswith("cuda"):
        device = f"cuda:{torch.cuda.current_device()}"
    options = dict(lambda1=float(lambda1), lambda2=float(lambda2), grid=int(grid), order=order,
                   multilayer=bool(multilayer), lipschitz_factor=float(lipschitz_factor), lipschitz=lipschitz,
                   **({"sound_budget": int(sound_budget), "sound_device": device} if lipschitz == "sound" else {}))
    audit_options = dict(grid=grid, lambda1=lambda1, lambda2=lambda2, lipschitz_factor=lipschitz_factor,
                         lipschitz=lipschitz, sound_budget=sound_budget, sound_device=device)
    units = [AuditUnit(n, i) for i in range(len(sets)) for n in names]
    # step 0 of the multi-layer audit is the calibration audit of its first layer
    units += [AuditUnit(steps[j], 0, j) for j in range(1, len(steps))] if multilayer else []
    units.sort(key=lambda u: -_unit_cost(u, names, int(sets[u.set_index].images.shape[0])))

    def run(unit: AuditUnit) -> tuple[LayerAudit, dict[str, float], float]:
        clock: dict[str, float] = {}
        begin = time.perf_counter()
        if unit.step is None:
            audit = audit_layer(work, unit.layer, keep[unit.layer], sets[unit.set_index],
                                packing=packing_mask(work, mask, [unit.layer]), clock=clock, **audit_options)
        else:
            audit = multilayer_step(model, keep, sets[0], steps, unit.step, mask=mask, clock=clock, **audit_options)
        return audit, clock, time.perf_counter() - begin

    begin = time.perf_counter()
    desc = f"certify ({size} rank{'s' * (size > 1)})"
    results = dict(zip(units, run_units(units, run, progress=progress, desc=desc)))
    timings: dict[str, float] = {"audit_wall_s": time.perf_counter() - begin, "workers": size}
    if rank != 0:
        return None
    start = time.perf_counter()
    fits, fit_errors = fit_layers(work, names) if fit else ((), {})
    timings["mp_fit_s"] = time.perf_counter() - start
    audits = {s.name: [results[AuditUnit(n, i)][0] for n in names] for i, s in enumerate(sets)}
    for i, s in enumerate(sets):
        timings[f"single_layer_{s.name}_s"] = sum(results[AuditUnit(n, i)][2] for n in names)
    ml = None
    if multilayer:
        start = time.perf_counter()
        audited = [results[AuditUnit(steps[0], 0)][0]]
        audited += [results[AuditUnit(steps[j], 0, j)][0] for j in range(1, len(steps))]
        ml = multilayer_audit(model, keep, sets[0], steps, tuple(audited), lambda1=lambda1, lambda2=lambda2, mask=mask)
        step_s = sum(t for u, (_, _, t) in results.items() if u.step is not None)
        timings["multilayer_s"] = time.perf_counter() - start + step_s
    for _, clock, _ in results.values():
        for phase, value in clock.items():
            timings[f"phase_{phase}_s"] = timings.get(f"phase_{phase}_s", 0.0) + value
    provenance = getattr(mask, "provenance", None)
    mask_info: dict[str, Any] = provenance.to_json() if provenance is not None else {"method": "given keep-tensors"}
    mask_info["pattern"] = getattr(mask, "pattern_name", "unstructured")
    mask_info["layers"] = names
    packed = packing_mask(work, mask, names)
    mask_info["execution"] = {n: (PACKED if packed is not None and n in packed.keep else DENSE) for n in names}
    return CertificateReport(
        mpcert_version=_version(),
        model=model_description or type(model).__name__,
        mask=mask_info,
        options=options,
        data={s.name: {"samples": int(s.images.shape[0]), "shape": list(s.images.shape[1:])} for s in sets},
        calibration=tuple(audits["calibration"]),
        heldout=tuple(audits.get("heldout", ())),
        multilayer=ml,
        timings=timings,
        fits=fits,
        fit_errors=fit_errors,
    )
