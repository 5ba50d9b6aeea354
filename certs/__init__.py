"""certs — the deterministic pruning certificates of Section 5 and Online Resource 1, and sound ``L_s``.

Every certificate takes a :class:`LayerView` (or a :class:`PrunableNetwork`) and an additive split
``A = S + R`` and returns a typed result deriving from :class:`CertificateResult`, whose bound is a
:class:`rmt.Bound` labelled ``sound`` or ``estimate``.  The interval engine behind the sound
transformer ``L_s`` is :mod:`certs.intervals`.
"""

from .budget import PerSampleLipschitz, data_path_budget, per_sample_lipschitz, segment_lipschitz
from .errors import CertificateInputError, EnclosureError, UnsupportedLayerError
from .layer_view import ActivationOp, AffineOp, LayerView, PiecewiseLinearTail
from .lipschitz import LipschitzResult, lipschitz_constants
from .multilayer import (
    MultiLayerBound,
    MultiLayerCertificate,
    MultiLayerMarginCertificate,
    MultiLayerStationarityCertificate,
    PrunableNetwork,
    multilayer_certificate,
    multilayer_margin_stability,
    multilayer_stationarity,
    prune_sequence,
    theorem_5_8_result,
)
from .prune_restore import prune_restore_certificate
from .results import CertificateResult, HypothesisCheck
from .single_layer import (
    CEPathCertificate,
    ElasticNetCertificate,
    FrobeniusCertificate,
    MarginStabilityCertificate,
    PathEvaluation,
    ce_path_bound,
    ce_path_bound_from_path,
    elastic_net_certificate,
    elastic_net_from_path,
    evaluate_path,
    frobenius_certificate,
    margin_stability,
    margin_stability_from_path,
    mask_certificate,
    mask_certificate_from_path,
)
from .splits import AdditiveSplit, ElasticNetPenalty, PruneRestoreSplit, mask_split, prune_restore_split
from .stationarity import StationarityCertificate, stationarity_certificate

__all__ = [
    "LayerView",
    "AffineOp",
    "ActivationOp",
    "PiecewiseLinearTail",
    "AdditiveSplit",
    "PruneRestoreSplit",
    "ElasticNetPenalty",
    "mask_split",
    "prune_restore_split",
    "PerSampleLipschitz",
    "per_sample_lipschitz",
    "segment_lipschitz",
    "LipschitzResult",
    "lipschitz_constants",
    "data_path_budget",
    "evaluate_path",
    "PathEvaluation",
    "ce_path_bound",
    "ce_path_bound_from_path",
    "margin_stability",
    "margin_stability_from_path",
    "frobenius_certificate",
    "elastic_net_certificate",
    "elastic_net_from_path",
    "mask_certificate",
    "mask_certificate_from_path",
    "prune_restore_certificate",
    "stationarity_certificate",
    "PrunableNetwork",
    "prune_sequence",
    "multilayer_certificate",
    "theorem_5_8_result",
    "multilayer_margin_stability",
    "multilayer_stationarity",
    "CertificateResult",
    "HypothesisCheck",
    "CEPathCertificate",
    "MarginStabilityCertificate",
    "FrobeniusCertificate",
    "ElasticNetCertificate",
    "StationarityCertificate",
    "MultiLayerBound",
    "MultiLayerCertificate",
    "MultiLayerMarginCertificate",
    "MultiLayerStationarityCertificate",
    "CertificateInputError",
    "UnsupportedLayerError",
    "EnclosureError",
]
