"""The work queue, the handlers and the real Reconciler together, against the in-memory
cluster of test_status_reconcile: API errors retry until the evaluation settles, and a Job
that vanishes without any event still ends its evaluation (requeue-after of Running)."""

import asyncio
import logging

import pytest
from kubernetes.client.exceptions import ApiException

from quantgate.k8s import handlers, names
from quantgate.k8s import reconcile as rc
from quantgate.k8s.settings import Settings
from quantgate.k8s.workqueue import WorkQueue
from test_status_reconcile import NS, SPEC, FakeCluster, ready_isvc

FAST = Settings(max_concurrent=4, poll_interval_s=0.05, running_requeue_s=0.1, backoff_base_s=0.01,
                backoff_max_s=0.05)


@pytest.fixture
def operator(monkeypatch):
    cluster = FakeCluster()
    cluster.isvcs = {"fp16": ready_isvc("fp16"), "int4": ready_isvc("int4")}
    monkeypatch.setattr(rc.endpoints, "preflight", lambda *a, **k: None)
    from quantgate.decision.model import Comparison, Verdict
    import quantgate.decision

    monkeypatch.setattr(quantgate.decision, "compare", lambda b, c, p: Comparison(
        verdict=Verdict.SHIP, promotable=True, profile="general", aggregate="relativeDropOfMean",
        drop_mode="relative", average_drop=0.5, decisive=True, reasons=["r"], tasks=[]))
    rec = rc.Reconciler(cluster, FAST)
    for name in ("_bodies", "_finished_jobs", "_dependents", "_depends_on", "_last_full"):
        monkeypatch.setattr(handlers, name, {})
    for name in ("observe", "forget", "count_verdict", "count_failure"):
        monkeypatch.setattr(handlers.metrics, name, lambda *a, **k: None)
    monkeypatch.setitem(handlers._state, "executor", None)
    monkeypatch.setitem(handlers._state, "reconciler", rec)
    monkeypatch.setitem(handlers._state, "settings", FAST)
    monkeypatch.setitem(handlers._state, "jobs_index", {})
    queue = WorkQueue(handlers._reconcile_key, workers=4, backoff_base_s=0.01, backoff_cap_s=0.05)
    monkeypatch.setitem(handlers._state, "queue", queue)
    return cluster, queue


async def until(check, timeout=20.0):
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not check():
        assert loop.time() < end, "condition not reached"
        await asyncio.sleep(0.02)


def test_api_errors_on_status_writes_and_results_reads_retry_until_the_verdict(operator, caplog):
    cluster, queue = operator
    failures = {"patch": 3, "read": 3}
    patch, read = cluster.patch_status, cluster.configmap

    def flaky_patch(body, p):
        if failures["patch"] > 0:
            failures["patch"] -= 1
            raise ApiException(status=500, reason="Internal Server Error")
        return patch(body, p)

    def flaky_read(ns, name):  # reads of the results ConfigMaps (quantgate.k8s.verified)
        if name.startswith(names.job_name("a", 1)) and failures["read"] > 0:
            failures["read"] -= 1
            raise ApiException(status=429, reason="Too Many Requests")
        return read(ns, name)

    cluster.patch_status, cluster.configmap = flaky_patch, flaky_read
    cluster.add_eval("a", SPEC)

    async def run():
        queue.start()
        handlers.observe_evaluation("ADDED", NS, "a", cluster.evals["a"])
        await until(lambda: (cluster.evals["a"].get("status") or {}).get("phase") == "Running")
        cluster.finish_job(names.job_name("a", 1))  # no Job event reaches the operator
        await until(lambda: (cluster.evals["a"].get("status") or {}).get("phase") == "Succeeded")
        await queue.stop()

    log = logging.getLogger("quantgate.workqueue")
    log.addHandler(caplog.handler)  # directly: a runner test in the same process may have stopped propagation
    try:
        asyncio.run(run())
    finally:
        log.removeHandler(caplog.handler)
    assert cluster.created_jobs == [names.job_name("a", 1)]
    assert [e[2] for e in cluster.events] == ["Verdict"]
    retries = [r.getMessage() for r in caplog.records if "failed (attempt" in r.getMessage()]
    assert any("HTTP 500" in m for m in retries) and any("HTTP 429" in m for m in retries)


def test_a_job_gone_without_an_event_fails_its_running_evaluation(operator):
    cluster, queue = operator
    cluster.add_eval("a", SPEC)

    async def run():
        queue.start()
        handlers.observe_evaluation("ADDED", NS, "a", cluster.evals["a"])
        await until(lambda: (cluster.evals["a"].get("status") or {}).get("phase") == "Running")
        cluster.jobs.clear()
        await until(lambda: (cluster.evals["a"].get("status") or {}).get("phase") == "Failed")
        await queue.stop()

    asyncio.run(run())
    assert cluster.evals["a"]["status"]["reason"] == "JobMissing"
