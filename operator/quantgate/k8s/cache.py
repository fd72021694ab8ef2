"""Baseline reuse: a stable key for "the same baseline run", so it runs once.

Two evaluations share a baseline run when they evaluate the same endpoint identity and
model on the same tasks with the same shots and limits under the same lm-eval version (and
the same `spec.rerun` value, when one is set).
The key travels as a label on the Job that runs the baseline and on the baseline results
ConfigMap it publishes; later evaluations find the ConfigMap by label and skip the run.
"""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from importlib import metadata

from quantgate.api.v1alpha1 import ModelEvaluationSpec


@lru_cache(maxsize=1)
def lm_eval_version() -> str:
    try:
        return metadata.version("lm_eval")
    except metadata.PackageNotFoundError:
        return "unknown"


def task_plan(spec: ModelEvaluationSpec) -> dict:
    """The suite and tasks with their effective shots/limits (what the runner will run).
    The suite name stays in the plan: `local` and `leaderboard` share task names and shots
    but not data."""
    from quantgate.lmeval.suites import resolve_tasks

    suite = None if spec.tasks else spec.effective_suite
    tasks = [t.dump() for t in resolve_tasks(suite, spec.tasks)]
    return {"suite": suite, "localData": spec.local_data, "limit": spec.limit, "tasks": tasks}


def baseline_key(identity: str, model: str | None, spec: ModelEvaluationSpec,
                 lm_eval: str | None = None) -> str:
    """40 hex chars (fits a label value)."""
    doc = {"identity": identity, "model": model, "tasks": task_plan(spec), "lm_eval": lm_eval or lm_eval_version()}
    if spec.rerun is not None:  # a re-run measures again: no baseline from before it
        doc["rerun"] = spec.rerun
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:40]
