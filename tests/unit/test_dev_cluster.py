"""Dev-cluster plumbing that needs no control plane: certificates, node body, processes, volumes, CLI."""

from __future__ import annotations

import base64
import subprocess
import sys

import pytest
from cryptography import x509

from quantgate.cli import main
from quantgate.dev import cluster, node, pki, procs
from quantgate.dev.kubelet import runtime, volumes
from quantgate.dev.kubelet.podspec import ConfigError


def test_certificates_chain_to_the_ca_and_carry_the_identity(tmp_path):
    ca = pki.make_ca(tmp_path)
    leaf = pki.issue(ca, tmp_path, "kubelet", "system:node:n1", ("system:nodes",), client=True,
                     server_names=("127.0.0.1", "localhost"))
    assert pki.subject_of(leaf.cert) == ("system:node:n1", ["system:nodes"])
    cert = x509.load_pem_x509_certificate(leaf.cert.read_bytes())
    ca_cert = x509.load_pem_x509_certificate(ca.cert.read_bytes())
    cert.verify_directly_issued_by(ca_cert)
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert oct(leaf.key.stat().st_mode & 0o777) == "0o600"


def test_node_advertises_gpus_and_the_not_ready_taint_is_lifted():
    body = node.node_body("n1", 1234)
    assert body["status"]["allocatable"]["nvidia.com/gpu"] == "8"
    assert body["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"] == 1234
    taints = [{"key": node.NOT_READY_TAINT, "effect": "NoSchedule"}, {"key": "keep", "effect": "NoSchedule"}]
    assert node.without_not_ready_taint(taints) == [{"key": "keep", "effect": "NoSchedule"}]


def test_spawned_process_is_tracked_and_stopped_by_group(tmp_path):
    proc = procs.spawn("sleeper", [sys.executable, "-c", "import time; time.sleep(60)"], tmp_path / "log")
    assert procs.alive(proc)
    assert not procs.alive(procs.Proc("sleeper", proc.pid, proc.start + 1))  # pid reuse guard
    assert procs.stop(proc, grace=5)
    assert not procs.alive(proc)
    assert not procs.stop(proc)


def test_kill_leftovers_finds_pod_processes_by_pid_file(tmp_path):
    cdir = tmp_path / "pods" / "ns_p_uid" / "containers" / "c"
    cdir.mkdir(parents=True)
    child = runtime.start(["sleep", "60"], {"PATH": "/usr/bin:/bin"}, tmp_path, tmp_path / "log", cdir)
    try:
        assert runtime.kill_leftovers(tmp_path) == 1
        child.wait(timeout=5)
        assert procs.start_time(child.pid) is None
    finally:
        if child.poll() is None:
            child.kill()


def test_volumes_materialise_projected_sources(tmp_path):
    pod = {"metadata": {"name": "p", "namespace": "ns"}, "spec": {"containers": []}}
    configmaps = {"kube-root-ca.crt": {"data": {"ca.crt": "CA"}}}
    secrets = {"s": {"data": {"k": base64.b64encode(b"v").decode()}}}
    volume = {"name": "api", "projected": {"sources": [
        {"serviceAccountToken": {"path": "token", "expirationSeconds": 3607}},
        {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
        {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"fieldPath": "metadata.namespace"}}]}},
        {"secret": {"name": "s"}},
    ]}}
    seen = []

    def token_for(audience, seconds):
        seen.append((audience, seconds))
        return "TOKEN"

    volumes.materialise(volume, tmp_path / "api", pod, configmaps.get, secrets.get, token_for)
    files = {p.name: p.read_text() for p in (tmp_path / "api").iterdir()}
    assert files == {"token": "TOKEN", "ca.crt": "CA", "namespace": "ns", "k": "v"}
    assert seen == [("", 3607)]
    with pytest.raises(ConfigError):
        volumes.materialise({"name": "x", "configMap": {"name": "absent"}}, tmp_path / "x", pod,
                            configmaps.get, secrets.get, token_for)
    with pytest.raises(ConfigError):
        volumes.materialise({"name": "y", "configMap": {"name": "kube-root-ca.crt",
                                                        "items": [{"key": "ca.crt", "path": "../escape"}]}},
                            tmp_path / "y", pod, configmaps.get, secrets.get, token_for)


def test_dev_status_without_a_cluster(tmp_path, capsys):
    assert main(["dev", "status", "--state-dir", str(tmp_path / "none")]) == 1
    assert "no dev cluster" in capsys.readouterr().out
    assert main(["dev", "kubeconfig", "--state-dir", str(tmp_path / "none")]) == 2
    assert "quantgate dev up" in capsys.readouterr().err


def test_up_without_binaries_says_to_run_make_tools(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("QUANTGATE_BIN", str(tmp_path / "empty"))
    assert main(["dev", "up", "--state-dir", str(tmp_path / "state")]) == 1
    assert "make tools" in capsys.readouterr().err
    assert not (tmp_path / "state").exists()


def test_down_removes_only_what_up_created(tmp_path):
    (tmp_path / "mine.txt").write_text("keep")
    (tmp_path / cluster.STATE_FILE).write_text('{"server": "", "ports": {}, "procs": []}')
    (tmp_path / "pki").mkdir()
    cluster.down(tmp_path, progress=lambda _m: None)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.txt"]


def test_kubelet_module_runs():
    out = subprocess.run([sys.executable, "-m", "quantgate.dev.kubelet", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "--state-dir" in out.stdout


def test_only_a_dev_cluster_kubeconfig_is_reused(tmp_path, monkeypatch):
    from quantgate.dev import harness

    foreign = tmp_path / "foreign.kubeconfig"
    foreign.write_text("apiVersion: v1\n")
    monkeypatch.delenv("QUANTGATE_KUBECONFIG", raising=False)
    monkeypatch.setenv("KUBECONFIG", str(foreign))
    assert harness.reusable_kubeconfig() is None  # a real cluster's kubeconfig is never touched
    (tmp_path / cluster.STATE_FILE).write_text('{"server": "", "ports": {}, "procs": []}')
    assert harness.reusable_kubeconfig() is None  # a dev cluster that is not running
    monkeypatch.setenv("QUANTGATE_KUBECONFIG", str(foreign))
    assert harness.reusable_kubeconfig() == foreign  # explicit opt-in
