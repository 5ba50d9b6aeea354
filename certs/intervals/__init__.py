"""Outward-rounded float64 interval arithmetic and interval forward mode (THEORY.md 3.1, 3.6).

* :mod:`certs.intervals.interval` — :class:`Interval` (``lo``, ``hi`` torch tensors) with outward rounding;
* :mod:`certs.intervals.dual` — :class:`Dual`: value interval + tangent interval (directional derivative);
* :mod:`certs.intervals.elementary` — exp, the Gaussian density and cdf from IEEE operations, with proven errors;
* :mod:`certs.intervals.blocked` — sums and matrix products in blocks, with short rounding-error bounds;
* :mod:`certs.intervals.smooth` — derivatives (with per-entry float errors) and derivative bounds of exp, 1/x,
  x^-1/2, tanh, GELU;
* :mod:`certs.intervals.taylor` — :class:`TaylorDual`: value and tangent as Taylor forms in the path
  parameter with rounded remainders (what makes the bounds usable through attention blocks);
* :mod:`certs.intervals.transformer` — LayerNorm, softmax and multi-head attention on both kinds of duals;
* :mod:`certs.intervals.normed` — LayerNorm on Taylor duals keeping two rank-one remainders per token for the
  linear map that follows;
* :mod:`certs.intervals.refinement` — sub-interval driver with adaptive splitting, giving sound ``L_s``;
* :mod:`certs.intervals.piecewise_linear` — the same bounds for the op lists of :mod:`certs.lipschitz`.
"""
