"""Typed inputs and outputs of the decision rule (docs/decision.md).

These models are the contract shared by `quantgate compare -o json`, the
ModelEvaluation status and the metrics. Field names serialise in camelCase
exactly as docs/decision.md lists them; Python code uses snake_case.
"""

from __future__ import annotations

from enum import Enum
from typing import Literal

from pydantic import Field, model_validator

from quantgate.core.base import CamelModel


class Verdict(str, Enum):
    """Ordered from best to worst; the final verdict is the worst outcome."""

    SHIP = "Ship"
    MONITOR = "Monitor"
    AB_TEST = "ABTest"
    BLOCK = "Block"

    @property
    def rank(self) -> int:
        return list(Verdict).index(self)

    @property
    def promotable(self) -> bool:
        return self in (Verdict.SHIP, Verdict.MONITOR)


DropMode = Literal["relative", "absolute"]
Aggregate = Literal["relativeDropOfMean", "meanOfRelativeDrops"]
PROFILES = ("general", "math-tutoring", "code-help", "general-chat", "summarization")
Profile = Literal["general", "math-tutoring", "code-help", "general-chat", "summarization"]


class Thresholds(CamelModel):
    """General bounds on the average drop (percent): < ship → Ship, <= monitor → Monitor,
    <= abTest → ABTest, above → Block."""

    ship: float = Field(1.0, ge=0, description="Average drop below this ships.")
    monitor: float = Field(3.0, ge=0, description="Average drop up to this ships with monitoring.")
    ab_test: float = Field(5.0, ge=0, description="Average drop up to this needs an A/B test; above it blocks.")

    @model_validator(mode="after")
    def _ordered(self) -> "Thresholds":
        if not (self.ship <= self.monitor <= self.ab_test):
            raise ValueError(
                f"thresholds must satisfy 0 <= ship <= monitor <= abTest, got "
                f"ship={self.ship} monitor={self.monitor} abTest={self.ab_test}"
            )
        return self


class Policy(CamelModel):
    """Everything the decision rule takes besides the two result sets."""

    profile: Profile = "general"
    task_limits: dict[str, float] = Field(default_factory=dict)
    thresholds: Thresholds = Field(default_factory=Thresholds)
    drop_mode: DropMode = "relative"
    aggregate: Aggregate = "relativeDropOfMean"
    metrics: dict[str, str] = Field(default_factory=dict, description="Per-task primary metric override.")
    max_choice_kld: float | None = Field(None, ge=0, description="Block when a multiple-choice task's mean "
                                         "choice KLD (baseline || candidate, nats) exceeds this.")
    min_top1_agreement: float | None = Field(None, ge=0, le=1, description="Block when a multiple-choice "
                                             "task's top-1 agreement falls below this.")


class Flips(CamelModel):
    correct_to_incorrect: int
    incorrect_to_correct: int
    rate: float
    mcnemar_p: float | None = Field(None, description="Exact two-sided McNemar p-value of the flip counts.")


class TaskComparison(CamelModel):
    task: str
    metric: str
    baseline: float
    candidate: float
    drop: float
    limit: float | None = None
    passed: bool
    n: int | None = None
    ci95: tuple[float, float] | None = None
    flips: Flips | None = None
    min_detectable_drop: float | None = Field(
        None, description="Smallest true drop this run detects (5% two-sided, 80% power), in the drop's units.")
    documents_needed: int | None = Field(
        None, description="Documents that would make this task's undecided interval decisive at the observed "
                          "disagreement rate; set only when the task leaves the verdict not decisive.")
    items_total: int | None = Field(None, description="Documents in the full task (progressive runs).")
    choice_kld: float | None = Field(None, description="Mean KL(baseline || candidate) of the per-question "
                                     "choice distributions (multiple-choice tasks), nats.")
    top1_agreement: float | None = Field(None, description="Share of questions where both pick the same choice.")


class ProgressiveOutcome(CamelModel):
    """Where a progressive evaluation stopped (docs/decision.md, "Progressive evaluation")."""

    stage: int = Field(description="Stages run (1-based).")
    stages: list[float] = Field(description="The planned stages, fractions of every task.")
    confidence: float
    items_evaluated: int = Field(description="Documents each model answered (all tasks).")
    items_total: int = Field(description="Documents of the full suite.")
    stopped_early: bool
    reason: str
    average_drop_interval: tuple[float, float] = Field(description="Full-suite interval of the average drop.")


class Comparison(CamelModel):
    verdict: Verdict
    promotable: bool
    profile: str
    aggregate: Aggregate
    drop_mode: DropMode
    average_drop: float
    decisive: bool
    reasons: list[str]
    tasks: list[TaskComparison]
    progressive: ProgressiveOutcome | None = None
