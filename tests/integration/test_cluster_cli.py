"""`quantgate dev up|status|kubeconfig|down` as a user runs them: a second, separate cluster."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from quantgate.dev import paths, procs
from quantgate.dev.cluster import State


def dev(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "quantgate.cli", "dev", *args],
                          capture_output=True, text=True, timeout=180)


def test_up_status_down_leaves_nothing_behind(cluster, tmp_path):
    if paths.missing_binaries():
        pytest.skip("reusing a cluster without local binaries")
    state_dir = tmp_path / "dev"
    up = dev("up", "--state-dir", str(state_dir))
    assert up.returncode == 0, up.stderr
    assert up.stdout == f"export KUBECONFIG={state_dir / 'admin.kubeconfig'}\n"
    assert "starting kube-apiserver" in up.stderr and "ready in" in up.stderr
    state = State.load(state_dir)
    try:
        assert sorted(p.name for p in state.procs) == sorted(
            ["etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet"])
        report = json.loads(dev("status", "--state-dir", str(state_dir), "-o", "json").stdout)
        assert report["running"] and report["ready"] and report["server"] == state.server
        assert sorted(p.name for p in state.procs) == sorted(report["components"])
        for name in ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet"):
            assert (state_dir / "logs" / f"{name}.log").exists()

        again = dev("up", "--state-dir", str(state_dir))
        assert again.returncode == 0 and "already running" in again.stderr
        assert State.load(state_dir).server == state.server

        assert dev("kubeconfig", "--state-dir", str(state_dir), "--export").stdout == up.stdout
        version = subprocess.run([str(paths.binary("kubectl")), f"--kubeconfig={state_dir / 'admin.kubeconfig'}",
                                  "version", "-o", "json"], capture_output=True, text=True, check=True)
        assert json.loads(version.stdout)["serverVersion"]["gitVersion"] == "v1.37.2"
    finally:
        down = dev("down", "--state-dir", str(state_dir))
    assert down.returncode == 0
    assert not any(procs.alive(p) for p in state.procs)
    assert not state_dir.exists()
    stopped = dev("status", "--state-dir", str(state_dir))
    assert stopped.returncode == 1 and "no dev cluster" in stopped.stdout
