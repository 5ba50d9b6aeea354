"""Property checks of the helper facts of THEORY.md 3.7 used by every Section-5 certificate.

* CE is 2-Lipschitz in the l_inf norm of the logits, and ``||grad l_s||_1 = 2 (1 - rho_C)``.
* Logit path bound ``||z_{A_theta}(s) - z_{A_1}(s)||_inf <= (1 - theta) L_s ||R v_s||_inf``.
* Frobenius identity ``||S + theta R||_F^2 - ||S + R||_F^2 = -(1 - theta^2) ||R||_F^2 - 2 (1 - theta) <S, R>_F``.
* Disjoint supports: ``||S + theta R||_F^2 = ||S||_F^2 + theta^2 ||R||_F^2``,
  ``||S + theta R||_1 = ||S||_1 + theta ||R||_1`` (entrywise), ``<S, R>_F = 0``, and the same with entrywise weights
  ``gamma``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from certs.classification import cross_entropy_per_sample
from certs.single_layer import ce_path_bound
from certs.splits import ElasticNetPenalty, entrywise_l1, frobenius_inner, frobenius_sq, mask_split

from .check_outcomes import CheckOutcome, identity, inequality
from .single_layer_checks import SingleLayerInstance, induced_l1, segment_points
from .strategies import gamma_weights, masks, thetas, weight_arrays

__all__ = [
    "LogitPair",
    "logit_pairs",
    "MatrixPair",
    "matrix_pairs",
    "check_ce_lipschitz",
    "check_logit_path_bound",
    "check_frobenius_identity",
    "check_disjoint_identities",
]


@dataclass(frozen=True, eq=False)
class LogitPair:
    """Two logit batches ``z, z'`` of shape ``(|T|, K)`` with labels."""

    z: np.ndarray
    z_other: np.ndarray
    labels: np.ndarray


_LOGIT_VALUES = st.one_of(
    st.sampled_from([0.0, 1.0, -1.0, 700.0, -700.0, 1e4, -1e4]),
    st.floats(-60.0, 60.0, allow_nan=False, allow_subnormal=False),
)


@st.composite
def logit_pairs(draw):
    """Logits with ties (repeated specials) and huge values, where a naive log-sum-exp overflows."""
    t, k = draw(st.integers(1, 4)), draw(st.integers(2, 5))
    z = draw(hnp.arrays(np.float64, (t, k), elements=_LOGIT_VALUES))
    z_other = z + draw(hnp.arrays(np.float64, (t, k), elements=st.floats(-5.0, 5.0, allow_subnormal=False)))
    labels = draw(hnp.arrays(np.int64, (t,), elements=st.integers(0, k - 1)))
    return LogitPair(z, z_other, labels)


def check_ce_lipschitz(pair: LogitPair, mutation: str | None = None) -> list[CheckOutcome]:
    """``|l_s(z) - l_s(z')| <= 2 ||z - z'||_inf`` and ``||rho(z) - e_C||_1 = 2 (1 - rho_C(z))`` (THEORY.md 3.7).

    Mutation: ``constant-1`` (Lipschitz constant 1 instead of 2).
    """
    constant = 1.0 if mutation == "constant-1" else 2.0
    ce, ce_other = cross_entropy_per_sample(pair.z, pair.labels), cross_entropy_per_sample(pair.z_other, pair.labels)
    dist = np.abs(pair.z - pair.z_other).max(axis=1)
    out = [inequality(abs(a - b), constant * d, max(abs(a), abs(b))) for a, b, d in zip(ce, ce_other, dist)]
    shifted = pair.z - pair.z.max(axis=1, keepdims=True)
    rho = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)
    onehot = np.eye(pair.z.shape[1])[pair.labels]
    rho_c = rho[np.arange(len(pair.labels)), pair.labels]
    out += [identity(g, 2 * (1 - p)) for g, p in zip(np.abs(rho - onehot).sum(axis=1), rho_c)]
    return out


def check_logit_path_bound(inst: SingleLayerInstance, mutation: str | None = None) -> list[CheckOutcome]:
    """Per sample: ``||z_{A_theta}(s) - z_{A_1}(s)||_inf <= (1 - theta) L_s ||R v_s||_inf``.  Mutation:
    ``lipschitz-halved``."""
    out = []
    for _, lip, theta in segment_points(inst, mutation):
        r = ce_path_bound(inst.view, inst.split, lip, theta)
        out += [inequality(change, eta) for change, eta in zip(r.logit_change, r.eta)]
    return out


@dataclass(frozen=True, eq=False)
class MatrixPair:
    """``S``, ``R`` (arbitrary or a mask split of ``A = S + R``), ``theta`` and entrywise weights."""

    structured: np.ndarray
    removed: np.ndarray
    theta: float
    gamma1: np.ndarray
    gamma2: np.ndarray


@st.composite
def matrix_pairs(draw, disjoint: bool):
    shape = (draw(st.integers(1, 6)), draw(st.integers(1, 6)))
    if disjoint:
        a = draw(weight_arrays(shape))
        split = mask_split(a, draw(masks(shape, weight=a)))
        s, r = split.structured, split.removed
    else:
        s, r = draw(weight_arrays(shape)), draw(weight_arrays(shape))
    return MatrixPair(s, r, draw(thetas()), draw(gamma_weights(shape)), draw(gamma_weights(shape)))


def check_frobenius_identity(pair: MatrixPair, mutation: str | None = None) -> list[CheckOutcome]:
    """EXACT: ``||S + theta R||_F^2 - ||S + R||_F^2 = -(1 - theta^2) ||R||_F^2 - 2 (1 - theta) <S, R>_F``.
    Mutation: ``cross-term-dropped``."""
    s, r, t = pair.structured, pair.removed, pair.theta
    lhs = frobenius_sq(s + t * r) - frobenius_sq(s + r)
    cross = 0.0 if mutation == "cross-term-dropped" else frobenius_inner(s, r)
    rhs = -(1 - t * t) * frobenius_sq(r) - 2 * (1 - t) * cross
    return [identity(lhs, rhs, frobenius_sq(s) + frobenius_sq(r) + 2 * abs(frobenius_inner(s, r)))]


def check_disjoint_identities(pair: MatrixPair, mutation: str | None = None) -> list[CheckOutcome]:
    """EXACT for ``S ⊙ R = 0``: Frobenius, entrywise l1, inner product and weighted versions (THEORY.md 3.7).
    Mutation: ``induced-l1`` (the induced 1-norm is not additive over disjoint supports)."""
    s, r, t = pair.structured, pair.removed, pair.theta
    moved = s + t * r
    l1 = induced_l1 if mutation == "induced-l1" else entrywise_l1
    weighted = ElasticNetPenalty.create(pair.gamma1, pair.gamma2, s.shape)
    scale = frobenius_sq(s) + frobenius_sq(r) + entrywise_l1(s) + entrywise_l1(r)
    return [
        identity(frobenius_sq(moved), frobenius_sq(s) + t * t * frobenius_sq(r), scale),
        identity(l1(moved), l1(s) + t * l1(r), scale),
        identity(frobenius_inner(s, r), 0.0, scale),
        identity(weighted.quadratic(moved), weighted.quadratic(s) + t * t * weighted.quadratic(r), 2 * scale),
        identity(weighted.linear(moved), weighted.linear(s) + t * weighted.linear(r), 2 * scale),
    ]
