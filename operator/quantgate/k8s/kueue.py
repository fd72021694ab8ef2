"""Kueue's word on a suspended runner Job: the reason its Workload waits for admission.

Kueue makes one Workload per Job (label `kueue.x-k8s.io/job-uid`) and says in its
`QuotaReserved` / `Admitted` conditions why it is not admitted yet (e.g. "couldn't assign
flavors to pod set main: insufficient unused quota for nvidia.com/gpu in flavor default,
1 more needed"). The operator shows that in the evaluation's status (Pending/QueuedByKueue).
Reading Workloads needs get/list on workloads.kueue.x-k8s.io; without it (or without
Kueue's CRDs) the status says only which queue the Job waits in.
"""

from __future__ import annotations

import json
import logging

from quantgate.k8s.scaleout import QUEUE_LABEL

GROUP = "kueue.x-k8s.io"
VERSION = "v1beta2"
JOB_UID_LABEL = "kueue.x-k8s.io/job-uid"
log = logging.getLogger("quantgate.kueue")


def reason_of(workload: dict | None) -> str | None:
    """The waiting reason in a Workload's conditions (pure)."""
    if not workload:
        return None
    conds = {c.get("type"): c for c in (workload.get("status") or {}).get("conditions") or []}
    for kind in ("QuotaReserved", "Admitted"):
        c = conds.get(kind)
        if c and c.get("status") == "False" and c.get("message"):
            return str(c["message"])[:300]
    return None


def waiting_message(job: dict, workload: dict | None) -> str:
    queue = job["metadata"].get("labels", {}).get(QUEUE_LABEL, "?")
    reason = reason_of(workload)
    base = f"runner Job {job['metadata']['name']} queued by Kueue in LocalQueue {queue}"
    return f"{base}: {reason}" if reason else f"{base}, waiting for admission"


def workload_of(cluster, namespace: str, job: dict) -> dict | None:
    uid = job["metadata"].get("uid")
    if not uid:
        return None
    try:
        resp = cluster.custom.list_namespaced_custom_object(
            GROUP, VERSION, namespace, "workloads", label_selector=f"{JOB_UID_LABEL}={uid}",
            _preload_content=False)
        items = json.loads(resp.data).get("items") or []
    except Exception as exc:  # no Kueue CRDs, no RBAC: the status says less, nothing fails
        log.debug("cannot read Kueue workloads in %s: %s", namespace, exc)
        return None
    return items[0] if items else None
