"""The runner Job builder: names, owner, labels, security context, secrets, GPUs."""

import json

from quantgate.api.v1alpha1 import ModelEvaluationSpec, SecretKeyRef
from quantgate.k8s import names
from quantgate.k8s.endpoints import Resolved
from quantgate.k8s.job import Evaluation, build_job
from quantgate.k8s.settings import Settings

SETTINGS = Settings(runner_image="img:1", runner_service_account="runner-sa")


def _ev(spec: dict, generation=3) -> Evaluation:
    return Evaluation("models", "llama-int4", "uid-123", generation, ModelEvaluationSpec.model_validate(spec))


ENDPOINT_SPEC = {
    "baseline": {"endpoint": {"url": "http://base:8000", "model": "fp16",
                              "apiKeySecretRef": {"name": "llm-key", "key": "token"}}},
    "candidate": {"endpoint": {"url": "http://cand:8000", "model": "int4"}},
    "tasks": [{"name": "gsm8k", "limit": 20, "numFewshot": 5}, {"name": "hellaswag"}],
    "profile": "math-tutoring",
}
BASE = Resolved("http://base:8000", "fp16", SecretKeyRef(name="llm-key", key="token"), "endpoint:http://base:8000")
CAND = Resolved("http://cand:8000", "int4", None, "endpoint:http://cand:8000")


def test_job_identity_owner_and_labels():
    job = build_job(_ev(ENDPOINT_SPEC), BASE, CAND, SETTINGS, baseline_key="k1")
    meta = job["metadata"]
    assert meta["name"] == names.job_name("llama-int4", 3)
    assert meta["ownerReferences"] == [names.owner_reference("llama-int4", "uid-123")]
    assert meta["labels"][names.LABEL_EVALUATION] == "llama-int4"
    assert meta["labels"][names.LABEL_GENERATION] == "3"
    assert meta["labels"][names.LABEL_BASELINE_KEY] == "k1"
    assert job["spec"]["template"]["metadata"]["labels"] == meta["labels"]
    assert job["spec"]["backoffLimit"] == 1 and job["spec"]["activeDeadlineSeconds"] == 3600


def test_restricted_security_context_and_service_account():
    pod = build_job(_ev(ENDPOINT_SPEC), BASE, CAND, SETTINGS)["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "runner-sa" and pod["restartPolicy"] == "Never"
    assert pod["securityContext"] == {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
    for c in pod["containers"]:
        sc = c["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False and sc["capabilities"] == {"drop": ["ALL"]}
        assert sc["runAsNonRoot"] is True and sc["readOnlyRootFilesystem"] is True


def test_two_roles_publish_their_configmaps_and_key_comes_from_secret_only():
    job = build_job(_ev(ENDPOINT_SPEC), BASE, CAND, SETTINGS)
    containers = {c["name"]: c for c in job["spec"]["template"]["spec"]["containers"]}
    assert set(containers) == {"baseline", "candidate"}
    base = containers["baseline"]
    args = base["args"]
    assert args[0] == "run" and base["command"] == ["quantgate"] and base["image"] == "img:1"
    assert args[args.index("--publish-configmap") + 1] == f"models/{job['metadata']['name']}-baseline"
    assert args[args.index("--role") + 1] == "baseline"
    assert args[args.index("--tasks") + 1] == "gsm8k:5@20,hellaswag"
    env = {e["name"]: e for e in base["env"]}
    assert env[names.ENV_API_KEY]["valueFrom"] == {"secretKeyRef": {"name": "llm-key", "key": "token"}}
    assert env[names.ENV_OWNER_UID]["value"] == "uid-123"
    assert names.ENV_API_KEY not in {e["name"] for e in containers["candidate"]["env"]}
    assert "nvidia.com/gpu" not in json.dumps(job)


def test_reused_baseline_runs_candidate_only():
    job = build_job(_ev(ENDPOINT_SPEC), None, CAND, SETTINGS)
    pod = job["spec"]["template"]["spec"]
    assert [c["name"] for c in pod["containers"]] == ["candidate"]
    assert job["metadata"]["labels"][names.LABEL_RUNS_BASELINE] == "false"


def test_vllm_engine_requests_gpus_and_runs_baseline_first():
    spec = {
        "baseline": {"vllm": {"modelPath": "llama-8b", "pvc": "weights", "tensorParallelSize": 2}},
        "candidate": {"vllm": {"modelPath": "llama-8b-int4", "pvc": "weights", "tensorParallelSize": 2,
                               "quantization": "gptq"}},
        "suite": "tiny",
    }
    base = Resolved(None, "llama-8b", None, "vllm:a")
    cand = Resolved(None, "llama-8b-int4", None, "vllm:b")
    pod = build_job(_ev(spec), base, cand, SETTINGS)["spec"]["template"]["spec"]
    assert [c["name"] for c in pod["initContainers"]] == ["baseline"]
    assert [c["name"] for c in pod["containers"]] == ["candidate"]
    for c in pod["initContainers"] + pod["containers"]:
        assert c["resources"]["limits"]["nvidia.com/gpu"] == "2"
        assert "--engine" in c["args"] and "--endpoint" not in c["args"]
    cand_args = pod["containers"][0]["args"]
    assert cand_args[cand_args.index("--quantization") + 1] == "gptq"
    assert any(v.get("persistentVolumeClaim", {}).get("claimName") == "weights" for v in pod["volumes"])


def test_runner_overrides():
    spec = dict(ENDPOINT_SPEC, runner={"image": "mine:2", "resources": {"requests": {"cpu": 2, "memory": "1Gi"}},
                                       "nodeSelector": {"pool": "eval"},
                                       "tolerations": [{"key": "eval", "operator": "Exists"}],
                                       "timeoutSeconds": 600, "backoffLimit": 0, "concurrency": 8})
    job = build_job(_ev(spec), BASE, CAND, SETTINGS)
    pod = job["spec"]["template"]["spec"]
    c = pod["containers"][0]
    assert c["image"] == "mine:2" and c["resources"] == {"requests": {"cpu": "2", "memory": "1Gi"}}
    assert pod["nodeSelector"] == {"pool": "eval"} and pod["tolerations"] == [{"key": "eval", "operator": "Exists"}]
    assert job["spec"]["activeDeadlineSeconds"] == 600 and job["spec"]["backoffLimit"] == 0
    assert c["args"][c["args"].index("--concurrency") + 1] == "8"


def test_local_suite_with_tasks_runs_them_on_local_data():
    spec = dict(ENDPOINT_SPEC, suite="local")
    job = build_job(_ev(spec), BASE, CAND, SETTINGS)
    args = job["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--local-data" in args and "--suite" not in args
    assert "--local-data" not in build_job(_ev(ENDPOINT_SPEC), BASE, CAND, SETTINGS)["spec"]["template"]["spec"][
        "containers"][0]["args"]


def test_local_full_suite_with_tasks_runs_them_on_the_full_size_data():
    spec = dict(ENDPOINT_SPEC, suite="local-full")
    args = build_job(_ev(spec), BASE, CAND, SETTINGS)["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--local-data") + 1] == "local-full" and "--suite" not in args
    plain = build_job(_ev({k: v for k, v in spec.items() if k != "tasks"}), BASE, CAND, SETTINGS)
    args = plain["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--suite") + 1] == "local-full" and "--local-data" not in args


def test_runner_learns_its_job_and_pod_from_the_downward_api():
    from quantgate.api.v1alpha1 import ModelEvaluationSpec
    from quantgate.k8s.endpoints import Resolved
    from quantgate.k8s.job import Evaluation, build_job
    from quantgate.k8s.settings import Settings

    spec = ModelEvaluationSpec.model_validate({"baseline": {"endpoint": {"url": "http://b"}},
                                              "candidate": {"endpoint": {"url": "http://c"}}})
    job = build_job(Evaluation("ns", "ev", "uid-1", 3, spec), Resolved("http://b", None, None, "b"),
                    Resolved("http://c", None, None, "c"), Settings())
    for c in job["spec"]["template"]["spec"]["containers"]:
        env = {e["name"]: e for e in c["env"]}
        assert env[names.ENV_JOB_NAME]["value"] == job["metadata"]["name"]
        assert env[names.ENV_JOB_UID]["valueFrom"]["fieldRef"]["fieldPath"] == \
            "metadata.labels['batch.kubernetes.io/controller-uid']"
        assert env[names.ENV_POD_NAME]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
        assert env[names.ENV_POD_UID]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.uid"


def test_llama_cpp_engine_runs_on_cpu_one_model_after_the_other():
    from quantgate.k8s.endpoints import resolve
    from quantgate.api.v1alpha1 import ModelSource

    spec = {
        "baseline": {"llamaCpp": {"modelPath": "smollm2/Q4_1.gguf", "pvc": "gguf"}},
        "candidate": {"llamaCpp": {"modelPath": "/models/Q2_K.gguf"}},
        "suite": "local", "tasks": [{"name": "arc_challenge", "limit": 40}],
    }
    base = resolve(ModelSource.model_validate(spec["baseline"]), lambda name: None)
    cand = resolve(ModelSource.model_validate(spec["candidate"]), lambda name: None)
    assert base.url is None and base.identity == "llama-cpp:gguf:smollm2/Q4_1.gguf"
    pod = build_job(_ev(spec), base, cand, SETTINGS)["spec"]["template"]["spec"]
    assert [c["name"] for c in pod["initContainers"]] == ["baseline"]
    base_args, cand_args = pod["initContainers"][0]["args"], pod["containers"][0]["args"]
    assert base_args[base_args.index("--engine") + 1] == "llama-cpp"
    assert base_args[base_args.index("--model-path") + 1] == "/var/run/quantgate/weights/smollm2/Q4_1.gguf"
    assert cand_args[cand_args.index("--model-path") + 1] == "/models/Q2_K.gguf"
    for c in pod["initContainers"] + pod["containers"]:
        assert "nvidia.com/gpu" not in (c["resources"].get("limits") or {}) and "--endpoint" not in c["args"]
    assert [v["persistentVolumeClaim"]["claimName"] for v in pod["volumes"] if "persistentVolumeClaim" in v] == ["gguf"]
    assert any(m["mountPath"] == "/var/run/quantgate/weights" for m in pod["initContainers"][0]["volumeMounts"])
