"""Kueue queues runner Jobs fairly on the dev cluster: 10 evaluations needing 1 GPU each under
a 2-GPU ClusterQueue run at most 2 at a time, all end with a verdict, and while they wait
their status says Pending/QueuedByKueue with Kueue's reason.
"""

import json
import time
from datetime import datetime

import pytest
import yaml

from kueue_harness import KueueProcess, gpu_queue, kueue_binary
from operator_harness import OperatorProcess, evaluation, install_crds, install_runner_rbac, serve_fleet, wait_phase

ACC = {"arc_challenge": 0.7, "hellaswag": 0.8, "mmlu": 0.7, "truthfulqa_mc2": 0.6, "winogrande": 0.75, "gsm8k": 0.6}
FLEET = {"seed": 5, "reference": "fp16", "variants": [
    {"name": "fp16", "model": "m-fp16", "accuracy": ACC},
    {"name": "int4", "model": "m-int4", "accuracy": {**ACC, "gsm8k": 0.5}, "flipRate": {"default": 0.1},
     "latencyMs": 20},
]}
SPEC = {"suite": "local", "tasks": [{"name": "gsm8k", "limit": 12}, {"name": "arc_challenge", "limit": 12}]}
N = 10


def ref(name, **extra):
    return {"inferenceServiceRef": {"name": name, "model": f"m-{name}"}, **extra}


@pytest.fixture(scope="module")
def env(cluster, tmp_path_factory):
    import os

    from quantgate.dev.harness import create_namespace
    from quantgate.simulate.fleet import SimulatedFleet

    if not os.access(kueue_binary(), os.X_OK):
        message = f"{kueue_binary()} missing: run `make tools`"
        if os.environ.get("QUANTGATE_REQUIRE_CLUSTER"):
            pytest.fail(message)
        pytest.skip(message)
    install_crds(cluster)
    ns = create_namespace(cluster, "kueue")
    install_runner_rbac(cluster, ns)
    workdir = tmp_path_factory.mktemp("kueue")
    kueue = KueueProcess(cluster, workdir).start()
    for obj in gpu_queue(ns, gpus=2):
        cluster.apply(obj)
    with SimulatedFleet(FLEET) as fleet:
        serve_fleet(cluster, ns, fleet)
        # the admin kubeconfig: the chart grants the operator get/list on Workloads when runner.kueueQueue is set
        op = OperatorProcess(cluster, workdir / "operator.log", "--poll-interval", "1", "--max-concurrent", "3")
        try:
            op.start()
            yield cluster, ns, op, kueue
        finally:
            op.stop()
            kueue.stop()
            cluster.kubectl("delete", "namespace", ns, "--wait=false", check=False)


def _ts(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _max_overlap(intervals) -> int:
    points = sorted([(a, 1) for a, _ in intervals] + [(b, -1) for _, b in intervals])
    now = peak = 0
    for _, step in points:  # an end sorts before a start at the same instant
        now += step
        peak = max(peak, now)
    return peak


def test_ten_one_gpu_evaluations_share_two_gpus(env):
    cluster, ns, op, kueue = env
    # the reference baseline runs once, outside Kueue; the ten reuse it and each needs one GPU
    cluster.kubectl("apply", "-n", ns, "-f", "-",
                    input=yaml.safe_dump(evaluation("reference", ref("fp16"), ref("fp16"), **SPEC)))
    assert wait_phase(cluster, "reference", ns, ("Succeeded", "Failed"), timeout=300)["status"]["phase"] == "Succeeded"
    names = [f"q{i}" for i in range(N)]
    runner = {"queueName": "gpu", "resources": {"limits": {"nvidia.com/gpu": 1}}}
    docs = [evaluation(n, {"resultsFrom": "reference"}, ref("int4"), **SPEC, runner=runner) for n in names]
    cluster.kubectl("apply", "-n", ns, "-f", "-", input=yaml.safe_dump_all(docs))

    queued_reasons, deadline = set(), time.monotonic() + 900
    while time.monotonic() < deadline:
        items = json.loads(cluster.kubectl("get", "meval", "-n", ns, "-o", "json").stdout)["items"]
        ours = [m for m in items if m["metadata"]["name"] in names]
        for m in ours:
            st = m.get("status") or {}
            if st.get("reason") == "QueuedByKueue":
                queued_reasons.add(st.get("message"))
        if len(ours) == N and all((m.get("status") or {}).get("phase") in ("Succeeded", "Failed") for m in ours):
            break
        time.sleep(0.5)
    final = {m["metadata"]["name"]: m["status"] for m in ours}
    assert all(s["phase"] == "Succeeded" and s.get("verdict") for s in final.values()), \
        {n: (s["phase"], s.get("message")) for n, s in final.items()}
    # Kueue's own reason, quoted from the Workload, while they waited
    assert any("nvidia.com/gpu" in (r or "") for r in queued_reasons), (queued_reasons, kueue.log()[-2000:])

    pods = json.loads(cluster.kubectl("get", "pods", "-n", ns, "-o", "json").stdout)["items"]
    intervals = []
    for p in pods:
        if p["metadata"].get("labels", {}).get("quantgate.io/evaluation") not in names:
            continue
        finished = [c["state"]["terminated"]["finishedAt"] for c in p["status"].get("containerStatuses") or []
                    if "terminated" in c.get("state", {})]
        intervals.append((_ts(p["status"]["startTime"]), max(_ts(f) for f in finished)))
    assert len(intervals) >= N
    assert _max_overlap(intervals) <= 2
    for n in names:  # each ran under Kueue: labelled, admitted (unsuspended) by it
        job = json.loads(cluster.kubectl("get", "job", final[n]["jobName"], "-n", ns, "-o", "json").stdout)
        assert job["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "gpu" and not job["spec"].get("suspend")
