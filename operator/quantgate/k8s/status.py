"""Status of a ModelEvaluation (pure): every phase change is one merge patch built here.

Rules kept by construction:
* a verdict is only ever written together with phase Succeeded and the generation it
  belongs to (`observedGeneration`); starting a new generation clears it;
* Failed never carries a verdict, and `promotable` is true only for Ship/Monitor (fail closed);
* conditions keep their lastTransitionTime while their status does not change.
"""

from __future__ import annotations

from datetime import datetime, timezone

from quantgate.api.v1alpha1 import Phase
from quantgate.decision.model import Comparison

# Keys that describe a verdict; cleared (null in a merge patch) whenever there is none.
VERDICT_KEYS = ("verdict", "profile", "aggregate", "dropMode", "averageDrop", "decisive", "reasons", "tasks",
                "evidence")
TERMINAL = (Phase.SUCCEEDED.value, Phase.FAILED.value)
ENDPOINTS_READY = "EndpointsReady"  # False while waiting for endpoints: the endpoint timeout's clock


def now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)


def condition(ctype: str, status: str, reason: str, message: str, generation: int, previous: list | None,
              at: str) -> dict:
    old = next((c for c in previous or [] if c.get("type") == ctype), None)
    since = old.get("lastTransitionTime") if old and old.get("status") == status else None
    return {"type": ctype, "status": status, "reason": reason, "message": message,
            "lastTransitionTime": since or at, "observedGeneration": generation}


def _not_evaluated(generation: int, reason: str, message: str, previous: list | None, at: str) -> list[dict]:
    return [
        condition("Evaluated", "False", reason, message, generation, previous, at),
        condition("Promotable", "False", reason, "no verdict for this generation", generation, previous, at),
    ]


def start_generation(generation: int, models: dict, previous: dict | None, at: str | None = None) -> dict:
    """A new spec generation: back to Pending, the old verdict and its Job forgotten."""
    at = at or now()
    patch = {k: None for k in VERDICT_KEYS}
    patch.update({
        "phase": Phase.PENDING.value,
        "reason": "NewGeneration",
        "message": f"evaluating generation {generation}",
        "observedGeneration": generation,
        "models": models,
        "promotable": False,
        "jobName": None,
        "resultsRef": None,
        "progressive": None,
        "startedAt": at,
        "finishedAt": None,
        "conditions": _not_evaluated(generation, "NewGeneration", "evaluation of this generation started",
                                     (previous or {}).get("conditions"), at),
    })
    return patch


def progress(phase: Phase, reason: str, message: str, generation: int, previous: dict | None,
             at: str | None = None, endpoints_ready: bool | None = None, **extra) -> dict:
    """Pending / WaitingForEndpoints / Running with a reason; no verdict. `endpoints_ready`
    (when known) sets condition EndpointsReady, whose lastTransitionTime is when the current
    wait for endpoints began."""
    at = at or now()
    prev = (previous or {}).get("conditions")
    conditions = _not_evaluated(generation, reason, message, prev, at)
    if endpoints_ready is not None:
        conditions.append(condition(ENDPOINTS_READY, "True" if endpoints_ready else "False",
                                    "EndpointsAnswer" if endpoints_ready else reason,
                                    "the models answer" if endpoints_ready else message, generation, prev, at))
    patch = {"phase": phase.value, "reason": reason, "message": message, "promotable": False,
             "conditions": conditions}
    patch.update(extra)
    return patch


def failed(reason: str, message: str, generation: int, previous: dict | None, at: str | None = None) -> dict:
    """Failed: fail closed, no verdict, never promotable."""
    at = at or now()
    patch = {k: None for k in VERDICT_KEYS}
    patch.update({
        "phase": Phase.FAILED.value, "reason": reason, "message": message, "promotable": False,
        "observedGeneration": generation, "finishedAt": at,
        "conditions": _not_evaluated(generation, reason, message, (previous or {}).get("conditions"), at),
    })
    return patch


def succeeded(comparison: Comparison, generation: int, previous: dict | None, results_ref: dict,
              at: str | None = None) -> dict:
    """The one patch that carries a verdict."""
    at = at or now()
    wire = comparison.dump()
    verdict = wire["verdict"]
    promotable = bool(comparison.verdict.promotable)
    summary = f"{verdict}: average drop {comparison.average_drop:.2f}%"
    if comparison.reasons:
        summary += f"; {comparison.reasons[0]}"
    prev = (previous or {}).get("conditions")
    patch = {k: wire.get(k) for k in VERDICT_KEYS}
    patch.update({
        "phase": Phase.SUCCEEDED.value, "reason": verdict, "message": summary, "promotable": promotable,
        "observedGeneration": generation, "finishedAt": at, "resultsRef": results_ref,
        "conditions": [
            condition("Evaluated", "True", "ResultsCompared", f"results of generation {generation} compared",
                      generation, prev, at),
            condition("Promotable", "True" if promotable else "False", verdict, summary, generation, prev, at),
        ],
    })
    return patch


def is_settled(status: dict | None, generation: int) -> bool:
    """Nothing left to do for this generation."""
    status = status or {}
    return status.get("observedGeneration") == generation and status.get("phase") in TERMINAL


def job_outcome(job: dict) -> tuple[str | None, str]:
    """('Complete' | 'Failed' | None, message) from a Job's conditions."""
    for cond in (job.get("status") or {}).get("conditions") or []:
        if cond.get("status") == "True" and cond.get("type") in ("Complete", "Failed"):
            return cond["type"], cond.get("message") or cond.get("reason") or ""
    return None, ""
