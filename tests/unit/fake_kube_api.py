"""The least of a Kubernetes API server that kopf needs to run the operator's handlers: discovery
of namespaces, ModelEvaluations (+ matrices) and Jobs, a list of each that returns the given
evaluations, and watches that stay open and quiet. Plain HTTP on loopback, any token accepted;
every other GET gets a 404 Status. `paths` records every GET's path; `kubeconfig(path)` writes a
kubeconfig pointing at it."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from quantgate.api.matrix import KIND as MATRIX_KIND, PLURAL as MATRIX_PLURAL
from quantgate.api.v1alpha1 import GROUP, KIND, PLURAL, VERSION


def _resource(name: str, kind: str, namespaced: bool = True) -> dict:
    return {"name": name, "singularName": kind.lower(), "kind": kind, "namespaced": namespaced,
            "verbs": ["get", "list", "watch", "patch"]}


def _group(name: str, version: str) -> dict:
    gv = {"groupVersion": f"{name}/{version}", "version": version}
    return {"name": name, "versions": [gv], "preferredVersion": gv}


DISCOVERY = {
    "/api": {"kind": "APIVersions", "versions": ["v1"]},
    "/api/v1": {"kind": "APIResourceList", "groupVersion": "v1",
                "resources": [_resource("namespaces", "Namespace", namespaced=False)]},
    "/apis": {"kind": "APIGroupList", "groups": [_group(GROUP, VERSION), _group("batch", "v1")]},
    f"/apis/{GROUP}/{VERSION}": {"kind": "APIResourceList", "groupVersion": f"{GROUP}/{VERSION}",
                                 "resources": [_resource(PLURAL, KIND), _resource(MATRIX_PLURAL, MATRIX_KIND)]},
    "/apis/batch/v1": {"kind": "APIResourceList", "groupVersion": "batch/v1", "resources": [_resource("jobs", "Job")]},
}
LISTS = {f"/apis/{GROUP}/{VERSION}/{PLURAL}": PLURAL, f"/apis/{GROUP}/{VERSION}/{MATRIX_PLURAL}": MATRIX_PLURAL,
         "/apis/batch/v1/jobs": "jobs"}


def evaluation(namespace: str, name: str) -> dict:
    """A ModelEvaluation without status: unsettled, so the operator reconciles it."""
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": KIND,
            "metadata": {"namespace": namespace, "name": name, "uid": f"uid-{name}", "generation": 1,
                         "resourceVersion": "1"},
            "spec": {}}


class FakeKubeApi:
    def __init__(self, objects: dict[str, list[dict]]):
        """objects: plural -> the items its list returns."""
        self.objects = objects
        self.paths: list[str] = []
        self.stopping = threading.Event()
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"  # a watch's body ends when the connection closes

            def do_GET(self):
                url = urlsplit(self.path)
                api.paths.append(url.path)
                if url.path in DISCOVERY:
                    return self._json(200, DISCOVERY[url.path])
                if url.path not in LISTS:
                    return self._json(404, {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                            "reason": "NotFound", "code": 404, "message": f"{url.path} not found"})
                if parse_qs(url.query).get("watch") == ["true"]:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.end_headers()
                    self.wfile.flush()
                    while not api.stopping.wait(0.5):  # open and quiet until the server stops
                        pass
                    return
                self._json(200, {"kind": "List", "apiVersion": "v1", "metadata": {"resourceVersion": "1"},
                                 "items": api.objects.get(LISTS[url.path], [])})

            def _json(self, code: int, body: dict):
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *a):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}"

    def kubeconfig(self, path) -> None:
        path.write_text(json.dumps({
            "apiVersion": "v1", "kind": "Config", "current-context": "fake",
            "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
            "users": [{"name": "fake", "user": {"token": "fake"}}],
            "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake"}}],
        }))

    def close(self) -> None:
        self.stopping.set()  # open watches end within half a second
        self.server.shutdown()
        self.server.server_close()
