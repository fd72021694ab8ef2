"""The GitOps loop against the running operator: real evaluations of simulated models decide,
Argo CD's health check (gopher-lua) reads the live objects, the CI gate exits accordingly, and a
real Prometheus scraping the operator's /metrics returns data for every dashboard panel, fires
the alerts and answers the Rollouts verdict query.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from operator_harness import (OperatorProcess, evaluation, get, install_crds, install_runner_rbac, serve_fleet,
                              operator_kubeconfig, wait_phase)
from quantgate.dev import paths
from quantgate.dev.harness import create_namespace

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "tools/luahealth"))
import luahealth  # noqa: E402
from prometheus_harness import expand, firing, panel_targets, prometheus, query, wait_for  # noqa: E402

HEALTH = ROOT / "manifests/argocd/health/quantgate.io/ModelEvaluation/health.lua"
ACC = {"arc_challenge": 0.7, "hellaswag": 0.8, "mmlu": 0.7, "truthfulqa_mc2": 0.7, "winogrande": 0.75, "gsm8k": 0.7}
FLEET = {"seed": 7, "reference": "fp16", "variants": [
    {"name": "fp16", "model": "m-fp16", "accuracy": ACC},
    {"name": "int8", "model": "m-int8", "accuracy": ACC},
    {"name": "int4", "model": "m-int4", "accuracy": {**ACC, "gsm8k": 0.35}, "flipRate": {"default": 0.1}},
    {"name": "broken", "model": "m-broken", "accuracy": ACC, "errorRate": 1.0},
]}
LIMIT = 8


def ref(name):
    return {"inferenceServiceRef": {"name": name, "model": f"m-{name}"}}


pytestmark = pytest.mark.slow  # three real evaluations: about a minute of lm-eval runs


@pytest.fixture(scope="module")
def loop(cluster, tmp_path_factory):
    from quantgate.simulate.fleet import SimulatedFleet

    if luahealth.go_binary() is None:
        pytest.fail("Go is needed to build tools/luahealth (Argo CD's Lua runtime)")
    lua = luahealth.build()
    install_crds(cluster)
    ns = create_namespace(cluster, "gitops")
    install_runner_rbac(cluster, ns)
    workdir = tmp_path_factory.mktemp("gitops-e2e")
    with SimulatedFleet(FLEET) as fleet:
        serve_fleet(cluster, ns, fleet)
        op = OperatorProcess(cluster, workdir / "operator.log", "--poll-interval", "1",
                             kubeconfig=operator_kubeconfig(cluster, workdir), namespaces=[ns])
        op.start()
        try:
            with prometheus(workdir, op.metrics_port) as prom:
                cluster.apply(evaluation("llama-int8", ref("fp16"), ref("int8"), suite="local", limit=LIMIT), ns)
                cluster.apply(evaluation("llama-int4", ref("fp16"), ref("int4"), suite="local", limit=LIMIT,
                                         profile="math-tutoring"), ns)
                cluster.apply(evaluation("llama-broken", ref("fp16"), ref("broken"), suite="local", limit=LIMIT,
                                         runner={"backoffLimit": 0}), ns)
                for name in ("llama-int8", "llama-int4", "llama-broken"):
                    wait_phase(cluster, name, ns, ("Succeeded", "Failed"), timeout=240)
                # Prometheus has scraped the final state once the failed evaluation's phase is in.
                wait_for(lambda: query(prom, f'quantgate_evaluation_phase{{namespace="{ns}",evaluation="llama-broken",'
                                             f'phase="Failed"}} == 1'), "a scrape of the final state")
                # increase()/rate() need two samples of the counters, which appear with the first verdict.
                for counter in ("quantgate_evaluations_total", "quantgate_evaluation_failures_total"):
                    wait_for(lambda: query(prom, f"min(count_over_time({counter}[1m])) >= 2"),
                             f"two samples of {counter}")
                yield cluster, ns, lua, prom
        finally:
            op.stop()
            cluster.kubectl("delete", "namespace", ns, "--wait=false", check=False)


def test_verdicts_reach_argocd_and_ci(loop):
    cluster, ns, lua, _ = loop
    objects = [get(cluster, "meval", name, ns) for name in ("llama-int8", "llama-int4", "llama-broken")]
    assert [o["status"]["phase"] for o in objects] == ["Succeeded", "Succeeded", "Failed"], \
        [o["status"].get("message") for o in objects]
    ship, block, broken = luahealth.run(lua, HEALTH, objects)
    assert ship["status"] == "Healthy" and ship["message"].startswith("Ship: average accuracy drop"), ship
    assert block["status"] == "Degraded" and block["message"].startswith("Block: ") and \
        "gsm8k" in block["message"] and "math-tutoring" in block["message"], block
    assert broken["status"] == "Degraded" and broken["message"].startswith("Evaluation failed: "), broken

    env = dict(os.environ, KUBECONFIG=str(cluster.kubeconfig), KUBECTL=str(paths.binary("kubectl")))
    codes = [subprocess.run(["bash", str(ROOT / "scripts/wait-promotable.sh"), ns, name, "30"], env=env,
                            capture_output=True, text=True).returncode
             for name in ("llama-int8", "llama-int4", "llama-broken")]
    assert codes == [0, 1, 1]


TARGETS = panel_targets()


@pytest.mark.parametrize("title,ref_id,expr", TARGETS, ids=[f"{t}/{r}" for t, r, _ in TARGETS])
def test_dashboard_panel_has_data_from_the_operator(loop, title, ref_id, expr):
    _, ns, _, prom = loop
    values = [float(s["value"][1]) for s in query(prom, expand(expr, namespace=ns))]
    assert values, f"{title}: no data for {expr}"
    assert all(math.isfinite(v) for v in values), f"{title}: {values}"


def test_alerts_and_rollouts_query_on_the_operator_metrics(loop):
    _, ns, _, prom = loop
    want = {("QuantgateCandidateBlocked", ns, "llama-int4", None, None),
            ("QuantgateTaskAccuracyRegression", ns, "llama-int4", "gsm8k", None),
            ("QuantgateEvaluationFailed", None, None, None, "JobFailed")}
    wait_for(lambda: want <= firing(prom), f"alerts {want}", deadline_s=20)
    assert not {a for a in firing(prom) if a[2] == "llama-int8"}, "the shipped candidate raised an alert"

    template = yaml.safe_load((ROOT / "manifests/rollouts/analysistemplate-verdict-prometheus.yaml").read_text())
    expr = template["spec"]["metrics"][0]["provider"]["prometheus"]["query"].replace("{{args.namespace}}", ns)
    measured = {name: [float(s["value"][1]) for s in query(prom, expr.replace("{{args.evaluation}}", name))]
                for name in ("llama-int8", "llama-int4", "llama-broken")}
    assert measured == {"llama-int8": [1.0], "llama-int4": [0.0], "llama-broken": [0.0]}
