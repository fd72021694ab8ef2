"""A real Prometheus (Debian's `prometheus` binary) on loopback for tests, and the dashboard's queries.

Used by tests/unit/test_dashboard_queries.py (metrics module served in-process) and
tests/integration/test_gitops_e2e.py (the running operator). Free ports, a temp storage
dir, 1 s scrape and rule intervals; the process is stopped on exit.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
DASHBOARD = ROOT / "manifests/prometheus/dashboards/quantgate.json"
RULES = ROOT / "manifests/prometheus/promtool/quantgate-rules.yaml"
JOB = "quantgate-operator"  # the job label the ServiceMonitor pins and the alerts use

# Grafana's variables as the dashboard's "All" selection and a 1 s scrape interval expand them.
GRAFANA_VARS = {"$__rate_interval": "1m", "$__range": "1h", "$namespace": ".*", "$evaluation": ".*"}


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


def query(base: str, expr: str) -> list[dict]:
    return api(base, "query", query=expr)["result"]


def scalar(base: str, expr: str) -> float | None:
    result = query(base, expr)
    return float(result[0]["value"][1]) if result else None


def wait_for(check, what: str, deadline_s: float = 60):
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        try:
            if check():
                return
        except (OSError, TypeError):  # not up yet / no sample yet
            pass
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def firing(base: str) -> set[tuple]:
    """(alertname, namespace, evaluation, task, reason) of every firing alert."""
    return {(a["labels"]["alertname"], a["labels"].get("namespace"), a["labels"].get("evaluation"),
             a["labels"].get("task"), a["labels"].get("reason"))
            for a in api(base, "alerts")["alerts"] if a["state"] == "firing"}


@contextmanager
def prometheus(workdir: Path, metrics_port: int):
    """Yields the base URL of a Prometheus scraping 127.0.0.1:metrics_port as job quantgate-operator,
    with the quantgate alert rules loaded."""
    binary = shutil.which("prometheus")
    assert binary, "prometheus missing: run `bash scripts/system-deps.sh` (Debian package prometheus)"
    shutil.copy(RULES, workdir / "rules.yaml")
    (workdir / "prometheus.yml").write_text(yaml.safe_dump({
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": ["rules.yaml"],
        "scrape_configs": [{"job_name": JOB, "static_configs": [{"targets": [f"127.0.0.1:{metrics_port}"]}]}],
    }))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with open(workdir / "prometheus.log", "w") as log:
        proc = subprocess.Popen(
            [binary, f"--config.file={workdir / 'prometheus.yml'}", f"--storage.tsdb.path={workdir / 'data'}",
             f"--web.listen-address=127.0.0.1:{port}"], stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: scalar(base, f'up{{job="{JOB}"}}') == 1, "the first scrape of the metrics endpoint")
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def panel_targets() -> list[tuple[str, str, str]]:
    """(panel title, refId, PromQL) of every dashboard target."""
    dash = json.loads(DASHBOARD.read_text())
    return [(p["title"], t["refId"], t["expr"]) for p in dash["panels"] for t in p["targets"]]


def expand(expr: str, **overrides: str) -> str:
    values = {**GRAFANA_VARS, **{f"${k}": v for k, v in overrides.items()}}
    for name, value in values.items():
        expr = expr.replace(name, value)
    assert "$" not in expr, f"unexpanded Grafana variable in {expr}"
    return expr
