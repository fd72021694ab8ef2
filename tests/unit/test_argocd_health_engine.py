"""health_test.yaml assessed by Argo CD's own code (v3.6.1), not by a harness of ours.

`argocd-healthcheck` (tools/argocd/healthcheck, built by `make tools-argo` in the Argo CD
wrapper module) hands the argocd-cm a user applies (manifests/argocd/argocd-cm.yaml) to Argo
CD's settings manager, which parses the `resource.customizations.health.quantgate.io_ModelEvaluation`
key into resource overrides, and assesses each testdata object with gitops-engine's
GetResourceHealth over util/lua's ResourceHealthOverrides: what the application controller
calls, with the libraries an argocd-cm script gets (no useOpenLibs). Every case must give
exactly its status and message; broken copies of the script must not.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from quantgate.dev import paths

ROOT = Path(__file__).resolve().parents[2]
CHECK_DIR = ROOT / "manifests/argocd/health/quantgate.io/ModelEvaluation"
ARGOCD_CM = ROOT / "manifests/argocd/argocd-cm.yaml"
KEY = "resource.customizations.health.quantgate.io_ModelEvaluation"
CASES = yaml.safe_load((CHECK_DIR / "health_test.yaml").read_text())["tests"]


@pytest.fixture(scope="module")
def healthcheck() -> Path:
    binary = paths.binary("argocd-healthcheck")
    if not os.access(binary, os.X_OK):
        message = f"{binary} missing: run `make tools-argo`"
        if os.environ.get("QUANTGATE_REQUIRE_CLUSTER"):
            pytest.fail(message)
        pytest.skip(message)
    return binary


def assess(binary: Path, cm: Path, tests: Path) -> tuple[int, dict[str, dict]]:
    out = subprocess.run([str(binary), str(cm), str(tests)], capture_output=True, text=True, timeout=120)
    assert out.returncode in (0, 1), out.stderr
    return out.returncode, {r["inputPath"]: r for r in map(json.loads, out.stdout.splitlines())}


@pytest.fixture(scope="module")
def results(healthcheck):
    return assess(healthcheck, ARGOCD_CM, CHECK_DIR / "health_test.yaml")


def test_every_case_ran(results):
    code, by_path = results
    assert sorted(by_path) == sorted(c["inputPath"] for c in CASES)
    assert code == 0, [r for r in by_path.values() if r.get("error") or r.get("got") != r.get("want")]


@pytest.mark.parametrize("case", CASES, ids=[c["inputPath"] for c in CASES])
def test_health_case_under_argocd(results, case):
    got = results[1][case["inputPath"]]
    assert "error" not in got, got
    assert got["got"] == case["healthStatus"]


def broken_copy(tmp_path: Path, old: str, new: str) -> Path:
    cm = yaml.safe_load(ARGOCD_CM.read_text())
    assert old in cm["data"][KEY]
    cm["data"][KEY] = cm["data"][KEY].replace(old, new, 1)
    path = tmp_path / "argocd-cm.yaml"
    path.write_text(yaml.safe_dump(cm))
    return path


def test_a_script_using_string_is_unknown_under_argocd(healthcheck, tmp_path):
    """Argo CD opens no `string` library for an argocd-cm script: the call errors and Argo CD reports
    Unknown with the Lua error (lupa's string methods would have let it pass)."""
    cm = broken_copy(tmp_path, "local hs = {}", "local hs = {}\nlocal shout = string.upper('x')")
    code, by_path = assess(healthcheck, cm, CHECK_DIR / "health_test.yaml")
    assert code == 1
    ship = by_path["testdata/ship.yaml"]["got"]
    assert ship["status"] == "Unknown" and "non-table object(nil) with key 'upper'" in ship["message"], ship


def test_a_wrong_verdict_mapping_is_caught(healthcheck, tmp_path):
    cm = broken_copy(tmp_path, 'hs.status = "Suspended"', 'hs.status = "Healthy"')
    code, by_path = assess(healthcheck, cm, CHECK_DIR / "health_test.yaml")
    assert code == 1
    assert by_path["testdata/abtest.yaml"]["got"]["status"] == "Healthy"
