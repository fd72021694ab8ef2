"""ModelEvaluation v1alpha1: the API types, single source of truth for the CRD.

`quantgate crd` generates manifests/crd/ from these models (descriptions, enums,
defaults, ranges and the CEL rules below); the operator, the runner and
`quantgate evaluate --local` all parse specs with them. Descriptions are what
`kubectl explain modelevaluation.spec...` prints, so write them for users.
"""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Literal

from pydantic import ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StringConstraints, model_validator

from quantgate.core.base import CamelModel
from quantgate.decision.progressive import DEFAULT_CONFIDENCE, DEFAULT_STAGES
from quantgate.decision.rule import PROFILE_TASK_LIMITS
from quantgate.decision.tasks import TINY
from quantgate.decision.model import (
    Aggregate,
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
SINGULAR = "modelevaluation"
SHORT_NAME = "meval"
CATEGORY = "quantgate"

Suite = Literal["leaderboard", "tiny", "local", "local-full", "code"]

# Tasks the built-in suites run (docs/decision.md) and the tinyBenchmarks task standing for
# each full benchmark; used by the CEL rules that check profile/taskLimits names.
SUITE_TASKS = ("arc_challenge", "hellaswag", "mmlu", "truthfulqa_mc2", "winogrande", "gsm8k")
TINY_FOR = {full: tiny for tiny, full in TINY.items()}  # the one table: quantgate.decision.tasks.TINY
# The code suite's tasks: they execute model-written code (quantgate.lmeval.code_tasks).
CODE_TASKS = ("humaneval", "mbpp")
# The task each built-in profile limits (docs/decision.md, "Limits").
PROFILE_TASK = {profile: task for profile, limits in PROFILE_TASK_LIMITS.items() for task in limits}

_NAME = dict(min_length=1, max_length=253)


def _cel(rule: str, message: str) -> dict:
    return {"rule": rule, "message": message}


def _quoted(items) -> str:
    return "[" + ", ".join(f"'{i}'" for i in items) + "]"


class SecretKeyRef(CamelModel):
    """A key of a Secret in the evaluation's namespace. The value reaches the runner as an
    environment variable; it never appears in status, results, events or logs."""

    name: str = Field(description="Secret name.", **_NAME)
    key: str = Field("api-key", description="Key within the Secret.", min_length=1, max_length=253)


class ConfigMapKeyRef(CamelModel):
    """A key of a ConfigMap in the evaluation's namespace holding PEM CA certificates (e.g. the
    bundle trust-manager or OpenShift's CA injection distributes to every namespace)."""

    name: str = Field(description="ConfigMap name.", **_NAME)
    key: str = Field("ca.crt", description="Key within the ConfigMap.", min_length=1, max_length=253)


class InferenceServiceRef(CamelModel):
    """A KServe InferenceService (serving.kserve.io/v1beta1) serving the model over the OpenAI API."""

    name: str = Field(description="InferenceService name, in the evaluation's namespace.", **_NAME)
    model: str | None = Field(None, description="Served model name; default: the InferenceService name.")
    api_key_secret_ref: SecretKeyRef | None = Field(None, description="Bearer token for the endpoint.")


class Endpoint(CamelModel):
    """An OpenAI-compatible endpoint (vLLM, KServe, any gateway)."""

    url: str = Field(
        description="Base URL, e.g. http://llm.models.svc:8000 (the /v1 or /openai/v1 prefix is detected).",
        min_length=1,
        max_length=2048,
        pattern=r"^https?://",
    )
    model: str | None = Field(None, description="Served model name; default: what /v1/models lists.")
    api_key_secret_ref: SecretKeyRef | None = Field(None, description="Bearer token for the endpoint.")


class VllmEngine(CamelModel):
    """Load the model inside the runner Job with lm-eval's in-process vLLM engine (GPU nodes)."""

    model_path: str = Field(
        description="Hugging Face id, or path of the weights (inside the PVC when pvc is set).",
        min_length=1,
        max_length=1024,
    )
    pvc: str | None = Field(None, description="PersistentVolumeClaim holding the weights, mounted read-only.")
    tensor_parallel_size: int = Field(1, ge=1, le=16, description="GPUs per model (nvidia.com/gpu requested).")
    quantization: str | None = Field(None, description="vLLM quantization method (awq, gptq, fp8, ...).")
    dtype: str = Field("auto", description="vLLM dtype.")
    gpu_memory_utilization: float = Field(0.9, gt=0, le=1, description="Fraction of GPU memory vLLM may use.")


class LlamaCppEngine(CamelModel):
    """Evaluate a GGUF file inside the runner Job with llama.cpp (CPU; quantgate's in-process engine)."""

    model_path: str = Field(description="Path of the .gguf file (inside the PVC when pvc is set).",
                            min_length=1, max_length=1024)
    pvc: str | None = Field(None, description="PersistentVolumeClaim holding the file, mounted read-only.")


_ONE_SOURCE = _cel(
    "[has(self.inferenceServiceRef), has(self.endpoint), has(self.vllm), has(self.llamaCpp)]"
    ".filter(x, x).size() == 1",
    "a model needs exactly one of inferenceServiceRef, endpoint, vllm, llamaCpp",
)
_TLS_RULES = [
    _cel("!(has(self.caBundle) && has(self.insecureSkipVerify) && self.insecureSkipVerify)",
         "give caBundle or insecureSkipVerify, not both"),
    _cel("(!has(self.vllm) && !has(self.llamaCpp)) || (!has(self.caBundle) && !has(self.insecureSkipVerify))",
         "caBundle and insecureSkipVerify apply to HTTPS endpoints, not to the in-Job vllm or llamaCpp engines"),
]


class ModelSource(CamelModel):
    """One model variant: exactly one of inferenceServiceRef, endpoint, vllm, llamaCpp."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [_ONE_SOURCE, *_TLS_RULES]})

    inference_service_ref: InferenceServiceRef | None = Field(
        None, description="A KServe InferenceService in this namespace (waits until it is Ready)."
    )
    endpoint: Endpoint | None = Field(None, description="An OpenAI-compatible endpoint URL.")
    vllm: VllmEngine | None = Field(None, description="Run the model inside the Job with vLLM (needs GPUs).")
    llama_cpp: LlamaCppEngine | None = Field(None, description="Evaluate a GGUF file inside the Job with llama.cpp.")
    size: str | None = Field(None, description="Model size shown in reports, e.g. 4.6Gi.", max_length=32)
    ca_bundle: ConfigMapKeyRef | None = Field(
        None, description="PEM CA certificates an https endpoint's certificate must chain to (private CA); "
        "trusted by the operator's preflight and the runner. Default: the chart's caBundle, else the system CAs.",
    )
    insecure_skip_verify: bool | None = Field(
        None, description="Do not verify the endpoint's TLS certificate. Insecure: anyone on the path can "
        "impersonate the model; logged as a warning on every run. Prefer caBundle.",
    )

    @model_validator(mode="after")
    def _exactly_one_source(self) -> "ModelSource":
        given = [n for n in ("inference_service_ref", "endpoint", "vllm", "llama_cpp") if getattr(self, n) is not None]
        if len(given) != 1:
            raise ValueError("a model needs exactly one of inferenceServiceRef, endpoint, vllm, llamaCpp")
        if self.ca_bundle is not None and self.insecure_skip_verify:
            raise ValueError("give caBundle or insecureSkipVerify, not both")
        if (self.vllm is not None or self.llama_cpp is not None) and (self.ca_bundle is not None or self.insecure_skip_verify is not None):
            raise ValueError("caBundle and insecureSkipVerify apply to HTTPS endpoints, not to the in-Job vllm or llamaCpp engines")
        return self

    def describe(self) -> str:
        """Short, secret-free name for printer columns and reports."""
        if self.inference_service_ref:
            return self.inference_service_ref.name
        if self.endpoint:
            return self.endpoint.model or self.endpoint.url
        if self.llama_cpp:
            return self.llama_cpp.model_path.rsplit("/", 1)[-1]
        assert self.vllm is not None
        return (self.vllm.model_path or self.vllm.pvc or "vllm").rsplit("/", 1)[-1]


_BASELINE_SOURCE = _cel(
    "has(self.resultsFrom) ? [has(self.inferenceServiceRef), has(self.endpoint), has(self.vllm), has(self.llamaCpp)]"
    ".filter(x, x).size() == 0 : [has(self.inferenceServiceRef), has(self.endpoint), has(self.vllm), "
    "has(self.llamaCpp)].filter(x, x).size() == 1",
    "a baseline needs exactly one of inferenceServiceRef, endpoint, vllm, llamaCpp, or resultsFrom alone",
)


class BaselineSource(ModelSource):
    """The reference (usually full-precision) model: one model source, or `resultsFrom` alone."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [_BASELINE_SOURCE, *_TLS_RULES]})

    results_from: str | None = Field(
        None,
        description="Reuse the baseline results of this Succeeded ModelEvaluation (same namespace) "
        "instead of running the baseline again.",
        max_length=253,
    )

    @model_validator(mode="after")
    def _exactly_one_source(self) -> "BaselineSource":
        given = [n for n in ("inference_service_ref", "endpoint", "vllm", "llama_cpp") if getattr(self, n) is not None]
        if self.results_from is not None and given:
            raise ValueError("baseline.resultsFrom reuses finished results: remove " + ", ".join(
                {"inference_service_ref": "inferenceServiceRef", "llama_cpp": "llamaCpp"}.get(n, n) for n in given))
        if self.results_from is None and len(given) != 1:
            raise ValueError("a baseline needs exactly one of inferenceServiceRef, endpoint, vllm, llamaCpp, "
                             "or resultsFrom alone")
        return self

    def describe(self) -> str:
        return f"resultsFrom:{self.results_from}" if self.results_from and not (
            self.inference_service_ref or self.endpoint or self.vllm) else super().describe()


class TaskSpec(CamelModel):
    """One lm-eval task with its settings."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                _cel("!(self.name.startsWith('tiny') && has(self.limit))",
                     "tinyBenchmarks tasks are already subsampled: remove limit"),
            ]
        }
    )

    name: str = Field(description="lm-eval task or group name, e.g. gsm8k, mmlu, tinyGSM8k.", min_length=1,
                      max_length=128)
    num_fewshot: int | None = Field(None, ge=0, le=64, description="Few-shot examples; default: the task's own.")
    limit: int | None = Field(None, ge=1, description="Evaluate only the first N documents (tests, smoke runs).")
    metric: str | None = Field(None, description="Primary metric override, e.g. 'acc,none'.", max_length=128)


class ResourceRequirements(CamelModel):
    """Runner container resources (Kubernetes quantities)."""

    requests: dict[str, int | str] | None = Field(None, description="e.g. {cpu: 1, memory: 2Gi}.")
    limits: dict[str, int | str] | None = Field(None, description="e.g. {memory: 4Gi}.")


class Toleration(CamelModel):
    """A Kubernetes toleration for the runner pod."""

    key: str | None = None
    operator: Literal["Exists", "Equal"] | None = None
    value: str | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    toleration_seconds: int | None = None


class DatasetsSource(CamelModel):
    """A prepared Hugging Face datasets cache (`quantgate datasets pull`), mounted read-only into
    the runner, which then runs with the Hub offline: exactly one of pvc, image."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [
        _cel("has(self.pvc) != has(self.image)", "datasets needs exactly one of pvc, image")]})

    pvc: str | None = Field(None, description="PersistentVolumeClaim holding the cache (mounted read-only).",
                            max_length=253)
    image: str | None = Field(
        None, description="OCI image holding the cache (Kubernetes image volume: 1.31+, feature gate "
        "ImageVolume before 1.33).", max_length=1024)
    sub_path: str | None = Field(None, description="Directory of the cache inside the volume; default: its root.",
                                 max_length=1024, pattern=r"^[^/].*$")

    @model_validator(mode="after")
    def _one(self) -> "DatasetsSource":
        if (self.pvc is None) == (self.image is None):
            raise ValueError("datasets needs exactly one of pvc, image")
        if self.sub_path and ".." in self.sub_path.split("/"):
            raise ValueError("datasets.subPath must stay inside the volume (no '..')")
        return self


class RunnerSpec(CamelModel):
    """How the runner Job runs."""

    image: str | None = Field(None, description="Runner image; default: the operator's runner image.")
    resources: ResourceRequirements | None = Field(None, description="Runner container resources.")
    node_selector: dict[str, str] | None = Field(None, description="Node labels the runner pod must match.")
    tolerations: list[Toleration] | None = Field(None, description="Tolerations of the runner pod.", max_length=32)
    concurrency: int = Field(32, ge=1, le=1024, description="Requests in flight per model endpoint.")
    timeout_seconds: int = Field(3600, ge=30, le=7 * 86400, description="Job activeDeadlineSeconds.")
    backoff_limit: int = Field(1, ge=0, le=10, description="Job retries before the evaluation fails "
                               "(with parallelism > 1: retries of each index).")
    parallelism: int = Field(1, ge=1, le=64, description="Shards of the evaluation, run as the indexes of an "
                             "Indexed Job (each evaluates its share of the documents, split by expected cost); "
                             "the operator merges their results, equal to an unsharded run's, before deciding. "
                             "An index that fails for good fails the evaluation.")
    queue_name: str | None = Field(None, description="Kueue LocalQueue for the runner Job (label "
                                   "kueue.x-k8s.io/queue-name; the Job is created suspended and Kueue admits it); "
                                   "default: the operator's --kueue-queue setting, if any.",
                                   min_length=1, max_length=63, pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


class ProgressiveSpec(CamelModel):
    """Evaluate in stages and stop once the full-suite verdict is settled (docs/decision.md,
    "Progressive evaluation"). Each stage is one runner Job evaluating both models on a share of
    the suite's documents, split equally between the tasks, each a prefix of a seeded order."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                _cel("self.stages.all(s, s > 0.0 && s <= 1.0)", "progressive.stages must lie in (0, 1]"),
                _cel("self.stages.isSorted() && self.stages.all(s, size(self.stages.filter(x, x == s)) == 1)",
                     "progressive.stages must be strictly increasing"),
                _cel("self.stages[size(self.stages) - 1] == 1.0", "progressive.stages must end at 1"),
            ]
        }
    )

    stages: list[float] = Field(
        default_factory=lambda: list(DEFAULT_STAGES), min_length=1, max_length=10,
        description="Strictly increasing shares of the suite's documents, ending at 1; each stage splits its "
        "share equally between the tasks (a task smaller than its part runs in full) and evaluates a prefix "
        "of every (sub)task's seeded order.",
        json_schema_extra={"default": list(DEFAULT_STAGES)})
    confidence: float = Field(
        DEFAULT_CONFIDENCE, gt=0.5, lt=1,
        description="Probability that an early verdict equals the full suite's (Bonferroni over the looks).")

    @model_validator(mode="after")
    def _stages(self) -> "ProgressiveSpec":
        from quantgate.decision.progressive import check_stages

        check_stages(self.stages)
        return self


def _spec_rules() -> list[dict]:
    rules = [
        _cel("!(has(self.suite) && has(self.tasks)) || self.suite == 'local' || self.suite == 'local-full'",
             "give either suite or tasks, not both (only suites local and local-full combine with tasks: "
             "the listed tasks on those datasets)"),
        _cel("!(has(self.limit) && has(self.suite) && self.suite == 'tiny')",
             "the tiny suite is already subsampled: remove limit"),
    ]
    names_ok = _quoted(SUITE_TASKS + tuple(TINY_FOR.values()))
    tiny = "{" + ", ".join(f"'{k}': '{v}'" for k, v in TINY_FOR.items()) + "}"
    rules.append(
        _cel(
            "!has(self.taskLimits) || (has(self.tasks) ? self.taskLimits.all(k, self.tasks.exists(t, t.name == k)"
            f" || (k in {tiny} && self.tasks.exists(t, t.name == {tiny}[k]))) : self.taskLimits.all(k, "
            f"(has(self.suite) && self.suite == 'code') ? k in {_quoted(CODE_TASKS)} : k in {names_ok}))",
            "taskLimits may only name tasks the evaluation runs",
        )
    )
    for profile, task in PROFILE_TASK.items():
        names = [task] + ([TINY_FOR[task]] if task in TINY_FOR else [])
        listed = f"(has(self.tasks) && self.tasks.exists(t, t.name in {_quoted(names)}))"
        # every built-in suite runs gsm8k and mmlu (or their tiny versions); none runs humaneval
        in_suite = " || !has(self.tasks)" if task in SUITE_TASKS else ""
        if task in CODE_TASKS:
            in_suite = " || (has(self.suite) && self.suite == 'code' && !has(self.tasks))"
        rules.append(
            _cel(
                f"self.profile != '{profile}' || {listed}{in_suite}",
                f"profile {profile} limits {task}: list {' or '.join(names)} among the tasks"
                + (" (or use suite code)" if task in CODE_TASKS else ""),
            )
        )
    code = (f"((has(self.suite) && self.suite == 'code' && !has(self.tasks)) || "
            f"(has(self.tasks) && self.tasks.exists(t, t.name in {_quoted(CODE_TASKS)})))")
    rules.append(_cel(f"(has(self.allowCodeExecution) && self.allowCodeExecution) || !{code}",
                      "code tasks (suite code, humaneval, mbpp) run model-written code: set allowCodeExecution: "
                      "true to run them in the runner's sandbox"))
    rules.append(_cel(f"!has(self.tasks) || !self.tasks.exists(t, t.name in {_quoted(CODE_TASKS)}) || "
                      "(has(self.suite) && self.suite == 'local')",
                      "humaneval and mbpp run only on quantgate's own problems: use suite code, or suite local "
                      "with the tasks"))
    rules.append(_cel("!has(self.progressive) || (!has(self.limit) && (!has(self.tasks) || "
                      "self.tasks.all(t, !has(t.limit))))",
                      "a progressive evaluation runs stages of every task's documents: remove limit"))
    rules.append(_cel("!has(self.progressive) || self.runner.parallelism == 1",
                      "a progressive evaluation runs each stage as one runner pod: set runner.parallelism to 1"))
    rules.append(_cel("!has(self.progressive) || !has(self.baseline.resultsFrom)",
                      "a progressive evaluation runs its baseline stage by stage: remove baseline.resultsFrom"))
    return rules


# genKwargs: lm-eval generation settings as the runner's --gen-kwargs carries them (KEY=VALUE,...).
GenKey = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")]
GenValue = Annotated[str, StringConstraints(pattern=r"^[^,=]{1,64}$")] | StrictBool | StrictInt | StrictFloat


class ModelEvaluationSpec(CamelModel):
    """Evaluate a candidate (quantized) model against its baseline with lm-eval and decide
    whether it may be promoted (Ship, Monitor, ABTest or Block)."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": _spec_rules()})

    baseline: BaselineSource = Field(description="The reference model, usually full precision.")
    candidate: ModelSource = Field(description="The compressed/quantized model that wants promotion.")
    suite: Suite | None = Field(
        None, description="Named task suite (leaderboard, tiny, local, local-full, code); default leaderboard "
        "unless tasks are listed. With tasks, only local and local-full are allowed: they run the listed tasks on "
        "quantgate's own datasets (local-full: the leaderboard six at their official sizes, generated)."
    )
    tasks: list[TaskSpec] | None = Field(None, description="Explicit tasks instead of a suite.", min_length=1,
                                         max_length=64)
    limit: int | None = Field(
        None, ge=1, le=1000000,
        description="Evaluate only the first N documents of every suite task without its own limit "
        "(smoke tests; never for the tiny suite). Changes the numbers: compare like with like.",
    )
    gen_kwargs: dict[GenKey, GenValue] | None = Field(
        None, max_length=16,
        description="Generation settings sent with every generation request of both models (lm-eval's "
        "gen_kwargs; scalars only), e.g. {repeat_penalty: 1.0} for llama-cpp-python's server, whose default "
        "repeat_penalty 1.1 is not greedy decoding. Not with llamaCpp sources (that engine decodes greedily).",
        json_schema_extra={"additionalProperties": {"x-kubernetes-preserve-unknown-fields": True}},
    )
    profile: Profile = Field("general", description="Use-case profile adding task-specific drop limits.")
    task_limits: dict[str, float] | None = Field(
        None,
        description="Per-task drop limits in percent, e.g. {gsm8k: 2}; a drop >= its limit blocks.",
        max_length=16,
    )
    thresholds: Thresholds = Field(
        default_factory=Thresholds,
        description="General bounds on the average drop (percent): below ship → Ship, up to monitor → "
        "Monitor, up to abTest → ABTest, above → Block.",
        json_schema_extra={
            "default": Thresholds().dump(),
            "x-kubernetes-validations": [
                _cel("self.ship <= self.monitor && self.monitor <= self.abTest",
                     "thresholds must satisfy ship <= monitor <= abTest"),
            ],
        },
    )
    drop_mode: DropMode = Field("relative", description="relative: percent of the baseline; absolute: points.")
    aggregate: Aggregate = Field(
        "relativeDropOfMean", description="How the average drop is formed from the per-task scores."
    )
    datasets: DatasetsSource | None = Field(
        None, description="A prepared datasets cache for disconnected clusters; the runner runs with the Hub "
        "offline and fails at once, naming the task, if the cache lacks a dataset. Default: the chart's "
        "datasets, else download from the Hugging Face Hub.",
    )
    max_choice_kld: float | None = Field(
        None, ge=0, description="Also block when a multiple-choice task's mean choice KLD (baseline || candidate, "
        "nats) exceeds this. Fidelity limits only ever make a verdict stricter.")
    min_top1_agreement: float | None = Field(
        None, ge=0, le=1, description="Also block when a multiple-choice task's top-1 agreement (share of "
        "questions where both pick the same choice) is below this.")
    runner: RunnerSpec = Field(
        default_factory=RunnerSpec, description="Runner Job settings.",
        json_schema_extra={"default": RunnerSpec().dump()},
    )
    allow_code_execution: bool = Field(
        False,
        description="Let code tasks (suite code: humaneval, mbpp) execute the model's code to score it. Each "
        "sample runs in the runner's sandbox, in containers that get no ServiceAccount token (docs/security.md). "
        "Required for code tasks; nothing else executes model output.",
    )
    rerun: str | None = Field(
        None, max_length=63,
        description="Any value; changing it evaluates again (a new generation) with nothing else changed, "
        "e.g. after the serving stack changed under the same InferenceService. Baseline results cached "
        "under another value are not reused.",
    )

    progressive: ProgressiveSpec | None = Field(
        None, description="Evaluate in stages and stop early once the full-suite verdict is settled at the given "
        "confidence (off by default). Each stage is one runner Job; status.progressive shows where it stands.")

    @model_validator(mode="after")
    def _suite_or_tasks(self) -> "ModelEvaluationSpec":
        if self.suite not in (None, "local", "local-full") and self.tasks:
            raise ValueError("give either suite or tasks, not both (only suites local and local-full combine "
                             "with tasks)")
        if self.runs_code and not self.allow_code_execution:
            raise ValueError("code tasks (suite code, humaneval, mbpp) run model-written code: set "
                             "allowCodeExecution: true to run them in the runner's sandbox")
        if self.tasks and self.runs_code and self.suite != "local":
            raise ValueError("humaneval and mbpp run only on quantgate's own problems: use suite code, or suite "
                             "local with the tasks")
        if self.gen_kwargs and (self.baseline.llama_cpp is not None or self.candidate.llama_cpp is not None):
            raise ValueError("genKwargs: the in-process llama.cpp engine decodes greedily and takes no generation "
                             "settings; remove genKwargs or serve the GGUF models through an endpoint")
        if self.progressive is not None:
            if self.limit is not None or any(t.limit is not None for t in self.tasks or []):
                raise ValueError("a progressive evaluation runs stages of every task's documents: remove limit")
            if self.runner.parallelism != 1:
                raise ValueError("a progressive evaluation runs each stage as one runner pod: set "
                                 "runner.parallelism to 1")
            if self.baseline.results_from is not None:
                raise ValueError("a progressive evaluation runs its baseline stage by stage: remove "
                                 "baseline.resultsFrom")
        return self

    @property
    def runs_code(self) -> bool:
        """Whether the evaluation runs a code task (which executes model output)."""
        if self.tasks:
            return any(t.name in CODE_TASKS for t in self.tasks)
        return self.suite == "code"

    @property
    def effective_suite(self) -> str | None:
        """The named suite to run; None when explicit tasks are listed."""
        return None if self.tasks else (self.suite or "leaderboard")

    @property
    def local_data(self) -> bool:
        """Explicit tasks on quantgate's own datasets (suite local or local-full + tasks)."""
        return bool(self.tasks) and self.suite in ("local", "local-full")


class Phase(str, Enum):
    """Where the evaluation of the current generation stands."""

    PENDING = "Pending"
    WAITING_FOR_ENDPOINTS = "WaitingForEndpoints"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


class Condition(CamelModel):
    """Evaluated: results for the current generation exist. Promotable: the verdict is Ship or Monitor.
    EndpointsReady: the models answer (False while the evaluation waits for them; its
    lastTransitionTime starts the endpoint timeout)."""

    type: Literal["Evaluated", "Promotable", "EndpointsReady"]
    status: Literal["True", "False", "Unknown"]
    reason: str = Field(description="CamelCase reason.")
    message: str = ""
    last_transition_time: str | None = Field(None, description="RFC 3339 time the status last changed.")
    observed_generation: int | None = None


class Models(CamelModel):
    """Short, secret-free names of the evaluated models (printer columns)."""

    baseline: str | None = None
    candidate: str | None = None


class BaselineCacheEntry(CamelModel):
    """A baseline cache entry the operator wrote from verified results; later evaluations reuse it
    only when this status lists its name, UID and SHA-256."""

    role: Literal["baseline"] = "baseline"
    name: str
    uid: str | None = None
    sha256: str


class ResultsRef(CamelModel):
    """ConfigMaps (this namespace) holding each role's compact lm-eval results."""

    baseline: str | None = None
    candidate: str | None = None
    baseline_reused: bool | None = Field(None, description="The baseline results came from an earlier run.")
    baseline_entry: BaselineCacheEntry | None = Field(
        None, description="The reused baseline (name, UID, SHA-256) as the status of the evaluation that made it "
        "vouched for it when this evaluation chose it: it stays verifiable when that evaluation moves on.")


class ResultsObject(CamelModel):
    """One ConfigMap of a results payload."""

    name: str
    uid: str | None = None


class StagePiece(CamelModel):
    """The documents one progressive stage added for one role (a stage run, or the baseline cache
    entry that stood in for it): merged with the earlier stages' into the results decided on."""

    stage: int = Field(ge=1)
    name: str = Field(description="Head ConfigMap of the stage run.")
    uid: str | None = None
    sha256: str = Field(description="SHA-256 of its stored (gzip) payload.")
    reused: bool | None = Field(None, description="A baseline cache entry, not this evaluation's Job.")


class ResultsEvidence(CamelModel):
    """One role's results as the operator verified them before deciding."""

    role: Literal["baseline", "candidate"]
    name: str = Field(description="Head results ConfigMap.")
    uid: str | None = Field(None, description="Its UID.")
    sha256: str = Field(description="SHA-256 of the stored (gzip) payload.")
    objects: list[ResultsObject] | None = Field(None, description="Every ConfigMap of the payload, head first.")
    reused: bool | None = Field(None, description="A reused baseline (cache entry or baseline.resultsFrom).")
    pieces: list[StagePiece] | None = Field(None, description="A progressive stage's results: the stage runs "
                                            "merged (stages 1..k, in order); sha256 is then the merged payload's.")
    pod: str | None = Field(None, description="The runner pod that created the results.")
    image: str | None = Field(None, description="Runner image as the pod spec named it.")
    image_id: str | None = Field(None, alias="imageID", description="Image ID the kubelet reported, where reported.")
    lm_eval_version: str | None = None
    quantgate_version: str | None = None


class Evidence(CamelModel):
    """What the verdict was derived from: `quantgate verify NAMESPACE/NAME` re-derives it."""

    job_name: str | None = None
    job_uid: str | None = Field(None, alias="jobUID", description="UID of the runner Job of observedGeneration.")
    results: list[ResultsEvidence] | None = None
    baseline_cache: BaselineCacheEntry | None = None


class StageTask(CamelModel):
    """One task at the last look of a progressive evaluation."""

    task: str
    items_evaluated: int = Field(description="Documents each model answered so far.")
    items_total: int = Field(description="Documents in the full task.")
    drop: float | None = Field(None, description="Estimated full-task drop.")
    drop_interval: tuple[float, float] | None = Field(None, description="Its full-task interval.")


class ProgressiveStatus(CamelModel):
    """Where a progressive evaluation (spec.progressive) stands: the stage running (or the last
    one run) and what the last completed stage's look found."""

    stage: int = Field(description="The stage running now, or the last one run once decided (1-based).")
    stages: list[float] = Field(description="The planned stages (shares of the suite's documents).")
    confidence: float | None = None
    items_evaluated: int | None = Field(None, description="Documents each model answered in the last completed "
                                        "stage (all tasks).")
    items_total: int | None = Field(None, description="Documents of the full suite.")
    stopped_early: bool | None = Field(None, description="Decided before the last stage (set with the verdict).")
    reason: str | None = Field(None, description="What the last look found: why it stopped, or why it goes on.")
    average_drop: float | None = Field(None, description="Estimated full-suite average drop at the last look.")
    average_drop_interval: tuple[float, float] | None = Field(None, description="Its full-suite interval.")
    tasks: list[StageTask] | None = Field(None, description="Documents used per task at the last look.")
    baseline_cache: list[BaselineCacheEntry] | None = Field(
        None, description="Baseline cache entries the operator wrote from this evaluation's verified stages "
        "(another progressive evaluation of the same baseline reuses a stage's entry only when its producer "
        "lists it here), and other evaluations' entries this one merged, as vouched for when it verified them.",
        max_length=10)


class ModelEvaluationStatus(CamelModel):
    """Observed state, written only by the operator. Verdict fields always belong to observedGeneration."""

    phase: Phase | None = None
    reason: str | None = Field(None, description="CamelCase reason for the phase, e.g. Queued, EndpointTimeout.")
    message: str | None = Field(None, description="Human-readable detail for the phase.")
    observed_generation: int | None = Field(None, description="The spec generation this status describes.")
    models: Models | None = None
    verdict: Verdict | None = Field(None, description="Ship, Monitor, ABTest or Block; absent unless Succeeded.")
    promotable: bool | None = Field(None, description="True only for Ship and Monitor.")
    profile: str | None = Field(None, description="The profile the verdict was decided under.")
    aggregate: Aggregate | None = Field(None, description="How the average drop was formed.")
    drop_mode: DropMode | None = Field(None, description="relative (percent of baseline) or absolute (points).")
    average_drop: float | None = Field(None, description="Average accuracy drop in percent.")
    decisive: bool | None = Field(None, description="The verdict holds across the drops' 95% intervals.")
    reasons: list[str] | None = Field(None, description="The rules and numbers that decided the verdict.")
    tasks: list[TaskComparison] | None = Field(None, description="Per-task scores, drops, limits and flips.")
    conditions: list[Condition] | None = Field(
        None, json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]}
    )
    job_name: str | None = Field(None, description="The runner Job of observedGeneration.")
    results_ref: ResultsRef | None = None
    evidence: Evidence | None = Field(None, description="Runner Job, images and results (names, UIDs, SHA-256) "
                                      "the verdict was derived from; present with a verdict.")
    progressive: ProgressiveStatus | None = Field(None, description="Stages of a progressive evaluation.")
    started_at: str | None = Field(None, description="When the evaluation of observedGeneration started.")
    finished_at: str | None = Field(None, description="When it reached Succeeded or Failed.")
