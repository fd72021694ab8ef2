"""Proof that the dev cluster is a real Kubernetes control plane, not a mock.

Each test checks a behaviour only a real apiserver/controller does, and would fail against a fake.
"""

from __future__ import annotations

import json
import os
import textwrap

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from quantgate.dev.harness import condition, create_namespace, get_json, wait_for, wait_for_condition

GROUP = "proof.quantgate.io"
CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": f"widgets.{GROUP}"},
    "spec": {
        "group": GROUP,
        "scope": "Namespaced",
        "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
        "versions": [{
            "name": "v1", "served": True, "storage": True,
            "schema": {"openAPIV3Schema": {
                "type": "object",
                "properties": {"spec": {
                    "type": "object",
                    "required": ["size"],
                    "properties": {
                        "size": {"type": "integer", "minimum": 1},
                        "minReplicas": {"type": "integer"},
                        "maxReplicas": {"type": "integer"},
                    },
                    "x-kubernetes-validations": [{
                        "rule": "!has(self.minReplicas) || !has(self.maxReplicas) || self.minReplicas <= self.maxReplicas",
                        "message": "minReplicas must not exceed maxReplicas",
                    }],
                }},
            }},
        }],
    },
}


def widget(name: str, spec: dict) -> dict:
    return {"apiVersion": f"{GROUP}/v1", "kind": "Widget", "metadata": {"name": name}, "spec": spec}


@pytest.fixture(scope="module")
def widgets(cluster):
    cluster.apply(CRD)
    wait_for_condition(cluster, "crd", CRD["metadata"]["name"], "default", "Established")
    # Discovery of the new resource can trail Established by a moment.
    wait_for(lambda: cluster.kubectl("get", "widgets", "-A", check=False).returncode == 0, timeout=30)
    yield
    cluster.kubectl("delete", "crd", CRD["metadata"]["name"], "--wait=false", check=False)


def test_a_apiserver_rejects_structurally_invalid_and_cel_failing_resources(cluster, namespace, widgets):
    ok = cluster.apply(widget("good", {"size": 2, "minReplicas": 1, "maxReplicas": 3}), namespace)
    assert "created" in ok.stdout

    wrong_type = cluster.kubectl("apply", "-n", namespace, "-f", "-", check=False,
                                 input=json.dumps(widget("bad-type", {"size": "big"})))
    assert wrong_type.returncode != 0
    assert "spec.size" in wrong_type.stderr and "must be of type integer" in wrong_type.stderr

    missing = cluster.kubectl("apply", "-n", namespace, "-f", "-", check=False,
                              input=json.dumps(widget("bad-missing", {"minReplicas": 1})))
    assert missing.returncode != 0 and "spec.size: Required value" in missing.stderr

    cel = cluster.kubectl("apply", "-n", namespace, "-f", "-", check=False,
                          input=json.dumps(widget("bad-cel", {"size": 1, "minReplicas": 5, "maxReplicas": 2})))
    assert cel.returncode != 0
    assert "minReplicas must not exceed maxReplicas" in cel.stderr


RESTRICTED_OK = {
    "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "compliant"},
    "spec": {
        "securityContext": {"runAsNonRoot": True, "runAsUser": 1000, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [{
            "name": "c", "image": "busybox", "command": ["true"],
            "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
        }],
    },
}


def test_b_pod_security_restricted_rejects_privileged_pod(cluster):
    ns = create_namespace(cluster, "psa", {"pod-security.kubernetes.io/enforce": "restricted"})
    try:
        accepted = cluster.kubectl("create", "--dry-run=server", "-n", ns, "-f", "-",
                                   input=json.dumps(RESTRICTED_OK))
        assert "created (server dry run)" in accepted.stdout
        privileged = json.loads(json.dumps(RESTRICTED_OK))
        privileged["metadata"]["name"] = "privileged"
        privileged["spec"]["containers"][0]["securityContext"] = {"privileged": True}
        rejected = cluster.kubectl("create", "--dry-run=server", "-n", ns, "-f", "-", check=False,
                                   input=json.dumps(privileged))
        assert rejected.returncode != 0
        assert 'violates PodSecurity "restricted:latest"' in rejected.stderr
        assert "privileged" in rejected.stderr
    finally:
        cluster.kubectl("delete", "namespace", ns, "--wait=false", check=False)


def test_c_rbac_decides_what_a_service_account_may_read(cluster, namespace, sa_client):
    cluster.kubectl("create", "configmap", "settings", "--from-literal=k=v", "-n", namespace)
    reader = client.CoreV1Api(sa_client("reader"))
    with pytest.raises(ApiException) as denied:
        reader.read_namespaced_config_map("settings", namespace)
    assert denied.value.status == 403
    assert f"system:serviceaccount:{namespace}:reader" in denied.value.body

    cluster.kubectl("create", "role", "read-config", "--verb=get", "--resource=configmaps", "-n", namespace)
    cluster.kubectl("create", "rolebinding", "reader-reads", "--role=read-config",
                    f"--serviceaccount={namespace}:reader", "-n", namespace)
    got = wait_for(lambda: reader.read_namespaced_config_map("settings", namespace), timeout=30)
    assert got.data == {"k": "v"}
    with pytest.raises(ApiException) as still_denied:  # the Role grants get, not list
        reader.list_namespaced_config_map(namespace)
    assert still_denied.value.status == 403


def job(name: str, command: list[str], backoff_limit: int = 0, **pod_spec) -> dict:
    return {
        "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
        "spec": {"backoffLimit": backoff_limit, "template": {"spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "main", "image": "busybox", "command": command}],
            **pod_spec}}},
    }


def test_d_job_controller_retries_to_backoff_limit_then_fails_and_completes_on_success(cluster, namespace):
    cluster.apply(job("fails", ["sh", "-c", "echo failing; exit 1"], backoff_limit=1), namespace)
    cluster.apply(job("works", ["sh", "-c", "echo fine"]), namespace)

    done = wait_for_condition(cluster, "job", "works", namespace, "Complete", timeout=60)
    assert done["status"]["succeeded"] == 1

    failed = wait_for_condition(cluster, "job", "fails", namespace, "Failed", timeout=90)
    assert condition(failed, "Failed")["reason"] == "BackoffLimitExceeded"
    assert failed["status"]["failed"] == 2  # the first try and one retry
    pods = get_json(cluster, "pods", "-n", namespace, "-l", "job-name=fails")["items"]
    codes = sorted(p["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] for p in pods)
    assert codes == [1, 1]
    assert all(p["status"]["phase"] == "Failed" for p in pods)


def test_e_garbage_collector_deletes_what_an_owner_owns(cluster, namespace):
    owner = json.loads(cluster.kubectl("create", "configmap", "owner", "-n", namespace, "-o", "json").stdout)
    cluster.apply({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "owned", "ownerReferences": [{
            "apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner["metadata"]["uid"]}]},
        "data": {"x": "1"},
    }, namespace)
    cluster.kubectl("create", "configmap", "bystander", "-n", namespace)

    # A running Job pod: deleting the Job (background propagation) must kill its process.
    cluster.apply(job("sleeper", ["sleep", "300"]), namespace)
    pod = wait_for(lambda: next((p for p in get_json(cluster, "pods", "-n", namespace, "-l", "job-name=sleeper")["items"]
                                 if p["status"].get("phase") == "Running"), None), timeout=60, what="running pod")
    pid = int(pod["status"]["containerStatuses"][0]["containerID"].split("://")[1])
    assert os.path.exists(f"/proc/{pid}")

    cluster.kubectl("delete", "configmap", "owner", "-n", namespace)
    cluster.kubectl("delete", "job", "sleeper", "-n", namespace, "--cascade=background")

    wait_for(lambda: cluster.kubectl("get", "configmap", "owned", "-n", namespace, check=False).returncode != 0,
             timeout=60, what="owned ConfigMap collected")
    wait_for(lambda: not get_json(cluster, "pods", "-n", namespace, "-l", "job-name=sleeper")["items"],
             timeout=60, what="the Job's pod collected")
    wait_for(lambda: not os.path.exists(f"/proc/{pid}") or "Z" in open(f"/proc/{pid}/stat").read().split()[2],
             timeout=10, what="the pod's process killed")
    assert cluster.kubectl("get", "configmap", "bystander", "-n", namespace).returncode == 0


IDENTITY_PROBE = textwrap.dedent("""
    import json, os
    from kubernetes import client, config
    config.load_kube_config()
    core = client.CoreV1Api()
    review = client.AuthenticationV1Api().create_self_subject_review(
        {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"})
    try:
        core.list_namespaced_secret(os.environ["POD_NAMESPACE"])
        secrets = "allowed"
    except client.exceptions.ApiException as exc:
        secrets = exc.status
    report = {
        "user": review.status.user_info.username,
        "password": os.environ["DB_PASSWORD"],
        "mode": os.environ["MODE"],
        "mountedNamespace": open("/var/run/secrets/kubernetes.io/serviceaccount/namespace").read(),
        "listSecrets": secrets,
    }
    open("/dev/termination-log", "w").write(json.dumps(report))
""")


def test_f_pod_process_sees_secret_env_and_its_service_account_identity(cluster, namespace):
    cluster.kubectl("create", "secret", "generic", "db", "--from-literal=password=s3cr3t-value", "-n", namespace)
    cluster.kubectl("create", "configmap", "cfg", "--from-literal=MODE=strict", "-n", namespace)
    cluster.kubectl("create", "serviceaccount", "prober", "-n", namespace)
    cluster.apply({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "probe"},
        "spec": {
            "restartPolicy": "Never", "serviceAccountName": "prober",
            "containers": [{
                "name": "probe", "image": "python:3.11", "command": ["python", "-c", IDENTITY_PROBE],
                "envFrom": [{"configMapRef": {"name": "cfg"}}],
                "env": [
                    {"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}},
                    {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                ],
            }],
        },
    }, namespace)
    pod = wait_for(lambda: (lambda p: p if p["status"].get("phase") in ("Succeeded", "Failed") else None)(
        get_json(cluster, "pod", "probe", "-n", namespace)), timeout=60, what="probe pod finished")
    terminated = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert pod["status"]["phase"] == "Succeeded", terminated
    report = json.loads(terminated["message"])
    assert report == {
        "user": f"system:serviceaccount:{namespace}:prober",
        "password": "s3cr3t-value",
        "mode": "strict",
        "mountedNamespace": namespace,
        "listSecrets": 403,
    }
