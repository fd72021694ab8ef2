"""The NetworkPolicy of a code evaluation's runner Job (quantgate.k8s.egress_policy), offline."""

from __future__ import annotations

import pytest

from quantgate.k8s import egress_policy as ep
from quantgate.k8s import names

NS = "team-a"
OWNER = names.owner_reference("coder", "uid-coder")
APISERVER_SLICE = {"endpoints": [{"addresses": ["172.18.0.2"]}], "ports": [{"name": "https", "port": 6443}]}


def svc(selector=None, ports=None, type_="ClusterIP", **extra):
    spec = {"type": type_, "ports": ports or [{"name": "http", "port": 80, "targetPort": 8080}], **extra}
    if selector:
        spec["selector"] = selector
    return {"metadata": {"name": "x"}, "spec": spec}


def rules(urls, services=None, slices=None):
    services = services or {}
    return ep.endpoint_rules(urls, NS, lambda ns, n: services.get((ns, n)),
                             lambda ns, n: (slices or {}).get((ns, n), []))


def policy(endpoints, dns, apiserver=None):
    return ep.egress_policy("coder-g1-abcde", NS, "coder", 1, OWNER, endpoints,
                            apiserver or ep.apiserver_rule([], [APISERVER_SLICE]), dns)


# ---------------------------------------------------------------- where a URL goes


@pytest.mark.parametrize("url, want", [
    ("http://llm-predictor.models.svc.cluster.local", ep.ServiceTarget("models", "llm-predictor", 80)),
    ("http://llm-predictor.models.svc:8080/v1", ep.ServiceTarget("models", "llm-predictor", 8080)),
    ("https://llm.models.svc.corp.example", ep.ServiceTarget("models", "llm", 443)),
    ("http://llm:8000", ep.ServiceTarget(NS, "llm", 8000)),
    ("http://10.1.2.3:8000/openai/v1", ep.IPTarget("10.1.2.3", 8000)),
    ("https://[fd00::7]/v1", ep.IPTarget("fd00::7", 443)),
])
def test_target_of(url, want):
    assert ep.target_of(url, NS) == want


@pytest.mark.parametrize("url", ["https://api.example.com/v1", "http://localhost:8000", "http://llm.models:80"])
def test_external_host_names_cannot_be_pinned(url):
    with pytest.raises(ep.Unpinnable, match="neither an in-cluster Service name"):
        ep.target_of(url, NS)


# ---------------------------------------------------------------- endpoint rules


def test_in_cluster_service_url_allows_its_selected_pods_on_the_target_port_and_dns():
    services = {("models", "llm-predictor"): svc({"app": "llm"})}
    got, dns = rules(["http://llm-predictor.models.svc.cluster.local/v1"], services)
    assert dns is True
    assert got == [{"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "models"}},
                            "podSelector": {"matchLabels": {"app": "llm"}}}],
                    "ports": [{"protocol": "TCP", "port": 8080}]}]


def test_named_target_port_is_kept_and_missing_target_port_is_the_port():
    named = svc({"app": "llm"}, ports=[{"name": "http", "port": 80, "targetPort": "http-api"}])
    plain = svc({"app": "llm"}, ports=[{"port": 8000}])
    (a,), _ = rules(["http://a.models.svc"], {("models", "a"): named})
    (b,), _ = rules(["http://b:8000"], {(NS, "b"): plain})
    assert a["ports"] == [{"protocol": "TCP", "port": "http-api"}]
    assert b["ports"] == [{"protocol": "TCP", "port": 8000}]
    assert b["to"][0]["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": NS}


def test_service_without_selector_allows_its_endpointslice_addresses():
    slices = {("models", "ext"): [{"endpoints": [{"addresses": ["10.0.0.5"]}, {"addresses": ["10.0.0.6"]}],
                                   "ports": [{"name": "http", "port": 9000, "protocol": "TCP"},
                                             {"name": "metrics", "port": 9100}]}]}
    (rule,), _ = rules(["http://ext.models.svc"], {("models", "ext"): svc()}, slices)
    assert rule == {"to": [{"ipBlock": {"cidr": "10.0.0.5/32"}}, {"ipBlock": {"cidr": "10.0.0.6/32"}}],
                    "ports": [{"protocol": "TCP", "port": 9000}]}


def test_ip_url_is_an_ip_block_on_its_port_without_dns():
    got, dns = rules(["http://127.0.0.1:41234/v1", "https://[fd00::7]/v1"])
    assert dns is False
    assert got == [{"to": [{"ipBlock": {"cidr": "127.0.0.1/32"}}], "ports": [{"protocol": "TCP", "port": 41234}]},
                   {"to": [{"ipBlock": {"cidr": "fd00::7/128"}}], "ports": [{"protocol": "TCP", "port": 443}]}]


def test_baseline_and_candidate_endpoints_both_allowed_once_each():
    services = {("models", "base"): svc({"app": "base"}), ("models", "cand"): svc({"app": "cand"})}
    got, _ = rules(["http://base.models.svc", "http://cand.models.svc", "http://cand.models.svc"], services)
    assert [r["to"][0]["podSelector"]["matchLabels"] for r in got] == [{"app": "base"}, {"app": "cand"}]


@pytest.mark.parametrize("service, message", [
    (svc(type_="ExternalName", externalName="llm.example.com"), "ExternalName \\(llm.example.com\\)"),
    (svc({"app": "llm"}, ports=[{"port": 9999}]), "has no port 80"),
    (svc(), "no selector and no endpoint addresses"),
])
def test_services_that_cannot_be_pinned(service, message):
    with pytest.raises(ep.Unpinnable, match=message):
        rules(["http://llm.models.svc"], {("models", "llm"): service})


def test_fqdn_endpointslice_cannot_be_pinned():
    slices = {("models", "llm"): [{"addressType": "FQDN", "endpoints": [{"addresses": ["llm.example.com"]}],
                                   "ports": [{"name": "http", "port": 80}]}]}
    with pytest.raises(ep.Unpinnable, match="llm.example.com is not an IP address"):
        rules(["http://llm.models.svc"], {("models", "llm"): svc()}, slices)


def test_missing_service_is_a_lookup_error_to_wait_on():
    with pytest.raises(LookupError, match="Service models/llm not found"):
        rules(["http://llm.models.svc"])


# ---------------------------------------------------------------- API server


def test_apiserver_from_the_kubernetes_endpointslice_or_configured_cidrs():
    assert ep.apiserver_rule([], [APISERVER_SLICE]) == {"to": [{"ipBlock": {"cidr": "172.18.0.2/32"}}],
                                                        "ports": [{"protocol": "TCP", "port": 6443}]}
    assert ep.apiserver_rule(["10.96.0.1/32"], [APISERVER_SLICE]) == {
        "to": [{"ipBlock": {"cidr": "10.96.0.1/32"}}],
        "ports": [{"protocol": "TCP", "port": 443}, {"protocol": "TCP", "port": 6443}]}
    with pytest.raises(ep.Unpinnable, match="QUANTGATE_APISERVER_CIDRS"):
        ep.apiserver_rule([], [])


# ---------------------------------------------------------------- the policy


def test_policy_selects_exactly_the_jobs_pods_denies_ingress_and_allows_only_the_listed_egress():
    services = {("models", "llm"): svc({"app": "llm"})}
    endpoints, dns = rules(["http://llm.models.svc"], services)
    p = policy(endpoints, dns)
    assert p["apiVersion"] == "networking.k8s.io/v1" and p["kind"] == "NetworkPolicy"
    assert p["metadata"]["name"] == "coder-g1-abcde-egress" and p["metadata"]["namespace"] == NS
    assert p["metadata"]["ownerReferences"] == [OWNER]
    assert p["spec"]["podSelector"] == {"matchLabels": {"app.kubernetes.io/managed-by": "quantgate",
                                                        "quantgate.io/evaluation": "coder",
                                                        "quantgate.io/generation": "1"}}
    assert p["spec"]["policyTypes"] == ["Ingress", "Egress"] and "ingress" not in p["spec"]
    egress = p["spec"]["egress"]
    assert egress[0] == endpoints[0]
    assert egress[1]["to"] == [{"ipBlock": {"cidr": "172.18.0.2/32"}}]
    assert egress[2] == ep.DNS_RULE
    assert ep.DNS_RULE["ports"] == [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]
    assert ep.DNS_RULE["to"][0]["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "kube-system"}
    assert all(rule.get("to") for rule in egress), "every rule names its peers: no rule opens all addresses"


def test_no_dns_rule_when_every_endpoint_is_an_ip():
    endpoints, dns = rules(["http://10.1.2.3:8000"])
    assert ep.DNS_RULE not in policy(endpoints, dns)["spec"]["egress"]


def test_selector_matches_the_job_builders_pod_labels_and_no_other_generation():
    from quantgate.api.v1alpha1 import ModelEvaluationSpec
    from quantgate.k8s.endpoints import Resolved
    from quantgate.k8s.job import Evaluation, build_job
    from quantgate.k8s.settings import Settings

    spec = ModelEvaluationSpec.model_validate({
        "baseline": {"endpoint": {"url": "http://10.0.0.1:80"}}, "candidate": {"endpoint": {"url": "http://10.0.0.2"}},
        "suite": "code", "profile": "code-help", "allowCodeExecution": True})
    model = Resolved("http://10.0.0.1:80", "m", None, "endpoint:x")
    selector = ep.pod_selector("coder", 2)["matchLabels"]
    for gen, selected in ((2, True), (3, False)):
        job = build_job(Evaluation(NS, "coder", "uid-coder", gen, spec), model, model, Settings())
        pod_labels = job["spec"]["template"]["metadata"]["labels"]
        assert (selector.items() <= pod_labels.items()) is selected
        assert pod_labels["quantgate.io/code-execution"] == "true"  # the chart's shared runner policy skips it
