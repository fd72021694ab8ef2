"""Progressive evaluation in the cluster (pure): which stage's Job runs, and what status says.

A progressive evaluation (spec.progressive) runs stage k (1-based) as its own runner Job,
`names.job_name(evaluation, generation, k)`, which evaluates both models on the first
ceil(share_k * N) documents of every (sub)task in the runner's seeded order (`quantgate run
--fraction share_k`). Once that Job's results pass the trust checks, the operator looks at them
with the same stopping rule as `quantgate evaluate --local --progressive`
(quantgate.lmeval.progressive_run.look_at) and either writes the verdict or moves
status.progressive.stage on to k + 1, whose Job the next step creates.

status.progressive.stage is the stage whose Job runs now (or the last one run, once decided);
the look fields (itemsEvaluated, itemsTotal, reason, per-task items) describe the last stage
that completed.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence

from quantgate.api.v1alpha1 import ModelEvaluationSpec, ModelEvaluationStatus
from quantgate.decision.progressive import Look
from quantgate.k8s.status import wire


def current(spec: ModelEvaluationSpec, status: ModelEvaluationStatus | None) -> int | None:
    """The stage whose Job this generation runs now; None when the evaluation is not progressive.
    The stage lives in status.progressive, which starting a generation clears."""
    if spec.progressive is None:
        return None
    stage = status.progressive.stage if status is not None and status.progressive is not None else None
    if stage is not None and 1 <= stage <= len(spec.progressive.stages):
        return stage
    return 1


def bounds(shares: Sequence[float], stage: int) -> tuple[float, float]:
    """(after, fraction) of stage `stage` (1-based): its Job adds the documents of share `fraction`
    after those of the previous stage's share (0 for the first)."""
    return (float(shares[stage - 2]) if stage > 1 else 0.0), float(shares[stage - 1])


def stage_key(baseline_key: str, shares: Sequence[float], stage: int) -> str:
    """The baseline cache key of one stage's run: the baseline's key (quantgate.k8s.cache: identity,
    model, task plan, lm-eval version) and the documents the stage adds — those of share
    shares[stage-1] after shares[stage-2] (0 for the first). The runner's seed is fixed, so equal
    keys mean the same documents. 40 hex chars (fits a label value); never a full run's key."""
    after, fraction = bounds(shares, stage)
    text = f"{baseline_key}|progressive-stage-run|{after!r}|{fraction!r}"
    return hashlib.sha256(text.encode()).hexdigest()[:40]


def cache_entries(status: ModelEvaluationStatus | None, *new: dict | None) -> list[dict]:
    """status.progressive.baselineCache (wire form) with `new` added: a stage's entry just
    written, and the entries of other evaluations a stage reused (recorded as vouched for when
    verified, so a later stage can still merge them after their producer moved on to a new
    generation)."""
    progressive = status.progressive if status is not None else None
    out = [wire(e) for e in (progressive.baseline_cache if progressive is not None else None) or []]
    for entry in new:
        if entry and all(e.get("name") != entry.get("name") for e in out):
            out.append(entry)
    return out


def _num(x: float, digits: int = 4) -> float | None:
    return round(x, digits) if math.isfinite(x) else None


def _interval(pair: tuple[float, float]) -> list[float] | None:
    lo, hi = _num(pair[0]), _num(pair[1])
    return None if lo is None or hi is None else [lo, hi]


def running(spec: ModelEvaluationSpec, stage: int) -> dict:
    """status.progressive (merge patch) when stage `stage`'s Job is created."""
    assert spec.progressive is not None
    return {"stage": stage, "stages": list(spec.progressive.stages), "confidence": spec.progressive.confidence}


def looked(lk: Look, spec: ModelEvaluationSpec) -> dict:
    """status.progressive (merge patch) after the look at a completed stage: where the evaluation
    goes on (stage + 1) or, when the look stops, where it ended (with stoppedEarly)."""
    assert spec.progressive is not None
    out = {
        **running(spec, lk.stage if lk.stop else lk.stage + 1),
        "itemsEvaluated": lk.items_evaluated,
        "itemsTotal": lk.items_total,
        "reason": lk.reason,
        "averageDrop": _num(lk.average_drop),
        "averageDropInterval": _interval(lk.average_ci),
        "tasks": [{"task": e.task, "itemsEvaluated": e.n, "itemsTotal": e.population, "drop": _num(e.drop),
                   "dropInterval": _interval(e.ci)} for e in lk.tasks],
        "stoppedEarly": (lk.items_evaluated < lk.items_total) if lk.stop else None,
    }
    return out


def stage_message(lk: Look, fraction: float) -> str:
    """The one-line status message after a stage that does not settle the verdict."""
    lo, hi = lk.average_ci
    return (f"stage {lk.stage}/{lk.stages} ({fraction:.0%}) done: {lk.items_evaluated} of {lk.items_total} documents "
            f"per model; average drop {lk.average_drop:.2f} in [{lo:.2f}, {hi:.2f}] allows {lk.possible[0].value} "
            f"to {lk.possible[1].value}; running stage {lk.stage + 1}")


def look(run, spec: ModelEvaluationSpec, policy, stage: int, where: str) -> Look:
    """The stopping rule's look at a stage's verified results (`run`: quantgate.k8s.verified.Outcome);
    the document counts come from the baseline's recorded task plan. Raises InputError (one line)
    when the results cannot be looked at (no per-document samples, different documents)."""
    from quantgate.lmeval.progressive_run import look_at, plan_populations

    assert spec.progressive is not None
    return look_at(run.baseline, run.candidate, policy, plan_populations(run.plan, where), stage=stage,
                   stages=len(spec.progressive.stages), confidence=spec.progressive.confidence)


def outcome(baseline, candidate, policy, lk: Look, spec: ModelEvaluationSpec):
    """The comparison a stopping look settles: the same as the local path's (the full suite's verdict,
    the items used per task)."""
    from quantgate.lmeval.progressive_run import outcome as local_outcome

    assert spec.progressive is not None
    return local_outcome(baseline, candidate, policy, lk, spec.progressive.stages, spec.progressive.confidence)
