"""`quantgate report --from-cluster NAMESPACE/NAME`: the decision matrix from what the operator wrote.

A ModelEvaluationMatrix gives one row per candidate: rows with a verdict carry the full
comparison of their child ModelEvaluation (read only from a child the matrix owns, as the
operator does), rows without one are shown with their phase and why; `selected` is the
matrix's own (its selectUpTo rule). A ModelEvaluation gives the same table with one candidate.
"""

from __future__ import annotations

from quantgate.api.matrix import ModelEvaluationMatrixSpec
from quantgate.api.v1alpha1 import ModelEvaluationSpec
from quantgate.decision.decision_matrix import Matrix, MatrixRow, UnresolvedRow
from quantgate.decision.model import Comparison
from quantgate.decision.selection import Selection
from quantgate.errors import InputError
from quantgate.k8s import matrix as mx

_COMPARISON = ("verdict", "promotable", "profile", "aggregate", "dropMode", "averageDrop", "decisive", "reasons",
               "tasks")


def comparison_of(status: dict) -> Comparison:
    """The comparison a Succeeded ModelEvaluation's status carries."""
    return Comparison.model_validate({k: status[k] for k in _COMPARISON if k in status})


def _build(rows: list[tuple[str, str | None, Comparison]], unresolved: list[UnresolvedRow], baseline_name: str,
           baseline_size: str | None, spec: ModelEvaluationSpec, selection: Selection | None, what: str) -> Matrix:
    from quantgate.k8s.reconcile import policy_of

    if not rows:
        raise InputError(f"{what} has no row with a verdict yet")
    first = rows[0][2]
    tasks = [t.task for t in first.tasks]
    out = [MatrixRow(name=baseline_name, size=baseline_size, scores={t.task: t.baseline for t in first.tasks})]
    for name, size, comp in rows:
        out.append(MatrixRow(name=name, size=size, scores={t.task: t.candidate for t in comp.tasks},
                             drops={t.task: t.drop for t in comp.tasks}, average_drop=comp.average_drop,
                             verdict=comp.verdict, comparison=comp))
    return Matrix(tasks=tasks, metrics={t.task: t.metric for t in first.tasks}, rows=out, policy=policy_of(spec),
                  unresolved=unresolved, selection=selection)


def from_matrix(body: dict, children: dict[str, dict | None]) -> Matrix:
    """A ModelEvaluationMatrix and its children by name (None: not found)."""
    meta, status = body["metadata"], body.get("status") or {}
    what = f"ModelEvaluationMatrix {meta['namespace']}/{meta['name']}"
    if status.get("observedGeneration") != meta.get("generation", 1):
        raise InputError(f"{what}: the operator has not reported on generation {meta.get('generation', 1)} yet")
    spec = ModelEvaluationMatrixSpec.model_validate(body.get("spec") or {})
    rows, unresolved = [], []
    for row in status.get("rows") or []:
        child = children.get(row["evaluation"])
        child_status = (child or {}).get("status") or {}
        if row.get("verdict") and mx.owned(child, meta["uid"]) and mx.settled(child) and child_status.get("verdict"):
            rows.append((row["name"], row.get("size"), comparison_of(child_status)))
        else:
            unresolved.append(UnresolvedRow(row["name"], row.get("size"), row.get("phase") or "Pending",
                                            row.get("reason"), row.get("message")))
    selection = Selection(status.get("selected"), status.get("selectionReason") or
                          f"{status.get('rowsDone') or '?'} rows settled; nothing selected before every row has")
    return _build(rows, unresolved, (status.get("baseline") or {}).get("name") or "Reference", spec.baseline.size,
                  spec.child_spec(spec.candidates[0]), selection, what)


def from_evaluation(body: dict) -> Matrix:
    """A ModelEvaluation: the reference and its one candidate."""
    meta, status = body["metadata"], body.get("status") or {}
    what = f"ModelEvaluation {meta['namespace']}/{meta['name']}"
    if not (mx.settled(body) and status.get("verdict")):
        raise InputError(f"{what} has no verdict (phase {status.get('phase') or 'unknown'})")
    spec = ModelEvaluationSpec.model_validate(body.get("spec") or {})
    models = status.get("models") or {}
    return _build([(models.get("candidate") or meta["name"], spec.candidate.size, comparison_of(status))], [],
                  models.get("baseline") or "Reference", spec.baseline.size, spec, None, what)


def read(cluster, namespace: str, name: str) -> Matrix:
    """The matrix of a ModelEvaluationMatrix, else of a ModelEvaluation, of that name."""
    body = cluster.get_matrix(namespace, name)
    if body is not None:
        rows = (body.get("status") or {}).get("rows") or []
        return from_matrix(body, {r["evaluation"]: cluster.get_evaluation(namespace, r["evaluation"]) for r in rows})
    body = cluster.get_evaluation(namespace, name)
    if body is None:
        raise InputError(f"neither a ModelEvaluationMatrix nor a ModelEvaluation {namespace}/{name} exists")
    return from_evaluation(body)
