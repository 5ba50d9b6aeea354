"""Input-channel permutation alignment for k:n ("flatten the layer", ALGORITHMS.md 7.5, C8, C9).

Importance per input channel ``c`` (conv: summed over its ``t = k_h k_w`` taps):

* ``"weight_l2sq"`` (reference k:n module): ``I_c = sum_i sum_taps W[i, c, tap]^2``;
* ``"weight_l2sq_x_act_sq"`` (reference 2:4 module): ``(sum_i sum_taps W^2) * mean_taps E[h_{c,tap}^2]``;
* ``"weight_l1_x_act_abs"`` (paper text): ``(sum_i sum_taps |W|) * mean_taps E|h_{c,tap}|``
  (the paper states it for Linear layers; the tap averaging for convs is [I]).

Permutation: ``order = argsort(I)`` descending (stable), ``G = floor(C_in / n)``, bucket
``j = order[j G : (j+1) G]``, ``pi[g n + j] = bucket_j[g]`` (group ``g`` takes ranks
``g, G+g, 2G+g, ...``; the correct positions of C9), leftovers ``pi[G n:] = order[G n:]``.
Permuting a layer's weight columns and its input identically leaves it unchanged; no output
un-permutation is needed (C9).
"""

from __future__ import annotations

import numpy as np

from .errors import PruningParameterError

__all__ = ["IMPORTANCE_MODES", "channel_importance", "interleave_permutation"]

IMPORTANCE_MODES = ("weight_l2sq", "weight_l2sq_x_act_sq", "weight_l1_x_act_abs")


def channel_importance(w2d: np.ndarray, activations: np.ndarray | None, c_in: int, mode: str) -> np.ndarray:
    """Importance ``I_c`` of each of the ``c_in`` input channels of a ``(d_out, c_in * taps)`` weight."""
    if mode not in IMPORTANCE_MODES:
        raise PruningParameterError(f"importance: expected one of {IMPORTANCE_MODES}, got {mode!r}")
    w = w2d.reshape(w2d.shape[0], c_in, -1)
    if mode == "weight_l2sq":
        return (w**2).sum(axis=(0, 2))
    if activations is None:
        raise PruningParameterError(f"importance: mode {mode!r} needs calibration activations")
    h = activations.reshape(activations.shape[0], c_in, -1)
    if mode == "weight_l2sq_x_act_sq":
        return (w**2).sum(axis=(0, 2)) * (h**2).mean(axis=0).mean(axis=1)
    return np.abs(w).sum(axis=(0, 2)) * np.abs(h).mean(axis=0).mean(axis=1)


def interleave_permutation(importance: np.ndarray, n: int) -> np.ndarray:
    """Permutation ``pi`` spreading importance ranks across the n-groups (module docstring)."""
    order = np.argsort(-importance, kind="stable")
    n_groups = importance.size // n
    head = order[: n_groups * n].reshape(n, n_groups).T.reshape(-1)
    return np.concatenate([head, order[n_groups * n :]])
