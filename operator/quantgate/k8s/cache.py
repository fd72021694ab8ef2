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
from quantgate.lmeval.plan import run_plan


@lru_cache(maxsize=1)
def lm_eval_version() -> str:
    try:
        return metadata.version("lm_eval")
    except metadata.PackageNotFoundError:
        return "unknown"


def baseline_key(identity: str, model: str | None, spec: ModelEvaluationSpec,
                 lm_eval: str | None = None) -> str:
    """40 hex chars (fits a label value)."""
    doc = {"identity": identity, "model": model, "tasks": run_plan(spec).key_document(), "lm_eval": lm_eval or lm_eval_version()}
    if spec.rerun is not None:  # a re-run measures again: no baseline from before it
        doc["rerun"] = spec.rerun
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:40]
