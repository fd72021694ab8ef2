"""The verdict from per-task drops (docs/decision.md, "The rule, as implemented"); numbers only, no I/O.

Kept apart from the comparison so the confidence check can re-run it with a task's drop
moved to the ends of its interval.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from quantgate.decision.model import Aggregate, DropMode, Thresholds, Verdict

# Decisions compare numbers rounded to this many decimals, so that 3.0000000000000004
# (float noise from (b - c) / b * 100) counts as exactly 3.
DECISION_DECIMALS = 9

PROFILE_TASK_LIMITS: dict[str, dict[str, float]] = {
    "general": {},
    "math-tutoring": {"gsm8k": 2.0},
    "code-help": {"humaneval": 2.0},
    "general-chat": {},
    "summarization": {"mmlu": 3.0},
}
PROFILE_AVERAGE_LIMITS: dict[str, float] = {"general-chat": 5.0}


@dataclass(frozen=True)
class Limit:
    value: float
    label: str  # how reasons name it: "limit of profile math-tutoring", "task limit"


@dataclass(frozen=True)
class Rule:
    """Everything besides the drops that the verdict depends on."""

    thresholds: Thresholds
    aggregate: Aggregate
    drop_mode: DropMode
    task_limits: dict[str, Limit] = field(default_factory=dict)  # by task name as in the results
    average_limit: Limit | None = None


@dataclass
class Outcome:
    verdict: Verdict
    average_drop: float
    passed: dict[str, bool]
    reasons: list[str]


def unit(drop_mode: DropMode) -> str:
    return "%" if drop_mode == "relative" else " pp"


def task_drop(baseline: float, candidate: float, higher_is_better: bool, drop_mode: DropMode) -> float:
    """Positive when the candidate is worse. Relative mode needs a non-zero baseline."""
    worse_by = (baseline - candidate) if higher_is_better else (candidate - baseline)
    return worse_by / baseline * 100 if drop_mode == "relative" else worse_by * 100


def average_drop(drops: list[float], baselines: list[float], aggregate: Aggregate, drop_mode: DropMode) -> float:
    """relativeDropOfMean: the drop of the mean score, in the mode's units (relative: divided
    by the mean baseline; absolute: percentage points, which equals the mean of the drops).
    Each task's worsening is taken from its drop, so a lower-is-better metric counts with
    its sign flipped. meanOfRelativeDrops: the arithmetic mean of the drops."""
    if aggregate == "meanOfRelativeDrops" or drop_mode == "absolute":
        return sum(drops) / len(drops)
    worse_by = sum(d * b / 100 for d, b in zip(drops, baselines))
    return worse_by / sum(baselines) * 100


def general_verdict(a: float, t: Thresholds) -> tuple[Verdict, str]:
    a = round(a, DECISION_DECIMALS)
    if a < t.ship:
        return Verdict.SHIP, f"{a:.2f} < {t.ship:g}"
    if a <= t.monitor:
        return Verdict.MONITOR, f"{t.ship:g} <= {a:.2f} <= {t.monitor:g}"
    if a <= t.ab_test:
        return Verdict.AB_TEST, f"{t.monitor:g} < {a:.2f} <= {t.ab_test:g}"
    return Verdict.BLOCK, f"{a:.2f} > {t.ab_test:g}"


def decide(tasks: list[str], drops: list[float], baselines: list[float], rule: Rule) -> Outcome:
    """The verdict and its reasons from the drops (same order as tasks)."""
    u = unit(rule.drop_mode)
    a = average_drop(drops, baselines, rule.aggregate, rule.drop_mode)
    verdict, why = general_verdict(a, rule.thresholds)
    general = f"average drop {a:.2f}{u} ({rule.aggregate}): {verdict.value}, since {why} (general bounds)"
    failed, held = [], []
    passed = {}
    for task, drop in zip(tasks, drops):
        limit = rule.task_limits.get(task)
        if limit is None:
            passed[task] = True
            continue
        ok = round(drop, DECISION_DECIMALS) < limit.value
        passed[task] = ok
        (held if ok else failed).append(
            f"{task}: drop {drop:.2f}{u} {'<' if ok else '>='} {limit.value:g}{u.strip()} {limit.label}")
        if not ok:
            verdict = Verdict.BLOCK
    if rule.average_limit is not None:
        lim = rule.average_limit
        ok = round(a, DECISION_DECIMALS) < lim.value
        (held if ok else failed).append(
            f"average drop {a:.2f}{u} {'<' if ok else '>='} {lim.value:g}{u.strip()} {lim.label}")
        if not ok:
            verdict = Verdict.BLOCK
    # Failed limits first: they are what a reader needs.
    return Outcome(verdict=verdict, average_drop=a, passed=passed, reasons=failed + [general] + held)
