"""HTTPS endpoints behind a private CA, through the whole operator path on the real control plane.

The simulated models serve HTTPS with certificates from a CA this test creates; the CA reaches
the operator's preflight and the runner Job only through the caBundle ConfigMap.
"""

import json

import pytest
import yaml

from operator_harness import (OperatorProcess, evaluation, get, install_crds, install_runner_rbac,
                              operator_kubeconfig, wait_phase)
from quantgate.dev import pki
from quantgate.dev.harness import create_namespace, wait_for

ACC = {"gsm8k": 0.7, "arc_challenge": 0.7, "hellaswag": 0.8, "mmlu": 0.7, "truthfulqa_mc2": 0.7,
       "winogrande": 0.75}
QUICK = {"suite": "local", "tasks": [{"name": "gsm8k", "limit": 8}]}


@pytest.fixture(scope="module")
def env(cluster, tmp_path_factory):
    from quantgate.simulate.fleet import SimulatedFleet

    d = tmp_path_factory.mktemp("pki")
    ca = pki.make_ca(d, "company-ca")
    server = pki.issue(ca, d, "endpoint", "llm.models.svc", server_names=("127.0.0.1",))
    tls = {"tlsCertFile": str(server.cert), "tlsKeyFile": str(server.key)}
    fleet_config = {"seed": 3, "reference": "fp16", "variants": [
        {"name": "fp16", "model": "m-fp16", "accuracy": ACC, **tls},
        {"name": "int8", "model": "m-int8", "accuracy": ACC, **tls},
    ]}
    install_crds(cluster)
    ns = create_namespace(cluster, "tls")
    install_runner_rbac(cluster, ns)
    cluster.kubectl("create", "configmap", "company-ca", "-n", ns, f"--from-file=ca.crt={ca.cert}")
    with SimulatedFleet(fleet_config) as fleet:
        workdir = tmp_path_factory.mktemp("operator-tls")
        op = OperatorProcess(cluster, workdir / "operator.log", "--poll-interval", "1", "--endpoint-timeout", "60",
                             kubeconfig=operator_kubeconfig(cluster, workdir))
        op.start()
        try:
            yield cluster, ns, fleet, op
        finally:
            op.stop()
            cluster.kubectl("delete", "namespace", ns, "--wait=false", check=False)


def _source(fleet, name, **extra):
    return {"endpoint": {"url": fleet.url(name), "model": f"m-{name}"}, **extra}


def _apply(cluster, ns, obj):
    cluster.kubectl("apply", "-n", ns, "-f", "-", input=yaml.safe_dump(obj))


def _jobs(cluster, ns, name):
    out = cluster.kubectl("get", "jobs", "-n", ns, "-l", f"quantgate.io/evaluation={name}", "-o", "json").stdout
    return json.loads(out)["items"]


def test_without_the_bundle_the_preflight_fails_with_one_tls_line(env):
    cluster, ns, fleet, _op = env
    _apply(cluster, ns, evaluation("untrusted", _source(fleet, "fp16"), _source(fleet, "int8"), **QUICK))
    st = wait_phase(cluster, "untrusted", ns, ("Failed", "Succeeded"))["status"]
    assert st["phase"] == "Failed" and st["reason"] == "EndpointTLSError", st
    assert "certificate verify failed" in st["message"] and "caBundle" in st["message"]
    assert "\n" not in st["message"] and st.get("verdict") is None and st.get("promotable") is not True
    assert _jobs(cluster, ns, "untrusted") == []  # failed before any runner Job


def test_with_the_bundle_the_evaluation_succeeds(env):
    cluster, ns, fleet, _op = env
    ca = {"caBundle": {"name": "company-ca"}}
    _apply(cluster, ns, evaluation("trusted", _source(fleet, "fp16", **ca), _source(fleet, "int8", **ca), **QUICK))
    obj = wait_phase(cluster, "trusted", ns, ("Failed", "Succeeded"), timeout=240)
    st = obj["status"]
    assert st["phase"] == "Succeeded", st.get("message")
    assert st["verdict"] in ("Ship", "Monitor", "ABTest", "Block")
    [job] = _jobs(cluster, ns, "trusted")
    pod = job["spec"]["template"]["spec"]
    assert {v["name"] for v in pod["volumes"]} >= {"ca-baseline", "ca-candidate"}
    for c in pod["containers"]:
        assert c["args"][c["args"].index("--ca-bundle") + 1] == f"/etc/quantgate/ca/{c['name']}/ca.crt"


def test_a_missing_bundle_configmap_waits_with_its_name(env):
    cluster, ns, fleet, _op = env
    ca = {"caBundle": {"name": "not-there", "key": "bundle.pem"}}
    _apply(cluster, ns, evaluation("nocm", _source(fleet, "fp16", **ca), _source(fleet, "int8", **ca), **QUICK))

    def waiting():
        st = get(cluster, "meval", "nocm", ns).get("status") or {}
        return st if st.get("reason") == "CABundleNotFound" else None

    st = wait_for(waiting, timeout=60, what="CABundleNotFound")
    assert st["phase"] == "WaitingForEndpoints" and "not-there" in st["message"] and "bundle.pem" in st["message"]
