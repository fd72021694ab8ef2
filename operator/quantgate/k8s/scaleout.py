"""Scale-out of the runner Job (pure): sharding as an Indexed Job, queueing under Kueue.

* `spec.runner.parallelism: N > 1` makes the Job Indexed (`completions = parallelism = N`):
  index i runs `quantgate run --shard i/N` (the Job controller sets JOB_COMPLETION_INDEX)
  and publishes its share under `<results>-<i>` (quantgate.k8s.shard_channel). A failed
  index is retried `backoffLimitPerIndex` (= spec.runner.backoffLimit) times on its own;
  `maxFailedIndexes: 0` fails the Job, and so the evaluation, once any index fails for good.
* a Kueue queue (`spec.runner.queueName`, else the operator's `kueue_queue` setting) labels
  the Job `kueue.x-k8s.io/queue-name` and creates it suspended: Kueue admits it (unsuspends
  it) when its ClusterQueue has quota for the pods' requests (e.g. `nvidia.com/gpu`).
"""

from __future__ import annotations

from quantgate.api.v1alpha1 import ModelEvaluationSpec
from quantgate.k8s.settings import Settings

QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
INDEX_ENV = "JOB_COMPLETION_INDEX"


def queue_name(spec: ModelEvaluationSpec, settings: Settings) -> str | None:
    return spec.runner.queue_name or settings.kueue_queue or None


def scale_out(job: dict, spec: ModelEvaluationSpec, settings: Settings) -> dict:
    """Apply parallelism and Kueue to a built runner Job (in place; returned for chaining)."""
    n = spec.runner.parallelism
    if n > 1:
        js = job["spec"]
        js.pop("backoffLimit", None)  # per index instead
        js.update({"completionMode": "Indexed", "completions": n, "parallelism": n,
                   "backoffLimitPerIndex": spec.runner.backoff_limit, "maxFailedIndexes": 0})
        pod = js["template"]["spec"]
        for c in [*pod.get("initContainers", []), *pod["containers"]]:
            args = c["args"]
            at = args.index("--output")
            c["args"] = args[:at] + ["--shard", f"$({INDEX_ENV})/{n}"] + args[at:]
    queue = queue_name(spec, settings)
    if queue:
        job["metadata"]["labels"][QUEUE_LABEL] = queue
        job["spec"]["suspend"] = True
    return job


def shard_count(job: dict) -> int:
    js = job.get("spec") or {}
    return int(js.get("completions") or 1) if js.get("completionMode") == "Indexed" else 1


def suspended(job: dict) -> bool:
    return bool((job.get("spec") or {}).get("suspend"))
