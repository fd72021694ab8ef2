"""Names and labels shared by the operator, the runner Job and the results channel.

Everything here is deterministic so that a restarted operator finds the objects
it made before (create-if-absent, never a second Job for one generation).
"""

from __future__ import annotations

import hashlib
import re

from quantgate.api.v1alpha1 import GROUP, KIND, VERSION

MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGER = "quantgate"
LABEL_EVALUATION = f"{GROUP}/evaluation"
LABEL_GENERATION = f"{GROUP}/generation"
LABEL_ROLE = f"{GROUP}/role"
LABEL_RESULTS = f"{GROUP}/results"
LABEL_BASELINE_KEY = f"{GROUP}/baseline-key"
LABEL_RUNS_BASELINE = f"{GROUP}/runs-baseline"
LABEL_STAGE = f"{GROUP}/stage"  # a progressive evaluation's stage (1-based) on its runner Job
# On a runner Job that runs no baseline: the baseline results (cache entry) it reuses.
ANN_BASELINE_RESULTS = f"{GROUP}/baseline-results"
# On a code evaluation's runner Job and pods: its own egress NetworkPolicy applies, not the chart's runner policy.
LABEL_CODE_EXECUTION = f"{GROUP}/code-execution"

# Environment the runner Job hands to `quantgate run` so the results it publishes
# are owned by (and garbage-collected with) the ModelEvaluation.
ENV_OWNER_NAME = "QUANTGATE_OWNER_NAME"
ENV_OWNER_UID = "QUANTGATE_OWNER_UID"
ENV_BASELINE_KEY = "QUANTGATE_BASELINE_KEY"
ENV_API_KEY = "QUANTGATE_API_KEY"
# The runner pod's own identity (downward API), stamped on the results it publishes.
ENV_JOB_NAME = "QUANTGATE_JOB_NAME"
ENV_JOB_UID = "QUANTGATE_JOB_UID"
ENV_POD_NAME = "QUANTGATE_POD_NAME"
ENV_POD_UID = "QUANTGATE_POD_UID"
JOB_UID_LABEL = "batch.kubernetes.io/controller-uid"  # set by the Job controller on its pods

ROLES = ("baseline", "candidate")
_MAX_NAME = 63  # Job names become pod label values


def _dns_label(text: str, limit: int) -> str:
    text = re.sub(r"[^a-z0-9-]", "-", text.lower()).strip("-")
    return text[:limit].rstrip("-") or "x"


def job_name(evaluation: str, generation: int, stage: int | None = None) -> str:
    """`<evaluation>-g<generation>-<hash>`: unique per (evaluation, generation), <= 63 chars.
    A progressive evaluation's stage k (1-based) has its own Job, `<evaluation>-g<generation>-s<k>-<hash>`."""
    key = f"{evaluation}/{generation}" + (f"/s{stage}" if stage is not None else "")
    digest = hashlib.sha256(key.encode()).hexdigest()[:5]
    suffix = f"-g{generation}" + (f"-s{stage}" if stage is not None else "") + f"-{digest}"
    return _dns_label(evaluation, _MAX_NAME - len(suffix)) + suffix


def results_name(job: str, role: str) -> str:
    """Name of the (head) results ConfigMap a role of a Job publishes."""
    return f"{job}-{role}"


def owner_reference(name: str, uid: str) -> dict:
    """ownerReference to a ModelEvaluation: deleting it deletes what it owns."""
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": KIND,
        "name": name,
        "uid": uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }
