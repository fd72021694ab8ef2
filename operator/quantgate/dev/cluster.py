"""Bring the dev control plane up and down: etcd, kube-apiserver, kube-controller-manager,
kube-scheduler and the process kubelet, on loopback ports, with state in one directory."""

from __future__ import annotations

import json
import os
import shutil
import socket
import ssl
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from quantgate.dev import kubeconfig, paths, pki, procs
from quantgate.dev.node import NODE_NAME, node_body, without_not_ready_taint
from quantgate.dev.rest import ApiError, Rest
from quantgate.errors import QuantgateError

STATE_FILE = "state.json"
# Controllers a single-node dev cluster needs; node-lifecycle, IPAM, endpoints, volumes and CSR
# signing are left out (no real nodes, network or storage here).
CONTROLLERS = (
    "job-controller", "garbage-collector-controller", "namespace-controller",
    "serviceaccount-controller", "serviceaccount-token-controller",
    "root-ca-certificate-publisher-controller", "clusterrole-aggregation-controller",
    "ttl-after-finished-controller", "pod-garbage-collector-controller",
    "deployment-controller", "replicaset-controller", "cronjob-controller",
)
KUBECONFIGS = ("admin", "controller-manager", "scheduler", "kubelet")
STOP_ORDER = ("kubelet", "kube-scheduler", "kube-controller-manager", "kube-apiserver", "etcd")


class ClusterError(QuantgateError):
    exit_code = 1


class ComponentExited(ClusterError):
    def __init__(self, component: str, message: str):
        self.component = component
        super().__init__(message)


@dataclass
class State:
    directory: Path
    server: str = ""
    ports: dict = field(default_factory=dict)
    procs: list[procs.Proc] = field(default_factory=list)
    node: str = NODE_NAME
    started: float = 0.0

    @property
    def kubeconfig(self) -> Path:
        return self.directory / "admin.kubeconfig"

    @property
    def pki(self) -> Path:
        return self.directory / "pki"

    @property
    def logs(self) -> Path:
        return self.directory / "logs"

    def save(self) -> None:
        data = {"server": self.server, "ports": self.ports, "node": self.node,
                "started": self.started, "procs": [p.to_dict() for p in self.procs]}
        tmp = self.directory / (STATE_FILE + ".tmp")
        tmp.write_text(json.dumps(data, indent=2))
        tmp.replace(self.directory / STATE_FILE)

    @classmethod
    def load(cls, directory: Path) -> "State | None":
        try:
            data = json.loads((directory / STATE_FILE).read_text())
        except (OSError, json.JSONDecodeError):
            return None
        return cls(directory, data["server"], data["ports"],
                   [procs.Proc(**p) for p in data["procs"]], data.get("node", NODE_NAME),
                   data.get("started", 0.0))

    def admin(self) -> Rest:
        return Rest(self.server, self.pki / "ca.crt", cert=self.pki / "admin.crt",
                    key=self.pki / "admin.key")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _wait(what: str, check: Callable[[], bool], state: State, timeout: float) -> None:
    """Poll `check` until true; fail early, with the log tail, when a component has died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for proc in state.procs:
            if not procs.alive(proc):
                log = state.logs / f"{proc.name}.log"
                raise ComponentExited(proc.name, f"{proc.name} exited while waiting for {what}; see {log}:\n{_tail(log)}")
        try:
            if check():
                return
        except (OSError, ApiError, ssl.SSLError):
            pass
        time.sleep(0.2)
    raise ClusterError(f"timed out after {timeout:.0f}s waiting for {what}; logs in {state.logs}")


def _https_ok(url: str, state: State) -> bool:
    context = ssl.create_default_context(cafile=str(state.pki / "ca.crt"))
    context.load_cert_chain(str(state.pki / "admin.crt"), str(state.pki / "admin.key"))
    with urllib.request.urlopen(url, context=context, timeout=3) as response:
        return response.status == 200


def _http_ok(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=3) as response:
        return response.status == 200


def _make_pki(state: State) -> None:
    d = state.pki
    d.mkdir(parents=True)
    ca = pki.make_ca(d)
    serving = ("127.0.0.1", "localhost", "10.0.0.1", "kubernetes", "kubernetes.default",
               "kubernetes.default.svc", "kubernetes.default.svc.cluster.local")
    pki.issue(ca, d, "apiserver", "kube-apiserver", server_names=serving)
    pki.issue(ca, d, "admin", "quantgate-admin", ("system:masters",), client=True)
    pki.issue(ca, d, "controller-manager", "system:kube-controller-manager", client=True)
    pki.issue(ca, d, "scheduler", "system:kube-scheduler", client=True)
    pki.issue(ca, d, "kubelet-client", f"system:node:{state.node}", ("system:nodes",), client=True)
    pki.issue(ca, d, "kubelet-serving", f"system:node:{state.node}", server_names=("127.0.0.1",))
    pki.issue(ca, d, "apiserver-kubelet-client", "kube-apiserver-kubelet-client", client=True)
    pki.make_signing_key(d, "sa")
    for name, user, cert in (("admin", "quantgate-admin", "admin"),
                             ("controller-manager", "system:kube-controller-manager", "controller-manager"),
                             ("scheduler", "system:kube-scheduler", "scheduler"),
                             ("kubelet", f"system:node:{state.node}", "kubelet-client")):
        kubeconfig.write(state.directory / f"{name}.kubeconfig",
                         kubeconfig.build(state.server, d / "ca.crt", user,
                                          cert=d / f"{cert}.crt", key=d / f"{cert}.key"))


def _argv(state: State) -> dict[str, list[str]]:
    p, d, ports, b = state.pki, state.directory, state.ports, paths.binary
    etcd_url = f"http://127.0.0.1:{ports['etcd']}"
    peer_url = f"http://127.0.0.1:{ports['etcd-peer']}"
    return {
        "etcd": [
            str(b("etcd")), "--name=dev", f"--data-dir={d / 'etcd'}",
            f"--listen-client-urls={etcd_url}", f"--advertise-client-urls={etcd_url}",
            f"--listen-peer-urls={peer_url}", f"--initial-advertise-peer-urls={peer_url}",
            f"--initial-cluster=dev={peer_url}", "--unsafe-no-fsync=true", "--log-level=warn",
            "--auto-compaction-mode=periodic", "--auto-compaction-retention=5m",
        ],
        "kube-apiserver": [
            str(b("kube-apiserver")), f"--etcd-servers={etcd_url}",
            "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
            f"--secure-port={ports['apiserver']}",
            f"--tls-cert-file={p / 'apiserver.crt'}", f"--tls-private-key-file={p / 'apiserver.key'}",
            f"--client-ca-file={p / 'ca.crt'}",
            f"--service-account-issuer={state.server}",
            f"--service-account-key-file={p / 'sa.pub'}",
            f"--service-account-signing-key-file={p / 'sa.key'}",
            "--authorization-mode=Node,RBAC",
            # PodSecurity and ServiceAccount are on by default; NodeRestriction is added as kubeadm does.
            "--enable-admission-plugins=NodeRestriction",
            "--service-cluster-ip-range=10.0.0.0/24", "--endpoint-reconciler-type=none",
            "--allow-privileged=true", "--profiling=false",
            f"--kubelet-client-certificate={p / 'apiserver-kubelet-client.crt'}",
            f"--kubelet-client-key={p / 'apiserver-kubelet-client.key'}",
            f"--kubelet-certificate-authority={p / 'ca.crt'}",
            "--kubelet-preferred-address-types=InternalIP",
        ],
        "kube-controller-manager": [
            str(b("kube-controller-manager")), f"--kubeconfig={d / 'controller-manager.kubeconfig'}",
            "--leader-elect=false", "--secure-port=0", "--use-service-account-credentials=true",
            f"--service-account-private-key-file={p / 'sa.key'}", f"--root-ca-file={p / 'ca.crt'}",
            f"--controllers={','.join(CONTROLLERS)}", "--kube-api-qps=200", "--kube-api-burst=400",
            "--concurrent-job-syncs=20",
        ],
        "kube-scheduler": [
            str(b("kube-scheduler")), f"--kubeconfig={d / 'scheduler.kubeconfig'}",
            "--leader-elect=false", "--secure-port=0", "--kube-api-qps=200", "--kube-api-burst=400",
        ],
        "kubelet": [sys.executable, "-m", "quantgate.dev.kubelet", "--state-dir", str(d)],
    }


def _start(state: State, name: str, argv: list[str]) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("KUBECONFIG", "QUANTGATE_KUBECONFIG")}
    state.procs.append(procs.spawn(name, argv, state.logs / f"{name}.log", env=env, cwd=state.directory))
    state.save()


def _register_node(state: State) -> None:
    api = state.admin()
    try:
        api.post("/api/v1/nodes", node_body(state.node, state.ports["kubelet"]))
    except ApiError as exc:
        if exc.status != 409:
            raise
    node = api.get(f"/api/v1/nodes/{state.node}")
    taints = without_not_ready_taint(node["spec"].get("taints"))
    if taints != node["spec"].get("taints", []):
        api.patch(f"/api/v1/nodes/{state.node}", {"spec": {"taints": taints or None}})


def running(state_dir: Path) -> State | None:
    """The recorded cluster if every component of it is alive."""
    state = State.load(state_dir)
    if state and state.procs and all(procs.alive(p) for p in state.procs):
        return state
    return None


def up(state_dir: Path, progress: Callable[[str], None] = print, timeout: float = 120) -> State:
    """Start the cluster (or return the running one). A component that dies at start, typically
    because another process took its free port between our probe and its bind, gets one retry."""
    try:
        return _up(state_dir, progress, timeout)
    except ComponentExited as exc:
        progress(f"{exc.component} exited at start; retrying once on fresh ports")
        return _up(state_dir, progress, timeout)


def _up(state_dir: Path, progress: Callable[[str], None], timeout: float) -> State:
    missing = paths.missing_binaries()
    if missing:
        raise ClusterError(f"missing {', '.join(missing)} in {paths.bin_dir()}; run `make tools` first")
    state_dir = Path(state_dir).expanduser().resolve()
    existing = running(state_dir)
    if existing:
        progress(f"dev cluster already running at {existing.server}")
        return existing
    down(state_dir, progress=lambda _msg: None)
    t0 = time.monotonic()
    state = State(state_dir, started=time.time())
    state_dir.mkdir(parents=True, exist_ok=True)
    state.logs.mkdir()
    state.ports = {"etcd": free_port(), "etcd-peer": free_port(), "apiserver": free_port(),
                   "kubelet": free_port()}
    state.server = f"https://127.0.0.1:{state.ports['apiserver']}"
    state.save()
    try:
        _make_pki(state)
        argv = _argv(state)
        progress(f"starting etcd on 127.0.0.1:{state.ports['etcd']}")
        _start(state, "etcd", argv["etcd"])
        _wait("etcd /health", lambda: _http_ok(f"http://127.0.0.1:{state.ports['etcd']}/health"), state, timeout)
        progress(f"starting kube-apiserver on {state.server}")
        _start(state, "kube-apiserver", argv["kube-apiserver"])
        _wait("kube-apiserver /readyz", lambda: _https_ok(state.server + "/readyz", state), state, timeout)
        progress("starting kube-controller-manager and kube-scheduler")
        _start(state, "kube-controller-manager", argv["kube-controller-manager"])
        _start(state, "kube-scheduler", argv["kube-scheduler"])
        progress(f"registering node {state.node} and starting the process kubelet")
        _register_node(state)
        _start(state, "kubelet", argv["kubelet"])
        api = state.admin()
        _wait("the default ServiceAccount (controller-manager)",
              lambda: bool(api.get("/api/v1/namespaces/default/serviceaccounts/default")), state, timeout)
        _wait("the kubelet", lambda: (state.directory / "kubelet" / "ready").exists(), state, timeout)
    except BaseException:
        down(state_dir, progress=lambda _msg: None, keep_logs=True)
        raise
    progress(f"dev cluster ready in {time.monotonic() - t0:.1f}s")
    return state


def down(state_dir: Path, progress: Callable[[str], None] = print, keep_logs: bool = False) -> list[str]:
    """Stop every recorded process (and pod processes the kubelet left), then remove the state."""
    state_dir = Path(state_dir).expanduser().resolve()
    state = State.load(state_dir)
    stopped = []
    if state:
        by_name = {p.name: p for p in state.procs}
        for name in STOP_ORDER:
            proc = by_name.get(name)
            if proc and procs.stop(proc):
                stopped.append(name)
                progress(f"stopped {name} (pid {proc.pid})")
    from quantgate.dev.kubelet.runtime import kill_leftovers

    leftovers = kill_leftovers(state_dir / "kubelet")
    if leftovers:
        progress(f"stopped {leftovers} leftover pod process(es)")
    # Remove only what `up` creates: --state-dir may point at a directory holding other things.
    owned = [STATE_FILE, "pki", "etcd", "kubelet", *(f"{n}.kubeconfig" for n in KUBECONFIGS)]
    if not keep_logs:
        owned.append("logs")
    for name in owned:
        child = state_dir / name
        if child.is_dir():
            shutil.rmtree(child, ignore_errors=True)
        elif child.exists():
            child.unlink()
    if state_dir.is_dir() and not any(state_dir.iterdir()):
        state_dir.rmdir()
    return stopped


def status(state_dir: Path) -> dict:
    state_dir = Path(state_dir).expanduser().resolve()
    state = State.load(state_dir)
    if not state:
        return {"running": False, "stateDir": str(state_dir), "components": {}}
    components = {p.name: {"pid": p.pid, "running": procs.alive(p)} for p in state.procs}
    ready = False
    try:
        ready = _https_ok(state.server + "/readyz", state)
    except (OSError, ssl.SSLError):
        pass
    return {"running": all(c["running"] for c in components.values()) and ready, "ready": ready,
            "server": state.server, "kubeconfig": str(state.kubeconfig), "stateDir": str(state_dir),
            "components": components}
