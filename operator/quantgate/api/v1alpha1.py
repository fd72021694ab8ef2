"""ModelEvaluation v1alpha1: the API types, single source of truth for the CRD.

`quantgate crd` generates manifests/crd/ from these models; the operator, the
runner and `quantgate evaluate --local` all parse specs with them.
"""

from __future__ import annotations

from enum import Enum
from typing import Literal

from pydantic import Field, model_validator

from quantgate.decision.model import (
    Aggregate,
    CamelModel,
    DropMode,
    Profile,
    TaskComparison,
    Thresholds,
    Verdict,
)

GROUP = "quantgate.io"
VERSION = "v1alpha1"
KIND = "ModelEvaluation"
PLURAL = "modelevaluations"
SHORT_NAME = "meval"
CATEGORY = "quantgate"

Suite = Literal["leaderboard", "tiny", "local"]


class SecretKeyRef(CamelModel):
    """A key of a Secret in the evaluation's namespace."""

    name: str = Field(description="Secret name.")
    key: str = Field("api-key", description="Key within the Secret.")


class InferenceServiceRef(CamelModel):
    """A KServe InferenceService serving the model over the OpenAI API."""

    name: str = Field(description="InferenceService name (its namespace is the evaluation's).")


class Endpoint(CamelModel):
    """An OpenAI-compatible endpoint (vLLM, KServe, any gateway)."""

    url: str = Field(description="Base URL, e.g. http://llm.models.svc:8000 (…/v1 or …/openai/v1 detected).")
    model: str | None = Field(None, description="Served model name; default: what /v1/models lists.")
    api_key_secret_ref: SecretKeyRef | None = Field(None, description="Bearer token for the endpoint.")


class VllmEngine(CamelModel):
    """Load the model inside the runner Job with lm-eval's vLLM engine (GPU nodes)."""

    model_path: str | None = Field(None, description="Path or Hugging Face id of the weights.")
    pvc: str | None = Field(None, description="PersistentVolumeClaim holding the weights, mounted read-only.")
    tensor_parallel_size: int = Field(1, ge=1, le=16, description="GPUs per model.")
    quantization: str | None = Field(None, description="vLLM quantization method (awq, gptq, fp8, ...).")
    dtype: str = Field("auto", description="vLLM dtype.")
    gpu_memory_utilization: float = Field(0.9, gt=0, le=1, description="Fraction of GPU memory vLLM may use.")


class ModelSource(CamelModel):
    """One model variant. Exactly one of inferenceServiceRef, endpoint, vllm."""

    inference_service_ref: InferenceServiceRef | None = None
    endpoint: Endpoint | None = None
    vllm: VllmEngine | None = None
    size: str | None = Field(None, description="Model size shown in reports, e.g. 4.6Gi.")

    @model_validator(mode="after")
    def _exactly_one_source(self) -> "ModelSource":
        given = [n for n in ("inference_service_ref", "endpoint", "vllm") if getattr(self, n) is not None]
        if len(given) != 1:
            raise ValueError("a model needs exactly one of inferenceServiceRef, endpoint, vllm")
        return self


class BaselineSource(ModelSource):
    results_from: str | None = Field(
        None, description="Reuse the baseline results of this finished ModelEvaluation (same namespace)."
    )


class TaskSpec(CamelModel):
    """One lm-eval task with its settings."""

    name: str = Field(description="lm-eval task or group name, e.g. gsm8k, mmlu, tinyGSM8k.")
    num_fewshot: int | None = Field(None, ge=0, description="Few-shot examples; default: the task's own.")
    limit: int | None = Field(None, ge=1, description="Evaluate only the first N documents (never for tiny tasks).")
    metric: str | None = Field(None, description="Primary metric override, e.g. 'acc,none'.")


class RunnerSpec(CamelModel):
    """How the runner Job runs."""

    image: str | None = Field(None, description="Runner image; default: the operator's.")
    resources: dict | None = Field(None, description="Container resources (requests/limits).")
    node_selector: dict[str, str] | None = None
    tolerations: list[dict] | None = None
    concurrency: int = Field(32, ge=1, le=1024, description="Requests in flight per model endpoint.")
    timeout_seconds: int = Field(3600, ge=60, description="Job activeDeadlineSeconds.")
    backoff_limit: int = Field(1, ge=0, le=10, description="Job retries.")


class ModelEvaluationSpec(CamelModel):
    """Evaluate a candidate (quantized) model against its baseline and decide."""

    baseline: BaselineSource
    candidate: ModelSource
    suite: Suite | None = Field(None, description="Named task suite; default leaderboard unless tasks are listed.")
    tasks: list[TaskSpec] | None = Field(None, description="Explicit tasks instead of a suite.")
    profile: Profile = Field("general", description="Use-case profile with stricter task limits.")
    task_limits: dict[str, float] | None = Field(None, description="Per-task drop limits in percent.")
    thresholds: Thresholds = Field(default_factory=Thresholds)
    drop_mode: DropMode = "relative"
    aggregate: Aggregate = "relativeDropOfMean"
    runner: RunnerSpec = Field(default_factory=RunnerSpec)

    @model_validator(mode="after")
    def _suite_or_tasks(self) -> "ModelEvaluationSpec":
        if self.suite is not None and self.tasks:
            raise ValueError("give either suite or tasks, not both")
        return self


class Phase(str, Enum):
    PENDING = "Pending"
    WAITING_FOR_ENDPOINTS = "WaitingForEndpoints"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


class Condition(CamelModel):
    type: Literal["Evaluated", "Promotable"]
    status: Literal["True", "False", "Unknown"]
    reason: str
    message: str = ""
    last_transition_time: str | None = None
    observed_generation: int | None = None


class ModelEvaluationStatus(CamelModel):
    phase: Phase | None = None
    verdict: Verdict | None = None
    promotable: bool | None = None
    average_drop: float | None = None
    decisive: bool | None = None
    reasons: list[str] | None = None
    tasks: list[TaskComparison] | None = None
    observed_generation: int | None = None
    conditions: list[Condition] | None = None
    job_name: str | None = None
    results_ref: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    message: str | None = None
