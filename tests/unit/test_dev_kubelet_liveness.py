"""The process kubelet restarts a container that fails its liveness probe, as a kubelet does: the
container is killed and restarted unless the pod's restartPolicy is Never (OnFailure restarts it
even when it exits 0 on TERM); the restart shows in restartCount and lastState.terminated, and
the pod gets a kubelet's Events (Unhealthy on each failed probe, Killing when it is killed).

The probed endpoint is a server in the test (pods share the host's network): healthy until the
container has said it is ready (a file it writes once its TERM handler is set), then 503."""

import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import pytest

from quantgate.dev.harness import wait_for
from quantgate.dev.kubelet.events import Recorder
from quantgate.dev.kubelet.pods import PodWorker

# argv[1]: the file to write once ready; argv[2]: what to do on TERM ("die": the default, 143; "exit0")
SCRIPT = """
import pathlib, signal, sys, time
if sys.argv[2] == "exit0":
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
pathlib.Path(sys.argv[1]).write_text("ready")
time.sleep(600)
"""


class Api:
    """Records the pod status patches and the Events posted (with their count bumps patched in);
    the pods here read no ConfigMaps, Secrets or tokens."""

    def __init__(self):
        self.patches = []
        self.events = {}  # name -> the Event as posted, later patches applied

    def patch(self, path, body, content_type=None):
        if path.startswith("/api/v1/namespaces/ns/events/"):
            self.events[path.rsplit("/", 1)[1]].update(body)
        else:
            self.patches.append(body["status"])

    def post(self, path, body):
        assert path == "/api/v1/namespaces/ns/events", path
        self.events[body["metadata"]["name"]] = dict(body)


class Health:
    """/healthz answering 200 while `ok`, else 503."""

    def __init__(self):
        self.ok = True
        health = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200 if health.ok else 503)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *a):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def pod_worker(tmp_path, policy: str, port: int, on_term: str) -> PodWorker:
    tmp_path.mkdir()
    ca = tmp_path / "ca.crt"
    ca.write_text("not a certificate")
    done = threading.Event()
    api = Api()
    kubelet = SimpleNamespace(pods_dir=tmp_path / "pods", api=api, events=Recorder(api, "quantgate-dev"),
                              server="https://127.0.0.1:1", ca=ca, api_port=1, venv_bin=str(tmp_path),
                              bin_dir=str(tmp_path),
                              worker_done=lambda _w: done.set(), force_delete=lambda *_a: None, done=done)
    container = {"name": "app", "image": "app:1",
                 "command": [sys.executable, "-c", SCRIPT, str(tmp_path / "ready"), on_term],
                 "ports": [{"name": "http", "containerPort": port}],
                 "livenessProbe": {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 0.05,
                                   "timeoutSeconds": 1, "failureThreshold": 2}}
    pod = {"metadata": {"name": "p", "namespace": "ns", "uid": "u"},
           "spec": {"restartPolicy": policy, "terminationGracePeriodSeconds": 5, "containers": [container]}}
    return PodWorker(kubelet, pod)


@pytest.fixture
def unhealthy(tmp_path):
    """start(policy, on_term) -> a running PodWorker whose container has turned unhealthy."""
    started = []

    def start(policy: str, on_term: str = "die") -> PodWorker:
        health = Health()
        worker = pod_worker(tmp_path / f"{policy}-{on_term}", policy, health.server.server_port, on_term)
        started.append((worker, health))
        worker.start()
        ready = worker.dir.parent.parent / "ready"
        wait_for(ready.exists, timeout=30, what="the container's TERM handler set")
        health.ok = False
        return worker

    yield start
    for worker, health in started:
        worker.terminate(0.5)
        worker.join(15)
        health.server.shutdown()


def restarted(worker: PodWorker) -> dict | None:
    """The container's status once it runs again after a restart."""
    for status in list(worker.k.api.patches):
        (c,) = status["containerStatuses"]
        if c["restartCount"] >= 1 and "running" in c["state"]:
            return c
    return None


@pytest.mark.parametrize("policy, on_term, exit_code", [("Always", "die", 143), ("OnFailure", "exit0", 0)])
def test_a_container_failing_its_liveness_probe_is_killed_and_restarted(unhealthy, policy, on_term, exit_code):
    worker = unhealthy(policy, on_term)
    first_pid = worker.pids["app"]
    status = wait_for(lambda: restarted(worker), timeout=30, what="a restart after the failed probes")
    assert status["restartCount"] == 1
    assert status["containerID"] != f"process://{first_pid}", "a new process"
    assert status["lastState"]["terminated"]["exitCode"] == exit_code, status
    assert worker.is_alive(), "the pod keeps running"


def test_restart_policy_never_kills_the_container_and_does_not_restart_it(unhealthy):
    worker = unhealthy("Never")
    assert worker.k.done.wait(30), "the pod worker finishes once the killed container is not restarted"
    final = worker.k.api.patches[-1]
    (c,) = final["containerStatuses"]
    assert final["phase"] == "Failed"
    assert c["restartCount"] == 0 and "lastState" not in c
    assert c["state"]["terminated"]["exitCode"] == 143


def events(worker: PodWorker, reason: str) -> list[dict]:
    return [e for e in list(worker.k.api.events.values()) if e["reason"] == reason]


@pytest.mark.parametrize("policy, killing", [("Always", "Container app failed liveness probe, will be restarted"),
                                             ("Never", "Container app failed liveness probe")])
def test_failed_probes_post_unhealthy_and_killing_events_as_a_kubelet_does(unhealthy, policy, killing):
    worker = unhealthy(policy)
    wait_for(lambda: events(worker, "Killing"), timeout=30, what="the Killing event")
    (warning,) = events(worker, "Unhealthy")  # repeats bump one Event's count
    assert warning["type"] == "Warning"
    assert warning["message"] == "Liveness probe failed: HTTP probe failed with statuscode: 503"
    assert warning["count"] >= 2, warning  # one per failed probe: failureThreshold 2 before the kill
    (kill,) = events(worker, "Killing")
    assert kill["type"] == "Normal" and kill["message"] == killing
    for event in warning, kill:
        assert event["involvedObject"] == {"apiVersion": "v1", "kind": "Pod", "namespace": "ns", "name": "p",
                                           "uid": "u", "fieldPath": "spec.containers{app}"}
        assert event["source"] == {"component": "kubelet", "host": "quantgate-dev"}
        assert event["metadata"]["namespace"] == "ns" and event["metadata"]["name"].startswith("p.")
        assert event["firstTimestamp"] <= event["lastTimestamp"]
