"""A sharded evaluation's baseline on the real control plane, baseline cache on: the operator
merges the shards, writes the verified merged baseline as a cache entry and names it in
status.resultsRef; a later candidate against the same baseline runs only its candidate, and
`resultsFrom` naming the sharded evaluation reads the merged baseline."""

import json

import pytest
import yaml

from operator_harness import (OperatorProcess, evaluation, install_crds, install_runner_rbac, operator_kubeconfig,
                              serve_fleet, wait_phase)

ACC = {"arc_challenge": 0.7, "hellaswag": 0.8, "mmlu": 0.7, "truthfulqa_mc2": 0.6, "winogrande": 0.75, "gsm8k": 0.6}
FLEET = {"seed": 4, "reference": "fp16", "variants": [
    {"name": "fp16", "model": "m-fp16", "accuracy": ACC},
    {"name": "int4", "model": "m-int4", "accuracy": {**ACC, "gsm8k": 0.5}, "flipRate": {"default": 0.1}},
    {"name": "int8", "model": "m-int8", "accuracy": ACC, "flipRate": {"default": 0.02}},
]}
SPEC = {"suite": "local", "limit": 6}


def ref(name):
    return {"inferenceServiceRef": {"name": name, "model": f"m-{name}"}}


@pytest.fixture(scope="module")
def env(cluster, tmp_path_factory):
    from quantgate.dev.harness import create_namespace
    from quantgate.simulate.fleet import SimulatedFleet

    install_crds(cluster)
    ns = create_namespace(cluster, "shard-cache")
    install_runner_rbac(cluster, ns)
    with SimulatedFleet(FLEET) as fleet:
        serve_fleet(cluster, ns, fleet)
        workdir = tmp_path_factory.mktemp("operator")
        op = OperatorProcess(cluster, workdir / "operator.log", "--poll-interval", "1",
                             kubeconfig=operator_kubeconfig(cluster, workdir))
        op.start()
        try:
            yield cluster, ns, op
        finally:
            op.stop()
            cluster.kubectl("delete", "namespace", ns, "--wait=false", check=False)


def _apply(cluster, ns, obj):
    cluster.kubectl("apply", "-n", ns, "-f", "-", input=yaml.safe_dump(obj))


def _settled(cluster, ns, op, name):
    try:
        return wait_phase(cluster, name, ns, ("Succeeded", "Failed"), timeout=300)
    except AssertionError:
        obj = json.loads(cluster.kubectl("get", "meval", name, "-n", ns, "-o", "json").stdout)
        raise AssertionError(f"{name} did not settle: status {json.dumps(obj.get('status'))[:1500]}\n"
                             f"operator log: {op.log()[-3000:]}") from None


def _containers(cluster, ns, job_name):
    job = json.loads(cluster.kubectl("get", "job", job_name, "-n", ns, "-o", "json").stdout)
    return [c["name"] for c in job["spec"]["template"]["spec"]["containers"]]


def test_a_sharded_baseline_is_cached_and_reused(env):
    cluster, ns, op = env
    _apply(cluster, ns, evaluation("sharded", ref("fp16"), ref("int4"), **SPEC, runner={"parallelism": 3}))
    sharded = _settled(cluster, ns, op, "sharded")
    status = sharded["status"]
    assert status["phase"] == "Succeeded", status.get("message", "") + op.log()[-3000:]
    entry = status["evidence"]["baselineCache"]
    assert status["resultsRef"]["baseline"] == entry["name"] and not status["resultsRef"]["baselineReused"]
    cm = json.loads(cluster.kubectl("get", "configmap", entry["name"], "-n", ns, "-o", "json").stdout)
    assert cm["metadata"]["uid"] == entry["uid"] and cm.get("immutable") is True

    _apply(cluster, ns, evaluation("next", ref("fp16"), ref("int8"), **SPEC))
    _apply(cluster, ns, evaluation("from", {"resultsFrom": "sharded"}, ref("int8"), **SPEC))
    for name in ("next", "from"):
        done = _settled(cluster, ns, op, name)
        st = done["status"]
        assert st["phase"] == "Succeeded", st.get("message", "") + op.log()[-3000:]
        assert st["resultsRef"]["baselineReused"] is True and st["resultsRef"]["baseline"] == entry["name"]
        assert _containers(cluster, ns, st["jobName"]) == ["candidate"]  # the baseline did not run again
