"""verification — mpcert on real models: the timm bridge :func:`certify`, models and data, the ``mpcert`` CLI.

Sub-packages, one job each (imports run one way: ``verification`` -> ``figures`` / ``certs`` / ``pruning`` -> ``rmt``):

* :mod:`verification.bridge` — the certificate audit of a mask on a timm model and its report;
* :mod:`verification.models` — data sets, the default model, model sources, training, the size-trend run;
* :mod:`verification.theorems` — literal theorem checks on synthetic networks (needs hypothesis);
* :mod:`verification.asymptotics` — the finite-N experiments of THEORY.md 10;
* :mod:`verification.cli` — the ``mpcert`` command line (argument parsing).
"""

from verification.bridge.certificate_report import CertificateReport, LayerAudit, MultiLayerAudit, write_report
from verification.bridge.certify import certify
from verification.errors import MissingExtraError, ModelSourceError
from verification.models.datasets import (
    CalibrationSubset,
    DatasetError,
    ImageDataset,
    calibration_subset,
    load_default_dataset,
    load_fashion_mnist,
)
from verification.models.default_model import build_default_model
from verification.models.model_source import LoadedModel, load_model

__all__ = [
    "certify",
    "CertificateReport",
    "LayerAudit",
    "MultiLayerAudit",
    "write_report",
    "load_model",
    "LoadedModel",
    "build_default_model",
    "load_default_dataset",
    "load_fashion_mnist",
    "calibration_subset",
    "ImageDataset",
    "CalibrationSubset",
    "DatasetError",
    "ModelSourceError",
    "MissingExtraError",
]
