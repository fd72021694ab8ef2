"""The reconciler: level-based, all state in the cluster.

`Reconciler.reconcile(namespace, name)` reads the ModelEvaluation, its Job and the objects
it depends on, and moves it at most a few steps along

    (new generation) → Pending → WaitingForEndpoints → Running → Succeeded | Failed

Each step is one status merge patch guarded by the resourceVersion it was computed from,
the Job name is a function of (evaluation, generation) and creation is create-if-absent,
so a restarted operator (or two triggers racing) never makes a second Job for a
generation nor loses or duplicates a verdict. It returns when to look again (a requeue-after
for every unfinished phase); the work queue (quantgate.k8s.workqueue) decides *when* to call
it and retries it with backoff when it raises.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone

from pydantic import ValidationError

from quantgate.api.v1alpha1 import ModelEvaluationSpec, ModelEvaluationStatus, Phase
from quantgate.errors import QuantgateError
from quantgate.k8s import (ca_bundles, code_job, egress_policy, endpoints, kueue, memory, names, scaleout, stages,
                           trust, verified)
from quantgate.k8s import status as st
from quantgate.k8s.cache import baseline_key
from quantgate.k8s.cluster import Cluster, Conflict
from quantgate.k8s.job import Evaluation, build_job
from quantgate.k8s.results_channel import ResultsError
from quantgate.k8s.settings import Settings
from quantgate.k8s.trust import Untrusted

log = logging.getLogger("quantgate.reconcile")


@dataclass(frozen=True)
class Observed:
    """The evaluation as last read or written: the object as the API server returned it (its
    metadata: names, generation, the resourceVersion a patch is guarded by) and its status,
    parsed once into the API type."""

    body: dict
    status: ModelEvaluationStatus

    @property
    def meta(self) -> dict:
        return self.body["metadata"]

    @property
    def generation(self) -> int:
        return self.body["metadata"].get("generation", 1)


@dataclass(frozen=True)
class Wait:
    phase: Phase
    reason: str
    message: str


@dataclass(frozen=True)
class Ready:
    baseline: endpoints.Resolved | None  # None: reuse `reused`
    candidate: endpoints.Resolved
    key: str | None
    reused: str | None
    egress: egress_policy.Egress | None = None  # a code evaluation's: its Job's NetworkPolicy egress
    reused_entry: dict | None = None  # {name, uid, sha256} of `reused` as its producer vouched for it


@dataclass
class ActiveJobs:
    """Runner Jobs not finished yet, as the operator's Job index sees them (`seen`), plus the
    ones this process just created and the index may not show yet (`created`, dropped once the
    index shows them, once they finish, or after a grace period)."""

    seen: list[dict] = field(default_factory=list)
    created: dict[tuple[str, str], dict] = field(default_factory=dict)
    grace_s: float = 30.0

    def all(self) -> list[dict]:
        keys = {(j["namespace"], j["name"]) for j in self.seen}
        now = time.monotonic()
        for key, job in list(self.created.items()):
            if key in keys or now - job["at"] > self.grace_s:
                self.created.pop(key, None)
        return self.seen + list(self.created.values())

    def finished(self, namespace: str, name: str) -> None:
        self.created.pop((namespace, name), None)


@dataclass
class RunnerQueue:
    """Evaluations waiting for a runner slot, served first come, first served: by when their
    generation started waiting (status.startedAt), then creation, then name. Kept in memory
    and refreshed by every reconcile of a queued evaluation (its requeue-after brings each one back every
    poll interval), so an entry nobody refreshes for `stale_s` (a missed deletion) stops
    holding the line. After a restart the order holds again once each queued evaluation has
    been reconciled once."""

    stale_s: float = 60.0
    entries: dict[tuple[str, str], tuple[tuple, float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def ahead_of(self, key: tuple[str, str], order: tuple) -> int:
        """Register `key` (or refresh it) and count live entries before it."""
        now = time.monotonic()
        with self._lock:
            self.entries[key] = (order, now)
            return sum(1 for k, (o, seen) in self.entries.items()
                       if k != key and o < order and now - seen <= self.stale_s)

    def leave(self, namespace: str, name: str) -> None:
        with self._lock:
            self.entries.pop((namespace, name), None)


def results_refs(job_name: str, reused: str | None) -> dict:
    """status.resultsRef of a runner Job: its own ConfigMaps, or a reused baseline's."""
    return {"baseline": reused or names.results_name(job_name, "baseline"),
            "candidate": names.results_name(job_name, "candidate"), "baselineReused": bool(reused)}


def reused_baseline(job: dict) -> str | None:
    return (job["metadata"].get("annotations") or {}).get(names.ANN_BASELINE_RESULTS)


def _model_error(exc: ValidationError, prefix: str = "spec.") -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err.get("loc", ()))
    return f"{prefix}{where}: {err.get('msg')}" if where else str(err.get("msg"))


def policy_of(spec: ModelEvaluationSpec):
    from quantgate.decision.model import Policy

    metrics = {t.name: t.metric for t in spec.tasks or [] if t.metric}
    return Policy(profile=spec.profile, task_limits=spec.task_limits or {}, thresholds=spec.thresholds,
                  drop_mode=spec.drop_mode, aggregate=spec.aggregate, metrics=metrics,
                  max_choice_kld=spec.max_choice_kld, min_top1_agreement=spec.min_top1_agreement)


class Reconciler:
    def __init__(self, cluster: Cluster, settings: Settings, metrics=None):
        self.cluster = cluster
        self.settings = settings
        self.metrics = metrics
        self._locks: dict[tuple[str, str], threading.Lock] = {}
        self._locks_guard = threading.Lock()
        self._capacity = threading.Lock()  # count-then-create of Jobs is one critical section
        # Reading, decoding and comparing two full result sets is CPU-bound (one GIL) and holds
        # tens of MiB: a burst of completions computes a few verdicts at a time, not hundreds at
        # once (the peak memory, which the process keeps, grew with the burst).
        self._deciding = threading.BoundedSemaphore(settings.deciding)
        self.active = ActiveJobs()
        self.queue = RunnerQueue(stale_s=max(60.0, 5 * settings.poll_interval_s))
        self.preflight = endpoints.PreflightCache(settings.preflight_cache_s,
                                                  failure_ttl_s=settings.preflight_failure_cache_s,
                                                  parallel=settings.preflight_parallel)
        self._seen = threading.local()  # the status (typed) this thread's reconcile last read or wrote

    # ---- entry point -------------------------------------------------------------------
    def _lock(self, key) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(key, threading.Lock())

    def forget(self, namespace: str, name: str) -> None:
        with self._locks_guard:
            self._locks.pop((namespace, name), None)
        self.queue.leave(namespace, name)

    def reconcile(self, namespace: str, name: str, body: dict | None = None, job: dict | None = None,
                  isvc_cache=None) -> float | None:
        """Move the evaluation along; return seconds until it should be looked at again
        (None: settled or gone, only an event can give it work). Raises on API errors and on
        five conflicts in a row (the work queue retries with backoff and logs it).

        `body`: the object as the watch last delivered it (saves a GET); a stale one only
        costs a Conflict and a re-read. `job`: its finished runner Job as the watch delivered
        it (saves a GET). `isvc_cache(namespace, name)`: InferenceServices from the operator's
        watch, or None."""
        with self._lock((namespace, name)):
            for _ in range(5):
                if body is None or not body.get("status"):
                    # a never-observed evaluation gets its Job before any status write could
                    # detect staleness: decide on the current object, not the event's copy
                    body = self.cluster.get_evaluation(namespace, name)
                if body is None or body["metadata"].get("deletionTimestamp"):
                    return None
                seen = None
                try:
                    seen = self._observe(body)
                    if seen is None:  # its status does not validate: Failed (InvalidStatus), nothing to follow
                        return None
                    self._seen.status = seen.status
                    self._step(seen, job, isvc_cache)
                    return self.requeue_after(self._seen.status, seen.generation)
                except Conflict:
                    body = job = None  # someone (an edit, an earlier patch) moved it: re-read
                except ValidationError as exc:
                    if seen is None:
                        raise
                    # A status the operator built that its own API type refuses: a bug, never fixed by
                    # retrying. Fail closed, saying what, instead of retrying forever.
                    message = f"the operator built an invalid status ({exc.title} {_model_error(exc, '')}); " \
                              "please report it"
                    log.error("%s/%s: %s", namespace, name, message)
                    self._fail(seen, "OperatorError", message)
                    return None
            raise Conflict(f"{namespace}/{name}: five conflicting writes in a row")

    def requeue_after(self, status: ModelEvaluationStatus | None, generation: int) -> float | None:
        """When to look again at an evaluation in this state, events aside."""
        if st.is_settled(status, generation):
            return None
        if status is not None and status.phase == Phase.RUNNING:
            return self.settings.running_requeue_s  # a Job deleted without an event still ends it
        return self.settings.poll_interval_s

    # ---- the state machine -------------------------------------------------------------
    def _observe(self, body: dict) -> Observed | None:
        """The evaluation with its status parsed (the one place it is). A status that does not
        validate was not written by the operator: nothing in it is trusted, the evaluation fails
        closed (InvalidStatus) and None is returned."""
        try:
            return Observed(body, st.parse(body.get("status")))
        except ValidationError as exc:
            self._invalid_status(body, exc)
            return None

    def _write(self, body: dict, patch: dict) -> dict:
        new = self.cluster.patch_status(body, patch)
        if self.metrics:
            m = new["metadata"]
            self.metrics.observe(m["namespace"], m["name"], new.get("status"))
        return new

    def _patch(self, seen: Observed, patch: dict) -> Observed:
        """Write a status patch (guarded by the resourceVersion read); the evaluation as written."""
        new = self._write(seen.body, patch)
        written = Observed(new, st.parse(new.get("status")))
        self._seen.status = written.status
        return written

    def _step(self, seen: Observed, job: dict | None = None, isvc_cache=None) -> None:
        ns, name, gen = seen.meta["namespace"], seen.meta["name"], seen.generation
        if st.is_settled(seen.status, gen):
            return
        try:
            spec = ModelEvaluationSpec.model_validate(seen.body.get("spec") or {})
        except ValidationError as exc:
            self._fail(seen, "InvalidSpec", _model_error(exc), started=False)
            return
        fresh, start = False, None
        if seen.status.observed_generation != gen:
            # A brand-new evaluation (generation 1, never observed) has no older Jobs; its own
            # Job may exist only if we crashed right after creating it, which the
            # create-if-absent in _start_job finds. Its "new generation" patch is merged into
            # the next one (one write instead of two).
            fresh = seen.status.observed_generation is None and gen == 1
            for job in [] if fresh else self.cluster.jobs_of(ns, name):
                if job["metadata"].get("labels", {}).get(names.LABEL_GENERATION) != str(gen):
                    log.info("%s/%s: generation %s supersedes Job %s", ns, name, gen, job["metadata"]["name"])
                    self.cluster.delete_job(ns, job["metadata"]["name"])
                    if code_job.runs_code(job):
                        self.cluster.delete_network_policy(ns, egress_policy.policy_name(job["metadata"]["name"]))
            models = {"baseline": spec.baseline.describe(), "candidate": spec.candidate.describe()}
            start = st.start_generation(gen, models, seen.status)
            if not fresh:
                seen, start = self._patch(seen, start), None

        stage = stages.current(spec, seen.status)
        job_name = names.job_name(name, gen, stage)
        if job is None or job["metadata"]["name"] != job_name:
            job = None if fresh else self.cluster.get_job(ns, job_name)
        if job is not None:
            advanced = self._follow_job(seen, spec, job)
            if advanced is None:
                return
            seen, stage, job = advanced, stages.current(spec, advanced.status), None  # next stage's Job
            job_name = names.job_name(name, gen, stage)
        if seen.status.phase == Phase.RUNNING and seen.status.job_name == job_name:
            self._fail(seen, "JobMissing", f"runner Job {job_name} disappeared before it finished")
            return

        plan = self._plan(seen, spec, isvc_cache)
        if isinstance(plan, Wait) and plan.phase == Phase.FAILED:  # e.g. an untrusted TLS certificate
            self._fail(seen, plan.reason, plan.message)
            return
        if isinstance(plan, Wait):  # not ready for a slot: it must not hold the queue's line
            self.queue.leave(ns, name)
            self._wait(seen, plan, start)
            return
        self._start_job(seen, spec, plan, job_name, start, stage)

    def _waited(self, status: ModelEvaluationStatus) -> float:
        started = st.parse_time(status.started_at)
        return (datetime.now(timezone.utc) - started).total_seconds() if started else 0.0

    def _waited_for_endpoints(self, status: ModelEvaluationStatus, generation: int) -> float:
        """How long this wait for endpoints has lasted: since condition EndpointsReady turned
        False (not since the evaluation started: time queued or waiting for a baseline does
        not count). 0 when it is not waiting for endpoints yet."""
        cond = next((c for c in status.conditions or [] if c.type == st.ENDPOINTS_READY), None)
        if cond is not None:
            if cond.status != "False" or cond.observed_generation != generation:
                return 0.0
            since = st.parse_time(cond.last_transition_time)
        elif status.phase == Phase.WAITING_FOR_ENDPOINTS:
            since = st.parse_time(status.started_at)  # written before the condition existed
        else:
            return 0.0
        return (datetime.now(timezone.utc) - since).total_seconds() if since else 0.0

    def _wait(self, seen: Observed, wait: Wait, start: dict | None = None,
              endpoints_ready: bool | None = None) -> None:
        status, gen = seen.status, seen.generation
        if wait.phase == Phase.WAITING_FOR_ENDPOINTS:
            endpoints_ready = False
            if start is None and self._waited_for_endpoints(status, gen) > self.settings.endpoint_timeout_s:
                self._fail(seen, "EndpointTimeout",
                           f"gave up after {self.settings.endpoint_timeout_s:.0f}s: {wait.message}")
                return
        if start is not None or (status.phase, status.reason, status.message) != (wait.phase, wait.reason,
                                                                                 wait.message):
            self._patch(seen, {**(start or {}), **st.progress(wait.phase, wait.reason, wait.message, gen, status,
                                                              endpoints_ready=endpoints_ready)})
            log.info("%s/%s: %s/%s: %s", seen.meta["namespace"], seen.meta["name"], wait.phase.value,
                     wait.reason, wait.message)

    def _plan(self, seen: Observed, spec: ModelEvaluationSpec, isvc_cache=None) -> Wait | Ready:
        ns = seen.meta["namespace"]
        waiting = Phase.WAITING_FOR_ENDPOINTS
        pending = Phase.PENDING

        def get_isvc(n):
            cached = isvc_cache(ns, n) if isvc_cache is not None else None
            return cached if cached is not None else self.cluster.get_isvc(ns, n)

        candidate = endpoints.resolve(spec.candidate, get_isvc)
        if isinstance(candidate, endpoints.NotReady):
            return Wait(waiting, candidate.reason, f"candidate: {candidate.message}")
        baseline: endpoints.Resolved | None = None
        key = reused = entry = None
        if spec.baseline.results_from:
            other = self.cluster.get_evaluation(ns, spec.baseline.results_from)
            try:
                ostatus = st.parse((other or {}).get("status"))
            except ValidationError:  # not the operator's status: nothing in it is trusted (its reconcile fails it)
                return Wait(waiting, "BaselineResultsUnavailable",
                            f"baseline.resultsFrom {spec.baseline.results_from}: its status does not validate")
            reused = ostatus.results_ref.baseline if ostatus.results_ref is not None else None
            entry = trust.vouched(other, reused) if reused else None
            if ostatus.phase == Phase.FAILED:
                return Wait(waiting, "BaselineResultsUnavailable",
                            f"baseline.resultsFrom {spec.baseline.results_from} failed")
            if ostatus.phase != Phase.SUCCEEDED or not reused:
                # a baseline run takes hours: this waits without the endpoint timeout
                return Wait(pending, "BaselineInProgress",
                            f"waiting for the results of baseline.resultsFrom {spec.baseline.results_from} "
                            f"(phase {ostatus.phase.value if ostatus.phase else 'unknown'})")
        else:
            resolved = endpoints.resolve(spec.baseline, get_isvc)
            if isinstance(resolved, endpoints.NotReady):
                return Wait(waiting, resolved.reason, f"baseline: {resolved.message}")
            if self.settings.baseline_cache:
                key = baseline_key(resolved.identity, resolved.model, spec)
                stage = stages.current(spec, seen.status)
                if stage is not None:  # a stage's baseline: its own key, never a full run's
                    key = stages.stage_key(key, spec.progressive.stages, stage)
                entry = self.cluster.cached_baseline(ns, key)
                reused = entry["name"] if entry else None
            baseline = None if reused else resolved
        for role, model in (("baseline", baseline), ("candidate", candidate)):
            if model is None:
                continue
            api_key = None
            if model.secret is not None:
                api_key = self.cluster.secret_value(ns, model.secret)
                if api_key is None:
                    return Wait(waiting, "SecretNotFound",
                                f"{role}: Secret {model.secret.name} (key {model.secret.key}) not found")
            if model.url is not None:
                tls = None
                ca = ca_bundles.effective_ca(model, self.settings)
                if ca is not None or model.insecure:
                    pem = self.cluster.configmap_value(ns, ca.name, ca.key) if ca is not None else None
                    if ca is not None and pem is None:
                        return Wait(waiting, "CABundleNotFound",
                                    f"{role}: caBundle ConfigMap {ca.name} (key {ca.key}) not found")
                    tls = endpoints.TLS(pem, model.insecure)
                problem = self.preflight(model.url, model.model, api_key, self.settings.preflight_timeout_s, tls)
                if isinstance(problem, endpoints.TLSProblem):  # the same trust cannot succeed on a retry
                    return Wait(Phase.FAILED, "EndpointTLSError", f"{role}: {problem}")
                if problem:
                    return Wait(waiting, "EndpointNotAnswering", f"{role}: {problem}")
        egress = None
        if spec.runs_code:  # its pod may reach the model endpoints, the API server and DNS only
            urls = [m.url for m in (baseline, candidate) if m is not None and m.url is not None]
            egress = self._egress(ns, urls)
            if isinstance(egress, Wait):
                return egress
        return Ready(baseline, candidate, key, reused, egress, entry)

    def _egress(self, ns: str, urls: list[str]) -> egress_policy.Egress | Wait:
        cidrs = self.settings.apiserver_cidrs
        try:
            return egress_policy.resolve(urls, ns, self.cluster.get_service, self.cluster.endpoint_slices,
                                         cidrs, [] if cidrs else self.cluster.apiserver_slices())
        except (egress_policy.Unpinnable, PermissionError) as exc:
            return Wait(Phase.FAILED, "EgressNotPinnable",
                        f"code execution needs the runner's egress pinned to its endpoints: {exc}")
        except LookupError as exc:
            return Wait(Phase.WAITING_FOR_ENDPOINTS, "EndpointServiceNotFound", str(exc))

    def _start_job(self, seen: Observed, spec: ModelEvaluationSpec, plan: Ready, job_name: str,
                   start: dict | None = None, stage: int | None = None) -> None:
        meta = seen.meta
        ns, name, gen = meta["namespace"], meta["name"], seen.generation
        ev = Evaluation(ns, name, meta["uid"], gen, spec, stage)
        job = build_job(ev, plan.baseline, plan.candidate, self.settings, baseline_key=plan.key)
        if plan.reused:
            job["metadata"]["annotations"] = {names.ANN_BASELINE_RESULTS: plan.reused}
        wait = None
        kueued = scaleout.suspended(job)  # Kueue admits it: its quota, not --max-concurrent, is the limit
        started_at = start["startedAt"] if start is not None else seen.status.started_at  # the one written next
        order = (started_at or "", meta.get("creationTimestamp") or "", ns, name)
        with self._capacity:  # count-then-reserve is one critical section; API calls stay outside
            active = self.active.all()
            free = self.settings.max_concurrent - len(active)
            other = None
            if plan.baseline is not None and plan.key:
                other = next((j for j in active if j.get("baselineKey") == plan.key and j.get("runsBaseline")
                              and j.get("evaluation") != name and j["namespace"] == ns), None)
            if other is not None:  # waits for results, not a slot: out of the slot queue
                self.queue.leave(ns, name)
                wait = Wait(Phase.PENDING, "BaselineInProgress",
                            f"the same baseline is being evaluated by Job {other['name']}; its results will be reused")
            elif not kueued and self.queue.ahead_of((ns, name), order) >= free:  # no slot left (FIFO)
                wait = Wait(Phase.PENDING, "Queued",
                            f"waiting for a free runner slot ({self.settings.max_concurrent} Jobs at most)")
            else:
                self.queue.leave(ns, name)
                self.active.created[(ns, job_name)] = {
                    "namespace": ns, "name": job_name, "evaluation": name, "baselineKey": plan.key,
                    "runsBaseline": plan.baseline is not None, "at": time.monotonic(),
                }
        if wait is not None:
            self._wait(seen, wait, start, endpoints_ready=True)
            return
        try:
            if plan.egress is not None and not self._protect(seen, job_name, plan.egress):
                self.active.finished(ns, job_name)
                return
            created = self.cluster.create_job(job)
        except Exception:
            self.active.finished(ns, job_name)
            raise
        log.info("%s/%s: %s runner Job %s", ns, name, "created" if created else "found", job_name)
        if not created:  # made before a restart: it may even have finished already
            if start is not None:
                seen = self._patch(seen, start)
            existing = self.cluster.get_job(ns, job_name)
            if existing is not None:
                self._follow_job(seen, spec, existing)
            return
        refs = results_refs(job_name, plan.reused)
        if plan.reused_entry:  # our own record that it was vouched for: verifiable after its producer moves on
            refs["baselineEntry"] = plan.reused_entry
        msg = f"runner Job {job_name} evaluating " + ("the candidate (baseline reused)" if plan.reused
                                                      else "baseline and candidate")
        progressive = None
        if stage is not None:
            msg += f", stage {stage}/{len(spec.progressive.stages)} ({ev.fraction:.0%} of every task)"
            earlier = st.wire(seen.status.progressive) if seen.status.progressive is not None else {}
            progressive = {**earlier, **stages.running(spec, stage)}
        phase, reason = Phase.RUNNING, "JobCreated"
        if kueued:
            self.active.finished(ns, job_name)
            phase, reason, msg = Phase.PENDING, "QueuedByKueue", kueue.waiting_message(job, None)
        self._patch(seen, {**(start or {}), **st.progress(phase, reason, msg, gen, seen.status, endpoints_ready=True,
                                                          job_name=job_name, results_ref=refs, progressive=progressive)})

    def _protect(self, seen: Observed, job_name: str, egress: egress_policy.Egress) -> bool:
        """Create the Job's egress NetworkPolicy before the Job (its pod never runs without it). One this
        evaluation already owns (an attempt before a restart) is kept. False (and the evaluation Failed)
        when another object holds its name."""
        meta = seen.meta
        ns, name, gen = meta["namespace"], meta["name"], seen.generation
        policy = egress_policy.egress_policy(job_name, ns, name, gen, names.owner_reference(name, meta["uid"]),
                                             egress.endpoints, egress.apiserver, egress.dns)
        taken = self.cluster.create_network_policy(policy)
        if taken is None or egress_policy.owned_by(taken, meta["uid"]):
            return True
        self._fail(seen, "EgressPolicyTaken", f"NetworkPolicy {policy['metadata']['name']} exists and is not "
                                              "this evaluation's: its runner Job is not started")
        return False

    def _follow_job(self, seen: Observed, spec: ModelEvaluationSpec, job: dict) -> Observed | None:
        """Follow the generation's (or the current stage's) Job. Returns the evaluation as patched
        when a progressive stage completed without settling the verdict (the next stage's Job is
        due), else None."""
        ns = seen.meta["namespace"]
        self.queue.leave(ns, seen.meta["name"])  # it has its Job (e.g. found after a restart): out of the queue
        status, gen = seen.status, seen.generation
        job_name = job["metadata"]["name"]
        outcome, message = st.job_outcome(job)
        if outcome is not None:  # it holds no runner slot any more (a next stage's Job may take it now)
            self.active.finished(ns, job_name)
        if outcome == "Failed":
            refused = self._refusal(job)
            if refused:
                self._fail(seen, "EndpointRefused", refused)
            else:
                self._fail(seen, "JobFailed", f"runner Job {job_name} failed: {message}")
        elif outcome == "Complete":
            return self._finish(seen, spec, job)
        elif scaleout.suspended(job):  # waits for Kueue's admission; the poller revisits it
            message = kueue.waiting_message(job, kueue.workload_of(self.cluster, ns, job))
            if (status.phase, status.reason, status.message) != (Phase.PENDING, "QueuedByKueue", message):
                self._patch(seen, st.progress(Phase.PENDING, "QueuedByKueue", message, gen, status, job_name=job_name,
                                              results_ref=results_refs(job_name, reused_baseline(job))))
        elif status.phase != Phase.RUNNING or status.job_name != job_name:
            refs = results_refs(job_name, reused_baseline(job))
            self._patch(seen, st.progress(Phase.RUNNING, "JobRunning", f"runner Job {job_name} running", gen,
                                          status, job_name=job_name, results_ref=refs))
        return None

    def _refusal(self, job: dict) -> str | None:
        """Why the runner refused to evaluate (published in place of results by this Job's own pod
        and read through the same provenance and size checks as results), if it said so."""
        refs = results_refs(job["metadata"]["name"], reused_baseline(job))
        roles = ("candidate",) if refs["baselineReused"] else ("baseline", "candidate")
        return verified.refusal(self.cluster, job["metadata"]["namespace"], refs, roles, job, self.settings)

    def _finish(self, seen: Observed, spec: ModelEvaluationSpec, job: dict) -> Observed | None:
        from quantgate.decision import compare

        meta, body = seen.meta, seen.body
        ns, gen = meta["namespace"], seen.generation
        job_name = job["metadata"]["name"]
        refs = results_refs(job_name, reused_baseline(job))
        stage = stages.current(spec, seen.status)
        ev = Evaluation(ns, meta["name"], meta.get("uid", ""), gen, spec, stage)
        progressive: dict | None = None  # a progressive evaluation's last look, written with the verdict
        open_stage = None  # (look, cached baseline stages) of a stage that leaves the verdict open
        with self._deciding:
            try:  # results are used only once every trust check passed (quantgate.k8s.trust)
                run = verified.gather(self.cluster, body, spec, job, self.settings, reused_baseline(job),
                                      shards=scaleout.shard_count(job),  # an Indexed Job's shards merge there
                                      stage=stage)  # a progressive stage: merged with the earlier stages
            except Untrusted as exc:
                failure = ("ResultsUntrusted", str(exc))
            except ResultsError as exc:
                failure = ("ResultsMissing" if "not found" in str(exc) or "incomplete" in str(exc)
                           else "ResultsMalformed", str(exc))
            else:
                try:
                    if stage is None:
                        comparison = compare(run.baseline, run.candidate, policy_of(spec))
                    else:
                        lk = stages.look(run, spec, policy_of(spec), stage, f"{ns}/{job_name}")
                        cached = stages.cache_entries(seen.status, run.evidence.get("baselineCache"),
                                                      *verified.reused_pieces(run.evidence))
                        if not lk.stop:
                            open_stage = (lk, cached)
                        else:
                            comparison = stages.outcome(run.baseline, run.candidate, policy_of(spec), lk, spec)
                            progressive = {**stages.looked(lk, spec), "baselineCache": cached or None}
                except QuantgateError as exc:
                    failure = ("ComparisonFailed", str(exc))
                else:
                    failure, evidence = None, run.evidence
                    if scaleout.shard_count(job) > 1 and evidence.get("baselineCache"):  # merged baseline: one object
                        refs = {**refs, "baseline": evidence["baselineCache"]["name"]}
                del run  # the decoded result sets; the comparison keeps what status needs
            memory.trim()  # decoded result sets can be tens of MB: give the pages back
        if failure:
            self._fail(seen, *failure)
            return None
        if open_stage is not None:
            lk, cached = open_stage
            return self._next_stage(seen, spec, lk, ev.fraction, job_name, refs, cached)
        seconds = self._waited(seen.status)
        self._patch(seen, st.succeeded(comparison, gen, seen.status, refs, evidence=evidence,
                                       progressive=progressive))
        verdict = comparison.verdict.value
        note = f"{verdict}: average drop {comparison.average_drop:.2f}%" + (
            f"; {'; '.join(comparison.reasons)}" if comparison.reasons else "")
        if verdict == "Block":
            self.cluster.event(body, "Warning", "Blocked", note)
        else:
            self.cluster.event(body, "Normal", "Verdict", note)
        if self.metrics:
            self.metrics.count_verdict(verdict, seconds)
        del comparison
        log.info("%s/%s generation %s: %s", ns, meta["name"], gen, note)
        return None

    def _next_stage(self, seen: Observed, spec: ModelEvaluationSpec, lk, fraction: float, job_name: str,
                    refs: dict, cached: list[dict]) -> Observed:
        """A stage that leaves the verdict open: record its look and move on to the next stage
        (whose Job the caller creates). Returns the evaluation as patched."""
        meta = seen.meta
        msg = stages.stage_message(lk, fraction)
        new = self._patch(seen, st.progress(Phase.RUNNING, "StageComplete", msg, seen.generation,
                                            seen.status, job_name=job_name, results_ref=refs,
                                            progressive={**stages.looked(lk, spec),
                                                         "baselineCache": cached or None}))
        self.cluster.event(seen.body, "Normal", "StageComplete", msg)
        log.info("%s/%s: %s", meta["namespace"], meta["name"], msg)
        return new

    def _fail(self, seen: Observed, reason: str, message: str, started: bool = True) -> None:
        status, gen = seen.status, seen.generation
        self.queue.leave(seen.meta["namespace"], seen.meta["name"])
        if st.is_settled(status, gen):
            return
        seconds = self._waited(status) if started and status.observed_generation == gen else None
        self._patch(seen, st.failed(reason, message, gen, status))
        self._failed(seen.body, reason, message, seconds)

    def _failed(self, body: dict, reason: str, message: str, seconds: float | None) -> None:
        """Tell that the evaluation failed: an event, the failure metric, the log."""
        self.cluster.event(body, "Warning", "Failed", f"{reason}: {message}")
        if self.metrics:
            self.metrics.count_failure(reason, seconds)
        log.warning("%s/%s generation %s failed: %s: %s", body["metadata"]["namespace"],
                    body["metadata"]["name"], body["metadata"].get("generation", 1), reason, message)

    def _invalid_status(self, body: dict, exc: ValidationError) -> None:
        """Fail closed on a status that does not validate: no verdict is kept or derived from it.
        Once: a status this already failed (a field the patch could not remove) is left alone."""
        meta = body["metadata"]
        gen = meta.get("generation", 1)
        self.queue.leave(meta["namespace"], meta["name"])
        wire = body.get("status")
        if isinstance(wire, dict) and (wire.get("phase"), wire.get("reason"), wire.get("observedGeneration")) == \
                (Phase.FAILED.value, st.INVALID_STATUS, gen):
            return
        more = len(exc.errors()) - 1
        message = f"{_model_error(exc, 'status.')}{f' (and {more} more)' if more else ''}: the status does not " \
                  "validate (not written by the operator); no verdict is kept or derived from it; set a new " \
                  "spec.rerun to evaluate again"
        self._write(body, st.invalid(message, gen, exc))
        self._failed(body, st.INVALID_STATUS, message, None)
