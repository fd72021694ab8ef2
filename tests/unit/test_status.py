"""Status patches: the verdict belongs to one generation; failures fail closed."""

from quantgate.api.v1alpha1 import Phase
from quantgate.decision.model import Comparison, TaskComparison, Verdict
from quantgate.k8s import status as st


def _comparison(verdict=Verdict.BLOCK):
    return Comparison(
        verdict=verdict, promotable=verdict.promotable, profile="math-tutoring", aggregate="relativeDropOfMean",
        drop_mode="relative", average_drop=1.79, decisive=True,
        reasons=["gsm8k: drop 4.00% >= 2% limit of profile math-tutoring"],
        tasks=[TaskComparison(task="gsm8k", metric="exact_match,strict-match", baseline=0.5, candidate=0.48,
                              drop=4.0, limit=2.0, passed=False, n=1319)],
    )


def test_succeeded_carries_the_compare_fields_and_conditions():
    patch = st.succeeded(_comparison(), 4, None, {"baseline": "b", "candidate": "c"}, at="2026-01-01T00:00:00Z")
    assert patch["phase"] == "Succeeded" and patch["verdict"] == "Block" and patch["promotable"] is False
    assert patch["observedGeneration"] == 4 and patch["averageDrop"] == 1.79
    assert patch["tasks"][0]["drop"] == 4.0 and patch["reasons"]
    cond = {c["type"]: c for c in patch["conditions"]}
    assert cond["Evaluated"]["status"] == "True"
    assert cond["Promotable"]["status"] == "False" and cond["Promotable"]["reason"] == "Block"
    ship = st.succeeded(_comparison(Verdict.SHIP), 4, None, {}, at="t")
    assert ship["promotable"] is True
    assert {c["type"]: c["status"] for c in ship["conditions"]}["Promotable"] == "True"


def test_new_generation_clears_the_old_verdict():
    old = st.succeeded(_comparison(Verdict.SHIP), 1, None, {}, at="2026-01-01T00:00:00Z")
    patch = st.start_generation(2, {"baseline": "a", "candidate": "b"}, st.parse(old), at="2026-01-02T00:00:00Z")
    for key in st.VERDICT_KEYS:
        assert key in patch and patch[key] is None
    assert patch["phase"] == "Pending" and patch["observedGeneration"] == 2 and patch["promotable"] is False
    assert patch["jobName"] is None and patch["finishedAt"] is None
    cond = {c["type"]: c for c in patch["conditions"]}
    assert cond["Promotable"]["status"] == "False"
    # Promotable flipped True -> False: a new transition time
    assert cond["Promotable"]["lastTransitionTime"] == "2026-01-02T00:00:00Z"


def test_failed_never_has_a_verdict():
    patch = st.failed("JobFailed", "runner Job x failed", 2, None, at="t")
    assert patch["phase"] == "Failed" and patch["promotable"] is False
    assert all(patch[k] is None for k in st.VERDICT_KEYS)
    assert {c["type"]: c["status"] for c in patch["conditions"]} == {"Evaluated": "False", "Promotable": "False"}


def test_transition_time_kept_while_status_unchanged():
    first = st.progress(Phase.PENDING, "Queued", "m", 1, None, at="t1")
    second = st.progress(Phase.WAITING_FOR_ENDPOINTS, "X", "m", 1, st.parse(first), at="t2")
    assert all(c["lastTransitionTime"] == "t1" for c in second["conditions"])


def test_settled_and_job_outcome():
    assert st.is_settled(st.parse({"observedGeneration": 2, "phase": "Succeeded"}), 2)
    assert not st.is_settled(st.parse({"observedGeneration": 1, "phase": "Succeeded"}), 2)
    assert not st.is_settled(st.parse({"observedGeneration": 2, "phase": "Running"}), 2)
    assert not st.is_settled(None, 2)
    # the kopf boundary routes on the wire form: phase and observedGeneration, parsed
    assert st.settled_on_the_wire({"observedGeneration": 2, "phase": "Failed", "jobName": "j"}, 2)
    assert not st.settled_on_the_wire({"observedGeneration": 2, "phase": "Running"}, 2)
    assert not st.settled_on_the_wire(None, 2)
    assert not st.settled_on_the_wire({"observedGeneration": 2, "phase": "Done"}, 2)  # not a phase: reconciled
    job = {"status": {"conditions": [{"type": "Failed", "status": "True", "reason": "DeadlineExceeded",
                                      "message": "Job was active longer than specified deadline"}]}}
    assert st.job_outcome(job) == ("Failed", "Job was active longer than specified deadline")
    assert st.job_outcome({"status": {}}) == (None, "")


def test_patches_are_typed_by_the_api_and_carry_only_what_they_set():
    import pytest
    from pydantic import ValidationError

    evidence = {"jobName": "j", "jobUID": "u-1", "results": [{"role": "baseline", "name": "j-baseline", "sha256": "ab" * 32,
                                                            "objects": [{"name": "j-baseline", "uid": "u-2"}]}]}
    patch = st.succeeded(_comparison(), 2, None, {"baseline": "b"}, at="t", evidence=evidence)
    assert patch["evidence"] == evidence and "progressive" not in patch and "jobName" not in patch
    running = st.progress(Phase.RUNNING, "JobRunning", "m", 2, None, at="t", job_name="j", results_ref={"candidate": "c"})
    assert running["jobName"] == "j" and running["resultsRef"] == {"candidate": "c"}
    assert set(running) == {"phase", "reason", "message", "promotable", "conditions", "jobName", "resultsRef"}
    with pytest.raises(ValidationError):  # a mistyped field fails here, not in the API server
        st.progress(Phase.RUNNING, "JobRunning", "m", 2, None, results_ref={"candidate": 3})
    with pytest.raises(ValidationError):  # unknown fields are refused (the API types forbid extras)
        st.succeeded(_comparison(), 2, None, {"baseline": "b"}, evidence={"jobname": "j"})
