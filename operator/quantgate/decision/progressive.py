"""The stopping rule of a progressive evaluation (docs/decision.md, "Progressive evaluation").

Both models answer the same documents, drawn per task (per subject for MMLU: each subject is
a stratum) in a seeded random order and evaluated in stages (default 10%, 25%, 50%, 100% of
the suite's documents, split equally between the tasks: `task_fractions`).
After each stage, `look()` estimates each task's drop and the average drop that the FULL
suite would show, with an interval from the paired per-document differences and the
finite-population correction (1 - n/N), so that at 100% the interval is the observed value.
The error rate is split with Bonferroni: over the looks before the last (the last sees
every document, so its intervals are exact) and over the intervals the verdict depends on
(the average drop, and every task that has a limit), so with probability at least
`confidence` every interval of every look holds the full-suite value. The run stops at the first look where every verdict the intervals allow is the same;
at the last stage the verdict is exactly the ordinary one (decide() on the full data).
Pure: numbers in, numbers out.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Mapping, Sequence

from quantgate.decision.model import Verdict
from quantgate.decision.rule import DECISION_DECIMALS, Rule, average_drop, decide, general_verdict, task_drop, unit

DEFAULT_STAGES = (0.1, 0.25, 0.5, 1.0)
DEFAULT_CONFIDENCE = 0.95


# ---------------------------------------------------------------- document order
def stage_count(fraction: float, population: int) -> int:
    """Documents of a stratum of `population` evaluated by a stage: ceil(fraction * N), at
    least 2 (a spread needs two), never more than N."""
    return min(population, max(2, math.ceil(fraction * population - 1e-9)))


def task_fractions(fraction: float, task_sizes: Mapping[str, int]) -> dict[str, float]:
    """Each task's share of its own documents in a stage that evaluates `fraction` of the
    suite's documents. The average drop weighs every task equally, so the stage's budget,
    fraction * (all documents), is split equally between the tasks, not in proportion to their
    sizes: a task smaller than its equal share runs in full and what it leaves goes to the
    others (water-filling). A task's share only grows with `fraction` (stages append), and at
    1 every task runs in full. Within a task the share applies to every stratum alike."""
    if fraction >= 1:
        return {task: 1.0 for task in task_sizes}
    budget = fraction * sum(task_sizes.values())
    out: dict[str, float] = {}
    ordered = sorted(task_sizes, key=lambda t: (task_sizes[t], t))
    for i, task in enumerate(ordered):
        share = budget / (len(ordered) - i)
        size = task_sizes[task]
        taken = min(size, share)
        out[task] = taken / size if size else 1.0
        budget -= taken
    return out


def document_order(seed: int, task: str, stratum: str, population: int) -> list[int]:
    """The seeded order of a stratum's document indices; a stage takes a prefix, so stages
    append and both models (same seed) see the same documents."""
    order = list(range(population))
    random.Random(f"{seed}|{task}|{stratum}").shuffle(order)
    return order


def check_stages(stages: Sequence[float]) -> tuple[float, ...]:
    """Strictly increasing fractions in (0, 1], ending at 1. Raises ValueError."""
    s = tuple(float(x) for x in stages)
    if not s or any(not 0 < x <= 1 for x in s) or any(a >= b for a, b in zip(s, s[1:])) or s[-1] != 1.0:
        raise ValueError(f"stages must be increasing fractions in (0, 1] ending at 1, got {list(stages)}")
    return s


# ---------------------------------------------------------------- samples and estimates
@dataclass(frozen=True)
class Stratum:
    """A stratum's documents evaluated so far, as the sums the estimates need (so a caller
    with millions of documents, e.g. the benchmark, can pass them without Python lists)."""

    population: int  # documents in the full stratum
    n: int  # documents evaluated so far (both models, the same documents)
    sum_b: float
    sum_c: float
    sum_bb: float
    sum_cc: float
    sum_bc: float

    @classmethod
    def of(cls, population: int, baseline: Sequence[float], candidate: Sequence[float]) -> "Stratum":
        """From per-document scores (same documents, same order)."""
        if len(baseline) != len(candidate):
            raise ValueError("baseline and candidate must score the same documents")
        b, c = [float(x) for x in baseline], [float(x) for x in candidate]
        return cls(population, len(b), math.fsum(b), math.fsum(c), math.fsum(x * x for x in b),
                   math.fsum(x * x for x in c), math.fsum(x * y for x, y in zip(b, c)))


@dataclass(frozen=True)
class TaskSample:
    task: str
    strata: Sequence[Stratum]
    higher_is_better: bool = True

    @property
    def n(self) -> int:
        return sum(s.n for s in self.strata)

    @property
    def population(self) -> int:
        return sum(s.population for s in self.strata)


@dataclass
class TaskEstimate:
    task: str
    n: int
    population: int
    baseline: float  # estimated full-task score
    candidate: float
    drop: float
    ci: tuple[float, float]


@dataclass
class Look:
    stage: int  # 1-based
    stages: int
    tasks: list[TaskEstimate]
    average_drop: float
    average_ci: tuple[float, float]
    possible: tuple[Verdict, Verdict]  # best and worst verdict the intervals allow
    stop: bool
    verdict: Verdict | None  # the full-suite verdict when stop
    reason: str
    z: float = field(default=0.0)

    @property
    def items_evaluated(self) -> int:
        return sum(t.n for t in self.tasks)

    @property
    def items_total(self) -> int:
        return sum(t.population for t in self.tasks)


def _scores(t: TaskSample) -> tuple[float, float]:
    """Stratified (size-weighted) estimates of the full-task scores; at 100% the micro average."""
    total = t.population
    b = sum(s.population / total * s.sum_b / s.n for s in t.strata)
    c = sum(s.population / total * s.sum_c / s.n for s in t.strata)
    return b, c


def _spread(s: Stratum, coef_d: float, coef_b: float, sign: float) -> float:
    """Sample variance of e_i = coef_d * sign * (b_i - c_i) + coef_b * b_i, from the sums."""
    a = coef_d * sign
    total = a * (s.sum_b - s.sum_c) + coef_b * s.sum_b
    squares = (a * a * (s.sum_bb - 2 * s.sum_bc + s.sum_cc) + 2 * a * coef_b * (s.sum_bb - s.sum_bc)
               + coef_b * coef_b * s.sum_bb)
    return max(0.0, (squares - total * total / s.n) / (s.n - 1))


def _linear_var(t: TaskSample, coef_d: float, coef_b: float) -> float:
    """Variance of the stratified estimate of mean(coef_d * (b - c) * sign + coef_b * b) with the
    finite-population correction. A stratum with one document so far counts with the largest
    spread a 0/1 difference can have (1); otherwise the sample's own spread, so two models that
    agree on every document seen get a zero-width interval (docs/decision.md discusses this)."""
    sign = 1.0 if t.higher_is_better else -1.0
    total = t.population
    var = 0.0
    for s in t.strata:
        n, big_n = s.n, s.population
        if n >= big_n:
            continue
        if n == 0:
            return math.inf
        spread = _spread(s, coef_d, coef_b, sign) if n > 1 else 1.0
        var += (big_n / total) ** 2 * (1 - n / big_n) * spread / n
    return var


def _task_se(t: TaskSample, b: float, drop_mode: str) -> float:
    """Standard error of the task's drop, in its units (relative: ratio estimator, linearised)."""
    if drop_mode == "absolute":
        return 100 * math.sqrt(_linear_var(t, 1.0, 0.0))
    worse = (b - _scores(t)[1]) * (1 if t.higher_is_better else -1)
    r = worse / b
    return 100 * math.sqrt(_linear_var(t, 1.0, -r)) / abs(b)


def _average_se(samples: Sequence[TaskSample], bases: list[float], drops: list[float], rule: Rule) -> float:
    if rule.aggregate == "meanOfRelativeDrops" or rule.drop_mode == "absolute":
        ses = [_task_se(t, b, rule.drop_mode) for t, b in zip(samples, bases)]
        return math.sqrt(sum(s * s for s in ses)) / len(samples)
    # relativeDropOfMean: 100 * sum(worse_t) / sum(B_t), linearised around the pooled ratio.
    r = average_drop(drops, bases, rule.aggregate, rule.drop_mode) / 100
    return 100 * math.sqrt(sum(_linear_var(t, 1.0, -r) for t in samples)) / sum(bases)


# ---------------------------------------------------------------- verdicts
def verdict_of(average: float, drops: dict[str, float], rule: Rule) -> Verdict:
    """decide()'s verdict from an average drop and the limited tasks' drops, taken separately
    (so an interval's end can stand in for each); same rounding, same order."""
    v, _ = general_verdict(average, rule.thresholds)
    for task, limit in rule.task_limits.items():
        if round(drops[task], DECISION_DECIMALS) >= limit.value:
            v = Verdict.BLOCK
    if rule.average_limit is not None and round(average, DECISION_DECIMALS) >= rule.average_limit.value:
        v = Verdict.BLOCK
    return v


def intervals_needed(rule: Rule) -> int:
    """Intervals the verdict depends on: the average drop, and each task with a limit."""
    return 1 + len(rule.task_limits)


def z_value(confidence: float, looks: int, intervals: int) -> float:
    """Bonferroni: each of (looks - 1) * intervals two-sided intervals gets (1 - confidence) /
    that. The last look sees every document: its intervals are exact and need no share."""
    alpha = (1 - confidence) / (max(1, looks - 1) * intervals)
    return NormalDist().inv_cdf(1 - alpha / 2)


def look(samples: Sequence[TaskSample], rule: Rule, *, stage: int, stages: int,
         confidence: float = DEFAULT_CONFIDENCE) -> Look:
    """Estimate the full-suite drops from the documents evaluated so far and decide whether
    the full-suite verdict is already determined at `confidence`. `stage` is 1-based of
    `stages` looks in all. Every task's documents must be a prefix of its seeded order."""
    if not samples:
        raise ValueError("no tasks to look at")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    tasks = [t.task for t in samples]
    missing = sorted(set(rule.task_limits) - set(tasks))
    if missing:
        raise ValueError(f"limits on tasks not in the sample: {', '.join(missing)}")
    z = z_value(confidence, stages, intervals_needed(rule))
    estimates, bases, drops = [], [], []
    for t in samples:
        b, c = _scores(t)
        d = task_drop(b, c, t.higher_is_better, rule.drop_mode)
        half = z * _task_se(t, b, rule.drop_mode)
        estimates.append(TaskEstimate(t.task, t.n, t.population, b, c, d, (d - half, d + half)))
        bases.append(b)
        drops.append(d)
    avg = average_drop(drops, bases, rule.aggregate, rule.drop_mode)
    complete = all(t.n >= t.population for t in samples)
    half = 0.0 if complete else z * _average_se(samples, bases, drops, rule)
    avg_ci = (avg - half, avg + half)
    if complete:
        final = decide(tasks, drops, bases, rule).verdict
        return Look(stage, stages, estimates, avg, avg_ci, (final, final), True, final,
                    f"all documents evaluated: the ordinary verdict {final.value}", z)
    by_task = {e.task: e for e in estimates}
    best = verdict_of(avg_ci[0], {t: by_task[t].ci[0] for t in rule.task_limits}, rule)
    worst = verdict_of(avg_ci[1], {t: by_task[t].ci[1] for t in rule.task_limits}, rule)
    u = unit(rule.drop_mode)
    used = sum(e.n for e in estimates)
    total = sum(e.population for e in estimates)
    where = f"stage {stage}/{stages}, {used} of {total} documents"
    span = f"average drop {avg:.2f}{u}, full-suite {confidence:.0%} interval [{avg_ci[0]:.2f}, {avg_ci[1]:.2f}]"
    limited = [f"{t} drop {by_task[t].drop:.2f}{u} in [{by_task[t].ci[0]:.2f}, {by_task[t].ci[1]:.2f}] "
               f"(limit {rule.task_limits[t].value:g})" for t in rule.task_limits]
    detail = "; ".join([span, *limited])
    if best == worst:
        return Look(stage, stages, estimates, avg, avg_ci, (best, worst), True, best,
                    f"stopped early at {where}: every value within the intervals gives {best.value} ({detail})", z)
    return Look(stage, stages, estimates, avg, avg_ci, (best, worst), False, None,
                f"continuing after {where}: the intervals allow {best.value} to {worst.value} ({detail})", z)
