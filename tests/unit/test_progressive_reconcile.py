"""A progressive evaluation in the reconciler (in-memory cluster of test_status_reconcile): one
runner Job per stage, the stopping rule after each verified stage, status.progressive, and the
trust checks on stage results (tests/integration/test_operator_progressive.py runs it for real)."""

import base64
import math

import pytest
from test_status_reconcile import NS, FakeCluster, ready_isvc

from quantgate.api.v1alpha1 import ModelEvaluationSpec
from quantgate.decision.progressive import document_order, stage_count
from quantgate.k8s import names, reconcile as rc, results_channel, stages, trust
from quantgate.k8s.job import Evaluation, build_job
from quantgate.k8s.settings import Settings
from quantgate.core.runs import COMPACT_VERSION

N = 400  # documents of the one task
SPEC = {"baseline": {"inferenceServiceRef": {"name": "fp16"}}, "candidate": {"inferenceServiceRef": {"name": "int4"}},
        "suite": "local", "tasks": [{"name": "arc_challenge"}], "progressive": {}}


def baseline_right(doc: int) -> bool:
    return (doc * 7919) % 10 < 6  # 60% accuracy


CANDIDATES = {
    "copy": baseline_right,
    "broken": lambda d: baseline_right(d) and d % 2 == 0,  # half its right answers lost: Block
    # about 2.5% of the right answers lost, in a pattern the first stages see only a few times of
    "edge": lambda d: baseline_right(d) and d % 40 != 7,
}


def bits(values: list[bool]) -> dict:
    raw = bytearray((len(values) + 7) // 8)
    for i, v in enumerate(values):
        if v:
            raw[i >> 3] |= 0x80 >> (i & 7)
    return {"b": base64.b64encode(bytes(raw)).decode()}


def stage_doc(want: trust.Expected, right, fraction: float, model: str) -> dict:
    """What the runner publishes for a stage: the stage's documents of arc_challenge, scored by `right`."""
    docs = sorted(document_order(1234, "arc_challenge", "arc_challenge", N)[:stage_count(fraction, N)])
    values = [right(d) for d in docs]
    acc = sum(values) / len(values)
    return {"v": COMPACT_VERSION, "tasks": {"arc_challenge": {"m": {"acc_norm,none": acc}, "hib": {"acc_norm": True},
                                                              "n": len(docs)}},
            "samples": {"arc_challenge": {"ids": docs, "d": f"docs-{fraction}", "v": {"acc_norm,none": bits(values)}}},
            "run": {"model": model, "lmEvalVersion": "0.4.13", "quantgateVersion": "0.1.0",
                    "tasks": [{"name": n, "numFewshot": s, "limit": lim, "fraction": fraction,
                               "documents": {"arc_challenge": N}} for n, s, lim in want.tasks]}}


def stage_run(right, fraction: float, after: float, model: str) -> dict:
    """What the runner publishes for a stage (`quantgate run --fraction F --after F0`): the documents
    the stage adds to arc_challenge, scored by `right`, as a stage run (lm-eval's results object with
    numbers lm-eval's aggregation gives, per-question records, the manifest's stage entry)."""
    from quantgate.lmeval.merge import _task_metrics

    order = document_order(1234, "arc_challenge", "arc_challenge", N)
    start = stage_count(after, N) if after else 0
    stop = stage_count(fraction, N)
    docs = sorted(order[start:stop])
    config = {"task": "arc_challenge", "metric_list": [{"metric": "acc_norm", "aggregation": "mean",
                                                         "higher_is_better": True}]}
    records = [{"doc_id": d, "filter": "none", "metrics": ["acc_norm"], "doc_hash": f"h{d}",
                "acc_norm": 1.0 if right(d) else 0.0} for d in docs]
    agg, n = _task_metrics("arc_challenge", config, records)
    plan = [{"name": "arc_challenge", "numFewshot": None, "limit": None, "metric": None, "subtasks": [],
             "fraction": fraction, "documents": {"arc_challenge": N}, "after": after,
             "pieces": {"arc_challenge": [start, stop]}}]
    manifest = {"complete": True, "model": model, "suite": "local", "lmEvalVersion": "0.4.13",
                "quantgateVersion": "0.1.0", "tasks": plan, "requests": 4 * n,
                "stage": {"fraction": fraction, "after": after, "documents": {"arc_challenge": N},
                          "pieces": {"arc_challenge": [start, stop]}, "groups": {}, "plan": "p-arc"}}
    results = {"results": {"arc_challenge": {"alias": "arc_challenge", **agg}}, "configs": {"arc_challenge": config},
               "versions": {"arc_challenge": 1.0}, "n-shot": {"arc_challenge": 0},
               "higher_is_better": {"arc_challenge": {"acc_norm": True}},
               "n-samples": {"arc_challenge": {"original": N, "effective": n}},
               "config": {"model": "local-completions"}, "lm_eval_version": "0.4.13"}
    return {"manifest": manifest, "results": results, "records": {"arc_challenge": records}}


class StageCluster(FakeCluster):
    def finish_stage(self, name: str, candidate: str) -> None:
        """Complete a stage Job the way its pod does: results of the fraction in its arguments."""
        job = self.jobs[name]
        job["status"] = {"conditions": [{"type": "Complete", "status": "True", "message": "done"}]}
        meta = job["metadata"]
        pod = f"{name}-x7k2q"
        self.pods[pod] = {"metadata": {"name": pod, "uid": f"uid-pod-{name}", "ownerReferences": [
            {"kind": "Job", "name": name, "uid": meta["uid"], "controller": True}]}}
        spec = ModelEvaluationSpec.model_validate(self.evals[meta["labels"][names.LABEL_EVALUATION]]["spec"])
        for c in job["spec"]["template"]["spec"]["containers"]:
            args = c["args"]
            fraction, after = float(args[args.index("--fraction") + 1]), float(args[args.index("--after") + 1])
            target = args[args.index("--publish-configmap") + 1].split("/")[1]
            source = spec.baseline if c["name"] == "baseline" else spec.candidate
            model = source.inference_service_ref.name
            right = baseline_right if c["name"] == "baseline" else CANDIDATES[candidate]
            cms = results_channel.build_configmaps(
                results_channel.encode(stage_run(right, fraction, after, model)), namespace=NS, name=target,
                role=c["name"], extra_labels={}, job=(name, meta["uid"]), pod=(pod, f"uid-pod-{name}"))
            self.create_configmaps(cms)


@pytest.fixture
def world(monkeypatch):
    cluster = StageCluster()
    cluster.isvcs = {n: ready_isvc(n) for n in ("fp16", "int4", "int8")}
    monkeypatch.setattr(rc.endpoints, "preflight", lambda *a, **k: None)
    return cluster, rc.Reconciler(cluster, Settings(max_concurrent=2, endpoint_timeout_s=60))


def run_to_verdict(cluster, rec, name: str, candidate: str) -> list[str]:
    """Reconcile, finishing each stage's Job, until a verdict; the stage Jobs in order."""
    rec.reconcile(NS, name)
    made = []
    for _ in range(5):
        status = cluster.evals[name]["status"]
        if status.get("phase") == "Succeeded":
            return made
        assert status.get("phase") != "Failed", status.get("message")
        job = status["jobName"]
        assert job not in made, f"{job} ran twice"
        made.append(job)
        cluster.finish_stage(job, candidate)
        rec.reconcile(NS, name)
    raise AssertionError(f"no verdict after {made}")


def test_stage_job_names_are_unique_per_generation_and_stage_and_fit_a_label():
    seen = {names.job_name("e" * 80, g, s) for g in (1, 2) for s in (None, 1, 2, 3)}
    assert len(seen) == 8 and all(len(n) <= 63 for n in seen)
    assert names.job_name("ev", 1) == names.job_name("ev", 1, None)  # ordinary Jobs keep their names
    assert "-g3-s2-" in names.job_name("ev", 3, 2)


def test_a_stage_job_evaluates_its_share_of_every_task_and_says_its_own_name():
    spec = ModelEvaluationSpec.model_validate({**SPEC, "progressive": {"stages": [0.2, 1]}})
    from quantgate.k8s.endpoints import Resolved

    b, c = (Resolved(url=f"http://{n}", model=n, secret=None, identity=f"id-{n}") for n in ("fp16", "int4"))
    job = build_job(Evaluation(NS, "ev", "uid", 1, spec, 2), b, c, Settings())
    assert job["metadata"]["name"] == names.job_name("ev", 1, 2)
    assert job["metadata"]["labels"][names.LABEL_STAGE] == "2"
    for container in job["spec"]["template"]["spec"]["containers"]:
        args = container["args"]
        assert args[args.index("--fraction") + 1] == "1.0" and "--limit" not in args
        assert args[args.index("--after") + 1] == "0.2"  # it adds the documents after stage 1's
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env[names.ENV_JOB_NAME] == names.job_name("ev", 1, 2)
    plain = build_job(Evaluation(NS, "ev", "uid", 1, spec.model_copy(update={"progressive": None})), b, c, Settings())
    assert all("--fraction" not in k["args"] for k in plain["spec"]["template"]["spec"]["containers"])


def test_a_clear_ship_stops_at_the_first_stage_with_its_items_in_status(world):
    cluster, rec = world
    cluster.add_eval("ship", SPEC)
    jobs = run_to_verdict(cluster, rec, "ship", "copy")
    st = cluster.evals["ship"]["status"]
    assert jobs == [names.job_name("ship", 1, 1)]
    assert st["verdict"] == "Ship" and st["promotable"] is True
    p = st["progressive"]
    assert p["stage"] == 1 and p["stages"] == [0.1, 0.25, 0.5, 1.0] and p["stoppedEarly"] is True
    assert p["itemsEvaluated"] == stage_count(0.1, N) and p["itemsTotal"] == N
    assert p["reason"].startswith("stopped early at stage 1/4")
    assert p["tasks"] == [{"task": "arc_challenge", "itemsEvaluated": 40, "itemsTotal": N, "drop": 0.0,
                           "dropInterval": [0.0, 0.0]}]
    assert st["tasks"][0]["n"] == 40 and st["tasks"][0]["itemsTotal"] == N
    assert st["reasons"][0].startswith("progressive: stopped early")
    assert st["evidence"]["jobName"] == jobs[0]
    # the stage's baseline became a cache entry under the stage's own key, vouched for in status
    entry = st["evidence"]["baselineCache"]
    assert entry["name"] == f"{jobs[0]}-cache" and p["baselineCache"] == [entry]
    key = cluster.jobs[jobs[0]]["metadata"]["labels"][names.LABEL_BASELINE_KEY]
    assert cluster.cms[entry["name"]]["metadata"]["labels"][names.LABEL_BASELINE_KEY] == key


def test_a_clear_block_ends_with_block(world):
    cluster, rec = world
    cluster.add_eval("block", SPEC)
    run_to_verdict(cluster, rec, "block", "broken")
    st = cluster.evals["block"]["status"]
    assert st["verdict"] == "Block" and st["promotable"] is False and st["progressive"]["stoppedEarly"] is True


def test_an_open_verdict_runs_the_next_stage_and_the_last_gives_the_ordinary_verdict(world):
    from quantgate.decision.comparison import compare
    from quantgate.k8s.reconcile import policy_of
    from quantgate.core.runs import RunResults

    cluster, rec = world
    cluster.add_eval("edge", SPEC)
    rec.reconcile(NS, "edge")
    cluster.finish_stage(names.job_name("edge", 1, 1), "edge")
    rec.reconcile(NS, "edge")
    st = cluster.evals["edge"]["status"]
    # stage 1 leaves it open: stage 2's Job exists at once, status says where it stands
    assert (st["phase"], st["jobName"]) == ("Running", names.job_name("edge", 1, 2))
    p = st["progressive"]
    assert p["stage"] == 2 and p["itemsEvaluated"] == 40 and p.get("stoppedEarly") is None
    assert p["reason"].startswith("continuing after stage 1/4") and "verdict" not in st
    assert ("edge", "Normal", "StageComplete") in cluster.events
    jobs = run_to_verdict(cluster, rec, "edge", "edge")
    st = cluster.evals["edge"]["status"]
    assert st["phase"] == "Succeeded"
    assert jobs == [names.job_name("edge", 1, k) for k in (2, 3, 4)]  # every stage once, in order
    assert st["progressive"]["stage"] == 4 and st["progressive"]["stoppedEarly"] is False
    assert st["progressive"]["itemsEvaluated"] == N
    spec = ModelEvaluationSpec.model_validate(SPEC)
    want = trust.expected(spec, "fp16", 1.0)
    full = [RunResults.from_compact(stage_doc(want, r, 1.0, "m")) for r in (baseline_right, CANDIDATES["edge"])]
    assert st["verdict"] == compare(*full, policy_of(spec)).verdict.value == "ABTest"  # the ordinary verdict
    # stages append: stage 4's Job ran only the documents after stage 3's; the verdict's results are
    # the four stage runs merged, each listed in the evidence
    last = cluster.cms[names.results_name(jobs[-1], "candidate")]
    payload = results_channel.decode(base64.b64decode(last["binaryData"][results_channel.KEY]))
    assert len(payload["records"]["arc_challenge"]) == N - stage_count(0.5, N)
    for entry in st["evidence"]["results"]:
        assert [p["stage"] for p in entry["pieces"]] == [1, 2, 3, 4]
        assert [p["name"] for p in entry["pieces"]] == [names.results_name(names.job_name("edge", 1, k), entry["role"])
                                                        for k in (1, 2, 3, 4)]
    assert st["tasks"][0]["n"] == N


def _past_stage_one(cluster, rec) -> tuple[str, str]:
    """An open evaluation whose stage 1 completed: stage 2's Job runs. Returns both Jobs' names."""
    cluster.add_eval("edge", SPEC)
    rec.reconcile(NS, "edge")
    s1, s2 = names.job_name("edge", 1, 1), names.job_name("edge", 1, 2)
    cluster.finish_stage(s1, "edge")
    rec.reconcile(NS, "edge")
    assert cluster.evals["edge"]["status"]["jobName"] == s2
    return s1, s2


def test_a_stage_whose_earlier_stage_job_is_gone_fails_closed(world):
    """Stage 2's documents merge with stage 1's; with stage 1's Job (and so its results) deleted there
    is nothing trusted to merge with: Failed, never a verdict from stage 2's documents alone."""
    cluster, rec = world
    s1, s2 = _past_stage_one(cluster, rec)
    del cluster.jobs[s1]
    cluster.finish_stage(s2, "edge")
    rec.reconcile(NS, "edge")
    st = cluster.evals["edge"]["status"]
    assert (st["phase"], st["reason"]) == ("Failed", "ResultsMissing") and "verdict" not in st
    assert f"stage 1's runner Job {NS}/{s1} not found" in st["message"]


def test_a_stage_job_that_is_not_the_evaluations_is_refused(world):
    """A Job under stage 1's name that this evaluation does not control (e.g. re-created by someone
    else after the real one finished) cannot contribute documents."""
    cluster, rec = world
    s1, s2 = _past_stage_one(cluster, rec)
    cluster.jobs[s1]["metadata"]["ownerReferences"] = []
    cluster.finish_stage(s2, "edge")
    rec.reconcile(NS, "edge")
    st = cluster.evals["edge"]["status"]
    assert (st["phase"], st["reason"]) == ("Failed", "ResultsUntrusted") and st["message"].startswith("job:")


def test_a_forged_stage_results_configmap_is_rejected(world):
    """Results planted under the next stage's name, or stage 1's results passed off as stage 2's,
    fail the trust checks: never a verdict."""
    cluster, rec = world
    cluster.add_eval("edge", SPEC)
    rec.reconcile(NS, "edge")
    s1 = names.job_name("edge", 1, 1)
    cluster.finish_stage(s1, "edge")
    rec.reconcile(NS, "edge")
    s2 = names.job_name("edge", 1, 2)
    # a copy of stage 1's (honest) candidate results, re-labelled as stage 2's by a namespace editor
    forged = dict(cluster.cms[names.results_name(s1, "candidate")])
    forged["metadata"] = {**forged["metadata"], "name": names.results_name(s2, "candidate"),
                          "labels": {**forged["metadata"]["labels"], results_channel.LABEL_JOB: s2}}
    cluster.cms[forged["metadata"]["name"]] = forged
    cluster.finish_stage(s2, "edge")  # the honest pod finds the head taken (create-only)
    rec.reconcile(NS, "edge")
    st = cluster.evals["edge"]["status"]
    assert st["phase"] == "Failed" and st["reason"] == "ResultsUntrusted" and "verdict" not in st
    assert st["message"].startswith("owner:")


def test_stage_results_of_another_share_are_rejected():
    spec = ModelEvaluationSpec.model_validate(SPEC)
    want = trust.expected(spec, "fp16", 0.25)
    doc = stage_doc(trust.expected(spec, "fp16", 0.1), baseline_right, 0.1, "fp16")
    with pytest.raises(trust.Untrusted) as exc:
        trust.check_spec(doc, want)
    assert exc.value.check == "stage"
    full = stage_doc(want, baseline_right, 0.25, "fp16")
    with pytest.raises(trust.Untrusted):  # a stage's results are never taken for a full run's
        trust.check_spec(full, trust.expected(spec, "fp16"))


def test_current_stage_comes_from_status_and_starts_at_one():
    from quantgate.k8s import status as st

    spec = ModelEvaluationSpec.model_validate(SPEC)

    def at(stage: int):
        return st.parse({"progressive": {"stage": stage, "stages": [0.1, 0.25, 0.5, 1.0]}})

    assert stages.current(spec, None) == 1
    assert stages.current(spec, st.parse({})) == 1
    assert stages.current(spec, at(3)) == 3
    assert stages.current(spec, at(9)) == 1  # not a stage of this spec
    assert stages.current(spec.model_copy(update={"progressive": None}), at(2)) is None


def test_status_fields_of_a_look_are_finite_json():
    from quantgate.decision.model import Verdict
    from quantgate.decision.progressive import Look, TaskEstimate

    spec = ModelEvaluationSpec.model_validate(SPEC)
    lk = Look(2, 4, [TaskEstimate("t", 10, 100, 0.5, 0.5, 0.0, (-math.inf, math.inf))], 0.0, (-math.inf, math.inf),
              (Verdict.SHIP, Verdict.BLOCK), False, None, "continuing")
    p = stages.looked(lk, spec)
    assert p["stage"] == 3 and p["averageDropInterval"] is None and p["tasks"][0]["dropInterval"] is None
    assert p["stoppedEarly"] is None


@pytest.mark.parametrize("extra, message", [
    ({"limit": 5}, "remove limit"),
    ({"tasks": [{"name": "arc_challenge", "limit": 5}]}, "remove limit"),
    ({"runner": {"parallelism": 2}}, "parallelism"),
    ({"progressive": {"stages": [0.5, 0.25, 1]}}, "increasing"),
    ({"progressive": {"stages": [0.5]}}, "ending at 1"),
    ({"progressive": {"confidence": 0.5}}, "greater than 0.5"),
])
def test_progressive_specs_that_cannot_run_are_refused(extra, message):
    from pydantic import ValidationError

    with pytest.raises(ValidationError) as exc:
        ModelEvaluationSpec.model_validate({**SPEC, **extra})
    assert message in str(exc.value)


def test_quantgate_verify_re_derives_a_progressive_verdict_from_its_stage(world):
    from quantgate.commands.verify import problems
    from quantgate.k8s.verified import limits_of

    cluster, rec = world
    cluster.add_eval("ship", SPEC)
    run_to_verdict(cluster, rec, "ship", "copy")
    limits = limits_of(Settings())
    body = cluster.get_evaluation(NS, "ship")
    assert problems(cluster, body, limits) == []
    body["status"]["progressive"]["stage"] = 2  # a status naming another stage than its results
    assert problems(cluster, body, limits)[0].startswith("baseline: stage:")
    body = cluster.get_evaluation(NS, "ship")
    body["status"]["evidence"]["results"][1]["pieces"][0]["sha256"] = "0" * 64  # a stage run changed since
    assert problems(cluster, body, limits) == [
        f"candidate: SHA-256 of stage 1's results {names.results_name(names.job_name('ship', 1, 1), 'candidate')} "
        "differs from the evidence"]
    body = cluster.get_evaluation(NS, "ship")
    body["status"].update(verdict="Block", promotable=False)
    assert any(line.startswith("verdict: status says 'Block'") for line in problems(cluster, body, limits))


def _roles(cluster, job: str) -> list[str]:
    return [c["name"] for c in cluster.jobs[job]["spec"]["template"]["spec"]["containers"]]


def test_a_second_candidate_reuses_the_baselines_stages(world):
    """The baseline cache stores stages: a second progressive candidate against the same baseline
    runs only the candidate at each stage the first one has verified, and waits for a stage
    whose baseline the first one is computing."""
    cluster, rec = world
    cluster.add_eval("a", SPEC)
    rec.reconcile(NS, "a")
    cluster.finish_stage(names.job_name("a", 1, 1), "edge")
    rec.reconcile(NS, "a")  # stage 1 verified (open): its baseline is a vouched cache entry; stage 2 runs
    assert cluster.evals["a"]["status"]["progressive"]["baselineCache"][0]["name"] == \
        f"{names.job_name('a', 1, 1)}-cache"
    cluster.add_eval("b", {**SPEC, "candidate": {"inferenceServiceRef": {"name": "int8"}}})
    rec.reconcile(NS, "b")
    s1 = names.job_name("b", 1, 1)
    assert _roles(cluster, s1) == ["candidate"]
    a_entry = cluster.evals["a"]["status"]["progressive"]["baselineCache"][0]
    assert cluster.evals["b"]["status"]["resultsRef"] == {"baseline": f"{names.job_name('a', 1, 1)}-cache",
                                                          "candidate": names.results_name(s1, "candidate"),
                                                          "baselineReused": True,
                                                          "baselineEntry": {k: a_entry[k] for k in
                                                                            ("name", "uid", "sha256")}}
    cluster.finish_stage(s1, "edge")
    rec.reconcile(NS, "b")
    st = cluster.evals["b"]["status"]
    # b's stage 1 was decided on a's baseline documents; a's stage 2 Job is computing the baseline b needs next
    assert st["progressive"]["stage"] == 2 and st["progressive"]["itemsEvaluated"] == 40
    assert (st["phase"], st["reason"]) == ("Pending", "BaselineInProgress") and names.job_name("b", 1, 2) not in cluster.jobs
    cluster.finish_stage(names.job_name("a", 1, 2), "edge")
    rec.reconcile(NS, "a")
    rec.reconcile(NS, "b")
    s2 = names.job_name("b", 1, 2)
    assert _roles(cluster, s2) == ["candidate"]
    cluster.finish_stage(s2, "edge")
    rec.reconcile(NS, "b")
    st = cluster.evals["b"]["status"]
    assert st["progressive"]["stage"] == 3 and st["progressive"]["itemsEvaluated"] == stage_count(0.25, N)
    # b wrote no entry of its own; it lists a's two stage runs it merged, as vouched for when it verified them
    assert [e["name"] for e in st["progressive"]["baselineCache"]] == [
        f"{names.job_name('a', 1, k)}-cache" for k in (1, 2)]
    assert not any(name.startswith("b-") and name.endswith("-cache") for name in cluster.cms)


def test_stage_and_full_baselines_never_stand_in_for_each_other(world):
    cluster, rec = world
    cluster.add_eval("a", SPEC)
    run_to_verdict(cluster, rec, "a", "copy")  # stage 1's entry is vouched for
    plain = {k: v for k, v in SPEC.items() if k != "progressive"}
    cluster.add_eval("p", {**plain, "candidate": {"inferenceServiceRef": {"name": "int8"}}})
    rec.reconcile(NS, "p")
    assert _roles(cluster, names.job_name("p", 1)) == ["baseline", "candidate"]  # not a stage's baseline
    default = (0.1, 0.25, 0.5, 1.0)
    keys = {stages.stage_key("k" * 40, default, k) for k in (1, 2, 3, 4)}
    assert len(keys) == 4 and "k" * 40 not in keys
    # a stage's run is the documents between two shares: the same last share after another one differs
    assert stages.stage_key("k" * 40, (0.5, 1.0), 2) != stages.stage_key("k" * 40, (0.25, 1.0), 2)
    assert stages.stage_key("k" * 40, (0.25, 1.0), 1) == stages.stage_key("k" * 40, (0.25, 0.5, 1.0), 1)


def test_a_forged_stage_cache_entry_is_ignored(world):
    cluster, rec = world
    cluster.add_eval("a", {**SPEC, "candidate": {"inferenceServiceRef": {"name": "int8"}}})
    rec.reconcile(NS, "a")
    key = cluster.jobs[names.job_name("a", 1, 1)]["metadata"]["labels"][names.LABEL_BASELINE_KEY]
    cluster.jobs.clear()
    rec.active.finished(NS, names.job_name("a", 1, 1))
    # planted with every label the lookup selects on, naming `a` as its source; `a` never listed it
    forged = results_channel.build_configmaps(
        results_channel.encode(stage_doc(trust.expected(ModelEvaluationSpec.model_validate(SPEC), "fp16", 0.1),
                                         baseline_right, 0.1, "fp16")),
        namespace=NS, name="planted", role="baseline", extra_labels={names.LABEL_BASELINE_KEY: key,
                                                                     trust.LABEL_CACHE: "true"})
    forged[-1]["metadata"]["annotations"][trust.ANN_SOURCE] = "a"
    cluster.create_configmaps(forged)
    cluster.add_eval("b", SPEC)
    rec.reconcile(NS, "b")
    assert _roles(cluster, names.job_name("b", 1, 1)) == ["baseline", "candidate"]
    assert cluster.evals["b"]["status"]["resultsRef"]["baselineReused"] is False


def test_a_stage_jobs_pod_cannot_vouch_for_another_stages_results():
    """Results of stage 2 published (or planted) by stage 1's pod: the Job's pod-name pattern and the
    pod's controller reference both name another Job, so the creator check refuses them."""
    s1, s2 = names.job_name("ev", 1, 1), names.job_name("ev", 1, 2)
    job2 = {"metadata": {"name": s2, "uid": "uid-s2", "creationTimestamp": "2026-01-01T00:00:00Z"}}
    pod1 = {"metadata": {"name": f"{s1}-x7k2q", "uid": "uid-pod-1",
                         "ownerReferences": [{"kind": "Job", "name": s1, "uid": "uid-s1", "controller": True}]}}
    payload = results_channel.encode({"v": COMPACT_VERSION, "tasks": {}})
    [cm] = results_channel.build_configmaps(payload, namespace=NS, name=names.results_name(s2, "candidate"),
                                            role="candidate", job=(s2, "uid-s2"), pod=(f"{s1}-x7k2q", "uid-pod-1"))
    cm["metadata"]["creationTimestamp"] = "2026-01-01T00:00:03Z"
    with pytest.raises(trust.Untrusted) as exc:
        trust.check_provenance(cm, "candidate", job2, {f"{s1}-x7k2q": pod1})
    assert exc.value.check == "creator"
    # the same pod under a name that fits stage 2's pattern: its controller is still stage 1's Job
    [cm] = results_channel.build_configmaps(payload, namespace=NS, name=names.results_name(s2, "candidate"),
                                            role="candidate", job=(s2, "uid-s2"), pod=(f"{s2}-x7k2q", "uid-pod-1"))
    cm["metadata"]["creationTimestamp"] = "2026-01-01T00:00:03Z"
    with pytest.raises(trust.Untrusted) as exc:
        trust.check_provenance(cm, "candidate", job2, {f"{s2}-x7k2q": pod1})
    assert exc.value.check == "creator"
