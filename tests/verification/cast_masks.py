"""A CAST 2:4 mask of the default model restricted to some layers (shared by the certify tests)."""

from pruning.calibration import ActivationCapture
from pruning.cast import cast_kn
from pruning.mask import Mask


def cast_24_subset(model, images, layers) -> Mask:
    """CAST 2:4 calibrated on ``images``, keeping only the keep-tensors of ``layers`` that CAST masks."""
    full = cast_kn(model, "2:4", ActivationCapture(images))
    return Mask(keep={n: full.keep[n] for n in layers if n in full.keep}, provenance=full.provenance,
                pattern=full.pattern)
