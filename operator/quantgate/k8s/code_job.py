"""The runner Job of a code evaluation: the containers that execute model-written code get no
ServiceAccount token.

`job.build_job` gives each role a container that runs `quantgate run ... --publish-configmap`
and so needs the pod's ServiceAccount token. For an evaluation that runs code tasks this
module rearranges the pod:

* the pod no longer automounts the token (`automountServiceAccountToken: false`);
* each role's `quantgate run` becomes an init container (baseline, then candidate) without
  `--publish-configmap`: it evaluates into the shared work volume and has no token, no
  kubeconfig and no API access beyond anonymous; its TMPDIR (where the sandbox makes each
  sample's working directory) is the work volume, as the root file system is read-only;
* one `publish-<role>` container per role then runs `quantgate publish`, mounting the work
  volume read-only and the only token volume (projected: token, cluster CA, namespace at the
  usual path); it executes no model code;
* the Job and its pods carry `quantgate.io/code-execution: "true"`: the chart's shared runner
  NetworkPolicy leaves them out, the operator gives each such Job a policy of its own
  (k8s/egress_policy.py: egress to its model endpoints, the API server and DNS only).

The sandbox (quantgate.lmeval.sandbox) confines each program further; docs/security.md.
"""

from __future__ import annotations

from quantgate.k8s import names

SA_MOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"
TOKEN_VOLUME = "runner-token"


def _token_volume() -> dict:
    return {"name": TOKEN_VOLUME, "projected": {"sources": [
        {"serviceAccountToken": {"path": "token", "expirationSeconds": 3607}},
        {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
        {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"fieldPath": "metadata.namespace"}}]}},
    ]}}


def _publisher(evaluator: dict, work: str, target: str, role: str, api_key_env: str) -> dict:
    resources = {k: {n: q for n, q in v.items() if n != "nvidia.com/gpu"}
                 for k, v in evaluator.get("resources", {}).items()}
    work_mount = next(m for m in evaluator["volumeMounts"] if m["mountPath"] == work)
    return {
        "name": f"publish-{role}",
        "image": evaluator["image"],
        "imagePullPolicy": evaluator.get("imagePullPolicy", "IfNotPresent"),
        "command": list(evaluator["command"]),
        "args": ["publish", "--run-dir", f"{work}/{role}", "--configmap", target, "--role", role],
        "env": [e for e in evaluator["env"] if e["name"] != api_key_env],
        "resources": {k: v for k, v in resources.items() if v},
        "volumeMounts": [{**work_mount, "readOnly": True},
                         {"name": TOKEN_VOLUME, "mountPath": SA_MOUNT, "readOnly": True}],
        "securityContext": dict(evaluator["securityContext"]),
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }


def isolate_code_execution(job: dict, work: str, api_key_env: str) -> None:
    """Rearrange `job` (built by job.build_job) so that no code-executing container holds a token."""
    pod = job["spec"]["template"]["spec"]
    evaluators = [*(pod.get("initContainers") or []), *pod["containers"]]
    publishers = []
    for container in evaluators:
        args = container["args"]
        at = args.index("--publish-configmap")
        target, role = args[at + 1], args[at + 3]
        del args[at:at + 4]
        publishers.append(_publisher(container, work, target, role, api_key_env))
        # The sandbox's working directories: the root file system is read-only, the work volume is not.
        container["env"].append({"name": "TMPDIR", "value": work})
    pod["initContainers"] = evaluators
    pod["containers"] = publishers
    pod["automountServiceAccountToken"] = False
    pod["volumes"].append(_token_volume())
    for meta in (job["metadata"], job["spec"]["template"]["metadata"]):
        meta["labels"] = {**meta["labels"], names.LABEL_CODE_EXECUTION: "true"}


def runs_code(job: dict) -> bool:
    """Whether a runner Job executes model code (its evaluating containers were given --allow-code-execution)."""
    pod = job["spec"]["template"]["spec"]
    return any("--allow-code-execution" in (c.get("args") or [])
               for c in [*(pod.get("initContainers") or []), *pod["containers"]])
