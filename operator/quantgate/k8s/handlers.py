"""kopf handlers: thin triggers around `Reconciler.reconcile` (all logic lives there).

* every ModelEvaluation event → refresh its metrics; reconcile unless it is settled;
  a DELETED event drops its metrics (no on-delete handler: its Job and ConfigMaps go with it
  through ownerReferences);
* every event of a finished runner Job → reconcile its evaluation;
* one poller task (not kopf's per-object timers, which need a finalizer on every object)
  re-checks the evaluations that wait on something outside our watches (endpoints, a queue
  slot, a baseline in progress); the event handler keeps that set up to date;
* an index of unfinished runner Jobs gives the concurrency cap its count; kopf fills
  indices before it calls any other handler, so a restarted operator never over-starts.

`configure(settings)` must be called before `import`ing this module's handlers into a
running operator (quantgate.commands.operator does it).
"""

from __future__ import annotations

import asyncio
import copy
import logging

import kopf

from quantgate import metrics
from quantgate.api.v1alpha1 import GROUP, PLURAL, VERSION
from quantgate.k8s import names
from quantgate.k8s import status as st
from quantgate.k8s.reconcile import Reconciler
from quantgate.k8s.settings import Settings

log = logging.getLogger("quantgate.operator")
RUNNER_JOBS = {names.MANAGED_BY: names.MANAGER}
_state: dict = {}


def configure(settings: Settings, reconciler: Reconciler | None = None) -> None:
    _state["settings"] = settings
    if reconciler is not None:
        _state["reconciler"] = reconciler


def _reconciler() -> Reconciler:
    if "reconciler" not in _state:
        from quantgate.k8s.client import api_client
        from quantgate.k8s.cluster import Cluster

        _state["reconciler"] = Reconciler(Cluster(api_client()), _state.get("settings") or Settings(), metrics)
    return _state["reconciler"]


def _settings() -> Settings:
    return _state.get("settings") or Settings()


@kopf.on.startup()
def _configure_kopf(settings: kopf.OperatorSettings, **_) -> None:
    mine = _settings()
    settings.peering.standalone = True  # one replica; state is in the cluster, not in peers
    settings.posting.enabled = False  # we post our own Verdict/Blocked/Failed Events, nothing else
    settings.watching.server_timeout = 300  # re-list every 5 min at most: resync against missed events
    settings.watching.client_timeout = 330
    settings.watching.connect_timeout = 10
    settings.watching.reconnect_backoff = 1.0
    settings.networking.request_timeout = 30
    settings.networking.error_backoffs = (1, 2, 5, 10)
    settings.execution.max_workers = 32  # sync handlers: API calls and endpoint preflights run in threads
    # No handler here uses kopf's progress/diff-base storage or needs a finalizer (event and
    # index handlers do not); keep kopf's annotations under our prefix anyway.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=GROUP, key="last-handled-configuration")
    log.info("quantgate operator: namespaces=%s max_concurrent=%d endpoint_timeout=%ss",
             mine.namespaces or "all", mine.max_concurrent, mine.endpoint_timeout_s)


@kopf.on.login()
def _login(**kwargs):
    return kopf.login_via_client(**kwargs)


@kopf.index("batch", "v1", "jobs", labels=RUNNER_JOBS)
def quantgate_jobs(namespace, name, body, labels, **_):
    """Unfinished runner Jobs (key 'active')."""
    outcome, _msg = st.job_outcome(body)
    if outcome or body.get("metadata", {}).get("deletionTimestamp"):
        return None
    return {"active": {
        "namespace": namespace, "name": name,
        "evaluation": labels.get(names.LABEL_EVALUATION),
        "baselineKey": labels.get(names.LABEL_BASELINE_KEY),
        "runsBaseline": labels.get(names.LABEL_RUNS_BASELINE) == "true",
    }}


def _run(namespace: str, name: str, index, body=None) -> None:
    _state["jobs_index"] = index  # a live view kopf keeps current; the poller reads it too
    rec = _reconciler()
    rec.active.seen = list(index.get("active", []))
    rec.reconcile(namespace, name, copy.deepcopy(dict(body)) if body is not None else None)


def _unsettled(body, **_) -> bool:
    return not st.is_settled(body.get("status"), body.get("metadata", {}).get("generation", 1))


def _waiting(body, **_) -> bool:
    """Waiting on something outside our watches (endpoints, a queue slot, a new generation);
    a Running evaluation advances on its Job's events instead."""
    status = body.get("status") or {}
    return _unsettled(body) and not (
        status.get("phase") == "Running" and status.get("observedGeneration") == body["metadata"].get("generation"))


@kopf.on.event(GROUP, VERSION, PLURAL)
def evaluation_event(type, body, namespace, name, quantgate_jobs: kopf.Index, **_):
    key = (namespace, name)
    if type == "DELETED":
        _waiting_set.pop(key, None)
        metrics.forget(namespace, name)
        _reconciler().forget(namespace, name)
        return
    metrics.observe(namespace, name, body.get("status"))
    if _waiting(body):  # a Running evaluation advances on its Job's events
        _waiting_set[key] = None
        _run(namespace, name, quantgate_jobs, body)
    else:
        _waiting_set.pop(key, None)


# Evaluations waiting on endpoints, a queue slot or a baseline (insertion-ordered set).
_waiting_set: dict[tuple[str, str], None] = {}


async def _poll_waiting(interval: float, parallel: int) -> None:
    """Every `interval` seconds, reconcile each waiting evaluation again (`parallel` at once:
    a preflight against a down endpoint blocks its thread for seconds)."""
    gate = asyncio.Semaphore(parallel)

    async def one(namespace: str, name: str) -> None:
        async with gate:
            try:
                await asyncio.to_thread(_run, namespace, name, _state.get("jobs_index") or {})
            except Exception:  # one evaluation's error must not stop the others' polling
                log.exception("poll of %s/%s failed", namespace, name)

    while True:
        await asyncio.sleep(interval)
        await asyncio.gather(*(one(ns, name) for ns, name in list(_waiting_set)))


@kopf.on.startup()
async def _start_poller(**_) -> None:
    _state["poller"] = asyncio.get_running_loop().create_task(
        _poll_waiting(_settings().poll_interval_s, parallel=16))


@kopf.on.cleanup()
async def _stop_poller(**_) -> None:
    task = _state.pop("poller", None)
    if task is not None:
        task.cancel()


@kopf.on.event("batch", "v1", "jobs", labels=RUNNER_JOBS)
def job_event(type, body, namespace, labels, quantgate_jobs: kopf.Index, **_):
    evaluation = labels.get(names.LABEL_EVALUATION)
    outcome, _msg = st.job_outcome(body)
    if outcome or type == "DELETED":
        _reconciler().active.finished(namespace, body["metadata"]["name"])
    if not evaluation:
        return
    if outcome or type == "DELETED":  # finished, or gone (a Running evaluation then fails: JobMissing)
        _run(namespace, evaluation, quantgate_jobs)
