"""Every Grafana panel's PromQL returns data from a real Prometheus scraping the operator's metrics.

A Prometheus server (Debian's `prometheus`) on loopback scrapes quantgate.metrics served by
the operator's own `serve()`, after evaluations were recorded through its public functions
(`observe`, `count_verdict`, `count_failure`) in two rounds, so counters and histograms have
real increases. The same Prometheus loads the alert rules, so the alerts are also checked
against the real metrics. No cluster needed; a temp storage dir and free ports; everything
is stopped at the end.
"""

from __future__ import annotations

import json
import math
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "manifests/prometheus/dashboards/quantgate.json"
RULES = ROOT / "manifests/prometheus/promtool/quantgate-rules.yaml"
NS = "gitops-dashboard-test"  # its own namespace: other tests share the metrics registry

# Grafana's variables, as the dashboard's "All" selection and a 1 s scrape interval expand them.
GRAFANA_VARS = {"$__rate_interval": "1m", "$__range": "1h", "$namespace": ".*", "$evaluation": ".*"}


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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def api(base: str, path: str, **params) -> dict:
    url = f"{base}/api/v1/{path}?{urllib.parse.urlencode(params, doseq=True)}"
    with urllib.request.urlopen(url, timeout=10) as resp:
        body = json.load(resp)
    assert body["status"] == "success", body
    return body["data"]


def wait_for(check, what: str, deadline_s: float = 60):
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def scalar(base: str, expr: str) -> float | None:
    result = api(base, "query", query=expr)["result"]
    return float(result[0]["value"][1]) if result else None


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory):
    from quantgate import metrics

    binary = shutil.which("prometheus")
    assert binary, "prometheus missing: run `bash scripts/system-deps.sh` (Debian package prometheus)"
    server = metrics.serve(host="127.0.0.1", port=0)
    work = tmp_path_factory.mktemp("prometheus")
    shutil.copy(RULES, work / "rules.yaml")
    (work / "prometheus.yml").write_text(yaml.safe_dump({
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": ["rules.yaml"],
        "scrape_configs": [{"job_name": "quantgate-operator",
                            "static_configs": [{"targets": [f"127.0.0.1:{server.server_port}"]}]}],
    }))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = open(work / "prometheus.log", "w")
    proc = subprocess.Popen(
        [binary, f"--config.file={work / 'prometheus.yml'}", f"--storage.tsdb.path={work / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}"],
        stdout=log, stderr=subprocess.STDOUT)
    try:
        # Counters are process-wide (other tests may have counted too): wait relative to now.
        blocks = metrics.REGISTRY.get_sample_value("quantgate_evaluations_total", {"verdict": "Block"}) or 0
        record_first_round(metrics)
        wait_for(lambda: scalar(base, 'quantgate_evaluations_total{verdict="Block"}') == blocks + 1, "the first scrape")
        record_second_round(metrics)
        wait_for(lambda: scalar(base, 'quantgate_evaluations_total{verdict="Block"}') == blocks + 2,
                 "a scrape after round two")
        wait_for(lambda: scalar(base, 'count_over_time(quantgate_evaluations_total{verdict="Block"}[1m])') >= 3,
                 "a third scrape")
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        server.shutdown()
        server.server_close()
        for ns_name in ("llama-int8", "llama-int4", "llama-awq", "llama-gguf", "llama-gptq"):
            metrics.forget(NS, ns_name)


def panel_targets():
    dash = json.loads(DASHBOARD.read_text())
    return [(p["title"], t["refId"], t["expr"]) for p in dash["panels"] for t in p["targets"]]


def expand(expr: str) -> str:
    for name, value in GRAFANA_VARS.items():
        expr = expr.replace(name, value)
    assert "$" not in expr, f"unexpanded Grafana variable in {expr}"
    return expr


@pytest.mark.parametrize("title,ref,expr", panel_targets(), ids=[f"{t}/{r}" for t, r, _ in panel_targets()])
def test_panel_query_returns_data(prometheus, title, ref, expr):
    result = api(prometheus, "query", query=expand(expr))["result"]
    values = [float(s["value"][1]) for s in result]
    assert values, f"{title}: no data for {expr}"
    assert all(math.isfinite(v) for v in values), f"{title}: {result}"


def by(result, *labels):
    return {tuple(s["metric"].get(k) for k in labels): float(s["value"][1]) for s in result}


def test_panels_show_the_recorded_evaluations(prometheus):
    targets = {title: expr.replace("$namespace", NS) for title, _, expr in panel_targets()}
    verdicts = by(api(prometheus, "query", query=expand(targets["Current verdicts"]))["result"], "evaluation", "verdict")
    assert verdicts == {("llama-int8", "Ship"): 1, ("llama-int4", "Block"): 1, ("llama-awq", "ABTest"): 1}
    flips = by(api(prometheus, "query", query=expand(targets["Per-task answer flip rate per candidate"]))["result"],
               "evaluation", "task")
    assert flips[("llama-int4", "gsm8k")] == pytest.approx(0.18)
    failures = api(prometheus, "query", query=expand(targets["Evaluation failures by reason"]))["result"]
    assert by(failures, "reason")[("EndpointTimeout",)] > 0
    decided = by(api(prometheus, "query", query=expand(targets["Evaluations decided per verdict"]))["result"], "verdict")
    assert decided[("Block",)] > 0
    phases = by(api(prometheus, "query", query=expand(targets["Evaluations by phase"]))["result"], "phase")
    assert phases[("Succeeded",)] == 3 and phases[("Failed",)] == 1 and phases[("WaitingForEndpoints",)] == 1
    assert phases[("Running",)] == 0


def test_template_variables_have_values(prometheus):
    namespaces = api(prometheus, "label/namespace/values", **{"match[]": "quantgate_evaluation_verdict"})
    evaluations = api(prometheus, "label/evaluation/values", **{"match[]": 'quantgate_evaluation_verdict{namespace=~".*"}'})
    assert NS in namespaces and {"llama-int4", "llama-int8"} <= set(evaluations)
    # The dashboard filtered to one namespace still has data.
    dash = json.loads(DASHBOARD.read_text())
    for panel in dash["panels"]:
        for target in panel["targets"]:
            if "$namespace" in target["expr"]:
                expr = expand(target["expr"].replace("$namespace", NS))
                assert api(prometheus, "query", query=expr)["result"], panel["title"]


def test_alerts_fire_on_the_real_metrics(prometheus):
    def firing():
        alerts = api(prometheus, "alerts")["alerts"]
        return {(a["labels"]["alertname"], a["labels"].get("evaluation"), a["labels"].get("task"))
                for a in alerts if a["state"] == "firing"}

    want = {("QuantgateCandidateBlocked", "llama-int4", None),
            ("QuantgateHighAnswerFlipRate", "llama-int4", "gsm8k"),
            ("QuantgateHighAnswerFlipRate", "llama-awq", "gsm8k"),
            ("QuantgateTaskAccuracyRegression", "llama-int4", "gsm8k"),
            ("QuantgateEvaluationFailed", None, None)}
    wait_for(lambda: want <= firing(), f"alerts {want}", deadline_s=20)
    assert not {a for a in firing() if a[1] == "llama-int8"}, "the shipped candidate raised an alert"


def test_rollouts_verdict_template_query(prometheus):
    """manifests/rollouts' quantgate-verdict query: 1 promotable, 0 blocked or failed, empty while waiting."""
    template = yaml.safe_load((ROOT / "manifests/rollouts/analysistemplate-verdict-prometheus.yaml").read_text())
    query = template["spec"]["metrics"][0]["provider"]["prometheus"]["query"]

    def measure(evaluation):
        expr = query.replace("{{args.namespace}}", NS).replace("{{args.evaluation}}", evaluation)
        return [float(s["value"][1]) for s in api(prometheus, "query", query=expr)["result"]]

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
