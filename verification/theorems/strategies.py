"""Hypothesis strategies for the SOUND/EXACT theorem checks (THEORY.md 9.1, 9.2, 9.4).

Everything is tiny and drawn with ``hypothesis.extra.numpy.arrays`` so that failures shrink to
small, readable examples (few layers, few samples, weights 0/1/-1).

* :func:`mlps` / :func:`target_problems` — ReLU/abs MLP with a target layer (THEORY.md 9.1): input dim
  1–6, 0–2 layers before the target, target ``n x m`` with ``n, m`` in [1, 8], 0–3 layers after, ``K`` in
  [2, 5], ``|T|`` in [1, 6], weights in [-3, 3] (exact zeros and repeated values included), biases in
  [-1, 1], labels uniform.  :func:`target_problems` also forces the degenerate cases of 9.1:
  ``psi_1(s) = 0``, all ReLUs after the target dead, tied logits, ``|T| = 1``.
* Decompositions (THEORY.md 9.2): :func:`masks` (Bernoulli, magnitude threshold, ``k:n``, empty,
  full; ``True`` = keep), :func:`kn_masks`, :func:`prune_restore_triples` ``(S, Q, P)`` with disjoint
  supports, :func:`additive_splits` ``(S, R, kind)`` of kinds ``mask`` / ``additive`` / ``svd`` /
  ``gaussian``.
* Scalars: :func:`thetas` (0 and 1 forced sometimes), :func:`penalties` ``(lambda1, lambda2)`` in
  [0, 2], :func:`gamma_weights` in [0, 2] with zeros, :func:`datasets`.
* :func:`multi_step_plans` — ordered pruning steps (layer, keep-mask) for Theorems 5.8, 5.9 and
  OR1 Corollary 1.3.  A step's mask applies to the layer's weight *as it is at that step*.

For ``mask`` splits ``S + R == A`` exactly; for ``additive``/``svd``/``gaussian`` splits ``R = A - S``
is computed in float64, so ``S + R`` equals ``A`` up to one rounding per entry.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from certs.layer_view import LayerView
from rmt.errors import InvalidParameterError

from .networks import ReluAbsMLP

__all__ = [
    "weight_arrays",
    "mlps",
    "TargetProblem",
    "target_problems",
    "datasets",
    "masks",
    "kn_masks",
    "prune_restore_triples",
    "additive_splits",
    "thetas",
    "penalties",
    "gamma_weights",
    "PlanStep",
    "multi_step_plans",
    "MASK_KINDS",
    "SPLIT_KINDS",
]

MASK_KINDS = ("bernoulli", "magnitude", "kn", "empty", "full")
SPLIT_KINDS = ("mask", "additive", "svd", "gaussian")

#: Values that hit kinks and ties; drawn often so repeated values and exact zeros are common.
_SPECIAL_WEIGHTS = (0.0, 1.0, -1.0, 0.5, -0.5, 2.0, -2.0, 3.0, -3.0)


def _bounded(limit: float, specials: Sequence[float]) -> st.SearchStrategy[float]:
    return st.one_of(
        st.sampled_from(tuple(specials)),
        st.floats(-limit, limit, allow_nan=False, allow_infinity=False, allow_subnormal=False),
    )


def weight_arrays(shape: tuple[int, ...], limit: float = 3.0) -> st.SearchStrategy[np.ndarray]:
    """float64 arrays with entries in ``[-limit, limit]``, many exact zeros and repeated values."""
    specials = [v for v in _SPECIAL_WEIGHTS if abs(v) <= limit]
    return hnp.arrays(np.float64, shape, elements=_bounded(limit, specials))


def _flag(draw, one_in: int = 5) -> bool:
    """``True`` with probability about ``1/one_in``; shrinks to ``False``."""
    return draw(st.integers(0, one_in - 1)) == one_in - 1


@st.composite
def _mlp_and_target(draw, activations=("relu", "abs"), final_activation=None, bias: bool = True):
    d0 = draw(st.integers(1, 6))
    n_before = draw(st.integers(0, 2))
    n_after = draw(st.integers(0, 3))
    K = draw(st.integers(2, 5))
    hidden_before = [draw(st.integers(1, 8)) for _ in range(n_before)]
    n_target = K if n_after == 0 else draw(st.integers(1, 8))
    hidden_after = [draw(st.integers(1, 8)) for _ in range(max(n_after - 1, 0))]
    widths = [d0, *hidden_before, n_target, *hidden_after] + ([K] if n_after else [])
    weights = [draw(weight_arrays((o, i))) for i, o in zip(widths[:-1], widths[1:])]
    biases = [draw(weight_arrays((o,), limit=1.0)) for o in widths[1:]] if bias else None
    activation = draw(st.sampled_from(tuple(activations)))
    final = draw(st.booleans()) if final_activation is None else bool(final_activation)
    return ReluAbsMLP.from_weights(weights, biases, activation, final), n_before


def mlps(activations=("relu", "abs"), final_activation: bool | None = None, bias: bool = True):
    """:class:`ReluAbsMLP` of THEORY.md 9.1 (the target position is drawn but not returned)."""
    return _mlp_and_target(activations, final_activation, bias).map(lambda pair: pair[0])


def datasets(d: int, K: int, max_samples: int = 6, limit: float = 2.0):
    """``(X, labels)``: ``X`` of shape ``(|T|, d)``, ``|T|`` in ``[1, max_samples]``, labels uniform in ``[0, K)``."""
    return st.integers(1, max_samples).flatmap(
        lambda t: st.tuples(
            weight_arrays((t, d), limit=limit),
            hnp.arrays(np.int64, (t,), elements=st.integers(0, K - 1)),
        )
    )


@dataclass(frozen=True, eq=False)
class TargetProblem:
    """A network, a target layer index, samples and the resulting :class:`LayerView`."""

    mlp: ReluAbsMLP
    index: int
    X: np.ndarray
    labels: np.ndarray
    view: LayerView


@st.composite
def target_problems(draw, activations=("relu", "abs"), final_activation: bool | None = None):
    """A :class:`TargetProblem` (THEORY.md 9.1), with the degenerate cases forced about 1/5 of the time each.

    * ``zero_psi1``: biases before the target are zero and some samples are ``0``, so ``psi_1(s) = 0``;
    * ``dead``: ReLU, and the first affine map after the target (the target itself when it is last and has
      a ReLU input) gets non-positive weights and biases, so every unit it feeds is dead on non-negative inputs;
    * ``tied``: the last layer's rows 0 and 1 (and biases) are equal, so logits 0 and 1 tie everywhere;
    * ``|T| = 1``: the sample count shrinks to 1 and is forced to 1 sometimes.
    """
    mlp, index = draw(_mlp_and_target(activations, final_activation))
    ws, bs = mlp.weights(), mlp.biases()
    activation = mlp.activation
    if _flag(draw):  # psi_1(s) = 0 for the zero samples
        for k in range(index):
            bs[k] = np.zeros_like(bs[k])
        zero_inputs = True
    else:
        zero_inputs = False
    if _flag(draw) and "relu" in activations:
        activation = "relu"
        k = index + 1 if index + 1 < len(ws) else (index if index > 0 else None)
        if k is not None:
            ws[k] = -np.abs(ws[k])
            bs[k] = -np.abs(bs[k])
    if _flag(draw):
        ws[-1][1] = ws[-1][0]
        bs[-1][1] = bs[-1][0]
    mlp = ReluAbsMLP.from_weights(ws, bs, activation, mlp.final_activation)
    K = mlp.widths[-1]
    X, labels = draw(datasets(mlp.widths[0], K, max_samples=1 if _flag(draw) else 6))
    if zero_inputs:
        zero_rows = draw(hnp.arrays(np.bool_, (X.shape[0],), elements=st.booleans()))
        zero_rows[0] = True
        X = np.where(zero_rows[:, None], 0.0, X)
    return TargetProblem(mlp=mlp, index=index, X=X, labels=labels, view=mlp.layer_view(index, X, labels))


# ---------------------------------------------------------------------- masks and splits


def _top_k_per_group(scores: np.ndarray, k: int, n: int) -> np.ndarray:
    """Keep the ``k`` highest scores in each group of ``n`` consecutive entries of every row (stable ties)."""
    rows, m = scores.shape
    grouped = scores.reshape(rows, m // n, n)
    order = np.argsort(-grouped, axis=-1, kind="stable")
    keep = np.zeros(grouped.shape, dtype=bool)
    np.put_along_axis(keep, order[..., :k], True, axis=-1)
    return keep.reshape(rows, m)


def kn_masks(shape: tuple[int, int], k: int, n: int, weight: np.ndarray | None = None):
    """``k:n`` masks (THEORY.md 9.2): each row split into groups of ``n`` consecutive inputs, ``k`` kept per group,
    either the ``k`` largest ``|weight|`` (when ``weight`` is given, sometimes) or ``k`` random ones."""
    rows, m = shape
    if n < 1 or m % n or not 0 <= k <= n:
        raise InvalidParameterError(f"k:n mask needs n >= 1 dividing m={m} and 0 <= k <= n, got k={k}, n={n}")
    random_scores = hnp.arrays(np.float64, shape, elements=st.floats(0, 1, allow_subnormal=False))
    if weight is None:
        return random_scores.map(lambda sc: _top_k_per_group(sc, k, n))
    magnitude = np.abs(np.asarray(weight, dtype=np.float64))
    return st.one_of(st.just(magnitude), random_scores).map(lambda sc: _top_k_per_group(sc, k, n))


@st.composite
def _any_kn_mask(draw, shape, weight):
    m = shape[1]
    n = draw(st.sampled_from([q for q in range(1, m + 1) if m % q == 0]))
    k = draw(st.integers(0, n))
    return draw(kn_masks(shape, k, n, weight))


@st.composite
def _magnitude_mask(draw, weight):
    magnitude = np.abs(np.asarray(weight, dtype=np.float64))
    threshold = draw(st.sampled_from(sorted({0.0, *magnitude.ravel().tolist(), np.inf})))
    return magnitude >= threshold


def masks(shape: tuple[int, int], kinds: Sequence[str] = MASK_KINDS, weight: np.ndarray | None = None):
    """Boolean keep-masks (``True`` = keep) of the given kinds (THEORY.md 9.2).
    ``magnitude`` keeps ``|weight| >= t`` for a threshold among 0, the magnitudes and ``inf``; it needs ``weight``."""
    unknown = set(kinds) - set(MASK_KINDS)
    if unknown or not kinds:
        raise InvalidParameterError(f"kinds must be a non-empty subset of {MASK_KINDS}, got {kinds!r}")
    shape = tuple(int(v) for v in shape)
    builders = {
        "bernoulli": lambda: hnp.arrays(np.bool_, shape, elements=st.booleans()),
        "magnitude": lambda: _magnitude_mask(weight),
        "kn": lambda: _any_kn_mask(shape, weight),
        "empty": lambda: st.just(np.zeros(shape, dtype=bool)),
        "full": lambda: st.just(np.ones(shape, dtype=bool)),
    }
    chosen = [kind for kind in kinds if kind != "magnitude" or weight is not None]
    if not chosen:
        raise InvalidParameterError("kinds=('magnitude',) needs the weight argument")
    return st.one_of(*(builders[kind]() for kind in chosen))


def _split_by_mask(A: np.ndarray, keep: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return np.where(keep, A, 0.0), np.where(keep, 0.0, A)


@st.composite
def prune_restore_triples(draw, A: np.ndarray):
    """``(S, Q, P)`` with pairwise disjoint supports and ``S + Q + P == A`` exactly (THEORY.md 9.2, Theorem 5.5):
    a final ``k:n`` mask ``M_f`` with an over-pruned sub-mask ``M_o <= M_f`` (``S = M_o A``, ``Q = (M_f - M_o) A``,
    ``P = (1 - M_f) A``), or random labels in {0, 1, 2} per entry."""
    A = np.asarray(A, dtype=np.float64)
    if draw(st.booleans()):
        labels = draw(hnp.arrays(np.int8, A.shape, elements=st.integers(0, 2)))
    else:
        final = draw(_any_kn_mask(A.shape, A))
        over = final & draw(hnp.arrays(np.bool_, A.shape, elements=st.booleans()))
        labels = np.where(over, 0, np.where(final, 1, 2))
    return tuple(np.where(labels == part, A, 0.0) for part in (0, 1, 2))


def _svd_split(A: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    U, s, Vt = np.linalg.svd(A, full_matrices=False)
    S = (U[:, :k] * s[:k]) @ Vt[:k]
    return S, A - S


@st.composite
def additive_splits(draw, A: np.ndarray, kinds: Sequence[str] = SPLIT_KINDS):
    """``(S, R, kind)`` with ``A = S + R`` (THEORY.md 9.2): ``mask`` (disjoint supports, exact), ``additive``
    (arbitrary ``S``, ``R = A - S``), ``svd`` (``S`` = best rank-``k`` approximation, ``<S, R>_F = 0``),
    ``gaussian`` (``R = sqrt(g/n) Z`` with ``n`` = rows, ``S = A - R``)."""
    A = np.asarray(A, dtype=np.float64)
    kind = draw(st.sampled_from(tuple(kinds)))
    if kind == "mask":
        S, R = _split_by_mask(A, draw(masks(A.shape, weight=A)))
    elif kind == "additive":
        S = draw(weight_arrays(A.shape))
        R = A - S
    elif kind == "svd":
        S, R = _svd_split(A, draw(st.integers(0, min(A.shape))))
    elif kind == "gaussian":
        g = draw(st.sampled_from([0.0, 0.25, 1.0]))
        Z = draw(hnp.arrays(np.float64, A.shape, elements=st.floats(-3, 3, allow_subnormal=False)))
        R = np.sqrt(g / A.shape[0]) * Z
        S = A - R
    else:
        raise InvalidParameterError(f"kinds must be drawn from {SPLIT_KINDS}, got {kind!r}")
    return S, R, kind


# ---------------------------------------------------------------------- scalars


def thetas():
    """``theta`` (or ``h``) in ``[0, 1]`` with the endpoints 0 and 1 drawn often."""
    return st.one_of(st.sampled_from([0.0, 1.0]), st.floats(0.0, 1.0, allow_subnormal=False))


def _penalty():
    return st.one_of(st.sampled_from([0.0, 1.0, 2.0]), st.floats(0.0, 2.0, allow_subnormal=False))


def penalties():
    """``(lambda1, lambda2)``, each in ``[0, 2]`` with 0 drawn often."""
    return st.tuples(_penalty(), _penalty())


def gamma_weights(shape: tuple[int, ...]):
    """Entrywise penalty weights ``gamma >= 0`` in ``[0, 2]`` with exact zeros (OR1 Corollaries 1.1–1.2)."""
    return hnp.arrays(np.float64, tuple(shape), elements=_penalty())


# ---------------------------------------------------------------------- multi-step plans


@dataclass(frozen=True, eq=False)
class PlanStep:
    """One pruning step: ``W_index <- keep * W_index`` (the weight as it is at this step)."""

    index: int
    keep: np.ndarray


@st.composite
def multi_step_plans(draw, mlp: ReluAbsMLP, allow_repeats: bool = False, max_steps: int = 4):
    """Ordered steps ``(index, keep)`` for Theorems 5.8/5.9 and OR1 Corollary 1.3.

    Without repeats the layers are distinct (required by Theorem 5.9) in random order; with
    ``allow_repeats`` a layer may be pruned again later (Theorem 5.8).  At least one step.
    """
    shapes = [w.shape for w in mlp.weights()]
    layer = st.integers(0, len(shapes) - 1)
    if allow_repeats:
        order = draw(st.lists(layer, min_size=1, max_size=max_steps))
    else:
        order = draw(st.lists(layer, min_size=1, max_size=min(max_steps, len(shapes)), unique=True))
    return tuple(PlanStep(index=k, keep=draw(masks(shapes[k]))) for k in order)
