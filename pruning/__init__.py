"""pruning — the paper's pruning methods, masks, k:n patterns, 2:4 packed execution and MAC accounting.

Build a mask by name (:func:`build_mask`, names from :func:`list_pruners`) or call a method directly;
every method returns a :class:`Mask` and leaves the model unchanged.
"""

from .calibration import ActivationCapture
from .cast import cast_kn
from .errors import (
    CalibrationError,
    InvalidWeightError,
    MaskMismatchError,
    PatternError,
    PruningError,
    PruningParameterError,
    IneligibleLayerError,
)
from .finetune import FinetuneConfig, FinetuneResult, finetune
from .hybrid import hybrid_magnitude_ser, hybrid_schedule
from .kn_patterns import PATTERN_24, KNPattern
from .macs import MacReport, vit_mac_report, vit_macs
from .magnitude import magnitude, magnitude_kn
from .mask import Mask, Provenance, SparsityReport
from .packed24 import SparseLinear24, convert_to_24, convert_to_dense
from .registry import PrunerSpec, build_mask, list_pruners, pruner_spec, register_pruner
from .rmt_baseline import classical_rmt
from .seb import seb
from .ser import ser
from . import pruners  # noqa: F401,E402  (its decorators register every method with the registry)

__all__ = [
    "Mask",
    "Provenance",
    "SparsityReport",
    "KNPattern",
    "PATTERN_24",
    "build_mask",
    "list_pruners",
    "pruner_spec",
    "register_pruner",
    "PrunerSpec",
    "magnitude",
    "magnitude_kn",
    "classical_rmt",
    "seb",
    "ser",
    "hybrid_magnitude_ser",
    "hybrid_schedule",
    "cast_kn",
    "ActivationCapture",
    "finetune",
    "FinetuneConfig",
    "FinetuneResult",
    "SparseLinear24",
    "convert_to_24",
    "convert_to_dense",
    "MacReport",
    "vit_macs",
    "vit_mac_report",
    "PruningError",
    "PruningParameterError",
    "IneligibleLayerError",
    "InvalidWeightError",
    "PatternError",
    "CalibrationError",
    "MaskMismatchError",
]
