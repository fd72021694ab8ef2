"""ModelEvaluationMatrix (pure): child ModelEvaluations, rows from their statuses, the selection.

Rules kept by construction:
* a row is read from a child only when the child's ownerReference (controller) is this matrix's
  UID: a ModelEvaluation someone else created under the child's name is never counted;
* a row has a verdict only when its child Succeeded for the generation it was last given
  (its spec is the one this matrix wants); a failed child is a failed row (its reason and
  message shown), never selected, and the other rows stay;
* `selected` is the smallest row by size whose verdict is at most `selectUpTo`
  (Ship < Monitor < ABTest < Block), ties broken by the lower average drop; none when no row is.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from quantgate.api import matrix as mapi
from quantgate.api.v1alpha1 import GROUP, KIND, VERSION, Phase
from quantgate.decision.model import Verdict
from quantgate.decision.selection import size_bytes
from quantgate.k8s import status as st

LABEL_MATRIX = f"{GROUP}/matrix"
_MAX_CHILD = 63  # the child's name is a label value of its runner Job


def child_name(matrix: str, candidate: str) -> str:
    """`<matrix>-<candidate>`, at most 63 characters (a long matrix name is cut and hashed)."""
    name = f"{matrix}-{candidate}"
    if len(name) <= _MAX_CHILD:
        return name
    digest = hashlib.sha256(matrix.encode()).hexdigest()[:5]
    keep = _MAX_CHILD - len(candidate) - len(digest) - 2
    return f"{matrix[:keep].rstrip('-')}-{digest}-{candidate}"


def owner_reference(matrix: dict) -> dict:
    meta = matrix["metadata"]
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": mapi.KIND, "name": meta["name"], "uid": meta["uid"],
            "controller": True, "blockOwnerDeletion": True}


def owner_uid(child: dict | None) -> str | None:
    """UID of the ModelEvaluationMatrix that controls this ModelEvaluation, if one does."""
    for ref in ((child or {}).get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller") and ref.get("kind") == mapi.KIND and ref.get("apiVersion", "").startswith(GROUP):
            return ref.get("uid")
    return None


def owner_name(child: dict | None) -> str | None:
    """Name of the ModelEvaluationMatrix controlling this ModelEvaluation (a hint for whom to wake:
    the matrix itself checks the UID)."""
    for ref in ((child or {}).get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller") and ref.get("kind") == mapi.KIND and ref.get("apiVersion", "").startswith(GROUP):
            return ref.get("name")
    return None


def owned(child: dict | None, matrix_uid: str) -> bool:
    return child is not None and owner_uid(child) == matrix_uid


def child_body(matrix: dict, spec: mapi.ModelEvaluationMatrixSpec, candidate: mapi.MatrixCandidate) -> dict:
    """The child ModelEvaluation of one candidate, owned by the matrix."""
    meta = matrix["metadata"]
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": KIND,
        "metadata": {"name": child_name(meta["name"], candidate.name), "namespace": meta["namespace"],
                     "labels": {LABEL_MATRIX: meta["name"]}, "ownerReferences": [owner_reference(matrix)]},
        "spec": spec.child_spec(candidate).dump(),
    }


def settled(child: dict | None) -> bool:
    """The child reached Succeeded or Failed for its current generation."""
    if child is None:
        return False
    return st.settled_on_the_wire(child.get("status"), child["metadata"].get("generation", 1))


def row(candidate: mapi.MatrixCandidate, evaluation: str, child: dict | None, matrix_uid: str,
        stale: bool = False) -> mapi.MatrixRow:
    """One row from the child ModelEvaluation (None: not created yet). `stale`: the child's spec is
    not (yet) the one the matrix wants, so its verdict does not count."""
    base = dict(name=candidate.name, evaluation=evaluation, size=candidate.size)
    if child is None:
        return mapi.MatrixRow(**base, phase=Phase.PENDING, reason="NotCreated",
                              message=f"ModelEvaluation {evaluation} not created yet")
    if not owned(child, matrix_uid):
        return mapi.MatrixRow(**base, phase=Phase.FAILED, reason="NameTaken",
                              message=f"ModelEvaluation {evaluation} exists and is not owned by this matrix")
    status = child.get("status") or {}
    if stale or status.get("observedGeneration") != child["metadata"].get("generation", 1):
        return mapi.MatrixRow(**base, phase=Phase.PENDING, reason="SpecUpdated" if stale else "NotObserved",
                              message=f"ModelEvaluation {evaluation} has not started this spec yet")
    if not settled(child):
        return mapi.MatrixRow(**base, phase=status.get("phase") or Phase.PENDING, reason=status.get("reason"),
                              message=status.get("message"))
    if status.get("phase") == Phase.FAILED.value or not status.get("verdict"):
        return mapi.MatrixRow(**base, phase=Phase.FAILED, reason=status.get("reason") or "Failed",
                              message=status.get("message"), promotable=False)
    tasks = status.get("tasks") or []
    return mapi.MatrixRow(
        **base, phase=Phase.SUCCEEDED, reason=status.get("reason"), message=status.get("message"),
        verdict=Verdict(status["verdict"]), promotable=bool(status.get("promotable")),
        decisive=status.get("decisive"), average_drop=status.get("averageDrop"),
        scores={t["task"]: t["candidate"] for t in tasks if t.get("candidate") is not None},
        drops={t["task"]: t["drop"] for t in tasks if t.get("drop") is not None},
        baseline_reused=(status.get("resultsRef") or {}).get("baselineReused"))


def baseline_scores(children: list[dict | None], matrix_uid: str) -> dict[str, float] | None:
    """The baseline's score per task, from the first owned child with a verdict."""
    for child in children:
        status = (child or {}).get("status") or {}
        if owned(child, matrix_uid) and settled(child) and status.get("verdict"):
            return {t["task"]: t["baseline"] for t in status.get("tasks") or [] if t.get("baseline") is not None}
    return None


@dataclass(frozen=True)
class Selection:
    name: str | None
    reason: str


def select(rows: list[mapi.MatrixRow], up_to: str) -> Selection:
    """The smallest row by size whose verdict is at most `up_to` (ties: lower average drop)."""
    limit = Verdict(up_to).rank
    fit = [r for r in rows if r.verdict is not None and r.verdict.rank <= limit and r.promotable]
    if not fit:
        return Selection(None, f"no variant has a verdict of {' or '.join(mapi.SELECTABLE[:limit + 1])}")
    best = min(fit, key=lambda r: (size_bytes(r.size) or float("inf"),
                                   r.average_drop if r.average_drop is not None else float("inf")))
    return Selection(best.name, f"smallest variant with a verdict of at most {up_to} ({best.size}, "
                                f"{best.verdict.value}, average drop {best.average_drop:.2f}%)")


def status_patch(spec: mapi.ModelEvaluationMatrixSpec, generation: int, rows: list[mapi.MatrixRow],
                 baseline: dict[str, float] | None, baseline_name: str) -> dict:
    """The matrix's whole status (a merge patch that replaces every field it owns)."""
    done = sum(1 for r in rows if r.phase in (Phase.SUCCEEDED, Phase.FAILED))
    complete = done == len(rows)
    selection = select(rows, spec.select_up_to) if complete else None
    failed = [r.name for r in rows if r.phase == Phase.FAILED]
    if complete:
        phase, reason = Phase.SUCCEEDED, "Selected" if selection.name else "NoneSelected"
        message = selection.reason + (f"; failed rows: {', '.join(failed)}" if failed else "")
    else:
        phase, reason = Phase.RUNNING, "Evaluating"
        message = f"{done} of {len(rows)} rows settled"
    return {
        "phase": phase.value, "reason": reason, "message": message, "observedGeneration": generation,
        "profile": spec.profile, "selectUpTo": spec.select_up_to,
        "baseline": {"name": baseline_name, "scores": baseline or None},
        "rows": [r.dump() for r in rows], "rowsDone": f"{done}/{len(rows)}",
        "selected": selection.name if selection else None,
        "selectionReason": selection.reason if selection else None,
    }
