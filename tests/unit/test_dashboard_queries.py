"""Every Grafana panel's PromQL returns data from a real Prometheus scraping the operator's metrics.

A Prometheus server (Debian's `prometheus`) on loopback scrapes quantgate.metrics served by
the operator's own `serve()`, after evaluations were recorded through its public functions
(`observe`, `count_verdict`, `count_failure`) in two rounds, so counters and histograms have
real increases. The same Prometheus loads the alert rules, so the alerts are also checked
against the real metrics. No cluster needed. tests/integration/test_gitops_e2e.py does the
same against the running operator.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
from prometheus_harness import (  # noqa: E402
    DASHBOARD, api, expand, firing, panel_targets, prometheus, query, scalar, wait_for)

NS = "gitops-dashboard-test"  # its own namespace: other tests share the metrics registry
EVALUATIONS = ("llama-int8", "llama-int4", "llama-awq", "llama-gguf", "llama-gptq")


def status(verdict, average, tasks, generation=1):
    return {"phase": "Succeeded", "verdict": verdict, "promotable": verdict in ("Ship", "Monitor"),
            "averageDrop": average, "observedGeneration": generation, "tasks": [
                {"task": t, "metric": "acc,none", "baseline": b, "candidate": c, "drop": round((b - c) / b * 100, 4),
                 "flips": {"correctToIncorrect": int(rate * 500), "incorrectToCorrect": int(rate * 400), "rate": rate}}
                for t, b, c, rate in tasks]}


def record_first_round(metrics):
    metrics.observe(NS, "llama-int8", status("Ship", 0.4, [("gsm8k", 0.52, 0.518, 0.04), ("hellaswag", 0.80, 0.797, 0.02)]))
    metrics.observe(NS, "llama-int4", status("Block", 6.1, [("gsm8k", 0.52, 0.47, 0.18), ("hellaswag", 0.80, 0.77, 0.06)]))
    metrics.observe(NS, "llama-awq", {"phase": "Running", "observedGeneration": 1})
    metrics.observe(NS, "llama-gguf", {"phase": "Failed", "observedGeneration": 1, "message": "endpoint unreachable"})
    metrics.observe(NS, "llama-gptq", {"phase": "WaitingForEndpoints", "observedGeneration": 1})
    for verdict, seconds in (("Ship", 95.0), ("Block", 140.0)):
        metrics.count_verdict(verdict, seconds)
    metrics.count_failure("EndpointTimeout", 20.0)


def record_second_round(metrics):
    metrics.observe(NS, "llama-awq", status("ABTest", 4.2, [("gsm8k", 0.52, 0.49, 0.11), ("hellaswag", 0.80, 0.78, 0.05)]))
    metrics.count_verdict("ABTest", 310.0)
    metrics.count_verdict("Ship", 80.0)
    metrics.count_verdict("Block", 150.0)
    metrics.count_failure("EndpointTimeout", 12.0)


@pytest.fixture(scope="module")
def prom(tmp_path_factory):
    from quantgate import metrics

    server = metrics.serve(host="127.0.0.1", port=0)
    try:
        # Counters are process-wide (other tests may have counted too): wait relative to now.
        blocks = metrics.REGISTRY.get_sample_value("quantgate_evaluations_total", {"verdict": "Block"}) or 0
        record_first_round(metrics)
        with prometheus(tmp_path_factory.mktemp("prometheus"), server.server_port) as base:
            block_total = 'quantgate_evaluations_total{verdict="Block"}'
            wait_for(lambda: scalar(base, block_total) == blocks + 1, "a scrape of round one")
            record_second_round(metrics)
            wait_for(lambda: scalar(base, block_total) == blocks + 2, "a scrape after round two")
            wait_for(lambda: scalar(base, f"count_over_time({block_total}[1m])") >= 3, "a third scrape")
            yield base
    finally:
        server.shutdown()
        server.server_close()
        for name in EVALUATIONS:
            metrics.forget(NS, name)


TARGETS = panel_targets()


@pytest.mark.parametrize("title,ref,expr", TARGETS, ids=[f"{t}/{r}" for t, r, _ in TARGETS])
def test_panel_query_returns_data(prom, title, ref, expr):
    values = [float(s["value"][1]) for s in query(prom, expand(expr))]
    assert values, f"{title}: no data for {expr}"
    assert all(math.isfinite(v) for v in values), f"{title}: {values}"


def by(result, *labels):
    return {tuple(s["metric"].get(k) for k in labels): float(s["value"][1]) for s in result}


def test_panels_show_the_recorded_evaluations(prom):
    targets = {title: expand(expr, namespace=NS) for title, _, expr in TARGETS}
    verdicts = by(query(prom, targets["Current verdicts"]), "evaluation", "verdict")
    assert verdicts == {("llama-int8", "Ship"): 1, ("llama-int4", "Block"): 1, ("llama-awq", "ABTest"): 1}
    flips = by(query(prom, targets["Per-task answer flip rate per candidate"]), "evaluation", "task")
    assert flips[("llama-int4", "gsm8k")] == pytest.approx(0.18)
    assert by(query(prom, targets["Evaluation failures by reason"]), "reason")[("EndpointTimeout",)] > 0
    assert by(query(prom, targets["Evaluations decided per verdict"]), "verdict")[("Block",)] > 0
    phases = by(query(prom, targets["Evaluations by phase"]), "phase")
    assert phases[("Succeeded",)] == 3 and phases[("Failed",)] == 1 and phases[("WaitingForEndpoints",)] == 1
    assert phases[("Running",)] == 0


def test_template_variables_have_values(prom):
    namespaces = api(prom, "label/namespace/values", **{"match[]": "quantgate_evaluation_verdict"})
    evaluations = api(prom, "label/evaluation/values", **{"match[]": 'quantgate_evaluation_verdict{namespace=~".*"}'})
    assert NS in namespaces and {"llama-int4", "llama-int8"} <= set(evaluations)
    for title, _, expr in TARGETS:  # filtered to one namespace, the dashboard still has data
        if "$namespace" in expr:
            assert query(prom, expand(expr, namespace=NS)), title


def test_alerts_fire_on_the_real_metrics(prom):
    want = {("QuantgateCandidateBlocked", NS, "llama-int4", None, None),
            ("QuantgateHighAnswerFlipRate", NS, "llama-int4", "gsm8k", None),
            ("QuantgateHighAnswerFlipRate", NS, "llama-awq", "gsm8k", None),
            ("QuantgateTaskAccuracyRegression", NS, "llama-int4", "gsm8k", None),
            ("QuantgateEvaluationFailed", None, None, None, "EndpointTimeout")}
    wait_for(lambda: want <= firing(prom), f"alerts {want}", deadline_s=20)
    assert not {a for a in firing(prom) if a[2] == "llama-int8"}, "the shipped candidate raised an alert"


def test_rollouts_verdict_template_query(prom):
    """manifests/rollouts' quantgate-verdict query: 1 promotable, 0 blocked or failed, empty while waiting."""
    template = yaml.safe_load((ROOT / "manifests/rollouts/analysistemplate-verdict-prometheus.yaml").read_text())
    expr = template["spec"]["metrics"][0]["provider"]["prometheus"]["query"]

    def measure(evaluation):
        q = expr.replace("{{args.namespace}}", NS).replace("{{args.evaluation}}", evaluation)
        return [float(s["value"][1]) for s in query(prom, q)]

    assert measure("llama-int8") == [1.0]   # Ship
    assert measure("llama-int4") == [0.0]   # Block
    assert measure("llama-awq") == [0.0]    # ABTest: not promotable without a human
    assert measure("llama-gguf") == [0.0]   # Failed: fail closed
    assert measure("llama-gptq") == []      # still waiting: result[0] errors, Rollouts retries
    assert measure("no-such-evaluation") == []


def test_dashboard_shape_and_sidecar_configmap():
    dash = json.loads(DASHBOARD.read_text())
    assert dash["uid"] == "quantgate" and dash["schemaVersion"] >= 36
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dash["panels"]:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel["targets"] and all(t["expr"].strip() for t in panel["targets"]), panel["title"]
        assert {"h", "w", "x", "y"} <= set(panel["gridPos"]) and panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24
    titles = " ".join(p["title"].lower() for p in dash["panels"])
    for topic in ("verdicts over time", "per-task accuracy drop", "flip rate", "duration", "failures"):
        assert topic in titles
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    assert variables["datasource"]["query"] == "prometheus"
    cm = yaml.safe_load((ROOT / "manifests/prometheus/grafana-dashboard-configmap.yaml").read_text())
    assert cm["kind"] == "ConfigMap" and cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(cm["data"]["quantgate.json"]) == dash
