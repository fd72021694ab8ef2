"""The reconciler gives a code evaluation's runner Job its egress NetworkPolicy first (in-memory cluster;
the real apiserver version is tests/integration/test_operator_code.py)."""

import copy

import pytest
from test_status_reconcile import NS, FakeCluster, ready_isvc

from quantgate.k8s import egress_policy, names, reconcile as rc
from quantgate.k8s.settings import Settings

CODE = {"baseline": {"inferenceServiceRef": {"name": "fp16"}}, "candidate": {"inferenceServiceRef": {"name": "int4"}},
        "suite": "code", "profile": "code-help", "allowCodeExecution": True}
APISERVER = {"endpoints": [{"addresses": ["172.18.0.2"]}], "ports": [{"name": "https", "port": 6443}]}


class CodeCluster(FakeCluster):
    def __init__(self):
        super().__init__()
        self.policies, self.services, self.calls = {}, {}, []
        self.slices = [APISERVER]

    def create_job(self, job):
        self.calls.append(("job", job["metadata"]["name"]))
        return super().create_job(job)

    def create_network_policy(self, policy):
        name = policy["metadata"]["name"]
        if name in self.policies:
            return copy.deepcopy(self.policies[name])
        self.calls.append(("policy", name))
        self.policies[name] = copy.deepcopy(policy)
        return None

    def delete_network_policy(self, ns, name):
        self.calls.append(("delete-policy", name))
        self.policies.pop(name, None)

    def get_service(self, ns, name):
        return copy.deepcopy(self.services.get((ns, name)))

    def endpoint_slices(self, ns, service):
        return []

    def apiserver_slices(self):
        return copy.deepcopy(self.slices)


def service(app):
    return {"metadata": {"name": app}, "spec": {"selector": {"app": app}, "ports": [{"port": 80, "targetPort": 8080}]}}


@pytest.fixture
def world(monkeypatch):
    cluster = CodeCluster()
    cluster.isvcs = {n: ready_isvc(n) for n in ("fp16", "int4")}  # http://fp16: Service fp16 in NS
    cluster.services = {(NS, "fp16"): service("fp16"), (NS, "int4"): service("int4")}
    monkeypatch.setattr(rc.endpoints, "preflight", lambda *a, **k: None)
    return cluster, rc.Reconciler(cluster, Settings(max_concurrent=2, endpoint_timeout_s=60))


def test_code_evaluation_gets_its_policy_before_its_job(world):
    cluster, rec = world
    cluster.add_eval("coder", CODE)
    rec.reconcile(NS, "coder")
    job = names.job_name("coder", 1)
    assert cluster.calls == [("policy", f"{job}-egress"), ("job", job)]
    policy = cluster.policies[f"{job}-egress"]
    assert policy["metadata"]["ownerReferences"] == [names.owner_reference("coder", "uid-coder")]
    egress = policy["spec"]["egress"]
    assert [r["to"][0].get("podSelector") for r in egress[:2]] == [{"matchLabels": {"app": "fp16"}},
                                                                  {"matchLabels": {"app": "int4"}}]
    assert egress[2]["to"] == [{"ipBlock": {"cidr": "172.18.0.2/32"}}] and egress[3] == egress_policy.DNS_RULE
    assert cluster.evals["coder"]["status"]["phase"] == "Running"


def test_configured_apiserver_cidrs_replace_the_endpointslice(world):
    cluster, rec = world
    rec.settings.apiserver_cidrs = ["10.96.0.1/32"]
    cluster.slices = []
    cluster.add_eval("coder", CODE)
    rec.reconcile(NS, "coder")
    (policy,) = cluster.policies.values()
    assert {"ipBlock": {"cidr": "10.96.0.1/32"}} in policy["spec"]["egress"][2]["to"]


def test_evaluations_without_code_get_no_policy(world):
    cluster, rec = world
    cluster.add_eval("plain", {**CODE, "suite": "local", "profile": "general", "allowCodeExecution": False})
    rec.reconcile(NS, "plain")
    assert cluster.calls == [("job", names.job_name("plain", 1))] and not cluster.policies


def test_unpinnable_endpoint_fails_before_any_object(world):
    cluster, rec = world
    cluster.isvcs["int4"]["status"]["address"]["url"] = "https://llm.example.com"
    cluster.add_eval("coder", CODE)
    rec.reconcile(NS, "coder")
    st = cluster.evals["coder"]["status"]
    assert (st["phase"], st["reason"]) == ("Failed", "EgressNotPinnable")
    assert "llm.example.com is neither an in-cluster Service name" in st["message"]
    assert not cluster.calls


def test_unpinnable_apiserver_fails(world):
    cluster, rec = world
    cluster.slices = []
    cluster.add_eval("coder", CODE)
    rec.reconcile(NS, "coder")
    st = cluster.evals["coder"]["status"]
    assert (st["phase"], st["reason"]) == ("Failed", "EgressNotPinnable") and "QUANTGATE_APISERVER_CIDRS" in st["message"]
    assert not cluster.calls


def test_missing_service_waits_for_endpoints(world):
    cluster, rec = world
    del cluster.services[(NS, "int4")]
    cluster.add_eval("coder", CODE)
    rec.reconcile(NS, "coder")
    st = cluster.evals["coder"]["status"]
    assert (st["phase"], st["reason"]) == ("WaitingForEndpoints", "EndpointServiceNotFound") and not cluster.calls


def test_a_policy_someone_else_made_under_the_name_stops_the_job(world):
    cluster, rec = world
    job = names.job_name("coder", 1)
    cluster.policies[f"{job}-egress"] = {"metadata": {"name": f"{job}-egress", "ownerReferences": []},
                                         "spec": {"podSelector": {}, "egress": [{}]}}
    cluster.add_eval("coder", CODE)
    rec.reconcile(NS, "coder")
    st = cluster.evals["coder"]["status"]
    assert (st["phase"], st["reason"]) == ("Failed", "EgressPolicyTaken") and job not in cluster.jobs


def test_its_own_policy_from_before_a_restart_is_kept(world):
    cluster, rec = world
    cluster.add_eval("coder", CODE)
    first = rc.Reconciler(cluster, rec.settings)
    first.reconcile(NS, "coder")
    del cluster.jobs[names.job_name("coder", 1)]  # as if it crashed between the policy and the Job
    cluster.evals["coder"].pop("status")
    cluster.calls.clear()
    rec.reconcile(NS, "coder")
    assert cluster.calls == [("job", names.job_name("coder", 1))]


def test_superseded_code_job_takes_its_policy_along(world):
    cluster, rec = world
    cluster.add_eval("coder", CODE)
    rec.reconcile(NS, "coder")
    cluster.edit("coder", {**CODE, "limit": 8})
    rec.reconcile(NS, "coder")
    old, new = names.job_name("coder", 1), names.job_name("coder", 2)
    assert ("delete-policy", f"{old}-egress") in cluster.calls
    assert set(cluster.policies) == {f"{new}-egress"} and set(cluster.jobs) == {new}
