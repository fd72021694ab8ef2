"""A progressive evaluation (spec.progressive) on the real control plane with simulated models: one
runner Job per stage, each asking only the documents its stage adds (stages append; the operator
merges the stage runs), the stage and items in status, and the verdict at the end.

Three tasks of the local data, 0-shot (as tests/unit/test_evaluate_progressive.py): a copy of the
reference stops early with Ship, a broken candidate then ends with Block (reusing the baseline's
stage 1 through the baseline cache), and a pair near a verdict edge shows a stage's look in status
before it decides at a later stage.
"""

import json

import pytest
import yaml

from operator_harness import (OperatorProcess, evaluation, get, install_crds, install_runner_rbac, operator_kubeconfig,
                              serve_fleet, wait_phase)
from quantgate.dev.harness import wait_for

BASE = {"arc_challenge": 0.60, "hellaswag": 0.80, "mmlu": 0.66, "truthfulqa_mc2": 0.52, "winogrande": 0.75,
        "gsm8k": 0.52}
FLEET = {"seed": 11, "reference": "fp16", "variants": [
    {"name": "fp16", "model": "m-fp16", "accuracy": BASE},
    {"name": "copy", "model": "m-copy", "accuracy": BASE},
    {"name": "broken", "model": "m-broken", "accuracy": {t: v * 0.6 for t, v in BASE.items()},
     "flipRate": {"default": 0.3}},
    # about 1.3% average drop: near the Ship/Monitor edge, which stage 1 cannot settle
    {"name": "edge", "model": "m-edge", "accuracy": {t: v * 0.987 for t, v in BASE.items()},
     "flipRate": {"default": 0.04}},
]}
TASKS = [{"name": t, "numFewshot": 0} for t in ("arc_challenge", "mmlu", "gsm8k")]
TIMEOUT = 600  # seconds per evaluation on a 2-core machine shared with other work


def ref(name):
    return {"inferenceServiceRef": {"name": name, "model": f"m-{name}"}}


@pytest.fixture(scope="module")
def env(cluster, tmp_path_factory):
    from quantgate.dev.harness import create_namespace
    from quantgate.simulate.fleet import SimulatedFleet

    install_crds(cluster)
    ns = create_namespace(cluster, "prog")
    install_runner_rbac(cluster, ns)
    with SimulatedFleet(FLEET) as fleet:
        serve_fleet(cluster, ns, fleet)
        workdir = tmp_path_factory.mktemp("operator")
        op = OperatorProcess(cluster, workdir / "operator.log", "--poll-interval", "1",
                             kubeconfig=operator_kubeconfig(cluster, workdir))
        op.start()
        try:
            yield cluster, ns
        finally:
            op.stop()
            cluster.kubectl("delete", "namespace", ns, "--wait=false", check=False)


def _apply(cluster, ns, obj):
    cluster.kubectl("apply", "-n", ns, "-f", "-", input=yaml.safe_dump(obj))


def _jobs(cluster, ns, name):
    out = cluster.kubectl("get", "jobs", "-n", ns, "-l", f"quantgate.io/evaluation={name}", "-o", "json").stdout
    return sorted(json.loads(out)["items"], key=lambda j: int(j["metadata"]["labels"]["quantgate.io/stage"]))


def _progressive(name, candidate):
    return evaluation(name, ref("fp16"), ref(candidate), suite="local", tasks=TASKS, progressive={})


def test_a_clear_ship_stops_early_and_a_clear_block_ends_with_block(env):
    cluster, ns = env
    _apply(cluster, ns, _progressive("ship", "copy"))
    obj = wait_phase(cluster, "ship", ns, ("Succeeded", "Failed"), timeout=TIMEOUT)
    st = obj["status"]
    assert st["phase"] == "Succeeded", st.get("message")
    assert st["verdict"] == "Ship" and st["promotable"] is True
    p = st["progressive"]
    assert p["stage"] < len(p["stages"]) and p["stoppedEarly"] is True
    assert p["reason"].startswith(f"stopped early at stage {p['stage']}/4")
    assert p["itemsEvaluated"] < p["itemsTotal"]
    assert {t["task"] for t in p["tasks"]} == {"arc_challenge", "mmlu", "gsm8k"}
    assert all(t["itemsEvaluated"] < t["itemsTotal"] for t in p["tasks"])
    assert all(t["n"] < t["itemsTotal"] for t in st["tasks"])  # the compare fields: items used per task
    jobs = _jobs(cluster, ns, "ship")
    assert [j["metadata"]["labels"]["quantgate.io/stage"] for j in jobs] == [str(k) for k in range(1, p["stage"] + 1)]
    assert st["evidence"]["jobName"] == jobs[-1]["metadata"]["name"]
    for c in jobs[0]["spec"]["template"]["spec"]["containers"]:
        assert c["args"][c["args"].index("--fraction") + 1] == "0.1"

    # applied once ship has its verdict, so its stage 1 baseline is a vouched cache entry (a candidate
    # polling between a Job's completion and its verdict runs the baseline itself: docs/operator.md)
    _apply(cluster, ns, _progressive("block", "broken"))
    obj = wait_phase(cluster, "block", ns, ("Succeeded", "Failed"), timeout=TIMEOUT)
    st = obj["status"]
    assert st["phase"] == "Succeeded", st.get("message")
    assert st["verdict"] == "Block" and st["promotable"] is False
    assert st["progressive"]["itemsEvaluated"] <= st["progressive"]["itemsTotal"]
    assert st["reasons"][0].startswith("progressive:")
    # the baseline cache stores stages: block's stage 1 ran only the candidate, on ship's baseline documents
    first = _jobs(cluster, ns, "block")[0]
    assert [c["name"] for c in first["spec"]["template"]["spec"]["containers"]] == ["candidate"]
    assert first["metadata"]["annotations"]["quantgate.io/baseline-results"] == \
        f"{_jobs(cluster, ns, 'ship')[0]['metadata']['name']}-cache"


def test_an_open_verdict_shows_its_stage_in_status_and_ends_with_the_verdict(env):
    cluster, ns = env
    _apply(cluster, ns, _progressive("edge", "edge"))

    def after_stage_one():
        st = get(cluster, "meval", "edge", ns).get("status") or {}
        p = st.get("progressive") or {}
        if st.get("phase") in ("Succeeded", "Failed"):
            return st
        return st if p.get("itemsEvaluated") else None

    seen = wait_for(after_stage_one, timeout=TIMEOUT, interval=0.5, what="meval/edge past stage 1")
    assert seen.get("phase") not in ("Succeeded", "Failed"), f"decided before a look was seen: {seen.get('message')}"
    # between stages: the stage running, the last look's items and why it goes on, no verdict
    assert seen["progressive"]["stage"] >= 2 and "stoppedEarly" not in seen["progressive"]
    assert seen["progressive"]["reason"].startswith("continuing after stage ")
    assert 0 < seen["progressive"]["itemsEvaluated"] < seen["progressive"]["itemsTotal"]
    assert "verdict" not in seen and seen["promotable"] is False
    obj = wait_phase(cluster, "edge", ns, ("Succeeded", "Failed"), timeout=3 * TIMEOUT)
    st = obj["status"]
    assert st["phase"] == "Succeeded", st.get("message")
    assert st["verdict"] in ("Ship", "Monitor", "ABTest", "Block") and st["progressive"]["stage"] >= 2
    jobs = _jobs(cluster, ns, "edge")
    assert len(jobs) == st["progressive"]["stage"]
    # stages append: each stage Job asks only the documents after the previous stage's share, and the
    # verdict's results are the stage runs of every stage, merged (listed per role in the evidence)
    shares = [0.0] + st["progressive"]["stages"]
    for k, job in enumerate(jobs, start=1):
        for c in job["spec"]["template"]["spec"]["containers"]:
            args = c["args"]
            assert (float(args[args.index("--fraction") + 1]), float(args[args.index("--after") + 1])) == \
                (shares[k], shares[k - 1])
    for entry in st["evidence"]["results"]:
        assert [p["stage"] for p in entry["pieces"]] == list(range(1, len(jobs) + 1))
        for piece, job in zip(entry["pieces"], jobs):
            if piece.get("reused"):  # a baseline stage another evaluation verified (ship's, from the cache)
                assert entry["role"] == "baseline"
                assert piece["name"] == job["metadata"]["annotations"]["quantgate.io/baseline-results"]
            else:
                assert piece["name"] == f"{job['metadata']['name']}-{entry['role']}"
    assert sum(t["n"] for t in st["tasks"]) == st["progressive"]["itemsEvaluated"]
    events = json.loads(cluster.kubectl("get", "events.events.k8s.io", "-n", ns, "-o", "json").stdout)["items"]
    assert any(e.get("reason") == "StageComplete" and (e.get("regarding") or {}).get("name") == "edge"
               for e in events)
