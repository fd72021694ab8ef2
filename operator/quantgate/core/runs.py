"""One evaluated model's results: `RunResults`, the type every package shares.

Per task, the numeric metrics (``"metric,filter"`` keys as lm-eval writes them), their stderrs,
higher_is_better, n-shot and sample count, the ``group_subtasks`` tree, and per-question values
of every leaf task whose samples were logged, with one sha256 digest per task over its sorted
(doc_id, doc_hash) pairs. `to_compact()` / `from_compact()` give a small JSON-able form (binary
per-question values as base64 bit strings, continuous ones rounded to 4 decimals) for the
results ConfigMap. quantgate.lmeval.results reads lm-eval's files into it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from quantgate.core.samples import TaskSamples
from quantgate.errors import InputError

COMPACT_VERSION = 1


@dataclass(frozen=True)
class TaskResult:
    """One task's or group's aggregate entry from lm-eval's results."""

    name: str
    metrics: dict[str, float]
    stderrs: dict[str, float] = field(default_factory=dict)
    higher_is_better: dict[str, bool] = field(default_factory=dict)
    n_shot: int | None = None
    n: int | None = None
    is_group: bool = False


@dataclass
class RunResults:
    """One evaluated model: aggregates per task/group plus optional per-question samples."""

    tasks: dict[str, TaskResult]
    group_subtasks: dict[str, list[str]] = field(default_factory=dict)
    samples: dict[str, TaskSamples] = field(default_factory=dict)
    limit: float | None = None
    model: str | None = None
    source: str | None = None
    setup: dict = field(default_factory=dict)  # decision/comparability.py: what must agree

    def top_level(self) -> list[str]:
        """Tasks and groups not listed as anyone's subtask, in results order.

        A group without a score of its own (lm-eval lists a group that has no
        aggregate_metric_list with no metrics) is not a unit of comparison: its
        subtasks take its place.
        """
        nested = {t for subs in self.group_subtasks.values() for t in subs}
        roots = [t for t in [*self.tasks, *self.group_subtasks] if t not in nested]
        out: list[str] = []

        def visit(task: str) -> None:
            entry = self.tasks.get(task)
            if task in self.group_subtasks and (entry is None or not entry.metrics):
                for sub in self.group_subtasks[task]:
                    visit(sub)
            elif entry is not None and task not in out:
                out.append(task)

        for t in dict.fromkeys(roots):
            visit(t)
        return out

    def leaves(self, task: str) -> list[str]:
        """The leaf tasks under a group (the task itself when it is not a group)."""
        subs = self.group_subtasks.get(task)
        if not subs:
            return [task]
        return [leaf for sub in subs for leaf in self.leaves(sub)]

    def higher_is_better(self, task: str, metric: str) -> bool:
        """lm-eval omits top-level groups from higher_is_better: fall back to their subtasks."""
        name = metric.split(",", 1)[0]
        entry = self.tasks.get(task)
        if entry and name in entry.higher_is_better:
            return entry.higher_is_better[name]
        for sub in self.group_subtasks.get(task, []):
            if sub in self.tasks:
                return self.higher_is_better(sub, metric)
        return True

    def n_shot(self, task: str) -> dict[str, int]:
        """Few-shot counts of the task, or of every leaf under a group."""
        found = {}
        for t in [task, *self.leaves(task)]:
            entry = self.tasks.get(t)
            if entry is not None and entry.n_shot is not None:
                found[t] = entry.n_shot
        return found

    # --- compact form -------------------------------------------------------------

    def to_compact(self) -> dict:
        """A small JSON-able dict; `from_compact` restores an equal RunResults (values
        rounded to 4 decimals where they are not 0/1)."""
        tasks = {}
        for name, t in self.tasks.items():
            entry: dict = {"m": t.metrics}
            if t.stderrs:
                entry["se"] = t.stderrs
            if t.higher_is_better:
                entry["hib"] = t.higher_is_better
            if t.n_shot is not None:
                entry["shot"] = t.n_shot
            if t.n is not None:
                entry["n"] = t.n
            if t.is_group:
                entry["group"] = True
            tasks[name] = entry
        out = {"v": COMPACT_VERSION, "tasks": tasks, "groups": self.group_subtasks,
               "samples": {name: s.to_compact() for name, s in self.samples.items()}}
        for key, value in (("limit", self.limit), ("model", self.model), ("source", self.source),
                           ("setup", self.setup or None)):
            if value is not None:
                out[key] = value
        return out

    @classmethod
    def from_compact(cls, data: dict) -> "RunResults":
        if not isinstance(data, dict) or data.get("v") != COMPACT_VERSION:
            raise InputError(f"not a quantgate compact result (expected v={COMPACT_VERSION})")
        tasks = {
            name: TaskResult(name=name, metrics=e["m"], stderrs=e.get("se", {}),
                             higher_is_better=e.get("hib", {}), n_shot=e.get("shot"),
                             n=e.get("n"), is_group=e.get("group", False))
            for name, e in data["tasks"].items()
        }
        samples = {name: TaskSamples.from_compact(s) for name, s in data.get("samples", {}).items()}
        return cls(tasks=tasks, group_subtasks=data.get("groups", {}), samples=samples,
                   limit=data.get("limit"), model=data.get("model"), source=data.get("source"),
                   setup=data.get("setup") or {})
