"""The reconciler's TLS paths against an in-memory cluster: the caBundle ConfigMap reaches the
preflight, a missing one waits with its name, an untrusted certificate fails closed at once."""

import pytest

from quantgate.k8s import endpoints, reconcile as rc
from quantgate.k8s.settings import Settings
from test_status_reconcile import NS, FakeCluster

URL = "https://llm.models.svc"


class Cluster(FakeCluster):
    def __init__(self, configmaps):
        super().__init__()
        self.configmaps = configmaps

    def configmap_value(self, ns, name, key):
        return (self.configmaps.get(name) or {}).get(key)


def spec(**source_extra):
    src = lambda m: {"endpoint": {"url": URL, "model": m}, **source_extra}  # noqa: E731
    return {"baseline": src("fp16"), "candidate": src("int8"), "suite": "local", "limit": 5}


@pytest.fixture
def seen(monkeypatch):
    calls = []

    def preflight(url, model, api_key, timeout, tls=None):
        calls.append(tls)
        if tls is None or tls.ca_pem != "PEM-OF-COMPANY-CA" and not tls.insecure:
            return endpoints.TLSProblem(f"TLS: {url} presented a certificate this client does not trust (x)")
        return None

    monkeypatch.setattr(rc.endpoints, "preflight", preflight)
    return calls


def _reconciler(cluster, **settings):
    return rc.Reconciler(cluster, Settings(max_concurrent=2, endpoint_timeout_s=60, **settings))


def test_untrusted_certificate_fails_at_once_without_a_job(seen):
    cluster = Cluster({})
    cluster.add_eval("e", spec())
    _reconciler(cluster).reconcile(NS, "e")
    st = cluster.evals["e"]["status"]
    assert st["phase"] == "Failed" and st["reason"] == "EndpointTLSError" and "baseline:" in st["message"]
    assert st.get("promotable") is not True and cluster.created_jobs == []
    assert seen == [None]  # no bundle anywhere: the system CAs


def test_the_bundle_reaches_the_preflight_and_the_job_starts(seen):
    cluster = Cluster({"company-ca": {"ca.crt": "PEM-OF-COMPANY-CA"}})
    cluster.add_eval("e", spec(caBundle={"name": "company-ca"}))
    _reconciler(cluster).reconcile(NS, "e")
    assert cluster.evals["e"]["status"]["phase"] == "Running"
    assert [t.ca_pem for t in seen] == ["PEM-OF-COMPANY-CA"] * 2 and len(cluster.created_jobs) == 1


def test_the_chart_default_bundle_applies(seen):
    cluster = Cluster({"trust-bundle": {"bundle.pem": "PEM-OF-COMPANY-CA"}})
    cluster.add_eval("e", spec())
    _reconciler(cluster, ca_bundle_configmap="trust-bundle", ca_bundle_key="bundle.pem").reconcile(NS, "e")
    assert cluster.evals["e"]["status"]["phase"] == "Running"


def test_a_missing_bundle_waits_naming_it(seen):
    cluster = Cluster({})
    cluster.add_eval("e", spec(caBundle={"name": "company-ca", "key": "b.pem"}))
    _reconciler(cluster).reconcile(NS, "e")
    st = cluster.evals["e"]["status"]
    assert st["phase"] == "WaitingForEndpoints" and st["reason"] == "CABundleNotFound"
    assert "company-ca" in st["message"] and "b.pem" in st["message"] and seen == []


def test_insecure_skip_verify_preflights_without_verification(seen):
    cluster = Cluster({})
    cluster.add_eval("e", spec(insecureSkipVerify=True))
    _reconciler(cluster, ca_bundle_configmap="trust-bundle").reconcile(NS, "e")
    assert cluster.evals["e"]["status"]["phase"] == "Running"
    assert all(t.insecure for t in seen)
