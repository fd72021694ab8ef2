"""ModelEvaluationMatrix v1alpha1: one baseline, several candidates, one selection.

The matrix controller turns each candidate into a child ModelEvaluation it owns, so every
rule of a ModelEvaluation (admission policies, verified results, fail closed) applies to each
row unchanged. The spec carries every field of a ModelEvaluation spec except `candidate`
(copied from ModelEvaluationSpec below, so the two cannot drift) plus `candidates` and
`selectUpTo`; `quantgate crd --kind ModelEvaluationMatrix` generates the CRD from these models.
"""

from __future__ import annotations

import copy
from typing import Literal

from pydantic import ConfigDict, Field, create_model, model_validator

from quantgate.api.v1alpha1 import (
    BaselineSource,
    ModelEvaluationSpec,
    ModelSource,
    Phase,
    _cel,
    _spec_rules,
)
from quantgate.core.base import CamelModel
from quantgate.decision.model import Verdict

KIND = "ModelEvaluationMatrix"
PLURAL = "modelevaluationmatrices"
SINGULAR = "modelevaluationmatrix"
SHORT_NAMES = ["mevalmatrix", "mevm"]

# A Kubernetes quantity of bytes without exponent or milli: 8589934592, 8Gi, 8.5Gi, 16G.
SIZE_PATTERN = r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|k|M|G|T)?$"
# A candidate name ends the child's name (<matrix>-<candidate>), a label value of its Job.
CANDIDATE_NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
MAX_CANDIDATES = 16
# Verdicts `selectUpTo` may name, best first.
SELECTABLE = ("Ship", "Monitor")

_SHARED = {
    name: (info.annotation, copy.deepcopy(info))
    for name, info in ModelEvaluationSpec.model_fields.items()
    if name not in ("baseline", "candidate")
}
# What a matrix shares with a ModelEvaluation spec: tasks, policy, runner, datasets, rerun.
EvaluationSettings = create_model("EvaluationSettings", __base__=CamelModel, **_SHARED)  # type: ignore[call-overload]


class MatrixCandidate(ModelSource):
    """One variant of the matrix: a name, its size and one model source (the fields of a
    ModelEvaluation candidate)."""

    name: str = Field(description="Row name, e.g. int8; the child ModelEvaluation is <matrix>-<name>.",
                      min_length=1, max_length=24, pattern=CANDIDATE_NAME_PATTERN)
    size: str = Field(  # type: ignore[assignment]  (required here: selection ranks by it)
        description="Size of the variant in bytes, as a Kubernetes quantity without milli or exponent: "
        "8589934592, 8Gi, 8.5Gi, 16G. `selected` is the smallest selectable variant by size.",
        max_length=32, pattern=SIZE_PATTERN)


def _matrix_rules() -> list[dict]:
    return _spec_rules() + [
        _cel("self.candidates.all(c, self.candidates.filter(d, d.name == c.name).size() == 1)",
             "candidate names must be unique"),
    ]


class ModelEvaluationMatrixSpec(EvaluationSettings):  # type: ignore[misc,valid-type]
    """Evaluate several candidates (e.g. INT8, INT4-g128, INT4-g64) against one baseline, one child
    ModelEvaluation per candidate, and select the smallest variant that may ship."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": _matrix_rules()})

    baseline: BaselineSource = Field(description="The reference model, usually full precision; one run of it "
                                     "serves every candidate (docs/operator.md, \"Decision matrix\").")
    candidates: list[MatrixCandidate] = Field(
        description="The variants, one row each (in this order).", min_length=1, max_length=MAX_CANDIDATES)
    select_up_to: Literal["Ship", "Monitor"] = Field(
        "Ship", description="The worst verdict `selected` may have: Ship (default) selects only variants that "
        "ship as they are; Monitor also those that ship under closer watch.")

    @model_validator(mode="after")
    def _unique_names(self) -> "ModelEvaluationMatrixSpec":
        seen: set[str] = set()
        for c in self.candidates:
            if c.name in seen:
                raise ValueError(f"candidate names must be unique: {c.name} appears twice")
            seen.add(c.name)
        return self

    def child_spec(self, candidate: MatrixCandidate) -> ModelEvaluationSpec:
        """The ModelEvaluation spec of one row: the shared fields, the baseline, this candidate.
        Raises pydantic's ValidationError where a ModelEvaluation would be invalid."""
        shared = {name: getattr(self, name) for name in _SHARED}
        source = candidate.model_dump(exclude={"name"}, exclude_none=True)
        return ModelEvaluationSpec.model_validate(
            {**{k: v for k, v in shared.items() if v is not None}, "baseline": self.baseline,
             "candidate": ModelSource.model_validate(source)})


class MatrixRow(CamelModel):
    """One candidate's row, read from the child ModelEvaluation this matrix owns."""

    name: str = Field(description="The candidate's name.")
    evaluation: str = Field(description="The child ModelEvaluation.")
    size: str
    phase: Phase | None = Field(None, description="The child's phase; absent before it exists.")
    reason: str | None = Field(None, description="The child's reason, e.g. Ship or EndpointTimeout.")
    message: str | None = Field(None, description="The child's message (why a failed row failed).")
    verdict: Verdict | None = Field(None, description="Absent unless the child Succeeded.")
    promotable: bool | None = Field(None, description="True only for Ship and Monitor.")
    decisive: bool | None = None
    average_drop: float | None = Field(None, description="Average accuracy drop in percent.")
    scores: dict[str, float] | None = Field(None, description="The candidate's score per task.")
    drops: dict[str, float] | None = Field(None, description="The drop per task, percent (or points).")
    baseline_reused: bool | None = Field(None, description="The child reused a baseline run instead of "
                                         "running the baseline itself.")


class BaselineRow(CamelModel):
    """The reference row: the baseline's score per task (as the children compared it)."""

    name: str
    scores: dict[str, float] | None = None


class ModelEvaluationMatrixStatus(CamelModel):
    """Observed state, written only by the operator from the children it owns."""

    phase: Phase | None = Field(None, description="Pending, Running, Succeeded (every row settled, some may "
                                "have failed) or Failed (invalid spec).")
    reason: str | None = None
    message: str | None = None
    observed_generation: int | None = None
    profile: str | None = Field(None, description="The profile every row was decided under.")
    select_up_to: str | None = None
    baseline: BaselineRow | None = None
    rows: list[MatrixRow] | None = Field(None, description="One row per candidate, in spec order.")
    rows_done: str | None = Field(None, description="Settled rows of all rows, e.g. 3/4 (printer column).")
    selected: str | None = Field(None, description="The smallest variant by size whose verdict is at most "
                                 "selectUpTo (ties: the lower average drop); absent when none is.")
    selection_reason: str | None = None
