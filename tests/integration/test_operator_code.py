"""code-help through the operator on the dev control plane: simulated code models, the code
suite scored in the runner's sandbox, Ship and Block with pass@1 and flips in status, a
runner pod whose code-executing containers hold no ServiceAccount token, and its egress
NetworkPolicy (made before the Job, removed with the evaluation; the dev cluster has no CNI, so
nothing enforces it here: the object and its spec are what is checked)."""

import json
from pathlib import Path

import pytest
import yaml

from operator_harness import (OperatorProcess, evaluation, get, install_crds, install_runner_rbac,
                              operator_kubeconfig, serve_fleet, wait_phase)
from quantgate.dev.harness import wait_for
from quantgate.simulate import load_fleet

FLEET = Path(__file__).resolve().parents[2] / "examples" / "simulate" / "code-fleet.yaml"
SA_MOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"
# The dev apiserver listens on 127.0.0.1 and runs without an endpoint reconciler (no EndpointSlice
# default/kubernetes): its address for the egress policies is given, as the chart's
# networkPolicy.apiServerCIDRs would.
APISERVER_CIDR = "127.0.0.1/32"


def ref(name, model):
    return {"inferenceServiceRef": {"name": name, "model": model}}


@pytest.fixture(scope="module")
def env(cluster, tmp_path_factory):
    from quantgate.dev.harness import create_namespace
    from quantgate.simulate.fleet import SimulatedFleet

    install_crds(cluster)
    ns = create_namespace(cluster, "code")
    install_runner_rbac(cluster, ns)
    with SimulatedFleet(load_fleet(FLEET)) as fleet:
        serve_fleet(cluster, ns, fleet)
        workdir = tmp_path_factory.mktemp("operator-code")
        op = OperatorProcess(cluster, workdir / "operator.log", "--poll-interval", "1",
                             kubeconfig=operator_kubeconfig(cluster, workdir),
                             env={"QUANTGATE_APISERVER_CIDRS": APISERVER_CIDR})
        op.start()
        try:
            yield cluster, ns
        finally:
            op.stop()
            cluster.kubectl("delete", "namespace", ns, "--wait=false", check=False)


def _code_eval(cluster, ns, name, candidate, model):
    obj = evaluation(name, ref("fp16", "coder-7b"), ref(candidate, model), suite="code", profile="code-help",
                     allowCodeExecution=True)
    cluster.kubectl("apply", "-n", ns, "-f", "-", input=yaml.safe_dump(obj))
    return wait_phase(cluster, name, ns, ("Succeeded", "Failed"), timeout=900)


def _job(cluster, ns, name):
    out = cluster.kubectl("get", "jobs", "-n", ns, "-l", f"quantgate.io/evaluation={name}", "-o", "json").stdout
    [job] = json.loads(out)["items"]
    return job


def test_code_help_ships_int8_with_pass_at_1_and_flips_in_status(env):
    cluster, ns = env
    obj = _code_eval(cluster, ns, "coder-int8", "int8", "coder-7b-w8a8")
    st = obj["status"]
    assert st["phase"] == "Succeeded", st.get("message")
    assert st["verdict"] == "Ship" and st["promotable"] is True
    tasks = {t["task"]: t for t in st["tasks"]}
    assert set(tasks) == {"humaneval", "mbpp"}
    assert tasks["humaneval"]["metric"] == "pass@1,create_test" and tasks["mbpp"]["metric"] == "pass_at_1,none"
    assert tasks["humaneval"]["baseline"] == tasks["humaneval"]["candidate"] == 0.625
    assert tasks["humaneval"]["flips"]["correctToIncorrect"] == tasks["humaneval"]["flips"]["incorrectToCorrect"] == 2

    pod = _job(cluster, ns, "coder-int8")["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    assert [c["name"] for c in pod["initContainers"]] == ["baseline", "candidate"]
    assert [c["name"] for c in pod["containers"]] == ["publish-baseline", "publish-candidate"]
    for c in pod["initContainers"]:  # the containers that execute model code: no token mounted
        assert "--allow-code-execution" in c["args"]
        assert all(m["mountPath"] != SA_MOUNT for m in c.get("volumeMounts", []))
        assert c["securityContext"]["readOnlyRootFilesystem"] is True and c["securityContext"]["runAsNonRoot"]


def test_code_help_blocks_int4_on_its_humaneval_drop(env):
    cluster, ns = env
    obj = _code_eval(cluster, ns, "coder-int4", "int4", "coder-7b-w4a16")
    st = obj["status"]
    assert st["phase"] == "Succeeded", st.get("message")
    assert st["verdict"] == "Block" and st["promotable"] is False
    assert any("humaneval: drop 7.50% >= 2% limit of profile code-help" in r for r in st["reasons"])
    humaneval = next(t for t in st["tasks"] if t["task"] == "humaneval")
    assert humaneval["candidate"] == round(37 / 64, 4) and humaneval["passed"] is False  # status keeps 4 decimals
    assert (humaneval["flips"]["correctToIncorrect"], humaneval["flips"]["incorrectToCorrect"]) == (6, 3)


def _exists(cluster, kind, name, ns) -> bool:
    return cluster.kubectl("get", kind, name, "-n", ns, check=False).returncode == 0


def test_code_evaluations_runner_job_gets_its_egress_policy_first_and_loses_it_with_the_evaluation(env):
    from urllib.parse import urlsplit

    cluster, ns = env
    name = "coder-egress"
    obj = evaluation(name, ref("fp16", "coder-7b"), ref("int8", "coder-7b-w8a8"), suite="code", profile="code-help",
                     allowCodeExecution=True)
    cluster.kubectl("apply", "-n", ns, "-f", "-", input=yaml.safe_dump(obj))
    job = wait_for(lambda: _job(cluster, ns, name), timeout=120, interval=0.2, what="runner Job")
    job_name = job["metadata"]["name"]
    policy = get(cluster, "networkpolicy", f"{job_name}-egress", ns)  # there as soon as the Job is
    ev = get(cluster, "meval", name, ns)
    assert policy["metadata"]["ownerReferences"] == [{
        "apiVersion": "quantgate.io/v1alpha1", "kind": "ModelEvaluation", "name": name,
        "uid": ev["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}]
    spec = policy["spec"]
    selector = {"app.kubernetes.io/managed-by": "quantgate", "quantgate.io/evaluation": name,
                "quantgate.io/generation": "1"}
    assert spec["podSelector"] == {"matchLabels": selector}
    assert spec["policyTypes"] == ["Ingress", "Egress"] and not spec.get("ingress")
    # the endpoints the Job evaluates: the candidate, and the baseline unless its cached results are reused
    # (they are after the tests above: same baseline, same suite)
    reused = "quantgate.io/baseline-results" in (job["metadata"].get("annotations") or {})
    ports = [urlsplit(get(cluster, "inferenceservice", n, ns)["status"]["address"]["url"]).port
             for n in (("int8",) if reused else ("fp16", "int8"))]
    loopback = [{"ipBlock": {"cidr": "127.0.0.1/32"}}]
    assert spec["egress"] == [  # the endpoints (IPs: no DNS), then the API server; nothing else
        *({"to": loopback, "ports": [{"protocol": "TCP", "port": p}]} for p in ports),
        {"to": [{"ipBlock": {"cidr": APISERVER_CIDR}}],
         "ports": [{"protocol": "TCP", "port": 443}, {"protocol": "TCP", "port": 6443}]}]
    assert policy["metadata"]["creationTimestamp"] <= job["metadata"]["creationTimestamp"]

    def pods():
        out = cluster.kubectl("get", "pods", "-n", ns, "-l", f"quantgate.io/evaluation={name}", "-o", "json").stdout
        return json.loads(out)["items"]

    for pod in wait_for(pods, timeout=120, what="runner pod"):  # selected, and made after the policy
        assert selector.items() <= pod["metadata"]["labels"].items()
        assert pod["metadata"]["labels"]["quantgate.io/code-execution"] == "true"  # not the chart's runner policy
        assert pod["metadata"]["creationTimestamp"] >= policy["metadata"]["creationTimestamp"]

    cluster.kubectl("delete", "meval", name, "-n", ns, "--wait=false")
    wait_for(lambda: not _exists(cluster, "networkpolicy", f"{job_name}-egress", ns), timeout=180,
             what="egress NetworkPolicy garbage-collected with its evaluation")
    wait_for(lambda: not _exists(cluster, "job", job_name, ns), timeout=180, what="runner Job garbage-collected")
