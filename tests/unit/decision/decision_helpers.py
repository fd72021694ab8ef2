"""Building RunResults in memory for rule tests (the file layout is tested on real fixtures)."""

from __future__ import annotations

from quantgate.decision.tasks import PRIMARY_METRICS, canonical
from quantgate.core.runs import RunResults, TaskResult
from quantgate.core.samples import TaskSamples


def key_for(task: str) -> str:
    return PRIMARY_METRICS.get(canonical(task), "acc,none")


def make_run(scores: dict[str, float], *, stderr: float | None = 0.01, n: int | None = 100,
             n_shot: int | None = 0, hib: dict[str, bool] | None = None, limit: float | None = None,
             samples: dict[str, dict[str, list[float]]] | None = None, digest: str = "same-docs",
             metrics: dict[str, dict[str, float]] | None = None,
             groups: dict[str, list[str]] | None = None) -> RunResults:
    """scores: task → primary score; metrics: task → extra metric keys; samples: leaf task →
    {metric key: per-question values}."""
    tasks = {}
    for t, v in scores.items():
        key = key_for(t)
        m = {key: v, **(metrics or {}).get(t, {})}
        tasks[t] = TaskResult(
            name=t, metrics=m, stderrs={k: stderr for k in m} if stderr is not None else {},
            higher_is_better={k.split(",")[0]: (hib or {}).get(t, True) for k in m},
            n_shot=n_shot, n=n, is_group=t in (groups or {}))
    sample_objs = {
        t: TaskSamples(doc_ids=list(range(len(next(iter(vals.values()))))), values=vals, digest=f"{digest}:{t}")
        for t, vals in (samples or {}).items()
    }
    return RunResults(tasks=tasks, group_subtasks=groups or {}, samples=sample_objs, limit=limit, model="m")


def scaled(baseline: dict[str, float], drops: dict[str, float]) -> dict[str, float]:
    """Candidate scores with the given relative drops (percent)."""
    return {t: v * (1 - drops.get(t, 0.0) / 100) for t, v in baseline.items()}
