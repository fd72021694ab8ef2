"""The kubelet's HTTPS endpoint for `kubectl logs`: the apiserver proxies /containerLogs here."""

from __future__ import annotations

import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

from quantgate.dev import procs


def _log_dir(pods_dir: Path, namespace: str, pod: str, container: str) -> Path | None:
    candidates = sorted(pods_dir.glob(f"{namespace}_{pod}_*/containers/{container}"),
                        key=lambda p: p.stat().st_mtime)
    return candidates[-1] if candidates else None


def _running(container_dir: Path) -> bool:
    try:
        pid, start = (int(x) for x in (container_dir / "pid").read_text().split())
    except (OSError, ValueError):
        return False
    return procs.alive(procs.Proc("c", pid, start))


def handler_for(pods_dir: Path):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:  # keep the kubelet log quiet
            pass

        def do_GET(self) -> None:
            url = urlparse(self.path)
            parts = url.path.strip("/").split("/")
            if url.path in ("/healthz", "/readyz"):
                return self._send(200, b"ok")
            if len(parts) != 4 or parts[0] != "containerLogs":
                return self._send(404, b"the process kubelet serves only /containerLogs and /healthz\n")
            cdir = _log_dir(pods_dir, *parts[1:])
            if cdir is None or not (cdir / "log").exists():
                return self._send(404, b"container log not found\n")
            query = parse_qs(url.query)
            data = (cdir / "log").read_bytes()
            tail = query.get("tailLines", [None])[0]
            if tail is not None:
                lines = data.splitlines(keepends=True)
                data = b"".join(lines[-int(tail):]) if int(tail) else b""
            follow = query.get("follow", ["false"])[0] == "true"
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            if not follow:
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                return
            self.end_headers()
            self.wfile.write(data)
            offset = (cdir / "log").stat().st_size
            while True:
                with open(cdir / "log", "rb") as f:
                    f.seek(offset)
                    chunk = f.read()
                if chunk:
                    offset += len(chunk)
                    self.wfile.write(chunk)
                    self.wfile.flush()
                elif not _running(cdir):
                    return
                time.sleep(0.2)

        def _send(self, code: int, body: bytes) -> None:
            self.send_response(code)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return Handler


def serve(port: int, pki: Path, pods_dir: Path) -> ThreadingHTTPServer:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(pki / "kubelet-serving.crt"), str(pki / "kubelet-serving.key"))
    context.load_verify_locations(str(pki / "ca.crt"))
    context.verify_mode = ssl.CERT_REQUIRED  # only the apiserver's client cert (our CA) gets in
    server = ThreadingHTTPServer(("127.0.0.1", port), handler_for(pods_dir))
    server.daemon_threads = True
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, name="logserver", daemon=True).start()
    return server
