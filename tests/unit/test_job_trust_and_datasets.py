"""The runner Job's CA bundle and datasets cache: spec fields, chart defaults, validation, and the
operator's own preflight against an HTTPS endpoint behind a private CA."""

import pytest
from pydantic import ValidationError

from quantgate.api.v1alpha1 import ConfigMapKeyRef, ModelEvaluationSpec
from quantgate.k8s import endpoints
from quantgate.k8s.endpoints import Resolved, resolve
from quantgate.k8s.job import Evaluation, build_job
from quantgate.k8s.settings import Settings

SETTINGS = Settings(runner_image="img:1")


def _spec(**extra) -> ModelEvaluationSpec:
    spec = {"baseline": {"endpoint": {"url": "https://base.models.svc", "model": "fp16"},
                         "caBundle": {"name": "company-ca"}},
            "candidate": {"endpoint": {"url": "https://cand.models.svc", "model": "int8"}},
            "suite": "leaderboard"}
    spec.update(extra)
    return ModelEvaluationSpec.model_validate(spec)


def _job(spec: ModelEvaluationSpec, settings=SETTINGS) -> dict:
    base, cand = (resolve(s, lambda n: None) for s in (spec.baseline, spec.candidate))
    return build_job(Evaluation("ns", "e", "uid", 1, spec), base, cand, settings)


def _pod(job):
    pod = job["spec"]["template"]["spec"]
    return pod, {c["name"]: c for c in pod["containers"]}


def test_ca_bundle_is_mounted_from_the_configmap_and_passed_to_the_runner():
    pod, containers = _pod(_job(_spec()))
    vol = next(v for v in pod["volumes"] if v["name"] == "ca-baseline")
    assert vol["configMap"] == {"name": "company-ca", "items": [{"key": "ca.crt", "path": "ca.crt"}]}
    base = containers["baseline"]
    assert {"name": "ca-baseline", "mountPath": "/etc/quantgate/ca/baseline", "readOnly": True} in base["volumeMounts"]
    assert base["args"][base["args"].index("--ca-bundle") + 1] == "/etc/quantgate/ca/baseline/ca.crt"
    # the candidate has no caBundle and there is no chart default: system CAs, nothing mounted
    assert "--ca-bundle" not in containers["candidate"]["args"]
    assert not any(v["name"] == "ca-candidate" for v in pod["volumes"])


def test_the_chart_default_applies_to_https_sources_without_their_own():
    settings = Settings(runner_image="img:1", ca_bundle_configmap="trust-bundle", ca_bundle_key="bundle.pem")
    pod, containers = _pod(_job(_spec(), settings))
    vols = {v["name"]: v for v in pod["volumes"]}
    assert vols["ca-candidate"]["configMap"]["name"] == "trust-bundle"
    assert vols["ca-candidate"]["configMap"]["items"] == [{"key": "bundle.pem", "path": "ca.crt"}]
    assert vols["ca-baseline"]["configMap"]["name"] == "company-ca"  # the source's own wins
    http = _spec(candidate={"endpoint": {"url": "http://plain.models.svc", "model": "int8"}})
    pod, containers = _pod(_job(http, settings))
    assert "--ca-bundle" not in containers["candidate"]["args"]


def test_insecure_skip_verify_is_explicit_and_mounts_nothing():
    spec = _spec(candidate={"endpoint": {"url": "https://cand.models.svc", "model": "int8"},
                            "insecureSkipVerify": True})
    settings = Settings(runner_image="img:1", ca_bundle_configmap="trust-bundle")
    pod, containers = _pod(_job(spec, settings))
    assert "--insecure-skip-verify" in containers["candidate"]["args"]
    assert "--ca-bundle" not in containers["candidate"]["args"]
    assert not any(v["name"] == "ca-candidate" for v in pod["volumes"])


@pytest.mark.parametrize("source,message", [
    ({"endpoint": {"url": "https://x"}, "caBundle": {"name": "ca"}, "insecureSkipVerify": True}, "not both"),
    ({"vllm": {"modelPath": "/m"}, "caBundle": {"name": "ca"}}, "not to the in-Job vllm or llamaCpp engines"),
])
def test_invalid_tls_settings_are_refused(source, message):
    with pytest.raises(ValidationError, match=message):
        _spec(candidate=source)


def test_datasets_pvc_is_mounted_read_only_and_the_runner_goes_offline():
    spec = _spec(datasets={"pvc": "hf-datasets", "subPath": "leaderboard"})
    pod, containers = _pod(_job(spec))
    assert {"name": "datasets", "persistentVolumeClaim": {"claimName": "hf-datasets", "readOnly": True}} \
        in pod["volumes"]
    for c in containers.values():
        assert {"name": "datasets", "mountPath": "/var/lib/quantgate/datasets", "readOnly": True,
                "subPath": "leaderboard"} in c["volumeMounts"]
        assert c["args"][c["args"].index("--datasets") + 1] == "/var/lib/quantgate/datasets"


def test_datasets_image_volume_and_the_chart_default():
    pod, _ = _pod(_job(_spec(datasets={"image": "registry.local/hf-cache:leaderboard"})))
    assert {"name": "datasets", "image": {"reference": "registry.local/hf-cache:leaderboard",
                                          "pullPolicy": "IfNotPresent"}} in pod["volumes"]
    settings = Settings(runner_image="img:1", datasets_pvc="shared-cache")
    pod, containers = _pod(_job(_spec(), settings))
    assert any(v.get("persistentVolumeClaim", {}).get("claimName") == "shared-cache" for v in pod["volumes"])
    # the local suite's data ships in the image: no cache, no offline switch
    pod, containers = _pod(_job(_spec(suite="local"), settings))
    assert not any(v["name"] == "datasets" for v in pod["volumes"])
    assert all("--datasets" not in c["args"] for c in containers.values())


@pytest.mark.parametrize("datasets,message", [
    ({"pvc": "a", "image": "b"}, "exactly one of pvc, image"),
    ({}, "exactly one of pvc, image"),
    ({"pvc": "a", "subPath": "x/../../etc"}, "inside the volume"),
])
def test_invalid_datasets_are_refused(datasets, message):
    with pytest.raises(ValidationError, match=message):
        _spec(datasets=datasets)


# ---- the operator's preflight over HTTPS ------------------------------------------------------
@pytest.fixture(scope="module")
def secure(tmp_path_factory):
    from quantgate.dev import pki
    from quantgate.simulate import SimulatedFleet

    d = tmp_path_factory.mktemp("pki")
    ca = pki.make_ca(d, "company-ca")
    server = pki.issue(ca, d, "endpoint", "llm", server_names=("127.0.0.1",))
    other = pki.make_ca(d, "other-ca")
    fleet = SimulatedFleet({"variants": [{"name": "s", "model": "m", "tlsCertFile": str(server.cert),
                                          "tlsKeyFile": str(server.key)}]})
    with fleet:
        yield fleet.url("s"), ca.cert.read_text(), other.cert.read_text()


def test_operator_preflight_trusts_exactly_the_bundle(secure, caplog):
    url, ca, other = secure
    assert endpoints.preflight(url, "m", None, 5, endpoints.TLS(ca)) is None
    for tls in (None, endpoints.TLS(other)):
        problem = endpoints.preflight(url, "m", None, 5, tls)
        assert isinstance(problem, endpoints.TLSProblem) and "certificate verify failed" in problem
        assert "\n" not in problem
    with caplog.at_level("WARNING", logger="quantgate.endpoints"):
        assert endpoints.preflight(url, "m", None, 5, endpoints.TLS(insecure=True)) is None
    assert any("verification is OFF" in r.getMessage() and url in r.getMessage() for r in caplog.records)
    bad = endpoints.preflight(url, "m", None, 5, endpoints.TLS("no certificate here"))
    assert isinstance(bad, endpoints.TLSProblem) and "caBundle unusable" in bad


def test_the_preflight_cache_keys_on_the_trust():
    calls = []
    cache = endpoints.PreflightCache(ttl_s=30, check=lambda *a: calls.append(a) or None)
    cache("https://a", "m", None, 1, endpoints.TLS("pem-1"))
    cache("https://a", "m", None, 1, endpoints.TLS("pem-1"))
    cache("https://a", "m", None, 1, endpoints.TLS("pem-2"))
    cache("https://a", "m", None, 1)
    assert len(calls) == 3  # a success under one bundle says nothing about another


def test_resolve_carries_the_source_trust():
    spec = _spec()
    base = resolve(spec.baseline, lambda n: None)
    assert base.ca_bundle == ConfigMapKeyRef(name="company-ca") and base.insecure is False
    assert Resolved("u", None, None, "i").ca_bundle is None
