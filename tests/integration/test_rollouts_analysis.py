"""The project's AnalysisTemplates executed by the Argo Rollouts controller itself (v1.10.2, built by
`make tools-argo`), running as a process against the dev cluster.

Each AnalysisRun is made from a template the way Rollouts and Kargo make one: the template's
metrics unchanged, its args with the caller's values over the defaults; then the controller
does the rest (it substitutes the args, creates the Job, queries Prometheus, counts errors).

- quantgate-promotable (Job provider): the controller's Job runs `kubectl wait
  --for=condition=Promotable` on the dev cluster's kubelet with rbac.yaml's ServiceAccount:
  Ship -> Successful, Block -> Failed.
- quantgate-verdict (Prometheus provider): a real Prometheus scrapes the operator's metrics module;
  Ship -> Successful, Block -> Failed, and an evaluation without a verdict yet is an Error
  measurement that is retried (not a failure) until the verdict arrives.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
import yaml

from operator_harness import install_crds
from quantgate.dev.harness import get_json, wait_for
from test_gitops_gate import succeeded

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
import argo_harness as argo  # noqa: E402
from prometheus_harness import prometheus, scalar  # noqa: E402
from prometheus_harness import wait_for as prom_wait  # noqa: E402

EXAMPLE = ROOT / "manifests/argocd/example/app/wave1-modelevaluation.yaml"
JOB_TEMPLATE = ROOT / "manifests/rollouts/analysistemplate-promotable-job.yaml"
PROM_TEMPLATE = ROOT / "manifests/rollouts/analysistemplate-verdict-prometheus.yaml"
METRICS_NS = "rollouts-analysis-test"  # metrics labels only; its own, as other tests share the registry

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def rollouts(cluster, tmp_path_factory):
    missing = argo.missing_engines(("rollouts-controller",))
    if missing:
        message = f"{', '.join(missing)} missing: run `make tools-argo`"
        if os.environ.get("QUANTGATE_REQUIRE_CLUSTER"):
            pytest.fail(message)
        pytest.skip(message)
    install_crds(cluster)
    controller = argo.RolloutsController(cluster, tmp_path_factory.mktemp("rollouts"))
    controller.install()
    controller.start()
    try:
        yield controller
    finally:
        controller.stop()


def analysis_run(template_path: Path, name: str, args: dict[str, str]) -> dict:
    """An AnalysisRun from a template as Rollouts builds one: metrics as they are, args merged."""
    template = yaml.safe_load(template_path.read_text())
    merged = []
    for arg in template["spec"]["args"]:
        merged.append({"name": arg["name"], "value": args[arg["name"]]} if arg["name"] in args else dict(arg))
    return {"apiVersion": "argoproj.io/v1alpha1", "kind": "AnalysisRun",
            "metadata": {"name": name, "labels": {"app.kubernetes.io/part-of": "quantgate-test"}},
            "spec": {"args": merged, "metrics": template["spec"]["metrics"]}}


def finished_run(cluster, name: str, namespace: str, timeout: float) -> dict:
    def done():
        run = get_json(cluster, "analysisrun", name, "-n", namespace)
        phase = (run.get("status") or {}).get("phase")
        return run if phase in ("Successful", "Failed", "Error", "Inconclusive") else None
    try:
        return wait_for(done, timeout=timeout, interval=1, what=f"analysisrun {name} finished")
    except Exception:
        print(cluster.kubectl("get", "analysisrun", name, "-n", namespace, "-o", "yaml", check=False).stdout)
        raise


def measurements(run: dict) -> list[dict]:
    return [m for r in run["status"].get("metricResults") or [] for m in r.get("measurements") or []]


def set_verdict(cluster, name: str, namespace: str, verdict: str) -> None:
    obj = get_json(cluster, "meval", name, "-n", namespace)
    patch = succeeded(verdict, 0.4 if verdict == "Ship" else 6.0, [], obj["metadata"]["generation"],
                      obj.get("status") or {})
    cluster.kubectl("patch", "meval", name, "-n", namespace, "--subresource=status", "--type=merge",
                    "-p", json.dumps({"status": patch}))


def test_job_template_passes_ship_and_fails_block(rollouts, cluster, namespace):
    cluster.kubectl("apply", "-n", namespace, "-f", str(ROOT / "manifests/rollouts/rbac.yaml"))
    cluster.kubectl("apply", "-n", namespace, "-f", str(JOB_TEMPLATE))  # the template as users apply it
    for name, verdict in (("llama-ship", "Ship"), ("llama-block", "Block")):
        meval = yaml.safe_load(EXAMPLE.read_text())
        meval["metadata"]["name"] = name
        cluster.apply(meval, namespace)
        set_verdict(cluster, name, namespace, verdict)

    # The Block run's kubectl waits out its timeout (the template's documented limit).
    cluster.apply(analysis_run(JOB_TEMPLATE, "gate-ship", {"evaluation": "llama-ship", "namespace": namespace,
                                                           "timeout": "60s"}), namespace)
    cluster.apply(analysis_run(JOB_TEMPLATE, "gate-block", {"evaluation": "llama-block", "namespace": namespace,
                                                            "timeout": "5s"}), namespace)
    ship = finished_run(cluster, "gate-ship", namespace, timeout=180)
    block = finished_run(cluster, "gate-block", namespace, timeout=180)
    print(yaml.safe_dump({"gate-ship": ship["status"], "gate-block": block["status"]}))

    assert ship["status"]["phase"] == "Successful", ship["status"]
    assert block["status"]["phase"] == "Failed", block["status"]
    # The controller really ran a Job per run, labelled as the template says, and read its outcome.
    jobs = get_json(cluster, "jobs", "-n", namespace, "-l", "app.kubernetes.io/name=quantgate-gate")["items"]
    outcome = {}
    for job in jobs:
        owner = job["metadata"]["ownerReferences"][0]["name"]
        conds = [c["type"] for c in (job.get("status") or {}).get("conditions") or [] if c["status"] == "True"]
        outcome[owner] = "Complete" if "Complete" in conds else "Failed" if "Failed" in conds else conds
        command = job["spec"]["template"]["spec"]["containers"][0]["command"]
        assert command[:3] == ["kubectl", "wait", "--for=condition=Promotable"], command
        assert "{{" not in " ".join(command), command  # the controller substituted the args
    assert outcome == {"gate-ship": "Complete", "gate-block": "Failed"}, outcome
    by_run = {job["metadata"]["ownerReferences"][0]["name"]: job["metadata"]["name"] for job in jobs}
    ship_log = cluster.kubectl("logs", "-n", namespace, f"job/{by_run['gate-ship']}", check=False).stdout
    block_log = cluster.kubectl("logs", "-n", namespace, f"job/{by_run['gate-block']}", check=False).stdout
    assert "condition met" in ship_log and "timed out" in block_log, (ship_log, block_log)


@pytest.fixture
def metrics_prometheus(tmp_path):
    from quantgate import metrics

    server = metrics.serve(host="127.0.0.1", port=0)
    try:
        with prometheus(tmp_path, server.server_port) as base:
            yield metrics, base
    finally:
        server.shutdown()
        server.server_close()
        for name in ("llama-ship", "llama-block", "llama-late"):
            metrics.forget(METRICS_NS, name)


def status(verdict: str, average: float) -> dict:
    return {"phase": "Succeeded", "verdict": verdict, "promotable": verdict in ("Ship", "Monitor"),
            "averageDrop": average, "observedGeneration": 1,
            "tasks": [{"task": "gsm8k", "metric": "exact_match,strict-match", "baseline": 0.52,
                       "candidate": round(0.52 * (1 - average / 100), 4), "drop": average}]}


def test_prometheus_template_passes_ship_fails_block_and_waits_for_a_verdict(rollouts, cluster, namespace,
                                                                           metrics_prometheus):
    metrics, prom = metrics_prometheus
    metrics.observe(METRICS_NS, "llama-ship", status("Ship", 0.4))
    metrics.observe(METRICS_NS, "llama-block", status("Block", 6.0))
    metrics.observe(METRICS_NS, "llama-late", {"phase": "Running", "observedGeneration": 1})
    prom_wait(lambda: scalar(prom, f'count(quantgate_evaluation_phase{{namespace="{METRICS_NS}"}} == 1)') == 3,
              "a scrape of the three evaluations")
    cluster.kubectl("apply", "-n", namespace, "-f", str(PROM_TEMPLATE))
    args = {"namespace": METRICS_NS, "prometheus-address": prom}
    for run, evaluation in (("verdict-ship", "llama-ship"), ("verdict-block", "llama-block"),
                            ("verdict-late", "llama-late")):
        cluster.apply(analysis_run(PROM_TEMPLATE, run, {**args, "evaluation": evaluation}), namespace)

    ship = finished_run(cluster, "verdict-ship", namespace, timeout=120)
    block = finished_run(cluster, "verdict-block", namespace, timeout=120)
    assert ship["status"]["phase"] == "Successful", ship["status"]
    assert [m["value"] for m in measurements(ship)] == ["[1]"], measurements(ship)
    assert block["status"]["phase"] == "Failed", block["status"]
    assert [m["value"] for m in measurements(block)] == ["[0]"], measurements(block)

    # No verdict yet: the query is empty, result[0] errors, and the run keeps going.
    def errored():
        run = get_json(cluster, "analysisrun", "verdict-late", "-n", namespace)
        ms = measurements(run)
        return run if ms and ms[0]["phase"] == "Error" else None
    late = wait_for(errored, timeout=120, interval=1, what="an Error measurement of verdict-late")
    assert late["status"]["phase"] == "Running", late["status"]
    metrics.observe(METRICS_NS, "llama-late", status("Ship", 0.2))
    late = finished_run(cluster, "verdict-late", namespace, timeout=180)  # the next measurement, 30 s later
    print(yaml.safe_dump({"verdict-ship": ship["status"], "verdict-block": block["status"],
                          "verdict-late": late["status"]}))
    assert late["status"]["phase"] == "Successful", late["status"]
    phases = [m["phase"] for m in measurements(late)]
    assert phases[0] == "Error" and phases[-1] == "Successful", phases
    (result,) = late["status"]["metricResults"]
    assert result.get("failed", 0) == 0 and result.get("consecutiveError", 0) == 0 and result["error"] >= 1, result
