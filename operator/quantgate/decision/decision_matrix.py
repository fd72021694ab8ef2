"""The seed's decision matrix: one row per variant, baseline first as "Reference"."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from quantgate.decision.comparison import compare
from quantgate.decision.model import Comparison, Policy, Verdict
from quantgate.errors import InputError
from quantgate.core.runs import RunResults

if TYPE_CHECKING:
    from quantgate.decision.selection import Selection


@dataclass
class MatrixRow:
    name: str
    size: str | None
    scores: dict[str, float]
    drops: dict[str, float] = field(default_factory=dict)
    average_drop: float | None = None  # None for the reference row
    verdict: Verdict | None = None
    comparison: Comparison | None = None

    @property
    def promotable(self) -> bool | None:
        return None if self.verdict is None else self.verdict.promotable


@dataclass
class UnresolvedRow:
    """A variant without a verdict (a ModelEvaluationMatrix row that failed or has not finished)."""

    name: str
    size: str | None
    phase: str  # Failed, Running, Pending, ...
    reason: str | None = None
    message: str | None = None


@dataclass
class Matrix:
    tasks: list[str]
    metrics: dict[str, str]
    rows: list[MatrixRow]
    policy: Policy
    unresolved: list[UnresolvedRow] = field(default_factory=list)
    selection: "Selection | None" = None  # given: a ModelEvaluationMatrix's own selection, shown as it is

    @property
    def selected(self):
        """The smallest promotable candidate by size (ties: lower average drop), or none; a
        ModelEvaluationMatrix's own selection (its selectUpTo rule) when one was given."""
        from quantgate.decision.selection import select

        return self.selection if self.selection is not None else select(self.rows[1:])

    def dump(self) -> dict:
        """JSON form: the policy, the task columns and one object per row (comparisons in full)."""
        return {
            "profile": self.policy.profile,
            "aggregate": self.policy.aggregate,
            "dropMode": self.policy.drop_mode,
            "tasks": [{"task": t, "metric": self.metrics[t]} for t in self.tasks],
            "rows": [
                {"name": r.name, "size": r.size, "scores": r.scores,
                 **({"averageDrop": r.average_drop, "verdict": r.verdict.value, "promotable": r.promotable,
                     "drops": r.drops, "comparison": r.comparison.dump()} if r.comparison else {})}
                for r in self.rows
            ],
            **({"unresolved": [{"name": u.name, "size": u.size, "phase": u.phase, "reason": u.reason,
                                "message": u.message} for u in self.unresolved]} if self.unresolved else {}),
            "selected": self.selected.dump(),
        }


def matrix(baseline: RunResults, candidates: dict[str, RunResults], policy: Policy,
           sizes: dict[str, str] | None = None, *, allow_mismatch: bool = False,
           baseline_name: str = "Reference") -> Matrix:
    """Compare every candidate with the baseline under one policy (stable interface).

    sizes maps a row name (a candidate's, or baseline_name) to a free-form size ("16 GB").
    Raises InputError as compare() does, prefixed with the candidate's name.
    """
    if not candidates:
        raise InputError("no candidates to compare; pass at least one --candidate NAME=PATH")
    sizes = sizes or {}
    unknown = set(sizes) - set(candidates) - {baseline_name}
    if unknown:
        raise InputError(f"--size for unknown variant(s) {', '.join(sorted(unknown))}; "
                         f"names are {baseline_name}, {', '.join(candidates)}")
    comparisons = {}
    for name, run in candidates.items():
        try:
            comparisons[name] = compare(baseline, run, policy, allow_mismatch=allow_mismatch)
        except InputError as exc:
            raise InputError(f"candidate {name}: {exc}") from None
    first = next(iter(comparisons.values()))
    tasks = [t.task for t in first.tasks]
    rows = [MatrixRow(name=baseline_name, size=sizes.get(baseline_name),
                      scores={t.task: t.baseline for t in first.tasks})]
    for name, comp in comparisons.items():
        rows.append(MatrixRow(
            name=name, size=sizes.get(name), scores={t.task: t.candidate for t in comp.tasks},
            drops={t.task: t.drop for t in comp.tasks}, average_drop=comp.average_drop,
            verdict=comp.verdict, comparison=comp))
    return Matrix(tasks=tasks, metrics={t.task: t.metric for t in first.tasks}, rows=rows, policy=policy)
