"""The reconciler with scale-out (in-memory cluster of test_status_reconcile): Kueue-queued Jobs
skip the operator's own cap and show Kueue's reason; a sharded Job's roles are read in shards."""

from test_status_reconcile import NS, SPEC, world  # noqa: F401  (fixture)

from quantgate.k8s import kueue, names, reconcile as rc

WAITING = {"status": {"conditions": [{"type": "QuotaReserved", "status": "False", "reason": "Pending",
                                      "message": "couldn't assign flavors to pod set main: insufficient unused "
                                                 "quota for nvidia.com/gpu in flavor default-flavor, 1 more needed"}]}}


def test_kueue_jobs_are_created_suspended_past_the_cap_and_show_kueues_reason(world, monkeypatch):
    cluster, rec = world  # max_concurrent=2
    monkeypatch.setattr(kueue, "workload_of", lambda *a: WAITING)
    spec = {**SPEC, "runner": {"queueName": "gpu"}}
    for n in ("a", "b", "c"):
        cluster.add_eval(n, spec)
        rec.reconcile(NS, n)
    assert len(cluster.created_jobs) == 3  # Kueue's quota decides, not --max-concurrent
    for n in ("a", "b", "c"):
        st = cluster.evals[n]["status"]
        assert (st["phase"], st["reason"]) == ("Pending", "QueuedByKueue")
        assert cluster.jobs[names.job_name(n, 1)]["spec"]["suspend"] is True
    rec.reconcile(NS, "a")  # the poller's next visit reads the Workload
    assert "insufficient unused quota for nvidia.com/gpu" in cluster.evals["a"]["status"]["message"]
    cluster.jobs[names.job_name("a", 1)]["spec"]["suspend"] = False  # Kueue admits it
    rec.reconcile(NS, "a")
    assert cluster.evals["a"]["status"]["phase"] == "Running"
    cluster.finish_job(names.job_name("a", 1))
    rec.reconcile(NS, "a")
    assert cluster.evals["a"]["status"]["verdict"] == "Ship"


def test_a_sharded_jobs_roles_are_read_in_shards(world, monkeypatch):
    """The reconciler sends an Indexed Job's roles through the sharded, verified read with the Job's
    shard count (the in-memory cluster publishes each role whole, so the read is delegated to the
    unsharded checks; tests/integration/test_scaleout_shards.py runs the real shards)."""
    from quantgate.k8s import verified

    cluster, rec = world
    reads = []

    def sharded(c, ns, name, role, job, want, limits, count):
        reads.append((name, count))
        return verified._job_role(c, ns, name, role, job, want, limits)

    monkeypatch.setattr(verified, "_job_role_sharded", sharded)
    cluster.add_eval("s", {**SPEC, "runner": {"parallelism": 4}})
    rec.reconcile(NS, "s")
    job = names.job_name("s", 1)
    cluster.finish_job(job)
    rec.reconcile(NS, "s")
    assert sorted(reads) == [(names.results_name(job, "baseline"), 4), (names.results_name(job, "candidate"), 4)]
    assert cluster.evals["s"]["status"]["verdict"] == "Ship"


def test_a_sharded_baseline_is_cached_and_reused_by_the_next_candidate_and_by_results_from(world, monkeypatch):
    """The merged (verified) baseline of a sharded run becomes an operator-written cache entry: a
    second candidate against the same baseline runs only its candidate, and `resultsFrom` naming
    the sharded evaluation reads the merged baseline (status.resultsRef.baseline names the entry)."""
    from quantgate.k8s import verified

    cluster, rec = world
    monkeypatch.setattr(verified, "_job_role_sharded",
                        lambda c, ns, name, role, job, want, limits, count: verified._job_role(c, ns, name, role, job,
                                                                                               want, limits))
    sharded = {**SPEC, "runner": {"parallelism": 3}}
    cluster.add_eval("s", sharded)
    rec.reconcile(NS, "s")
    job = names.job_name("s", 1)
    cluster.finish_job(job)
    rec.active.finished(NS, job)
    rec.reconcile(NS, "s")
    status = cluster.evals["s"]["status"]
    assert status["verdict"] == "Ship"
    entry = status["evidence"]["baselineCache"]
    assert entry["name"] == f"{job}-cache" and status["resultsRef"]["baseline"] == entry["name"]

    cluster.add_eval("next", {**sharded, "candidate": {"inferenceServiceRef": {"name": "int8"}}})
    rec.reconcile(NS, "next")
    job_next = cluster.jobs[names.job_name("next", 1)]
    assert [c["name"] for c in job_next["spec"]["template"]["spec"]["containers"]] == ["candidate"]
    assert cluster.evals["next"]["status"]["resultsRef"]["baseline"] == entry["name"]

    cluster.add_eval("from", {**SPEC, "baseline": {"resultsFrom": "s"}})
    rec.reconcile(NS, "from")
    cluster.finish_job(names.job_name("from", 1))
    rec.active.finished(NS, names.job_name("from", 1))
    rec.reconcile(NS, "from")
    status = cluster.evals["from"]["status"]
    assert status["verdict"] == "Ship" and status["resultsRef"]["baseline"] == entry["name"]
    assert [r["name"] for r in status["evidence"]["results"] if r["role"] == "baseline"] == [entry["name"]]
