"""Scale-out of the runner Job: Indexed Job per spec.runner.parallelism, Kueue queueing."""

from quantgate.api.v1alpha1 import ModelEvaluationSpec
from quantgate.k8s import kueue
from quantgate.k8s.endpoints import Resolved
from quantgate.k8s.job import Evaluation, build_job
from quantgate.k8s.scaleout import QUEUE_LABEL, shard_count, suspended
from quantgate.k8s.settings import Settings

SPEC = {"baseline": {"endpoint": {"url": "http://base:8000"}}, "candidate": {"endpoint": {"url": "http://cand:8000"}},
        "suite": "local"}
BASE = Resolved("http://base:8000", "fp16", None, "endpoint:http://base:8000")
CAND = Resolved("http://cand:8000", "int4", None, "endpoint:http://cand:8000")


def _job(runner=None, settings=Settings()):
    spec = ModelEvaluationSpec.model_validate({**SPEC, **({"runner": runner} if runner else {})})
    return build_job(Evaluation("models", "ev", "uid-1", 1, spec), BASE, CAND, settings)


def test_default_is_one_plain_job():
    job = _job()
    assert "completionMode" not in job["spec"] and shard_count(job) == 1 and not suspended(job)
    assert QUEUE_LABEL not in job["metadata"]["labels"]
    assert all("--shard" not in c["args"] for c in job["spec"]["template"]["spec"]["containers"])


def test_parallelism_makes_an_indexed_job_whose_indexes_run_their_shard():
    job = _job({"parallelism": 4, "backoffLimit": 2})
    js = job["spec"]
    assert (js["completionMode"], js["completions"], js["parallelism"]) == ("Indexed", 4, 4)
    assert js["backoffLimitPerIndex"] == 2 and js["maxFailedIndexes"] == 0 and "backoffLimit" not in js
    assert shard_count(job) == 4
    for c in js["template"]["spec"]["containers"]:
        args = c["args"]
        i = args.index("--shard")
        assert args[i + 1] == "$(JOB_COMPLETION_INDEX)/4" and args[i + 2] == "--output"
        # each index publishes under <results>-<index> (the runner adds the index)
        assert args[args.index("--publish-configmap") + 1].endswith(f"-{c['name']}")


def test_queue_name_puts_the_job_under_kueue_suspended():
    job = _job({"queueName": "gpu-queue"})
    assert job["metadata"]["labels"][QUEUE_LABEL] == "gpu-queue" and job["spec"]["suspend"] is True
    # the operator-wide default applies when the evaluation names no queue; the spec wins
    assert _job(settings=Settings(kueue_queue="team-a"))["metadata"]["labels"][QUEUE_LABEL] == "team-a"
    assert _job({"queueName": "b"}, Settings(kueue_queue="team-a"))["metadata"]["labels"][QUEUE_LABEL] == "b"


def test_kueue_waiting_message_quotes_the_workload():
    job = _job({"queueName": "gpu-queue"})
    workload = {"status": {"conditions": [
        {"type": "QuotaReserved", "status": "False", "reason": "Pending",
         "message": "couldn't assign flavors to pod set main: insufficient unused quota for nvidia.com/gpu"}]}}
    msg = kueue.waiting_message(job, workload)
    assert "LocalQueue gpu-queue" in msg and "insufficient unused quota for nvidia.com/gpu" in msg
    assert kueue.waiting_message(job, None).endswith("waiting for admission")
    admitted = {"status": {"conditions": [{"type": "QuotaReserved", "status": "True", "message": "ok"}]}}
    assert kueue.reason_of(admitted) is None
