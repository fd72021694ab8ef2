"""The reconciler's state machine against an in-memory cluster (fast; the real apiserver
version of these paths is tests/integration/test_operator_flow.py)."""

import copy
import itertools

import pytest

from quantgate.k8s import names, reconcile as rc, results_channel, trust
from quantgate.k8s.cluster import Conflict
from quantgate.k8s.settings import Settings

NS = "models"


class FakeCluster:
    def __init__(self):
        self.evals, self.jobs, self.isvcs, self.cms, self.events = {}, {}, {}, {}, []
        self.pods = {}
        self.rv = itertools.count(1)
        self.patches = 0
        self.created_jobs = []

    def add_eval(self, name, spec, generation=1):
        self.evals[name] = {"metadata": {"name": name, "namespace": NS, "uid": f"uid-{name}",
                                         "generation": generation, "resourceVersion": str(next(self.rv))},
                            "spec": spec}

    def edit(self, name, spec):
        ev = self.evals[name]
        ev["spec"] = spec
        ev["metadata"]["generation"] += 1
        ev["metadata"]["resourceVersion"] = str(next(self.rv))

    def get_evaluation(self, ns, name):
        return copy.deepcopy(self.evals.get(name))

    def patch_status(self, body, patch):
        ev = self.evals[body["metadata"]["name"]]
        if ev["metadata"]["resourceVersion"] != body["metadata"]["resourceVersion"]:
            raise Conflict("moved")
        status = ev.setdefault("status", {})
        for k, v in patch.items():
            if v is None:
                status.pop(k, None)
            else:
                status[k] = v
        ev["metadata"]["resourceVersion"] = str(next(self.rv))
        self.patches += 1
        return copy.deepcopy(ev)

    def get_job(self, ns, name):
        return copy.deepcopy(self.jobs.get(name))

    def create_job(self, job):
        name = job["metadata"]["name"]
        if name in self.jobs:
            return False
        job["metadata"].update(uid=f"uid-job-{name}", creationTimestamp="2026-01-01T00:00:00Z")
        self.jobs[name] = job
        self.created_jobs.append(name)
        return True

    def jobs_of(self, ns, evaluation):
        return [j for j in self.jobs.values() if j["metadata"]["labels"][names.LABEL_EVALUATION] == evaluation]

    def delete_job(self, ns, name):
        self.jobs.pop(name, None)

    def get_isvc(self, ns, name):
        return self.isvcs.get(name)

    def secret_value(self, ns, ref):
        return None

    # results: real ConfigMaps as the runner and the operator build them (quantgate.k8s.trust checks them)
    def cached_baseline(self, ns, key):
        for name, cm in sorted(self.cms.items()):
            labels, ann = cm["metadata"]["labels"], cm["metadata"].get("annotations") or {}
            if labels.get(names.LABEL_BASELINE_KEY) == key and labels.get(trust.LABEL_CACHE) == "true":
                entry = trust.vouched(self.evals.get(ann.get(trust.ANN_SOURCE)), name, cm["metadata"]["uid"])
                if entry is not None:
                    return entry
        return None

    def configmap(self, ns, name):
        return copy.deepcopy(self.cms.get(name))

    def create_configmaps(self, cms):
        for cm in cms:
            name = cm["metadata"]["name"]
            if name not in self.cms:
                cm["metadata"].update(uid=f"uid-cm-{next(self.rv)}", creationTimestamp="2026-01-01T00:00:05Z")
                self.cms[name] = copy.deepcopy(cm)

    def pod(self, ns, name):
        return copy.deepcopy(self.pods.get(name))

    def event(self, body, type_, reason, note):
        self.events.append((body["metadata"]["name"], type_, reason))

    # test helpers
    def finish_job(self, name, outcome="Complete"):
        from quantgate.api.v1alpha1 import ModelEvaluationSpec

        job = self.jobs[name]
        job["status"] = {"conditions": [{"type": outcome, "status": "True", "message": "done"}]}
        if outcome != "Complete":
            return
        meta = job["metadata"]
        pod = f"{name}-x7k2q"
        self.pods[pod] = {"metadata": {"name": pod, "uid": f"uid-pod-{name}", "ownerReferences": [
            {"kind": "Job", "name": name, "uid": meta["uid"], "controller": True}]}}
        spec = ModelEvaluationSpec.model_validate(self.evals[meta["labels"][names.LABEL_EVALUATION]]["spec"])
        for c in job["spec"]["template"]["spec"]["containers"]:
            args = c["args"]
            target = args[args.index("--publish-configmap") + 1].split("/")[1]
            source = spec.baseline if c["name"] == "baseline" else spec.candidate
            want = trust.expected(spec, source.inference_service_ref.model or source.inference_service_ref.name)
            extra = {}
            if c["name"] == "baseline" and meta["labels"].get(names.LABEL_BASELINE_KEY):
                extra[names.LABEL_BASELINE_KEY] = meta["labels"][names.LABEL_BASELINE_KEY]
            cms = results_channel.build_configmaps(
                results_channel.encode(compact_doc(want)), namespace=NS, name=target, role=c["name"],
                extra_labels=extra, job=(name, meta["uid"]), pod=(pod, f"uid-pod-{name}"))
            self.create_configmaps(cms)


def compact_doc(want, model=None):
    """A compact result document with a run record matching `want` (what the runner publishes)."""
    from quantgate.core.runs import COMPACT_VERSION

    metrics = {"acc,none": 0.5, "acc_norm,none": 0.5, "exact_match,strict-match": 0.5}
    return {"v": COMPACT_VERSION, "tasks": {n: {"m": dict(metrics)} for n, _, _ in want.tasks},
            "run": {"model": model or want.model, "lmEvalVersion": "0.4.13", "quantgateVersion": "0.1.0",
                    "tasks": [{"name": n, "numFewshot": shots, "limit": limit} for n, shots, limit in want.tasks]}}


def ready_isvc(name):
    return {"metadata": {"name": name, "namespace": NS, "uid": f"u-{name}", "generation": 1},
            "status": {"conditions": [{"type": "Ready", "status": "True"}], "address": {"url": f"http://{name}"}}}


SPEC = {"baseline": {"inferenceServiceRef": {"name": "fp16"}}, "candidate": {"inferenceServiceRef": {"name": "int4"}},
        "suite": "local", "limit": 5}


@pytest.fixture
def world(monkeypatch):
    cluster = FakeCluster()
    cluster.isvcs = {"fp16": ready_isvc("fp16"), "int4": ready_isvc("int4"), "int8": ready_isvc("int8")}
    monkeypatch.setattr(rc.endpoints, "preflight", lambda *a, **k: None)

    from quantgate.decision.model import Comparison, Verdict

    def compare(baseline, candidate, policy):
        verdict = Verdict.BLOCK if policy.profile == "math-tutoring" else Verdict.SHIP
        return Comparison(verdict=verdict, promotable=verdict.promotable, profile=policy.profile,
                          aggregate="relativeDropOfMean", drop_mode="relative", average_drop=1.0, decisive=True,
                          reasons=["r"], tasks=[])

    import quantgate.decision

    monkeypatch.setattr(quantgate.decision, "compare", compare)
    rec = rc.Reconciler(cluster, Settings(max_concurrent=2, endpoint_timeout_s=60))
    return cluster, rec


def evaluate_to_ship(cluster, rec, name):
    cluster.add_eval(name, SPEC)
    rec.reconcile(NS, name)
    cluster.finish_job(names.job_name(name, 1))
    rec.reconcile(NS, name)
    assert cluster.evals[name]["status"]["verdict"] == "Ship"


def test_new_evaluation_gets_one_job_in_one_status_write(world):
    cluster, rec = world
    cluster.add_eval("a", SPEC)
    rec.reconcile(NS, "a")
    st = cluster.evals["a"]["status"]
    assert st["phase"] == "Running" and st["observedGeneration"] == 1 and cluster.patches == 1
    assert cluster.created_jobs == [names.job_name("a", 1)]
    rec.reconcile(NS, "a")  # again: nothing new
    assert cluster.created_jobs == [names.job_name("a", 1)]


def test_job_complete_gives_one_verdict_and_an_event(world):
    cluster, rec = world
    cluster.add_eval("a", {**SPEC, "candidate": {"inferenceServiceRef": {"name": "int8"}}})
    rec.reconcile(NS, "a")
    cluster.finish_job(names.job_name("a", 1))
    rec.reconcile(NS, "a")
    st = cluster.evals["a"]["status"]
    assert st["phase"] == "Succeeded" and st["verdict"] == "Ship" and st["promotable"] is True
    assert cluster.events == [("a", "Normal", "Verdict")]
    patches = cluster.patches
    rec.reconcile(NS, "a")
    assert cluster.patches == patches  # settled: no more writes


def test_failed_job_fails_closed(world):
    cluster, rec = world
    cluster.add_eval("a", SPEC)
    rec.reconcile(NS, "a")
    cluster.finish_job(names.job_name("a", 1), "Failed")
    rec.reconcile(NS, "a")
    st = cluster.evals["a"]["status"]
    assert st["phase"] == "Failed" and st["reason"] == "JobFailed" and "verdict" not in st
    assert st["promotable"] is False and cluster.events[-1][2] == "Failed"


def test_missing_results_fail_closed(world):
    cluster, rec = world
    cluster.add_eval("a", SPEC)
    rec.reconcile(NS, "a")
    cluster.jobs[names.job_name("a", 1)]["status"] = {"conditions": [{"type": "Complete", "status": "True"}]}
    rec.reconcile(NS, "a")
    assert cluster.evals["a"]["status"]["reason"] == "ResultsMissing"


def test_spec_edit_supersedes_job_and_clears_verdict(world):
    cluster, rec = world
    evaluate_to_ship(cluster, rec, "a")
    cluster.edit("a", {**SPEC, "limit": 6})
    rec.reconcile(NS, "a")
    st = cluster.evals["a"]["status"]
    assert st["observedGeneration"] == 2 and "verdict" not in st and st["phase"] == "Running"
    assert list(cluster.jobs) == [names.job_name("a", 2)]


def test_concurrency_cap_queues_visibly(world):
    cluster, rec = world
    for n in "abc":
        cluster.add_eval(n, {**SPEC, "limit": ord(n)})  # different baselines: no reuse
        rec.reconcile(NS, n)
    assert cluster.evals["c"]["status"]["phase"] == "Pending"
    assert cluster.evals["c"]["status"]["reason"] == "Queued"
    assert len(cluster.created_jobs) == 2
    cluster.finish_job(names.job_name("a", 1))
    rec.active.finished(NS, names.job_name("a", 1))
    rec.reconcile(NS, "c")
    assert cluster.evals["c"]["status"]["phase"] == "Running"


def test_baseline_runs_once_for_many_candidates(world):
    cluster, rec = world
    cluster.add_eval("a", SPEC)
    cluster.add_eval("b", {**SPEC, "candidate": {"inferenceServiceRef": {"name": "int8"}}})
    rec.reconcile(NS, "a")
    rec.reconcile(NS, "b")
    assert cluster.evals["b"]["status"]["reason"] == "BaselineInProgress"
    cluster.finish_job(names.job_name("a", 1))
    rec.active.finished(NS, names.job_name("a", 1))
    rec.reconcile(NS, "a")  # the verified baseline becomes a cache entry
    rec.reconcile(NS, "b")
    job_b = cluster.jobs[names.job_name("b", 1)]
    assert [c["name"] for c in job_b["spec"]["template"]["spec"]["containers"]] == ["candidate"]
    assert cluster.evals["b"]["status"]["resultsRef"]["baselineReused"] is True


def test_endpoint_not_ready_waits_then_times_out(world):
    cluster, rec = world
    cluster.isvcs["int4"]["status"]["conditions"][0]["status"] = "False"
    cluster.add_eval("a", SPEC)
    rec.reconcile(NS, "a")
    st = cluster.evals["a"]["status"]
    assert st["phase"] == "WaitingForEndpoints" and st["reason"] == "InferenceServiceNotReady"
    assert rec.reconcile(NS, "a") == rec.settings.poll_interval_s  # still waiting: look again soon
    assert cluster.evals["a"]["status"]["phase"] == "WaitingForEndpoints"
    _age_endpoint_wait(cluster, "a")
    assert rec.reconcile(NS, "a") is None  # settled
    st = cluster.evals["a"]["status"]
    assert st["phase"] == "Failed" and st["reason"] == "EndpointTimeout" and not cluster.jobs


def _age_endpoint_wait(cluster, name, when="2000-01-01T00:00:00Z"):
    """Pretend the current wait for endpoints began at `when` (its clock is EndpointsReady's
    lastTransitionTime) and the evaluation itself started then too."""
    st = cluster.evals[name]["status"]
    st["startedAt"] = when
    cond = next(c for c in st["conditions"] if c["type"] == "EndpointsReady")
    assert cond["status"] == "False"
    cond["lastTransitionTime"] = when


def test_an_evaluation_queued_longer_than_the_endpoint_timeout_does_not_fail_on_a_flap(world, monkeypatch):
    cluster, rec = world
    monkeypatch.setattr(rec.settings, "baseline_cache", False)
    for n in "abc":
        cluster.add_eval(n, {**SPEC, "limit": ord(n)})
        rec.reconcile(NS, n)
    st = cluster.evals["c"]["status"]
    assert st["reason"] == "Queued"
    st["startedAt"] = "2000-01-01T00:00:00Z"  # queued for ages, far beyond the 60 s timeout
    for cond in st["conditions"]:
        cond["lastTransitionTime"] = "2000-01-01T00:00:00Z"
    cluster.isvcs["int4"]["status"]["conditions"][0]["status"] = "False"  # a readiness flap
    rec.reconcile(NS, "c")
    st = cluster.evals["c"]["status"]
    assert st["phase"] == "WaitingForEndpoints" and st["reason"] == "InferenceServiceNotReady"
    rec.reconcile(NS, "c")
    assert cluster.evals["c"]["status"]["phase"] == "WaitingForEndpoints"  # its own clock just started
    _age_endpoint_wait(cluster, "c")
    rec.reconcile(NS, "c")
    assert cluster.evals["c"]["status"]["reason"] == "EndpointTimeout"  # the wait itself still times out


def test_a_running_evaluation_is_looked_at_again_and_fails_when_its_job_vanished(world):
    cluster, rec = world
    cluster.add_eval("a", SPEC)
    assert rec.reconcile(NS, "a") == rec.settings.running_requeue_s
    cluster.jobs.clear()  # deleted while no event reached the operator
    assert rec.reconcile(NS, "a") is None
    assert cluster.evals["a"]["status"]["reason"] == "JobMissing"


def test_five_conflicts_in_a_row_raise_for_the_work_queue_to_retry(world):
    cluster, rec = world
    cluster.add_eval("a", SPEC)

    def always_moved(body, patch):
        raise Conflict("moved")

    cluster.patch_status = always_moved
    with pytest.raises(Conflict, match="five conflicting writes"):
        rec.reconcile(NS, "a")


def test_restart_after_job_creation_finds_the_job(world):
    cluster, rec = world
    cluster.add_eval("a", SPEC)
    # a previous operator created the Job and died before writing any status
    job_name = names.job_name("a", 1)
    rec.reconcile(NS, "a")
    cluster.evals["a"].pop("status")
    cluster.finish_job(job_name)
    fresh = rc.Reconciler(cluster, Settings(max_concurrent=2))
    fresh.reconcile(NS, "a")
    assert cluster.created_jobs == [job_name]
    assert cluster.evals["a"]["status"]["phase"] == "Succeeded"


def test_stale_body_conflicts_and_rereads(world):
    cluster, rec = world
    cluster.add_eval("a", SPEC)
    stale = copy.deepcopy(cluster.evals["a"])
    cluster.edit("a", {**SPEC, "limit": 7})
    rec.reconcile(NS, "a", stale)
    assert cluster.evals["a"]["status"]["observedGeneration"] == 2
    assert cluster.created_jobs == [names.job_name("a", 2)]


def test_results_from_reuses_a_finished_evaluations_baseline(world):
    cluster, rec = world
    cluster.add_eval("a", SPEC)
    rec.reconcile(NS, "a")
    cluster.add_eval("b", {**SPEC, "baseline": {"resultsFrom": "a"}})
    rec.reconcile(NS, "b")
    assert (cluster.evals["b"]["status"]["phase"], cluster.evals["b"]["status"]["reason"]) == \
        ("Pending", "BaselineInProgress")
    cluster.evals["b"]["status"]["startedAt"] = "2000-01-01T00:00:00Z"  # waited far beyond the endpoint timeout
    rec.reconcile(NS, "b")
    assert cluster.evals["b"]["status"]["reason"] == "BaselineInProgress"  # no endpoint timeout for this wait
    cluster.finish_job(names.job_name("a", 1))
    rec.reconcile(NS, "a")
    rec.reconcile(NS, "b")
    st = cluster.evals["b"]["status"]
    a_baseline = cluster.evals["a"]["status"]["resultsRef"]["baseline"]
    vouched = next(e for e in cluster.evals["a"]["status"]["evidence"]["results"] if e["role"] == "baseline")
    assert st["resultsRef"] == {"baseline": a_baseline,
                                "candidate": names.results_name(names.job_name("b", 1), "candidate"),
                                "baselineReused": True,  # and a's vouching, recorded when b chose it
                                "baselineEntry": {k: vouched[k] for k in ("name", "uid", "sha256")}}
    assert vouched["name"] == a_baseline
    containers = cluster.jobs[names.job_name("b", 1)]["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["candidate"]


def test_watched_inference_services_are_read_from_the_cache_not_the_api(world):
    cluster, rec = world
    cluster.isvcs = {}  # the API has none: only the operator's watch cache knows them
    cached = {(NS, "fp16"): ready_isvc("fp16"), (NS, "int4"): ready_isvc("int4")}
    cluster.add_eval("a", SPEC)
    rec.reconcile(NS, "a", isvc_cache=lambda ns, name: cached.get((ns, name)))
    assert cluster.created_jobs == [names.job_name("a", 1)]
    # one the cache lacks (not seen yet) is read from the API
    cluster.isvcs = {"int8": ready_isvc("int8")}
    cluster.add_eval("b", {**SPEC, "baseline": {"inferenceServiceRef": {"name": "int8"}}})
    rec.reconcile(NS, "b", isvc_cache=lambda ns, name: cached.get((ns, name)))
    assert cluster.created_jobs[-1] == names.job_name("b", 1)


def test_a_finished_job_from_its_event_is_not_read_again(world):
    cluster, rec = world
    cluster.add_eval("a", SPEC)
    rec.reconcile(NS, "a")
    job_name = names.job_name("a", 1)
    cluster.finish_job(job_name)
    finished = copy.deepcopy(cluster.jobs[job_name])
    cluster.get_job = lambda ns, name: pytest.fail(f"GET of Job {name} although its event delivered it")
    rec.reconcile(NS, "a", job=finished)
    assert cluster.evals["a"]["status"]["verdict"] == "Ship"


def test_queue_is_first_come_first_served(world, monkeypatch):
    cluster, rec = world  # two runner slots
    clock = itertools.count()
    monkeypatch.setattr(rc.st, "now", lambda: f"2026-01-01T00:00:{next(clock):02d}Z")
    for name, isvc in (("a", "int4"), ("b", "int8"), ("c", "int4"), ("d", "int8")):
        cluster.add_eval(name, {**SPEC, "candidate": {"inferenceServiceRef": {"name": isvc}}})
    monkeypatch.setattr(rec.settings, "baseline_cache", False)
    for name in "abcd":
        rec.reconcile(NS, name)
    assert [cluster.evals[n]["status"]["reason"] for n in "cd"] == ["Queued", "Queued"]
    cluster.finish_job(names.job_name("a", 1))
    rec.active.finished(NS, names.job_name("a", 1))
    rec.reconcile(NS, "d")  # polled first, but c has waited longer
    assert cluster.evals["d"]["status"]["reason"] == "Queued"
    rec.reconcile(NS, "c")
    assert cluster.evals["c"]["status"]["phase"] == "Running"
    cluster.finish_job(names.job_name("b", 1))
    rec.active.finished(NS, names.job_name("b", 1))
    rec.reconcile(NS, "d")
    assert cluster.evals["d"]["status"]["phase"] == "Running"


def test_a_queued_evaluation_nobody_refreshes_stops_holding_the_line(world, monkeypatch):
    cluster, rec = world
    clock = itertools.count()
    monkeypatch.setattr(rc.st, "now", lambda: f"2026-01-01T00:00:{next(clock):02d}Z")
    monkeypatch.setattr(rec.settings, "baseline_cache", False)
    for name in "abcd":
        cluster.add_eval(name, SPEC)
        rec.reconcile(NS, name)
    cluster.evals.pop("c")  # deleted while the operator missed the event: c never comes back
    cluster.finish_job(names.job_name("a", 1))
    rec.active.finished(NS, names.job_name("a", 1))
    rec.reconcile(NS, "d")
    assert cluster.evals["d"]["status"]["reason"] == "Queued"
    order, _seen = rec.queue.entries[(NS, "c")]
    rec.queue.entries[(NS, "c")] = (order, -1e9)  # not refreshed for longer than stale_s
    rec.reconcile(NS, "d")
    assert cluster.evals["d"]["status"]["phase"] == "Running"


def test_rerun_evaluates_again_without_the_baseline_cached_before(world):
    cluster, rec = world
    evaluate_to_ship(cluster, rec, "a")
    cluster.edit("a", {**SPEC, "rerun": "2026-11-28"})
    rec.reconcile(NS, "a")
    status = cluster.evals["a"]["status"]
    assert status["observedGeneration"] == 2 and "verdict" not in status and status["phase"] == "Running"
    job = cluster.jobs[names.job_name("a", 2)]
    assert [c["name"] for c in job["spec"]["template"]["spec"]["containers"]] == ["baseline", "candidate"]
    assert status["resultsRef"]["baselineReused"] is False
    # a second candidate with the same rerun value shares that new baseline run
    cluster.finish_job(names.job_name("a", 2))
    cluster.add_eval("b", {**SPEC, "rerun": "2026-11-28", "candidate": {"inferenceServiceRef": {"name": "int8"}}})
    rec.active.finished(NS, names.job_name("a", 2))
    rec.reconcile(NS, "a")
    rec.reconcile(NS, "b")
    assert cluster.evals["b"]["status"]["resultsRef"]["baselineReused"] is True


def test_a_reused_baseline_stays_verifiable_when_its_producer_moves_to_a_new_generation(world):
    """b chose a's vouched cache entry; before b's Job finishes, a is edited (a new generation clears
    a's evidence). b still reaches its verdict: its own status recorded the entry (name, UID,
    SHA-256) as a's status vouched for it when b chose it (found by the chaos test: b failed `reused:`)."""
    cluster, rec = world
    evaluate_to_ship(cluster, rec, "a")
    cluster.add_eval("b", {**SPEC, "candidate": {"inferenceServiceRef": {"name": "int8"}}})
    rec.active.finished(NS, names.job_name("a", 1))
    rec.reconcile(NS, "b")
    ref = cluster.evals["b"]["status"]["resultsRef"]
    entry = cluster.evals["a"]["status"]["evidence"]["baselineCache"]
    assert ref["baselineReused"] is True and ref["baselineEntry"] == {k: entry[k] for k in ("name", "uid", "sha256")}
    cluster.edit("a", {**SPEC, "rerun": "again"})
    rec.reconcile(NS, "a")
    assert "evidence" not in cluster.evals["a"]["status"]  # a no longer vouches for its old entry
    cluster.finish_job(names.job_name("b", 1))
    rec.reconcile(NS, "b")
    st = cluster.evals["b"]["status"]
    assert st["phase"] == "Succeeded", st.get("message")
    # the record vouches only for those exact bytes: a changed entry still fails closed
    cluster.add_eval("c", {**SPEC, "candidate": {"inferenceServiceRef": {"name": "int8"}}, "rerun": "c"})
    cluster.evals["c"]["status"] = {"resultsRef": {"baselineEntry": {**entry, "sha256": "0" * 64}}}
    with pytest.raises(trust.Untrusted, match="^checksum: "):
        trust.reused_entry(cluster.cms[entry["name"]], [], None, None, trust.Limits(), own=cluster.evals["c"])


def test_verdict_carries_its_evidence(world):
    cluster, rec = world
    evaluate_to_ship(cluster, rec, "a")
    st = cluster.evals["a"]["status"]
    job = names.job_name("a", 1)
    ev = st["evidence"]
    assert ev["jobName"] == job and ev["jobUID"] == f"uid-job-{job}"
    roles = {r["role"]: r for r in ev["results"]}
    assert roles["candidate"]["name"] == names.results_name(job, "candidate")
    assert roles["candidate"]["sha256"] == cluster.cms[roles["candidate"]["name"]]["metadata"]["annotations"][
        results_channel.ANN_SHA256]
    assert roles["candidate"]["pod"] == f"{job}-x7k2q" and roles["candidate"]["lmEvalVersion"] == "0.4.13"
    assert ev["baselineCache"]["name"] == f"{job}-cache"  # written by the operator from verified results
    assert cluster.cms[f"{job}-cache"]["metadata"]["labels"][trust.LABEL_CACHE] == "true"


def test_forged_results_fail_untrusted_never_a_verdict(world):
    cluster, rec = world
    cluster.add_eval("a", SPEC)
    rec.reconcile(NS, "a")
    job = names.job_name("a", 1)
    cluster.finish_job(job)
    head = cluster.cms[names.results_name(job, "candidate")]
    head["metadata"]["ownerReferences"] = []  # e.g. pre-created by a namespace editor
    rec.reconcile(NS, "a")
    st = cluster.evals["a"]["status"]
    assert st["phase"] == "Failed" and st["reason"] == "ResultsUntrusted" and "verdict" not in st
    assert st["message"].startswith("owner:") and st["promotable"] is False


def test_poisoned_baseline_cache_entry_is_ignored_and_the_baseline_runs(world):
    cluster, rec = world
    key_spec = {**SPEC, "candidate": {"inferenceServiceRef": {"name": "int8"}}}
    cluster.add_eval("a", SPEC)
    rec.reconcile(NS, "a")
    key = cluster.jobs[names.job_name("a", 1)]["metadata"]["labels"][names.LABEL_BASELINE_KEY]
    cluster.jobs.clear()
    rec.active.finished(NS, names.job_name("a", 1))
    # someone plants an entry with every label the cache lookup selects on, naming `a` as its source
    forged = results_channel.build_configmaps(
        results_channel.encode({"v": 1, "tasks": {}}), namespace=NS, name="planted", role="baseline",
        extra_labels={names.LABEL_BASELINE_KEY: key, trust.LABEL_CACHE: "true"})
    forged[-1]["metadata"]["annotations"][trust.ANN_SOURCE] = "a"
    cluster.create_configmaps(forged)
    cluster.add_eval("b", key_spec)
    rec.reconcile(NS, "b")
    job_b = cluster.jobs[names.job_name("b", 1)]
    assert [c["name"] for c in job_b["spec"]["template"]["spec"]["containers"]] == ["baseline", "candidate"]
    assert cluster.evals["b"]["status"]["resultsRef"]["baselineReused"] is False


def _publish_refusal(cluster, job_name, role, reason, *, stamped=True):
    """What the runner's `publish_refusal` writes from inside the Job's pod (or, unstamped, a plant)."""
    meta = cluster.jobs[job_name]["metadata"]
    pod = f"{job_name}-r3fus"
    cluster.pods[pod] = {"metadata": {"name": pod, "uid": f"uid-pod-{pod}", "ownerReferences": [
        {"kind": "Job", "name": job_name, "uid": meta["uid"], "controller": True}]}}
    cms = results_channel.build_configmaps(
        results_channel.encode({"v": 1, "refused": reason}), namespace=NS, name=names.results_name(job_name, role),
        role=role, **({"job": (job_name, meta["uid"]), "pod": (pod, f"uid-pod-{pod}")} if stamped else {}))
    cluster.create_configmaps(cms)


def test_a_refused_endpoint_fails_closed_with_the_runners_reason(world):
    cluster, rec = world
    reason = "log-probability probe: http://int4/v1/completions returns prompt log-probabilities shifted by one token"
    cluster.add_eval("a", SPEC)
    rec.reconcile(NS, "a")
    job = names.job_name("a", 1)
    cluster.finish_job(job, "Failed")
    _publish_refusal(cluster, job, "candidate", reason)
    rec.reconcile(NS, "a")
    st = cluster.evals["a"]["status"]
    assert st["phase"] == "Failed" and st["reason"] == "EndpointRefused" and "verdict" not in st
    assert st["message"] == f"candidate: {reason}" and st["promotable"] is False


def test_a_planted_refusal_is_not_believed(world):
    """A refusal ConfigMap not made by the Job's own pod changes nothing: the Job failed, and says so."""
    cluster, rec = world
    cluster.add_eval("a", SPEC)
    rec.reconcile(NS, "a")
    job = names.job_name("a", 1)
    cluster.finish_job(job, "Failed")
    _publish_refusal(cluster, job, "candidate", "anything an attacker likes", stamped=False)
    rec.reconcile(NS, "a")
    st = cluster.evals["a"]["status"]
    assert st["phase"] == "Failed" and st["reason"] == "JobFailed" and "attacker" not in st["message"]


def test_a_status_its_own_api_type_refuses_fails_closed_instead_of_retrying_forever(world, monkeypatch):
    """A bug that makes the operator build an invalid status (here: evidence with a field the API
    does not have) is never fixed by retrying: the evaluation fails, saying so, with no verdict."""
    from quantgate.k8s import verified

    cluster, rec = world
    real = verified._entry
    monkeypatch.setattr(verified, "_entry", lambda *a, **k: {**real(*a, **k), "surprise": 1})
    cluster.add_eval("a", SPEC)
    rec.reconcile(NS, "a")
    cluster.finish_job(names.job_name("a", 1))
    assert rec.reconcile(NS, "a") is None
    status = cluster.evals["a"]["status"]
    assert (status["phase"], status["reason"]) == ("Failed", "OperatorError") and status.get("verdict") is None
    assert "ModelEvaluationStatus evidence.results.0.surprise" in status["message"]


def test_a_status_that_does_not_validate_fails_closed_once_and_starts_nothing(world):
    """Someone with status RBAC wrote junk: the reconciler parses the status once, before anything
    reads it, and fails the evaluation (InvalidStatus) naming the field; the field is removed, no
    Job is created from it, and the failed status validates and settles (no write loop)."""
    cluster, rec = world
    cluster.add_eval("a", SPEC)
    rec.reconcile(NS, "a")
    jobs = list(cluster.created_jobs)
    cluster.evals["a"]["status"]["jobName"] = 5  # not a string
    cluster.evals["a"]["metadata"]["resourceVersion"] = str(next(cluster.rv))
    assert rec.reconcile(NS, "a") is None
    status = cluster.evals["a"]["status"]
    assert (status["phase"], status["reason"], status["promotable"]) == ("Failed", "InvalidStatus", False)
    assert status["message"].startswith("status.jobName: ") and "\n" not in status["message"]
    assert "jobName" not in status and status.get("verdict") is None
    assert {c["type"]: c["status"] for c in status["conditions"]} == {"Evaluated": "False", "Promotable": "False"}
    assert cluster.created_jobs == jobs and cluster.events[-1] == ("a", "Warning", "Failed")
    patches = cluster.patches
    assert rec.reconcile(NS, "a") is None and cluster.patches == patches  # settled: no more writes


def test_a_verdict_in_a_status_that_does_not_validate_is_not_kept(world):
    cluster, rec = world
    evaluate_to_ship(cluster, rec, "a")
    status = cluster.evals["a"]["status"]
    status["conditions"].append({"type": "Shipped", "status": "True", "reason": "Trust me"})
    rec.reconcile(NS, "a")
    status = cluster.evals["a"]["status"]
    assert (status["phase"], status["reason"], status["promotable"]) == ("Failed", "InvalidStatus", False)
    assert status["message"].startswith("status.conditions.2.type: ")
    assert not any(k in status for k in ("verdict", "averageDrop", "tasks", "evidence", "reasons"))
    assert all(c["type"] != "Shipped" for c in status["conditions"])


def test_a_status_already_failed_as_invalid_is_not_written_again(world):
    """Junk a merge patch cannot remove (here: the fake's status is left as written) is failed once."""
    cluster, rec = world
    cluster.add_eval("a", SPEC)
    cluster.evals["a"]["status"] = {"phase": "Failed", "reason": "InvalidStatus", "observedGeneration": 1,
                                    "surprise": True}
    assert rec.reconcile(NS, "a") is None
    assert cluster.patches == 0 and cluster.created_jobs == [] and cluster.events == []


def test_a_results_from_source_whose_status_does_not_validate_is_not_reused(world):
    cluster, rec = world
    evaluate_to_ship(cluster, rec, "a")
    cluster.evals["a"]["status"]["averageDrop"] = "small"
    cluster.add_eval("b", {**SPEC, "baseline": {"resultsFrom": "a"}})
    rec.reconcile(NS, "b")
    status = cluster.evals["b"]["status"]
    assert (status["phase"], status["reason"]) == ("WaitingForEndpoints", "BaselineResultsUnavailable")
    assert "status does not validate" in status["message"] and cluster.created_jobs == [names.job_name("a", 1)]
