"""The process kubelet's liveness probe: a real HTTP endpoint on loopback that turns unhealthy."""

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from quantgate.dev.kubelet import probes


def serve(state):
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200 if state["ok"] else 503)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *a):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def spec(port, **probe):
    return {"name": "operator", "ports": [{"name": "metrics", "containerPort": port}],
            "livenessProbe": {"httpGet": {"path": "/healthz", "port": "metrics"}, "periodSeconds": 0.05,
                              "timeoutSeconds": 1, "failureThreshold": 3, **probe}}


def test_the_probe_url_comes_from_a_named_port_and_no_probe_means_none():
    assert probes.liveness_url(spec(8080)) == "http://127.0.0.1:8080/healthz"
    assert probes.liveness_url({"name": "x", "livenessProbe": {"httpGet": {"port": 9000, "path": "ok"}}}) == \
        "http://127.0.0.1:9000/ok"
    assert probes.liveness_url({"name": "x"}) is None


def test_failing_the_threshold_in_a_row_restarts_the_container_once():
    state = {"ok": True}
    server = serve(state)
    failed, outputs, done = [], [], threading.Event()
    try:
        thread = probes.watch_liveness(spec(server.server_port), done, failed.append, outputs.append)
        done.wait(0.3)
        assert failed == [] and outputs == []  # healthy: nothing happens
        state["ok"] = False
        thread.join(10)
        assert len(failed) == 1 and "3 times in a row" in failed[0]
        # every failed probe is reported (a kubelet's Unhealthy event), worded as a kubelet's prober
        assert outputs == ["HTTP probe failed with statuscode: 503"] * 3
    finally:
        done.set()
        server.shutdown()


def test_a_probe_nobody_answers_fails_with_the_connection_error():
    server = serve({"ok": True})
    port = server.server_port
    server.shutdown()
    server.server_close()  # nothing listens on the port now
    output = probes.check(f"http://127.0.0.1:{port}/healthz", timeout=1)
    assert output.startswith(f'Get "http://127.0.0.1:{port}/healthz": ') and "refused" in output, output


def test_the_first_probe_comes_at_the_start_and_ticks_before_the_initial_delay_are_skipped(monkeypatch):
    from quantgate.dev.harness import wait_for

    asked = []
    monkeypatch.setattr(probes, "check", lambda url, timeout: asked.append(url))  # None: healthy
    early, late = threading.Event(), threading.Event()
    try:
        # a period of a minute: a probe within it is the one at the container's start
        probes.watch_liveness(spec(9, periodSeconds=60), early, lambda _m: None)
        wait_for(lambda: asked, timeout=10, what="the probe at the start")
        early.set()
        asked.clear()
        probes.watch_liveness(spec(9, periodSeconds=0.01, initialDelaySeconds=60), late, lambda _m: None)
        late.wait(0.3)
        assert asked == []  # some 30 ticks, all before the initial delay
    finally:
        early.set()
        late.set()
