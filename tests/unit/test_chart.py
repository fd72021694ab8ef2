"""charts/quantgate offline: helm lint/template for the defaults and every ci/ combination, the
values schema, security settings of what it renders, RBAC shape, and the files it shares with
manifests/ (CRD, alert rules, plain install YAML) being in sync."""

from __future__ import annotations

import filecmp
import json
import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "quantgate"
HELM = Path(os.environ.get("HELM", Path.home() / ".cache" / "quantgate" / "bin" / "helm"))
KUBECTL = HELM.parent / "kubectl"
COMBOS = sorted(p.name for p in (CHART / "ci").glob("*-values.yaml"))
NS = "quantgate-system"


def helm(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    if not HELM.exists():
        pytest.fail(f"{HELM} not found: run `make tools`")
    out = subprocess.run([str(HELM), *args], capture_output=True, text=True, timeout=120)
    if check:
        assert out.returncode == 0, out.stderr
    return out


def render(*args: str) -> list[dict]:
    out = helm("template", "qg", str(CHART), "--namespace", NS, *args)
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def values_args(combo: str | None) -> list[str]:
    return ["-f", str(CHART / "ci" / combo)] if combo else []


def of_kind(docs: list[dict], kind: str) -> list[dict]:
    return [d for d in docs if d["kind"] == kind]


def operator_pod(docs: list[dict]) -> dict:
    (deploy,) = of_kind(docs, "Deployment")
    return deploy["spec"]["template"]["spec"]


# ---------------------------------------------------------------- lint and render


@pytest.mark.parametrize("combo", [None, *COMBOS])
def test_lint_strict(combo):
    out = helm("lint", "--strict", str(CHART), "--namespace", NS, *values_args(combo), check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "0 chart(s) failed" in out.stdout


@pytest.mark.parametrize("combo", [None, *COMBOS])
def test_every_pod_is_restricted(combo):
    docs = render(*values_args(combo))
    pod = operator_pod(docs)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    for c in pod["containers"]:
        sc = c["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False and sc["readOnlyRootFilesystem"] is True
        assert sc["capabilities"] == {"drop": ["ALL"]}
        assert c["resources"]["requests"] and c["resources"]["limits"]["memory"]
        assert c["command"] == ["quantgate"] and c["args"] == ["operator"]


def test_defaults():
    docs = render()
    kinds = sorted(d["kind"] for d in docs)
    assert kinds == sorted(["ServiceAccount", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "ClusterRole",
                            "ClusterRoleBinding", "Role", "RoleBinding", "Service", "Deployment",
                            "ClusterRole", "ClusterRole",  # tenant roles aggregated into admin/edit/view
                            "Role", "RoleBinding",  # the leader-election Lease
                            "Role", "RoleBinding"]  # EndpointSlice default/kubernetes (code evaluations' egress)
                           + ["ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"] * 7)  # and the matrix ones
    (deploy,) = of_kind(docs, "Deployment")
    assert deploy["spec"]["replicas"] == 1
    pod = deploy["spec"]["template"]["spec"]
    assert "affinity" not in pod, "anti-affinity is off by default"
    (c,) = pod["containers"]
    assert c["ports"] == [{"name": "metrics", "containerPort": 8080, "protocol": "TCP"}]
    assert c["livenessProbe"] == {"httpGet": {"path": "/healthz", "port": "metrics"}, "initialDelaySeconds": 10,
                                  "periodSeconds": 20, "timeoutSeconds": 5, "failureThreshold": 3}
    assert pod["terminationGracePeriodSeconds"] == 30
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    env = {e["name"]: e["value"] for e in c["env"]}
    assert env["QUANTGATE_HEALTH_STALL_S"] == "120"
    assert env["QUANTGATE_SHUTDOWN_DEADLINE_S"] == "10"
    assert env["QUANTGATE_NAMESPACES"] == "" and env["QUANTGATE_RUNNER_SERVICE_ACCOUNT"] == "quantgate-runner"
    assert env["QUANTGATE_RUNNER_IMAGE"] == c["image"] == "ghcr.io/quantgate/quantgate:0.1.0"
    (svc,) = of_kind(docs, "Service")
    assert svc["spec"]["ports"][0]["name"] == "metrics"
    assert svc["spec"]["selector"] == deploy["spec"]["selector"]["matchLabels"]


def test_namespaced_watch_has_no_cluster_scope():
    docs = render(*values_args("namespaced-values.yaml"))
    (discovery,) = operator_roles(docs, "ClusterRole")  # kopf's read-only discovery, nothing namespaced
    assert grants([discovery]) == {("apiextensions.k8s.io", "customresourcedefinitions", "list"),
                                   ("apiextensions.k8s.io", "customresourcedefinitions", "watch"),
                                   ("", "namespaces", "list"), ("", "namespaces", "watch")}
    roles = {(d["metadata"]["namespace"], d["metadata"]["name"]) for d in of_kind(docs, "Role")}
    assert roles == {("team-a", "qg-quantgate-operator"), ("team-b", "qg-quantgate-operator"),
                     ("team-a", "qg-quantgate-runner"), ("team-b", "qg-quantgate-runner"),
                     ("quantgate-system", "qg-quantgate-operator-leader"),  # its own Lease, in its namespace
                     ("default", "qg-quantgate-operator-apiserver")}  # the API server's EndpointSlice, by name
    runner_sas = {d["metadata"]["namespace"] for d in of_kind(docs, "ServiceAccount")
                  if d["metadata"]["name"] == "quantgate-runner"}
    assert runner_sas == {"team-a", "team-b"}
    env = {e["name"]: e["value"] for e in operator_pod(docs)["containers"][0]["env"]}
    assert env["QUANTGATE_NAMESPACES"] == "team-a,team-b"


def operator_roles(docs: list[dict], kind: str) -> list[dict]:
    """The operator's and runner's roles, not the tenant roles aggregated into admin/edit/view."""
    return [d for d in of_kind(docs, kind)
            if not any(k.startswith("rbac.authorization.k8s.io/aggregate-to") for k in d["metadata"]["labels"])]


def test_tenant_roles_aggregate_evaluations_but_never_status():
    docs = render()
    tenant = [d for d in of_kind(docs, "ClusterRole") if d not in operator_roles(docs, "ClusterRole")]
    granted = grants(tenant)
    kinds = ("modelevaluations", "modelevaluationmatrices")
    for resource in kinds:
        assert ("quantgate.io", resource, "create") in granted
        assert ("quantgate.io", resource, "watch") in granted
    assert not any(r not in kinds for _, r, _ in granted), "never status, nothing else"
    view = [d for d in tenant if d["metadata"]["labels"].get("rbac.authorization.k8s.io/aggregate-to-view")]
    assert grants(view) == {("quantgate.io", r, v) for r in kinds for v in ("get", "list", "watch")}


def test_admission_policies_bind_to_the_watched_namespaces():
    docs = render(*values_args("namespaced-values.yaml"))
    bindings = of_kind(docs, "ValidatingAdmissionPolicyBinding")
    assert {b["spec"]["policyName"] for b in bindings} == {d["metadata"]["name"]
                                                           for d in of_kind(docs, "ValidatingAdmissionPolicy")}
    for b in bindings:
        assert b["spec"]["validationActions"] == ["Deny"]
        (expr,) = b["spec"]["matchResources"]["namespaceSelector"]["matchExpressions"]
        assert expr["values"] == ["team-a", "team-b"]
    assert not any("matchResources" in b["spec"] for b in of_kind(render(), "ValidatingAdmissionPolicyBinding"))
    assert not of_kind(render("--set", "admission.enabled=false"), "ValidatingAdmissionPolicy")


def grants(roles: list[dict]) -> set[tuple[str, str, str]]:
    return {(g, r, v) for role in roles for rule in role["rules"]
            for g in rule["apiGroups"] for r in rule["resources"] for v in rule["verbs"]}


def test_rbac_never_grants_wildcards_secrets_listing_exec_or_writes_outside_its_own_objects():
    for combo in [None, *COMBOS]:
        docs = render(*values_args(combo))
        granted = grants(of_kind(docs, "ClusterRole") + of_kind(docs, "Role"))
        assert not any("*" in g for g in granted), combo
        resources = {r for _, r, _ in granted}
        # pods: the operator reads a results ConfigMap's creator pod by name, nothing more
        assert {v for _, r, v in granted if r == "pods"} <= {"get"}, combo
        assert not {"pods/exec", "pods/log", "serviceaccounts", "serviceaccounts/token", "roles",
                    "clusterroles", "rolebindings", "clusterrolebindings", "nodes"} & resources, combo
        assert {v for _, r, v in granted if r == "secrets"} <= {"get"}
        assert {v for _, r, v in granted if r in ("customresourcedefinitions", "namespaces")} <= {"list", "watch"}


def _manifests_rbac() -> set[tuple[str, str, str]]:
    docs = [d for p in sorted((ROOT / "manifests" / "rbac").glob("*.yaml"))
            for d in yaml.safe_load_all(p.read_text()) if d]
    return grants([d for d in docs if d["kind"] in ("ClusterRole", "Role")])


def test_chart_rbac_matches_the_operators_own_account_of_its_calls():
    """manifests/rbac/ is the operator helper's list of the calls its code makes. The chart grants the
    same, except namespaces list/watch, which kopf needs only when watching a list of namespaces."""
    namespaces = {("", "namespaces", "list"), ("", "namespaces", "watch")}
    cluster_wide = grants(operator_roles(render(), "ClusterRole") + of_kind(render(), "Role"))
    assert cluster_wide == _manifests_rbac() - namespaces
    listed = render(*values_args("namespaced-values.yaml"))
    assert grants(operator_roles(listed, "ClusterRole") + of_kind(listed, "Role")) == _manifests_rbac()


def test_read_secrets_off_removes_secrets():
    docs = render(*values_args("cluster-wide-runners-values.yaml"))
    assert not any(r == "secrets" for _, r, _ in grants(of_kind(docs, "ClusterRole")))
    runner_ns = {d["metadata"]["namespace"] for d in of_kind(docs, "Role")
                 if not d["metadata"]["name"].endswith(("-leader", "-apiserver"))}
    assert runner_ns == {"models", "models-staging"}


def test_monitoring_objects_come_from_the_gitops_files():
    docs = render(*values_args("monitoring-values.yaml"))
    (rule,) = of_kind(docs, "PrometheusRule")
    source = yaml.safe_load((ROOT / "manifests" / "prometheus" / "prometheusrule.yaml").read_text())
    assert rule["spec"] == source["spec"]
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    (monitor,) = of_kind(docs, "ServiceMonitor")
    (svc,) = of_kind(docs, "Service")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()
    assert {e["port"] for e in monitor["spec"]["endpoints"]} == {p["name"] for p in svc["spec"]["ports"]}
    assert monitor["spec"]["endpoints"][0]["interval"] == "15s"


def test_network_policies():
    docs = render(*values_args("networkpolicy-values.yaml"))
    policies = {(d["metadata"]["namespace"], d["metadata"]["name"]): d["spec"] for d in of_kind(docs, "NetworkPolicy")}
    assert set(policies) == {(NS, "qg-quantgate-operator"), ("models", "qg-quantgate-runner")}
    op = policies[(NS, "qg-quantgate-operator")]
    assert op["ingress"] == [{"ports": [{"protocol": "TCP", "port": 8080}],
                              "from": [{"namespaceSelector": {"matchLabels": {
                                  "kubernetes.io/metadata.name": "monitoring"}}}]}]
    cidrs = [p["ipBlock"]["cidr"] for rule in op["egress"] for p in rule.get("to", []) if "ipBlock" in p]
    assert cidrs == ["10.96.0.1/32", "172.18.0.2/32"]
    runner = policies[("models", "qg-quantgate-runner")]
    assert "ingress" not in runner and runner["policyTypes"] == ["Ingress", "Egress"]
    assert runner["podSelector"]["matchLabels"] == {"app.kubernetes.io/managed-by": "quantgate"}
    # code evaluations' pods have a policy of their own (policies add up: this one must not widen it)
    assert {"key": "quantgate.io/code-execution", "operator": "DoesNotExist"} in runner["podSelector"]["matchExpressions"]
    assert {"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "models"}}}],
            "ports": [{"protocol": "TCP", "port": 80}, {"protocol": "TCP", "port": 8080}]} in runner["egress"]


def test_apiserver_addresses_of_code_evaluations_egress():
    """The operator pins the API server in code evaluations' NetworkPolicies to networkPolicy.apiServerCIDRs,
    else to EndpointSlice default/kubernetes, which only then it may read (by name, nothing else there)."""
    env = {e["name"]: e["value"] for e in operator_pod(render())["containers"][0]["env"]}
    assert env["QUANTGATE_APISERVER_CIDRS"] == ""
    (role,) = [d for d in of_kind(render(), "Role") if d["metadata"]["name"] == "qg-quantgate-operator-apiserver"]
    assert role["metadata"]["namespace"] == "default"
    assert role["rules"] == [{"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"],
                              "resourceNames": ["kubernetes"], "verbs": ["get"]}]
    docs = render(*values_args("networkpolicy-values.yaml"))
    env = {e["name"]: e["value"] for e in operator_pod(docs)["containers"][0]["env"]}
    assert env["QUANTGATE_APISERVER_CIDRS"] == "10.96.0.1/32,172.18.0.2/32"
    assert not [d for d in of_kind(docs, "Role") if d["metadata"]["namespace"] == "default"]


def test_production_values():
    docs = render(*values_args("production-values.yaml"))
    pod = operator_pod(docs)
    (c,) = pod["containers"]
    assert c["image"] == "registry.example.com/platform/quantgate:0.1.0@sha256:" + "0" * 64
    assert pod["imagePullSecrets"] == [{"name": "regcred"}]
    assert pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    env = {e["name"]: e["value"] for e in c["env"]}
    assert env["QUANTGATE_RUNNER_IMAGE"] == "registry.example.com/platform/quantgate:0.1.0-vllm"
    assert env["HTTPS_PROXY"] == "http://proxy.internal:3128" and env["QUANTGATE_MAX_CONCURRENT"] == "4"


def test_paused_with_own_service_accounts():
    docs = render(*values_args("paused-values.yaml"))
    assert not of_kind(docs, "ServiceAccount")
    assert of_kind(docs, "Deployment")[0]["spec"]["replicas"] == 0
    subjects = [s["name"] for d in of_kind(docs, "ClusterRoleBinding") + of_kind(docs, "RoleBinding")
                for s in d["subjects"]]
    # operator: its ClusterRoleBinding, its Secrets binding, its leader-election Lease binding and its binding
    # for the API server's EndpointSlice
    assert sorted(subjects) == ["platform-quantgate", "platform-quantgate", "platform-quantgate",
                                "platform-quantgate", "platform-quantgate-runner"]


# ---------------------------------------------------------------- the schema


@pytest.mark.parametrize(
    "setting, message",
    [
        ("replicas=abc", "at '/replicas': got string, want integer"),
        ("replicas=3", "at '/replicas': maximum: got 3, want 2"),
        ("replicaz=1", "additional properties 'replicaz' not allowed"),
        ("operator.resourcez.cpu=1", "at '/operator': additional properties 'resourcez' not allowed"),
        ("image.pullPolicy=Sometimes", "at '/image/pullPolicy': value must be one of"),
        ("image.digest=latest", "at '/image/digest'"),
        ("watch.namespaces={Team_A}", "at '/watch/namespaces/0': 'Team_A' does not match pattern"),
        ("metrics.port=0", "at '/metrics/port': minimum: got 0, want 1"),
        ("metrics.serviceMonitor.interval=soon", "at '/metrics/serviceMonitor/interval'"),
        ("operator.maxConcurrent=0", "at '/operator/maxConcurrent'"),
        ("operator.livenessProbe.periodSeconds=0", "at '/operator/livenessProbe/periodSeconds'"),
        ("operator.healthStallSeconds=soon", "at '/operator/healthStallSeconds'"),
        ("operator.shutdownDeadlineSeconds=0", "at '/operator/shutdownDeadlineSeconds'"),
        ("networkPolicy.enabled=yes", "at '/networkPolicy/enabled': got string, want boolean"),
        ("runner.defaultRequests.memory=lots", "at '/runner/defaultRequests/memory'"),
    ],
)
def test_schema_rejects_bad_values_with_a_clear_message(setting, message):
    out = helm("template", "qg", str(CHART), "--set", setting, check=False)
    assert out.returncode != 0
    assert "values don't meet the specifications of the schema" in out.stderr
    assert message in out.stderr, out.stderr


def _leaf_paths(node, prefix=()):
    if isinstance(node, dict) and node:
        for k, v in node.items():
            yield from _leaf_paths(v, prefix + (k,))
    else:
        yield prefix


def _schema_paths(node, prefix=()):
    """Paths down to the first node that is not a closed object (a leaf or a free-form map)."""
    if node.get("additionalProperties") is False:
        for k, v in node["properties"].items():
            yield from _schema_paths(v, prefix + (k,))
    else:
        yield prefix


def test_schema_describes_every_value_and_nothing_else():
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    schema = json.loads((CHART / "values.schema.json").read_text())
    assert schema["additionalProperties"] is False
    declared = set(_schema_paths(schema)) - {("global",)}
    for path in _leaf_paths(values):
        assert any(path[: len(d)] == d for d in declared), f"values.yaml key {'.'.join(path)} not in the schema"
    for path in declared:
        node = values
        for key in path:
            assert isinstance(node, dict) and key in node, f"schema key {'.'.join(path)} missing from values.yaml"
            node = node[key]


def test_values_yaml_is_documented_line_by_line():
    lines = (CHART / "values.yaml").read_text().splitlines()
    for i, line in enumerate(lines):
        m = re.match(r"^(\s*)([A-Za-z][\w-]*):(.*)$", line)
        if not m:
            continue
        leaf = m.group(3).strip() not in ("",)
        parent_of_free_map = i and re.match(r"^\s+(requests|limits):", line)  # resources' own keys
        if leaf and not parent_of_free_map and not re.match(r"^\s+(cpu|memory):", line):
            previous = lines[i - 1].strip()
            assert previous.startswith("#"), f"values.yaml:{i + 1}: {line.strip()!r} has no comment above it"


# ---------------------------------------------------------------- shared files in sync


def test_chart_crds_are_the_generated_crd():
    generated = sorted(p.name for p in (ROOT / "manifests" / "crd").glob("*.yaml"))
    assert sorted(p.name for p in (CHART / "crds").glob("*.yaml")) == generated
    for name in generated:
        assert filecmp.cmp(ROOT / "manifests" / "crd" / name, CHART / "crds" / name, shallow=False), \
            f"charts/quantgate/crds/{name} differs from manifests/crd/: run `make manifests`"


@pytest.mark.parametrize("name", ["prometheusrule.yaml", "servicemonitor.yaml"])
def test_chart_monitoring_files_are_the_gitops_files(name):
    assert filecmp.cmp(ROOT / "manifests" / "prometheus" / name, CHART / "files" / name, shallow=False), \
        f"charts/quantgate/files/{name} differs from manifests/prometheus/: run `make manifests`"


def test_plain_manifests_are_in_sync_with_the_chart(tmp_path):
    out = subprocess.run(["bash", str(ROOT / "scripts" / "manifests.sh"), str(tmp_path)],
                         capture_output=True, text=True, env={**os.environ, "HELM": str(HELM)}, timeout=120)
    assert out.returncode == 0, out.stderr
    for name in ("namespace.yaml", "quantgate.yaml"):
        committed = (ROOT / "manifests" / "install" / name).read_text()
        assert committed == (tmp_path / name).read_text(), f"manifests/install/{name} is stale: run `make manifests`"


def test_kustomization_builds_the_whole_install():
    if not KUBECTL.exists():
        pytest.fail(f"{KUBECTL} not found: run `make tools`")
    out = subprocess.run([str(KUBECTL), "kustomize", str(ROOT / "manifests")], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    docs = [d for d in yaml.safe_load_all(out.stdout) if d]
    kinds = {d["kind"] for d in docs}
    assert {"Namespace", "CustomResourceDefinition", "Deployment", "ClusterRole", "ServiceAccount"} <= kinds
    (ns,) = of_kind(docs, "Namespace")
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def test_notes_tell_how_to_apply_and_read_a_verdict():
    notes = (CHART / "templates" / "NOTES.txt").read_text()
    assert "kubectl apply" in notes and "kind: ModelEvaluation" in notes and ".status.verdict" in notes


def test_packaged_chart_carries_crds_schema_and_files_but_not_ci(tmp_path):
    import tarfile

    helm("package", str(CHART), "--destination", str(tmp_path))
    (archive,) = tmp_path.glob("quantgate-*.tgz")
    names = set(tarfile.open(archive).getnames())
    for needed in ("crds/modelevaluations.quantgate.io.yaml", "crds/modelevaluationmatrices.quantgate.io.yaml",
                   "values.schema.json", "files/prometheusrule.yaml",
                   "files/servicemonitor.yaml", "templates/NOTES.txt", "README.md"):
        assert f"quantgate/{needed}" in names, needed
    assert not any(n.startswith("quantgate/ci/") for n in names)
