"""Test harness over the dev cluster: used by tests/integration/conftest.py and importable by any test.

    from quantgate.dev.harness import impersonate, wait_for
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import yaml

from quantgate.dev import cluster as dev_cluster
from quantgate.dev import paths


@dataclass
class Cluster:
    kubeconfig: Path
    server: str
    state_dir: Path | None = None  # None when reusing a cluster started elsewhere

    def api_client(self):
        """A new kubernetes.client.ApiClient with the admin identity (system:masters)."""
        from kubernetes import config

        return config.new_client_from_config(config_file=str(self.kubeconfig))

    def kubectl(self, *args: str, check: bool = True, input: str | None = None,
                timeout: float = 120) -> subprocess.CompletedProcess:
        """Run the cached kubectl against this cluster; stdout/stderr are text."""
        result = subprocess.run(
            [str(paths.binary("kubectl")), f"--kubeconfig={self.kubeconfig}", *args],
            input=input, capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({result.returncode}): {result.stderr.strip()}")
        return result

    def apply(self, manifest: dict | str, namespace: str | None = None) -> subprocess.CompletedProcess:
        text = manifest if isinstance(manifest, str) else yaml.safe_dump(manifest)
        extra = ["-n", namespace] if namespace else []
        return self.kubectl("apply", "-f", "-", *extra, input=text)


def _server_of(kubeconfig: Path) -> str:
    config = yaml.safe_load(kubeconfig.read_text())
    context = next(c["context"] for c in config["contexts"] if c["name"] == config["current-context"])
    return next(c["cluster"]["server"] for c in config["clusters"] if c["name"] == context["cluster"])


def reusable_kubeconfig() -> Path | None:
    """QUANTGATE_KUBECONFIG names a cluster to reuse; KUBECONFIG is reused only when it is a
    `quantgate dev` cluster's (tests create and delete namespaces: never point them elsewhere)."""
    explicit = os.environ.get("QUANTGATE_KUBECONFIG")
    if explicit:
        return Path(explicit)
    candidate = os.environ.get("KUBECONFIG")
    if candidate and os.pathsep not in candidate:
        path = Path(candidate)
        if path.is_file() and (path.parent / dev_cluster.STATE_FILE).is_file() \
                and dev_cluster.running(path.parent):
            return path
    return None


def attach(kubeconfig: Path) -> Cluster:
    return Cluster(kubeconfig, _server_of(kubeconfig))


def start(state_dir: Path, progress: Callable[[str], None] = lambda _m: None) -> Cluster:
    state = dev_cluster.up(state_dir, progress=progress)
    return Cluster(state.kubeconfig, state.server, state.directory)


def stop(cluster: Cluster) -> None:
    if cluster.state_dir is not None:
        dev_cluster.down(cluster.state_dir, progress=lambda _m: None)


def pod_volume(cluster: Cluster, pod: dict, volume: str) -> Path:
    """The host directory of `volume` of a pod the dev cluster's process kubelet runs: what the
    pod's containers see at that volume's mount paths (the stand-in for `kubectl exec`, which
    the process kubelet does not serve). The cluster's state directory holds the kubeconfig."""
    from quantgate.dev.kubelet.pods import pod_dir

    state_dir = cluster.state_dir or cluster.kubeconfig.parent
    meta = pod["metadata"]
    path = pod_dir(state_dir / "kubelet" / "pods", meta["namespace"], meta["name"], meta["uid"]) / "volumes" / volume
    if not path.is_dir():
        raise FileNotFoundError(f"volume {volume} of pod {meta['namespace']}/{meta['name']} is not at {path}")
    return path


def create_namespace(cluster: Cluster, prefix: str = "t", labels: dict | None = None) -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    cluster.apply({"apiVersion": "v1", "kind": "Namespace",
                   "metadata": {"name": name, "labels": labels or {}}})
    # Pods need the namespace's `default` ServiceAccount (made by the controller-manager).
    wait_for(lambda: cluster.kubectl("get", "sa", "default", "-n", name, check=False).returncode == 0,
             timeout=30, what=f"ServiceAccount default in {name}")
    return name


def service_account_token(cluster: Cluster, namespace: str, service_account: str,
                          create: bool = True, seconds: int = 3600) -> str:
    if create:
        cluster.kubectl("create", "serviceaccount", service_account, "-n", namespace, check=False)
    return cluster.kubectl("create", "token", service_account, "-n", namespace,
                           f"--duration={seconds}s").stdout.strip()


def impersonate(cluster: Cluster, namespace: str, service_account: str, create: bool = True):
    """An ApiClient acting as system:serviceaccount:<namespace>:<service_account>, with a real
    token from the TokenRequest API (so RBAC, not system:masters, decides)."""
    from kubernetes import config

    admin = yaml.safe_load(cluster.kubeconfig.read_text())
    token = service_account_token(cluster, namespace, service_account, create)
    user = f"system:serviceaccount:{namespace}:{service_account}"
    ca = admin["clusters"][0]["cluster"]["certificate-authority-data"]
    as_sa = {
        "apiVersion": "v1", "kind": "Config", "current-context": "sa",
        "clusters": [{"name": "c", "cluster": {"server": cluster.server, "certificate-authority-data": ca}}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": "sa", "context": {"cluster": "c", "user": user, "namespace": namespace}}],
    }
    return config.new_client_from_config_dict(as_sa)


def wait_for(check: Callable[[], Any], timeout: float = 60, interval: float = 0.2, what: str = "") -> Any:
    """Poll `check` until it returns something truthy and return that; fail with the last value."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            last = check()
        except Exception as exc:  # a not-yet-existing object is part of waiting
            last = exc
        else:
            if last:
                return last
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or check}; last: {last!r}")
        time.sleep(interval)


def condition(obj: dict, kind: str) -> dict | None:
    """The status condition of type `kind` in a plain-dict object, or None."""
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == kind:
            return cond
    return None


def get_json(cluster: Cluster, *args: str) -> dict:
    import json

    return json.loads(cluster.kubectl("get", *args, "-o", "json").stdout)


def wait_for_condition(cluster: Cluster, resource: str, name: str, namespace: str, kind: str,
                       status: str = "True", timeout: float = 60) -> dict:
    """Wait until the object's condition `kind` has `status`; returns the object."""
    def check():
        obj = get_json(cluster, resource, name, "-n", namespace)
        cond = condition(obj, kind)
        return obj if cond and cond.get("status") == status else None

    return wait_for(check, timeout=timeout, what=f"{resource}/{name} condition {kind}={status}")
