"""The operator's shortcuts under load: preflight cache, credential refresh, poller."""

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


def test_preflight_success_is_cached_for_its_ttl_and_failures_never():
    checks = Checks(answers=["down", None])
    cache = endpoints.PreflightCache(ttl_s=30, check=checks)
    assert cache("http://a", "m", None, 1) == "down"
    assert cache("http://a", "m", None, 1) is None  # a failure was not remembered
    assert cache("http://a", "m", None, 1) is None
    assert len(checks.calls) == 2  # the success was
    cache("http://a", "other-model", None, 1)
    cache("http://a", "m", "sk-key", 1)
    assert len(checks.calls) == 4  # model and key are part of the endpoint's identity


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
    assert "sk-secret-123" not in repr(cache._ok_until) + repr(cache._locks)


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


def test_poller_reconciles_only_due_evaluations_no_event_is_handling(monkeypatch):
    reconciled = []
    monkeypatch.setattr(handlers, "_run", lambda ns, name, *a, **k: reconciled.append(name))
    monkeypatch.setattr(handlers, "_waiting_set", {})
    monkeypatch.setattr(handlers, "_in_flight", set())
    monkeypatch.setitem(handlers._state, "executor", None)
    long_ago = time.monotonic() - 100
    handlers._waiting_set.update({("ns", "due"): long_ago, ("ns", "busy"): long_ago,
                                  ("ns", "just-reconciled"): time.monotonic() + 100})
    handlers._in_flight.add(("ns", "busy"))

    async def one_round():
        task = asyncio.create_task(handlers._poll_waiting(0.05, parallel=4))
        await asyncio.sleep(0.12)
        task.cancel()

    asyncio.run(one_round())
    assert set(reconciled) == {"due"}


def test_kopf_diff_base_is_not_built():
    body = {"metadata": {"name": "a"}, "spec": {"big": list(range(1000))}}
    assert handlers._NoDiffBase(prefix="quantgate.io", key="k").build(body=body) == {}


@pytest.mark.parametrize("flag", ["--workers", "--preflight-cache"])
def test_operator_flags_reject_bad_values(flag, capsys):
    from quantgate.cli import main

    assert main(["operator", flag, "-1"]) == 2
    assert flag in capsys.readouterr().err


def test_a_finished_job_reconciles_from_the_last_running_body_seen(monkeypatch):
    calls = []
    monkeypatch.setattr(handlers, "_run", lambda ns, name, *a, **k: calls.append((name, k)))
    monkeypatch.setattr(handlers, "_running", {})
    monkeypatch.setattr(handlers.metrics, "observe", lambda *a: None)
    monkeypatch.setitem(handlers._state, "executor", None)

    class Rec:
        class active:
            @staticmethod
            def finished(ns, name):
                pass

    monkeypatch.setitem(handlers._state, "reconciler", Rec)
    running = {"metadata": {"name": "a", "namespace": "ns", "generation": 2, "resourceVersion": "7"},
               "spec": {}, "status": {"phase": "Running", "observedGeneration": 2}}
    job = {"metadata": {"name": "a-g2-x"}, "status": {"conditions": [{"type": "Complete", "status": "True"}]}}

    async def events():
        await handlers.evaluation_event(type="MODIFIED", body=running, namespace="ns", name="a",
                                        quantgate_jobs={}, inference_services={})
        await handlers.job_event(type="MODIFIED", body=job, namespace="ns", labels={"quantgate.io/evaluation": "a"},
                                 quantgate_jobs={})
        settled = {**running, "status": {"phase": "Succeeded", "observedGeneration": 2, "verdict": "Ship"}}
        await handlers.evaluation_event(type="MODIFIED", body=settled, namespace="ns", name="a",
                                        quantgate_jobs={}, inference_services={})

    asyncio.run(events())
    assert calls == [("a", {"body": running, "job": job})]  # no reconcile for the Running echo itself
    assert handlers._running == {}  # a settled evaluation is not kept
