"""A fault-injecting HTTP proxy on loopback between the operator and the API server.

The operator talks plain HTTP to the proxy (a kubeconfig whose server is
http://127.0.0.1:PORT, with the same bearer token); the proxy forwards every request over
TLS to the real API server, streaming responses (watches included). While `faults` is on,
requests that match a rule are answered with an error instead of being forwarded: HTTP 500,
HTTP 429 (with Retry-After), or a hang then a dropped connection, in rotation.
"""

from __future__ import annotations

import http.client
import itertools
import re
import ssl
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlparse

import yaml

HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade"}
# results ConfigMap reads and evaluation status patches
RESULTS_READ = ("GET", re.compile(r"/api/v1/namespaces/[^/]+/configmaps/[^/?]+"))
STATUS_PATCH = ("PATCH", re.compile(r"/apis/quantgate\.io/v1alpha1/namespaces/[^/]+/modelevaluations/[^/]+/status"))


class FaultProxy:
    def __init__(self, kubeconfig: Path, rules=(RESULTS_READ, STATUS_PATCH), hang_s: float = 3.0):
        config = yaml.safe_load(kubeconfig.read_text())
        cluster = config["clusters"][0]["cluster"]
        self.user = config["users"][0]["user"]
        self.config = config
        upstream = urlparse(cluster["server"])
        self.host, self.port = upstream.hostname, upstream.port or 443
        import base64

        self._ca = tempfile.NamedTemporaryFile("wb", suffix=".crt", delete=False)
        self._ca.write(base64.b64decode(cluster["certificate-authority-data"]))
        self._ca.close()
        self.context = ssl.create_default_context(cafile=self._ca.name)
        self.rules = rules
        self.hang_s = hang_s
        self.faults = False
        self.injected: dict[str, int] = {"500": 0, "429": 0, "hang": 0}
        self._kinds = itertools.cycle(["500", "429", "hang"])
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _any(self):
                proxy._handle(self)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _any

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}"

    def kubeconfig(self, path: Path) -> Path:
        """A kubeconfig for the same user, through the proxy (token users only: the proxy
        forwards the Authorization header, it cannot present a client certificate)."""
        assert "token" in self.user, "the fault proxy needs a token kubeconfig"
        config = dict(self.config)
        config["clusters"] = [{"name": c["name"], "cluster": {"server": self.url}} for c in config["clusters"]]
        path.write_text(yaml.safe_dump(config))
        return path

    def close(self) -> None:
        self.server.shutdown()
        Path(self._ca.name).unlink(missing_ok=True)

    # ---- one request --------------------------------------------------------------------
    def _fault_for(self, method: str, path: str) -> str | None:
        if not self.faults:
            return None
        if not any(method == m and rx.fullmatch(path.split("?", 1)[0]) for m, rx in self.rules):
            return None
        with self._lock:
            kind = next(self._kinds)
            self.injected[kind] += 1
        return kind

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(length) if length else None
        kind = self._fault_for(h.command, h.path)
        if kind == "hang":
            time.sleep(self.hang_s)
            h.close_connection = True
            h.connection.close()  # no answer at all: the client sees the connection drop
            return
        if kind in ("500", "429"):
            payload = (b'{"kind":"Status","apiVersion":"v1","status":"Failure","message":"injected fault",'
                       b'"code":%s}' % kind.encode())
            h.send_response(int(kind))
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", str(len(payload)))
            if kind == "429":
                h.send_header("Retry-After", "1")
            h.end_headers()
            h.wfile.write(payload)
            return
        headers = {k: v for k, v in h.headers.items() if k.lower() not in HOP and k.lower() != "host"}
        conn = http.client.HTTPSConnection(self.host, self.port, context=self.context, timeout=600)
        try:
            conn.request(h.command, h.path, body=body, headers=headers)
            resp = conn.getresponse()
            h.send_response(resp.status, resp.reason)
            for k, v in resp.getheaders():
                if k.lower() not in HOP and k.lower() != "content-length":
                    h.send_header(k, v)
            if resp.chunked or resp.getheader("Content-Length") is None:  # a watch: stream it
                h.send_header("Transfer-Encoding", "chunked")
                h.end_headers()
                while True:
                    chunk = resp.read1(65536)
                    if not chunk:
                        break
                    h.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                    h.wfile.flush()
                h.wfile.write(b"0\r\n\r\n")
            else:
                data = resp.read()
                h.send_header("Content-Length", str(len(data)))
                h.end_headers()
                h.wfile.write(data)
        except (OSError, http.client.HTTPException):
            h.close_connection = True
        finally:
            conn.close()
