"""The runner Job of one ModelEvaluation generation (pure builder).

One pod, one container per role that still needs running (`baseline`, `candidate`):
endpoint-based roles run side by side (the two models are served elsewhere, so running
them concurrently halves wall time); with the in-Job vLLM engine the baseline runs as an
init container first, so both models never hold the GPU at once. Each container runs
`quantgate run ... --publish-configmap NS/NAME --role ROLE`, which publishes the results
ConfigMap owned by the evaluation. The API key reaches the container only through
`env.valueFrom.secretKeyRef`; it is never an argument. A code evaluation's pod is rearranged
so that the containers executing model code hold no ServiceAccount token (k8s/code_job.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from quantgate.api.v1alpha1 import ModelEvaluationSpec
from quantgate.k8s import ca_bundles, datasets_volume, names, stages
from quantgate.k8s.endpoints import Resolved
from quantgate.k8s.scaleout import scale_out
from quantgate.k8s.settings import Settings
from quantgate.lmeval.plan import run_plan

WORK = "/var/run/quantgate"
GPU = "nvidia.com/gpu"


@dataclass(frozen=True)
class Evaluation:
    """What the builder needs to know about the ModelEvaluation object."""

    namespace: str
    name: str
    uid: str
    generation: int
    spec: ModelEvaluationSpec
    stage: int | None = None  # a progressive evaluation's stage (1-based): its own Job

    @property
    def job_name(self) -> str:
        return names.job_name(self.name, self.generation, self.stage)

    @property
    def fraction(self) -> float | None:
        """The share of every task's documents this Job evaluates (progressive stages only)."""
        if self.stage is None or self.spec.progressive is None:
            return None
        return stages.bounds(self.spec.progressive.stages, self.stage)[1]

    @property
    def after(self) -> float | None:
        """The share the earlier stages evaluated: this stage's Job adds the documents after it."""
        if self.stage is None or self.spec.progressive is None:
            return None
        return stages.bounds(self.spec.progressive.stages, self.stage)[0]


def run_args(ev: Evaluation, role: str, model: Resolved, results: str, settings: Settings | None = None) -> list[str]:
    spec = ev.spec
    args = ["run"]
    if model.url is None:
        source = spec.baseline if role == "baseline" else spec.candidate
        engine = source.llama_cpp or source.vllm
        assert engine is not None
        path = f"{WORK}/weights/{engine.model_path.lstrip('/')}" if engine.pvc else engine.model_path
        if source.llama_cpp is not None:
            args += ["--engine", "llama-cpp", "--model-path", path]
        else:
            v = source.vllm
            args += ["--engine", "vllm", "--model-path", path, "--tensor-parallel-size", str(v.tensor_parallel_size),
                     "--dtype", v.dtype, "--gpu-memory-utilization", str(v.gpu_memory_utilization)]
            if v.quantization:
                args += ["--quantization", v.quantization]
    else:
        args += ["--endpoint", model.url]
        if model.model:
            args += ["--model", model.model]
        if model.secret is not None:
            args += ["--api-key-env", names.ENV_API_KEY]
        args += ["--concurrency", str(spec.runner.concurrency)]
        args += ca_bundles.runner_args(model, settings or Settings(), role)
    args += run_plan(spec).runner_args()
    if ev.fraction is not None:
        args += ["--fraction", repr(ev.fraction), "--after", repr(ev.after)]
    args += datasets_volume.runner_args(spec, settings or Settings())
    if spec.allow_code_execution and spec.runs_code:
        args += ["--allow-code-execution"]
    args += ["--output", f"{WORK}/{role}", "--publish-configmap", f"{ev.namespace}/{results}", "--role", role]
    return args


def _container(ev: Evaluation, role: str, model: Resolved, results: str, settings: Settings,
               baseline_key: str | None) -> dict:
    spec = ev.spec
    env = [
        {"name": names.ENV_OWNER_NAME, "value": ev.name},
        {"name": names.ENV_OWNER_UID, "value": ev.uid},
        {"name": names.ENV_JOB_NAME, "value": ev.job_name},
        {"name": names.ENV_JOB_UID,
         "valueFrom": {"fieldRef": {"fieldPath": f"metadata.labels['{names.JOB_UID_LABEL}']"}}},
        {"name": names.ENV_POD_NAME, "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": names.ENV_POD_UID, "valueFrom": {"fieldRef": {"fieldPath": "metadata.uid"}}},
        {"name": "HOME", "value": f"{WORK}/home"},
        {"name": "HF_HOME", "value": f"{WORK}/home/hf"},
    ]
    if role == "baseline" and baseline_key:
        env.append({"name": names.ENV_BASELINE_KEY, "value": baseline_key})
    if model.secret is not None:
        env.append({"name": names.ENV_API_KEY,
                    "valueFrom": {"secretKeyRef": {"name": model.secret.name, "key": model.secret.key}}})
    resources: dict = {"requests": {"cpu": settings.default_requests_cpu,
                                    "memory": settings.default_requests_memory}}
    if spec.runner.resources:
        r = spec.runner.resources.model_dump(exclude_none=True)
        resources = {k: {n: str(q) for n, q in v.items()} for k, v in r.items()}
    mounts = [{"name": "work", "mountPath": WORK}]
    source = spec.baseline if role == "baseline" else spec.candidate
    if model.url is None and source.llama_cpp is not None:  # in-Job llama.cpp engine: CPU only
        if source.llama_cpp.pvc:
            mounts.append({"name": f"weights-{role}", "mountPath": f"{WORK}/weights", "readOnly": True})
    elif model.url is None:  # in-Job vLLM engine: GPUs, integer, in limits (requests default to them)
        assert source.vllm is not None
        limits = dict(resources.get("limits") or {})
        limits[GPU] = str(source.vllm.tensor_parallel_size)
        resources["limits"] = limits
        if source.vllm.pvc:
            mounts.append({"name": f"weights-{role}", "mountPath": f"{WORK}/weights", "readOnly": True})
    ca = ca_bundles.volume(model, settings, role)
    if ca is not None:
        mounts.append(ca[1])
    cache = datasets_volume.mount(spec, settings)
    if cache is not None:
        mounts.append(cache)
    return {
        "name": role,
        "image": spec.runner.image or settings.runner_image,
        "imagePullPolicy": "IfNotPresent",
        "command": list(settings.runner_command),
        "args": run_args(ev, role, model, results, settings),
        "env": env,
        "resources": resources,
        "volumeMounts": mounts,
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }


def labels(ev: Evaluation, baseline_key: str | None, runs_baseline: bool) -> dict[str, str]:
    out = {
        names.MANAGED_BY: names.MANAGER,
        names.LABEL_EVALUATION: ev.name,
        names.LABEL_GENERATION: str(ev.generation),
        names.LABEL_RUNS_BASELINE: "true" if runs_baseline else "false",
    }
    if baseline_key:
        out[names.LABEL_BASELINE_KEY] = baseline_key
    if ev.stage is not None:
        out[names.LABEL_STAGE] = str(ev.stage)
    return out


def build_job(ev: Evaluation, baseline: Resolved | None, candidate: Resolved, settings: Settings,
              baseline_key: str | None = None) -> dict:
    """The Job for `ev`'s generation. `baseline=None`: its results are reused, run the candidate only."""
    name = ev.job_name
    lbl = labels(ev, baseline_key, baseline is not None)
    roles = ([("baseline", baseline)] if baseline is not None else []) + [("candidate", candidate)]
    containers = [_container(ev, role, model, names.results_name(name, role), settings, baseline_key)
                  for role, model in roles]
    init: list[dict] = []
    if baseline is not None and baseline.url is None and candidate.url is None and len(containers) == 2:
        init, containers = containers[:1], containers[1:]
    volumes: list[dict] = [{"name": "work", "emptyDir": {}}]
    for role, source in (("baseline", ev.spec.baseline), ("candidate", ev.spec.candidate)):
        pvc = (source.vllm or source.llama_cpp).pvc if (source.vllm or source.llama_cpp) else None
        if pvc and any(c["name"] == role for c in init + containers):
            volumes.append({"name": f"weights-{role}",
                            "persistentVolumeClaim": {"claimName": pvc, "readOnly": True}})
    for role, model in roles:
        ca = ca_bundles.volume(model, settings, role)
        if ca is not None:
            volumes.append(ca[0])
    cache = datasets_volume.volume(ev.spec, settings)
    if cache is not None:
        volumes.append(cache)
    pod: dict = {
        "restartPolicy": "Never",
        "serviceAccountName": settings.runner_service_account,
        "enableServiceLinks": False,
        "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": containers,
        "volumes": volumes,
    }
    if init:
        pod["initContainers"] = init
    if ev.spec.runner.node_selector:
        pod["nodeSelector"] = dict(ev.spec.runner.node_selector)
    if ev.spec.runner.tolerations:
        pod["tolerations"] = [t.dump() for t in ev.spec.runner.tolerations]
    job = scale_out({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": ev.namespace,
            "labels": lbl,
            "ownerReferences": [names.owner_reference(ev.name, ev.uid)],
        },
        "spec": {
            "backoffLimit": ev.spec.runner.backoff_limit,
            "activeDeadlineSeconds": ev.spec.runner.timeout_seconds,
            "template": {"metadata": {"labels": lbl}, "spec": pod},
        },
    }, ev.spec, settings)  # parallelism (Indexed Job) and Kueue: quantgate.k8s.scaleout
    if ev.spec.runs_code:  # its evaluating containers run model code: no token for them
        from quantgate.k8s.code_job import isolate_code_execution

        isolate_code_execution(job, WORK, names.ENV_API_KEY)
    return job
