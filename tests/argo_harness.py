"""The Argo engines as local processes against the dev cluster (built by `make tools-argo`).

Used by tests/e2e/gitops.py (`make e2e-gitops`: Argo CD syncs the sync-wave example) and
tests/integration/test_rollouts_analysis.py (Argo Rollouts runs the AnalysisTemplates).

- `redis(workdir)`: Debian's redis-server on a free loopback port (Argo CD's cache).
- `GitServer`: a bare repository served read-only by `git daemon` on loopback; `commit(files)`.
- `ArgoCD`: argocd-repo-server and argocd-application-controller (one multi-call binary,
  the role taken from argv[0]) with the in-cluster destination pointing at the dev cluster.
- `RolloutsController`: the Argo Rollouts controller, cluster-wide, no leader election.

Every process logs to a file in the work directory and is stopped by its context manager.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

from quantgate.dev import paths

ROOT = Path(__file__).resolve().parents[1]
ARGOCD_NS = "argocd"  # what Argo CD's install uses; the informers of the controller watch this one
ENGINES = ("argocd-application-controller", "argocd-repo-server", "rollouts-controller")
HTTPROUTE_CRD = ROOT / "tests/fixtures/argo/httproutes.gateway.networking.k8s.io.yaml"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def missing_engines(names: tuple[str, ...] = ENGINES) -> list[str]:
    return [name for name in names if not os.access(paths.binary(name), os.X_OK)]


def crd_dir(engine: str) -> Path:
    """CRDs copied from the engine's module by scripts/build-argo.sh (engine: argocd, rollouts)."""
    return paths.bin_dir() / f"{engine}-crds"


def wait_until(check, timeout: float, what: str, interval: float = 0.5):
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = check()
        except OSError:
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def established(cluster, crd: str) -> None:
    """Wait until a just-created CRD is served (kubectl wait errors while .status has no conditions)."""
    def check():
        out = cluster.kubectl("get", "crd", crd, "-o", "jsonpath={.status.conditions[?(@.type=='Established')].status}",
                              check=False)
        return out.stdout.strip() == "True"
    wait_until(check, 60, f"CRD {crd} established")


class Process:
    """A long-running command with its log in a file; stop() signals its process group."""

    def __init__(self, name: str, argv: list[str], log: Path, env: dict[str, str] | None = None,
                 cwd: Path | None = None):
        self.name, self.argv, self.log_path = name, argv, log
        self.env = env or dict(os.environ)
        self.cwd = cwd
        self.proc: subprocess.Popen | None = None

    def start(self) -> "Process":
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(self.argv, env=self.env, cwd=self.cwd, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
        return self

    def alive(self) -> bool:
        if self.proc is None or self.proc.poll() is not None:
            raise RuntimeError(f"{self.name} exited ({self.proc and self.proc.returncode}): {self.tail()}")
        return True

    def tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=15)


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status == 200
    except OSError:
        return False


@contextmanager
def redis(workdir: Path):
    """Yields host:port of a throw-away redis-server (no persistence)."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server missing: run `make system-deps` (Debian package redis-server)")
    port = free_port()
    proc = Process("redis", [binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no",
                             "--dir", str(workdir)], workdir / "redis.log").start()
    try:
        def up():
            proc.alive()
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        wait_until(up, 30, "redis PING")
        yield f"127.0.0.1:{port}"
    finally:
        proc.stop()


class GitServer:
    """One bare repository, `app.git`, served read-only over git:// on loopback by `git daemon`."""

    def __init__(self, workdir: Path):
        self.base = workdir / "git"
        self.bare = self.base / "app.git"
        self.work = workdir / "git-work"
        self.port = free_port()
        self.url = f"git://127.0.0.1:{self.port}/app.git"
        self.env = dict(os.environ, GIT_AUTHOR_NAME="quantgate e2e", GIT_AUTHOR_EMAIL="e2e@quantgate.invalid",
                        GIT_COMMITTER_NAME="quantgate e2e", GIT_COMMITTER_EMAIL="e2e@quantgate.invalid",
                        GIT_CONFIG_NOSYSTEM="1", HOME=str(workdir))
        self.daemon = Process("git-daemon", [
            "git", "daemon", "--reuseaddr", "--export-all", f"--base-path={self.base}", "--listen=127.0.0.1",
            f"--port={self.port}", "--informative-errors", str(self.base)], workdir / "git-daemon.log", env=self.env)

    def git(self, *args: str, cwd: Path | None = None) -> str:
        return subprocess.run(["git", *args], cwd=cwd or self.work, env=self.env, check=True, capture_output=True,
                              text=True).stdout.strip()

    def __enter__(self) -> "GitServer":
        self.base.mkdir(parents=True)
        self.git("init", "-q", "--bare", "-b", "main", str(self.bare), cwd=self.base)
        self.git("clone", "-q", str(self.bare), str(self.work), cwd=self.base)
        self.git("checkout", "-q", "-b", "main")
        self.daemon.start()

        def serving():
            self.daemon.alive()
            out = subprocess.run(["git", "ls-remote", self.url], env=self.env, capture_output=True, text=True)
            return out.returncode == 0
        wait_until(serving, 30, "git daemon")
        return self

    def __exit__(self, *exc) -> None:
        self.daemon.stop()

    def commit(self, files: dict[str, str], message: str) -> str:
        """Write files (relative path -> text), commit, push to the served repository; the commit SHA."""
        for rel, text in files.items():
            path = self.work / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        self.git("add", "-A")
        self.git("commit", "-q", "-m", message)
        self.git("push", "-q", "origin", "main")
        return self.git("rev-parse", "HEAD")


class ArgoCD:
    """argocd-repo-server + argocd-application-controller against `cluster` (admin kubeconfig, as the
    controller's cluster-admin ClusterRole in Argo CD's install). Call install() once per cluster."""

    def __init__(self, cluster, workdir: Path, redis_address: str):
        self.cluster, self.workdir, self.redis = cluster, workdir, redis_address
        self.repo_port, self.repo_metrics, self.ctrl_metrics = free_port(), free_port(), free_port()
        home = workdir / "argocd-home"
        for sub in ("tmp", "tls", "ssh", "plugins"):  # what the images keep under /app/config and /home/argocd
            (home / sub).mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, HOME=str(home), TMPDIR=str(home / "tmp"), ARGOCD_GPG_ENABLED="false",
                   ARGOCD_TLS_DATA_PATH=str(home / "tls"), ARGOCD_SSH_DATA_PATH=str(home / "ssh"),
                   ARGOCD_PLUGINSOCKFILEPATH=str(home / "plugins"),
                   KUBECONFIG=str(cluster.kubeconfig), ARGOCD_FAKE_IN_CLUSTER="true")
        env["PATH"] = f"{paths.bin_dir()}:{env.get('PATH', '')}"  # kustomize, next to the argocd binary
        for var in ("KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT"):
            env.pop(var, None)
        self.repo_server = Process("argocd-repo-server", [
            str(paths.binary("argocd-repo-server")), "--disable-tls", "--client-ca-path=", "--address", "127.0.0.1",
            "--port", str(self.repo_port), "--metrics-address", "127.0.0.1", "--metrics-port", str(self.repo_metrics),
            "--redis", redis_address, "--loglevel", "info"], workdir / "argocd-repo-server.log", env=env)
        self.controller = Process("argocd-application-controller", [
            str(paths.binary("argocd-application-controller")), "--kubeconfig", str(cluster.kubeconfig),
            "--namespace", ARGOCD_NS, "--redis", redis_address, "--repo-server", f"127.0.0.1:{self.repo_port}",
            "--repo-server-plaintext", "--metrics-port", str(self.ctrl_metrics), "--loglevel", "info"],
            workdir / "argocd-application-controller.log", env=env)

    def install(self) -> None:
        """Argo CD's CRDs, its namespace, the ConfigMap/Secret its install ships (with the labels its
        informers filter on) and the `default` AppProject (argocd-server creates it; not run here)."""
        for path in sorted(crd_dir("argocd").glob("*-crd.yaml")):
            self.cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(path))
        for crd in ("applications.argoproj.io", "appprojects.argoproj.io"):
            established(self.cluster, crd)
        self.cluster.kubectl("create", "namespace", ARGOCD_NS, check=False)
        labels = {"app.kubernetes.io/part-of": "argocd"}
        self.cluster.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {
            "name": "argocd-cm", "namespace": ARGOCD_NS, "labels": {**labels, "app.kubernetes.io/name": "argocd-cm"}}})
        self.cluster.apply({"apiVersion": "v1", "kind": "Secret", "metadata": {
            "name": "argocd-secret", "namespace": ARGOCD_NS,
            "labels": {**labels, "app.kubernetes.io/name": "argocd-secret"}}, "type": "Opaque"})
        self.cluster.apply({"apiVersion": "argoproj.io/v1alpha1", "kind": "AppProject", "metadata": {
            "name": "default", "namespace": ARGOCD_NS}, "spec": {
            "sourceRepos": ["*"], "destinations": [{"server": "*", "namespace": "*"}],
            "clusterResourceWhitelist": [{"group": "*", "kind": "*"}]}})

    def start(self) -> "ArgoCD":
        self.repo_server.start()
        wait_until(lambda: self.repo_server.alive() and http_ok(f"http://127.0.0.1:{self.repo_metrics}/metrics"),
                   120, "argocd-repo-server")
        self.controller.start()
        wait_until(lambda: self.controller.alive() and http_ok(f"http://127.0.0.1:{self.ctrl_metrics}/metrics"),
                   120, "argocd-application-controller")
        return self

    def stop(self) -> None:
        self.controller.stop()
        self.repo_server.stop()

    def application(self, name: str) -> dict:
        out = self.cluster.kubectl("get", "applications.argoproj.io", name, "-n", ARGOCD_NS, "-o", "json",
                                   check=False)
        return json.loads(out.stdout) if out.returncode == 0 else {}


class RolloutsController:
    """The Argo Rollouts controller, cluster-wide with the admin kubeconfig (its install's ClusterRole
    covers AnalysisRuns, Jobs and the rest); metrics and health on free loopback ports."""

    def __init__(self, cluster, workdir: Path):
        self.cluster = cluster
        self.metrics_port, self.healthz_port = free_port(), free_port()
        env = dict(os.environ, KUBECONFIG=str(cluster.kubeconfig))
        for var in ("KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT"):
            env.pop(var, None)
        self.proc = Process("rollouts-controller", [
            str(paths.binary("rollouts-controller")), "--kubeconfig", str(cluster.kubeconfig), "--leader-elect=false",
            "--metricsPort", str(self.metrics_port), "--healthzPort", str(self.healthz_port), "--loglevel", "info"],
            workdir / "rollouts-controller.log", env=env)

    def install(self) -> None:
        for path in sorted(crd_dir("rollouts").glob("*-crd.yaml")):
            self.cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(path))
        for crd in ("analysisruns.argoproj.io", "analysistemplates.argoproj.io", "rollouts.argoproj.io"):
            established(self.cluster, crd)

    def start(self) -> "RolloutsController":
        self.proc.start()
        wait_until(lambda: self.proc.alive() and http_ok(f"http://127.0.0.1:{self.metrics_port}/metrics"),
                   120, "rollouts-controller")
        return self

    def stop(self) -> None:
        self.proc.stop()
