"""Shared pieces of the operator integration tests (imported by test_operator*.py).

`install_crds(cluster)` applies the generated CRD, the KServe stand-in and the runner RBAC;
`OperatorProcess` runs `quantgate operator` as a subprocess (so tests can kill and restart
it like a crashing pod); `simulated(...)` starts simulated model servers.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import yaml

from quantgate.dev.harness import wait_for

ROOT = Path(__file__).resolve().parents[2]
CRD = ROOT / "manifests/crd/modelevaluations.quantgate.io.yaml"
MATRIX_CRD = ROOT / "manifests/crd/modelevaluationmatrices.quantgate.io.yaml"
KSERVE = ROOT / "manifests/kserve/inferenceservices.serving.kserve.io.yaml"
RUNNER_RBAC = ROOT / "manifests/rbac/runner.yaml"
OPERATOR_RBAC = ROOT / "manifests/rbac/operator.yaml"
QUANTGATE = str(ROOT / ".venv/bin/quantgate") if (ROOT / ".venv/bin/quantgate").exists() else "quantgate"


LEASE_NAMESPACE = "quantgate-system"  # where manifests/rbac/operator.yaml lets the operator hold its Lease


def install_crds(cluster) -> None:
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRD), "-f", str(MATRIX_CRD),
                    "-f", str(KSERVE))
    for name in ("modelevaluations.quantgate.io", "modelevaluationmatrices.quantgate.io",
                 "inferenceservices.serving.kserve.io"):
        wait_established(cluster, name)


def wait_established(cluster, crd: str, timeout: float = 60) -> None:
    """Until the CRD is Established. (`kubectl wait` fails at once, instead of waiting, when it
    reads a just-created CRD whose status has no conditions yet.)"""
    from quantgate.dev.harness import wait_for

    wait_for(lambda: cluster.kubectl("get", f"crd/{crd}", "-o",
                                     "jsonpath={.status.conditions[?(@.type=='Established')].status}",
                                     check=False).stdout.strip() == "True",
             timeout=timeout, interval=0.5, what=f"CRD {crd} established")


def install_runner_rbac(cluster, namespace: str) -> None:
    cluster.kubectl("apply", "-n", namespace, "-f", str(RUNNER_RBAC))


def install_operator_rbac(cluster) -> None:
    cluster.kubectl("create", "namespace", "quantgate-system", check=False)
    cluster.kubectl("apply", "-f", str(OPERATOR_RBAC))


def sa_kubeconfig(cluster, namespace: str, service_account: str, path: Path) -> Path:
    """A kubeconfig acting as the ServiceAccount (TokenRequest token), so RBAC decides."""
    from quantgate.dev.harness import service_account_token

    admin = yaml.safe_load(cluster.kubeconfig.read_text())
    token = service_account_token(cluster, namespace, service_account, create=False, seconds=7200)
    user = f"system:serviceaccount:{namespace}:{service_account}"
    config = {
        "apiVersion": "v1", "kind": "Config", "current-context": "sa",
        "clusters": [{"name": "c", "cluster": {"server": cluster.server, "certificate-authority-data":
                                               admin["clusters"][0]["cluster"]["certificate-authority-data"]}}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": "sa", "context": {"cluster": "c", "user": user, "namespace": namespace}}],
    }
    path.write_text(yaml.safe_dump(config))
    return path


def operator_kubeconfig(cluster, directory: Path) -> Path:
    """Install the operator's RBAC and return a kubeconfig with exactly its permissions."""
    install_operator_rbac(cluster)
    return sa_kubeconfig(cluster, "quantgate-system", "quantgate-operator", directory / "operator.kubeconfig")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class OperatorProcess:
    """`quantgate operator` against the test cluster, logs to a file."""

    def __init__(self, cluster, log_path: Path, *args: str, namespaces: list[str] | None = None,
                 kubeconfig: Path | None = None, identity: str | None = None, env: dict | None = None):
        self.cluster = cluster
        self.kubeconfig = kubeconfig or cluster.kubeconfig
        self.log_path = log_path
        self.metrics_port = free_port()
        self.args = list(args)
        self.namespaces = namespaces or []
        self.proc: subprocess.Popen | None = None
        self.launcher = [QUANTGATE]
        # its name in the leader Lease: kept across restarts, like a pod's name
        self.identity = identity or f"test-operator-{self.metrics_port}"
        self.env = env or {}

    def start(self) -> "OperatorProcess":
        env = dict(os.environ, KUBECONFIG=str(self.kubeconfig), **self.env)
        env.pop("KUBERNETES_SERVICE_HOST", None)
        self.cluster.kubectl("create", "namespace", LEASE_NAMESPACE, check=False)
        cmd = [*self.launcher, "operator", "--metrics-host", "127.0.0.1", "--metrics-port", str(self.metrics_port),
               "--runner-image", "quantgate:test", "--leader-identity", self.identity,
               "--lease-namespace", LEASE_NAMESPACE, *self.args]
        for ns in self.namespaces:
            cmd += ["--namespace", ns]
        log = open(self.log_path, "ab")
        log.write(b"quantgate operator starting\n")
        log.flush()
        self.proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        wait_for(self.healthy, timeout=60, what="operator /healthz")
        return self

    def healthy(self) -> bool:
        if self.proc is None or self.proc.poll() is not None:
            raise AssertionError(f"operator exited: {self.log()[-2000:]}")
        return self.healthz() == 200

    def healthz(self) -> int | None:
        """HTTP status of /healthz (None: no answer)."""
        import urllib.error
        import urllib.request

        try:
            return urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/healthz", timeout=2).status
        except urllib.error.HTTPError as exc:
            return exc.code
        except OSError:
            return None

    def leading(self) -> bool:
        """This process holds the leader Lease (its log says so since its last start)."""
        text = self.log()
        return text.rfind(f"acquired by {self.identity}") > text.rfind("quantgate operator starting") \
            if "quantgate operator starting" in text else f"acquired by {self.identity}" in text

    def metrics(self) -> str:
        import urllib.request

        return urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5).read().decode()

    def kill(self, sig=signal.SIGKILL) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def evaluation(name: str, baseline: dict, candidate: dict, **spec) -> dict:
    return {"apiVersion": "quantgate.io/v1alpha1", "kind": "ModelEvaluation",
            "metadata": {"name": name}, "spec": {"baseline": baseline, "candidate": candidate, **spec}}


def isvc(name: str) -> dict:
    """An InferenceService object without status (set_isvc_status gives it one)."""
    return {"apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService", "metadata": {"name": name},
            "spec": {"predictor": {"model": {"modelFormat": {"name": "huggingface"}}}}}


def serve_fleet(cluster, namespace: str, fleet) -> None:
    """One Ready InferenceService per simulated variant, its address the variant's loopback URL
    (the dev cluster routes no Services)."""
    for name in fleet.names:
        cluster.apply(isvc(name), namespace)
        set_isvc_status(cluster, namespace, name, fleet.url(name), True)


def set_isvc_status(cluster, namespace: str, name: str, url: str | None, ready: bool) -> None:
    status = {"conditions": [{"type": "Ready", "status": "True" if ready else "False",
                              "reason": "Simulated" if ready else "PredictorNotReady"}]}
    if url:
        status["url"] = url
        status["address"] = {"url": url}
    import json

    cluster.kubectl("patch", "inferenceservice", name, "-n", namespace, "--subresource=status", "--type=merge",
                    "-p", json.dumps({"status": status}))


def get(cluster, kind: str, name: str, namespace: str) -> dict:
    import json

    return json.loads(cluster.kubectl("get", kind, name, "-n", namespace, "-o", "json").stdout)


def dump(obj) -> str:
    return yaml.safe_dump(obj)


def python() -> str:
    return sys.executable


def wait_phase(cluster, name: str, namespace: str, phases: tuple[str, ...], timeout: float = 120) -> dict:
    def check():
        obj = get(cluster, "meval", name, namespace)
        st = obj.get("status") or {}
        if st.get("observedGeneration") == obj["metadata"]["generation"] and st.get("phase") in phases:
            return obj
        return None

    return wait_for(check, timeout=timeout, interval=0.5, what=f"meval/{name} phase in {phases}")


def now() -> float:
    return time.monotonic()
