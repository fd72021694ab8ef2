"""Progressive evaluation of two runs (`quantgate evaluate --local --progressive`).

Each stage runs both models (`quantgate run --fraction F`, in parallel) on the same prefix of
every task's seeded document order; lm-eval's request cache (one per model, outside the run
directories) answers the documents of earlier stages, so a stage asks the server only for its
new ones. After each stage `look()` (quantgate.decision.progressive) decides whether the
full-suite verdict is settled; the last stage is the ordinary evaluation of every document.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from quantgate.decision.comparison import compare, rule_for
from quantgate.decision.model import Comparison, Policy, ProgressiveOutcome
from quantgate.decision.progressive import Look, Stratum, TaskSample, check_stages, look
from quantgate.decision.tasks import primary_metric
from quantgate.errors import InputError
from quantgate.core.runs import RunResults
from quantgate.lmeval.results import load_run


def populations(run_dir: Path) -> dict[str, int]:
    """Leaf task → documents of the full task, from a stage's manifest."""
    manifest = json.loads((run_dir / "manifest.json").read_text())
    return plan_populations(manifest.get("tasks"), str(run_dir))


def plan_populations(plan, where: str) -> dict[str, int]:
    """Leaf task → documents of the full task, from a stage's task plan (the manifest's `tasks`,
    which the results channel carries as the run record's `tasks`)."""
    out: dict[str, int] = {}
    for task in plan or []:
        docs = task.get("documents") if isinstance(task, dict) else None
        if isinstance(docs, dict):
            out.update({str(k): v for k, v in docs.items() if isinstance(v, int) and v > 0})
    if not out:
        raise InputError(f"{where}: not a progressive stage (its task plan lists no document counts)")
    return out


def look_at(baseline: RunResults, candidate: RunResults, policy: Policy, sizes: dict[str, int], *,
            stage: int, stages: int, confidence: float) -> Look:
    """The stopping rule's look at one stage's two runs (the local loop and the operator both use it)."""
    samples = task_samples(baseline, candidate, policy, sizes)
    rule = rule_for(policy, [t.task for t in samples])
    return look(samples, rule, stage=stage, stages=stages, confidence=confidence)


def task_samples(baseline: RunResults, candidate: RunResults, policy: Policy,
                 sizes: dict[str, int]) -> list[TaskSample]:
    """Per top-level task, one stratum per leaf (MMLU: per subject) of paired per-document scores."""
    out = []
    for task in baseline.top_level():
        metric = primary_metric(task, baseline.tasks[task].metrics, policy.metrics)
        strata = []
        for leaf in baseline.leaves(task):
            bs, cs = baseline.samples.get(leaf), candidate.samples.get(leaf)
            if bs is None or cs is None or metric not in bs.values or metric not in cs.values:
                raise InputError(f"task {leaf}: a progressive stage needs per-document samples of {metric} "
                                 "from both models")
            if bs.digest != cs.digest:
                raise InputError(f"task {leaf}: the two models answered different documents in this stage")
            if leaf not in sizes:
                raise InputError(f"task {leaf}: the stage's task plan does not say how many documents it has")
            strata.append(Stratum.of(sizes[leaf], bs.values[metric], cs.values[metric]))
        out.append(TaskSample(task, strata, baseline.higher_is_better(task, metric)))
    return out


def stage_line(lk: Look, fraction: float) -> str:
    lo, hi = lk.average_ci
    state = (f"stop: {lk.verdict.value}" if lk.stop else
             f"continue: {lk.possible[0].value} to {lk.possible[1].value} possible")
    return (f"[progressive] stage {lk.stage}/{lk.stages} ({fraction:.0%}): {lk.items_evaluated} of "
            f"{lk.items_total} documents per model; average drop {lk.average_drop:.2f} in [{lo:.2f}, {hi:.2f}]; "
            f"{state}")


def _requests(run_dir: Path) -> int | None:
    return json.loads((run_dir / "manifest.json").read_text()).get("requests")


def run_progressive(run_stage: Callable[[float], tuple[Path, Path]], policy: Policy,
                    stages: Sequence[float], confidence: float,
                    log=None) -> tuple[Comparison, Look, list[dict]]:
    """Run stages until the stopping rule settles the verdict. run_stage(fraction) evaluates
    both models on that stage and returns their run directories (complete). Returns the
    comparison, the last look and one record per stage (documents, requests sent, interval)."""
    log = log or (lambda text: print(text, file=sys.stderr, flush=True))
    stages = check_stages(stages)
    history: list[dict] = []
    for k, fraction in enumerate(stages, start=1):
        b_dir, c_dir = run_stage(fraction)
        baseline, candidate = load_run(b_dir), load_run(c_dir)
        lk = look_at(baseline, candidate, policy, populations(b_dir), stage=k, stages=len(stages),
                     confidence=confidence)
        log(stage_line(lk, fraction))
        history.append({"stage": k, "fraction": fraction, "itemsEvaluated": lk.items_evaluated,
                        "itemsTotal": lk.items_total, "averageDrop": round(lk.average_drop, 4),
                        "averageDropInterval": [round(x, 4) for x in lk.average_ci],
                        "possible": [v.value for v in lk.possible], "stop": lk.stop,
                        "requests": {"baseline": _requests(b_dir), "candidate": _requests(c_dir)}})
        if lk.stop:
            return outcome(baseline, candidate, policy, lk, stages, confidence), lk, history
    raise AssertionError("the last stage always stops")  # pragma: no cover - look() stops at 100%


def outcome(baseline: RunResults, candidate: RunResults, policy: Policy, lk: Look, stages: Sequence[float],
            confidence: float) -> Comparison:
    """The ordinary comparison of the documents evaluated, with the stopping rule's verdict
    (the full suite's) and the items used per task."""
    comp = compare(baseline, candidate, policy)
    totals = {e.task: e.population for e in lk.tasks}
    tasks = [t.model_copy(update={"items_total": totals.get(t.task)}) for t in comp.tasks]
    early = lk.items_evaluated < lk.items_total
    reasons = [f"progressive: {lk.reason}"]
    if lk.verdict != comp.verdict:
        reasons.append(f"progressive: the verdict is the full suite's, {lk.verdict.value}; the documents evaluated "
                       f"alone would give {comp.verdict.value}")
    info = ProgressiveOutcome(stage=lk.stage, stages=list(stages), confidence=confidence,
                              items_evaluated=lk.items_evaluated, items_total=lk.items_total, stopped_early=early,
                              reason=lk.reason,
                              average_drop_interval=(round(lk.average_ci[0], 2), round(lk.average_ci[1], 2)))
    return comp.model_copy(update={"verdict": lk.verdict, "promotable": lk.verdict.promotable,
                                   "reasons": reasons + comp.reasons, "tasks": tasks, "progressive": info})
