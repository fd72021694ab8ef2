"""The matrix reconciler: level-based, all state in the cluster (like quantgate.k8s.reconcile).

`MatrixReconciler.reconcile(namespace, name)` reads a ModelEvaluationMatrix and its child
ModelEvaluations and moves them along:

* the first candidate's child is created alone; the others only once it has settled, so they
  find the baseline results it ran in the baseline cache (a cache entry counts only once its
  evaluation's status vouches for it, which is written with the verdict) and run the
  candidate alone: one baseline run for the whole matrix (docs/operator.md, "Decision matrix");
* a child whose spec differs from what the matrix wants (the matrix was edited) is deleted and
  created again with the new spec (the operator never updates a ModelEvaluation); a child of a
  candidate that left the list is deleted; a ModelEvaluation of a child's
  name that this matrix does not own is never touched (its row fails as NameTaken);
* the status (rows, rowsDone, selected) is rewritten from the children whenever it changed.

It returns when to look again; child events wake it sooner (quantgate.k8s.handlers).
"""

from __future__ import annotations

import logging

from pydantic import ValidationError

from quantgate.api.matrix import ModelEvaluationMatrixSpec
from quantgate.api.v1alpha1 import ModelEvaluationSpec, Phase
from quantgate.k8s import matrix as mx
from quantgate.k8s.cluster import Cluster, Conflict
from quantgate.k8s.settings import Settings

log = logging.getLogger("quantgate.matrix")


def _error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err.get("loc", ()))
    return f"spec.{where}: {err.get('msg')}" if where else str(err.get("msg"))


def same_spec(current: dict | None, wanted: dict) -> bool:
    """Whether a child's spec (as the apiserver stored and defaulted it) is the wanted one."""
    try:
        return ModelEvaluationSpec.model_validate(current or {}).dump() == wanted
    except ValidationError:
        return False


def _pruned(value):
    """A value as a merge patch leaves it: None entries of a mapping removed."""
    if isinstance(value, dict):
        return {k: _pruned(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_pruned(v) for v in value]
    return value


def is_settled(body: dict) -> bool:
    status = body.get("status") or {}
    return (status.get("observedGeneration") == body["metadata"].get("generation", 1)
            and status.get("phase") in (Phase.SUCCEEDED.value, Phase.FAILED.value))


class MatrixReconciler:
    def __init__(self, cluster: Cluster, settings: Settings, metrics=None):
        self.cluster = cluster
        self.settings = settings
        self.metrics = metrics

    def reconcile(self, namespace: str, name: str, body: dict | None = None) -> float | None:
        """Move the matrix along; seconds until it should be looked at again (None: settled or
        gone). Raises on API errors and on five conflicts in a row (the work queue retries)."""
        for _ in range(5):
            if body is None:
                body = self.cluster.get_matrix(namespace, name)
            if body is None or body["metadata"].get("deletionTimestamp"):
                return None
            try:
                status = self._step(body)
            except Conflict:
                body = None
                continue
            if self.metrics:
                self.metrics.observe_matrix(namespace, name, status)
            # rows move on their children's events; the requeue only backs up a missed one
            return None if status.get("phase") in (Phase.SUCCEEDED.value, Phase.FAILED.value) \
                else self.settings.running_requeue_s
        raise Conflict(f"{namespace}/{name}: five conflicting writes in a row")

    def _write(self, body: dict, patch: dict) -> dict:
        """Patch the status unless it already says this (a merge patch: None removes a field)."""
        current = body.get("status") or {}
        if all(_pruned(current.get(k)) == _pruned(v) for k, v in patch.items()):
            return current
        return self.cluster.patch_matrix_status(body, patch).get("status") or {}

    def _step(self, body: dict) -> dict:
        meta = body["metadata"]
        ns, name, gen, uid = meta["namespace"], meta["name"], meta.get("generation", 1), meta["uid"]
        try:
            spec = ModelEvaluationMatrixSpec.model_validate(body.get("spec") or {})
            wanted = {c.name: mx.child_body(body, spec, c) for c in spec.candidates}
        except ValidationError as exc:
            return self._write(body, {"phase": Phase.FAILED.value, "reason": "InvalidSpec", "message": _error(exc),
                                      "observedGeneration": gen, "rows": None, "rowsDone": None, "selected": None,
                                      "selectionReason": None})
        children = {c: self.cluster.get_evaluation(ns, w["metadata"]["name"]) for c, w in wanted.items()}
        pilot = spec.candidates[0].name
        pilot_child = children[pilot]
        # the first row has run the baseline (or cannot: its name is taken) for the spec wanted now
        gate_open = pilot_child is not None and (not mx.owned(pilot_child, uid) or (
            is_settled(pilot_child) and same_spec(pilot_child.get("spec"), wanted[pilot]["spec"])))
        stale: set[str] = set()
        for cname, want in wanted.items():
            child = children[cname]
            if child is None:
                if cname == pilot or gate_open:
                    created = self.cluster.create_evaluation(want)
                    children[cname] = created if created is not None else \
                        self.cluster.get_evaluation(ns, want["metadata"]["name"])
                    log.info("%s/%s: created ModelEvaluation %s", ns, name, want["metadata"]["name"])
            elif mx.owned(child, uid) and not same_spec(child.get("spec"), want["spec"]):
                # delete and create again (next reconcile): the operator never updates a ModelEvaluation
                self.cluster.delete_evaluation(ns, child["metadata"]["name"], child["metadata"]["uid"])
                stale.add(cname)
                log.info("%s/%s: deleted ModelEvaluation %s to create it with the new spec", ns, name,
                         want["metadata"]["name"])
        self._drop_removed(ns, name, uid, {w["metadata"]["name"] for w in wanted.values()})
        rows = [mx.row(c, wanted[c.name]["metadata"]["name"], children[c.name], uid, stale=c.name in stale)
                for c in spec.candidates]
        baseline = mx.baseline_scores(list(children.values()), uid)
        return self._write(body, mx.status_patch(spec, gen, rows, baseline, spec.baseline.describe()))

    def _drop_removed(self, ns: str, name: str, uid: str, keep: set[str]) -> None:
        for child in self.cluster.evaluations_labeled(ns, f"{mx.LABEL_MATRIX}={name}"):
            cmeta = child["metadata"]
            if cmeta["name"] not in keep and mx.owned(child, uid):
                self.cluster.delete_evaluation(ns, cmeta["name"], cmeta["uid"])
                log.info("%s/%s: deleted ModelEvaluation %s (its candidate left the matrix)", ns, name, cmeta["name"])
