"""spec.runner.parallelism on the real control plane: an Indexed Job of shards, merged by the
operator into the verdict an unsharded evaluation reaches; a failed index is retried (same
result), an index that fails for good fails the evaluation closed.
"""

import json

import pytest
import yaml

from operator_harness import (OperatorProcess, evaluation, install_crds, install_runner_rbac, operator_kubeconfig,
                              serve_fleet, wait_phase)
from quantgate.dev.harness import wait_for

ACC = {"arc_challenge": 0.7, "hellaswag": 0.8, "mmlu": 0.7, "truthfulqa_mc2": 0.6, "winogrande": 0.75, "gsm8k": 0.6}
FLEET = {"seed": 3, "reference": "fp16", "variants": [
    {"name": "fp16", "model": "m-fp16", "accuracy": ACC},
    {"name": "int4", "model": "m-int4", "accuracy": {**ACC, "gsm8k": 0.5}, "flipRate": {"default": 0.1}},
    # slow enough (one request in flight) that a shard's pod is still running when the test kills it
    {"name": "slow", "model": "m-slow", "accuracy": {**ACC, "gsm8k": 0.5}, "flipRate": {"default": 0.1},
     "latencyMs": 150},
]}
LIMIT = 6
SPEC = {"suite": "local", "limit": LIMIT, "profile": "math-tutoring"}
DECISION = ("verdict", "promotable", "averageDrop", "decisive", "reasons", "tasks")


def ref(name):
    return {"inferenceServiceRef": {"name": name, "model": f"m-{name}"}}


@pytest.fixture(scope="module")
def env(cluster, tmp_path_factory):
    from quantgate.dev.harness import create_namespace
    from quantgate.simulate.fleet import SimulatedFleet

    install_crds(cluster)
    ns = create_namespace(cluster, "shards")
    install_runner_rbac(cluster, ns)
    with SimulatedFleet(FLEET) as fleet:
        serve_fleet(cluster, ns, fleet)
        workdir = tmp_path_factory.mktemp("operator")
        # no baseline cache: every evaluation runs (and shards) both roles
        op = OperatorProcess(cluster, workdir / "operator.log", "--poll-interval", "1", "--no-baseline-cache",
                             kubeconfig=operator_kubeconfig(cluster, workdir))
        op.start()
        try:
            yield cluster, ns, op
        finally:
            op.stop()
            cluster.kubectl("delete", "namespace", ns, "--wait=false", check=False)


def _apply(cluster, ns, obj):
    cluster.kubectl("apply", "-n", ns, "-f", "-", input=yaml.safe_dump(obj))


def _job(cluster, ns, name):
    return json.loads(cluster.kubectl("get", "job", name, "-n", ns, "-o", "json").stdout)


def _decision(obj):
    return {k: obj["status"].get(k) for k in DECISION}


def test_sharded_evaluation_reaches_the_unsharded_verdict(env):
    cluster, ns, op = env
    _apply(cluster, ns, evaluation("whole", ref("fp16"), ref("int4"), **SPEC))
    _apply(cluster, ns, evaluation("sharded", ref("fp16"), ref("int4"), **SPEC, runner={"parallelism": 3}))
    whole = wait_phase(cluster, "whole", ns, ("Succeeded", "Failed"), timeout=300)
    sharded = wait_phase(cluster, "sharded", ns, ("Succeeded", "Failed"), timeout=300)
    assert whole["status"]["phase"] == "Succeeded", whole["status"].get("message")
    assert sharded["status"]["phase"] == "Succeeded", sharded["status"].get("message") + op.log()[-3000:]
    job = _job(cluster, ns, sharded["status"]["jobName"])
    assert job["spec"]["completionMode"] == "Indexed" and job["status"]["succeeded"] == 3
    assert any("flips" in t for t in sharded["status"]["tasks"])
    assert _decision(sharded) == _decision(whole)  # scores, drops, flips, intervals: bit for bit


def _kill_index_while_running(cluster, ns, job_name, index):
    def running_pod():
        pods = json.loads(cluster.kubectl(
            "get", "pods", "-n", ns, "-l", f"job-name={job_name},batch.kubernetes.io/job-completion-index={index}",
            "-o", "json").stdout)["items"]
        return next((p["metadata"]["name"] for p in pods if (p.get("status") or {}).get("phase") == "Running"), None)

    pod = wait_for(running_pod, timeout=240, interval=0.3, what=f"index {index} of {job_name} running")
    cluster.kubectl("delete", "pod", pod, "-n", ns, "--wait=false")
    return pod


def test_an_index_that_fails_once_is_retried_with_the_same_result(env):
    cluster, ns, op = env
    spec = {**SPEC, "runner": {"parallelism": 3, "backoffLimit": 1, "concurrency": 1}}
    _apply(cluster, ns, evaluation("retried", ref("fp16"), ref("slow"), **spec))
    _apply(cluster, ns, evaluation("retried-ref", ref("fp16"), ref("slow"), **SPEC))
    job_name = wait_phase(cluster, "retried", ns, ("Running",), timeout=240)["status"]["jobName"]
    _kill_index_while_running(cluster, ns, job_name, 1)
    obj = wait_phase(cluster, "retried", ns, ("Succeeded", "Failed"), timeout=600)
    assert obj["status"]["phase"] == "Succeeded", obj["status"].get("message")
    job = _job(cluster, ns, job_name)
    assert job["status"].get("failed", 0) >= 1 and job["status"]["succeeded"] == 3
    ref_obj = wait_phase(cluster, "retried-ref", ns, ("Succeeded", "Failed"), timeout=600)
    assert _decision(obj) == _decision(ref_obj)


def test_an_index_that_fails_for_good_fails_the_evaluation_closed(env):
    cluster, ns, op = env
    spec = {**SPEC, "runner": {"parallelism": 3, "backoffLimit": 0, "concurrency": 1}}
    _apply(cluster, ns, evaluation("doomed", ref("fp16"), ref("slow"), **spec))
    job_name = wait_phase(cluster, "doomed", ns, ("Running",), timeout=240)["status"]["jobName"]
    _kill_index_while_running(cluster, ns, job_name, 2)
    obj = wait_phase(cluster, "doomed", ns, ("Succeeded", "Failed"), timeout=600)
    st = obj["status"]
    assert st["phase"] == "Failed" and st["reason"] == "JobFailed", st
    assert st.get("verdict") is None and st["promotable"] is False
    assert "2" in (_job(cluster, ns, job_name)["status"].get("failedIndexes") or "")
