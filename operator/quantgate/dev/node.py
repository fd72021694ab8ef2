"""The dev cluster's single Node object, as the process kubelet presents it."""

from __future__ import annotations

import datetime as dt
import platform

NODE_NAME = "quantgate-dev"
KUBELET_VERSION = "v1.37.2"
# Generous, fixed capacity: the scheduler's fit checks run, but never bind a dev box's real size.
CAPACITY = {"cpu": "64", "memory": "256Gi", "pods": "1000", "ephemeral-storage": "1Ti",
            "nvidia.com/gpu": "8"}
NOT_READY_TAINT = "node.kubernetes.io/not-ready"


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def node_body(name: str = NODE_NAME, kubelet_port: int = 0, capacity: dict | None = None) -> dict:
    stamp = now()
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
    capacity = dict(capacity or CAPACITY)

    def condition(kind: str, status: str, reason: str) -> dict:
        return {"type": kind, "status": status, "reason": reason, "message": reason,
                "lastHeartbeatTime": stamp, "lastTransitionTime": stamp}

    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": {
            "kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": arch,
            "node-role.kubernetes.io/dev": "", "nvidia.com/gpu.present": "true"}},
        "spec": {},
        # A Node may carry its status on create (the registry keeps it); later changes go to /status.
        "status": {
            "capacity": capacity,
            "allocatable": capacity,
            "phase": "Running",
            "conditions": [
                condition("Ready", "True", "KubeletReady"),
                condition("MemoryPressure", "False", "KubeletHasSufficientMemory"),
                condition("DiskPressure", "False", "KubeletHasNoDiskPressure"),
                condition("PIDPressure", "False", "KubeletHasSufficientPID"),
                condition("NetworkUnavailable", "False", "RouteCreated"),
            ],
            "addresses": [{"type": "InternalIP", "address": "127.0.0.1"},
                          {"type": "Hostname", "address": name}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": kubelet_port}},
            "nodeInfo": {
                "kubeletVersion": KUBELET_VERSION, "kubeProxyVersion": KUBELET_VERSION,
                "operatingSystem": "linux", "architecture": arch,
                "containerRuntimeVersion": "quantgate-process://1", "osImage": platform.platform(),
                "kernelVersion": platform.release(), "machineID": "", "systemUUID": "", "bootID": "",
            },
        },
    }


def without_not_ready_taint(taints: list[dict] | None) -> list[dict]:
    """The TaintNodesByCondition admission plugin adds this taint to every new Node; only the
    node-lifecycle controller (not run here) would lift it."""
    return [t for t in (taints or []) if t.get("key") != NOT_READY_TAINT]
