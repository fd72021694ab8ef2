"""The Argo CD health check for ModelEvaluationMatrix, run the way Argo CD runs it (the same two
engines as test_argocd_health.py: gopher-lua through tools/luahealth, and lupa's Lua 5.1 with only
base + table): Healthy when a variant is selected, Degraded when every row settled and none is (or
the matrix failed), Progressing otherwise."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from test_argocd_health import VALID, gopher_lua, run_gopher, run_lupa  # noqa: F401  (gopher_lua: fixture)
from test_argocd_health_engine import healthcheck  # noqa: F401  (fixture)

ROOT = Path(__file__).resolve().parents[2]
CHECK_DIR = ROOT / "manifests/argocd/health/quantgate.io/ModelEvaluationMatrix"
KEY = "resource.customizations.health.quantgate.io_ModelEvaluationMatrix"
SCRIPT = (CHECK_DIR / "health.lua").read_text()
CASES = [(c["inputPath"], yaml.safe_load((CHECK_DIR / c["inputPath"]).read_text()), c["healthStatus"])
         for c in yaml.safe_load((CHECK_DIR / "health_test.yaml").read_text())["tests"]]


@pytest.mark.parametrize("path,obj,want", CASES, ids=[c[0] for c in CASES])
def test_health_test_yaml_under_lupa_lua51(path, obj, want):
    assert run_lupa(obj, SCRIPT) == {"status": want["status"], "message": want["message"]}


@pytest.mark.parametrize("open_libs", [False, True], ids=["argocd-cm", "useOpenLibs"])
def test_health_test_yaml_under_gopher_lua(gopher_lua, open_libs):  # noqa: F811
    got = run_gopher(gopher_lua, [obj for _, obj, _ in CASES], open_libs, script=CHECK_DIR / "health.lua")
    assert got == [{"status": w["status"], "message": w["message"]} for _, _, w in CASES]


def test_every_mapping_is_covered():
    got = {}
    for _, obj, want in CASES:
        status = obj.get("status") or {}
        stale = status.get("observedGeneration", 0) < obj["metadata"].get("generation", 0)
        got.setdefault(want["status"], set()).add((status.get("phase"), bool(status.get("selected")), stale))
    assert ("Succeeded", True, False) in got["Healthy"] and len(got["Healthy"]) == 1
    assert got["Degraded"] == {("Succeeded", False, False), ("Failed", False, False)}
    assert ("Succeeded", True, True) in got["Progressing"]  # a selection of an older spec does not count
    assert {p for p, _, _ in got["Progressing"]} >= {None, "Running"}
    for _, _, want in CASES:
        assert want["status"] in VALID and len(want["message"]) <= 120, want


def test_testdata_files_all_referenced():
    assert {p for p, _, _ in CASES} == {f"testdata/{p.name}" for p in (CHECK_DIR / "testdata").glob("*.yaml")}


def test_script_uses_only_base_and_table():
    code = "\n".join(line.split("--")[0] for line in SCRIPT.splitlines())
    assert not re.search(r"\b(string|math|os|io|debug|coroutine)\s*\.", code)
    assert not re.search(r"[\w\)\]]\s*:\s*\w+\s*\(", code), "method calls on strings need the string library"


def test_argocd_cm_and_helm_values_embed_it():
    cm = yaml.safe_load((ROOT / "manifests/argocd/argocd-cm.yaml").read_text())
    assert cm["data"][KEY] == SCRIPT
    patch = yaml.safe_load((ROOT / "manifests/argocd/kustomize/argocd-cm-patch.yaml").read_text())
    assert patch["data"] == cm["data"]
    values = yaml.safe_load((ROOT / "manifests/argocd/helm-values.yaml").read_text())
    assert values["configs"]["cm"][KEY] == SCRIPT
    assert KEY.split(".", 3)[3] == "quantgate.io_ModelEvaluationMatrix"


def test_health_cases_under_argocd_itself(healthcheck):  # noqa: F811
    """The same cases through Argo CD v3.6.1's own code (tools/argocd/healthcheck, `make tools-argo`),
    reading the argocd-cm a user applies: the matrix key is picked by the objects' group and kind."""
    from test_argocd_health_engine import ARGOCD_CM, assess

    code, by_path = assess(healthcheck, ARGOCD_CM, CHECK_DIR / "health_test.yaml")
    assert code == 0, by_path
    for path, _, want in CASES:
        assert by_path[path]["got"] == want, by_path[path]
