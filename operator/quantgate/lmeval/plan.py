"""The run plan: what a ModelEvaluation spec asks the runner to evaluate.

`run_plan(spec)` is the one function that turns a spec into tasks, shots, limits and the data
source and generation settings. The operator's Job builder (its runner arguments), `quantgate evaluate --local` (the same
arguments, run here), the baseline cache key and the trust check of published results (the
resolved tasks) all read this plan, so what the cache calls "the same baseline run" and what the
trust check expects are exactly what the Job and the local run evaluate.
"""

from __future__ import annotations

from dataclasses import dataclass

from quantgate.api.v1alpha1 import ModelEvaluationSpec, TaskSpec
from quantgate.lmeval.suites import resolve_tasks


def task_arg(task: TaskSpec) -> str:
    """`name[:shots][@limit]`, the runner's per-task syntax (`quantgate run --tasks`)."""
    text = task.name
    if task.num_fewshot is not None:
        text += f":{task.num_fewshot}"
    if task.limit is not None:
        text += f"@{task.limit}"
    return text


def _gen_value(value) -> str:
    """A generation setting as `quantgate run --gen-kwargs` reads it back (true/false, numbers, text)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value) if isinstance(value, float) else str(value)


def effective_limit(task: TaskSpec, limit: int | None) -> int | None:
    """A task's own limit wins over the run's global one."""
    return task.limit or limit


@dataclass(frozen=True)
class RunPlan:
    """A named suite or an explicit task list (never both), the data source and a global limit.
    `local_data`: False (the suite's own data), True (the shipped local datasets) or "local-full"
    (the full-size generated ones, quantgate.lmeval.full_tasks)."""

    suite: str | None
    tasks: tuple[TaskSpec, ...]
    local_data: bool | str = False
    limit: int | None = None
    gen_kwargs: tuple[tuple[str, str | bool | int | float], ...] = ()  # sorted (key, value) pairs

    def runner_args(self) -> list[str]:
        """The runner's arguments for this plan (`quantgate run`)."""
        if self.tasks:
            args = ["--tasks", ",".join(task_arg(t) for t in self.tasks)]
        else:
            args = ["--suite", self.suite or "leaderboard"]
        if self.local_data:
            args.append("--local-data")
            if self.local_data == "local-full":
                args.append("local-full")
        if self.limit is not None:
            args += ["--limit", str(self.limit)]
        if self.gen_kwargs:
            args += ["--gen-kwargs", ",".join(f"{k}={_gen_value(v)}" for k, v in self.gen_kwargs)]
        return args

    def resolved(self) -> list[TaskSpec]:
        """Every task with its shots and per-task limit (a suite expanded)."""
        return resolve_tasks(None if self.tasks else self.suite, list(self.tasks) or None)

    def task_limits(self) -> tuple[tuple[str, int | None, int | None], ...]:
        """(name, shots, effective limit) per task: what a run of this plan records (the trust check)."""
        return tuple((t.name, t.num_fewshot, effective_limit(t, self.limit)) for t in self.resolved())

    def key_document(self) -> dict:
        """What the baseline cache key hashes: the suite and every task with its effective shots
        and limit. The suite name stays in: `local` and `leaderboard` share task names and shots
        but not data."""
        tasks = [t.dump() for t in self.resolved()]
        doc = {"suite": None if self.tasks else self.suite, "localData": self.local_data, "limit": self.limit,
               "tasks": tasks}
        if self.gen_kwargs:  # only when set: keys of plans without them stay what they were
            doc["genKwargs"] = dict(self.gen_kwargs)
        return doc


def run_plan(spec: ModelEvaluationSpec, *, limit: int | None = None, local_data: bool = False) -> RunPlan:
    """The plan of `spec`. `limit` overrides `spec.limit` (`evaluate --local --limit`); `local_data`
    forces the local datasets (`evaluate --local --local-data`)."""
    local = local_data or spec.local_data
    return RunPlan(suite=spec.effective_suite, tasks=tuple(spec.tasks or ()),
                   local_data=("local-full" if spec.suite == "local-full" else True) if local else False,
                   limit=limit if limit is not None else spec.limit,
                   gen_kwargs=tuple(sorted((spec.gen_kwargs or {}).items())))
