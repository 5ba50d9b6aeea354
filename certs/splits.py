"""Validated decompositions of a target weight and the penalties they change (THEORY.md 1.1, 1.5, 3.7).

* :class:`AdditiveSplit` — ``A = S + R`` with ``S`` and ``R`` arbitrary (Theorem 5.3).
* :func:`mask_split` — ``S = M ⊙ A``, ``R = (1 - M) ⊙ A`` for a 0/1 keep-mask ``M``; the split
  records that ``S ⊙ R = 0`` was verified (Theorems 5.4, 5.7, OR1 1.1–1.2).
* :func:`checked_split` — a user-given ``(S, R)`` whose sum must reproduce ``A`` exactly.
* :class:`PruneRestoreSplit` — ``A = S + Q + P`` with pairwise disjoint supports (Theorem 5.5).

Norms: ``||A||_F^2 = sum A_ij^2`` and the **entrywise** ``||A||_1 = sum |A_ij|`` (THEORY.md 1.1:
the only reading under which the elastic-net results hold).  The elastic-net penalty is
``lambda2 ||A||_F^2 + lambda1 ||A||_1`` and its weighted form (OR1) is
``sum gamma2_ij A_ij^2 + sum gamma1_ij |A_ij|``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import CertificateInputError

__all__ = [
    "AdditiveSplit",
    "PruneRestoreSplit",
    "ElasticNetPenalty",
    "finite_matrix",
    "keep_mask",
    "mask_split",
    "checked_split",
    "prune_restore_split",
    "frobenius_sq",
    "entrywise_l1",
    "frobenius_inner",
]


def finite_matrix(name: str, array, shape: tuple[int, int] | None = None) -> np.ndarray:
    """``array`` as a finite float64 matrix (of ``shape`` when given); names ``name`` on failure."""
    arr = np.asarray(array, dtype=np.float64)
    if arr.ndim != 2:
        raise CertificateInputError(f"{name} must be a 2-D matrix, got shape {arr.shape}")
    if shape is not None and arr.shape != tuple(shape):
        raise CertificateInputError(f"{name} has shape {arr.shape}, expected {tuple(shape)} (the layer's weight shape)")
    if not np.all(np.isfinite(arr)):
        raise CertificateInputError(f"{name} contains NaN or Inf")
    return arr


def frobenius_sq(a: np.ndarray) -> float:
    """``||A||_F^2 = sum_ij A_ij^2``."""
    return float(np.sum(np.square(a)))


def entrywise_l1(a: np.ndarray) -> float:
    """Entrywise ``||A||_1 = sum_ij |A_ij|`` (THEORY.md 1.1; not the induced 1-norm)."""
    return float(np.sum(np.abs(a)))


def frobenius_inner(a: np.ndarray, b: np.ndarray) -> float:
    """``<A, B>_F = sum_ij A_ij B_ij``."""
    return float(np.sum(a * b))


def keep_mask(name: str, mask, shape: tuple[int, int]) -> np.ndarray:
    """A 0/1 mask of the layer's shape as a boolean array (1 = keep)."""
    arr = np.asarray(mask)
    if arr.shape != tuple(shape):
        raise CertificateInputError(f"{name} has shape {arr.shape}, expected the layer's weight shape {tuple(shape)}")
    if arr.dtype != bool:
        values = np.asarray(arr, dtype=np.float64)
        if not np.all((values == 0.0) | (values == 1.0)):
            raise CertificateInputError(f"{name} must contain only 0 and 1")
        arr = values == 1.0
    return arr


@dataclass(frozen=True, eq=False)
class AdditiveSplit:
    """``A = S + R``: ``structured`` is ``S`` (kept), ``removed`` is ``R``.

    ``disjoint`` is True when ``S ⊙ R = 0`` was verified entrywise (a mask split).
    """

    structured: np.ndarray
    removed: np.ndarray
    disjoint: bool

    @property
    def dense(self) -> np.ndarray:
        return self.structured + self.removed

    def at(self, theta: float) -> np.ndarray:
        """``A_theta = S + theta R`` (THEORY.md 1.4)."""
        return self.structured + theta * self.removed


def mask_split(weight, mask, name: str = "mask") -> AdditiveSplit:
    """``S = M ⊙ A``, ``R = (1 - M) ⊙ A`` for a 0/1 keep-mask ``M`` (THEORY.md 9.2)."""
    a = finite_matrix("weight", weight)
    m = keep_mask(name, mask, a.shape)
    return AdditiveSplit(structured=np.where(m, a, 0.0), removed=np.where(m, 0.0, a), disjoint=True)


def checked_split(weight, structured, removed, require_disjoint: bool = False) -> AdditiveSplit:
    """A user-given split; ``S + R`` must equal ``A`` up to one rounding per entry and, if required, ``S ⊙ R = 0``.

    The certificates are about the path ``S + theta R``, whose dense end point is ``S + R``.
    """
    a = finite_matrix("weight", weight)
    s = finite_matrix("structured (S)", structured, a.shape)
    r = finite_matrix("removed (R)", removed, a.shape)
    if np.any(np.abs(s + r - a) > 4 * np.finfo(np.float64).eps * np.maximum(np.abs(a), np.abs(s) + np.abs(r))):
        raise CertificateInputError("structured (S) + removed (R) does not reproduce the layer weight A")
    disjoint = not np.any((s != 0.0) & (r != 0.0))
    if require_disjoint and not disjoint:
        raise CertificateInputError("structured (S) and removed (R) overlap: S ⊙ R = 0 is required (mask split)")
    return AdditiveSplit(structured=s, removed=r, disjoint=disjoint)


@dataclass(frozen=True, eq=False)
class PruneRestoreSplit:
    """``A = S + Q + P`` with pairwise disjoint supports (Theorem 5.5).

    ``kept`` = ``S``, ``restored`` = ``Q`` (brought back from the over-pruned reservoir),
    ``removed`` = ``P`` (finally removed).
    """

    kept: np.ndarray
    restored: np.ndarray
    removed: np.ndarray

    def final(self) -> AdditiveSplit:
        """The split of Theorem 5.5: structured part ``S + Q``, removed ``P``."""
        return AdditiveSplit(structured=self.kept + self.restored, removed=self.removed, disjoint=True)

    def all_pruned(self) -> AdditiveSplit:
        """The split compared in Corollary 5.6: structured part ``S``, removed ``R = Q + P``."""
        return AdditiveSplit(structured=self.kept, removed=self.restored + self.removed, disjoint=True)


def prune_restore_split(weight, final_mask, overpruned_mask) -> PruneRestoreSplit:
    """``S = M_o ⊙ A``, ``Q = (M_f - M_o) ⊙ A``, ``P = (1 - M_f) ⊙ A`` with ``M_o <= M_f`` (THEORY.md 9.2)."""
    a = finite_matrix("weight", weight)
    mf = keep_mask("final_mask", final_mask, a.shape)
    mo = keep_mask("overpruned_mask", overpruned_mask, a.shape)
    if np.any(mo & ~mf):
        raise CertificateInputError("overpruned_mask must be a sub-mask of final_mask (M_o <= M_f)")
    return PruneRestoreSplit(
        kept=np.where(mo, a, 0.0), restored=np.where(mf & ~mo, a, 0.0), removed=np.where(mf, 0.0, a)
    )


@dataclass(frozen=True, eq=False)
class ElasticNetPenalty:
    """``sum gamma2_ij A_ij^2 + sum gamma1_ij |A_ij|`` with non-negative weights (THEORY.md 1.5).

    Scalars give the plain elastic net ``lambda2 ||A||_F^2 + lambda1 ||A||_1``; arrays give the
    weighted objective ``J_Gamma`` of OR1 Corollaries 1.1–1.2.
    """

    l1: np.ndarray | float
    l2: np.ndarray | float

    @classmethod
    def create(cls, lambda1, lambda2, shape: tuple[int, int] | None = None) -> "ElasticNetPenalty":
        checked = []
        for name, value in (("lambda1", lambda1), ("lambda2", lambda2)):
            arr = np.asarray(value, dtype=np.float64)
            if arr.ndim not in (0, 2) or (arr.ndim == 2 and shape is not None and arr.shape != tuple(shape)):
                raise CertificateInputError(f"{name} must be a scalar or a matrix of the layer's shape {shape}, got "
                                            f"{arr.shape}")
            if not np.all(np.isfinite(arr)) or np.any(arr < 0):
                raise CertificateInputError(f"{name} must be finite and >= 0")
            checked.append(float(arr) if arr.ndim == 0 else arr)
        return cls(l1=checked[0], l2=checked[1])

    @property
    def is_weighted(self) -> bool:
        return np.ndim(self.l1) == 2 or np.ndim(self.l2) == 2

    def quadratic(self, a: np.ndarray) -> float:
        """``sum gamma2_ij A_ij^2`` (``lambda2 ||A||_F^2`` for a scalar)."""
        return float(np.sum(self.l2 * np.square(a)))

    def linear(self, a: np.ndarray) -> float:
        """``sum gamma1_ij |A_ij|`` (``lambda1 ||A||_1`` for a scalar, entrywise)."""
        return float(np.sum(self.l1 * np.abs(a)))

    def __call__(self, a: np.ndarray) -> float:
        return self.quadratic(a) + self.linear(a)
