"""The operator's shortcuts under load and its one reconcile path: preflight cache, credential refresh, the work queue's handlers."""

import asyncio
import threading
import time

import pytest

from quantgate.k8s import endpoints, handlers
from quantgate.k8s.client import _at_most_every


class Checks:
    def __init__(self, answers=None, delay=0.0):
        self.calls, self.answers, self.delay = [], list(answers or []), delay

    def __call__(self, url, model, api_key, timeout):
        self.calls.append((url, model, api_key))
        time.sleep(self.delay)
        return self.answers.pop(0) if self.answers else None


def test_preflight_success_is_cached_for_its_ttl_and_failures_briefly():
    checks = Checks(answers=["down", None])
    cache = endpoints.PreflightCache(ttl_s=30, failure_ttl_s=0.05, check=checks)
    assert cache("http://a", "m", None, 1) == "down"
    assert cache("http://a", "m", None, 1) == "down"  # the failure is remembered briefly
    assert len(checks.calls) == 1
    time.sleep(0.1)
    assert cache("http://a", "m", None, 1) is None  # and asked again after that
    assert cache("http://a", "m", None, 1) is None
    assert len(checks.calls) == 2  # the success was remembered
    cache("http://a", "other-model", None, 1)
    cache("http://a", "m", "sk-key", 1)
    assert len(checks.calls) == 4  # model and key are part of the endpoint's identity


def test_a_slow_endpoint_does_not_hold_up_preflights_of_other_endpoints():
    class Slow(Checks):
        def __call__(self, url, model, api_key, timeout):
            self.calls.append(url)
            if url == "http://down":
                gate.wait(5)
            return None

    gate = threading.Event()
    checks = Slow()
    cache = endpoints.PreflightCache(ttl_s=30, check=checks, parallel=4)
    stuck = threading.Thread(target=cache, args=("http://down", "m", None, 1))
    stuck.start()
    while "http://down" not in checks.calls:
        time.sleep(0.01)
    assert cache("http://up", "m", None, 1) is None  # answered while the other one still hangs
    assert stuck.is_alive()
    gate.set()
    stuck.join()


def test_preflight_cache_expires_and_can_be_switched_off():
    checks = Checks()
    cache = endpoints.PreflightCache(ttl_s=0.05, check=checks)
    cache("http://a", "m", None, 1)
    time.sleep(0.1)
    cache("http://a", "m", None, 1)
    off = endpoints.PreflightCache(ttl_s=0, check=checks)
    off("http://a", "m", None, 1)
    off("http://a", "m", None, 1)
    assert len(checks.calls) == 4


def test_preflight_cache_asks_once_for_a_burst_of_callers_and_keeps_no_key():
    checks = Checks(delay=0.2)
    cache = endpoints.PreflightCache(ttl_s=30, check=checks)
    threads = [threading.Thread(target=cache, args=("http://a", "m", "sk-secret-123", 1)) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(checks.calls) == 1
    assert "sk-secret-123" not in repr(cache._answers) + repr(cache._flights)


def test_credential_refresh_runs_at_most_once_per_interval_and_stays_installed():
    class Config:
        refresh_api_key_hook = None

    calls = []
    config = Config()

    def loader_hook(configuration):  # like the kubeconfig loader: re-installs itself
        calls.append(1)
        configuration.refresh_api_key_hook = loader_hook

    config.refresh_api_key_hook = _at_most_every(60, loader_hook)
    for _ in range(5):
        config.refresh_api_key_hook(config)
    assert calls == [1]
    assert config.refresh_api_key_hook is not loader_hook


def test_kopf_diff_base_is_not_built():
    body = {"metadata": {"name": "a"}, "spec": {"big": list(range(1000))}}
    assert handlers._NoDiffBase(prefix="quantgate.io", key="k").build(body=body) == {}


@pytest.mark.parametrize("flag", ["--workers", "--preflight-cache"])
def test_operator_flags_reject_bad_values(flag, capsys):
    from quantgate.cli import main

    assert main(["operator", flag, "-1"]) == 2
    assert flag in capsys.readouterr().err


def _fresh_handlers(monkeypatch, rec):
    from quantgate.k8s.settings import Settings
    from quantgate.k8s.workqueue import WorkQueue

    for name in ("_bodies", "_finished_jobs", "_dependents", "_depends_on", "_last_full"):
        monkeypatch.setattr(handlers, name, {})
    monkeypatch.setattr(handlers.metrics, "observe", lambda *a: None)
    monkeypatch.setattr(handlers.metrics, "forget", lambda *a: None)
    monkeypatch.setitem(handlers._state, "executor", None)
    monkeypatch.setitem(handlers._state, "reconciler", rec)
    monkeypatch.setitem(handlers._state, "settings", Settings())
    queue = WorkQueue(handlers._reconcile_key, workers=2, backoff_base_s=0.01)
    monkeypatch.setitem(handlers._state, "queue", queue)
    return queue


class RecordingReconciler:
    """Stands in for the Reconciler: records what each reconcile was given."""

    def __init__(self, answer=None):
        self.calls, self.answer = [], answer

        class Active:
            seen: list = []

            @staticmethod
            def finished(ns, name):
                pass

        self.active = Active()

    def reconcile(self, namespace, name, body=None, job=None, isvc_cache=None):
        self.calls.append((name, (body or {}).get("status", {}).get("phase"), job is not None))
        return self.answer

    def forget(self, namespace, name):
        pass


def test_events_only_enqueue_and_one_path_reconciles_with_the_latest_body_and_finished_job(monkeypatch):
    rec = RecordingReconciler()
    queue = _fresh_handlers(monkeypatch, rec)
    running = {"metadata": {"name": "a", "namespace": "ns", "generation": 2, "resourceVersion": "7"},
               "spec": {}, "status": {"phase": "Running", "observedGeneration": 2, "jobName": "a-g2-x"}}
    job = {"metadata": {"name": "a-g2-x"}, "status": {"conditions": [{"type": "Complete", "status": "True"}]}}

    async def events():
        await handlers.evaluation_event(type="MODIFIED", body=running, namespace="ns", name="a",
                                        quantgate_jobs={}, inference_services={})
        await handlers.job_event(type="MODIFIED", body=job, namespace="ns", labels={"quantgate.io/evaluation": "a"},
                                 quantgate_jobs={})
        assert rec.calls == []  # handlers enqueue; nothing reconciles in them
        assert len(queue) == 1  # two events, one key
        queue.start()
        while queue.processed < 1:
            await asyncio.sleep(0.01)
        settled = {**running, "status": {"phase": "Succeeded", "observedGeneration": 2, "verdict": "Ship"}}
        await handlers.evaluation_event(type="MODIFIED", body=settled, namespace="ns", name="a",
                                        quantgate_jobs={}, inference_services={})
        await asyncio.sleep(0.05)
        await queue.stop()

    asyncio.run(events())
    assert rec.calls == [("a", "Running", True)]  # once, from the cached body, with the finished Job
    assert handlers._bodies == {} and handlers._finished_jobs == {}  # a settled evaluation is not kept


def test_an_inference_service_event_wakes_only_the_evaluations_that_use_it(monkeypatch):
    rec = RecordingReconciler()
    queue = _fresh_handlers(monkeypatch, rec)

    def waiting(name, isvc):
        return {"metadata": {"name": name, "namespace": "ns", "generation": 1},
                "spec": {"baseline": {"inferenceServiceRef": {"name": "fp16"}},
                         "candidate": {"inferenceServiceRef": {"name": isvc}}},
                "status": {"phase": "WaitingForEndpoints", "observedGeneration": 1}}

    async def events():
        for name, isvc in (("a", "int4"), ("b", "int8")):
            await handlers.evaluation_event(type="ADDED", body=waiting(name, isvc), namespace="ns", name=name,
                                            quantgate_jobs={}, inference_services={})
        queue.start()
        while queue.processed < 2:
            await asyncio.sleep(0.01)
        await handlers.inference_service_event(namespace="ns", name="int8")
        while queue.processed < 3:
            await asyncio.sleep(0.01)
        await handlers.inference_service_event(namespace="other", name="int8")  # another namespace's
        await asyncio.sleep(0.05)
        await queue.stop()

    asyncio.run(events())
    assert [c[0] for c in rec.calls] == ["a", "b", "b"]


def test_resync_relists_and_enqueues_unsettled_evaluations_and_drops_vanished_ones(monkeypatch):
    rec = RecordingReconciler()
    queue = _fresh_handlers(monkeypatch, rec)
    unsettled = {"metadata": {"name": "a", "namespace": "ns", "generation": 1, "resourceVersion": "3"},
                 "spec": {}, "status": {"phase": "Running", "observedGeneration": 1}}
    settled = {"metadata": {"name": "b", "namespace": "ns", "generation": 1, "resourceVersion": "4"},
               "spec": {}, "status": {"phase": "Succeeded", "observedGeneration": 1}}
    handlers._bodies[("ns", "gone")] = {"metadata": {"name": "gone", "namespace": "ns"}}

    class Cluster:
        @staticmethod
        def evaluation_pages(namespaces):
            yield [unsettled]
            yield [settled]

    rec.cluster = Cluster()

    async def one_resync():
        queue.start()
        task = asyncio.create_task(handlers._resync(0.01))
        while queue.processed < 1:
            await asyncio.sleep(0.01)
        task.cancel()
        await queue.stop()

    asyncio.run(one_resync())
    assert rec.calls[0] == ("a", "Running", False)
    assert {c[0] for c in rec.calls} == {"a"}
    assert set(handlers._bodies) == {("ns", "a")}


def test_healthz_fails_when_the_queue_has_work_and_finishes_none(monkeypatch):
    from quantgate.k8s.settings import Settings

    rec = RecordingReconciler()
    queue = _fresh_handlers(monkeypatch, rec)
    monkeypatch.setitem(handlers._state, "settings", Settings(health_stall_s=0.2))
    monkeypatch.setitem(handlers._state, "loop_tick", time.monotonic())
    assert handlers.healthy()
    queue._queued.add(("ns", "a"))  # work nobody takes (no worker runs)
    queue.last_progress = time.monotonic() - 1
    assert not handlers.healthy()
    queue._queued.clear()
    assert handlers.healthy()
    monkeypatch.setitem(handlers._state, "loop_tick", time.monotonic() - 1)  # the event loop stopped
    assert not handlers.healthy()


def test_a_running_echo_costs_nothing_while_its_job_is_unfinished_but_a_full_reconcile_still_comes(monkeypatch):
    from quantgate.k8s.settings import Settings

    rec = RecordingReconciler(answer=0.2)
    queue = _fresh_handlers(monkeypatch, rec)
    monkeypatch.setitem(handlers._state, "settings", Settings(running_requeue_s=0.2))
    running = {"metadata": {"name": "a", "namespace": "ns", "generation": 1, "resourceVersion": "7"},
               "spec": {}, "status": {"phase": "Running", "observedGeneration": 1, "jobName": "a-g1-x"}}
    index = {"active": [{"namespace": "ns", "name": "a-g1-x"}]}

    async def events():
        queue.start()
        await handlers.evaluation_event(type="MODIFIED", body=running, namespace="ns", name="a",
                                        quantgate_jobs=index, inference_services={})
        while queue.processed < 1:
            await asyncio.sleep(0.01)
        echo = {**running, "metadata": {**running["metadata"], "resourceVersion": "8"}}
        await handlers.evaluation_event(type="MODIFIED", body=echo, namespace="ns", name="a",
                                        quantgate_jobs=index, inference_services={})
        while queue.processed < 2:
            await asyncio.sleep(0.01)
        assert len(rec.calls) == 1  # the echo was answered from the Job index
        while len(rec.calls) < 2:  # the requeue-after brings a full reconcile anyway
            await asyncio.sleep(0.02)
        await queue.stop()

    asyncio.run(events())


def test_a_missing_kserve_crd_is_reported_quietly_and_other_missing_resources_are_not():
    import logging

    from quantgate.commands.operator import OptionalKServe

    def record(msg):
        return logging.LogRecord("kopf._core.reactor.observation", logging.WARNING, __file__, 1, msg, None, None)

    from kopf._cogs.structs.references import Selector

    isvc = Selector("serving.kserve.io", "v1beta1", "inferenceservices")
    meval = Selector("quantgate.io", "v1alpha1", "modelevaluations")
    prefix = "Unresolved resources cannot be served (try creating their CRDs): "
    kserve = record(prefix + f"{isvc}")  # as kopf formats it
    assert OptionalKServe().filter(kserve) and kserve.levelno == logging.INFO
    assert "KServe is not installed" in kserve.getMessage()
    ours = record(prefix + f"{meval}, {isvc}")
    assert OptionalKServe().filter(ours) and ours.levelno == logging.WARNING  # our own CRD missing: still a warning


def test_a_finished_job_leaves_the_active_index():
    from kopf._core.engines.indexing import OperatorIndexer

    indexer = OperatorIndexer()
    running = {"metadata": {"name": "j"}, "status": {}}
    done = {"metadata": {"name": "j"}, "status": {"conditions": [{"type": "Complete", "status": "True"}]}}
    key = ("ns", "j", "uid")
    for body, expected in ((running, 1), (done, 0)):
        value = asyncio.run(handlers.quantgate_jobs(namespace="ns", name="j", body=body, labels={}))
        indexer.replace(key, value)  # what kopf does with a result that is not None
        assert len(list(indexer.index.get("active", []))) == expected
