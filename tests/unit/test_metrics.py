"""Metrics: the contract's series, rebuilt from status, removed with the evaluation."""

from prometheus_client.parser import text_string_to_metric_families

from quantgate import metrics


def _samples():
    out = {}
    for family in text_string_to_metric_families(metrics.exposition().decode()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def _status(verdict, tasks):
    return {"phase": "Succeeded", "verdict": verdict, "averageDrop": 2.5, "observedGeneration": 1,
            "tasks": [{"task": t, "baseline": b, "candidate": c, "drop": d, "flips": {"rate": r}}
                      for t, b, c, d, r in tasks]}


def test_gauges_follow_the_status_and_disappear_with_the_evaluation():
    metrics.observe("ns1", "ev1", _status("Monitor", [("gsm8k", 0.5, 0.49, 2.0, 0.1), ("mmlu", 0.6, 0.6, 0.0, 0.02)]))
    s = _samples()
    ev = (("evaluation", "ev1"), ("namespace", "ns1"))
    assert s[("quantgate_evaluation_score", tuple(sorted(ev + (("task", "gsm8k"), ("role", "candidate")))))] == 0.49
    assert s[("quantgate_evaluation_drop_percent", tuple(sorted(ev + (("task", "gsm8k"),))))] == 2.0
    assert s[("quantgate_evaluation_flip_rate", tuple(sorted(ev + (("task", "gsm8k"),))))] == 0.1
    assert s[("quantgate_evaluation_average_drop_percent", ev)] == 2.5
    assert s[("quantgate_evaluation_verdict", tuple(sorted(ev + (("verdict", "Monitor"),))))] == 1
    assert s[("quantgate_evaluation_verdict", tuple(sorted(ev + (("verdict", "Block"),))))] == 0
    assert s[("quantgate_evaluation_phase", tuple(sorted(ev + (("phase", "Succeeded"),))))] == 1

    # a new generation starts: the verdict's series go, the phase moves
    metrics.observe("ns1", "ev1", {"phase": "Running", "observedGeneration": 2})
    s = _samples()
    assert not any(k[0] in ("quantgate_evaluation_score", "quantgate_evaluation_drop_percent",
                            "quantgate_evaluation_average_drop_percent") and ("evaluation", "ev1") in k[1]
                   for k in s)
    assert s[("quantgate_evaluation_phase", tuple(sorted(ev + (("phase", "Running"),))))] == 1
    assert s[("quantgate_evaluation_verdict", tuple(sorted(ev + (("verdict", "Monitor"),))))] == 0

    metrics.forget("ns1", "ev1")
    assert not any(("evaluation", "ev1") in k[1] for k in _samples())


def test_counters_and_histogram():
    before = _samples().get(("quantgate_evaluations_total", (("verdict", "Block"),)), 0)
    metrics.count_verdict("Block", 42.0)
    metrics.count_failure("JobFailed", None)
    s = _samples()
    assert s[("quantgate_evaluations_total", (("verdict", "Block"),))] == before + 1
    assert s[("quantgate_evaluation_failures_total", (("reason", "JobFailed"),))] >= 1
    assert s[("quantgate_evaluation_duration_seconds_count", ())] >= 1


def test_http_endpoint_serves_metrics_and_health():
    import urllib.request

    server = metrics.serve("127.0.0.1", 0, healthy=lambda: True)
    try:
        base = f"http://127.0.0.1:{server.server_port}"
        body = urllib.request.urlopen(base + "/metrics", timeout=5).read().decode()
        assert "quantgate_evaluation_duration_seconds_bucket" in body
        assert urllib.request.urlopen(base + "/healthz", timeout=5).read() == b"ok\n"
    finally:
        server.shutdown()


def test_fidelity_gauges_per_multiple_choice_task():
    status = _status("Monitor", [("gsm8k", 0.5, 0.49, 2.0, 0.1), ("arc_challenge", 0.6, 0.58, 3.3, 0.05)])
    status["tasks"][1].update(choiceKld=0.0421, top1Agreement=0.93)
    metrics.observe("ns2", "ev2", status)
    s = _samples()
    ev = (("evaluation", "ev2"), ("namespace", "ns2"))
    arc = tuple(sorted(ev + (("task", "arc_challenge"),)))
    assert s[("quantgate_evaluation_choice_kld", arc)] == 0.0421
    assert s[("quantgate_evaluation_top1_agreement", arc)] == 0.93
    gsm = tuple(sorted(ev + (("task", "gsm8k"),)))  # a generation task has no choice distribution
    assert ("quantgate_evaluation_choice_kld", gsm) not in s and ("quantgate_evaluation_top1_agreement", gsm) not in s
    metrics.forget("ns2", "ev2")
    assert not any(("evaluation", "ev2") in k[1] for k in _samples())


def test_matrix_gauges_name_the_selected_variant_and_disappear_with_the_matrix():
    rows = [{"name": "int8", "phase": "Succeeded"}, {"name": "int4-g128", "phase": "Failed"},
            {"name": "int4-g64", "phase": "Running"}]
    metrics.observe_matrix("ns3", "seed", {"rows": rows, "rowsDone": "2/3"})
    s = _samples()
    labels = lambda v: (("matrix", "seed"), ("namespace", "ns3"), ("variant", v))  # noqa: E731
    assert [s[("quantgate_matrix_selected", labels(v))] for v in ("int8", "int4-g128", "int4-g64")] == [0, 0, 0]
    assert s[("quantgate_matrix_rows_done", (("matrix", "seed"), ("namespace", "ns3")))] == 2
    assert s[("quantgate_matrix_rows", (("matrix", "seed"), ("namespace", "ns3")))] == 3
    metrics.observe_matrix("ns3", "seed", {"rows": [{**r, "phase": "Succeeded"} for r in rows], "selected": "int8"})
    s = _samples()
    assert s[("quantgate_matrix_selected", labels("int8"))] == 1
    assert s[("quantgate_matrix_selected", labels("int4-g64"))] == 0
    metrics.forget_matrix("ns3", "seed")
    assert not any(name.startswith("quantgate_matrix") for name, _ in _samples())
