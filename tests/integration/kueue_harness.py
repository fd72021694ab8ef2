"""Kueue v0.17.0 (built by `make tools`) as a process against the dev cluster.

`KueueProcess(cluster, workdir).start()` applies Kueue's CRDs (from the same module source,
~/.cache/quantgate/bin/kueue-crds), writes a Configuration (no leader election, health,
metrics, webhook and visibility servers on free loopback ports, only the batch/job
integration) and runs the controller manager with the cluster's kubeconfig. The apiserver
is not pointed at Kueue's webhooks (the dev cluster routes no Services): the operator
creates its Jobs suspended and labelled itself, which is what Kueue's Job webhook would
enforce, so admission (unsuspending) is Kueue's own controller at work.
"""

from __future__ import annotations

import os
import signal
import subprocess
import urllib.request
from pathlib import Path

import yaml

from operator_harness import free_port
from quantgate.dev import paths
from quantgate.dev.harness import wait_for


CONVERTED = ("localqueues", "clusterqueues", "cohorts", "workloads", "multikueueclusters")


def kueue_binary() -> Path:
    return paths.bin_dir() / "kueue"


def kueue_crds() -> Path:
    return paths.bin_dir() / "kueue-crds"


class KueueProcess:
    def __init__(self, cluster, workdir: Path):
        self.cluster = cluster
        self.workdir = workdir
        self.health_port = free_port()
        self.proc: subprocess.Popen | None = None
        self.log_path = workdir / "kueue.log"

    def config(self) -> dict:
        return {
            "apiVersion": "config.kueue.x-k8s.io/v1beta2", "kind": "Configuration",
            "namespace": "kueue-system",
            "health": {"healthProbeBindAddress": f"127.0.0.1:{self.health_port}"},
            "metrics": {"bindAddress": f"127.0.0.1:{free_port()}"},
            "webhook": {"port": free_port(), "host": "127.0.0.1", "certDir": str(self.workdir / "certs")},
            "leaderElection": {"leaderElect": False},
            "internalCertManagement": {"enable": True},
            "integrations": {"frameworks": ["batch/job"]},
            "manageJobsWithoutQueueName": False,
        }

    def crds(self) -> Path:
        """Kueue's CRDs as its release installs them: the five with two versions get a conversion
        webhook (Kueue's certificate rotator injects its CA there and waits until it could).
        Everything here speaks the storage version v1beta2, so the apiserver never calls it."""
        out = self.workdir / "crds"
        out.mkdir(exist_ok=True)
        for f in sorted(kueue_crds().glob("*.yaml")):
            crd = yaml.safe_load(f.read_text())
            if crd["metadata"]["name"].split(".")[0] in CONVERTED:
                crd["spec"]["conversion"] = {"strategy": "Webhook", "webhook": {
                    "clientConfig": {"service": {"namespace": "kueue-system", "name": "kueue-webhook-service",
                                                 "path": "/convert"}},
                    "conversionReviewVersions": ["v1"]}}
            (out / f.name).write_text(yaml.safe_dump(crd))
        return out

    def start(self) -> "KueueProcess":
        self.cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(self.crds()))
        for crd in ("clusterqueues", "localqueues", "resourceflavors", "workloads"):
            self.cluster.kubectl("wait", "--for=condition=Established", f"crd/{crd}.kueue.x-k8s.io", "--timeout=60s")
        self.cluster.kubectl("create", "namespace", "kueue-system", check=False)
        # Kueue's install ships this Secret empty; its certificate rotator fills it and fails without it
        # ('acquiring secret to update certificates: Secret "kueue-webhook-server-cert" not found')
        self.cluster.kubectl("create", "secret", "generic", "kueue-webhook-server-cert", "-n", "kueue-system",
                             check=False)
        cfg = self.workdir / "kueue-config.yaml"
        cfg.write_text(yaml.safe_dump(self.config()))
        env = dict(os.environ, KUBECONFIG=str(self.cluster.kubeconfig))
        env.pop("KUBERNETES_SERVICE_HOST", None)
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([str(kueue_binary()), "--config", str(cfg), "--kubeconfig",
                                      str(self.cluster.kubeconfig), "--visibility-server-port", str(free_port())],
                                     env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        wait_for(self.mount_certs, timeout=120, interval=0.5, what="Kueue's webhook certificate Secret")
        wait_for(self.ready, timeout=300, what="kueue /readyz")
        return self

    def mount_certs(self) -> bool:
        """What the kubelet does for Kueue's pod: its certificate Secret, once filled, as files in
        the certDir (Kueue waits for them there before it starts its controllers)."""
        import base64
        import json

        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"kueue exited: {self.log()[-3000:]}")
        out = self.cluster.kubectl("get", "secret", "kueue-webhook-server-cert", "-n", "kueue-system", "-o", "json",
                                   check=False)
        data = (json.loads(out.stdout).get("data") or {}) if out.returncode == 0 else {}
        if "tls.crt" not in data or "tls.key" not in data:
            return False
        certs = self.workdir / "certs"
        certs.mkdir(exist_ok=True)
        for key, value in data.items():
            (certs / key).write_bytes(base64.b64decode(value))
        return True

    def ready(self) -> bool:
        if self.proc is None or self.proc.poll() is not None:
            raise AssertionError(f"kueue exited: {self.log()[-3000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.health_port}/readyz", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    def stop(self) -> None:
        # Kueue may ignore SIGTERM while it waits in certificate bootstrap: kill after a grace period
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=15)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def gpu_queue(namespace: str, gpus: int, local_queue: str = "gpu", cluster_queue: str = "gpus") -> list[dict]:
    """A ResourceFlavor, a ClusterQueue with `gpus` nvidia.com/gpu of quota and a LocalQueue in `namespace`."""
    return [
        {"apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "ResourceFlavor", "metadata": {"name": "default-flavor"}},
        {"apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "ClusterQueue", "metadata": {"name": cluster_queue},
         "spec": {"namespaceSelector": {}, "resourceGroups": [{
             "coveredResources": ["cpu", "memory", "nvidia.com/gpu"],
             "flavors": [{"name": "default-flavor", "resources": [
                 {"name": "cpu", "nominalQuota": 64}, {"name": "memory", "nominalQuota": "512Gi"},
                 {"name": "nvidia.com/gpu", "nominalQuota": gpus}]}]}]}},
        {"apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "LocalQueue",
         "metadata": {"name": local_queue, "namespace": namespace}, "spec": {"clusterQueue": cluster_queue}},
    ]
