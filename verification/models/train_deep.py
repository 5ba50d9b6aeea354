"""Train the embedded deep model: ``python -m verification.models.train_deep [--epochs E] [--out DIR] ...``.

The default model's recipe (:mod:`verification.models.train_default`: AdamW, warm-up + cosine, label smoothing, flips,
fixed seed, Fashion-MNIST offline) on ``VisionTransformer(**DEEP_CONFIG)`` (:mod:`verification.models.deep_model`: 12
blocks of width 192, 3 heads, MLP 768, 28 px, patch 7) with the defaults of
:data:`verification.models.deep_model.DEEP_RECIPE` (5 epochs, lr 1e-3, one thread: about 47 CPU minutes).  Writes
``deep_vit.safetensors`` and the card ``deep_vit.json`` (same fields as the default model's) into ``--out``
(default: the package assets).
"""

from __future__ import annotations

from typing import Sequence

from verification.models.deep_model import DEEP_CARD_NAME, DEEP_CONFIG, DEEP_RECIPE, DEEP_SCRIPT, DEEP_WEIGHTS_NAME
from verification.models.train_default import run_training

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    return run_training(argv, prog=DEEP_SCRIPT, description=__doc__.split("\n")[0], config=DEEP_CONFIG,
                        defaults=DEEP_RECIPE, weights_name=DEEP_WEIGHTS_NAME, card_name=DEEP_CARD_NAME)


if __name__ == "__main__":
    raise SystemExit(main())
