"""kopf handlers: thin triggers around `Reconciler.reconcile` (all logic lives there).

* every ModelEvaluation event → refresh its metrics; reconcile unless it is settled;
  a DELETED event drops its metrics (no on-delete handler: its Job and ConfigMaps go with it
  through ownerReferences);
* every event of a finished runner Job → reconcile its evaluation;
* one poller task (not kopf's per-object timers, which need a finalizer on every object)
  re-checks the evaluations that wait on something outside our watches (endpoints, a queue
  slot, a baseline in progress); the event handler keeps that set up to date;
* an index of unfinished runner Jobs gives the concurrency cap its count; kopf fills
  indices before it calls any other handler, so a restarted operator never over-starts;
* an index of InferenceServices (readiness and URL only) is the reconciler's informer cache:
  no GET per evaluation and role (it falls back to a GET for one the index lacks);
* handlers are `async` and cheap for the many events that need no work (status echoes,
  Job progress); only a reconcile goes to kopf's thread pool, where its API calls block.

`configure(settings)` must be called before `import`ing this module's handlers into a
running operator (quantgate.commands.operator does it).
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import time

import kopf

from quantgate import metrics
from quantgate.api.v1alpha1 import GROUP, PLURAL, VERSION
from quantgate.k8s import names
from quantgate.k8s.endpoints import KSERVE_GROUP, KSERVE_PLURAL, KSERVE_VERSION
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
    if "reconciler" not in _state:  # made at start-up, in the event loop's thread
        from quantgate.k8s.client import api_client
        from quantgate.k8s.cluster import Cluster

        _state["reconciler"] = Reconciler(Cluster(api_client(_settings().workers)), _settings(), metrics)
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
    # Reconciles run in threads and mostly wait on the API server and endpoint preflights;
    # 32 threads made a burst of new evaluations queue for a thread (seconds at 200).
    settings.execution.max_workers = mine.workers
    _state["executor"] = settings.execution.executor
    # No handler here uses kopf's progress/diff-base storage or needs a finalizer (event and
    # index handlers do not); keep kopf's annotations under our prefix anyway.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = _NoDiffBase(prefix=GROUP, key="last-handled-configuration")
    _reconciler()  # now, not in the first 32 handler threads at once (it imports the API client)
    log.info("quantgate operator: namespaces=%s max_concurrent=%d endpoint_timeout=%ss",
             mine.namespaces or "all", mine.max_concurrent, mine.endpoint_timeout_s)


class _NoDiffBase(kopf.AnnotationsDiffBaseStorage):
    """kopf builds a diff base (a deep copy of the whole object) on every event, for
    on.create/update/field handlers; this operator has none (events and indices only), and
    those copies were over a quarter of its CPU under a profiler in the operator bench. An
    empty essence keeps kopf's machinery working without them."""

    def build(self, *, body, extra_fields=None):
        return {}


@kopf.on.login()
def _login(**kwargs):
    return kopf.login_via_client(**kwargs)


@kopf.index("batch", "v1", "jobs", labels=RUNNER_JOBS)
async def quantgate_jobs(namespace, name, body, labels, **_):
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


@kopf.index(KSERVE_GROUP, KSERVE_VERSION, KSERVE_PLURAL)
async def inference_services(namespace, name, body, **_):
    """What endpoint resolution reads of an InferenceService, keyed by (namespace, name)."""
    meta = body.get("metadata", {})
    return {(namespace, name): {
        "metadata": {"namespace": namespace, "name": name, "uid": meta.get("uid"),
                     "generation": meta.get("generation")},
        "status": _copy(body.get("status") or {}),
    }}


def _isvc_lookup(index):
    def lookup(namespace: str, name: str):
        found = list(index.get((namespace, name), ()))  # one per key; several only mid-update
        return found[-1] if found else None
    return lookup


def _run(namespace: str, name: str, jobs, isvcs=None, body=None, job=None) -> None:
    """Reconcile one evaluation (in a worker thread). `jobs`/`isvcs`: kopf's live indices."""
    _state["jobs_index"] = jobs  # live views kopf keeps current; the poller reads them too
    if isvcs is not None:
        _state["isvc_index"] = isvcs
    rec = _reconciler()
    rec.active.seen = list(jobs.get("active", []))
    index = _state.get("isvc_index")
    rec.reconcile(namespace, name, _copy(body), job=_copy(job),
                  isvc_cache=_isvc_lookup(index) if index is not None else None)


def _copy(body) -> dict | None:
    """A private plain-dict copy of a kopf body (JSON round trip: several times cheaper than
    copy.deepcopy for API objects, which are JSON anyway)."""
    return None if body is None else json.loads(json.dumps(dict(body)))


async def _in_thread(fn, *args, **kwargs) -> None:
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(_state.get("executor"), functools.partial(fn, *args, **kwargs))


def _unsettled(body, **_) -> bool:
    return not st.is_settled(body.get("status"), body.get("metadata", {}).get("generation", 1))


def _waiting(body, **_) -> bool:
    """Waiting on something outside our watches (endpoints, a queue slot, a new generation);
    a Running evaluation advances on its Job's events instead."""
    return _unsettled(body) and not _is_running(body)


@kopf.on.event(GROUP, VERSION, PLURAL)
async def evaluation_event(type, body, namespace, name, quantgate_jobs: kopf.Index,
                           inference_services: kopf.Index, **_):
    key = (namespace, name)
    if type == "DELETED":
        _waiting_set.pop(key, None)
        _running.pop(key, None)
        metrics.forget(namespace, name)
        _reconciler().forget(namespace, name)
        return
    metrics.observe(namespace, name, body.get("status"))
    if _waiting(body):  # a Running evaluation advances on its Job's events
        _waiting_set[key] = time.monotonic()
        _in_flight.add(key)  # the poller leaves it alone while this reconcile waits for a thread
        try:
            await _in_thread(_run, namespace, name, quantgate_jobs, inference_services, body=body)
        finally:
            _in_flight.discard(key)
            if key in _waiting_set:  # still waiting: the next poll is an interval from now
                _waiting_set[key] = time.monotonic()
    else:
        _waiting_set.pop(key, None)
    if _is_running(body):  # its Job's completion reconciles from this copy instead of a GET
        _running[key] = _copy(body)
    else:
        _running.pop(key, None)


def _is_running(body) -> bool:
    status = body.get("status") or {}
    return status.get("phase") == "Running" and status.get("observedGeneration") == body["metadata"].get("generation")


# The latest body of each Running evaluation (a stale one costs a Conflict and a GET).
_running: dict[tuple[str, str], dict] = {}
# Evaluations waiting on endpoints, a queue slot or a baseline, in arrival order, with when
# each was last reconciled (time.monotonic()); and those an event handler is reconciling now.
_waiting_set: dict[tuple[str, str], float] = {}
_in_flight: set[tuple[str, str]] = set()


async def _poll_waiting(interval: float, parallel: int) -> None:
    """Every `interval` seconds, reconcile again each waiting evaluation that no event has
    reconciled for `interval` (`parallel` at once: a preflight against a down endpoint
    blocks its thread for seconds)."""
    gate = asyncio.Semaphore(parallel)

    async def one(namespace: str, name: str) -> None:
        async with gate:
            if (namespace, name) in _waiting_set:
                _waiting_set[(namespace, name)] = time.monotonic()
            try:
                await _in_thread(_run, namespace, name, _state.get("jobs_index") or {})
            except Exception:  # one evaluation's error must not stop the others' polling
                log.exception("poll of %s/%s failed", namespace, name)

    while True:
        await asyncio.sleep(interval)
        due = time.monotonic() - interval
        await asyncio.gather(*(one(ns, name) for (ns, name), last in list(_waiting_set.items())
                               if last <= due and (ns, name) not in _in_flight))


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
async def job_event(type, body, namespace, labels, quantgate_jobs: kopf.Index, **_):
    evaluation = labels.get(names.LABEL_EVALUATION)
    outcome, _msg = st.job_outcome(body)
    if not (outcome or type == "DELETED"):  # progress of a running Job: nothing to do
        return
    _reconciler().active.finished(namespace, body["metadata"]["name"])
    if evaluation:  # finished (its body saves a GET), or gone (a Running evaluation then fails: JobMissing)
        await _in_thread(_run, namespace, evaluation, quantgate_jobs, body=_running.get((namespace, evaluation)),
                         job=body if outcome else None)
