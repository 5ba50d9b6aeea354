"""Registry of the property-based theorem checks, shared by pytest and ``mpcert verify`` (THEORY.md 12).

One :class:`TheoremCheck` per result of THEORY.md 12 for Section 5 (Lemma 5.1 – Theorem 5.9), OR1
Corollaries 1.1–1.3 and the helper facts of THEORY.md 3.7.  Each check has a hypothesis strategy of
instances, an ``evaluate(instance, mutation)`` function returning :class:`CheckOutcome` s, and its
known-bad variants (``mutations``): each mutation is a plausible wrong reading of the formula that the
check must catch (tests/certs/test_theorems_*.py show that it does).

:func:`run_check` runs hypothesis programmatically (a ``@given`` inner function whose ``settings`` fix
the number of examples) and records every outcome, so pytest and the CLI run the same code.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Literal, Sequence

import numpy as np
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st

from .check_outcomes import CheckOutcome
from .helper_fact_checks import (
    check_ce_lipschitz,
    check_disjoint_identities,
    check_frobenius_identity,
    check_logit_path_bound,
    logit_pairs,
    matrix_pairs,
)
from .multilayer_checks import check_multilayer_margin, check_theorem_5_8, check_theorem_5_9, multilayer_instances
from .single_layer_checks import (
    check_corollary_5_2,
    check_corollary_5_6,
    check_lemma_5_1,
    check_theorem_5_3,
    check_theorem_5_4,
    check_theorem_5_5,
    check_theorem_5_7,
    check_weighted_mask,
    check_weighted_stationarity,
    mask_instances,
    split_instances,
    triple_instances,
)

__all__ = ["TheoremCheck", "CheckReport", "CHECKS", "run_check"]


@dataclass(frozen=True)
class TheoremCheck:
    """One theorem's property check.

    check_id: short id used by ``mpcert verify --only``; theorem: the paper's number;
    kind: ``sound`` (inequality) or ``exact`` (identity / equivalence); zero violations are allowed for both.
    """

    check_id: str
    theorem: str
    kind: Literal["sound", "exact"]
    instances: Callable[[], st.SearchStrategy]
    evaluate: Callable[[Any, str | None], Sequence[CheckOutcome]]
    mutations: tuple[str, ...]


CHECKS: dict[str, TheoremCheck] = {
    c.check_id: c
    for c in (
        TheoremCheck("ce-2-lipschitz", "THEORY 3.7 CE 2-Lipschitz", "sound", logit_pairs, check_ce_lipschitz,
                     ("constant-1",)),
        TheoremCheck("logit-path-bound", "THEORY 3.7 logit path bound", "sound", split_instances,
                     check_logit_path_bound,
                     ("lipschitz-halved",)),
        TheoremCheck("frobenius-identity", "THEORY 3.7 Frobenius identity", "exact",
                     lambda: matrix_pairs(disjoint=False), check_frobenius_identity, ("cross-term-dropped",)),
        TheoremCheck("disjoint-identities", "THEORY 3.7 disjoint supports", "exact",
                     lambda: matrix_pairs(disjoint=True), check_disjoint_identities, ("induced-l1",)),
        TheoremCheck("lemma-5.1", "Lemma 5.1", "sound", split_instances, check_lemma_5_1,
                     ("budget-without-factor-2", "theta-not-complemented", "lipschitz-halved")),
        TheoremCheck("corollary-5.2", "Corollary 5.2", "sound", split_instances, check_corollary_5_2,
                     ("eta-halved", "rounding-dropped")),
        TheoremCheck("theorem-5.3", "Theorem 5.3", "sound",
                     lambda: split_instances(("additive", "svd", "gaussian", "mask")),
                     check_theorem_5_3, ("cross-term-dropped",)),
        TheoremCheck("theorem-5.4", "Theorem 5.4", "sound", mask_instances, check_theorem_5_4,
                     ("induced-l1", "overlapping-parts", "lipschitz-halved")),
        TheoremCheck("theorem-5.5", "Theorem 5.5", "sound", triple_instances, check_theorem_5_5,
                     ("restored-penalty-counted", "lipschitz-halved")),
        TheoremCheck("corollary-5.6", "Corollary 5.6", "exact", triple_instances, check_corollary_5_6,
                     ("restored-penalty-ignored",)),
        TheoremCheck("theorem-5.7", "Theorem 5.7", "sound", mask_instances, check_theorem_5_7,
                     ("epsilon-not-divided", "lipschitz-halved")),
        TheoremCheck("theorem-5.8", "Theorem 5.8", "sound", lambda: multilayer_instances(allow_repeats=True),
                     check_theorem_5_8, ("lipschitz-halved", "last-step-budget-only")),
        TheoremCheck("theorem-5.9", "Theorem 5.9", "sound", lambda: multilayer_instances(allow_repeats=False),
                     check_theorem_5_9, ("factor-2-instead-of-2-minus-h", "lipschitz-halved")),
        TheoremCheck("or1-1.1", "OR1 Corollary 1.1", "sound",
                     lambda: mask_instances(weighted=True), check_weighted_mask,
                     ("quadratic-factor-2(1-theta)", "lipschitz-halved")),
        TheoremCheck("or1-1.2", "OR1 Corollary 1.2", "sound", lambda: mask_instances(weighted=True),
                     check_weighted_stationarity, ("epsilon-not-divided",)),
        TheoremCheck("or1-1.3", "OR1 Corollary 1.3", "sound", lambda: multilayer_instances(allow_repeats=True),
                     check_multilayer_margin, ("eta-total-max",)),
    )
}


@dataclass(frozen=True)
class CheckReport:
    """One ledger row: how many examples ran, how many violated, the slack ratios and the time.

    ``median_slack``/``worst_slack`` are over the examples' tightest (smallest) finite slack ratio
    ``bound / realized`` (``nan`` if no example moved); ``counterexample`` describes the first violation.
    """

    check_id: str
    theorem: str
    kind: str
    mutation: str | None
    examples: int
    violations: int
    median_slack: float
    worst_slack: float
    seconds: float
    counterexample: str | None
    counterexample_instance: Any = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            k: (None if isinstance(v, float) and not np.isfinite(v) else v)
            for k, v in self.__dict__.items()
            if k != "counterexample_instance"
        }


class _StopSearch(Exception):
    """Raised inside the hypothesis body to end a known-bad search at its first violation."""


def _describe(instance: Any, outcome: CheckOutcome) -> str:
    return f"bound={outcome.bound!r} realized={outcome.realized!r} on {instance!r}"


def run_check(
    check: TheoremCheck,
    max_examples: int,
    derandomize: bool = True,
    mutation: str | None = None,
    stop_at_first_violation: bool = False,
    seed: int | None = None,
) -> CheckReport:
    """Run ``check`` on ``max_examples`` hypothesis examples (with ``mutation``, a known-bad variant) and
    record every outcome.  No shrinking and no example database, so the count is exactly what ran.
    ``seed`` fixes hypothesis' random stream when ``derandomize`` is off (the run is then reproducible)."""
    if mutation is not None and mutation not in check.mutations:
        raise ValueError(f"{check.check_id}: unknown mutation {mutation!r}; known: {check.mutations}")
    ratios: list[float] = []
    counts = {"examples": 0, "violations": 0}
    first: list[tuple[str, Any]] = []

    @settings(
        max_examples=max_examples,
        derandomize=derandomize,
        deadline=None,
        database=None,
        phases=(Phase.explicit, Phase.generate),
        suppress_health_check=list(HealthCheck),
        print_blob=False,
    )
    @given(check.instances())
    def body(instance):
        if stop_at_first_violation and first:
            raise _StopSearch  # hypothesis replays a failing example once; count it once
        outcomes = check.evaluate(instance, mutation)
        counts["examples"] += 1
        finite = [o.slack_ratio for o in outcomes if np.isfinite(o.slack_ratio)]
        if finite:
            ratios.append(min(finite))
        bad = [o for o in outcomes if not o.ok]
        if bad:
            counts["violations"] += 1
            if not first:
                first.append((_describe(instance, bad[0]), instance))
            if stop_at_first_violation:
                raise _StopSearch

    if seed is not None and not derandomize:
        body = hypothesis_seed(seed)(body)
    start = time.perf_counter()
    try:
        body()
    except _StopSearch:
        pass
    seconds = time.perf_counter() - start
    return CheckReport(
        check_id=check.check_id,
        theorem=check.theorem,
        kind=check.kind,
        mutation=mutation,
        examples=counts["examples"],
        violations=counts["violations"],
        median_slack=float(np.median(ratios)) if ratios else float("nan"),
        worst_slack=float(np.min(ratios)) if ratios else float("nan"),
        seconds=seconds,
        counterexample=first[0][0] if first else None,
        counterexample_instance=first[0][1] if first else None,
    )
