"""Prometheus metrics of the operator (names are a contract: alerts and dashboards use them).

Gauges describe the current status of each ModelEvaluation and are derived from it by
`observe(namespace, name, status)`: the operator calls it for every CR it sees (so they
are rebuilt from CR statuses after a restart) and `forget()` when a CR is deleted, so no
stale series survive. Counters and the duration histogram count what this process
decided (they restart at zero, as Prometheus counters do).
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)

PHASES = ("Pending", "WaitingForEndpoints", "Running", "Succeeded", "Failed")
VERDICTS = ("Ship", "Monitor", "ABTest", "Block")
EV = ("namespace", "evaluation")

REGISTRY = CollectorRegistry()
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)

SCORE = Gauge("quantgate_evaluation_score", "Task score (primary metric) per model role.",
              EV + ("task", "role"), registry=REGISTRY)
DROP = Gauge("quantgate_evaluation_drop_percent", "Per-task accuracy drop of the candidate, percent.",
             EV + ("task",), registry=REGISTRY)
AVERAGE_DROP = Gauge("quantgate_evaluation_average_drop_percent", "Average accuracy drop, percent.",
                     EV, registry=REGISTRY)
FLIP_RATE = Gauge("quantgate_evaluation_flip_rate", "Share of answers that changed correctness.",
                  EV + ("task",), registry=REGISTRY)
VERDICT = Gauge("quantgate_evaluation_verdict", "1 for the current verdict, 0 otherwise.",
                EV + ("verdict",), registry=REGISTRY)
PHASE = Gauge("quantgate_evaluation_phase", "1 for the current phase, 0 otherwise.",
              EV + ("phase",), registry=REGISTRY)
EVALUATIONS = Counter("quantgate_evaluations", "Verdicts written by this operator.", ("verdict",),
                      registry=REGISTRY)
FAILURES = Counter("quantgate_evaluation_failures", "Evaluations that failed, by reason.", ("reason",),
                   registry=REGISTRY)
DURATION = Histogram("quantgate_evaluation_duration_seconds", "Start of a generation to its verdict or failure.",
                     buckets=(5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400, 28800),
                     registry=REGISTRY)

_lock = threading.Lock()
_series: dict[tuple[str, str], set[tuple[Gauge, tuple]]] = {}  # per evaluation: label sets we set


def _set(key, gauge: Gauge, labels: tuple, value: float, keep: set) -> None:
    gauge.labels(*labels).set(value)
    keep.add((gauge, labels))


def observe(namespace: str, name: str, status: dict | None) -> None:
    """Make the gauges of one evaluation match its status (absent fields → no series)."""
    status = status or {}
    key = (namespace, name)
    keep: set = set()
    with _lock:
        phase = status.get("phase")
        for p in PHASES:
            _set(key, PHASE, (namespace, name, p), 1.0 if p == phase else 0.0, keep)
        verdict = status.get("verdict")
        for v in VERDICTS:
            _set(key, VERDICT, (namespace, name, v), 1.0 if v == verdict else 0.0, keep)
        if verdict and status.get("averageDrop") is not None:
            _set(key, AVERAGE_DROP, (namespace, name), float(status["averageDrop"]), keep)
        for task in (status.get("tasks") or []) if verdict else []:
            t = task.get("task")
            for role in ("baseline", "candidate"):
                if task.get(role) is not None:
                    _set(key, SCORE, (namespace, name, t, role), float(task[role]), keep)
            if task.get("drop") is not None:
                _set(key, DROP, (namespace, name, t), float(task["drop"]), keep)
            flips = task.get("flips") or {}
            if flips.get("rate") is not None:
                _set(key, FLIP_RATE, (namespace, name, t), float(flips["rate"]), keep)
        for gauge, labels in _series.get(key, set()) - keep:
            _remove(gauge, labels)
        _series[key] = keep


def _remove(gauge: Gauge, labels: tuple) -> None:
    try:
        gauge.remove(*labels)
    except KeyError:
        pass


def forget(namespace: str, name: str) -> None:
    """Drop every series of a deleted evaluation."""
    with _lock:
        for gauge, labels in _series.pop((namespace, name), set()):
            _remove(gauge, labels)


def count_verdict(verdict: str, seconds: float | None) -> None:
    EVALUATIONS.labels(verdict).inc()
    if seconds is not None and seconds >= 0:
        DURATION.observe(seconds)


def count_failure(reason: str, seconds: float | None) -> None:
    FAILURES.labels(reason).inc()
    if seconds is not None and seconds >= 0:
        DURATION.observe(seconds)


def exposition() -> bytes:
    return generate_latest(REGISTRY)


class _Handler(BaseHTTPRequestHandler):
    healthy = staticmethod(lambda: True)

    def do_GET(self):  # noqa: N802 (http.server API)
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            body, ctype, code = exposition(), CONTENT_TYPE_LATEST, 200
        elif path in ("/healthz", "/readyz"):
            ok = self.healthy()
            body, ctype, code = (b"ok\n" if ok else b"unhealthy\n"), "text/plain", 200 if ok else 503
        else:
            body, ctype, code = b"not found\n", "text/plain", 404
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):  # scrapes every 15 s would flood the operator log
        pass


def serve(host: str = "0.0.0.0", port: int = 8080, healthy=lambda: True) -> ThreadingHTTPServer:
    """Serve /metrics and /healthz in a daemon thread; returns the server (server_port = bound port)."""
    handler = type("Handler", (_Handler,), {"healthy": staticmethod(healthy)})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    return server
