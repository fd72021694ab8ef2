"""PrometheusRule, its promtool unit tests and the ServiceMonitor, checked by promtool itself."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PROM = ROOT / "manifests/prometheus"
RULE_CR = PROM / "prometheusrule.yaml"
RULES = PROM / "promtool/quantgate-rules.yaml"
RULE_TESTS = PROM / "promtool/quantgate-rules.test.yaml"
RUNBOOKS = ROOT / "docs/runbooks.md"

# The series the operator exports (operator/quantgate/metrics.py) plus Prometheus' own `up`.
KNOWN_SERIES = {
    "quantgate_evaluation_score", "quantgate_evaluation_drop_percent",
    "quantgate_evaluation_average_drop_percent", "quantgate_evaluation_flip_rate",
    "quantgate_evaluation_verdict", "quantgate_evaluation_phase", "quantgate_evaluations_total",
    "quantgate_evaluation_failures_total", "quantgate_evaluation_duration_seconds_bucket",
    "quantgate_evaluation_duration_seconds_sum", "quantgate_evaluation_duration_seconds_count", "up",
}
REQUIRED_ALERTS = {
    "QuantgateCandidateBlocked", "QuantgateTaskAccuracyRegression", "QuantgateHighAnswerFlipRate",
    "QuantgateEvaluationFailed", "QuantgateEvaluationStuck", "QuantgateOperatorDown",
    "QuantgateOperatorMetricsAbsent",
}


def promtool() -> str:
    path = shutil.which("promtool")
    assert path, "promtool missing: run `bash scripts/system-deps.sh` (Debian package prometheus)"
    return path


def alerts() -> list[dict]:
    cr = yaml.safe_load(RULE_CR.read_text())
    return [r for g in cr["spec"]["groups"] for r in g["rules"] if "alert" in r]


def test_promtool_rules_file_is_generated_from_the_cr():
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import gen_gitops
    finally:
        sys.path.pop(0)
    assert RULES.read_text() == gen_gitops.promtool_rules(RULE_CR.read_text()), "run scripts/gen_gitops.py"


def test_promtool_check_rules():
    out = subprocess.run([promtool(), "check", "rules", str(RULES)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"SUCCESS: {len(alerts())} rules found" in out.stdout


def test_promtool_unit_tests_pass():
    out = subprocess.run([promtool(), "test", "rules", str(RULE_TESTS)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS" in out.stdout


def test_promtool_unit_tests_can_fail(tmp_path):
    """A broken threshold must make the unit tests fail (guards against vacuous expectations)."""
    (tmp_path / RULE_TESTS.name).write_text(RULE_TESTS.read_text())
    (tmp_path / RULES.name).write_text(RULES.read_text().replace("quantgate_evaluation_flip_rate > 0.1", "quantgate_evaluation_flip_rate > 0.5"))
    out = subprocess.run([promtool(), "test", "rules", str(tmp_path / RULE_TESTS.name)], capture_output=True, text=True)
    assert out.returncode == 1 and "QuantgateHighAnswerFlipRate" in out.stdout + out.stderr


def test_every_alert_has_a_fired_and_a_not_fired_case():
    spec = yaml.safe_load(RULE_TESTS.read_text())
    fired, quiet = set(), set()
    for test in spec["tests"]:
        for case in test.get("alert_rule_test", []):
            (fired if case.get("exp_alerts") else quiet).add(case["alertname"])
    names = {a["alert"] for a in alerts()}
    assert names == REQUIRED_ALERTS
    assert fired == names, f"never fired: {names - fired}"
    assert quiet == names, f"never checked not firing: {names - quiet}"


@pytest.mark.parametrize("alert", alerts(), ids=lambda a: a["alert"])
def test_alert_has_severity_numbers_and_runbook(alert):
    assert alert["labels"]["severity"] in {"warning", "critical"}
    ann = alert["annotations"]
    assert set(ann) == {"summary", "description", "runbook_url"}
    assert "{{" in ann["description"], "the description should carry the numbers or labels"
    anchor = ann["runbook_url"].split("#", 1)[1]
    assert anchor == alert["alert"].lower()
    headings = {h.strip().lower() for h in re.findall(r"^## (.+)$", RUNBOOKS.read_text(), re.M)}
    assert anchor in headings, f"docs/runbooks.md needs a '## {alert['alert']}' section"
    used = set(re.findall(r"\b(quantgate_[a-z_]+|up)\b(?=\s*[{\[)]|\s*[<>=*]|\s*$)", alert["expr"]))
    assert used and used <= KNOWN_SERIES, used - KNOWN_SERIES


def test_servicemonitor_matches_the_rules_job_label():
    sm = yaml.safe_load((PROM / "servicemonitor.yaml").read_text())
    assert sm["apiVersion"] == "monitoring.coreos.com/v1" and sm["kind"] == "ServiceMonitor"
    assert sm["spec"]["selector"]["matchLabels"]
    (endpoint,) = sm["spec"]["endpoints"]
    assert endpoint["port"] == "metrics" and endpoint["path"] == "/metrics"
    job = [r["replacement"] for r in endpoint["relabelings"] if r["targetLabel"] == "job"]
    assert job == ["quantgate-operator"]
    exprs = " ".join(a["expr"] for a in alerts())
    assert 'up{job="quantgate-operator"}' in exprs
