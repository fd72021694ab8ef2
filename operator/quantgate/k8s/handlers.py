"""kopf handlers: they only enqueue keys; one work queue reconciles them.

* every watch event — a ModelEvaluation, a runner Job finishing or going away, an
  InferenceService changing — only puts the key of each evaluation it concerns into the
  work queue (quantgate.k8s.workqueue): one key is reconciled by one worker at a time,
  errors retry with capped exponential backoff and a log line, and the reconciler's answer
  is the key's requeue-after (every unfinished phase has one, Running included);
* `_reconcile_key` is the one code path that advances an evaluation: it runs
  `Reconciler.reconcile` in kopf's thread pool with the latest body the watch delivered
  (an informer cache: a stale copy only costs a Conflict and a re-read);
* a periodic full resync (`--resync`, default 5 min) lists every evaluation from the API
  server and enqueues each unsettled one, healing any missed event (kopf's watch resumes
  from its last resourceVersion and never re-lists by itself);
* an index of unfinished runner Jobs gives the concurrency cap its count; kopf fills
  indices before it calls any other handler, so a restarted operator never over-starts;
* an index of InferenceServices (readiness and URL only) is the reconciler's informer cache.

Results ConfigMaps and Secrets are not watched: a results ConfigMap carries up to megabytes
of payload per event, and a cluster-wide watch of Secrets would widen the operator's
permissions to every Secret's value. Their consumers wake up on the runner Job finishing
(which is when results appear) and on the requeue-after of the wait (a missing Secret).

`configure(settings)` must be called before `import`ing this module's handlers into a
running operator (quantgate.commands.operator does it).
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
import time

import kopf

from quantgate import metrics
from quantgate.api.matrix import PLURAL as MATRIX_PLURAL
from quantgate.api.v1alpha1 import GROUP, PLURAL, VERSION
from quantgate.k8s import matrix as mx
from quantgate.k8s import names
from quantgate.k8s.endpoints import KSERVE_GROUP, KSERVE_PLURAL, KSERVE_VERSION
from quantgate.k8s import status as st
from quantgate.k8s.matrix_reconcile import MatrixReconciler, is_settled as matrix_settled
from quantgate.k8s.reconcile import Reconciler
from quantgate.k8s.settings import Settings
from quantgate.k8s.shutdown import Inflight, arm as arm_exit_deadline
from quantgate.k8s.workqueue import WorkQueue

log = logging.getLogger("quantgate.operator")
RUNNER_JOBS = {names.MANAGED_BY: names.MANAGER}
_state: dict = {}
_inflight = Inflight()  # reconciles running in kopf's executor threads (a stuck one outlives its worker task)
# Test hook (integration tests of /healthz): while the file named here exists, every
# reconcile blocks, as a wedged worker would.
WEDGE_ENV = "QUANTGATE_TEST_WEDGE_FILE"


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


def _matrix_reconciler() -> MatrixReconciler:
    if "matrix_reconciler" not in _state:
        _state["matrix_reconciler"] = MatrixReconciler(_reconciler().cluster, _settings(), metrics)
    return _state["matrix_reconciler"]


def _settings() -> Settings:
    return _state.get("settings") or Settings()


def work_queue() -> WorkQueue:
    if "queue" not in _state:
        s = _settings()
        _state["queue"] = WorkQueue(_reconcile_key, workers=s.workers, backoff_base_s=s.backoff_base_s,
                                    backoff_cap_s=s.backoff_max_s)
    return _state["queue"]


@kopf.on.startup()
def _configure_kopf(settings: kopf.OperatorSettings, **_) -> None:
    mine = _settings()
    settings.peering.standalone = True  # no kopf peering: one active replica through our own Lease
    settings.posting.enabled = False  # we post our own Verdict/Blocked/Failed Events, nothing else
    # kopf resumes a watch from its last resourceVersion when the server closes it (it does
    # not re-list); missed events are healed by our own resync (see _resync).
    settings.watching.server_timeout = 300
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
    log.info("quantgate operator: namespaces=%s max_concurrent=%d endpoint_timeout=%ss resync=%ss",
             mine.namespaces or "all", mine.max_concurrent, mine.endpoint_timeout_s, mine.resync_s)


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
    """Unfinished runner Jobs (key 'active'). A finished one returns an empty mapping: kopf
    1.45 keeps an object's previous index value when the function returns None, so None
    would leave a finished Job counted against --max-concurrent for good."""
    outcome, _msg = st.job_outcome(body)
    if outcome or body.get("metadata", {}).get("deletionTimestamp"):
        return {}
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


def _copy(body) -> dict | None:
    """A private plain-dict copy of a kopf body (JSON round trip: several times cheaper than
    copy.deepcopy for API objects, which are JSON anyway)."""
    return None if body is None else json.loads(json.dumps(dict(body)))


# ---- what the watches tell us (event loop thread only) -------------------------------
# The latest body of each unsettled evaluation, as its watch delivered it.
_bodies: dict[tuple[str, str], dict] = {}
# Finished runner Jobs by (namespace, Job name), until their evaluation settles.
_finished_jobs: dict[tuple[str, str], dict] = {}
# Who waits on what: (namespace, kind, name) -> evaluation keys; kind "isvc" or "meval".
_dependents: dict[tuple[str, str, str], set[tuple[str, str]]] = {}
_depends_on: dict[tuple[str, str], set[tuple[str, str, str]]] = {}


def _dependencies(namespace: str, spec: dict) -> set[tuple[str, str, str]]:
    """What an evaluation waits on, from its typed spec (none for an invalid one: the
    reconcile fails it as InvalidSpec)."""
    from pydantic import ValidationError

    from quantgate.api.v1alpha1 import ModelEvaluationSpec

    try:
        typed = ModelEvaluationSpec.model_validate(spec)
    except ValidationError:
        return set()
    deps = {(namespace, "isvc", s.inference_service_ref.name)
            for s in (typed.baseline, typed.candidate) if s.inference_service_ref is not None}
    if typed.baseline.results_from:
        deps.add((namespace, "meval", typed.baseline.results_from))
    return deps


def _track(key: tuple[str, str], deps: set) -> None:
    for dep in _depends_on.pop(key, set()) - deps:
        holders = _dependents.get(dep)
        if holders is not None:
            holders.discard(key)
            if not holders:
                _dependents.pop(dep, None)
    for dep in deps:
        _dependents.setdefault(dep, set()).add(key)
    if deps:
        _depends_on[key] = deps


def _wake(dep: tuple[str, str, str]) -> None:
    for key in list(_dependents.get(dep, ())):
        work_queue().add(key)


def _unsettled(body) -> bool:
    """Routing only: phase and observedGeneration, parsed (the reconcile parses the whole status)."""
    return not st.settled_on_the_wire(body.get("status"), body.get("metadata", {}).get("generation", 1))


def observe_evaluation(type: str, namespace: str, name: str, body) -> None:
    """Record what an evaluation event says and enqueue what it concerns."""
    key = (namespace, name)
    owner = mx.owner_name(body)
    if owner is not None:  # a matrix's child: the matrix re-reads its rows
        work_queue().add(matrix_key(namespace, owner))
    if type == "DELETED":
        _bodies.pop(key, None)
        _last_full.pop(key, None)
        _track(key, set())
        work_queue().forget(key)
        metrics.forget(namespace, name)
        _reconciler().forget(namespace, name)
        _wake((namespace, "meval", name))
        return
    metrics.observe(namespace, name, body.get("status"))
    if _unsettled(body):
        _bodies[key] = _copy(body)
        _track(key, _dependencies(namespace, body.get("spec") or {}))
        work_queue().add(key)
    else:
        previous = _bodies.pop(key, None) or {}
        _last_full.pop(key, None)
        _track(key, set())
        for status in (body.get("status") or {}, previous.get("status") or {}):
            if status.get("jobName"):
                _finished_jobs.pop((namespace, status["jobName"]), None)
        _wake((namespace, "meval", name))  # resultsFrom waiters


# ---- ModelEvaluationMatrices: keys ("matrix", namespace, name) in the same work queue -----
def matrix_key(namespace: str, name: str) -> tuple[str, str, str]:
    return ("matrix", namespace, name)


def observe_matrix(type: str, namespace: str, name: str, body) -> None:
    key = matrix_key(namespace, name)
    if type == "DELETED":
        work_queue().forget(key)
        metrics.forget_matrix(namespace, name)
        return
    metrics.observe_matrix(namespace, name, (body or {}).get("status"))
    work_queue().add(key)


@kopf.on.event(GROUP, VERSION, MATRIX_PLURAL)
async def matrix_event(type, body, namespace, name, **_):
    observe_matrix(type, namespace, name, body)


@kopf.on.event(GROUP, VERSION, PLURAL)
async def evaluation_event(type, body, namespace, name, quantgate_jobs: kopf.Index,
                           inference_services: kopf.Index, **_):
    _state["jobs_index"], _state["isvc_index"] = quantgate_jobs, inference_services
    observe_evaluation(type, namespace, name, body)


@kopf.on.event("batch", "v1", "jobs", labels=RUNNER_JOBS)
async def job_event(type, body, namespace, labels, quantgate_jobs: kopf.Index, **_):
    _state["jobs_index"] = quantgate_jobs
    outcome, _msg = st.job_outcome(body)
    if not (outcome or type == "DELETED"):  # progress of a running Job: nothing to do
        return
    job_name = body["metadata"]["name"]
    _reconciler().active.finished(namespace, job_name)
    if type == "DELETED":
        _finished_jobs.pop((namespace, job_name), None)
    else:
        _finished_jobs[(namespace, job_name)] = _copy(body)
    evaluation = labels.get(names.LABEL_EVALUATION)
    if evaluation:  # finished (its results are there), or gone (a Running evaluation then fails: JobMissing)
        work_queue().add((namespace, evaluation))
    key = labels.get(names.LABEL_BASELINE_KEY)
    if key and labels.get(names.LABEL_RUNS_BASELINE) == "true":  # others wait for this baseline
        for other, other_body in list(_bodies.items()):
            if other[0] == namespace and (other_body.get("status") or {}).get("reason") == "BaselineInProgress":
                work_queue().add(other)
    # a slot is free: the first few queued evaluations in line may start (the rest come back
    # on their own requeue-after; waking all of them on every finished Job would cost one
    # reconcile per queued evaluation per Job)
    queued = [(_line(b), k) for k, b in _bodies.items() if (b.get("status") or {}).get("reason") == "Queued"]
    for _order, other in sorted(queued)[:WAKE_QUEUED]:
        work_queue().add(other)


WAKE_QUEUED = 5


def _line(body: dict) -> tuple:
    """A queued evaluation's place in line (the runner queue's order)."""
    meta = body["metadata"]
    return ((body.get("status") or {}).get("startedAt") or "", meta.get("creationTimestamp") or "",
            meta.get("namespace") or "", meta.get("name") or "")


@kopf.on.event(KSERVE_GROUP, KSERVE_VERSION, KSERVE_PLURAL)
async def inference_service_event(namespace, name, **_):
    _wake((namespace, "isvc", name))


# ---- the one reconcile path ----------------------------------------------------------
async def _reconcile_key(key: tuple) -> float | None:
    if len(key) == 3:  # a matrix: always read from the API server (they are few)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(_state.get("executor"), _in_thread, key,
                                          _matrix_reconciler().reconcile, key[1], key[2])
    namespace, name = key
    body = _bodies.get(key)
    if body is None:
        return None  # settled or deleted since it was enqueued (the resync re-reads every evaluation)
    status = body.get("status") or {}
    job_name = status.get("jobName")
    job = _finished_jobs.get((namespace, job_name)) if job_name else None
    running_s = _settings().running_requeue_s
    since = time.monotonic() - _last_full.get(key, float("-inf"))
    if job is None and since < running_s and _running_on_live_job(namespace, body):
        # the status echo of a Running evaluation whose Job the index shows unfinished:
        # nothing to do (a full reconcile, with a GET of the Job, comes every running_s)
        return running_s - since
    loop = asyncio.get_running_loop()
    requeue = await loop.run_in_executor(_state.get("executor"),
                                         functools.partial(_in_thread, key, _run, namespace, name, body, job))
    _last_full[key] = time.monotonic()
    return requeue


_last_full: dict[tuple[str, str], float] = {}  # when each key was last fully reconciled


def _running_on_live_job(namespace: str, body: dict) -> bool:
    status = body.get("status") or {}
    if status.get("phase") != "Running" or status.get("observedGeneration") != body["metadata"].get("generation"):
        return False
    active = (_state.get("jobs_index") or {}).get("active", [])
    return any(j["namespace"] == namespace and j["name"] == status.get("jobName") for j in active)


def _in_thread(key: tuple, fn, *args):
    with _inflight.running("reconcile " + "/".join(key)):
        return fn(*args)


def _run(namespace: str, name: str, body: dict | None, job: dict | None) -> float | None:
    """Reconcile one evaluation (in a worker thread) with kopf's live indices."""
    wedge = os.environ.get(WEDGE_ENV)
    if wedge and os.path.exists(wedge):
        log.warning("test hook: reconcile of %s/%s wedged while %s exists", namespace, name, wedge)
    while wedge and os.path.exists(wedge):
        time.sleep(0.5)
    rec = _reconciler()
    rec.active.seen = list((_state.get("jobs_index") or {}).get("active", []))
    index = _state.get("isvc_index")
    return rec.reconcile(namespace, name, body, job=job,
                         isvc_cache=_isvc_lookup(index) if index is not None else None)


# ---- resync ---------------------------------------------------------------------------
def _scan_evaluations() -> tuple[int, set[tuple[str, str]], dict[tuple[str, str], dict]]:
    """Page through every evaluation (a worker thread): how many, their keys, and the bodies of
    the unsettled ones (a settled body is dropped with its page, so the resync never holds
    every full body at once)."""
    count, seen, unsettled = 0, set(), {}
    for page in _reconciler().cluster.evaluation_pages(_settings().namespaces):
        for body in page:
            meta = body["metadata"]
            key = (meta["namespace"], meta["name"])
            count += 1
            seen.add(key)
            if _unsettled(body):
                unsettled[key] = body
    return count, seen, unsettled


async def _resync(period: float) -> None:
    """Every `period` seconds: list every evaluation (all watched namespaces, page by page) and
    enqueue the unsettled ones with their listed body; drop cached bodies of evaluations that
    are gone."""
    loop = asyncio.get_running_loop()
    while True:
        await asyncio.sleep(period)
        try:
            count, seen, unsettled = await loop.run_in_executor(_state.get("executor"), _scan_evaluations)
        except Exception as exc:  # the next period tries again
            from quantgate.k8s.workqueue import describe

            log.warning("resync failed, next in %.0fs: %s", period, describe(exc))
            continue
        for key, body in unsettled.items():
            current = _bodies.get(key)
            if current is None or current["metadata"].get("resourceVersion") != body["metadata"].get("resourceVersion"):
                _bodies[key] = body
                _track(key, _dependencies(key[0], body.get("spec") or {}))
            work_queue().add(key)
        del unsettled
        for key in [k for k in _bodies if k not in seen]:
            observe_evaluation("DELETED", key[0], key[1], None)
        try:
            matrices = await loop.run_in_executor(_state.get("executor"), _reconciler().cluster.list_matrices,
                                                  _settings().namespaces)
        except Exception as exc:
            from quantgate.k8s.workqueue import describe

            log.warning("resync of matrices failed, next in %.0fs: %s", period, describe(exc))
            matrices = []
        for body in matrices:
            if not matrix_settled(body):
                work_queue().add(matrix_key(body["metadata"]["namespace"], body["metadata"]["name"]))
        _state["last_resync"] = time.monotonic()
        log.info("resync: %d evaluations, %d unsettled; %d matrices", count, len(_bodies), len(matrices))


async def _tick() -> None:
    """The event loop's heartbeat (the watches run on this loop): /healthz reads it."""
    while True:
        _state["loop_tick"] = time.monotonic()
        await asyncio.sleep(1.0)


def healthy() -> bool:
    """False when the event loop (kopf's watches) stopped ticking or the queue's workers had
    work and finished none for `health_stall_s`. True before the operator starts (a standby
    waiting for the lease is healthy)."""
    stall = _settings().health_stall_s
    tick = _state.get("loop_tick")
    if tick is not None and time.monotonic() - tick > stall:
        return False
    queue = _state.get("queue")
    return not (queue is not None and queue.stalled(stall))


@kopf.on.startup()
async def _start_queue(**_) -> None:
    loop = asyncio.get_running_loop()
    work_queue().start()
    _state["tasks"] = [loop.create_task(_resync(_settings().resync_s)), loop.create_task(_tick())]


def arm_shutdown_deadline() -> None:
    """The process exits within `shutdown_deadline_s` from now, even if a reconcile is stuck
    (quantgate.k8s.shutdown). kopf's cleanup calls it; so does the command when kopf returns."""
    arm_exit_deadline(_settings().shutdown_deadline_s, _inflight.describe)


@kopf.on.cleanup()
async def _stop_queue(**_) -> None:
    arm_shutdown_deadline()  # first: what follows may wait on the stuck work
    for task in _state.pop("tasks", []):
        task.cancel()
    queue = _state.get("queue")
    if queue is not None:
        await queue.stop()
