"""`quantgate report --from-cluster`: the matrix a ModelEvaluationMatrix's owned children decided
(their full comparisons, the matrix's own selection), failed rows shown, foreign objects ignored."""

from pathlib import Path

import pytest

from quantgate.decision import compare
from quantgate.decision.model import Policy
from quantgate.errors import InputError
from quantgate.k8s import matrix as mx
from quantgate.k8s import status as st
from quantgate.lmeval.results import load_run
from quantgate.report.cluster import from_evaluation, read
from quantgate.report.html import render_html
from quantgate.report.text import render_matrix

EX = Path(__file__).resolve().parents[2] / "examples"
UID = "uid-seed"
SIZES = {"int8": "8.5Gi", "int4-g128": "5.4Gi", "int4-g64": "5.7Gi"}


def child(name, status, owner=UID):
    refs = [{"apiVersion": "quantgate.io/v1alpha1", "kind": "ModelEvaluationMatrix", "name": "seed", "uid": owner,
             "controller": True}] if owner else []
    return {"metadata": {"name": f"seed-{name}", "namespace": "ns", "generation": 1, "ownerReferences": refs},
            "spec": {}, "status": status}


def verdict_status(variant):
    comp = compare(load_run(EX / "fp16"), load_run(EX / variant), Policy())
    return st.succeeded(comp, 1, None, {"baseline": "b", "candidate": "c"}, at="2026-01-01T00:00:00Z")


class FakeCluster:
    def __init__(self, matrix, evals):
        self.matrix, self.evals = matrix, evals

    def get_matrix(self, ns, name):
        return self.matrix if self.matrix and name == "seed" else None

    def get_evaluation(self, ns, name):
        return self.evals.get(name)


def seed_world(statuses, owners=None):
    from quantgate.api.matrix import ModelEvaluationMatrixSpec

    owners = owners or {}
    spec_doc = {"baseline": {"inferenceServiceRef": {"name": "fp16"}, "size": "16.1Gi"}, "suite": "local",
                "selectUpTo": "Ship",
                "candidates": [{"name": n, "size": s, "inferenceServiceRef": {"name": n}} for n, s in SIZES.items()]}
    body = {"metadata": {"name": "seed", "namespace": "ns", "uid": UID, "generation": 1}, "spec": spec_doc}
    spec = ModelEvaluationMatrixSpec.model_validate(spec_doc)
    evals = {f"seed-{n}": child(n, s, owners.get(n, UID)) for n, s in statuses.items()}
    rows = [mx.row(c, f"seed-{c.name}", evals.get(f"seed-{c.name}"), UID) for c in spec.candidates]
    body["status"] = mx.status_patch(spec, 1, rows, None, "fp16")
    return FakeCluster(body, evals)


def test_the_matrix_from_the_cluster_renders_like_the_local_report():
    cluster = seed_world({v: verdict_status(v) for v in SIZES})
    m = read(cluster, "ns", "seed")
    assert [r.name for r in m.rows] == ["fp16", "int8", "int4-g128", "int4-g64"]
    assert [r.verdict.value for r in m.rows[1:]] == ["Ship", "Monitor", "Monitor"]
    assert m.rows[0].size == "16.1Gi" and m.rows[1].size == "8.5Gi"
    assert m.selected.name == "int8"  # the matrix's selection (selectUpTo Ship), not "smallest promotable"
    html = render_html(m)
    assert '<p id="selected">Selected: <b>int8</b>' in html and "int4-g128" in html and "<svg" in html
    assert "Selected" in render_matrix(m, "markdown")


def test_a_failed_row_is_shown_and_a_foreign_row_is_not_read():
    statuses = {"int8": verdict_status("int8"),
                "int4-g128": st.failed("EndpointTimeout", "gave up after 8s: candidate: refused", 1, None),
                "int4-g64": verdict_status("int4-g64")}
    cluster = seed_world(statuses)
    m = read(cluster, "ns", "seed")
    assert [r.name for r in m.rows[1:]] == ["int8", "int4-g64"]
    (failed,) = m.unresolved
    assert (failed.name, failed.phase, failed.reason) == ("int4-g128", "Failed", "EndpointTimeout")
    table = render_matrix(m, "table")
    assert "int4-g128" in table and "EndpointTimeout" in table
    assert "int4-g128: Failed" in render_html(m)
    # a child replaced by someone else's object after the operator wrote the row: not read
    cluster.evals["seed-int8"] = child("int8", verdict_status("int8"), owner="someone-else")
    m = read(cluster, "ns", "seed")
    assert [u.name for u in m.unresolved] == ["int8", "int4-g128"]


def test_a_plain_modelevaluation_is_a_one_row_matrix():
    body = {"metadata": {"name": "ev", "namespace": "ns", "generation": 1},
            "spec": {"baseline": {"inferenceServiceRef": {"name": "fp16"}},
                     "candidate": {"inferenceServiceRef": {"name": "int8"}, "size": "8.5Gi"}},
            "status": {**verdict_status("int8"), "models": {"baseline": "fp16", "candidate": "int8"}}}
    m = read(FakeCluster(None, {"ev": body}), "ns", "ev")
    assert [r.name for r in m.rows] == ["fp16", "int8"] and m.selected.name == "int8"
    with pytest.raises(InputError, match="no verdict"):
        from_evaluation({**body, "status": {"phase": "Running", "observedGeneration": 1}})
    with pytest.raises(InputError, match="neither"):
        read(FakeCluster(None, {}), "ns", "nothing")


def test_cli_refuses_mixing_files_and_cluster(capsys):
    from quantgate.cli import main

    rc = main(["report", "--from-cluster", "ns/seed", "--baseline", str(EX / "fp16")])
    assert rc == 2 and "--from-cluster" in capsys.readouterr().err
