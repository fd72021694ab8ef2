"""compare(): two RunResults and a Policy → Comparison (pure; stable interface)."""

from __future__ import annotations

from dataclasses import dataclass

from quantgate.decision.comparability import differences
from quantgate.decision.fidelity import Fidelity, check_limits, task_fidelity
from quantgate.decision.model import Comparison, Flips, Policy, TaskComparison, Verdict
from quantgate.decision.paired import interval, pair, unpaired_se
from quantgate.decision.rule import (
    PROFILE_AVERAGE_LIMITS,
    PROFILE_TASK_LIMITS,
    Limit,
    Rule,
    decide,
    task_drop,
    unit,
)
from quantgate.decision.significance import (
    ALPHA,
    POWER,
    documents_needed,
    min_detectable_drop,
    nearest_change,
)
from quantgate.decision.tasks import TINY, canonical, primary_metric
from quantgate.errors import InputError
from quantgate.core.runs import RunResults


@dataclass
class _Row:
    task: str
    metric: str
    baseline: float
    candidate: float
    drop: float
    n: int | None
    ci: tuple[float, float] | None
    flips: Flips | None
    sd_doc: float | None = None  # spread of one document's paired score difference


def _names(tasks) -> str:
    return ", ".join(sorted(tasks))


def _only_in(b: set[str], c: set[str]) -> str:
    parts = [f"only in {side}: {_names(names)}" for side, names in (("baseline", b - c), ("candidate", c - b)) if names]
    return "; ".join(parts)


def _check_same_tasks(b: list[str], c: list[str]) -> None:
    if set(b) != set(c):
        raise InputError(f"the runs evaluated different tasks ({_only_in(set(b), set(c))}); "
                         "evaluate both on the same tasks")
    if not b:
        raise InputError("the results contain no tasks to compare")


def _check_same_subtasks(tasks: list[str], b: RunResults, c: RunResults) -> None:
    for t in tasks:
        lb, lc = set(b.leaves(t)), set(c.leaves(t))
        if lb != lc:
            raise InputError(f"group {t} has different subtasks in the two runs ({_only_in(lb, lc)}); "
                             "evaluate both on the same tasks")


def _check_setup(tasks: list[str], b: RunResults, c: RunResults, allow_mismatch: bool, warnings: list[str]) -> None:
    """Few-shot counts and sample counts/limits must agree, or be allowed with a warning."""
    problems = []
    for t in tasks:
        bs, cs = b.n_shot(t), c.n_shot(t)
        diff = sorted(k for k in set(bs) | set(cs) if bs.get(k) != cs.get(k))
        if diff:
            problems.append("few-shot counts differ: " + ", ".join(f"{k} {bs.get(k)} vs {cs.get(k)}" for k in diff))
    if b.limit != c.limit:
        def shown(x):
            return "none" if x is None else f"{x:g}"
        problems.append(f"limit differs: {shown(b.limit)} vs {shown(c.limit)}")
    counts = [f"{t} n={b.tasks[t].n} vs {c.tasks[t].n}" for t in tasks
              if None not in (b.tasks[t].n, c.tasks[t].n) and b.tasks[t].n != c.tasks[t].n]
    if counts:
        problems.append("sample counts differ: " + ", ".join(counts))
    leaves = {leaf for t in tasks for leaf in [t, *b.leaves(t)]}
    problems += differences(b.setup, c.setup, leaves)
    if not problems:
        return
    text = "; ".join(problems) + " (baseline vs candidate)"
    if not allow_mismatch:
        raise InputError(f"{text}; rerun both with the same settings or pass --allow-mismatch")
    warnings.append(f"warning: {text}; compared anyway (--allow-mismatch)")


def _limits(policy: Policy, tasks: list[str]) -> dict[str, Limit]:
    """Profile and explicit limits keyed by the task names in the results."""
    by_canonical: dict[str, list[str]] = {}
    for t in tasks:
        by_canonical.setdefault(canonical(t), []).append(t)
    out: dict[str, Limit] = {}
    for bench, value in PROFILE_TASK_LIMITS[policy.profile].items():
        found = by_canonical.get(bench)
        if not found:
            tiny = [k for k, v in TINY.items() if v == bench]
            also = f" (or {', '.join(tiny)})" if tiny else ""
            raise InputError(f"profile {policy.profile} needs task {bench}{also} in the results, which lack it; "
                             "evaluate it or choose another profile")
        for t in found:
            out[t] = Limit(value, f"limit of profile {policy.profile}")
    for name, value in policy.task_limits.items():
        found = [name] if name in tasks else by_canonical.get(name)
        if not found:
            raise InputError(f"task limit for {name}: no such task in the results (tasks: {_names(tasks)})")
        for t in found:
            out[t] = Limit(float(value), "task limit")
    return out


def _score(run: RunResults, task: str, metric: str, which: str) -> float:
    value = run.tasks[task].metrics.get(metric)
    if value is None:
        have = ", ".join(sorted(run.tasks[task].metrics)) or "none"
        raise InputError(f"{which} results for task {task} lack metric {metric} (has: {have}); "
                         f"check the run or choose another with --metric {task}=METRIC,FILTER")
    return value


def _row(task: str, b: RunResults, c: RunResults, policy: Policy, allow_mismatch: bool, warnings: list[str]) -> _Row:
    metric = primary_metric(task, b.tasks[task].metrics, policy.metrics)
    bv, cv = _score(b, task, metric, "baseline"), _score(c, task, metric, "candidate")
    hib = b.higher_is_better(task, metric)
    if policy.drop_mode == "relative" and bv == 0:
        raise InputError(f"task {task}: baseline {metric} is 0, so a relative drop is undefined; "
                         "use --drop-mode absolute or check the baseline run")
    drop = task_drop(bv, cv, hib, policy.drop_mode)
    paired = pair(task, metric, b, c, hib, allow_mismatch=allow_mismatch, warnings=warnings)
    if paired is not None and paired.se_diff is not None:
        se = paired.se_diff
    else:
        se = unpaired_se(b.tasks[task].stderrs.get(metric), c.tasks[task].stderrs.get(metric))
    ci = interval(drop, se, bv, policy.drop_mode) if se is not None else None
    n = paired.n if paired is not None else b.tasks[task].n
    sd = se * n ** 0.5 if se is not None and n else None
    return _Row(task, metric, bv, cv, drop, n, ci, paired.flips if paired else None, sd)


def _fidelity(task: str, b: RunResults, c: RunResults) -> Fidelity | None:
    """Choice KLD and top-1 agreement over the task's multiple-choice leaves (question-weighted),
    on documents both runs scored (same doc ids); None without per-choice samples."""
    base_rows: list[list[float]] = []
    cand_rows: list[list[float]] = []
    for leaf in b.leaves(task):
        sb, sc = b.samples.get(leaf), c.samples.get(leaf)
        if sb is None or sc is None or sb.choices is None or sc.choices is None:
            continue
        by_id = dict(zip(sc.doc_ids, sc.choices))
        for doc, row in zip(sb.doc_ids, sb.choices):
            if doc in by_id:
                base_rows.append(row)
                cand_rows.append(by_id[doc])
    return task_fidelity(task, base_rows, cand_rows)


def rule_for(policy: Policy, tasks: list[str]) -> Rule:
    avg = PROFILE_AVERAGE_LIMITS.get(policy.profile)
    return Rule(thresholds=policy.thresholds, aggregate=policy.aggregate, drop_mode=policy.drop_mode,
                task_limits=_limits(policy, tasks),
                average_limit=Limit(avg, f"limit of profile {policy.profile}") if avg is not None else None)


def _indecision(rows: list[_Row], rule: Rule, verdict: Verdict) -> tuple[list[str], dict[str, int | None]]:
    """Move each task's drop to either end of its interval, the others fixed at their point
    values (the average follows, recomputed from the moved drop); any verdict change makes
    the comparison not decisive. The rule is monotone in each drop, so the ends suffice.
    Also returns, per undecided task, the documents that would decide it: where the interval
    would stop short of the nearest drop that changes the verdict, at the same spread."""
    tasks = [r.task for r in rows]
    drops = [r.drop for r in rows]
    bases = [r.baseline for r in rows]
    u = unit(rule.drop_mode)
    reasons: list[str] = []
    needed: dict[str, int | None] = {}
    for i, r in enumerate(rows):
        if r.ci is None:
            continue

        def verdict_at(x: float, i: int = i) -> Verdict:
            moved = drops.copy()
            moved[i] = x
            return decide(tasks, moved, bases, rule).verdict

        changes, distances = [], []
        for end in r.ci:
            other = verdict_at(end)
            if other != verdict:
                changes.append(f"{other.value} at {end:.2f}{u}")
                distances.append(abs(nearest_change(verdict_at, r.drop, end) - r.drop))
        if changes:
            text = (f"not decisive: {r.task} drop {r.drop:.2f}{u} has 95% CI [{r.ci[0]:.2f}, {r.ci[1]:.2f}], "
                    f"within which the verdict could be {' or '.join(changes)}")
            docs = documents_needed(r.sd_doc, min(distances), r.baseline, rule.drop_mode) if r.sd_doc else None
            needed[r.task] = docs
            if docs is not None:
                basis = "the observed disagreement rate" if r.flips else "the same standard error per document"
                text += f"; about {docs} documents (this run: {r.n}) would decide it at {basis}"
            elif r.sd_doc:
                text += "; the drop sits on the boundary, so no number of documents decides it"
            reasons.append(text)
    return reasons, needed


def _significance(rows: list[_Row], drop_mode: str) -> list[str]:
    """One line on the exact McNemar tests, one on the minimum detectable drops."""
    u = unit(drop_mode)
    out = []
    tested = [r for r in rows if r.flips is not None and r.flips.mcnemar_p is not None]
    if tested:
        parts = []
        for r in tested:
            f = r.flips
            side = ("worse" if f.correct_to_incorrect > f.incorrect_to_correct else "better")
            mark = f", significantly {side}" if f.mcnemar_p < ALPHA else ""
            parts.append(f"{r.task} {f.correct_to_incorrect}/{f.incorrect_to_correct} p={f.mcnemar_p:.3g}{mark}")
        out.append(f"exact McNemar test of the flips (correct→incorrect/incorrect→correct; p < {ALPHA:g} means "
                   f"a real change, not noise): {', '.join(parts)}")
    mdd = [(r.task, _mdd(r, drop_mode)) for r in rows]
    mdd = [(t, m) for t, m in mdd if m is not None]
    if mdd:
        out.append(f"minimum detectable drop ({ALPHA:g} two-sided, power {POWER:.0%}) at this run's documents and "
                   f"spread of paired differences: {', '.join(f'{t} {m:.2f}{u}' for t, m in mdd)}")
    return out


def _mdd(r: _Row, drop_mode: str) -> float | None:
    """None without a spread to scale it: no samples or stderrs, or no disagreement at all."""
    if not r.sd_doc or not r.n:
        return None
    return min_detectable_drop(r.sd_doc, r.n, r.baseline, drop_mode)


def compare(baseline: RunResults, candidate: RunResults, policy: Policy, *, allow_mismatch: bool = False) -> Comparison:
    """Apply the decision rule of docs/decision.md to two runs.

    Compares the top-level tasks/groups (not listed in group_subtasks) on their primary
    metric; per-task drops, average drop, profile/task limits, flips and 95% intervals; the
    verdict is the worst outcome. Raises InputError (one line) on bad input: differing task
    sets, few-shot counts or sample counts/limits (the last two allowed, with warnings in
    `reasons`, when allow_mismatch), a missing metric, a zero baseline in relative mode, a
    profile or task limit whose task is absent, runs on different documents.
    """
    warnings: list[str] = []
    tasks = baseline.top_level()
    _check_same_tasks(tasks, candidate.top_level())
    _check_same_subtasks(tasks, baseline, candidate)
    _check_setup(tasks, baseline, candidate, allow_mismatch, warnings)
    unknown = sorted(set(policy.metrics) - set(tasks) - {canonical(t) for t in tasks})
    if unknown:
        raise InputError(f"metric override for {', '.join(unknown)}: no such task in the results "
                         f"(tasks: {_names(tasks)})")
    rule = rule_for(policy, tasks)
    rows = [_row(t, baseline, candidate, policy, allow_mismatch, warnings) for t in tasks]
    outcome = decide(tasks, [r.drop for r in rows], [r.baseline for r in rows], rule)
    doubts, needed = _indecision(rows, rule, outcome.verdict)
    fidelity = {t: f for t in tasks if (f := _fidelity(t, baseline, candidate)) is not None}
    verdict, reasons = outcome.verdict, outcome.reasons
    strict = check_limits(list(fidelity.values()), policy.max_choice_kld, policy.min_top1_agreement)
    if strict:  # fidelity limits only ever make the verdict stricter
        verdict, reasons = Verdict.BLOCK, reasons + strict
    return Comparison(
        verdict=verdict,
        promotable=verdict.promotable,
        profile=policy.profile,
        aggregate=policy.aggregate,
        drop_mode=policy.drop_mode,
        average_drop=round(outcome.average_drop, 2),
        decisive=not doubts,
        reasons=reasons + doubts + _significance(rows, policy.drop_mode) + warnings,
        tasks=[
            TaskComparison(
                task=r.task, metric=r.metric, baseline=round(r.baseline, 4), candidate=round(r.candidate, 4),
                drop=round(r.drop, 2), limit=rule.task_limits[r.task].value if r.task in rule.task_limits else None,
                passed=outcome.passed[r.task], n=r.n,
                ci95=(round(r.ci[0], 2), round(r.ci[1], 2)) if r.ci else None, flips=r.flips,
                min_detectable_drop=None if _mdd(r, policy.drop_mode) is None else round(_mdd(r, policy.drop_mode), 2),
                documents_needed=needed.get(r.task),
                choice_kld=round(fidelity[r.task].kld, 6) if r.task in fidelity else None,
                top1_agreement=round(fidelity[r.task].top1, 4) if r.task in fidelity else None,
            )
            for r in rows
        ],
    )
