"""`quantgate verify`: re-derive a stored verdict (against the in-memory cluster of the reconciler tests,
with the real decision engine and real results ConfigMaps)."""

import pytest

from quantgate.commands.verify import problems
from quantgate.errors import InputError
from quantgate.k8s import names
from quantgate.k8s import reconcile as rc
from quantgate.k8s.settings import Settings
from quantgate.k8s.verified import limits_of
from test_status_reconcile import NS, FakeCluster, ready_isvc

SPEC = {"baseline": {"inferenceServiceRef": {"name": "fp16"}}, "candidate": {"inferenceServiceRef": {"name": "int4"}},
        "suite": "local", "tasks": [{"name": "gsm8k", "limit": 5}]}
LIMITS = limits_of(Settings())


@pytest.fixture
def decided(monkeypatch):
    cluster = FakeCluster()
    cluster.isvcs = {"fp16": ready_isvc("fp16"), "int4": ready_isvc("int4")}
    monkeypatch.setattr(rc.endpoints, "preflight", lambda *a, **k: None)
    rec = rc.Reconciler(cluster, Settings())
    cluster.add_eval("a", SPEC)
    rec.reconcile(NS, "a")
    cluster.finish_job(names.job_name("a", 1))
    rec.reconcile(NS, "a")
    assert cluster.evals["a"]["status"]["verdict"] == "Ship"
    return cluster


def test_an_honest_verdict_verifies(decided):
    assert problems(decided, decided.get_evaluation(NS, "a"), LIMITS) == []


def test_a_status_that_does_not_follow_from_its_results_is_a_mismatch(decided):
    body = decided.get_evaluation(NS, "a")
    body["status"].update(verdict="Block", promotable=False)
    found = problems(decided, body, LIMITS)
    assert any(line.startswith("verdict: status says 'Block'") for line in found)


def test_replaced_results_are_a_mismatch(decided):
    body = decided.get_evaluation(NS, "a")
    name = names.results_name(names.job_name("a", 1), "candidate")
    decided.cms[name]["metadata"]["uid"] = "re-created"
    assert problems(decided, body, LIMITS) == ["candidate: results objects were replaced since the verdict (UIDs differ)"]
    del decided.cms[name]
    assert "not found" in problems(decided, body, LIMITS)[0]


def test_nothing_to_verify_is_bad_input(decided):
    body = decided.get_evaluation(NS, "a")
    body["metadata"]["generation"] = 2
    with pytest.raises(InputError, match="generation"):
        problems(decided, body, LIMITS)
    body = decided.get_evaluation(NS, "a")
    body["status"].pop("evidence")
    with pytest.raises(InputError, match="evidence"):
        problems(decided, body, LIMITS)
