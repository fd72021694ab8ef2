"""The Argo CD health check for ModelEvaluation, run the way Argo CD runs it.

Drives manifests/argocd/health/quantgate.io/ModelEvaluation/health_test.yaml (Argo CD's
own test format, so `go test ./util/lua/` in Argo CD would run the same cases) through:
- tools/luahealth: gopher-lua v1.1.2, Argo CD's interpreter, with the libraries Argo CD
  opens for an argocd-cm script (package, base, table) and with useOpenLibs;
- lupa's Lua 5.1 with an environment restricted to base + table, as a second engine.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHECK_DIR = ROOT / "manifests/argocd/health/quantgate.io/ModelEvaluation"
sys.path.insert(0, str(ROOT / "tools/luahealth"))
import luahealth  # noqa: E402  (tools/luahealth/luahealth.py)
HEALTH_KEY = "resource.customizations.health.quantgate.io_ModelEvaluation"
VALID = {"Healthy", "Progressing", "Degraded", "Suspended", "Missing", "Unknown"}

# Lua 5.1 base functions gopher-lua's OpenBase and OpenPackage register, plus `table`.
BASE_NAMES = (
    "assert collectgarbage error getfenv getmetatable ipairs load loadstring next pairs pcall print "
    "rawequal rawget rawset select setfenv setmetatable tonumber tostring type unpack xpcall "
    "_VERSION require module package table"
).split()


def load_cases() -> list[tuple[str, dict, dict]]:
    spec = yaml.safe_load((CHECK_DIR / "health_test.yaml").read_text())
    return [
        (case["inputPath"], yaml.safe_load((CHECK_DIR / case["inputPath"]).read_text()), case["healthStatus"])
        for case in spec["tests"]
    ]


CASES = load_cases()
SCRIPT = (CHECK_DIR / "health.lua").read_text()


@pytest.fixture(scope="session")
def gopher_lua() -> Path:
    """tools/luahealth built once per source version (cached under ~/.cache/quantgate/bin)."""
    if luahealth.go_binary() is None:
        pytest.skip("Go is not installed; the gopher-lua harness needs it (the lupa engine still runs)")
    return luahealth.build()


def run_gopher(binary: Path, objects: list[dict], open_libs: bool, script: Path | None = None) -> list[dict]:
    return luahealth.run(binary, script or CHECK_DIR / "health.lua", objects, open_libs)


def run_lupa(obj: dict, script: str = SCRIPT) -> dict:
    from lupa import lua51

    assert lua51.LUA_VERSION[:2] == (5, 1)
    lua = lua51.LuaRuntime()
    g = lua.globals()
    env = lua.table_from({name: g[name] for name in BASE_NAMES if g[name] is not None})
    env["obj"] = lua.table_from(obj, recursive=True)
    run = lua.eval(
        "function(src, env) local f, err = loadstring(src, 'health.lua'); if not f then error(err) end;"
        " setfenv(f, env); return f() end"
    )
    result = run(script, env)
    return {"status": result["status"], "message": result["message"]}


@pytest.mark.parametrize("open_libs", [False, True], ids=["argocd-cm", "useOpenLibs"])
def test_health_test_yaml_under_gopher_lua(gopher_lua, open_libs):
    got = run_gopher(gopher_lua, [obj for _, obj, _ in CASES], open_libs)
    mismatches = [
        (path, want, res) for (path, _, want), res in zip(CASES, got, strict=True)
        if res != {"status": want["status"], "message": want["message"]}
    ]
    assert not mismatches, mismatches


@pytest.mark.parametrize("path,obj,want", CASES, ids=[c[0] for c in CASES])
def test_health_test_yaml_under_lupa_lua51(path, obj, want):
    assert run_lupa(obj) == {"status": want["status"], "message": want["message"]}


def test_harness_reproduces_argocd_environment(gopher_lua, tmp_path):
    """The harness must fail a script that uses `string` without useOpenLibs, as Argo CD does."""
    probe = tmp_path / "probe.lua"
    probe.write_text('return {status = "Healthy", message = string.upper("x")}')
    (closed,) = run_gopher(gopher_lua, [{}], open_libs=False, script=probe)
    (opened,) = run_gopher(gopher_lua, [{}], open_libs=True, script=probe)
    assert "error" in closed and "nil" in closed["error"]
    assert opened == {"status": "Healthy", "message": "X"}
    probe.write_text('return {status = "Fine", message = "x"}')
    (invalid,) = run_gopher(gopher_lua, [{}], open_libs=False, script=probe)
    assert invalid == {"status": "Unknown", "message": "Lua returned an invalid health status"}


def test_script_uses_only_base_and_table():
    """lupa leaves string methods reachable, so lint what the restricted env cannot catch."""
    code = "\n".join(line.split("--")[0] for line in SCRIPT.splitlines())
    assert not re.search(r"\b(string|math|os|io|debug|coroutine)\s*\.", code)
    assert not re.search(r"[\w\)\]]\s*:\s*\w+\s*\(", code), "method calls on strings need the string library"
    assert "require" not in code


def test_every_mapping_of_the_issue_is_covered():
    got = {}
    for path, obj, want in CASES:
        status = obj.get("status") or {}
        stale = "observedGeneration" not in status or status["observedGeneration"] < obj["metadata"].get("generation", 0)
        got.setdefault(want["status"], set()).add((status.get("phase"), status.get("verdict"), stale))
    assert (None, None, True) in got["Progressing"]  # no status
    assert {p for p, _, _ in got["Progressing"]} >= {None, "Pending", "WaitingForEndpoints", "Running", "Succeeded", "Failed"}
    assert ("Succeeded", "Block", True) in got["Progressing"]  # stale generation
    assert {v for p, v, s in got["Healthy"] if p == "Succeeded" and not s} == {"Ship", "Monitor"}
    assert {v for _, v, _ in got["Suspended"]} == {"ABTest"}
    assert {p for p, _, _ in got["Degraded"]} == {"Succeeded", "Failed"}
    assert ("Succeeded", "Block", False) in got["Degraded"]
    for _, _, want in CASES:
        assert want["status"] in VALID and len(want["message"]) <= 120, want


def test_testdata_files_all_referenced():
    referenced = {path for path, _, _ in CASES}
    on_disk = {f"testdata/{p.name}" for p in (CHECK_DIR / "testdata").glob("*.yaml")}
    assert referenced == on_disk


def test_argocd_cm_and_helm_values_embed_the_same_script():
    cm = yaml.safe_load((ROOT / "manifests/argocd/argocd-cm.yaml").read_text())
    assert cm["metadata"]["name"] == "argocd-cm" and cm["data"][HEALTH_KEY] == SCRIPT
    patch = yaml.safe_load((ROOT / "manifests/argocd/kustomize/argocd-cm-patch.yaml").read_text())
    assert patch["metadata"]["name"] == "argocd-cm" and patch["data"] == cm["data"]
    values = yaml.safe_load((ROOT / "manifests/argocd/helm-values.yaml").read_text())
    assert values["configs"]["cm"][HEALTH_KEY] == SCRIPT
    # Argo CD splits the key on "." into 4 parts, the last being <group>_<Kind>.
    assert HEALTH_KEY.split(".", 3)[3] == "quantgate.io_ModelEvaluation"
