"""Results channel: compact results → gzip → ConfigMaps (split when large) → back, verified."""

import base64
import hashlib
import json
import random

import pytest

from quantgate.k8s import names, results_channel as rc


def _mmlu_sized_document(items=14042, seed=7):
    """A worst-case compact document of full-MMLU size: per item a doc id, a 64-hex doc hash
    (incompressible) and correctness."""
    rnd = random.Random(seed)
    samples = [
        {"doc_id": i, "doc_hash": hashlib.sha256(f"{seed}-{i}".encode()).hexdigest(), "correct": rnd.random() < 0.6}
        for i in range(items)
    ]
    return {"results": {"mmlu": {"acc,none": 0.6}}, "samples": {"mmlu": samples}}


def _cm_bytes(cm):
    """What the apiserver counts against the 1 MiB ConfigMap limit."""
    return sum(len(base64.b64decode(v)) for v in cm["binaryData"].values())


def test_round_trip_full_mmlu_size_fits_the_configmap_limit():
    doc = _mmlu_sized_document()
    payload = rc.encode(doc)
    cms = rc.build_configmaps(payload, namespace="ns", name="ev-g1-abcde-baseline", role="baseline",
                              evaluation="ev", owner_uid="uid-1")
    for cm in cms:
        assert _cm_bytes(cm) <= rc.PART_BYTES < 1024 * 1024
        assert len(json.dumps(cm)) < 1.5 * 1024 * 1024  # etcd request limit
    head = cms[-1]
    assert head["metadata"]["name"] == "ev-g1-abcde-baseline"
    parts = cms[:-1]
    assert rc.decode(rc.assemble(head, parts)) == doc


def test_large_payload_is_split_parts_first_head_last():
    payload = random.Random(1).randbytes(2_500_000)
    cms = rc.build_configmaps(payload, namespace="ns", name="r", role="candidate", part_bytes=1_000_000)
    sha8 = hashlib.sha256(payload).hexdigest()[:8]
    assert [c["metadata"]["name"] for c in cms] == [f"r-{sha8}-1", f"r-{sha8}-2", "r"]
    head = cms[-1]
    assert head["metadata"]["annotations"][rc.ANN_PARTS] == "3"
    assert head["metadata"]["labels"][names.LABEL_RESULTS] == "true"
    assert rc.assemble(head, cms[:-1]) == payload


def test_owner_reference_and_labels():
    cms = rc.build_configmaps(b"x", namespace="ns", name="r", role="baseline", evaluation="ev", owner_uid="u1",
                              extra_labels={names.LABEL_BASELINE_KEY: "k"})
    meta = cms[0]["metadata"]
    assert meta["ownerReferences"] == [names.owner_reference("ev", "u1")]
    assert meta["ownerReferences"][0]["kind"] == "ModelEvaluation"
    assert meta["labels"][names.LABEL_EVALUATION] == "ev"
    assert meta["labels"][names.LABEL_ROLE] == "baseline"
    assert meta["labels"][names.LABEL_BASELINE_KEY] == "k"
    assert cms[0]["immutable"] is True


def test_missing_part_or_corruption_fails_closed():
    payload = random.Random(2).randbytes(3000)
    cms = rc.build_configmaps(payload, namespace="ns", name="r", role="baseline", part_bytes=1000)
    with pytest.raises(rc.ResultsError, match="incomplete"):
        rc.assemble(cms[-1], cms[:-2])
    swapped = [cms[1], cms[0]]
    with pytest.raises(rc.ResultsError, match="checksum"):
        rc.assemble(cms[-1], swapped)
    with pytest.raises(rc.ResultsError, match="gzip"):
        rc.decode(b"not gzip")


def test_encoding_is_deterministic():
    doc = {"b": 1, "a": [1, 2]}
    assert rc.encode(doc) == rc.encode(dict(reversed(list(doc.items()))))


def test_names_are_deterministic_and_short():
    long = "x" * 250
    assert names.job_name("ev", 3) == names.job_name("ev", 3)
    assert names.job_name("ev", 3) != names.job_name("ev", 4)
    assert len(names.job_name(long, 12345)) <= 63
    assert names.job_name("Ev_Name", 1).startswith("ev-name-g1-")


def test_results_published_from_a_job_are_owned_by_it_and_name_their_creator():
    cms = rc.build_configmaps(b"x" * 10, namespace="ns", name="ev-g1-abcde-candidate", role="candidate",
                              evaluation="ev", owner_uid="u1", job=("ev-g1-abcde", "job-uid"),
                              pod=("ev-g1-abcde-x7k2q", "pod-uid"), part_bytes=4)
    assert len(cms) == 3
    for cm in cms:
        meta = cm["metadata"]
        assert meta["ownerReferences"] == [{"apiVersion": "batch/v1", "kind": "Job", "name": "ev-g1-abcde",
                                            "uid": "job-uid"}]
        assert meta["labels"][rc.LABEL_JOB] == "ev-g1-abcde" and cm["immutable"] is True
        assert meta["annotations"][rc.ANN_POD_NAME] == "ev-g1-abcde-x7k2q"
        assert meta["annotations"][rc.ANN_POD_UID] == "pod-uid"


class _Core:
    """Stores ConfigMaps the way the API does, for the publish -> read round trip."""

    def __init__(self):
        self.cms = {}

    def create_namespaced_config_map(self, namespace, cm):
        self.cms[(namespace, cm["metadata"]["name"])] = cm

    def read_namespaced_config_map(self, name, namespace):
        return self.cms[(namespace, name)]


def test_a_refusal_travels_in_place_of_results_and_reads_as_one_bounded_line(monkeypatch):
    core = _Core()
    monkeypatch.setattr("quantgate.k8s.client.core_v1", lambda: core)
    reason = ("log-probability probe: http://llm:8000/v1/completions returns prompt log-probabilities shifted by "
              "one token\n(details)" + " x" * 400)
    rc.publish_refusal("ns", "r-candidate", "candidate", reason)
    with pytest.raises(rc.RefusedResults) as err:
        rc.read_results(core, "ns", "r-candidate")
    text = str(err.value)
    assert "shifted by one token" in text and "\n" not in text and len(text) <= rc.REFUSAL_CHARS
