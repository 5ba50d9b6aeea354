"""Proven bounds on the float64 rounding error of the computed path logits (Corollary 5.2, THEORY.md 0.3).

The certificates compare *computed* logits (:func:`certs.path.path_logits_from_outputs`)::

    z^_theta(s) = fl(psi_2(fl(fl(S v_s) + fl(theta fl(R v_s)))))

with the exact ones.  Three exact references matter for a sample ``s`` and a ``theta``:

* ``z_theta(s) = psi_2((S + theta R) v_s)``, the network the corollary is about;
* ``zeta_theta(s) = psi_2(p^ + theta q^)`` on the computed layer outputs ``p^ = fl(S v_s)``, ``q^ = fl(R v_s)``:
  the segment on which ``L_s`` is taken (:func:`certs.budget.segment_lipschitz`), so
  ``||zeta_theta - zeta_1||_inf <= eta_s(theta) = (1 - theta) L_s ||q^||_inf`` exactly;
* the computed ``z^_theta(s)`` itself.

:func:`tail_rounding` returns ``rho_s(theta)`` with ``||a - b||_inf <= rho_s(theta)`` for any two of the three.
With ``u = 2^-53``, ``gamma_k = k u / (1 - k u)`` (Higham, *Accuracy and Stability*, Lemma 3.1 and eq. 3.4:
``|fl(x . w) - x . w| <= gamma_n |x| . |w|`` for a length-``n`` dot product in *any* summation order, FMA or not)
and ``tiny = 2^-1074`` per operation for gradual underflow:

* target layer (``m`` = input width): ``e_0 = gamma_(m+2) (|S| + theta |R|) |v_s| + (2 m + 4) tiny``
  (the two products, ``theta q^`` and the sum; the same ``e_0`` bounds ``|p^ + theta q^ - (S + theta R) v_s|``);
* ``AffineOp(W, b)`` with ``n`` inputs, computed input ``x^`` within ``e`` of the reference input:
  ``e' = |W| e + gamma_(n+1) (|W| (|x^| + 2 e) + |b|) + (n + 1) tiny``; the ``2 e`` makes the bound hold for
  every float64 evaluation of the same formula, not only for the one re-computed here;
* ``relu`` / ``abs``: exact in float and 1-Lipschitz per coordinate, so ``e`` passes unchanged;
* ``rho_s(theta) = max_j e_final[s, j]``.

Every step is a sum of non-negative terms, evaluated in float64 and then rounded up by ``(1 + 3 gamma_k)`` and
one ulp (``k`` roundings per term), so the computed ``rho`` is not below the exact one.
"""

from __future__ import annotations

import numpy as np

from .errors import CertificateInputError
from .layer_view import AffineOp, LayerView, PiecewiseLinearTail

__all__ = ["UNIT_ROUNDOFF", "gamma", "tail_rounding"]

#: ``u = 2^-53``, the unit roundoff of float64 round-to-nearest.
UNIT_ROUNDOFF = 2.0 ** -53
_TINY = 2.0 ** -1074


def gamma(k: int) -> float:
    """``gamma_k = k u / (1 - k u)`` (Higham), ``u = 2^-53``."""
    return k * UNIT_ROUNDOFF / (1.0 - k * UNIT_ROUNDOFF)


def _up(values: np.ndarray, roundings: int, absolute: float) -> np.ndarray:
    """A float64 upper bound of a non-negative expression computed with ``roundings`` roundings per term."""
    return np.nextafter(values * (1.0 + 3.0 * gamma(roundings)) + absolute, np.inf)


def tail_rounding(view: LayerView, structured: np.ndarray, removed: np.ndarray, theta: float) -> np.ndarray:
    """``rho_s(theta)`` of the module docstring for every sample, shape ``(|T|,)``.

    Needs ``psi_2`` as a :class:`PiecewiseLinearTail` (an opaque callable has no provable rounding error).
    """
    if not isinstance(view.tail, PiecewiseLinearTail):
        raise CertificateInputError(
            f"layer {view.name!r}: the rounding error of psi_2 is bounded only for a PiecewiseLinearTail"
        )
    v = np.abs(view.inputs)
    s, r = np.asarray(structured, dtype=np.float64), np.asarray(removed, dtype=np.float64)
    m = s.shape[1]
    magnitude = v @ np.abs(s).T + float(theta) * (v @ np.abs(r).T)
    error = _up(gamma(m + 2) * magnitude, m + 4, (2 * m + 4) * _TINY)
    x = view.inputs @ s.T + float(theta) * (view.inputs @ r.T)
    for op in view.tail.ops:
        if isinstance(op, AffineOp):
            n = op.weight.shape[1]
            w = np.abs(op.weight)
            own = gamma(n + 1) * ((np.abs(x) + 2.0 * error) @ w.T + np.abs(op.bias))
            error = _up(error @ w.T + own, n + 6, (n + 1) * _TINY)
        x = op(x)
    return error.max(axis=1) if error.shape[1] else np.zeros(error.shape[0])
