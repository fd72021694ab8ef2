"""The process kubelet's control loop: list+watch the pods bound to this node, one worker each."""

from __future__ import annotations

import logging
import shutil
import threading
import time
from pathlib import Path

from quantgate.dev import paths
from quantgate.dev.cluster import State
from quantgate.dev.kubelet.events import Recorder
from quantgate.dev.kubelet.pods import TERMINAL, PodWorker
from quantgate.dev.rest import ApiError, Rest

log = logging.getLogger("kubelet")


class Kubelet:
    def __init__(self, state_dir: Path):
        state = State.load(state_dir)
        if state is None:
            raise SystemExit(f"no dev cluster state in {state_dir}")
        pki = state.pki
        self.state = state
        self.node = state.node
        self.server = state.server
        self.api_port = state.ports["apiserver"]
        self.ca = pki / "ca.crt"
        self.api = Rest(state.server, self.ca, cert=pki / "kubelet-client.crt", key=pki / "kubelet-client.key",
                        maxsize=64, user_agent=f"quantgate-process-kubelet/{self.node}")
        self.events = Recorder(self.api, self.node)
        self.dir = state.directory / "kubelet"
        self.pods_dir = self.dir / "pods"
        self.pods_dir.mkdir(parents=True, exist_ok=True)
        self.venv_bin = paths.venv_bin()
        self.bin_dir = paths.bin_dir()
        self.lock = threading.Lock()
        self.workers: dict[str, PodWorker] = {}
        self.settled: dict[str, bool] = {}  # uid -> force-deleted already (no worker runs it)
        self.stopped = threading.Event()

    # -- pod events --------------------------------------------------------------------------

    def sync(self, pod: dict) -> None:
        meta = pod["metadata"]
        uid, deleting = meta["uid"], bool(meta.get("deletionTimestamp"))
        with self.lock:
            worker = self.workers.get(uid)
            if worker:
                if deleting:
                    grace = meta.get("deletionGracePeriodSeconds")
                    if grace is None:
                        grace = pod["spec"].get("terminationGracePeriodSeconds", 30)
                    worker.terminate(float(grace))
                return
            if uid in self.settled:
                if deleting and not self.settled[uid]:
                    self.settled[uid] = True
                    threading.Thread(target=self.force_delete, args=(meta["namespace"], meta["name"], uid),
                                     daemon=True).start()
                return
            phase = pod.get("status", {}).get("phase")
            if phase in TERMINAL and not deleting:
                self.settled[uid] = False
                return
            if phase == "Running" and pod["spec"].get("restartPolicy") == "Never":
                # Its processes died with an earlier kubelet; a Never pod cannot be rerun.
                self.settled[uid] = False
                threading.Thread(target=self._lost, args=(pod,), daemon=True).start()
                return
            worker = PodWorker(self, pod)
            self.workers[uid] = worker
            if deleting:
                worker.delete_requested = True
                worker.stopping.set()  # never start it: just finish and delete
        worker.start()

    def _lost(self, pod: dict) -> None:
        worker = PodWorker(self, pod)
        for state in worker.main:
            worker._terminate_state(state, 137, "ContainerStatusUnknown", "the process kubelet restarted")
        worker.patch_status("Failed", "KubeletRestarted")

    def deleted(self, pod: dict) -> None:
        meta = pod["metadata"]
        uid = meta["uid"]
        with self.lock:
            worker = self.workers.pop(uid, None)
            self.settled.pop(uid, None)
        if worker and worker.is_alive():
            worker.abandon()
            worker.join(timeout=10)
        shutil.rmtree(self.pods_dir / f"{meta['namespace']}_{meta['name']}_{uid}", ignore_errors=True)

    def worker_done(self, worker: PodWorker) -> None:
        with self.lock:
            if self.workers.pop(worker.uid, None) is not None and not worker.gone:
                self.settled[worker.uid] = worker.force_deleted

    def force_delete(self, namespace: str, name: str, uid: str) -> None:
        """Processes are gone: remove the pod now (its finalizers, if any, still hold it)."""
        try:
            self.api.delete(f"/api/v1/namespaces/{namespace}/pods/{name}",
                            {"apiVersion": "v1", "kind": "DeleteOptions", "gracePeriodSeconds": 0,
                             "preconditions": {"uid": uid}})
        except ApiError as exc:
            if exc.status not in (404, 409):
                log.warning("delete %s/%s: %s", namespace, name, exc)

    # -- list + watch ------------------------------------------------------------------------

    def _list(self) -> str:
        listing = self.api.get("/api/v1/pods", fieldSelector=f"spec.nodeName={self.node}")
        present = set()
        for pod in listing.get("items", []):
            present.add(pod["metadata"]["uid"])
            self.sync(pod)
        with self.lock:
            vanished = [w.pod for uid, w in self.workers.items() if uid not in present]
            for uid in [u for u in self.settled if u not in present]:
                self.settled.pop(uid)
        for pod in vanished:
            self.deleted(pod)
        return listing["metadata"]["resourceVersion"]

    def run(self) -> None:
        selector = f"spec.nodeName={self.node}"
        version = None
        while not self.stopped.is_set():
            try:
                if version is None:
                    version = self._list()
                    (self.dir / "ready").write_text(version)
                for event in self.api.watch("/api/v1/pods", fieldSelector=selector, resourceVersion=version):
                    kind, obj = event["type"], event["object"]
                    if kind == "ERROR":  # 410 Gone: relist; anything else: retry shortly
                        log.info("watch: %s", obj.get("message", obj))
                        version = None if obj.get("code") == 410 else version
                        time.sleep(0.2)
                        break
                    version = obj["metadata"]["resourceVersion"]
                    if kind == "BOOKMARK":
                        continue
                    if kind == "DELETED":
                        self.deleted(obj)
                    else:
                        self.sync(obj)
            except ApiError as exc:
                log.warning("watch: %s", exc)
                if exc.status == 410:
                    version = None
                time.sleep(0.5)
            except Exception as exc:  # connection drops: resume the watch
                if self.stopped.is_set():
                    break
                log.warning("watch: %s: %s", type(exc).__name__, exc)
                time.sleep(0.5)

    def shutdown(self) -> None:
        self.stopped.set()
        with self.lock:
            workers = list(self.workers.values())
        for worker in workers:
            worker.gone = True
            worker.terminate(2.0)
        for worker in workers:
            worker.join(timeout=5)
