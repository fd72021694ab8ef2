"""quantgate.k8s.trust: every check a results payload must pass before the operator decides, each
tried with the object an attacker (or a broken runner) would produce."""

from __future__ import annotations

import copy
import gzip
import json
import random

import pytest

from quantgate.api.v1alpha1 import ModelEvaluationSpec
from quantgate.k8s import results_channel as rc
from quantgate.k8s import trust
from quantgate.core.runs import COMPACT_VERSION

JOB = {"metadata": {"name": "ev-g1-abcde", "uid": "job-uid", "creationTimestamp": "2026-01-01T00:00:00Z"}}
POD = {"metadata": {"name": "ev-g1-abcde-x7k2q", "uid": "pod-uid",
                    "ownerReferences": [{"kind": "Job", "name": "ev-g1-abcde", "uid": "job-uid", "controller": True}]}}
SPEC = ModelEvaluationSpec.model_validate({
    "baseline": {"endpoint": {"url": "http://b", "model": "m-fp16"}},
    "candidate": {"endpoint": {"url": "http://c", "model": "m-int4"}},
    "suite": "local", "tasks": [{"name": "gsm8k", "limit": 8}, {"name": "arc_challenge", "numFewshot": 5}],
    "limit": 20})
WANT = trust.expected(SPEC, "m-int4")
LIMITS = trust.Limits(stored=64 * 1024, decompressed=256 * 1024)


def doc(**run) -> dict:
    base = {"model": "m-int4", "lmEvalVersion": "0.4.13", "quantgateVersion": "0.1.0",
            "tasks": [{"name": "gsm8k", "numFewshot": None, "limit": 8},
                      {"name": "arc_challenge", "numFewshot": 5, "limit": 20}]}
    return {"v": COMPACT_VERSION, "tasks": {"gsm8k": {"m": {"exact_match,strict-match": 0.5}},
                                            "arc_challenge": {"m": {"acc_norm,none": 0.6}}},
            "run": {**base, **run}}


def published(payload: bytes, *, part_bytes: int = rc.PART_BYTES, pod=("ev-g1-abcde-x7k2q", "pod-uid")) -> list[dict]:
    cms = rc.build_configmaps(payload, namespace="ns", name="ev-g1-abcde-candidate", role="candidate",
                              job=("ev-g1-abcde", "job-uid"), pod=pod, part_bytes=part_bytes)
    for i, cm in enumerate(cms):
        cm["metadata"].update(uid=f"cm-{i}", creationTimestamp="2026-01-01T00:00:03Z")
    head, parts = cms[-1], cms[:-1]
    return [head, *parts]


def verify(cms, pods=None, want=WANT):
    head, *parts = cms
    return trust.verify_job_results(head, parts, role="candidate", job=JOB,
                                    pods={POD["metadata"]["name"]: POD} if pods is None else pods,
                                    want=want, limits=LIMITS)


def failed_check(cms, **kw) -> str:
    with pytest.raises(trust.Untrusted) as exc:
        verify(cms, **kw)
    return exc.value.check


def test_honest_results_pass_and_are_recorded():
    cms = published(rc.encode(doc()))
    v = verify(cms)
    assert v.compact["run"]["model"] == "m-int4" and v.objects == [{"name": "ev-g1-abcde-candidate", "uid": "cm-0"}]


def test_split_payload_passes_with_every_part_checked():
    big = doc()
    big["samples"] = {"gsm8k": {"c": [i % 2 for i in range(20000)]}}
    payload = rc.encode(big)
    cms = published(payload, part_bytes=len(payload) // 3 + 1)
    assert len(cms) == 3
    verify(cms)
    cms[2]["immutable"] = False
    assert failed_check(cms) == "immutable"


@pytest.mark.parametrize("mutate,check", [
    (lambda cm: cm.pop("immutable"), "immutable"),
    (lambda cm: cm["metadata"].pop("ownerReferences"), "owner"),
    (lambda cm: cm["metadata"]["ownerReferences"][0].update(uid="other-job-uid"), "owner"),
    (lambda cm: cm["metadata"]["labels"].update({trust.LABEL_JOB: "other-g1-fffff"}), "job"),
    (lambda cm: cm["metadata"]["labels"].update({"quantgate.io/role": "baseline"}), "job"),
    (lambda cm: cm["metadata"]["annotations"].update({trust.ANN_POD_NAME: "attacker"}), "creator"),
    (lambda cm: cm["metadata"]["annotations"].update({trust.ANN_POD_UID: "another-pod"}), "creator"),
    (lambda cm: cm["metadata"].update(creationTimestamp="2025-12-31T23:59:59Z"), "created"),
    (lambda cm: cm["metadata"]["annotations"].update({rc.ANN_SHA256: "0" * 64}), "checksum"),
])
def test_each_provenance_check_refuses_a_forgery(mutate, check):
    cms = published(rc.encode(doc()))
    mutate(cms[0])
    assert failed_check(cms) == check


def test_creator_pod_gone_or_not_the_jobs():
    cms = published(rc.encode(doc()))
    assert failed_check(cms, pods={}) == "creator"
    stranger = copy.deepcopy(POD)
    stranger["metadata"]["ownerReferences"][0]["uid"] = "someone-elses-job"
    assert failed_check(cms, pods={POD["metadata"]["name"]: stranger}) == "creator"


def test_a_copy_of_another_jobs_results_is_refused():
    """An editor copies evaluation B's Ship results under A's name: B's Job and pod do not match."""
    cms = rc.build_configmaps(rc.encode(doc()), namespace="ns", name="ev-g1-abcde-candidate", role="candidate",
                              job=("other-g1-fffff", "other-job-uid"), pod=("other-g1-fffff-aaaaa", "p2"))
    for cm in cms:
        cm["metadata"].update(uid="x", creationTimestamp="2026-01-01T00:00:03Z")
    assert failed_check(cms) == "owner"


def test_oversized_stored_payload_refused_before_decompression():
    noise = random.Random(1).randbytes(100 * 1024)  # incompressible: > 64 KiB stored
    cms = published(gzip.compress(noise))
    assert failed_check(cms) == "size"


def test_part_count_refused_before_fetching_parts():
    head = published(rc.encode(doc()))[0]
    head["metadata"]["annotations"][rc.ANN_PARTS] = "100000"
    with pytest.raises(trust.Untrusted) as exc:
        trust.part_count(head, LIMITS, rc.PART_BYTES)
    assert exc.value.check == "size"
    head["metadata"]["annotations"][rc.ANN_PARTS] = "-1"
    with pytest.raises(trust.Untrusted):
        trust.part_count(head, LIMITS, rc.PART_BYTES)


def test_decompression_bomb_stops_at_the_limit():
    bomb = gzip.compress(b"[" * (50 * 1024 * 1024), compresslevel=9)  # 50 MiB from ~50 KiB
    assert len(bomb) < LIMITS.stored
    with pytest.raises(trust.Untrusted) as exc:
        trust.decode(bomb, LIMITS)
    assert exc.value.check == "size"


@pytest.mark.parametrize("payload", [
    b"not gzip at all",
    gzip.compress(b"{not json"),
    gzip.compress(b"[1, 2]"),
    gzip.compress(b"[" * 100000 + b"]" * 100000),  # nesting deeper than the parser's recursion
    gzip.compress(json.dumps({"v": 1, "tasks": {}}).encode())[:-8],  # truncated stream
])
def test_malformed_payloads_are_format_failures(payload):
    with pytest.raises(trust.Untrusted) as exc:
        trust.decode(payload, LIMITS)
    assert exc.value.check in ("format", "tasks")


@pytest.mark.parametrize("run,check", [
    ({"model": "m-fp16"}, "model"),
    ({"tasks": [{"name": "gsm8k", "numFewshot": None, "limit": 8}]}, "tasks"),
    ({"tasks": [{"name": "gsm8k", "numFewshot": None, "limit": 8}, {"name": "arc_challenge", "numFewshot": 0,
                                                                     "limit": 20}]}, "tasks"),
    ({"tasks": [{"name": "gsm8k", "numFewshot": None, "limit": 1000}, {"name": "arc_challenge", "numFewshot": 5,
                                                                        "limit": 20}]}, "limit"),
    ({"tasks": [{"name": "gsm8k", "numFewshot": None, "limit": 8}, {"name": "arc_challenge", "numFewshot": 5,
                                                                    "limit": 20}, {"name": "mmlu", "limit": 8}]},
     "tasks"),
])
def test_results_must_match_the_spec(run, check):
    with pytest.raises(trust.Untrusted) as exc:
        trust.check_spec(doc(**run), WANT)
    assert exc.value.check == check


def test_a_planned_task_without_a_score_is_refused():
    d = doc()
    del d["tasks"]["arc_challenge"]
    with pytest.raises(trust.Untrusted, match="no score for task arc_challenge"):
        trust.check_spec(d, WANT)


def test_results_without_a_run_record_are_refused():
    d = doc()
    del d["run"]
    with pytest.raises(trust.Untrusted):
        trust.check_spec(d, WANT)


def cache_entry(payload: bytes):
    cms = rc.build_configmaps(payload, namespace="ns", name="ev-g1-abcde-cache", role="baseline",
                              evaluation="ev", owner_uid="ev-uid")
    cms[-1]["metadata"]["uid"] = "cache-uid"
    return cms[-1]


def test_reused_baseline_only_when_vouched_for_by_an_operator_status():
    want = trust.expected(SPEC, None)
    payload = rc.encode(doc(model="m-fp16"))
    head = cache_entry(payload)
    sha = head["metadata"]["annotations"][rc.ANN_SHA256]
    source = {"status": {"evidence": {"baselineCache": {"name": "ev-g1-abcde-cache", "uid": "cache-uid",
                                                        "sha256": sha}}}}
    assert trust.reused_entry(head, [], source, want, LIMITS).sha256 == sha
    with pytest.raises(trust.Untrusted) as exc:  # a poisoned entry with the right labels, not vouched for
        trust.reused_entry(head, [], {"status": {}}, want, LIMITS)
    assert exc.value.check == "reused"
    replaced = copy.deepcopy(head)
    replaced["metadata"]["uid"] = "recreated-uid"  # deleted and re-created under the same name
    with pytest.raises(trust.Untrusted):
        trust.reused_entry(replaced, [], source, want, LIMITS)
    stale = {"status": {"evidence": {"baselineCache": {"name": "ev-g1-abcde-cache", "uid": "cache-uid",
                                                       "sha256": "f" * 64}}}}
    with pytest.raises(trust.Untrusted) as exc:
        trust.reused_entry(head, [], stale, want, LIMITS)
    assert exc.value.check == "checksum"
