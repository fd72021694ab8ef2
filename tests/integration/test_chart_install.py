"""charts/quantgate on the real control plane: `helm install` into a namespace enforcing Pod Security
`restricted`, the operator Deployment's pod run by the process kubelet reaching verdicts (runner Jobs
included), every chart combination accepted by the apiserver, `helm upgrade` with changed values and
`helm uninstall` leaving no orphans (ModelEvaluations and the CRD are kept)."""

from __future__ import annotations

import json
import subprocess
import textwrap
import urllib.request
from pathlib import Path

import pytest
import yaml

from operator_harness import evaluation, free_port, get, serve_fleet, wait_phase
from quantgate.dev import paths
from quantgate.dev.harness import create_namespace, wait_for

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "quantgate"
KSERVE_CRD = ROOT / "manifests" / "kserve" / "inferenceservices.serving.kserve.io.yaml"
RELEASE = "qg"
API_KEY = "sk-chart-test-5be1d0c0"
ACC = {"arc_challenge": 0.7, "hellaswag": 0.8, "mmlu": 0.7, "truthfulqa_mc2": 0.7, "winogrande": 0.75,
       "gsm8k": 0.7}
FLEET = {"seed": 5, "reference": "fp16", "variants": [
    {"name": "fp16", "model": "m-fp16", "accuracy": ACC},
    {"name": "int4", "model": "m-int4", "accuracy": {**ACC, "gsm8k": 0.35}, "flipRate": {"default": 0.1}},
    {"name": "keyed", "model": "m-keyed", "accuracy": ACC, "apiKey": API_KEY},
]}
LIMIT = 8
RESTRICTED = {f"pod-security.kubernetes.io/{mode}": "restricted" for mode in ("enforce", "warn", "audit")}
CHART_LABEL = f"app.kubernetes.io/instance={RELEASE}"
KOPF_FINALIZER = "quantgate.io/operator"
NAMESPACED_KINDS = "deployments,replicasets,pods,services,serviceaccounts,roles,rolebindings,networkpolicies"


def field_names(schema: dict, prefix: str = "") -> set[str]:
    """Every property path of an OpenAPI schema."""
    out = set()
    for key, sub in (schema.get("openAPIV3Schema", schema).get("properties") or {}).items():
        out |= {prefix + key} | field_names(sub, f"{prefix}{key}.")
    items = schema.get("items")
    if isinstance(items, dict):
        out |= field_names(items, f"{prefix}[].")
    return out


def helm(cluster, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    out = subprocess.run([str(paths.binary("helm")), f"--kubeconfig={cluster.kubeconfig}", *args],
                         capture_output=True, text=True, timeout=300)
    if check:
        assert out.returncode == 0, f"helm {' '.join(args)}: {out.stderr}"
    return out


def operator_pods(cluster, ns: str) -> list[dict]:
    out = cluster.kubectl("get", "pods", "-n", ns, "-l", "app.kubernetes.io/component=operator", "-o", "json")
    return [p for p in json.loads(out.stdout)["items"] if not p["metadata"].get("deletionTimestamp")]


def running_operator(cluster, ns: str) -> dict:
    def check():
        pods = operator_pods(cluster, ns)
        ready = [p for p in pods if p["status"].get("phase") == "Running"
                 and all(c.get("ready") for c in p["status"].get("containerStatuses", []))]
        return ready[0] if len(pods) == 1 and ready else None

    return wait_for(check, timeout=90, interval=0.5, what="one Running, ready operator pod")


@pytest.fixture(scope="module")
def install(cluster, tmp_path_factory):
    """The chart installed into a restricted namespace it also watches; a simulated model fleet."""
    from quantgate.simulate.fleet import SimulatedFleet

    crd_before = cluster.kubectl("get", "crd", "modelevaluations.quantgate.io", check=False).returncode == 0
    if crd_before:  # Helm never upgrades crds/: the documented upgrade step (docs/install.md)
        cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CHART / "crds"))
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(KSERVE_CRD))
    ns = create_namespace(cluster, "chart", labels=RESTRICTED)
    port = free_port()
    values = tmp_path_factory.mktemp("chart") / "values.yaml"
    values.write_text(yaml.safe_dump({
        "image": {"repository": "quantgate", "tag": "test"},
        "watch": {"namespaces": [ns]},
        "metrics": {"port": port},
        "operator": {"endpointTimeoutSeconds": 30,
                     "extraEnv": [{"name": "QUANTGATE_POLL_INTERVAL_S", "value": "1"},
                                  # the process kubelet runs pods on this host: bind loopback only
                                  {"name": "QUANTGATE_METRICS_HOST", "value": "127.0.0.1"}]},
    }))
    installed = helm(cluster, "install", RELEASE, str(CHART), "-n", ns, "-f", str(values), "--wait", "--timeout", "120s")
    with SimulatedFleet(FLEET) as fleet:
        serve_fleet(cluster, ns, fleet)
        try:
            yield {"ns": ns, "port": port, "values": values, "notes": installed.stdout, "fleet": fleet,
                   "crd_before": crd_before}
        finally:
            helm(cluster, "uninstall", RELEASE, "-n", ns, "--wait", check=False)
            cluster.kubectl("delete", "namespace", ns, "--wait=false", check=False)


def test_every_object_is_accepted_and_the_notes_explain_the_first_evaluation(cluster, install):
    ns = install["ns"]
    manifest = helm(cluster, "get", "manifest", RELEASE, "-n", ns).stdout
    objects = [d for d in yaml.safe_load_all(manifest) if d]
    assert {d["kind"] for d in objects} >= {"ServiceAccount", "Role", "RoleBinding", "ClusterRole",
                                            "ClusterRoleBinding", "Service", "Deployment"}
    for d in objects:
        scope = ["-n", d["metadata"]["namespace"]] if d["metadata"].get("namespace") else []
        cluster.kubectl("get", d["kind"], d["metadata"]["name"], *scope)  # raises if absent
    crd = get(cluster, "crd", "modelevaluations.quantgate.io", "default")
    assert any(c["type"] == "Established" and c["status"] == "True" for c in crd["status"]["conditions"])
    if not install["crd_before"]:  # a fresh cluster: Helm installed it from crds/
        chart_crd = yaml.safe_load((CHART / "crds" / "modelevaluations.quantgate.io.yaml").read_text())
        assert crd["spec"]["names"] == chart_crd["spec"]["names"]
    # Field names as the apiserver parsed them (Go YAML 1.1: an unquoted `n:` would become `false`).
    chart_crd = yaml.safe_load((CHART / "crds" / "modelevaluations.quantgate.io.yaml").read_text())
    assert field_names(crd["spec"]["versions"][0]["schema"]) == field_names(chart_crd["spec"]["versions"][0]["schema"])
    notes = install["notes"]
    assert f"kubectl apply -n {ns} -f -" in notes and ".status.verdict" in notes
    # The first ModelEvaluation the notes show is one the apiserver accepts.
    example = notes.split("<<'YAML'", 1)[1].split("\n  YAML", 1)[0].split("\n", 1)[1]
    sample = yaml.safe_load(textwrap.dedent(example))
    assert sample["kind"] == "ModelEvaluation"
    cluster.kubectl("apply", "--dry-run=server", "-n", ns, "-f", "-", input=yaml.safe_dump(sample))


def test_operator_pod_is_admitted_under_restricted_and_healthy(cluster, install):
    ns = install["ns"]
    labels = get(cluster, "namespace", ns, ns)["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    pod = running_operator(cluster, ns)
    assert pod["spec"]["serviceAccountName"] == f"{RELEASE}-quantgate-operator"
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    health = urllib.request.urlopen(f"http://127.0.0.1:{install['port']}/healthz", timeout=5)
    assert health.status == 200


def test_operator_reaches_verdicts_through_runner_jobs(cluster, install):
    """The whole path as the chart's ServiceAccounts: operator (ISVC, Secret, Job, ConfigMap reads,
    status, events) and runner Job pods (results ConfigMaps), all admitted under `restricted`."""
    ns = install["ns"]
    cluster.kubectl("create", "secret", "generic", "endpoint-key", "-n", ns, f"--from-literal=api-key={API_KEY}")
    keyed = {"endpoint": {"url": install["fleet"].url("keyed"), "model": "m-keyed",
                          "apiKeySecretRef": {"name": "endpoint-key", "key": "api-key"}}}
    block = evaluation("int4", {"inferenceServiceRef": {"name": "fp16", "model": "m-fp16"}},
                       {"inferenceServiceRef": {"name": "int4", "model": "m-int4"}}, suite="local", limit=LIMIT,
                       profile="math-tutoring")
    keyed_eval = evaluation("keyed", {"inferenceServiceRef": {"name": "fp16", "model": "m-fp16"}}, keyed,
                            suite="local", limit=LIMIT)
    for obj in (block, keyed_eval):
        cluster.apply(obj, ns)
    verdicts = {}
    for name in ("int4", "keyed"):
        st = wait_phase(cluster, name, ns, ("Succeeded", "Failed"), timeout=180)["status"]
        assert st["phase"] == "Succeeded", (name, st.get("message"))
        verdicts[name] = st["verdict"]
    assert verdicts == {"int4": "Block", "keyed": "Ship"}
    jobs = json.loads(cluster.kubectl("get", "jobs", "-n", ns, "-o", "json").stdout)["items"]
    assert jobs and all(j["spec"]["template"]["spec"]["serviceAccountName"] == "quantgate-runner" for j in jobs)
    assert all(any(c["type"] == "Complete" and c["status"] == "True" for c in j["status"].get("conditions", []))
               for j in jobs)
    log = cluster.kubectl("logs", "-n", ns, f"deployment/{RELEASE}-quantgate-operator").stdout
    denied = [line[:400] for line in log.splitlines() if "Forbidden" in line or "forbidden" in line]
    assert not denied, "the operator was denied calls:\n" + "\n".join(denied[:10])
    metrics = urllib.request.urlopen(f"http://127.0.0.1:{install['port']}/metrics", timeout=5).read().decode()
    assert f'quantgate_evaluation_verdict{{evaluation="int4",namespace="{ns}",verdict="Block"}} 1.0' in metrics


def test_upgrade_with_changed_values_leaves_no_orphans(cluster, install):
    ns = install["ns"]
    extra = create_namespace(cluster, "chart-extra", labels=RESTRICTED)
    try:
        before = running_operator(cluster, ns)["metadata"]["name"]
        helm(cluster, "upgrade", RELEASE, str(CHART), "-n", ns, "-f", str(install["values"]),
             "--set", "metrics.service.enabled=false", "--set", "operator.maxConcurrent=3",
             "--set", "operator.readSecrets=false", "--set", f"runner.namespaces={{{ns},{extra}}}",
             "--wait", "--timeout", "120s")
        assert cluster.kubectl("get", "service", f"{RELEASE}-quantgate-metrics", "-n", ns,
                               check=False).returncode != 0, "the disabled Service must be deleted"
        for kind in ("serviceaccount/quantgate-runner", f"role/{RELEASE}-quantgate-runner",
                     f"rolebinding/{RELEASE}-quantgate-runner"):
            cluster.kubectl("get", kind, "-n", extra)
        role = get(cluster, "role", f"{RELEASE}-quantgate-operator", ns)
        assert not any("secrets" in r["resources"] for r in role["rules"])
        after = running_operator(cluster, ns)
        assert after["metadata"]["name"] != before, "changed settings roll the operator pod"
        env = {e["name"]: e.get("value") for e in after["spec"]["containers"][0]["env"]}
        assert env["QUANTGATE_MAX_CONCURRENT"] == "3"
        assert [p["metadata"]["name"] for p in operator_pods(cluster, ns)] == [after["metadata"]["name"]]

        # Back to the original values: what only the upgrade added goes away again.
        helm(cluster, "upgrade", RELEASE, str(CHART), "-n", ns, "-f", str(install["values"]), "--wait",
             "--timeout", "120s")
        leftovers = cluster.kubectl("get", NAMESPACED_KINDS, "-n", extra, "-l", CHART_LABEL, "-o", "name").stdout
        assert leftovers.strip() == ""
        cluster.kubectl("get", "service", f"{RELEASE}-quantgate-metrics", "-n", ns)
        running_operator(cluster, ns)
    finally:
        cluster.kubectl("delete", "namespace", extra, "--wait=false", check=False)


def finalizers(cluster, ns: str, name: str) -> list[str]:
    return get(cluster, "meval", name, ns)["metadata"].get("finalizers") or []


def test_uninstall_leaves_no_orphans_and_keeps_evaluations(cluster, install):
    ns = install["ns"]
    # An evaluation still waiting for its (absent) InferenceServices when the operator goes away.
    cluster.apply(evaluation("waiting", {"inferenceServiceRef": {"name": "absent-a"}},
                             {"inferenceServiceRef": {"name": "absent-b"}}, suite="local", limit=LIMIT), ns)
    wait_for(lambda: (get(cluster, "meval", "waiting", ns).get("status") or {}).get("phase") == "WaitingForEndpoints",
             timeout=60, what="the operator waiting on the evaluation")
    # The operator polls waiting evaluations itself: it puts no finalizer on them.
    assert finalizers(cluster, ns, "waiting") == []
    before = {m["metadata"]["name"]: m.get("status") or {} for m in
              json.loads(cluster.kubectl("get", "meval", "-n", ns, "-o", "json").stdout)["items"]}
    helm(cluster, "uninstall", RELEASE, "-n", ns, "--wait", "--timeout", "120s")
    wait_for(lambda: not cluster.kubectl("get", "pods", "-n", ns, "-l", CHART_LABEL, "-o", "name").stdout.strip(),
             timeout=90, what="operator pod object gone")
    left = cluster.kubectl("get", NAMESPACED_KINDS, "-n", ns, "-l", CHART_LABEL, "-o", "name").stdout
    assert left.strip() == ""
    cluster_scoped = cluster.kubectl("get", "clusterroles,clusterrolebindings", "-l", CHART_LABEL, "-o", "name")
    assert cluster_scoped.stdout.strip() == ""
    # Helm never deletes crds/: the CRD and every ModelEvaluation (with its verdict) survive.
    cluster.kubectl("get", "crd", "modelevaluations.quantgate.io")
    after = {m["metadata"]["name"]: m for m in
             json.loads(cluster.kubectl("get", "meval", "-n", ns, "-o", "json").stdout)["items"]}
    assert set(after) == set(before)
    for name, st in before.items():
        if st.get("phase") in ("Succeeded", "Failed"):  # settled: verdict kept, nothing blocks deletion
            assert after[name]["status"].get("verdict") == st.get("verdict")
            assert KOPF_FINALIZER not in (after[name]["metadata"].get("finalizers") or []), name
    # Unsettled at uninstall: nothing holds it, so it deletes without the operator.
    assert finalizers(cluster, ns, "waiting") == []
    cluster.kubectl("delete", "meval", "waiting", "-n", ns, "--timeout=30s")


@pytest.fixture(scope="module")
def combo_namespaces(cluster):
    """Unique stand-ins for the namespaces the ci/ combinations name (a server-side dry run needs them
    to exist; fixed names such as quantgate-system could collide with other tests)."""
    names = {"quantgate-system"}
    for path in (CHART / "ci").glob("*-values.yaml"):
        values = yaml.safe_load(path.read_text())
        names.update((values.get("watch") or {}).get("namespaces") or [])
        names.update((values.get("runner") or {}).get("namespaces") or [])
    mapping = {n: create_namespace(cluster, f"dry-{n}"[:40], labels=RESTRICTED) for n in sorted(names)}
    yield mapping
    for name in mapping.values():
        cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.mark.parametrize("combo", [None, *sorted(p.name for p in (CHART / "ci").glob("*-values.yaml"))])
def test_every_combination_passes_server_side_validation(cluster, combo_namespaces, combo):
    """Server-side dry run of each ci/ combination: the real apiserver's schemas, defaulting and
    admission (PodSecurity included). ServiceMonitor/PrometheusRule need the Prometheus Operator's
    CRDs, which this cluster lacks; tests/unit/test_chart.py checks their content."""
    values = ["-f", str(CHART / "ci" / combo)] if combo else []  # None: the defaults (= manifests/install/)
    rendered = helm(cluster, "template", "qgdry", str(CHART), "-n", "quantgate-system", *values)
    docs = [d for d in yaml.safe_load_all(rendered.stdout)
            if d and d["kind"] not in ("ServiceMonitor", "PrometheusRule")]
    for d in docs:
        # `default` stays: the operator's Role for EndpointSlice default/kubernetes lives there
        if d["metadata"].get("namespace") and d["metadata"]["namespace"] != "default":
            d["metadata"]["namespace"] = combo_namespaces[d["metadata"]["namespace"]]
        for subject in d.get("subjects", []):
            subject["namespace"] = combo_namespaces[subject["namespace"]]
    out = cluster.kubectl("apply", "--dry-run=server", "-f", "-", input=yaml.safe_dump_all(docs), check=False)
    assert out.returncode == 0, out.stderr
    assert "violate PodSecurity" not in out.stderr, out.stderr
