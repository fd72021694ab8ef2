"""One pod, run as local processes: volumes, env, init then regular containers, status, deletion."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from quantgate.dev import kubeconfig
from quantgate.dev.kubelet import podspec, probes, runtime, volumes
from quantgate.dev.kubelet.podspec import ConfigError, ContainerState, PathMap
from quantgate.dev.node import now
from quantgate.dev.rest import STRATEGIC_PATCH, ApiError

if TYPE_CHECKING:
    from quantgate.dev.kubelet.agent import Kubelet

log = logging.getLogger("kubelet")
TERMINAL = ("Succeeded", "Failed")
MAX_BACKOFF = 10.0


def _decoded(obj: dict | None, decode) -> dict[str, str] | None:
    return None if obj is None else decode(obj)


def pod_dir(pods_dir: Path, namespace: str, name: str, uid: str) -> Path:
    """A pod's directory: its volumes under volumes/<name>, its containers under containers/<name>."""
    return pods_dir / f"{namespace}_{name}_{uid}"


def exit_code(returncode: int) -> int:
    return 128 - returncode if returncode < 0 else returncode


class PodWorker(threading.Thread):
    def __init__(self, kubelet: "Kubelet", pod: dict):
        meta = pod["metadata"]
        super().__init__(name=f"pod-{meta['namespace']}/{meta['name']}", daemon=True)
        self.k = kubelet
        self.pod = pod
        self.uid, self.ns, self.pod_name = meta["uid"], meta["namespace"], meta["name"]
        self.dir = pod_dir(kubelet.pods_dir, self.ns, self.pod_name, self.uid)
        spec = pod["spec"]
        self.restart_policy = spec.get("restartPolicy", "Always")
        self.init_specs = spec.get("initContainers") or []
        self.main_specs = spec.get("containers") or []
        self.init = [ContainerState(c["name"], c.get("image", "")) for c in self.init_specs]
        self.main = [ContainerState(c["name"], c.get("image", "")) for c in self.main_specs]
        self.started = now()
        self.lock = threading.Lock()
        self.children: dict[str, subprocess.Popen] = {}
        self.pids: dict[str, int] = {}
        self.stopping = threading.Event()
        self.gone = False  # the pod object no longer exists: write nothing back
        self.grace = 30.0
        self.deadline_exceeded = False
        self.delete_requested = False  # a deletionTimestamp was seen
        self.force_deleted = False
        self._cache: dict[tuple[str, str], dict | None] = {}
        # regular containers not yet started once: their first starts share one status write
        self._unstarted = {c["name"] for c in self.main_specs}

    # -- API helpers -------------------------------------------------------------------------

    def _object(self, kind: str, name: str) -> dict | None:
        key = (kind, name)
        if key not in self._cache:
            try:
                self._cache[key] = self.k.api.get(f"/api/v1/namespaces/{self.ns}/{kind}/{name}")
            except ApiError as exc:
                if exc.status != 404:
                    # The Node authorizer learns pod→object edges asynchronously: retry on 403.
                    raise ConfigError(f"cannot read {kind} {name}: {exc}") from exc
                self._cache[key] = None
        return self._cache[key]

    def _configmap(self, name: str) -> dict | None:
        return self._object("configmaps", name)

    def _secret(self, name: str) -> dict | None:
        return self._object("secrets", name)

    def _token(self, audience: str, seconds: int) -> str:
        spec: dict = {"expirationSeconds": seconds,
                      "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": self.pod_name,
                                         "uid": self.uid}}
        if audience:
            spec["audiences"] = [audience]
        sa = self.pod["spec"].get("serviceAccountName") or "default"
        try:
            review = self.k.api.post(f"/api/v1/namespaces/{self.ns}/serviceaccounts/{sa}/token",
                                     {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                                      "spec": spec})
        except ApiError as exc:
            raise ConfigError(f"TokenRequest for serviceaccount {sa}: {exc}") from exc
        return review["status"]["token"]

    def patch_status(self, phase: str | None = None, reason: str = "", message: str = "") -> None:
        if self.gone:
            return
        with self.lock:
            phase = phase or podspec.phase_of(self.main, self.restart_policy)
            if any(c.state != "terminated" or c.exit_code for c in self.init) and phase == "Running":
                phase = "Pending"
            body = podspec.status_patch(phase, self.init, self.main, now(), self.started, self.pids,
                                        reason, message)
        try:
            self.k.api.patch(f"/api/v1/namespaces/{self.ns}/pods/{self.pod_name}/status", body,
                             content_type=STRATEGIC_PATCH)
        except ApiError as exc:
            if exc.status == 404:
                self.gone = True
            else:
                log.warning("status of %s/%s: %s", self.ns, self.pod_name, exc)

    # -- filesystem --------------------------------------------------------------------------

    def _prepare_volumes(self) -> None:
        for volume in self.pod["spec"].get("volumes") or []:
            target = self.dir / "volumes" / volume["name"]
            if target.is_symlink():
                target.unlink()
            elif target.exists():
                shutil.rmtree(target)
            volumes.materialise(volume, target, self.pod, self._configmap, self._secret, self._token)

    def _container_root(self, spec: dict) -> tuple[Path, PathMap]:
        cdir = self.dir / "containers" / spec["name"]
        root = cdir / "root"
        root.mkdir(parents=True, exist_ok=True)
        paths = PathMap(str(root))
        for mount in spec.get("volumeMounts") or []:
            source = self.dir / "volumes" / mount["name"]
            if mount.get("subPath"):
                source = source / mount["subPath"]
                if not source.exists():
                    source.mkdir(parents=True)
            link = Path(paths.host(mount["mountPath"]))
            link.parent.mkdir(parents=True, exist_ok=True)
            if not link.is_symlink():
                link.symlink_to(source)
            paths.add(mount["mountPath"])
        term = Path(paths.host(podspec.termination_path(spec)))
        term.parent.mkdir(parents=True, exist_ok=True)
        paths.add(podspec.termination_path(spec))
        return cdir, paths

    def _kubeconfig(self, spec: dict, paths: PathMap, cdir: Path) -> Path:
        """A kubeconfig with the pod's ServiceAccount token (anonymous if none is mounted)."""
        sa_dir = Path(paths.host(podspec.SA_MOUNT))
        token = None
        if podspec.SA_MOUNT in paths.prefixes and (sa_dir / "token").exists():
            token = (sa_dir / "token").read_text()
        sa = self.pod["spec"].get("serviceAccountName") or "default"
        user = f"system:serviceaccount:{self.ns}:{sa}" if token else "anonymous"
        config = kubeconfig.build(self.k.server, self.k.ca, user, token=token, namespace=self.ns)
        return kubeconfig.write(cdir / "kubeconfig", config)

    def _environment(self, spec: dict, paths: PathMap, cdir: Path) -> dict[str, str]:
        env = podspec.container_env(
            self.pod, spec,
            lambda name: _decoded(self._configmap(name), podspec.configmap_data),
            lambda name: _decoded(self._secret(name), podspec.decode_secret))
        env = {k: paths.rewrite(v) for k, v in env.items()}
        base_path = env.get("PATH") or os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin")
        full = {
            "HOME": os.environ.get("HOME", "/root"),
            "HOSTNAME": self.pod_name,
            "LANG": os.environ.get("LANG", "C.UTF-8"),
            "KUBERNETES_SERVICE_HOST": "127.0.0.1",
            "KUBERNETES_SERVICE_PORT": str(self.k.api_port),
            "KUBERNETES_SERVICE_PORT_HTTPS": str(self.k.api_port),
        }
        full.update(env)
        # The image is not run: its tools come from the project's virtualenv and the cached binaries.
        full["PATH"] = f"{self.k.venv_bin}:{self.k.bin_dir}:{base_path}"
        full["KUBELET_ROOT"] = paths.root
        full.setdefault("KUBECONFIG", str(self._kubeconfig(spec, paths, cdir)))
        return full

    # -- containers --------------------------------------------------------------------------

    def _run_container(self, spec: dict, state: ContainerState, must_succeed: bool) -> None:
        """Run one container to its final exit, restarting it as the restart policy says."""
        backoff = 1.0
        while not self.stopping.is_set():
            try:
                cdir, paths = self._container_root(spec)
                env = self._environment(spec, paths, cdir)
                argv = podspec.argv(spec, env, paths)
            except ConfigError as exc:
                state.state, state.reason, state.message = "waiting", "CreateContainerConfigError", str(exc)
                self.patch_status()
                self._cache.clear()
                self.stopping.wait(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)
                continue
            term_file = Path(paths.host(podspec.termination_path(spec)))
            term_file.unlink(missing_ok=True)
            log_file = cdir / "log"
            unhealthy = threading.Event()  # set when the liveness probe kills this run
            if not argv:
                self._terminate_state(state, 128, "StartError",
                                      "the process kubelet runs only containers with a command "
                                      "(an image's entrypoint is unknown to it)")
                return
            with self.lock:
                if self.stopping.is_set():
                    return
                cwd = Path(paths.host(spec["workingDir"])) if spec.get("workingDir") else Path(paths.root)
                cwd.mkdir(parents=True, exist_ok=True)
                try:
                    child = runtime.start(argv, env, cwd, log_file, cdir)
                except OSError as exc:
                    child = None
                    error = f"{argv[0]}: {exc.strerror}"
                if child:
                    self.children[spec["name"]] = child
                    self.pids[spec["name"]] = child.pid
            if child is None:
                self._terminate_state(state, 127, "StartError", error)
                if not must_succeed and self._report_start(spec["name"], init=False):
                    self.patch_status()  # the others' first starts waited for this one
                if self.restart_policy == "Never":
                    return
            else:
                state.state, state.started_at, state.reason, state.message = "running", now(), "", ""
                if self._report_start(spec["name"], must_succeed):
                    self.patch_status()
                exited = threading.Event()
                name = spec["name"]
                probes.watch_liveness(spec, exited, lambda _msg, c=child: self._kill_unhealthy(name, c, unhealthy),
                                      lambda output: self._probe_failed(name, output))
                code = exit_code(child.wait())
                exited.set()
                written = term_file.read_text(errors="replace") if term_file.exists() else ""
                tail = ""
                if not written and code:
                    tail = log_file.read_bytes()[-8192:].decode(errors="replace")
                message = podspec.termination_message(spec, written, tail, code)
                self._terminate_state(state, code, "Completed" if code == 0 else "Error", message)
            # A container killed for failing its liveness probe restarts unless the policy is
            # Never, whatever its exit code (a kubelet's shouldRestartOnFailure).
            restart = self.restart_policy == "Always" or (
                self.restart_policy == "OnFailure" and (state.exit_code != 0 or unhealthy.is_set()))
            if self.stopping.is_set() or not restart or (must_succeed and state.exit_code == 0):
                return
            state.last = state.status()["state"]["terminated"]
            state.restarts += 1
            state.state, state.reason, state.message = "waiting", "CrashLoopBackOff", ""
            self.patch_status()
            self.stopping.wait(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF)

    def _probe_failed(self, name: str, output: str) -> None:
        self.k.events.record(self.pod, name, "Warning", "Unhealthy", f"Liveness probe failed: {output}")

    def _kill_unhealthy(self, name: str, child: subprocess.Popen, unhealthy: threading.Event) -> None:
        """The liveness probe failed: kill the container (TERM, the pod's grace period, KILL)."""
        unhealthy.set()
        restarts = ", will be restarted" if self.restart_policy != "Never" else ""
        self.k.events.record(self.pod, name, "Normal", "Killing", f"Container {name} failed liveness probe{restarts}")
        grace = float(self.pod["spec"].get("terminationGracePeriodSeconds", 30))
        threading.Thread(target=runtime.stop, args=([child], grace), daemon=True).start()

    def _report_start(self, name: str, init: bool) -> bool:
        """Whether this start is worth a status write of its own: an init container's or a
        restart's is; the first starts of the regular containers, which begin together, are
        reported once, by the last of them (fewer pod status writes, each a full managedFields
        update on the API server)."""
        with self.lock:
            if init or name not in self._unstarted:
                return True
            self._unstarted.discard(name)
            return not self._unstarted

    def _terminate_state(self, state: ContainerState, code: int, reason: str, message: str) -> None:
        state.state, state.exit_code, state.reason, state.message = "terminated", code, reason, message
        state.finished_at = now()

    # -- lifecycle ---------------------------------------------------------------------------

    def run(self) -> None:
        t0 = time.monotonic()
        try:
            self._run()
        except Exception:  # a bug here must not take the kubelet down with it
            log.exception("pod %s/%s", self.ns, self.pod_name)
            for state in self.init + self.main:
                if state.state != "terminated":
                    self._terminate_state(state, 128, "KubeletError", "process kubelet error; see its log")
            self.patch_status("Failed", "KubeletError")
        finally:
            log.info("pod %s/%s done in %.2fs", self.ns, self.pod_name, time.monotonic() - t0)
            self.k.worker_done(self)

    def _run(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        deadline = self.pod["spec"].get("activeDeadlineSeconds")
        if deadline:
            timer = threading.Timer(float(deadline), self._deadline_exceeded)
            timer.daemon = True
            timer.start()
        backoff = 0.2
        while not self.stopping.is_set():
            try:
                self._prepare_volumes()
                break
            except ConfigError as exc:
                for state in self.init + self.main:
                    state.reason, state.message = "CreateContainerConfigError", str(exc)
                if backoff > 0.2:  # not on the first try: mostly the Node authorizer's lag (403)
                    self.patch_status("Pending")
                self._cache.clear()
                self.stopping.wait(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)
        for spec, state in zip(self.init_specs, self.init):
            self._run_container(spec, state, must_succeed=True)
            if state.exit_code != 0 or self.stopping.is_set():
                break
        else:
            threads = [threading.Thread(target=self._run_container, args=(spec, state, False), daemon=True)
                       for spec, state in zip(self.main_specs, self.main)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        self._finish()

    def _finish(self) -> None:
        failed_init = any(s.state == "terminated" and s.exit_code for s in self.init)
        for state in self.init + self.main:
            if state.state == "terminated":
                continue
            if failed_init:  # never started, as a kubelet leaves them
                state.state, state.reason, state.message = "waiting", "PodInitializing", ""
            elif state.state == "waiting":
                self._terminate_state(state, 137, "ContainerStatusUnknown",
                                      "the container could not be located when the pod was terminated")
            else:
                self._terminate_state(state, 137, "Error", "killed")
        ok = not failed_init and all(s.exit_code == 0 for s in self.main)
        if self.deadline_exceeded:
            self.patch_status("Failed", "DeadlineExceeded",
                              "Pod was active on the node longer than the specified deadline")
        else:
            self.patch_status("Succeeded" if ok else "Failed")
        if self.delete_requested and not self.gone:
            self.force_deleted = True
            self.k.force_delete(self.ns, self.pod_name, self.uid)

    def _deadline_exceeded(self) -> None:
        """spec.activeDeadlineSeconds passed: kill the containers, the pod fails (not deleted)."""
        if all(s.state == "terminated" for s in self.main) and self.main:
            return
        self.deadline_exceeded = True
        with self.lock:
            if self.stopping.is_set():
                return
            self.stopping.set()
            children = list(self.children.values())
        grace = float(self.pod["spec"].get("terminationGracePeriodSeconds", 30))
        threading.Thread(target=runtime.stop, args=(children, grace), daemon=True).start()

    def terminate(self, grace: float) -> None:
        """The pod is being deleted: kill its processes (TERM, grace, KILL); the worker then
        writes the terminal status and deletes the pod object with grace 0."""
        with self.lock:
            self.delete_requested = True
            if self.stopping.is_set():
                return
            self.grace = grace
            self.stopping.set()
            children = list(self.children.values())
        threading.Thread(target=runtime.stop, args=(children, grace), daemon=True).start()

    def abandon(self) -> None:
        """The pod object is gone: kill at once, write nothing."""
        self.gone = True
        self.terminate(0.5)
