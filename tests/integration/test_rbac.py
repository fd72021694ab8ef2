"""The chart's RBAC on the real apiserver, sufficient and minimal.

Sufficient: with real tokens of the chart's ServiceAccounts (TokenRequest, not system:masters), every
call the operator (quantgate.k8s.cluster.Cluster, kopf's watches, discovery and finalizer) and the
runner (its results ConfigMaps, from its pod) make succeeds. test_chart_install.py runs the same identities through
a whole evaluation. Minimal: a table of calls they must not be able to make, each decided by the
apiserver's authorizer through a SubjectAccessReview, with allowed rows as live controls."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from quantgate.dev import paths
from quantgate.dev.harness import create_namespace, impersonate

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "quantgate"
KSERVE_CRD = ROOT / "manifests" / "kserve" / "inferenceservices.serving.kserve.io.yaml"
GROUP, VERSION, PLURAL = "quantgate.io", "v1alpha1", "modelevaluations"
RUNNER = "quantgate-runner"


def helm(cluster, *args: str) -> None:
    out = subprocess.run([str(paths.binary("helm")), f"--kubeconfig={cluster.kubeconfig}", *args],
                         capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr


def evaluation(name: str) -> dict:
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "ModelEvaluation", "metadata": {"name": name},
            "spec": {"baseline": {"endpoint": {"url": "http://127.0.0.1:9"}},
                     "candidate": {"endpoint": {"url": "http://127.0.0.1:9"}}, "suite": "local"}}


@pytest.fixture(scope="module")
def rbac(cluster):
    """Two releases with the operator scaled to 0 (only their RBAC matters here): `scoped` watches one
    namespace, `wide` all namespaces. `other` is a namespace neither should reach."""
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CHART / "crds"), "-f", str(KSERVE_CRD))
    for crd in ("modelevaluations.quantgate.io", "modelevaluationmatrices.quantgate.io"):
        cluster.kubectl("wait", "--for=condition=Established", f"crd/{crd}", "--timeout=60s")
    scoped, wide, other = (create_namespace(cluster, p) for p in ("rbac-scoped", "rbac-wide", "rbac-other"))
    helm(cluster, "install", "scoped", str(CHART), "-n", scoped, "--set", "replicas=0",
         "--set", f"watch.namespaces={{{scoped}}}")
    # admission off for `wide`: its policies would cover `scoped`'s namespace too and allow only its own
    # operator there (two operators over one namespace is not an install we support); `scoped` keeps them on
    helm(cluster, "install", "wide", str(CHART), "-n", wide, "--set", "replicas=0", "--set", "admission.enabled=false")
    for ns in (scoped, other):
        cluster.apply(evaluation("ev"), ns)
        cluster.kubectl("create", "secret", "generic", "endpoint-key", "-n", ns, "--from-literal=api-key=k")
        cluster.kubectl("create", "configmap", "someone-elses", "-n", ns, "--from-literal=x=y")
        cluster.apply({"apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService",
                       "metadata": {"name": "llm"}, "spec": {"predictor": {}}}, ns)
    admin = cluster.api_client()
    try:
        yield {"scoped": scoped, "wide": wide, "other": other, "default": "default", "admin": admin,
               "operator": impersonate(cluster, scoped, "scoped-quantgate-operator", create=False),
               "runner": impersonate(cluster, scoped, RUNNER, create=False)}
    finally:
        for release, ns in (("scoped", scoped), ("wide", wide)):
            subprocess.run([str(paths.binary("helm")), f"--kubeconfig={cluster.kubeconfig}", "uninstall", release,
                            "-n", ns], capture_output=True, timeout=120)
        for ns in (scoped, wide, other):
            cluster.kubectl("delete", "namespace", ns, "--wait=false", check=False)


# ---------------------------------------------------------------- sufficient


def test_operator_can_make_every_call_of_its_code(cluster, rbac):
    from quantgate.api.v1alpha1 import SecretKeyRef
    from quantgate.k8s.cluster import Cluster

    ns, api = rbac["scoped"], rbac["operator"]
    c = Cluster(api)
    from quantgate.k8s.cluster import Conflict

    for _attempt in range(5):  # guarded by resourceVersion: re-read if anything else touched it
        body = c.get_evaluation(ns, "ev")
        try:
            c.patch_status(body, {"phase": "Pending", "message": "rbac test"})
            break
        except Conflict:
            continue
    else:
        pytest.fail("status patch kept conflicting")
    custom = client.CustomObjectsApi(api)
    # kopf: list + watch evaluations in the watched namespace (no finalizer: no patch of them)
    custom.list_namespaced_custom_object(GROUP, VERSION, ns, PLURAL)
    watch = custom.list_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, watch=True, timeout_seconds=1,
                                                 _preload_content=False)
    assert watch.status == 200
    watch.close()  # not back into the pool unread: the next request on that connection would fail
    watch.release_conn()
    job = {"apiVersion": "batch/v1", "kind": "Job",
           "metadata": {"name": "ev-g1-rbac", "namespace": ns,
                        "labels": {"app.kubernetes.io/managed-by": "quantgate", "quantgate.io/evaluation": "ev"}},
           "spec": {"template": {"spec": {"restartPolicy": "Never", "serviceAccountName": RUNNER,
                                          "containers": [{"name": "c", "image": "x", "command": ["true"]}]}}}}
    assert c.create_job(job) is True and c.create_job(job) is False
    assert c.get_job(ns, "ev-g1-rbac")["metadata"]["name"] == "ev-g1-rbac"
    assert [j["metadata"]["name"] for j in c.jobs_of(ns, "ev")] == ["ev-g1-rbac"]
    batch = client.BatchV1Api(api)  # kopf's index and event handler watch runner Jobs
    watch = batch.list_namespaced_job(ns, label_selector="app.kubernetes.io/managed-by=quantgate", watch=True,
                                      timeout_seconds=1, _preload_content=False)
    assert watch.status == 200
    watch.close()  # not back into the pool unread: the next request on that connection would fail
    watch.release_conn()
    c.delete_job(ns, "ev-g1-rbac")
    # a code evaluation's egress NetworkPolicy: its endpoint's Service (and a selector-less one's
    # EndpointSlices), the API server's EndpointSlice (by name, in default: absent on the dev cluster,
    # but a 404 comes only after the authorizer allowed it), then create-if-absent and delete
    from quantgate.k8s import egress_policy, names

    assert c.get_service(ns, "no-such-model") is None
    assert c.endpoint_slices(ns, "no-such-model") == []
    assert isinstance(c.apiserver_slices(), list)
    policy = egress_policy.egress_policy("ev-g1-rbac", ns, "ev", 1,
                                         names.owner_reference("ev", body["metadata"]["uid"]), [],
                                         egress_policy.apiserver_rule(["127.0.0.1/32"], []), False)
    assert c.create_network_policy(policy) is None
    assert c.create_network_policy(policy)["metadata"]["name"] == "ev-g1-rbac-egress"  # read back when taken
    c.delete_network_policy(ns, "ev-g1-rbac-egress")
    c.delete_network_policy(ns, "ev-g1-rbac-egress")  # gone already: fine
    assert c.get_isvc(ns, "llm")["metadata"]["name"] == "llm"
    assert c.secret_value(ns, SecretKeyRef(name="endpoint-key", key="api-key")) == "k"
    assert c.cached_baseline(ns, "0" * 40) is None
    assert c.pod(ns, "no-such-runner-pod") is None  # the creator of a results ConfigMap is read by name
    from quantgate.k8s import results_channel

    cache = results_channel.build_configmaps(results_channel.encode({"rbac": "test"}), namespace=ns,
                                             name="ev-g1-rbac-cache", role="baseline", evaluation="ev",
                                             extra_labels={"quantgate.io/cache": "true"})
    c.create_configmaps(cache)  # baseline cache entries (admission lets the operator create them)
    assert c.configmap(ns, "ev-g1-rbac-cache")["metadata"]["labels"]["quantgate.io/cache"] == "true"
    client.CoreV1Api(api).read_namespaced_config_map("someone-elses", ns)  # results are read by name
    c.event(body, "Normal", "Verdict", "rbac test")  # best effort in the code: check it landed
    posted = json.loads(cluster.kubectl("get", "events.events.k8s.io", "-n", ns, "-o", "json").stdout)["items"]
    assert any(e.get("reason") == "Verdict" and e.get("note") == "rbac test" for e in posted)
    # leader election: the release's Lease in the release namespace
    from quantgate.k8s.leader import LeaderElector

    elector = LeaderElector(api, ns, "scoped-quantgate-operator", "rbac-test")
    assert elector.try_acquire_or_renew() and elector.try_acquire_or_renew()  # create, then update
    elector.leading = True
    elector.release()
    # a matrix: watched, its status patched, its rows (child ModelEvaluations it controls) created and
    # deleted; the admission policy refuses the operator any other ModelEvaluation
    matrix = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "ModelEvaluationMatrix", "metadata": {"name": "mx"},
              "spec": {"baseline": {"endpoint": {"url": "http://127.0.0.1:9"}}, "suite": "local",
                       "candidates": [{"name": "a", "size": "1Gi", "endpoint": {"url": "http://127.0.0.1:9"}}]}}
    cluster.apply(matrix, ns)
    mbody = c.get_matrix(ns, "mx")
    assert [m["metadata"]["name"] for m in c.list_matrices([ns])] == ["mx"]
    watch = custom.list_namespaced_custom_object(GROUP, VERSION, ns, "modelevaluationmatrices", watch=True,
                                                 timeout_seconds=1, _preload_content=False)
    assert watch.status == 200
    watch.close()  # not back into the pool unread: the next request on that connection would fail
    watch.release_conn()
    assert c.patch_matrix_status(mbody, {"phase": "Running", "message": "rbac test"})["status"]["phase"] == "Running"
    from quantgate.api.matrix import ModelEvaluationMatrixSpec
    from quantgate.k8s import matrix as mx

    mspec = ModelEvaluationMatrixSpec.model_validate(mbody["spec"])
    row = mx.child_body(mbody, mspec, mspec.candidates[0])
    created = c.create_evaluation(row)
    assert created is not None and mx.owned(created, mbody["metadata"]["uid"])
    assert [e["metadata"]["name"] for e in c.evaluations_labeled(ns, f"{mx.LABEL_MATRIX}=mx")] == ["mx-a"]
    c.delete_evaluation(ns, "mx-a", created["metadata"]["uid"])
    assert c.get_evaluation(ns, "mx-a") is None
    orphan = evaluation("not-a-row")
    orphan["metadata"]["namespace"] = ns
    with pytest.raises(ApiException) as refused:  # <release>-matrix-children
        c.create_evaluation(orphan)
    assert refused.value.status in (403, 422) and "ModelEvaluationMatrix" in refused.value.body
    with pytest.raises(ApiException) as refused:
        c.delete_evaluation(ns, "ev", c.get_evaluation(ns, "ev")["metadata"]["uid"])
    assert "ModelEvaluationMatrix" in refused.value.body
    # kopf's discovery: CRDs, and (watching a list of namespaces) the namespaces
    client.ApiextensionsV1Api(api).list_custom_resource_definition()
    client.CoreV1Api(api).list_namespace()


def test_runner_identity_without_its_pod_cannot_publish_results(rbac):
    """RBAC lets the runner ServiceAccount create ConfigMaps; the admission policy narrows that to a runner
    pod's own Job (its bound token's pod name). A token not bound to such a pod publishes nothing. The
    positive case, a real runner pod publishing, is every evaluation in test_chart_install.py and
    test_tenant_attacks.py."""
    from quantgate.k8s import results_channel

    ns, api = rbac["scoped"], rbac["runner"]
    payload = results_channel.encode({"rbac": "test"})
    cms = results_channel.build_configmaps(payload, namespace=ns, name="ev-g1-abcde-candidate", role="candidate",
                                           evaluation="ev", job=("ev-g1-abcde", "uid"), pod=("ev-g1-abcde-x7k2q", "u"))
    with pytest.raises(ApiException) as denied:
        results_channel.write_configmaps(client.CoreV1Api(api), cms)
    assert denied.value.status == 403 and "runner pod" in denied.value.body


def test_real_calls_outside_the_grant_are_refused(rbac):
    """Real requests with the tokens (not just reviews): the apiserver answers 403."""
    op, runner, ns, other = client.CoreV1Api(rbac["operator"]), client.CoreV1Api(rbac["runner"]), \
        rbac["scoped"], rbac["other"]
    for call in (lambda: op.list_namespaced_secret(ns), lambda: op.list_secret_for_all_namespaces(),
                 lambda: op.read_namespaced_secret("endpoint-key", other),
                 lambda: runner.read_namespaced_config_map("someone-elses", ns),
                 lambda: runner.read_namespaced_secret("endpoint-key", ns)):
        with pytest.raises(ApiException) as denied:
            call()
        assert denied.value.status == 403


# ---------------------------------------------------------------- minimal


def can(rbac, ns_of_sa: str, sa: str, verb: str, resource: str, namespace: str | None = None,
        group: str = "", subresource: str | None = None) -> bool:
    review = client.V1SubjectAccessReview(spec=client.V1SubjectAccessReviewSpec(
        user=f"system:serviceaccount:{ns_of_sa}:{sa}",
        groups=["system:serviceaccounts", f"system:serviceaccounts:{ns_of_sa}", "system:authenticated"],
        resource_attributes=client.V1ResourceAttributes(
            verb=verb, group=group, resource=resource, subresource=subresource, namespace=namespace)))
    return client.AuthorizationV1Api(rbac["admin"]).create_subject_access_review(review).status.allowed


# (who, verb, resource, namespace: "scoped" | "wide" | "other" | None = cluster-wide, group, subresource, allowed)
TABLE = [
    # live controls: what the code needs is allowed
    ("scoped-op", "watch", "modelevaluations", "scoped", GROUP, None, True),
    ("scoped-op", "patch", "modelevaluations", "scoped", GROUP, "status", True),
    # evaluations themselves (spec, metadata, finalizers) are the user's: never patched
    ("scoped-op", "patch", "modelevaluations", "scoped", GROUP, None, False),
    ("scoped-op", "get", "secrets", "scoped", "", None, True),
    ("wide-op", "list", "modelevaluations", None, GROUP, None, True),
    ("wide-op", "get", "secrets", "other", "", None, True),
    ("scoped-op", "get", "pods", "scoped", "", None, True),
    ("scoped-op", "create", "configmaps", "scoped", "", None, True),  # baseline cache entries
    # secrets: never listed or watched, anywhere; never read outside the watched namespaces
    ("scoped-op", "list", "secrets", "scoped", "", None, False),
    ("scoped-op", "watch", "secrets", "scoped", "", None, False),
    ("scoped-op", "list", "secrets", None, "", None, False),
    ("scoped-op", "get", "secrets", "other", "", None, False),
    ("wide-op", "list", "secrets", None, "", None, False),
    ("wide-op", "watch", "secrets", None, "", None, False),
    ("wide-op", "list", "secrets", "other", "", None, False),
    # namespace-scoped: nothing in other namespaces, nothing cluster-wide
    ("scoped-op", "get", "modelevaluations", "other", GROUP, None, False),
    ("scoped-op", "list", "modelevaluations", None, GROUP, None, False),
    ("scoped-op", "create", "jobs", "other", "batch", None, False),
    ("scoped-op", "get", "configmaps", "other", "", None, False),
    ("scoped-op", "get", "inferenceservices", "other", "serving.kserve.io", None, False),
    # no exec, logs or pods; no CRD changes; no RBAC or token escalation; no writes of the runner's data
    ("scoped-op", "create", "pods", "scoped", "", "exec", False),
    ("scoped-op", "get", "pods", "scoped", "", "log", False),
    ("scoped-op", "create", "pods", "scoped", "", None, False),
    ("wide-op", "create", "pods", "other", "", "exec", False),
    ("scoped-op", "delete", "customresourcedefinitions", None, "apiextensions.k8s.io", None, False),
    ("wide-op", "delete", "customresourcedefinitions", None, "apiextensions.k8s.io", None, False),
    ("wide-op", "update", "customresourcedefinitions", None, "apiextensions.k8s.io", None, False),
    ("scoped-op", "create", "rolebindings", "scoped", "rbac.authorization.k8s.io", None, False),
    ("scoped-op", "bind", "clusterroles", None, "rbac.authorization.k8s.io", None, False),
    ("scoped-op", "create", "serviceaccounts", "scoped", "", "token", False),
    ("scoped-op", "update", "configmaps", "scoped", "", None, False),
    ("scoped-op", "delete", "configmaps", "scoped", "", None, False),
    ("scoped-op", "list", "pods", "scoped", "", None, False),
    ("scoped-op", "get", "pods", "other", "", None, False),
    # a matrix's rows: RBAC allows create and delete; the admission policy <release>-matrix-children allows
    # them only for ModelEvaluations a matrix controls (test_operator_can_make_every_call_of_its_code)
    ("scoped-op", "delete", "modelevaluations", "scoped", GROUP, None, True),
    ("scoped-op", "create", "modelevaluations", "scoped", GROUP, None, True),
    ("scoped-op", "update", "modelevaluations", "scoped", GROUP, None, False),
    ("scoped-op", "create", "modelevaluations", "other", GROUP, None, False),
    # matrices: watched, status written; never their spec
    ("scoped-op", "watch", "modelevaluationmatrices", "scoped", GROUP, None, True),
    ("scoped-op", "patch", "modelevaluationmatrices", "scoped", GROUP, "status", True),
    ("scoped-op", "patch", "modelevaluationmatrices", "scoped", GROUP, None, False),
    ("scoped-op", "delete", "modelevaluationmatrices", "scoped", GROUP, None, False),
    ("runner", "get", "modelevaluationmatrices", "scoped", GROUP, None, False),
    ("wide-op", "create", "namespaces", None, "", None, False),
    # code evaluations' egress NetworkPolicies: made and deleted in the watched namespaces, never changed;
    # Services read by name, EndpointSlices listed there; in default only the API server's slice, by name
    ("scoped-op", "create", "networkpolicies", "scoped", "networking.k8s.io", None, True),
    ("scoped-op", "delete", "networkpolicies", "scoped", "networking.k8s.io", None, True),
    ("wide-op", "create", "networkpolicies", "other", "networking.k8s.io", None, True),
    ("scoped-op", "create", "networkpolicies", "other", "networking.k8s.io", None, False),
    ("scoped-op", "update", "networkpolicies", "scoped", "networking.k8s.io", None, False),
    ("scoped-op", "patch", "networkpolicies", "scoped", "networking.k8s.io", None, False),
    ("scoped-op", "list", "networkpolicies", "scoped", "networking.k8s.io", None, False),
    ("scoped-op", "get", "services", "scoped", "", None, True),
    ("scoped-op", "get", "services", "other", "", None, False),
    ("scoped-op", "list", "services", "scoped", "", None, False),
    ("scoped-op", "update", "services", "scoped", "", None, False),
    ("scoped-op", "list", "endpointslices", "scoped", "discovery.k8s.io", None, True),
    ("scoped-op", "list", "endpointslices", "other", "discovery.k8s.io", None, False),
    ("scoped-op", "list", "endpointslices", "default", "discovery.k8s.io", None, False),
    ("scoped-op", "get", "endpointslices", "default", "discovery.k8s.io", None, False),  # without its name
    ("scoped-op", "update", "endpointslices", "scoped", "discovery.k8s.io", None, False),
    ("scoped-op", "get", "services", "default", "", None, False),
    # leases: its own release's Lease only (by name), nothing elsewhere
    ("scoped-op", "update", "leases", "other", "coordination.k8s.io", None, False),
    ("scoped-op", "delete", "leases", "scoped", "coordination.k8s.io", None, False),
    ("scoped-op", "list", "leases", "scoped", "coordination.k8s.io", None, False),
    ("wide-op", "create", "leases", "other", "coordination.k8s.io", None, False),
    # the runner: its own results and nothing else. RBAC cannot say "its own" (create has no resourceNames),
    # so no row here claims the runner may create a ConfigMap: the admission policy allows only its own
    # Job's results (test_runner_identity_without_its_pod_cannot_publish_results, test_tenant_attacks.py)
    ("runner", "get", "configmaps", "scoped", "", None, False),
    ("runner", "list", "configmaps", "scoped", "", None, False),
    ("runner", "delete", "configmaps", "scoped", "", None, False),
    ("runner", "update", "configmaps", "scoped", "", None, False),
    ("runner", "create", "configmaps", "other", "", None, False),
    ("runner", "get", "secrets", "scoped", "", None, False),
    ("runner", "get", "modelevaluations", "scoped", GROUP, None, False),
    ("runner", "patch", "modelevaluations", "scoped", GROUP, "status", False),
    ("runner", "create", "jobs", "scoped", "batch", None, False),
    ("runner", "create", "pods", "scoped", "", "exec", False),
    ("runner", "create", "networkpolicies", "scoped", "networking.k8s.io", None, False),
    ("runner", "delete", "networkpolicies", "scoped", "networking.k8s.io", None, False),
]


def test_only_what_the_code_needs(rbac):
    identities = {"scoped-op": (rbac["scoped"], "scoped-quantgate-operator"),
                  "wide-op": (rbac["wide"], "wide-quantgate-operator"),
                  "runner": (rbac["scoped"], RUNNER)}
    wrong = []
    for who, verb, resource, where, group, sub, expected in TABLE:
        ns_of_sa, sa = identities[who]
        namespace = rbac[where] if where else None
        if can(rbac, ns_of_sa, sa, verb, resource, namespace, group, sub) != expected:
            wrong.append(f"{who} {verb} {resource}{'/' + sub if sub else ''} in {where or 'all namespaces'}: "
                         f"expected {'allowed' if expected else 'forbidden'}")
    assert not wrong, "\n".join(wrong)
