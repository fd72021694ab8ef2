"""The operator's whole path on the real control plane, with simulated models.

One operator process (`quantgate operator`) and one simulated fleet serve the module. Every
evaluation runs the `local` suite with a small limit, so each takes seconds.
"""

import base64
import gzip
import json

import pytest
import yaml

from operator_harness import (OperatorProcess, operator_kubeconfig, evaluation, get, install_crds, install_runner_rbac, isvc, serve_fleet,
                              set_isvc_status, wait_phase)
from quantgate.dev.harness import impersonate, wait_for

API_KEY = "sk-quantgate-test-9f3c1e77d2"
ACC = {"arc_challenge": 0.7, "hellaswag": 0.8, "mmlu": 0.7, "truthfulqa_mc2": 0.7, "winogrande": 0.75,
       "gsm8k": 0.7}
FLEET = {"seed": 11, "reference": "fp16", "variants": [
    {"name": "fp16", "model": "m-fp16", "accuracy": ACC},
    {"name": "same", "model": "m-same", "accuracy": ACC},
    {"name": "int4", "model": "m-int4", "accuracy": {**ACC, "gsm8k": 0.35}, "flipRate": {"default": 0.1}},
    {"name": "broken", "model": "m-broken", "accuracy": ACC, "errorRate": 1.0},
    {"name": "keyed", "model": "m-keyed", "accuracy": ACC, "apiKey": API_KEY},
]}
LIMIT = 8
ENDPOINT_TIMEOUT = 8
# most tests need any complete run, not six tasks: gsm8k alone on the local data takes ~2 s
QUICK = {"suite": "local", "tasks": [{"name": "gsm8k", "limit": LIMIT}]}


def ref(name, **extra):
    return {"inferenceServiceRef": {"name": name, "model": f"m-{name}", **extra}}


@pytest.fixture(scope="module")
def env(cluster, tmp_path_factory):
    from quantgate.simulate.fleet import SimulatedFleet

    install_crds(cluster)
    from quantgate.dev.harness import create_namespace

    ns = create_namespace(cluster, "op")
    install_runner_rbac(cluster, ns)
    with SimulatedFleet(FLEET) as fleet:
        serve_fleet(cluster, ns, fleet)
        workdir = tmp_path_factory.mktemp("operator")
        # the operator runs as its ServiceAccount: manifests/rbac/operator.yaml is what it gets
        op = OperatorProcess(cluster, workdir / "operator.log", "--poll-interval", "1", "--endpoint-timeout",
                             str(ENDPOINT_TIMEOUT), kubeconfig=operator_kubeconfig(cluster, workdir))
        op.start()
        try:
            yield cluster, ns, fleet, op
        finally:
            op.stop()
            cluster.kubectl("delete", "namespace", ns, "--wait=false", check=False)


def _apply(cluster, ns, obj):
    cluster.kubectl("apply", "-n", ns, "-f", "-", input=yaml.safe_dump(obj))


def _jobs(cluster, ns, evaluation_name):
    out = cluster.kubectl("get", "jobs", "-n", ns, "-l", f"quantgate.io/evaluation={evaluation_name}",
                          "-o", "json").stdout
    return json.loads(out)["items"]


def _events(cluster, ns, name):
    out = json.loads(cluster.kubectl("get", "events.events.k8s.io", "-n", ns, "-o", "json").stdout)["items"]
    return [e for e in out if (e.get("regarding") or {}).get("name") == name]


def _cond(obj, kind):
    return next(c for c in obj["status"]["conditions"] if c["type"] == kind)


def test_ship_whole_path(env):
    cluster, ns, _fleet, op = env
    _apply(cluster, ns, evaluation("ship", ref("fp16"), ref("same"), suite="local", limit=LIMIT))
    obj = wait_phase(cluster, "ship", ns, ("Succeeded", "Failed"))
    st = obj["status"]
    assert st["phase"] == "Succeeded", st.get("message")
    assert st["verdict"] == "Ship" and st["promotable"] is True and st["averageDrop"] == 0
    assert {t["task"] for t in st["tasks"]} >= {"gsm8k", "mmlu", "hellaswag"}
    assert _cond(obj, "Evaluated")["status"] == "True" and _cond(obj, "Promotable")["status"] == "True"
    assert st["models"] == {"baseline": "fp16", "candidate": "same"}

    [job] = _jobs(cluster, ns, "ship")
    assert job["metadata"]["name"] == st["jobName"]
    assert job["metadata"]["ownerReferences"][0]["uid"] == obj["metadata"]["uid"]
    pod = job["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "quantgate-runner"
    assert all(c["securityContext"]["capabilities"] == {"drop": ["ALL"]} for c in pod["containers"])
    for role in ("baseline", "candidate"):
        cm = get(cluster, "configmap", st["resultsRef"][role], ns)
        # owned by the Job (which the evaluation owns): it goes with the Job, and proves which Job made it
        assert cm["metadata"]["ownerReferences"][0]["uid"] == job["metadata"]["uid"]
        assert {r["role"]: r for r in st["evidence"]["results"]}[role]["uid"] == cm["metadata"]["uid"]
    assert any(e["reason"] == "Verdict" and e["type"] == "Normal" for e in _events(cluster, ns, "ship"))
    metrics = op.metrics()
    assert f'quantgate_evaluation_verdict{{evaluation="ship",namespace="{ns}",verdict="Ship"}} 1.0' in metrics
    assert f'quantgate_evaluation_score{{evaluation="ship",namespace="{ns}",role="baseline",task="gsm8k"}}' in metrics


def test_block_under_math_tutoring_reuses_the_baseline(env):
    cluster, ns, _fleet, op = env
    _apply(cluster, ns, evaluation("block", ref("fp16"), ref("int4"), suite="local", limit=LIMIT,
                                   profile="math-tutoring"))
    obj = wait_phase(cluster, "block", ns, ("Succeeded", "Failed"))
    st = obj["status"]
    assert st["phase"] == "Succeeded", st.get("message")
    assert st["verdict"] == "Block" and st["promotable"] is False
    assert any("gsm8k" in r and "math-tutoring" in r for r in st["reasons"])
    gsm8k = next(t for t in st["tasks"] if t["task"] == "gsm8k")
    assert gsm8k["drop"] >= 2 and gsm8k["passed"] is False and "flips" in gsm8k
    assert _cond(obj, "Promotable")["status"] == "False" and _cond(obj, "Promotable")["reason"] == "Block"
    # the fp16 baseline ran for `ship` already: same endpoint, suite, limit → reused, not rerun
    assert st["resultsRef"]["baselineReused"] is True
    [job] = _jobs(cluster, ns, "block")
    assert [c["name"] for c in job["spec"]["template"]["spec"]["containers"]] == ["candidate"]
    assert any(e["reason"] == "Blocked" and e["type"] == "Warning" for e in _events(cluster, ns, "block"))
    assert 'quantgate_evaluations_total{verdict="Block"}' in op.metrics()


def test_spec_edit_supersedes_the_job_and_clears_the_verdict(env):
    cluster, ns, _fleet, _op = env
    _apply(cluster, ns, evaluation("edit", ref("fp16"), ref("same"), **QUICK, runner={"concurrency": 4}))
    first = wait_phase(cluster, "edit", ns, ("Succeeded",))
    assert first["status"]["verdict"] == "Ship"
    job1 = first["status"]["jobName"]
    cluster.kubectl("patch", "meval", "edit", "-n", ns, "--type=merge",
                    "-p", json.dumps({"spec": {"candidate": ref("int4"), "profile": "math-tutoring"}}))

    def observed_gen2():
        obj = get(cluster, "meval", "edit", ns)
        return obj if obj["status"].get("observedGeneration") == 2 else None

    obj = wait_for(observed_gen2, timeout=30, what="observedGeneration 2")
    if obj["status"]["phase"] != "Succeeded":  # never the old Ship next to the new generation
        assert "verdict" not in obj["status"] and obj["status"]["promotable"] is False
        assert _cond(obj, "Promotable")["status"] == "False"
    final = wait_phase(cluster, "edit", ns, ("Succeeded", "Failed"))
    assert final["status"]["verdict"] == "Block" and final["status"]["observedGeneration"] == 2
    jobs = _jobs(cluster, ns, "edit")
    wait_for(lambda: [j["metadata"]["name"] for j in _jobs(cluster, ns, "edit")] == [final["status"]["jobName"]],
             timeout=30, what="old Job deleted")
    assert final["status"]["jobName"] != job1 and len(jobs) >= 1


def test_superseded_running_job_is_deleted(env):
    cluster, ns, _fleet, _op = env
    _apply(cluster, ns, evaluation("rerun", ref("fp16"), ref("same"), suite="local", limit=LIMIT + 1))
    wait_for(lambda: _jobs(cluster, ns, "rerun"), timeout=30, what="first Job")
    cluster.kubectl("patch", "meval", "rerun", "-n", ns, "--type=merge", "-p", json.dumps({"spec": {
        "limit": None, "tasks": QUICK["tasks"]}}))
    final = wait_phase(cluster, "rerun", ns, ("Succeeded", "Failed"))
    assert final["status"]["phase"] == "Succeeded" and final["status"]["observedGeneration"] == 2
    wait_for(lambda: [j["metadata"]["labels"]["quantgate.io/generation"] for j in _jobs(cluster, ns, "rerun")]
             == ["2"], timeout=30, what="only the generation-2 Job left")


def test_endpoint_never_ready_fails_after_the_timeout(env):
    cluster, ns, _fleet, _op = env
    cluster.apply(isvc("cold"), ns)
    set_isvc_status(cluster, ns, "cold", None, False)
    _apply(cluster, ns, evaluation("cold", ref("fp16"), ref("cold"), **QUICK))
    waiting = wait_phase(cluster, "cold", ns, ("WaitingForEndpoints",), timeout=30)
    assert "cold" in waiting["status"]["message"]
    obj = wait_phase(cluster, "cold", ns, ("Failed",), timeout=ENDPOINT_TIMEOUT + 30)
    st = obj["status"]
    assert st["reason"] == "EndpointTimeout" and st["promotable"] is False and "verdict" not in st
    assert _cond(obj, "Promotable")["status"] == "False"
    assert _jobs(cluster, ns, "cold") == []


def test_model_server_500s_fail_closed(env):
    cluster, ns, _fleet, op = env
    _apply(cluster, ns, evaluation("broken", ref("fp16"), ref("broken"), **QUICK, runner={"backoffLimit": 0}))
    obj = wait_phase(cluster, "broken", ns, ("Succeeded", "Failed"), timeout=180)
    st = obj["status"]
    assert st["phase"] == "Failed" and st["reason"] == "JobFailed", st
    assert "verdict" not in st and st["promotable"] is False
    assert 'quantgate_evaluation_failures_total{reason="JobFailed"}' in op.metrics()


def test_api_key_never_leaks(env):
    cluster, ns, _fleet, op = env
    cluster.kubectl("create", "secret", "generic", "llm-key", "-n", ns, f"--from-literal=api-key={API_KEY}")
    keyed = ref("keyed", apiKeySecretRef={"name": "llm-key"})
    _apply(cluster, ns, evaluation("keyed", keyed, keyed, **QUICK))
    obj = wait_phase(cluster, "keyed", ns, ("Succeeded", "Failed"))
    assert obj["status"]["phase"] == "Succeeded", obj["status"].get("message")
    texts = [json.dumps(obj)]
    for cm in json.loads(cluster.kubectl("get", "configmaps", "-n", ns, "-o", "json").stdout)["items"]:
        texts.append(json.dumps(cm))
        for value in (cm.get("binaryData") or {}).values():
            raw = base64.b64decode(value)
            try:
                raw = gzip.decompress(raw)
            except OSError:
                pass
            texts.append(raw.decode(errors="replace"))
    texts.append(cluster.kubectl("get", "events", "-n", ns, "-o", "json").stdout)
    texts.append(cluster.kubectl("get", "jobs", "-n", ns, "-o", "json").stdout)
    texts.append(op.log())
    for role in ("baseline", "candidate"):
        logs = cluster.kubectl("logs", f"job/{obj['status']['jobName']}", "-c", role, "-n", ns, check=False)
        texts.append(logs.stdout + logs.stderr)
    assert not [t for t in texts if API_KEY in t]


def test_runner_service_account_is_least_privilege(env):
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    cluster, ns, _fleet, _op = env
    api = impersonate(cluster, ns, "quantgate-runner", create=False)
    core = client.CoreV1Api(api)
    for call in (lambda: core.list_namespaced_config_map(ns), lambda: core.read_namespaced_config_map(
            "kube-root-ca.crt", ns), lambda: core.list_namespaced_secret(ns),
            lambda: core.read_namespaced_secret("llm-key", ns),
            lambda: core.delete_namespaced_config_map("kube-root-ca.crt", ns)):
        with pytest.raises(ApiException) as err:
            call()
        assert err.value.status == 403
    core.create_namespaced_config_map(ns, {"metadata": {"name": "runner-may-create"}, "data": {"a": "b"}})


def test_deletion_cleans_up(env):
    cluster, ns, _fleet, op = env
    obj = get(cluster, "meval", "ship", ns)
    owned = [obj["status"]["jobName"], obj["status"]["resultsRef"]["candidate"]]
    cluster.kubectl("delete", "meval", "ship", "-n", ns)
    wait_for(lambda: cluster.kubectl("get", "job", owned[0], "-n", ns, check=False).returncode != 0
             and cluster.kubectl("get", "configmap", owned[1], "-n", ns, check=False).returncode != 0,
             timeout=60, what="Job and results ConfigMap garbage-collected")
    wait_for(lambda: 'evaluation="ship"' not in op.metrics(), timeout=30, what="series of `ship` removed")
