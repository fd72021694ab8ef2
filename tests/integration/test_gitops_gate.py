"""The GitOps gate on a real apiserver: the sync-wave example's ModelEvaluation, its status as the
operator writes it, Argo CD's health check (gopher-lua) on the live object, and the
`kubectl wait --for=condition=Promotable` gate for plain CI, including a stale generation.

The operator is not running here: the test writes the status through the status subresource
with the operator's own builders (quantgate.k8s.status), so each state is exact.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from operator_harness import install_crds
from quantgate.dev import paths
from quantgate.dev.harness import get_json, wait_for
from quantgate.k8s import status as st

ROOT = Path(__file__).resolve().parents[2]
HEALTH = ROOT / "manifests/argocd/health/quantgate.io/ModelEvaluation/health.lua"
MATRIX_HEALTH = ROOT / "manifests/argocd/health/quantgate.io/ModelEvaluationMatrix/health.lua"
EXAMPLE = ROOT / "manifests/argocd/example/app/wave1-modelevaluation.yaml"
sys.path.insert(0, str(ROOT / "tools/luahealth"))
import luahealth  # noqa: E402


@pytest.fixture(scope="module")
def gate(cluster):
    install_crds(cluster)
    if luahealth.go_binary() is None:
        pytest.fail("Go is needed to build tools/luahealth (Argo CD's Lua runtime)")
    return cluster, luahealth.build()


def succeeded(verdict: str, average: float, reasons: list[str], generation: int, previous: dict) -> dict:
    """The verdict patch, shaped as quantgate.k8s.status.succeeded() writes it."""
    conditions = st.parse(previous).conditions
    promotable = verdict in ("Ship", "Monitor")
    patch = {k: None for k in st.VERDICT_KEYS}
    summary = f"{verdict}: average drop {average:.2f}%"
    patch.update({
        "phase": "Succeeded", "verdict": verdict, "averageDrop": average, "reasons": reasons, "decisive": True,
        "promotable": promotable, "observedGeneration": generation, "reason": verdict, "message": summary,
        "conditions": [
            st.condition("Evaluated", "True", "ResultsCompared", "compared", generation, conditions, st.now()),
            st.condition("Promotable", "True" if promotable else "False", verdict, summary, generation,
                         conditions, st.now()),
        ]})
    return patch


def test_promotion_gate_on_a_live_object(gate, namespace):
    cluster, lua = gate
    meval = yaml.safe_load(EXAMPLE.read_text())
    name = meval["metadata"]["name"]
    cluster.apply(meval, namespace)  # the example passes the CRD's schema and CEL rules

    def live() -> dict:
        return json.loads(cluster.kubectl("get", "modelevaluation", name, "-n", namespace, "-o", "json").stdout)

    def health() -> dict:
        (result,) = luahealth.run(lua, HEALTH, [live()])
        return result

    def patch_status(patch: dict) -> None:
        cluster.kubectl("patch", "modelevaluation", name, "-n", namespace, "--subresource=status",
                        "--type=merge", "-p", json.dumps({"status": patch}))

    def promotable_within(seconds: int) -> bool:
        result = cluster.kubectl("wait", "--for=condition=Promotable", f"meval/{name}", "-n", namespace,
                                 f"--timeout={seconds}s", check=False)
        return result.returncode == 0

    def ci_gate(timeout: int) -> tuple[int, str]:
        """scripts/wait-promotable.sh, as a CI job runs it."""
        env = dict(os.environ, KUBECONFIG=str(cluster.kubeconfig), KUBECTL=str(paths.binary("kubectl")),
                   QUANTGATE_POLL_SECONDS="0.2")
        out = subprocess.run(["bash", str(ROOT / "scripts/wait-promotable.sh"), namespace, name, str(timeout)],
                             env=env, capture_output=True, text=True, timeout=timeout + 30)
        return out.returncode, out.stdout + out.stderr

    assert health() == {"status": "Progressing",
                        "message": "Waiting for the quantgate operator to start the evaluation"}
    assert ci_gate(1)[0] == 2

    patch_status(st.start_generation(1, {"baseline": "llama-fp16", "candidate": "llama-int4"}, None))
    assert health() == {"status": "Progressing", "message": "Pending: evaluating generation 1"}
    assert not promotable_within(1)

    reason = "gsm8k: drop 4.00% >= 2% limit of profile math-tutoring"
    patch_status(succeeded("Block", 1.79, [reason], 1, live()["status"]))
    assert health() == {"status": "Degraded", "message": f"Block: {reason}"}
    assert not promotable_within(2)
    assert ci_gate(60) == (1, f"{namespace}/{name}: Block (generation 1): Block: average drop 1.79%\n")
    print(cluster.kubectl("get", "meval", "-n", namespace, "-o", "wide").stdout)

    patch_status(succeeded("Ship", 0.42, ["average drop 0.42% < 1%"], 1, live()["status"]))
    assert health() == {"status": "Healthy", "message": "Ship: average accuracy drop 0.42%"}
    assert promotable_within(10)
    assert ci_gate(60)[0] == 0

    # A spec change is a new generation: the old Ship must not pass, neither in Argo CD nor in CI.
    cluster.kubectl("patch", "modelevaluation", name, "-n", namespace, "--type=merge",
                    "-p", json.dumps({"spec": {"profile": "general"}}))
    assert live()["metadata"]["generation"] == 2
    assert health() == {"status": "Progressing",
                        "message": "Waiting for the evaluation of generation 2 (status is from generation 1)"}
    assert not promotable_within(2), "kubectl wait accepted a Promotable condition of an older generation"
    code, text = ci_gate(2)
    assert code == 2 and "no verdict for generation 2" in text

    patch_status(st.failed("JobFailed", "runner Job failed: endpoint returned 503", 2, st.parse(live()["status"])))
    assert health() == {"status": "Degraded",
                        "message": "Evaluation failed: runner Job failed: endpoint returned 503"}
    assert not promotable_within(1)
    assert ci_gate(60)[0] == 1

    table = cluster.kubectl("get", "meval", "-n", namespace).stdout
    assert name in table and "Failed" in table


def test_argocd_cm_snippet_patches_a_live_configmap(gate):
    """The documented install command: kubectl -n argocd patch configmap argocd-cm --type merge --patch-file …"""
    cluster, _ = gate
    cluster.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "argocd"}})
    cluster.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "argocd-cm", "namespace": "argocd"},
                   "data": {"url": "https://argocd.example.com"}})
    try:
        cluster.kubectl("-n", "argocd", "patch", "configmap", "argocd-cm", "--type", "merge",
                        "--patch-file", str(ROOT / "manifests/argocd/argocd-cm.yaml"))
        cm = json.loads(cluster.kubectl("get", "configmap", "argocd-cm", "-n", "argocd", "-o", "json").stdout)
        assert cm["data"] == {"url": "https://argocd.example.com",  # the user's keys stay; both checks are added
                              "resource.customizations.health.quantgate.io_ModelEvaluation": HEALTH.read_text(),
                              "resource.customizations.health.quantgate.io_ModelEvaluationMatrix":
                                  MATRIX_HEALTH.read_text()}
    finally:
        cluster.kubectl("delete", "namespace", "argocd", "--wait=false", check=False)


def rollouts_job(template_path: Path, name: str, args: dict[str, str]) -> dict:
    """The Job Argo Rollouts' job provider would create: args substituted into provider.job."""
    text = template_path.read_text()
    template = yaml.safe_load(text)
    defaults = {a["name"]: a["value"] for a in template["spec"]["args"] if "value" in a}
    values = {**defaults, **args}
    for key, value in values.items():
        text = text.replace("{{args.%s}}" % key, value)
    assert "{{args." not in text
    job = yaml.safe_load(text)["spec"]["metrics"][0]["provider"]["job"]
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name, **job.get("metadata", {})},
            "spec": job["spec"]}


def test_rollouts_job_recipe_runs_on_the_cluster(gate, namespace):
    """quantgate-promotable's Job, run by the dev cluster's kubelet with rbac.yaml's ServiceAccount:
    Complete for Ship, Failed for Block (after its timeout)."""
    cluster, _ = gate
    cluster.kubectl("apply", "-n", namespace, "-f", str(ROOT / "manifests/rollouts/rbac.yaml"))
    meval = yaml.safe_load(EXAMPLE.read_text())
    name = meval["metadata"]["name"]
    cluster.apply(meval, namespace)
    template = ROOT / "manifests/rollouts/analysistemplate-promotable-job.yaml"

    def set_verdict(verdict: str) -> None:
        obj = json.loads(cluster.kubectl("get", "meval", name, "-n", namespace, "-o", "json").stdout)
        patch = succeeded(verdict, 0.4 if verdict == "Ship" else 6.0, [], 1, obj.get("status") or {})
        cluster.kubectl("patch", "meval", name, "-n", namespace, "--subresource=status", "--type=merge",
                        "-p", json.dumps({"status": patch}))

    def run_job(job_name: str, timeout: str, service_account: str | None = None) -> str:
        job = rollouts_job(template, job_name, {"evaluation": name, "namespace": namespace, "timeout": timeout})
        if service_account:
            job["spec"]["template"]["spec"]["serviceAccountName"] = service_account
        cluster.apply(job, namespace)

        def finished():
            conds = (get_json(cluster, "job", job_name, "-n", namespace).get("status") or {}).get("conditions") or []
            done = [c["type"] for c in conds if c["status"] == "True" and c["type"] in ("Complete", "Failed")]
            return done[0] if done else None

        return wait_for(finished, timeout=90, what=f"job {job_name} finished")

    set_verdict("Ship")
    assert run_job("gate-ship", "30s") == "Complete"
    # Without rbac.yaml's grant the same Job cannot read the evaluation: the RBAC is what lets it pass.
    assert run_job("gate-no-rbac", "5s", service_account="default") == "Failed"
    denied = cluster.kubectl("logs", "-n", namespace, "job/gate-no-rbac", check=False).stdout
    assert "forbidden" in denied, denied
    set_verdict("Block")
    assert run_job("gate-block", "3s") == "Failed"
    logs = cluster.kubectl("logs", "-n", namespace, "job/gate-block", check=False).stdout
    assert "timed out" in logs, logs
