"""Tenant attacks on the verdict, tried on the dev cluster with the chart's admission policies on.

Each attack runs as a real identity: ServiceAccount tokens from the TokenRequest API (a namespace
`edit` member, an evaluation author who may not read Secrets, a runner pod's own bound token), or the
cluster admin where the point is that admission, not RBAC, stops it. The operator runs as its
ServiceAccount (manifests/rbac/operator.yaml) against simulated models. docs/security.md maps every
attack to what stops it and to the test here.
"""

from __future__ import annotations

import gzip
import http.server
import json
import random
import secrets
import subprocess
import threading
import uuid
import zlib
from pathlib import Path

import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from operator_harness import (OperatorProcess, evaluation, get, install_crds, install_runner_rbac,
                              operator_kubeconfig, serve_fleet, wait_phase)
from quantgate.dev import paths
from quantgate.dev.harness import create_namespace, impersonate, wait_for
from quantgate.k8s import names
from quantgate.k8s import results_channel as rc
from quantgate.k8s import trust

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "quantgate"
QUANTGATE = str(ROOT / ".venv/bin/quantgate") if (ROOT / ".venv/bin/quantgate").exists() else "quantgate"
GROUP, VERSION, PLURAL = "quantgate.io", "v1alpha1", "modelevaluations"
ACC = {"arc_challenge": 0.7, "hellaswag": 0.8, "mmlu": 0.7, "truthfulqa_mc2": 0.7, "winogrande": 0.75,
       "gsm8k": 0.7}
FLEET = {"seed": 5, "reference": "fp16", "variants": [
    {"name": "fp16", "model": "m-fp16", "accuracy": ACC},
    {"name": "same", "model": "m-same", "accuracy": ACC},
    {"name": "int4", "model": "m-int4", "accuracy": {**ACC, "gsm8k": 0.2}},
    # answers slowly: its runner container is still running while an attack publishes in its place
    {"name": "slow", "model": "m-slow", "accuracy": ACC, "latencyMs": 3000},
]}
QUICK = {"suite": "local", "tasks": [{"name": "gsm8k", "limit": 8}]}
STORED_LIMIT = 2 * 1024 * 1024  # the operator's results limits in this module
DECOMPRESSED_LIMIT = 32 * 1024 * 1024


def ref(name: str) -> dict:
    return {"inferenceServiceRef": {"name": name, "model": f"m-{name}"}}


def denied(call) -> str:
    """Run `call`, expect the apiserver to refuse it (403/422), return its message."""
    with pytest.raises(ApiException) as exc:
        call()
    assert exc.value.status in (403, 422), exc.value.body
    return json.loads(exc.value.body).get("message", "")


@pytest.fixture(scope="module")
def env(cluster, tmp_path_factory):
    from quantgate.simulate.fleet import SimulatedFleet

    install_crds(cluster)
    ns = create_namespace(cluster, "atk")
    install_runner_rbac(cluster, ns)
    release = f"atk{uuid.uuid4().hex[:6]}"
    work = tmp_path_factory.mktemp("attacks")
    kubeconfig = operator_kubeconfig(cluster, work)
    rendered = subprocess.run(
        [str(paths.binary("helm")), "template", release, str(CHART), "-n", "quantgate-system",
         "--show-only", "templates/admission.yaml", "--show-only", "templates/rbac-tenants.yaml",
         "--set", "operator.serviceAccount.create=false", "--set", "operator.serviceAccount.name=quantgate-operator",
         "--set", f"watch.namespaces={{{ns}}}", "--set", f"fullnameOverride={release}"],
        capture_output=True, text=True, timeout=120)
    assert rendered.returncode == 0, rendered.stderr
    policies = work / "policies.yaml"
    policies.write_text(rendered.stdout)
    cluster.kubectl("apply", "-f", str(policies))
    admin = cluster.api_client()
    # tenants: a namespace editor (built-in `edit` role, with the chart's aggregated rules) and an author who
    # may create evaluations but not read Secrets
    cluster.kubectl("create", "serviceaccount", "tenant-editor", "-n", ns)
    cluster.kubectl("create", "rolebinding", "tenant-editor", "--clusterrole=edit",
                    f"--serviceaccount={ns}:tenant-editor", "-n", ns)
    cluster.kubectl("create", "role", "eval-author", "--verb=create,get,list,watch",
                    "--resource=modelevaluations.quantgate.io", "-n", ns)
    cluster.kubectl("create", "serviceaccount", "eval-author", "-n", ns)
    cluster.kubectl("create", "rolebinding", "eval-author", "--role=eval-author",
                    f"--serviceaccount={ns}:eval-author", "-n", ns)
    editor = impersonate(cluster, ns, "tenant-editor", create=False)
    author = impersonate(cluster, ns, "eval-author", create=False)
    # admission is on once a labelled ConfigMap from the cluster admin is refused
    probe = {"metadata": {"name": "probe", "labels": {"quantgate.io/role": "candidate"}}, "data": {"x": "y"}}

    def enforced():
        try:
            client.CoreV1Api(admin).create_namespaced_config_map(ns, probe)
        except ApiException as exc:
            return exc.status == 403
        client.CoreV1Api(admin).delete_namespaced_config_map("probe", ns)
        return False

    wait_for(enforced, timeout=60, what="admission policies enforced")
    # aggregation: the editor may create evaluations
    wait_for(lambda: client.AuthorizationV1Api(editor).create_self_subject_access_review(
        client.V1SelfSubjectAccessReview(spec=client.V1SelfSubjectAccessReviewSpec(
            resource_attributes=client.V1ResourceAttributes(verb="create", group=GROUP, resource=PLURAL,
                                                            namespace=ns)))).status.allowed,
             timeout=60, what="aggregated edit role")
    with SimulatedFleet(FLEET) as fleet:
        serve_fleet(cluster, ns, fleet)
        op = OperatorProcess(cluster, work / "operator.log", "--poll-interval", "1", "--endpoint-timeout", "60",
                             kubeconfig=kubeconfig, namespaces=[ns])
        op.env = {"QUANTGATE_RESULTS_MAX_BYTES": str(STORED_LIMIT),
                  "QUANTGATE_RESULTS_MAX_DECOMPRESSED_BYTES": str(DECOMPRESSED_LIMIT)}
        op.start()
        try:
            yield {"cluster": cluster, "ns": ns, "admin": admin, "editor": editor, "author": author, "op": op,
                   "release": release, "policies": policies, "fleet": fleet}
        finally:
            op.stop()
            cluster.kubectl("delete", "-f", str(policies), "--wait=false", check=False)
            cluster.kubectl("delete", "namespace", ns, "--wait=false", check=False)


def create(api, ns: str, body: dict, **kw) -> dict:
    return client.CustomObjectsApi(api).create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, body, **kw)


def run_to_end(env, name: str, baseline: str, candidate: str, api=None, timeout: float = 240, **spec) -> dict:
    create(api or env["editor"], env["ns"], evaluation(name, ref(baseline), ref(candidate), **{**QUICK, **spec}))
    return wait_phase(env["cluster"], name, env["ns"], ("Succeeded", "Failed"), timeout=timeout)["status"]


@pytest.fixture(scope="module")
def honest(env):
    """An honest evaluation (same model twice: Ship), made by the namespace editor."""
    status = run_to_end(env, "honest", "fp16", "same")
    assert status["phase"] == "Succeeded" and status["verdict"] == "Ship", status
    return status


def cm_api(api) -> client.CoreV1Api:
    return client.CoreV1Api(api)


def raw_cm(env, name: str) -> dict:
    return get(env["cluster"], "configmap", name, env["ns"])


def copy_of(cm: dict, name: str, labels: bool = True) -> dict:
    meta = cm["metadata"]
    out = {"apiVersion": "v1", "kind": "ConfigMap", "immutable": True, "binaryData": cm["binaryData"],
           "metadata": {"name": name, "annotations": dict(meta.get("annotations") or {})}}
    if labels:
        out["metadata"]["labels"] = dict(meta.get("labels") or {})
    return out


# ------------------------------------------------------------------ the honest path and its evidence


def test_honest_verdict_records_its_evidence_and_verifies(env, honest):
    ev = honest["evidence"]
    job = get(env["cluster"], "job", ev["jobName"], env["ns"])
    assert ev["jobUID"] == job["metadata"]["uid"]
    roles = {r["role"]: r for r in ev["results"]}
    for role, entry in roles.items():
        cm = raw_cm(env, entry["name"])
        assert cm["metadata"]["uid"] == entry["uid"] and entry["pod"].startswith(ev["jobName"] + "-")
        assert cm["metadata"]["ownerReferences"][0]["uid"] == job["metadata"]["uid"]
        assert entry["image"] == "quantgate:test" and entry["lmEvalVersion"]
    assert ev["baselineCache"]["name"] == f"{ev['jobName']}-cache"
    out = verify(env, "honest")
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.startswith("OK ") and "Ship" in out.stdout


def verify(env, name: str) -> subprocess.CompletedProcess:
    return subprocess.run([QUANTGATE, "verify", f"{env['ns']}/{name}"], capture_output=True, text=True, timeout=120,
                          env={"KUBECONFIG": str(env["cluster"].kubeconfig), "PATH": "/usr/bin:/bin"})


# ------------------------------------------------------------------ a namespace editor


def test_editor_cannot_plant_results_and_a_planted_copy_never_ships(env, honest):
    ns, editor = env["ns"], env["editor"]
    job = names.job_name("blocked", 1)
    target = names.results_name(job, "candidate")
    shipping = raw_cm(env, {r["role"]: r for r in honest["evidence"]["results"]}["candidate"]["name"])
    # a faithful copy of Ship results, every label and annotation included: refused at admission
    message = denied(lambda: cm_api(editor).create_namespaced_config_map(ns, copy_of(shipping, target)))
    assert "may be created only by a quantgate runner pod" in message
    # the same bytes without quantgate labels get in, and the runner's own upload then finds the name taken
    cm_api(editor).create_namespaced_config_map(ns, copy_of(shipping, target, labels=False))
    status = run_to_end(env, "blocked", "fp16", "int4")
    assert status["phase"] == "Failed" and status["reason"] == "ResultsUntrusted", status
    assert "verdict" not in status and status["promotable"] is False
    # control: the same evaluation without the plant is blocked on its merits
    control = run_to_end(env, "blocked-control", "fp16", "int4")
    assert control["phase"] == "Succeeded" and control["verdict"] == "Block", control


def test_nobody_but_the_operator_writes_status(env, honest):
    ns = env["ns"]
    body = get(env["cluster"], "meval", "blocked-control", ns)
    patch = {"status": {"verdict": "Ship", "promotable": True}}
    for api in (env["editor"], env["admin"]):  # RBAC stops the editor; admission stops even the admin
        message = denied(lambda: client.CustomObjectsApi(api).patch_namespaced_custom_object_status(
            GROUP, VERSION, ns, PLURAL, "blocked-control", patch))
        assert message
    assert "only the quantgate operator" in message
    after = get(env["cluster"], "meval", "blocked-control", ns)
    assert after["status"]["verdict"] == "Block" and after["metadata"]["resourceVersion"] == \
        body["metadata"]["resourceVersion"]


# ------------------------------------------------------------------ a runner pod of another evaluation


def pod_of(env, job_name: str) -> dict:
    pods = json.loads(env["cluster"].kubectl("get", "pods", "-n", env["ns"], "-l", f"job-name={job_name}",
                                             "-o", "json").stdout)["items"]
    assert pods, f"no pod of Job {job_name}"
    return pods[0]


def pod_client(env, pod: dict):
    """An ApiClient with the runner ServiceAccount token bound to `pod` (as the kubelet mounts it)."""
    token = env["cluster"].kubectl(
        "create", "token", names.MANAGER + "-runner", "-n", env["ns"], "--bound-object-kind=Pod",
        f"--bound-object-name={pod['metadata']['name']}", f"--bound-object-uid={pod['metadata']['uid']}",
        "--duration=600s").stdout.strip()
    admin = yaml.safe_load(env["cluster"].kubeconfig.read_text())
    from kubernetes import config

    return config.new_client_from_config_dict({
        "apiVersion": "v1", "kind": "Config", "current-context": "pod",
        "clusters": [{"name": "c", "cluster": {"server": env["cluster"].server, "certificate-authority-data":
                                               admin["clusters"][0]["cluster"]["certificate-authority-data"]}}],
        "users": [{"name": "pod", "user": {"token": token}}],
        "contexts": [{"name": "pod", "context": {"cluster": "c", "user": "pod", "namespace": env["ns"]}}]})


def crafted(payload: bytes, job: dict, pod: dict, name: str, role: str = "candidate") -> list[dict]:
    return rc.build_configmaps(payload, namespace=job["metadata"]["namespace"], name=name, role=role,
                               job=(job["metadata"]["name"], job["metadata"]["uid"]),
                               pod=(pod["metadata"]["name"], pod["metadata"]["uid"]))


def test_runner_pod_cannot_write_another_evaluations_results(env, honest):
    ns = env["ns"]
    job_a = get(env["cluster"], "job", honest["evidence"]["jobName"], ns)
    pod_a = pod_of(env, job_a["metadata"]["name"])
    as_pod = cm_api(pod_client(env, pod_a))
    victim_job = names.job_name("victim", 1)
    payload = rc.encode({"v": 1, "tasks": {}})
    # B's name and B's Job label, signed as A's pod
    forged = crafted(payload, job_a, pod_a, names.results_name(victim_job, "candidate"))[-1]
    forged["metadata"]["labels"][trust.LABEL_JOB] = victim_job
    assert "own Job" in denied(lambda: as_pod.create_namespaced_config_map(ns, forged))
    # A's Job label on B's name
    forged = crafted(payload, job_a, pod_a, names.results_name(victim_job, "candidate"))[-1]
    denied(lambda: as_pod.create_namespaced_config_map(ns, forged))
    # claiming another pod as creator
    forged = crafted(payload, job_a, pod_a, names.results_name(job_a["metadata"]["name"], "candidate") + "-x")[-1]
    forged["metadata"]["annotations"][trust.ANN_POD_NAME] = job_a["metadata"]["name"] + "-zzzzz"
    denied(lambda: as_pod.create_namespaced_config_map(ns, forged))
    # the runner identity without a pod-bound token
    plain = cm_api(impersonate(env["cluster"], ns, "quantgate-runner", create=False))
    own = crafted(payload, job_a, pod_a, names.results_name(job_a["metadata"]["name"], "candidate") + "-y")[-1]
    denied(lambda: plain.create_namespaced_config_map(ns, own))
    # control: the same pod token may publish under its own Job (the token carries the pod name)
    as_pod.create_namespaced_config_map(ns, own)


# ------------------------------------------------------------------ an author who may not read Secrets


class Listener:
    """A loopback HTTP server posing as a model endpoint; records every Authorization header."""

    def __init__(self):
        self.seen: list[str] = []
        listener = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's naming)
                listener.seen.append(self.headers.get("Authorization") or "")
                body = json.dumps({"data": [{"id": "m-x"}]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def test_author_without_secret_access_cannot_point_the_operator_at_a_secret(env):
    ns, cluster = env["ns"], env["cluster"]
    victim, control = f"sk-victim-{secrets.token_hex(8)}", f"sk-control-{secrets.token_hex(8)}"
    cluster.kubectl("create", "secret", "generic", "victim-key", "-n", ns, f"--from-literal=api-key={victim}")
    cluster.kubectl("create", "secret", "generic", "control-key", "-n", ns, f"--from-literal=api-key={control}")
    listener = Listener()
    try:
        def spec(name, secret):
            return evaluation(name, ref("fp16"), {"endpoint": {"url": listener.url, "model": "m-x",
                                                               "apiKeySecretRef": {"name": secret}}}, **QUICK)

        message = denied(lambda: create(env["author"], ns, spec("exfil", "victim-key")))
        assert "may not get" in message and "victim-key" in message
        # control: someone who may read a Secret may name it, and the operator's preflight then sends it to
        # the endpoint; once that has arrived, the operator has had every chance to send the other one too
        create(env["admin"], ns, spec("exfil-control", "control-key"))
        wait_for(lambda: f"Bearer {control}" in listener.seen, timeout=60, what="the control key at the listener")
        assert all(victim not in header for header in listener.seen)
        with pytest.raises(ApiException) as absent:
            client.CustomObjectsApi(env["admin"]).get_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, "exfil")
        assert absent.value.status == 404
        # the author may still create evaluations that name no Secret (dry run: nothing runs)
        create(env["author"], ns, evaluation("plain", ref("fp16"), ref("same"), **QUICK), dry_run="All")
    finally:
        listener.close()
        cluster.kubectl("delete", "meval", "exfil-control", "-n", ns, "--wait=false", check=False)


def test_runner_image_outside_the_allow_list_is_refused_with_how_to_extend_it(env):
    ns = env["ns"]
    body = evaluation("miner", ref("fp16"), ref("same"), **QUICK, runner={"image": "evil.example/miner:1"})
    message = denied(lambda: create(env["editor"], ns, body))
    assert "evil.example/miner:1" in message and "admission.runnerImages" in message
    allowed = evaluation("pinned", ref("fp16"), ref("same"), **QUICK,
                         runner={"image": "ghcr.io/quantgate/quantgate:0.2.0"})
    create(env["editor"], ns, allowed, dry_run="All")


def test_matrix_author_without_secret_access_cannot_name_a_secret_nor_pick_the_runner_image(env):
    """The operator creates a ModelEvaluationMatrix's rows, so it would pass -secret-access itself:
    -matrix-secret-access checks the matrix's author (baseline and every candidate), and -runner-image
    covers matrices too."""
    ns, cluster = env["ns"], env["cluster"]
    cluster.kubectl("create", "secret", "generic", "matrix-victim-key", "-n", ns, "--from-literal=api-key=sk-m")
    cluster.kubectl("create", "role", "matrix-author", "--verb=create,get",
                    "--resource=modelevaluationmatrices.quantgate.io", "-n", ns)
    cluster.kubectl("create", "serviceaccount", "matrix-author", "-n", ns)
    cluster.kubectl("create", "rolebinding", "matrix-author", "--role=matrix-author",
                    f"--serviceaccount={ns}:matrix-author", "-n", ns)
    author = impersonate(cluster, ns, "matrix-author", create=False)
    keyed = {"endpoint": {"url": "http://127.0.0.1:9", "model": "m-x",
                          "apiKeySecretRef": {"name": "matrix-victim-key"}}}

    def matrix(name, baseline=None, candidate=None, **spec):
        return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "ModelEvaluationMatrix", "metadata": {"name": name},
                "spec": {"baseline": baseline or ref("fp16"), **QUICK, **spec, "candidates": [
                    {"name": "a", "size": "8Gi", **ref("same")}, {"name": "b", "size": "4Gi", **(candidate or ref("int4"))}]}}

    def make(api, body, **kw):
        return client.CustomObjectsApi(api).create_namespaced_custom_object(
            GROUP, VERSION, ns, "modelevaluationmatrices", body, **kw)

    wait_for(lambda: client.AuthorizationV1Api(author).create_self_subject_access_review(
        client.V1SelfSubjectAccessReview(spec=client.V1SelfSubjectAccessReviewSpec(
            resource_attributes=client.V1ResourceAttributes(verb="create", group=GROUP,
                                                            resource="modelevaluationmatrices", namespace=ns)))
    ).status.allowed, timeout=60, what="matrix-author role")
    message = denied(lambda: make(author, matrix("exfil-candidate", candidate=keyed)))
    assert "spec.candidates" in message and "matrix-victim-key" in message and "may get" in message
    message = denied(lambda: make(author, matrix("exfil-baseline", baseline=keyed)))
    assert "spec.baseline" in message and "matrix-victim-key" in message
    make(author, matrix("plain"), dry_run="All")  # no Secret named: admitted
    make(env["editor"], matrix("keyed", candidate=keyed), dry_run="All")  # may read it: admitted
    message = denied(lambda: make(env["editor"], matrix("miner", runner={"image": "evil.example/miner:1"})))
    assert "evil.example/miner:1" in message and "admission.runnerImages" in message


# ------------------------------------------------------------------ crafted results from the Job's own pod


def bomb(size: int) -> bytes:
    """gzip of `size` zero bytes, built in 1 MiB steps."""
    z = zlib.compressobj(9, zlib.DEFLATED, 31)
    chunk = bytes(1024 * 1024)
    return b"".join(z.compress(chunk) for _ in range(size // len(chunk))) + z.flush()


def doc(model: str, tasks: list[dict]) -> dict:
    return {"v": 1, "tasks": {t["name"]: {"m": {"exact_match,strict-match": 0.99}} for t in tasks},
            "run": {"model": model, "tasks": tasks, "lmEvalVersion": "0.4.13", "quantgateVersion": "0.1.0"}}


GSM8K = [{"name": "gsm8k", "numFewshot": None, "limit": 8}]
CRAFTED = {
    "oversized": (lambda: gzip.compress(random.Random(7).randbytes(3 * 1024 * 1024), 1), "size"),
    "bomb": (lambda: bomb(1024 * 1024 * 1024), "size"),
    "malformed": (lambda: gzip.compress(b'{"v": 1, "tasks": '), "format"),
    "wrong-model": (lambda: rc.encode(doc("m-fp16", GSM8K)), "model"),
    "missing-task": (lambda: rc.encode(doc("m-slow", [{"name": "arc_challenge", "numFewshot": None,
                                                        "limit": 8}])), "tasks"),
}


def peak_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


def test_crafted_results_fail_untrusted_with_memory_bounded(env, honest):
    """The Job's own pod (a compromised runner image, or a model steering it) publishes crafted results
    before the honest upload: each ends Failed/ResultsUntrusted naming its check, the operator's peak
    memory stays far below what decompressing the bomb would take, and it keeps running."""
    ns, cluster, op = env["ns"], env["cluster"], env["op"]
    payloads = {kind: make() for kind, (make, _check) in CRAFTED.items()}
    before = peak_rss_kib(op.proc.pid)
    for kind in CRAFTED:
        create(env["editor"], ns, evaluation(f"craft-{kind}", ref("fp16"), ref("slow"), **QUICK,
                                             runner={"concurrency": 1}))
    for kind in CRAFTED:
        job_name = names.job_name(f"craft-{kind}", 1)
        job = wait_for(lambda: get(cluster, "job", job_name, ns), timeout=120, what=f"Job {job_name}")
        pod = wait_for(lambda: pod_of(env, job_name), timeout=120, what=f"pod of {job_name}")
        as_pod = cm_api(pod_client(env, pod))
        for cm in crafted(payloads[kind], job, pod, names.results_name(job_name, "candidate")):
            as_pod.create_namespaced_config_map(ns, cm)
    for kind, (_make, check) in CRAFTED.items():
        status = wait_phase(cluster, f"craft-{kind}", ns, ("Succeeded", "Failed"), timeout=300)["status"]
        assert status["phase"] == "Failed" and status["reason"] == "ResultsUntrusted", (kind, status)
        assert status["message"].startswith(f"{check}:"), (kind, status["message"])
        assert "verdict" not in status
    assert op.proc.poll() is None and op.healthy()
    grown_mib = (peak_rss_kib(op.proc.pid) - before) / 1024
    assert grown_mib < 256, f"operator peak memory grew {grown_mib:.0f} MiB reading a 1 GiB bomb"


# ------------------------------------------------------------------ the baseline cache and altered results


def without_results_policy(env):
    """Remove the results policy's binding (a cluster admin turning admission off), until the context ends."""
    release, cluster, ns = env["release"], env["cluster"], env["ns"]

    class Off:
        def __enter__(self):
            cluster.kubectl("delete", "validatingadmissionpolicybinding", f"{release}-results")
            probe = {"metadata": {"name": f"probe-{uuid.uuid4().hex[:6]}", "labels": {"quantgate.io/x": "y"}}}

            def admitted():
                try:
                    cm_api(env["admin"]).create_namespaced_config_map(ns, probe)
                    return True
                except ApiException:
                    return False

            wait_for(admitted, timeout=60, what="results policy off")

        def __exit__(self, *exc):
            cluster.kubectl("apply", "-f", str(env["policies"]))

    return Off()


def test_poisoned_baseline_cache_entry_is_ignored_and_the_baseline_runs(env, honest):
    from quantgate.api.v1alpha1 import ModelEvaluationSpec
    from quantgate.k8s import endpoints
    from quantgate.k8s.cache import baseline_key

    ns, cluster = env["ns"], env["cluster"]
    body = evaluation("poisoned", ref("fp16"), ref("int4"), **QUICK, rerun="poison")
    spec = ModelEvaluationSpec.model_validate(body["spec"])
    resolved = endpoints.resolve(spec.baseline, lambda n: get(cluster, "inferenceservice", n, ns))
    key = baseline_key(resolved.identity, resolved.model, spec)
    shipping = raw_cm(env, honest["evidence"]["baselineCache"]["name"])
    plant = copy_of(shipping, "planted-cache")
    plant["metadata"]["labels"][names.LABEL_BASELINE_KEY] = key
    plant["metadata"]["annotations"][trust.ANN_SOURCE] = "honest"  # a real evaluation, which never vouched for it
    assert "created only by" in denied(lambda: cm_api(env["editor"]).create_namespaced_config_map(ns, plant))
    with without_results_policy(env):
        cm_api(env["admin"]).create_namespaced_config_map(ns, plant)
    create(env["editor"], ns, body)
    job = wait_for(lambda: get(cluster, "job", names.job_name("poisoned", 1), ns), timeout=120, what="poisoned Job")
    assert [c["name"] for c in job["spec"]["template"]["spec"]["containers"]] == ["baseline", "candidate"]
    status = wait_phase(cluster, "poisoned", ns, ("Succeeded", "Failed"), timeout=240)["status"]
    assert status["resultsRef"]["baselineReused"] is False and status.get("verdict") == "Block", status


def test_verify_reports_altered_results(env, honest):
    """Last: it replaces the honest evaluation's stored candidate results with Block results."""
    ns = env["ns"]
    entry = {r["role"]: r for r in honest["evidence"]["results"]}["candidate"]
    blocking = raw_cm(env, names.results_name(names.job_name("blocked-control", 1), "candidate"))
    original = raw_cm(env, entry["name"])
    with without_results_policy(env):
        cm_api(env["admin"]).delete_namespaced_config_map(entry["name"], ns)
        wait_for(lambda: env["cluster"].kubectl("get", "configmap", entry["name"], "-n", ns,
                                                check=False).returncode != 0, timeout=60, what="deleted")
        forged = copy_of(blocking, entry["name"])
        forged["metadata"]["labels"] = original["metadata"]["labels"]
        forged["metadata"]["annotations"].update({k: v for k, v in original["metadata"]["annotations"].items()
                                                  if k in (trust.ANN_POD_NAME, trust.ANN_POD_UID)})
        cm_api(env["admin"]).create_namespaced_config_map(ns, forged)
    out = verify(env, "honest")
    assert out.returncode == 1, out.stdout + out.stderr
    assert out.stdout.startswith("MISMATCH") and "candidate" in out.stdout
    bad = subprocess.run([QUANTGATE, "verify", "no-slash"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "Traceback" not in bad.stderr
