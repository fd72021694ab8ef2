"""ModelEvaluationMatrix: spec, child ModelEvaluations, rows, selection (pure), and the
reconciler against an in-memory cluster (pilot first, ownership, spec edits, removed rows)."""

import copy

import pytest
from pydantic import ValidationError

from quantgate.api.matrix import ModelEvaluationMatrixSpec
from quantgate.api.v1alpha1 import ModelEvaluationSpec, Phase
from quantgate.k8s import matrix as mx
from quantgate.k8s.cluster import Conflict
from quantgate.k8s.matrix_reconcile import MatrixReconciler
from quantgate.k8s.settings import Settings

UID = "uid-matrix-1"
# the seed's variants (examples/simulate/demo-fleet.yaml)
SEED = [("int8", "8.5Gi"), ("int4-g128", "5.4Gi"), ("int4-g64", "5.7Gi")]


def isvc(name):
    return {"inferenceServiceRef": {"name": name}}


def spec_doc(**extra):
    return {"baseline": isvc("fp16"), "suite": "local", "limit": 8,
            "candidates": [{"name": n, "size": s, **isvc(n)} for n, s in SEED], **extra}


def matrix_body(spec=None, name="seed", generation=1):
    return {"apiVersion": "quantgate.io/v1alpha1", "kind": "ModelEvaluationMatrix",
            "metadata": {"name": name, "namespace": "ns", "uid": UID, "generation": generation,
                         "resourceVersion": "1"},
            "spec": spec or spec_doc()}


def child(name, status=None, owner=UID, generation=1, spec=None):
    meta = {"name": name, "namespace": "ns", "uid": f"uid-{name}", "generation": generation, "resourceVersion": "1"}
    if owner:
        meta["ownerReferences"] = [{"apiVersion": "quantgate.io/v1alpha1", "kind": "ModelEvaluationMatrix",
                                    "name": "seed", "uid": owner, "controller": True}]
    return {"apiVersion": "quantgate.io/v1alpha1", "kind": "ModelEvaluation", "metadata": meta,
            "spec": spec or {}, "status": status or {}}


def succeeded(verdict, drop, gsm8k=0.5, generation=1, reused=True):
    return {"phase": "Succeeded", "observedGeneration": generation, "verdict": verdict, "reason": verdict,
            "promotable": verdict in ("Ship", "Monitor"), "averageDrop": drop, "decisive": False,
            "resultsRef": {"baselineReused": reused},
            "tasks": [{"task": "gsm8k", "metric": "exact_match", "baseline": 0.52, "candidate": gsm8k, "drop": 1.0}]}


def failed(reason="EndpointTimeout", message="gave up after 8s: candidate: connection refused"):
    return {"phase": "Failed", "observedGeneration": 1, "reason": reason, "message": message, "promotable": False}


# ---------------------------------------------------------------------------- the API


def test_spec_shares_every_modelevaluation_field_but_candidate():
    from quantgate.api.matrix import ModelEvaluationMatrixSpec as M

    shared = set(ModelEvaluationSpec.model_fields) - {"candidate"}
    assert shared <= set(M.model_fields)
    assert set(M.model_fields) - shared == {"candidates", "select_up_to"}


def test_child_spec_is_a_modelevaluation_spec_with_the_candidate():
    spec = ModelEvaluationMatrixSpec.model_validate(spec_doc(profile="math-tutoring"))
    child_spec = spec.child_spec(spec.candidates[1])
    assert child_spec.candidate.inference_service_ref.name == "int4-g128"
    assert child_spec.candidate.size == "5.4Gi"
    assert child_spec.profile == "math-tutoring" and child_spec.limit == 8 and child_spec.suite == "local"
    assert child_spec.baseline.inference_service_ref.name == "fp16"
    assert spec.select_up_to == "Ship"


@pytest.mark.parametrize("size", ["8Gi", "8589934592", "8.5Gi", "16G", "512Mi"])
def test_sizes_are_byte_quantities(size):
    ModelEvaluationMatrixSpec.model_validate(spec_doc(candidates=[{"name": "a", "size": size, **isvc("a")}]))


@pytest.mark.parametrize("size", ["8 GB", "500m", "1e9", "", "8GiB"])
def test_other_sizes_are_rejected(size):
    with pytest.raises(ValidationError):
        ModelEvaluationMatrixSpec.model_validate(spec_doc(candidates=[{"name": "a", "size": size, **isvc("a")}]))


def test_size_is_required_and_names_unique_and_valid():
    with pytest.raises(ValidationError, match="size"):
        ModelEvaluationMatrixSpec.model_validate(spec_doc(candidates=[{"name": "a", **isvc("a")}]))
    with pytest.raises(ValidationError, match="unique"):
        ModelEvaluationMatrixSpec.model_validate(spec_doc(candidates=[{"name": "a", "size": "1Gi", **isvc("a")},
                                                                      {"name": "a", "size": "2Gi", **isvc("b")}]))
    with pytest.raises(ValidationError):
        ModelEvaluationMatrixSpec.model_validate(spec_doc(candidates=[{"name": "Int8", "size": "1Gi", **isvc("a")}]))
    with pytest.raises(ValidationError):
        ModelEvaluationMatrixSpec.model_validate(spec_doc(selectUpTo="ABTest"))


def test_crd_has_the_matrix_columns_and_rules():
    from quantgate.api import crd

    doc = crd.crd("ModelEvaluationMatrix")
    names = doc["spec"]["names"]
    assert names["plural"] == "modelevaluationmatrices" and names["shortNames"] == ["mevalmatrix", "mevm"]
    version = doc["spec"]["versions"][0]
    assert [c["name"] for c in version["additionalPrinterColumns"] if not c.get("priority")] == \
        ["Selected", "Rows Done", "Age"]
    spec = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert spec["properties"]["candidates"]["items"]["properties"]["size"]["pattern"] == mx.mapi.SIZE_PATTERN
    assert "size" in spec["properties"]["candidates"]["items"]["required"]
    assert spec["properties"]["selectUpTo"]["enum"] == ["Ship", "Monitor"]
    assert any("unique" in r["message"] for r in spec["x-kubernetes-validations"])


def test_committed_matrix_crd_matches_models():
    from pathlib import Path

    from quantgate.api import crd

    root = Path(__file__).resolve().parents[2]
    committed = root / "manifests/crd/modelevaluationmatrices.quantgate.io.yaml"
    assert committed.read_text() == crd.render("ModelEvaluationMatrix"), (
        "manifests/crd is stale: run `make crd`")


# ---------------------------------------------------------------------------- children


def test_child_names_fit_a_label_value():
    assert mx.child_name("seed", "int8") == "seed-int8"
    long = mx.child_name("m" * 70, "int4-g128")
    assert len(long) <= 63 and long.endswith("-int4-g128")
    assert mx.child_name("m" * 70, "int8") != mx.child_name("m" * 69 + "n", "int8")


def test_child_body_is_owned_by_the_matrix():
    body = matrix_body()
    spec = ModelEvaluationMatrixSpec.model_validate(body["spec"])
    c = mx.child_body(body, spec, spec.candidates[0])
    assert c["kind"] == "ModelEvaluation" and c["metadata"]["name"] == "seed-int8"
    (ref,) = c["metadata"]["ownerReferences"]
    assert ref["kind"] == "ModelEvaluationMatrix" and ref["uid"] == UID and ref["controller"] is True
    assert c["metadata"]["labels"][mx.LABEL_MATRIX] == "seed"
    ModelEvaluationSpec.model_validate(c["spec"])
    assert mx.owned(c, UID) and not mx.owned(c, "other-uid")


# ---------------------------------------------------------------------------- rows and selection


def rows_of(statuses, up_to="Ship", owners=None):
    spec = ModelEvaluationMatrixSpec.model_validate(spec_doc(selectUpTo=up_to))
    owners = owners or {}
    children = {c.name: (child(f"seed-{c.name}", statuses[c.name], owner=owners.get(c.name, UID))
                         if statuses.get(c.name) is not None else None) for c in spec.candidates}
    rows = [mx.row(c, f"seed-{c.name}", children[c.name], UID) for c in spec.candidates]
    return spec, rows, children


SEED_GENERAL = {"int8": succeeded("Ship", 0.8), "int4-g128": succeeded("Monitor", 2.2),
                "int4-g64": succeeded("Monitor", 1.2)}
SEED_MATH = {"int8": succeeded("Ship", 0.8), "int4-g128": succeeded("Block", 2.2),
             "int4-g64": succeeded("Block", 1.2)}


def test_rows_carry_size_scores_drop_verdict_promotable_decisive():
    _, rows, _ = rows_of(SEED_GENERAL)
    int8 = rows[0]
    assert (int8.name, int8.size, int8.verdict.value, int8.promotable, int8.decisive, int8.average_drop) == \
        ("int8", "8.5Gi", "Ship", True, False, 0.8)
    assert int8.scores == {"gsm8k": 0.5} and int8.drops == {"gsm8k": 1.0} and int8.baseline_reused


def test_seed_selects_int8_under_general_and_math_tutoring():
    for statuses in (SEED_GENERAL, SEED_MATH):
        spec, rows, children = rows_of(statuses)
        patch = mx.status_patch(spec, 1, rows, mx.baseline_scores(list(children.values()), UID), "fp16")
        assert patch["selected"] == "int8" and patch["phase"] == "Succeeded" and patch["rowsDone"] == "3/3"
        assert patch["baseline"] == {"name": "fp16", "scores": {"gsm8k": 0.52}}


def test_select_up_to_monitor_takes_the_smallest_monitor_variant():
    _, rows, _ = rows_of(SEED_GENERAL, "Monitor")
    assert mx.select(rows, "Monitor").name == "int4-g128"  # 5.4Gi < 5.7Gi < 8.5Gi
    _, rows, _ = rows_of(SEED_MATH, "Monitor")
    assert mx.select(rows, "Monitor").name == "int8"  # both INT4 variants Block under math-tutoring


def test_ties_go_to_the_lower_average_drop():
    spec = ModelEvaluationMatrixSpec.model_validate(spec_doc(candidates=[
        {"name": "a", "size": "5Gi", **isvc("a")}, {"name": "b", "size": "5120Mi", **isvc("b")}]))
    rows = [mx.row(c, c.name, child(c.name, succeeded("Ship", d)), UID) for c, d in zip(spec.candidates, (0.9, 0.4))]
    assert mx.select(rows, "Ship").name == "b"


def test_none_selected_when_no_row_fits():
    _, rows, _ = rows_of({"int8": succeeded("ABTest", 4), "int4-g128": succeeded("Block", 9),
                          "int4-g64": succeeded("Monitor", 2)})
    sel = mx.select(rows, "Ship")
    assert sel.name is None and "Ship" in sel.reason


def test_a_failed_row_fails_closed_and_hides_no_other_row():
    spec, rows, children = rows_of({"int8": succeeded("Ship", 0.8), "int4-g128": failed(),
                                    "int4-g64": succeeded("Monitor", 1.2)}, "Monitor")
    broken = rows[1]
    assert broken.phase == Phase.FAILED and broken.verdict is None and broken.promotable is False
    assert broken.reason == "EndpointTimeout" and "connection refused" in broken.message
    patch = mx.status_patch(spec, 1, rows, None, "fp16")
    assert [r["name"] for r in patch["rows"]] == ["int8", "int4-g128", "int4-g64"]
    assert patch["selected"] == "int4-g64"  # the smaller int4-g128 failed: never selected
    assert patch["rowsDone"] == "3/3" and "failed rows: int4-g128" in patch["message"]


def test_a_modelevaluation_not_owned_by_the_matrix_is_not_counted():
    spec, rows, children = rows_of(SEED_GENERAL, "Monitor", owners={"int4-g128": "someone-elses-uid"})
    taken = rows[1]
    assert taken.phase == Phase.FAILED and taken.reason == "NameTaken" and taken.verdict is None
    assert mx.select(rows, "Monitor").name == "int4-g64"
    # an evaluation with no owner at all is not counted either
    spec, rows, children = rows_of(SEED_GENERAL, "Monitor", owners={"int4-g128": None})
    assert rows[1].reason == "NameTaken"


def test_nothing_is_selected_until_every_row_settled():
    spec, rows, _ = rows_of({"int8": succeeded("Ship", 0.8), "int4-g128": {"phase": "Running",
                            "observedGeneration": 1, "reason": "JobRunning"}, "int4-g64": None})
    patch = mx.status_patch(spec, 1, rows, None, "fp16")
    assert patch["selected"] is None and patch["phase"] == "Running" and patch["rowsDone"] == "1/3"
    assert [r["phase"] for r in patch["rows"]] == ["Succeeded", "Running", "Pending"]


def test_a_verdict_of_an_older_child_generation_does_not_count():
    spec = ModelEvaluationMatrixSpec.model_validate(spec_doc())
    old = child("seed-int8", succeeded("Ship", 0.8, generation=1), generation=2)
    r = mx.row(spec.candidates[0], "seed-int8", old, UID)
    assert r.phase == Phase.PENDING and r.verdict is None


# ---------------------------------------------------------------------------- the reconciler


class FakeCluster:
    """The calls MatrixReconciler makes, in memory; the apiserver's generation bump on a spec change."""

    def __init__(self, body):
        self.matrix = copy.deepcopy(body)
        self.evals: dict[str, dict] = {}
        self.created: list[str] = []
        self.deleted: list[str] = []
        self.patches = 0

    def get_matrix(self, ns, name):
        return copy.deepcopy(self.matrix)

    def patch_matrix_status(self, body, patch):
        if body["metadata"]["resourceVersion"] != self.matrix["metadata"]["resourceVersion"]:
            raise Conflict("moved")
        status = self.matrix.setdefault("status", {})
        for k, v in patch.items():
            if v is None:
                status.pop(k, None)
            else:
                status[k] = v
        self.matrix["metadata"]["resourceVersion"] = str(int(self.matrix["metadata"]["resourceVersion"]) + 1)
        self.patches += 1
        return copy.deepcopy(self.matrix)

    def get_evaluation(self, ns, name):
        return copy.deepcopy(self.evals.get(name))

    def create_evaluation(self, body):
        name = body["metadata"]["name"]
        if name in self.evals:
            return None
        obj = copy.deepcopy(body)
        obj["metadata"].update(uid=f"uid-{name}", generation=1, resourceVersion="1")
        self.evals[name] = obj
        self.created.append(name)
        return copy.deepcopy(obj)

    def delete_evaluation(self, ns, name, uid):
        self.evals.pop(name)
        self.deleted.append(name)

    def evaluations_labeled(self, ns, selector):
        key, value = selector.split("=")
        return [copy.deepcopy(e) for e in self.evals.values()
                if (e["metadata"].get("labels") or {}).get(key) == value]

    def settle(self, name, status):
        self.evals[name]["status"] = status


def make(spec=None):
    cluster = FakeCluster(matrix_body(spec))
    return cluster, MatrixReconciler(cluster, Settings())


def test_the_first_candidate_runs_alone_then_the_rest_reuse_its_baseline():
    cluster, rec = make()
    assert rec.reconcile("ns", "seed") == Settings().running_requeue_s
    assert cluster.created == ["seed-int8"]
    assert cluster.matrix["status"]["rowsDone"] == "0/3"
    rec.reconcile("ns", "seed")
    assert cluster.created == ["seed-int8"]  # still running: nothing else starts
    cluster.settle("seed-int8", succeeded("Ship", 0.8, reused=False))
    rec.reconcile("ns", "seed")
    assert cluster.created == ["seed-int8", "seed-int4-g128", "seed-int4-g64"]
    cluster.settle("seed-int4-g128", succeeded("Monitor", 2.2))
    cluster.settle("seed-int4-g64", succeeded("Monitor", 1.2))
    assert rec.reconcile("ns", "seed") is None
    status = cluster.matrix["status"]
    assert status["selected"] == "int8" and status["rowsDone"] == "3/3" and status["phase"] == "Succeeded"
    patches = cluster.patches
    rec.reconcile("ns", "seed")
    assert cluster.patches == patches  # nothing changed: no write


def test_a_failed_pilot_still_opens_the_gate():
    cluster, rec = make()
    rec.reconcile("ns", "seed")
    cluster.settle("seed-int8", failed())
    rec.reconcile("ns", "seed")
    assert len(cluster.created) == 3


def test_a_foreign_modelevaluation_with_a_childs_name_is_left_alone():
    cluster, rec = make()
    foreign = child("seed-int4-g128", succeeded("Ship", 0.1), owner=None, spec={"x": 1})
    cluster.evals["seed-int4-g128"] = copy.deepcopy(foreign)
    rec.reconcile("ns", "seed")
    cluster.settle("seed-int8", succeeded("Ship", 0.8))
    rec.reconcile("ns", "seed")
    cluster.settle("seed-int4-g64", succeeded("Ship", 0.5))
    rec.reconcile("ns", "seed")
    assert cluster.evals["seed-int4-g128"] == foreign  # not replaced, not patched
    rows = {r["name"]: r for r in cluster.matrix["status"]["rows"]}
    assert rows["int4-g128"]["reason"] == "NameTaken" and "verdict" not in rows["int4-g128"]
    # its Ship at 0.1% would win; it is not ours, so the smallest of ours is chosen
    assert cluster.matrix["status"]["selected"] == "int4-g64"


def test_a_spec_edit_recreates_the_children_and_a_removed_candidate_is_deleted():
    cluster, rec = make()
    rec.reconcile("ns", "seed")
    cluster.settle("seed-int8", succeeded("Ship", 0.8))
    rec.reconcile("ns", "seed")
    doc = spec_doc(profile="math-tutoring")
    doc["candidates"] = doc["candidates"][:2]
    cluster.matrix["spec"] = doc
    cluster.matrix["metadata"]["generation"] = 2
    rec.reconcile("ns", "seed")
    assert sorted(cluster.deleted) == ["seed-int4-g128", "seed-int4-g64", "seed-int8"]
    status = cluster.matrix["status"]
    assert status["observedGeneration"] == 2 and status["rowsDone"] == "0/2" and "selected" not in status
    assert [r["reason"] for r in status["rows"]] == ["SpecUpdated", "SpecUpdated"]
    rec.reconcile("ns", "seed")  # the pilot again, with the new spec; the rest after it
    assert cluster.evals["seed-int8"]["spec"]["profile"] == "math-tutoring" and "seed-int4-g128" not in cluster.evals
    cluster.settle("seed-int8", succeeded("Ship", 0.8))
    rec.reconcile("ns", "seed")
    assert cluster.evals["seed-int4-g128"]["spec"]["profile"] == "math-tutoring"


def test_an_invalid_spec_fails_the_matrix():
    doc = spec_doc()
    doc["candidates"][0]["size"] = "lots"
    cluster, rec = make(doc)
    assert rec.reconcile("ns", "seed") is None
    status = cluster.matrix["status"]
    assert status["phase"] == "Failed" and status["reason"] == "InvalidSpec" and "size" in status["message"]
    assert cluster.created == []


# ---------------------------------------------------------------------------- handlers and the work queue


def test_matrix_and_child_events_drive_the_matrix_through_the_one_work_queue(monkeypatch):
    import asyncio

    from quantgate.k8s import handlers
    from quantgate.k8s.workqueue import WorkQueue

    cluster, rec = make()
    fast = Settings(poll_interval_s=30.0)  # only events move it in this test
    rec.settings = fast
    for name in ("_bodies", "_finished_jobs", "_dependents", "_depends_on", "_last_full"):
        monkeypatch.setattr(handlers, name, {})
    for name in ("observe", "forget", "observe_matrix", "forget_matrix"):
        monkeypatch.setattr(handlers.metrics, name, lambda *a, **k: None)
    monkeypatch.setitem(handlers._state, "executor", None)
    monkeypatch.setitem(handlers._state, "matrix_reconciler", rec)
    monkeypatch.setitem(handlers._state, "settings", fast)

    async def scenario():
        queue = WorkQueue(handlers._reconcile_key, workers=2)
        monkeypatch.setitem(handlers._state, "queue", queue)
        queue.start()
        try:
            handlers.observe_matrix("ADDED", "ns", "seed", cluster.matrix)
            await until(lambda: cluster.created == ["seed-int8"])
            cluster.settle("seed-int8", succeeded("Ship", 0.8))
            handlers.observe_evaluation("MODIFIED", "ns", "seed-int8", cluster.evals["seed-int8"])
            await until(lambda: len(cluster.created) == 3)
            # someone else's evaluation does not wake the matrix
            patches = cluster.patches
            handlers.observe_evaluation("MODIFIED", "ns", "other", child("other", succeeded("Ship", 0.1), owner=None))
            await asyncio.sleep(0.2)
            assert cluster.patches == patches
        finally:
            await queue.stop()

    async def until(check, timeout=10.0):
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while not check():
            assert loop.time() < end, "condition not reached"
            await asyncio.sleep(0.02)

    asyncio.run(scenario())


def test_a_candidate_added_with_an_edit_waits_for_the_first_row_of_the_new_spec():
    cluster, rec = make()
    rec.reconcile("ns", "seed")
    cluster.settle("seed-int8", succeeded("Ship", 0.8))
    doc = spec_doc(profile="math-tutoring")
    doc["candidates"].append({"name": "int3", "size": "4Gi", **isvc("int3")})
    cluster.matrix["spec"] = doc
    cluster.matrix["metadata"]["generation"] = 2
    rec.reconcile("ns", "seed")
    assert "seed-int3" not in cluster.created  # the first row (new spec) runs alone again
    rec.reconcile("ns", "seed")
    assert cluster.created[-1] == "seed-int8" and "seed-int3" not in cluster.created
