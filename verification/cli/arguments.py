"""Integer arguments of the ``mpcert`` commands, checked once with the flag's command-line name in the message.

``--seed`` seeds both numpy (``np.random.default_rng``: any integer >= 0) and torch
(``torch.manual_seed``: below ``2**64``), so it must lie in ``0 .. 2**63 - 1``.
"""

from __future__ import annotations

import numpy as np

from rmt.errors import InvalidParameterError

__all__ = ["check_integer", "check_seed", "MAX_SEED"]

MAX_SEED = 2**63 - 1


def check_integer(value: object, flag: str, minimum: int, maximum: int | None = None) -> int:
    """``value`` as an ``int`` in ``minimum .. maximum``; otherwise :class:`InvalidParameterError` naming ``flag``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise InvalidParameterError(f"{flag}: must be an integer, got {value!r}")
    if value < minimum or (maximum is not None and value > maximum):
        bounds = f">= {minimum}" if maximum is None else f"in {minimum}..{maximum}"
        raise InvalidParameterError(f"{flag}: must be an integer {bounds}, got {value!r}")
    return int(value)


def check_seed(seed: object, flag: str = "--seed") -> int:
    """A seed for numpy and torch (module docstring)."""
    return check_integer(seed, flag, 0, MAX_SEED)
