"""The float64 rounding constants and one-ulp outward steps shared by the interval engine (THEORY.md 3.6).

:mod:`certs.intervals.interval` and :mod:`certs.intervals.elementary` both build on this module (and on
nothing else of the engine), so neither imports the other's internals.
"""

from __future__ import annotations

import torch

__all__ = ["EPS", "U", "TINY", "FN_REL", "FN_ABS", "round_down", "round_up_tensor"]

#: Machine epsilon of float64 (the spacing of floats at 1).
EPS = 2.0 ** -52
#: Unit roundoff of float64 (``|fl(a op b) - a op b| <= U |a op b|`` for ``+ - * /`` and ``sqrt``).
U = EPS / 2.0
#: Smallest positive normal float64: the absolute margin per term against underflow.
TINY = 2.0 ** -1022
#: Assumed relative error bound of torch's float64 tanh / erf kernels (exp and the normal cdf are proven).
FN_REL = 1e-12
FN_ABS = 1e-300


def round_down(x: torch.Tensor) -> torch.Tensor:
    """The next float64 toward ``-inf`` (one ulp outward)."""
    return torch.nextafter(x, torch.full((), float("-inf"), dtype=x.dtype, device=x.device))


def round_up_tensor(x: torch.Tensor) -> torch.Tensor:
    """The next float64 toward ``+inf`` (one ulp outward)."""
    return torch.nextafter(x, torch.full((), float("inf"), dtype=x.dtype, device=x.device))
