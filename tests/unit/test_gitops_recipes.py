"""The GitOps recipes are well-formed: sync-wave example, Argo Rollouts AnalysisTemplates, Kargo.

No cluster or network: each manifest is checked against the shape of the published CRDs
(required fields and the field names they define, written out below from argo-rollouts'
AnalysisTemplate/Rollout, Kargo's Stage/Warehouse and Argo CD's Application types), and the
cross-references between files are resolved. The Prometheus query of quantgate-verdict is
run against a real Prometheus in test_dashboard_queries.py.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
ARGOCD = ROOT / "manifests/argocd"
EXAMPLE = ARGOCD / "example"
ROLLOUTS = ROOT / "manifests/rollouts"
KARGO = ROOT / "manifests/kargo"


# --- a minimal structural validator (type, required, properties, closed objects, items, enum) ---

def S(type_=None, required=(), props=None, closed=False, items=None, enum=None, min_items=0):
    return {"type": type_, "required": list(required), "properties": props or {}, "closed": closed,
            "items": items, "enum": enum, "minItems": min_items}


ANY = S()
STR = S("string")
TYPES = {"string": str, "object": dict, "array": list, "boolean": bool, "integer": int}


def validate(value, schema, path="$") -> list[str]:
    errors = []
    t = schema["type"]
    if t == "int-or-string":
        if not isinstance(value, (int, str)) or isinstance(value, bool):
            return [f"{path}: want int or string, got {type(value).__name__}"]
    elif t and not isinstance(value, TYPES[t]):
        return [f"{path}: want {t}, got {type(value).__name__}"]
    if schema["enum"] is not None and value not in schema["enum"]:
        errors.append(f"{path}: {value!r} not in {schema['enum']}")
    if isinstance(value, dict):
        errors += [f"{path}.{k}: required" for k in schema["required"] if k not in value]
        for key, sub in value.items():
            if key in schema["properties"]:
                errors += validate(sub, schema["properties"][key], f"{path}.{key}")
            elif schema["closed"]:
                errors.append(f"{path}.{key}: unknown field")
    if isinstance(value, list):
        if len(value) < schema["minItems"]:
            errors.append(f"{path}: needs at least {schema['minItems']} items")
        if schema["items"]:
            for i, item in enumerate(value):
                errors += validate(item, schema["items"], f"{path}[{i}]")
    return errors


def manifest(kind, api_version, spec, required_spec=True):
    return S("object", ["apiVersion", "kind", "metadata"] + (["spec"] if required_spec else []), {
        "apiVersion": S("string", enum=[api_version]), "kind": S("string", enum=[kind]),
        "metadata": S("object", ["name"], {"name": STR, "namespace": STR, "labels": S("object"),
                                           "annotations": S("object")}),
        "spec": spec})


CONTAINER = S("object", ["name", "image"], {"name": STR, "image": STR, "command": S("array", items=STR),
                                            "args": S("array", items=STR)})
JOB_SPEC = S("object", ["template"], {
    "backoffLimit": S("integer"), "ttlSecondsAfterFinished": S("integer"), "activeDeadlineSeconds": S("integer"),
    "template": S("object", ["spec"], {"spec": S("object", ["containers"], {
        "restartPolicy": S("string", enum=["Never", "OnFailure"]),  # a Job rejects Always
        "serviceAccountName": STR, "containers": S("array", items=CONTAINER, min_items=1)})})})
# argo-rollouts pkg/apis/rollouts/v1alpha1/analysis_types.go: Metric and MetricProvider (the two we use).
METRIC = S("object", ["name", "provider"], {
    "name": STR, "interval": STR, "initialDelay": STR, "count": S("int-or-string"),
    "successCondition": STR, "failureCondition": STR, "failureLimit": S("int-or-string"),
    "inconclusiveLimit": S("int-or-string"), "consecutiveErrorLimit": S("int-or-string"),
    "consecutiveSuccessLimit": S("int-or-string"),
    "provider": S("object", props={
        "job": S("object", ["spec"], {"metadata": S("object"), "spec": JOB_SPEC}, closed=True),
        "prometheus": S("object", ["address", "query"], {
            "address": STR, "query": STR, "timeout": S("integer"), "insecure": S("boolean"),
            "headers": S("array"), "authentication": S("object"), "rangeQuery": S("object")}, closed=True),
    }, closed=True),
}, closed=True)
ANALYSIS_TEMPLATE = manifest("AnalysisTemplate", "argoproj.io/v1alpha1", S("object", ["metrics"], {
    "args": S("array", items=S("object", ["name"], {"name": STR, "value": STR, "valueFrom": S("object")}, closed=True)),
    "metrics": S("array", items=METRIC, min_items=1), "dryRun": S("array"), "measurementRetention": S("array"),
}, closed=True))
ROLLOUT_ARGS = S("array", items=S("object", ["name"], {"name": STR, "value": STR, "valueFrom": S("object")}, closed=True))
ROLLOUT = manifest("Rollout", "argoproj.io/v1alpha1", S("object", ["selector", "template", "strategy"], {
    "replicas": S("integer"), "selector": S("object"), "template": S("object"),
    "strategy": S("object", props={"canary": S("object", props={"steps": S("array", items=S("object", props={
        "analysis": S("object", ["templates"], {"templates": S("array", items=S("object", ["templateName"], {
            "templateName": STR, "clusterScope": S("boolean")}, closed=True), min_items=1), "args": ROLLOUT_ARGS}),
        "setWeight": S("integer"), "pause": S("object")}, closed=True))})})}))
# Kargo api/v1alpha1/stage_types.go and warehouse_types.go.
STAGE = manifest("Stage", "kargo.akuity.io/v1alpha1", S("object", ["requestedFreight"], {
    "shard": STR,
    "requestedFreight": S("array", min_items=1, items=S("object", ["origin", "sources"], {
        "origin": S("object", ["kind", "name"], {"kind": S("string", enum=["Warehouse"]), "name": STR}, closed=True),
        "sources": S("object", props={"direct": S("boolean"), "stages": S("array", items=STR), "verifiedFor": STR},
                     closed=True)}, closed=True)),
    "promotionTemplate": S("object", ["spec"], {"spec": S("object", props={
        "vars": S("array"), "steps": S("array", min_items=1, items=S("object", ["uses"], {
            "uses": STR, "as": STR, "config": S("object"), "if": STR}))})}),
    "verification": S("object", props={
        "analysisTemplates": S("array", items=S("object", ["name"], {"name": STR, "kind": STR}, closed=True)),
        "analysisRunMetadata": S("object", props={"labels": S("object"), "annotations": S("object")}, closed=True),
        "args": S("array", items=S("object", ["name", "value"], {"name": STR, "value": STR}, closed=True))},
        closed=True),
}, closed=True))
WAREHOUSE = manifest("Warehouse", "kargo.akuity.io/v1alpha1", S("object", ["subscriptions"], {
    "subscriptions": S("array", min_items=1, items=S("object", props={"git": S("object", ["repoURL"], {
        "repoURL": STR, "branch": STR, "includePaths": S("array", items=STR)}), "image": S("object"),
        "chart": S("object")}, closed=True)), "freightCreationPolicy": STR, "interval": STR, "shard": STR}, closed=True))
APPLICATION = manifest("Application", "argoproj.io/v1alpha1", S("object", ["destination", "project"], {
    "project": STR, "source": S("object", ["repoURL"], {"repoURL": STR, "targetRevision": STR, "path": STR}),
    "destination": S("object", props={"server": STR, "namespace": STR, "name": STR}, closed=True),
    "syncPolicy": S("object", props={"automated": S("object"), "syncOptions": S("array", items=STR),
                                     "retry": S("object")}, closed=True)}))


def load(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def one(path: Path) -> dict:
    (doc,) = load(path)
    return doc


def template_args(template: dict) -> tuple[set[str], set[str]]:
    """(declared args, args without a default that callers must pass)."""
    args = template["spec"].get("args", [])
    return {a["name"] for a in args}, {a["name"] for a in args if "value" not in a and "valueFrom" not in a}


TEMPLATES = {one(p)["metadata"]["name"]: one(p) for p in sorted(ROLLOUTS.glob("analysistemplate-*.yaml"))}


@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_analysis_template_shape(name):
    template = TEMPLATES[name]
    assert validate(template, ANALYSIS_TEMPLATE) == []
    declared, _ = template_args(template)
    used = set(re.findall(r"\{\{\s*args\.([\w-]+)\s*\}\}", yaml.safe_dump(template)))
    assert used and used <= declared, f"undeclared args {used - declared}"
    for metric in template["spec"]["metrics"]:
        if "prometheus" in metric["provider"]:
            assert "{{" not in metric["successCondition"] and "result[0]" in metric["successCondition"]


def test_job_template_waits_for_the_promotable_condition():
    job = TEMPLATES["quantgate-promotable"]["spec"]["metrics"][0]["provider"]["job"]["spec"]
    (container,) = job["template"]["spec"]["containers"]
    cmd = container["command"]
    assert cmd[:3] == ["kubectl", "wait", "--for=condition=Promotable"]
    assert any(c.startswith("--timeout=") for c in cmd) and cmd[-1].startswith("modelevaluation.quantgate.io/")
    assert job["backoffLimit"] == 0, "a retried Job would turn one Block into several waits"
    rbac = {d["kind"]: d for d in load(ROLLOUTS / "rbac.yaml")}
    assert job["template"]["spec"]["serviceAccountName"] == rbac["ServiceAccount"]["metadata"]["name"]
    (rule,) = rbac["Role"]["rules"]
    assert rule["apiGroups"] == ["quantgate.io"] and "modelevaluations" in rule["resources"] and "watch" in rule["verbs"]
    assert rbac["RoleBinding"]["roleRef"]["name"] == rbac["Role"]["metadata"]["name"]


def test_prometheus_template_waits_then_decides_once():
    metric = TEMPLATES["quantgate-verdict"]["spec"]["metrics"][0]
    assert metric["count"] == 1 and metric["failureLimit"] == 0
    # An empty result (not decided yet) is a measurement error, retried without counting after
    # Argo Rollouts' fixed 10 s error retry interval (not the metric's interval): wait >= 1 h.
    assert metric["consecutiveErrorLimit"] * 10 >= 3600
    assert "len(result)" not in metric["successCondition"]


def test_rollout_example_passes_every_required_arg():
    rollout = one(ROLLOUTS / "rollout-example.yaml")
    assert validate(rollout, ROLLOUT) == []
    steps = rollout["spec"]["strategy"]["canary"]["steps"]
    assert "analysis" in steps[0], "the analysis must run before any traffic shifts"
    for ref in steps[0]["analysis"]["templates"]:
        _, needed = template_args(TEMPLATES[ref["templateName"]])
        assert needed <= {a["name"] for a in steps[0]["analysis"]["args"]}


def test_kargo_stage_and_warehouse():
    stage, warehouse = one(KARGO / "stage.yaml"), one(KARGO / "warehouse.yaml")
    assert validate(stage, STAGE) == [] and validate(warehouse, WAREHOUSE) == []
    assert stage["metadata"]["namespace"] == warehouse["metadata"]["namespace"]
    assert stage["spec"]["requestedFreight"][0]["origin"]["name"] == warehouse["metadata"]["name"]
    verification = stage["spec"]["verification"]
    stage_args = {a["name"] for a in verification["args"]}
    for ref in verification["analysisTemplates"]:
        declared, needed = template_args(TEMPLATES[ref["name"]])
        assert stage_args <= declared, "Kargo fails a run whose args a template does not declare"
        assert needed <= stage_args
    app = one(EXAMPLE / "application.yaml")
    (update,) = stage["spec"]["promotionTemplate"]["spec"]["steps"]
    assert update["config"]["apps"][0]["name"] == app["metadata"]["name"]
    assert app["spec"]["source"]["path"] in warehouse["spec"]["subscriptions"][0]["git"]["includePaths"]


# --- the sync-wave example ---

def example_resources() -> list[dict]:
    kust = one(EXAMPLE / "app/kustomization.yaml")
    return [d for f in kust["resources"] for d in load(EXAMPLE / "app" / f)]


def wave(doc: dict) -> int:
    value = doc["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"]
    assert isinstance(value, str), "Argo CD wants the sync-wave annotation as a string"
    return int(value)


def test_example_application_points_at_the_example():
    app = one(EXAMPLE / "application.yaml")
    assert validate(app, APPLICATION) == []
    assert (ROOT / app["spec"]["source"]["path"]) == EXAMPLE / "app"
    assert app["spec"]["destination"]["namespace"] == one(EXAMPLE / "app/kustomization.yaml")["namespace"]


def test_example_waves_gate_the_route_on_the_evaluation():
    docs = example_resources()
    by_kind: dict[str, list[dict]] = {}
    for d in docs:
        by_kind.setdefault(d["kind"], []).append(d)
    (meval,) = by_kind["ModelEvaluation"]
    (route,) = by_kind["HTTPRoute"]
    services = by_kind["InferenceService"]
    assert max(wave(s) for s in services) < wave(meval) < wave(route)
    assert wave(route) == max(wave(d) for d in docs), "the promotion must come after the gate"
    names = {s["metadata"]["name"] for s in services}
    spec = meval["spec"]
    assert {spec["baseline"]["inferenceServiceRef"]["name"], spec["candidate"]["inferenceServiceRef"]["name"]} <= names
    (backend,) = route["spec"]["rules"][0]["backendRefs"]
    assert backend["name"] == spec["candidate"]["inferenceServiceRef"]["name"] + "-predictor"


def test_example_evaluation_is_a_valid_spec():
    from quantgate.api.v1alpha1 import GROUP, KIND, VERSION, ModelEvaluationSpec

    (meval,) = [d for d in example_resources() if d["kind"] == "ModelEvaluation"]
    assert meval["apiVersion"] == f"{GROUP}/{VERSION}" and meval["kind"] == KIND
    ModelEvaluationSpec.model_validate(meval["spec"])


def test_generated_gitops_files_are_up_to_date():
    out = subprocess.run([sys.executable, str(ROOT / "scripts/gen_gitops.py"), "--check"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


def test_validator_rejects_broken_manifests():
    """The structural check can fail: a typo'd field and a missing required one are caught."""
    broken = yaml.safe_load(yaml.safe_dump(TEMPLATES["quantgate-verdict"]))
    broken["spec"]["metrics"][0]["sucessCondition"] = broken["spec"]["metrics"][0].pop("successCondition")
    del broken["spec"]["metrics"][0]["provider"]["prometheus"]["address"]
    errors = validate(broken, ANALYSIS_TEMPLATE)
    assert any("sucessCondition: unknown field" in e for e in errors)
    assert any("prometheus.address: required" in e for e in errors)
    stage = one(KARGO / "stage.yaml")
    stage["spec"]["requestedFreight"] = []
    assert validate(stage, STAGE) == ["$.spec.requestedFreight: needs at least 1 items"]


# --- kustomize, with the real kubectl (from `make tools`) ---

@pytest.fixture(scope="module")
def kubectl() -> str:
    import os

    from quantgate.dev import paths

    binary = paths.binary("kubectl")
    if not binary.exists():
        message = f"kubectl missing in {paths.bin_dir()}: run `make tools`"
        if os.environ.get("QUANTGATE_REQUIRE_CLUSTER"):
            pytest.fail(message)
        pytest.skip(message)
    return str(binary)


def test_kustomize_patch_merges_into_argocd_cm(kubectl, tmp_path):
    """The patch applied by kustomize/kustomization.yaml, against a stand-in for Argo CD's install."""
    upstream = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "argocd-cm", "labels": {
        "app.kubernetes.io/name": "argocd-cm", "app.kubernetes.io/part-of": "argocd"}},
        "data": {"url": "https://argocd.example.com"}}
    (tmp_path / "install.yaml").write_text(yaml.safe_dump(upstream))
    (tmp_path / "argocd-cm-patch.yaml").write_text((ARGOCD / "kustomize/argocd-cm-patch.yaml").read_text())
    kust = one(ARGOCD / "kustomize/kustomization.yaml")
    kust["resources"] = ["install.yaml"]
    (tmp_path / "kustomization.yaml").write_text(yaml.safe_dump(kust))
    out = subprocess.run([kubectl, "kustomize", str(tmp_path)], capture_output=True, text=True, check=True)
    (cm,) = [d for d in yaml.safe_load_all(out.stdout) if d]
    health = (ARGOCD / "health/quantgate.io/ModelEvaluation/health.lua").read_text()
    matrix = (ARGOCD / "health/quantgate.io/ModelEvaluationMatrix/health.lua").read_text()
    assert cm["metadata"]["namespace"] == "argocd"
    assert cm["data"] == {"url": "https://argocd.example.com",
                          "resource.customizations.health.quantgate.io_ModelEvaluation": health,
                          "resource.customizations.health.quantgate.io_ModelEvaluationMatrix": matrix}


def test_example_app_renders_with_kustomize(kubectl):
    out = subprocess.run([kubectl, "kustomize", str(EXAMPLE / "app")], capture_output=True, text=True, check=True)
    docs = [d for d in yaml.safe_load_all(out.stdout) if d]
    assert sorted((d["kind"], d["metadata"]["name"]) for d in docs) == [
        ("HTTPRoute", "llm"), ("InferenceService", "llama-fp16"), ("InferenceService", "llama-int4"),
        ("ModelEvaluation", "llama-int4")]
    assert {d["metadata"]["namespace"] for d in docs} == {"models"}
