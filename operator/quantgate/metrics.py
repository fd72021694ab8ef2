"""Prometheus metrics of the operator (names are a contract: alerts and dashboards use them).

Gauges describe the current status of each ModelEvaluation and are derived from it by
`observe(namespace, name, status)`: the operator calls it for every CR it sees (so they
are rebuilt from CR statuses after a restart) and `forget()` when a CR is deleted, so no
stale series survive. They are produced at scrape time by a custom collector from one small
tuple per evaluation, which keeps 1,000 evaluations (~34 series each) cheap in memory. Counters and the duration histogram count what this process
decided (they restart at zero, as Prometheus counters do).
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily

from quantgate.api.v1alpha1 import Phase
from quantgate.decision.model import Verdict

PHASES = tuple(p.value for p in Phase)  # the tables: quantgate.api.v1alpha1.Phase, quantgate.decision.Verdict
VERDICTS = tuple(v.value for v in Verdict)
EV = ("namespace", "evaluation")

REGISTRY = CollectorRegistry()
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)

EVALUATIONS = Counter("quantgate_evaluations", "Verdicts written by this operator.", ("verdict",),
                      registry=REGISTRY)
FAILURES = Counter("quantgate_evaluation_failures", "Evaluations that failed, by reason.", ("reason",),
                   registry=REGISTRY)
DURATION = Histogram("quantgate_evaluation_duration_seconds", "Start of a generation to its verdict or failure.",
                     buckets=(5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400, 28800),
                     registry=REGISTRY)


def _summarise(status: dict) -> tuple:
    """What the gauges need of one status: (phase, verdict, averageDrop, ((task, b, c, drop, flip), ...))."""
    verdict = status.get("verdict")
    tasks = tuple(
        (t.get("task"), t.get("baseline"), t.get("candidate"), t.get("drop"), (t.get("flips") or {}).get("rate"),
         t.get("choiceKld"), t.get("top1Agreement"))
        for t in (status.get("tasks") or []) if verdict
    )
    return (status.get("phase"), verdict, status.get("averageDrop") if verdict else None, tasks)


class _StatusCollector:
    """The per-evaluation gauges, generated at scrape time from one small tuple per evaluation
    (no per-series objects to keep or to forget: a deleted evaluation simply has no tuple)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.statuses: dict[tuple[str, str], tuple] = {}

    def collect(self):
        with self.lock:
            items = sorted(self.statuses.items())
        score = GaugeMetricFamily("quantgate_evaluation_score", "Task score (primary metric) per model role.",
                                  labels=EV + ("task", "role"))
        drop = GaugeMetricFamily("quantgate_evaluation_drop_percent",
                                 "Per-task accuracy drop of the candidate, percent.", labels=EV + ("task",))
        average = GaugeMetricFamily("quantgate_evaluation_average_drop_percent", "Average accuracy drop, percent.",
                                    labels=EV)
        flips = GaugeMetricFamily("quantgate_evaluation_flip_rate", "Share of answers that changed correctness.",
                                  labels=EV + ("task",))
        kld = GaugeMetricFamily("quantgate_evaluation_choice_kld", "Mean KL(baseline || candidate) of the "
                                "per-question choice distributions of a multiple-choice task, nats.",
                                labels=EV + ("task",))
        top1 = GaugeMetricFamily("quantgate_evaluation_top1_agreement", "Share of questions of a multiple-choice "
                                 "task where both models pick the same choice.", labels=EV + ("task",))
        verdicts = GaugeMetricFamily("quantgate_evaluation_verdict", "1 for the current verdict, 0 otherwise.",
                                     labels=EV + ("verdict",))
        phases = GaugeMetricFamily("quantgate_evaluation_phase", "1 for the current phase, 0 otherwise.",
                                   labels=EV + ("phase",))
        for (ns, name), (phase, verdict, avg, tasks) in items:
            for p in PHASES:
                phases.add_metric((ns, name, p), 1.0 if p == phase else 0.0)
            for v in VERDICTS:
                verdicts.add_metric((ns, name, v), 1.0 if v == verdict else 0.0)
            if avg is not None:
                average.add_metric((ns, name), float(avg))
            for task, base, cand, d, rate, k, a in tasks:
                if k is not None:
                    kld.add_metric((ns, name, task), float(k))
                if a is not None:
                    top1.add_metric((ns, name, task), float(a))
                for role, value in (("baseline", base), ("candidate", cand)):
                    if value is not None:
                        score.add_metric((ns, name, task, role), float(value))
                if d is not None:
                    drop.add_metric((ns, name, task), float(d))
                if rate is not None:
                    flips.add_metric((ns, name, task), float(rate))
        return [score, drop, average, flips, kld, top1, verdicts, phases]


_STATUSES = _StatusCollector()
REGISTRY.register(_STATUSES)


def observe(namespace: str, name: str, status: dict | None) -> None:
    """Make the gauges of one evaluation match its status (absent fields → no series)."""
    summary = _summarise(status or {})
    with _STATUSES.lock:
        _STATUSES.statuses[(namespace, name)] = summary


def forget(namespace: str, name: str) -> None:
    """Drop every series of a deleted evaluation."""
    with _STATUSES.lock:
        _STATUSES.statuses.pop((namespace, name), None)


class _MatrixCollector:
    """Per-matrix gauges from each ModelEvaluationMatrix status: which row is selected, and how
    many rows have settled of how many."""

    def __init__(self):
        self.lock = threading.Lock()
        self.matrices: dict[tuple[str, str], tuple] = {}

    def collect(self):
        with self.lock:
            items = sorted(self.matrices.items())
        labels = ("namespace", "matrix")
        selected = GaugeMetricFamily("quantgate_matrix_selected", "1 for the variant the matrix selected, 0 for "
                                     "its other variants (every 0: none selected).", labels=labels + ("variant",))
        done = GaugeMetricFamily("quantgate_matrix_rows_done", "Rows (child ModelEvaluations) that settled.",
                                 labels=labels)
        rows = GaugeMetricFamily("quantgate_matrix_rows", "Rows of the matrix (its candidates).", labels=labels)
        for (ns, name), (chosen, variants, settled) in items:
            for variant in variants:
                selected.add_metric((ns, name, variant), 1.0 if variant == chosen else 0.0)
            done.add_metric((ns, name), float(settled))
            rows.add_metric((ns, name), float(len(variants)))
        return [selected, done, rows]


_MATRICES = _MatrixCollector()
REGISTRY.register(_MATRICES)


def observe_matrix(namespace: str, name: str, status: dict | None) -> None:
    """Make the gauges of one matrix match its status."""
    status = status or {}
    rows = status.get("rows") or []
    settled = sum(1 for r in rows if r.get("phase") in ("Succeeded", "Failed"))
    with _MATRICES.lock:
        _MATRICES.matrices[(namespace, name)] = (status.get("selected"), tuple(r.get("name") for r in rows), settled)


def forget_matrix(namespace: str, name: str) -> None:
    with _MATRICES.lock:
        _MATRICES.matrices.pop((namespace, name), None)


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
