"""Reading lm-eval 0.4.13 outputs into `RunResults` (stable interface for other modules).

`load_run(path)` accepts
  * an lm-eval results file (``results_<timestamp>.json``); per-question samples are read
    from the ``samples_<task>_<timestamp>.jsonl`` files beside it when they exist;
  * an lm-eval ``--output_path`` directory (results under ``<model>/``, possibly several
    runs: the newest ``results_*.json`` wins);
  * a ``quantgate run`` output directory: the same layout plus a ``manifest.json``. A
    manifest saying the run is not complete (``"complete": false``, or ``"phase"`` /
    ``"status"`` failed/incomplete/running/pending/error) is refused, as is one whose results
    file, or any samples file it lists, is missing. ``"results"`` in the manifest (a path
    relative to it) picks the file; ``"samples"`` may list the samples files.

`RunResults` keeps, per task, the numeric metrics (``"metric,filter"`` keys as lm-eval
writes them), their stderrs, higher_is_better, n-shot and sample count, the
``group_subtasks`` tree, and per-question values of every leaf task whose samples were
logged, with one sha256 digest per task over its sorted (doc_id, doc_hash) pairs.
`to_compact()` / `from_compact()` give a small JSON-able form (binary per-question values
as base64 bit strings, continuous ones rounded to 4 decimals) for the results ConfigMap.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from quantgate.errors import InputError
from quantgate.lmeval.samples import TaskSamples, read_samples_file

COMPACT_VERSION = 1
_RESULTS_RE = re.compile(r"^results_(?P<ts>.+)\.json$")
# lm-eval names its files <stem>_<timestamp>.json (results_… in directories; any stem when
# --output_path is a .json path); the samples files beside it carry the same timestamp.
_TIMESTAMP_RE = re.compile(r"_(?P<ts>\d{4}-\d\d-\d\dT\d\d-\d\d-\d\d(?:\.\d+)?)\.json$")
_NOT_DONE = {"failed", "incomplete", "running", "pending", "error"}


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


# --- reading lm-eval's files ---------------------------------------------------------


def load_run(path: str | Path, *, with_samples: bool = True) -> RunResults:
    """Read one evaluated model from a results file or an output directory (see module doc).

    Raises InputError (one line) for missing, unreadable, incomplete or non-lm-eval input.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file or directory; "
                         "pass an lm-eval results_*.json or --output_path directory")
    results_file = _find_results(path) if path.is_dir() else path
    data = _read_json(results_file)
    run = parse_results(data, source=str(results_file))
    if with_samples:
        m = _RESULTS_RE.match(results_file.name) or _TIMESTAMP_RE.search(results_file.name)
        if m:
            run.samples = _read_samples(results_file.parent, m.group("ts"), set(run.tasks))
    return run


def _find_results(directory: Path) -> Path:
    manifest = directory / "manifest.json"
    if manifest.is_file():
        info = _read_json(manifest)
        state = str(info.get("phase") or info.get("status") or "").lower()
        if info.get("complete") is False or state in _NOT_DONE:
            error = str(info.get("error") or "").strip().splitlines()
            raise InputError(f"{directory}: the run is not complete (manifest.json: complete={info.get('complete')}, "
                             f"phase={state or 'unset'}{', error: ' + error[0] if error else ''}); "
                             "wait for it to finish or rerun it")
        missing = [f for f in info.get("samples") or [] if isinstance(f, str) and not (directory / f).is_file()]
        if missing:
            raise InputError(f"{directory}: manifest.json lists samples file {missing[0]} which is missing "
                             f"({len(missing)} missing); rerun the evaluation")
        if info.get("results"):
            chosen = directory / info["results"]
            if not chosen.is_file():
                raise InputError(f"{directory}: manifest.json names results file {info['results']} "
                                 "which is missing; rerun the evaluation")
            return chosen
    found = sorted(directory.glob("results_*.json")) + sorted(directory.glob("*/results_*.json"))
    if not found:
        what = ("the run recorded in manifest.json has no results file" if manifest.is_file()
                else "no results_*.json found")
        raise InputError(f"{directory}: {what}; point at an lm-eval --output_path directory or results file")
    parents = sorted({f.parent.name for f in found if f.parent != directory})
    if len(parents) > 1:
        raise InputError(f"{directory}: results of several models ({', '.join(parents)}); "
                         f"pass one of {directory}/<model> instead")
    # lm-eval's timestamps are ISO dates with ':' → '-': they sort as text.
    return max(found, key=lambda f: (_RESULTS_RE.match(f.name).group("ts"), f.stat().st_mtime))


def _read_json(path: Path) -> dict:
    try:
        with open(path, "rb") as fh:
            data = json.load(fh)
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror or exc}); check the path and permissions") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not valid JSON ({exc}); pass an lm-eval results_*.json file") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: not lm-eval output (top level is not an object)")
    return data


def _number(value) -> float | None:
    """A finite number, else None (lm-eval writes "N/A" or NaN for stderrs it did not compute)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def parse_results(data: dict, source: str | None = None) -> RunResults:
    """Build RunResults (no samples) from a parsed lm-eval results JSON object."""
    where = source or "results"
    results = data.get("results")
    if not isinstance(results, dict) or not results:
        raise InputError(f"{where}: not lm-eval output (no 'results' object); pass an lm-eval results_*.json file")
    entries = dict(results)
    # Groups appear in `results` too in 0.4.13; older/other writers may list them only here.
    for name, entry in (data.get("groups") or {}).items():
        entries.setdefault(name, entry)
    group_subtasks = {g: list(s) for g, s in (data.get("group_subtasks") or {}).items() if s}
    n_shot = data.get("n-shot") or {}
    hib = data.get("higher_is_better") or {}
    n_samples = data.get("n-samples") or {}
    tasks = {}
    for name, entry in entries.items():
        if not isinstance(entry, dict):
            raise InputError(f"{where}: not lm-eval output (results.{name} is not an object)")
        metrics, stderrs = {}, {}
        for key, value in entry.items():
            if "," not in key:
                continue
            metric, flt = key.split(",", 1)
            if metric.endswith("_stderr"):
                num = _number(value)
                if num is not None:
                    stderrs[f"{metric[: -len('_stderr')]},{flt}"] = num
            else:
                num = _number(value)
                if num is not None:
                    metrics[key] = num
        n = None
        if isinstance(n_samples.get(name), dict):
            n = n_samples[name].get("effective")
        elif isinstance(entry.get("sample_len"), int):
            n = entry["sample_len"]
        shot = n_shot.get(name)
        tasks[name] = TaskResult(
            name=name, metrics=metrics, stderrs=stderrs,
            higher_is_better={k: bool(v) for k, v in (hib.get(name) or {}).items()},
            n_shot=int(shot) if isinstance(shot, (int, float)) else None, n=n,
            is_group=name in group_subtasks,
        )
    config = data.get("config") or {}
    limit = _number(config.get("limit"))
    model = data.get("model_name") or config.get("model")
    from quantgate.decision.comparability import run_setup

    return RunResults(tasks=tasks, group_subtasks=group_subtasks, limit=limit,
                      model=model if isinstance(model, str) else None, source=source, setup=run_setup(data))


def _read_samples(directory: Path, timestamp: str, tasks: set[str]) -> dict[str, TaskSamples]:
    suffix = f"_{timestamp}.jsonl"
    out = {}
    for f in directory.glob(f"samples_*{suffix}"):
        task = f.name[len("samples_"): -len(suffix)]
        if task in tasks:
            out[task] = read_samples_file(f, task)
    return out
