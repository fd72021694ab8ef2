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

`RunResults` itself (and its compact form for the results ConfigMap) lives in quantgate.core.runs,
which every package may import.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

from quantgate.core.runs import RunResults, TaskResult
from quantgate.core.samples import TaskSamples
from quantgate.errors import InputError
from quantgate.lmeval.samples import read_samples_file

__all__ = ["RunResults", "TaskResult", "load_run", "parse_results"]  # RunResults: the stable API's old path

_RESULTS_RE = re.compile(r"^results_(?P<ts>.+)\.json$")
# lm-eval names its files <stem>_<timestamp>.json (results_… in directories; any stem when
# --output_path is a .json path); the samples files beside it carry the same timestamp.
_TIMESTAMP_RE = re.compile(r"_(?P<ts>\d{4}-\d\d-\d\dT\d\d-\d\d-\d\d(?:\.\d+)?)\.json$")
_NOT_DONE = {"failed", "incomplete", "running", "pending", "error"}


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
