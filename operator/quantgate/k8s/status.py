"""Status of a ModelEvaluation (pure): every phase change is one merge patch built here.

Each patch is built as the API type `ModelEvaluationStatus` (validated: a misspelt field or a
wrong type raises here, not in the API server) and sent as its wire form with only the fields
set, a field set to None deleting it (JSON merge patch).

Rules kept by construction:
* a verdict is only ever written together with phase Succeeded and the generation it
  belongs to (`observedGeneration`); starting a new generation clears it;
* Failed never carries a verdict, and `promotable` is true only for Ship/Monitor (fail closed);
* conditions keep their lastTransitionTime while their status does not change.
"""

from __future__ import annotations

from datetime import datetime, timezone

from pydantic import BaseModel, ValidationError

from quantgate.api.v1alpha1 import Condition, ModelEvaluationStatus, Phase
from quantgate.decision.model import Comparison

# Fields that describe a verdict; cleared (null in a merge patch) whenever there is none.
VERDICT_FIELDS = ("verdict", "profile", "aggregate", "drop_mode", "average_drop", "decisive", "reasons", "tasks",
                  "evidence")
NO_VERDICT = dict.fromkeys(VERDICT_FIELDS)
VERDICT_KEYS = tuple(ModelEvaluationStatus.model_fields[f].alias or f for f in VERDICT_FIELDS)  # as on the wire
TERMINAL = (Phase.SUCCEEDED, Phase.FAILED)
INVALID_STATUS = "InvalidStatus"  # the reason of a status that does not validate
ENDPOINTS_READY = "EndpointsReady"  # False while waiting for endpoints: the endpoint timeout's clock


def wire(model: BaseModel) -> dict:
    """The wire form of an API value with exactly the fields it was given (None included)."""
    return model.model_dump(by_alias=True, exclude_unset=True, mode="json")


def _patch(**fields) -> dict:
    """The merge patch of these status fields (Python names or wire names), validated as
    ModelEvaluationStatus: exactly the given fields, None deleting one."""
    return wire(ModelEvaluationStatus.model_validate(fields))


def parse(status: dict | None) -> ModelEvaluationStatus:
    """A status as read from the API server, typed; raises ValidationError when it does not
    validate (someone other than the operator wrote it)."""
    return ModelEvaluationStatus.model_validate(status or {})


def now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)


def _conditions(previous: ModelEvaluationStatus | None) -> list[Condition] | None:
    return previous.conditions if previous is not None else None


def condition(ctype: str, status: str, reason: str, message: str, generation: int,
              previous: list[Condition] | None, at: str) -> dict:
    old = next((c for c in previous or [] if c.type == ctype), None)
    since = old.last_transition_time if old and old.status == status else None
    return {"type": ctype, "status": status, "reason": reason, "message": message,
            "lastTransitionTime": since or at, "observedGeneration": generation}


def _not_evaluated(generation: int, reason: str, message: str, previous: list[Condition] | None,
                   at: str) -> list[dict]:
    return [
        condition("Evaluated", "False", reason, message, generation, previous, at),
        condition("Promotable", "False", reason, "no verdict for this generation", generation, previous, at),
    ]


def start_generation(generation: int, models: dict, previous: ModelEvaluationStatus | None,
                     at: str | None = None) -> dict:
    """A new spec generation: back to Pending, the old verdict and its Job forgotten."""
    at = at or now()
    return _patch(**NO_VERDICT, phase=Phase.PENDING, reason="NewGeneration",
                  message=f"evaluating generation {generation}", observed_generation=generation, models=models,
                  promotable=False, job_name=None, results_ref=None, progressive=None, started_at=at,
                  finished_at=None,
                  conditions=_not_evaluated(generation, "NewGeneration", "evaluation of this generation started",
                                            _conditions(previous), at))


def progress(phase: Phase, reason: str, message: str, generation: int, previous: ModelEvaluationStatus | None,
             at: str | None = None, endpoints_ready: bool | None = None, *, job_name: str | None = None,
             results_ref: dict | None = None, progressive: dict | None = None) -> dict:
    """Pending / WaitingForEndpoints / Running with a reason; no verdict. `endpoints_ready`
    (when known) sets condition EndpointsReady, whose lastTransitionTime is when the current
    wait for endpoints began. The runner Job, its results and a progressive evaluation's look
    are written when given."""
    at = at or now()
    prev = _conditions(previous)
    conditions = _not_evaluated(generation, reason, message, prev, at)
    if endpoints_ready is not None:
        conditions.append(condition(ENDPOINTS_READY, "True" if endpoints_ready else "False",
                                    "EndpointsAnswer" if endpoints_ready else reason,
                                    "the models answer" if endpoints_ready else message, generation, prev, at))
    given = {k: v for k, v in (("job_name", job_name), ("results_ref", results_ref),
                               ("progressive", progressive)) if v is not None}
    return _patch(phase=phase, reason=reason, message=message, promotable=False, conditions=conditions, **given)


def failed(reason: str, message: str, generation: int, previous: ModelEvaluationStatus | None,
           at: str | None = None) -> dict:
    """Failed: fail closed, no verdict, never promotable."""
    at = at or now()
    return _patch(**NO_VERDICT, phase=Phase.FAILED, reason=reason, message=message, promotable=False,
                  observed_generation=generation, finished_at=at,
                  conditions=_not_evaluated(generation, reason, message, _conditions(previous), at))


def invalid(message: str, generation: int, exc: ValidationError, at: str | None = None) -> dict:
    """Failed, reason InvalidStatus: the status read does not validate (someone other than the
    operator wrote it), so nothing in it is trusted: no verdict, and the top-level fields that do
    not validate removed (null), so the status written validates and settles."""
    refused = {str(e["loc"][0]) for e in exc.errors() if e.get("loc")}
    return {**dict.fromkeys(sorted(refused)), **failed(INVALID_STATUS, message, generation, None, at)}


def succeeded(comparison: Comparison, generation: int, previous: ModelEvaluationStatus | None, results_ref: dict,
              at: str | None = None, *, evidence: dict | None = None, progressive: dict | None = None) -> dict:
    """The one patch that carries a verdict (with the evidence it was derived from, and a
    progressive evaluation's last look)."""
    at = at or now()
    compared = comparison.dump()
    verdict = compared["verdict"]
    promotable = bool(comparison.verdict.promotable)
    summary = f"{verdict}: average drop {comparison.average_drop:.2f}%"
    if comparison.reasons:
        summary += f"; {comparison.reasons[0]}"
    prev = _conditions(previous)
    verdict_fields = {k: compared.get(ModelEvaluationStatus.model_fields[k].alias or k) for k in VERDICT_FIELDS}
    verdict_fields["evidence"] = evidence
    return _patch(**verdict_fields, phase=Phase.SUCCEEDED, reason=verdict, message=summary, promotable=promotable,
                  observed_generation=generation, finished_at=at, results_ref=results_ref,
                  **({"progressive": progressive} if progressive is not None else {}),
                  conditions=[
                      condition("Evaluated", "True", "ResultsCompared",
                                f"results of generation {generation} compared", generation, prev, at),
                      condition("Promotable", "True" if promotable else "False", verdict, summary, generation,
                                prev, at),
                  ])


def is_settled(status: ModelEvaluationStatus | None, generation: int) -> bool:
    """Nothing left to do for this generation."""
    return status is not None and status.observed_generation == generation and status.phase in TERMINAL


def settled_on_the_wire(status: dict | None, generation: int) -> bool:
    """is_settled for a status as a watch delivered it (event routing): only phase and
    observedGeneration are parsed. A status whose two fields do not validate is not settled
    (its reconcile parses the whole status and fails it closed, InvalidStatus)."""
    routing = {k: v for k, v in (status or {}).items() if k in ("phase", "observedGeneration")}
    try:
        return is_settled(ModelEvaluationStatus.model_validate(routing), generation)
    except ValidationError:
        return False


def job_outcome(job: dict) -> tuple[str | None, str]:
    """('Complete' | 'Failed' | None, message) from a Job's conditions."""
    for cond in (job.get("status") or {}).get("conditions") or []:
        if cond.get("status") == "True" and cond.get("type") in ("Complete", "Failed"):
            return cond["type"], cond.get("message") or cond.get("reason") or ""
    return None, ""
