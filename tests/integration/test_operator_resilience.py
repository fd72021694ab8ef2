"""The operator never stalls: API faults, a Job deleted while it is down, long waits that must
not hit the endpoint timeout, two replicas with a leader kill, a wedged worker and /healthz.

Real control plane, real `quantgate operator` processes, simulated models.
"""

import json
import time

import pytest
import yaml

from fault_proxy import FaultProxy
from operator_harness import (OperatorProcess, evaluation, get, install_crds, install_runner_rbac, operator_kubeconfig,
                              serve_fleet, set_isvc_status, wait_phase)
from quantgate.dev.harness import create_namespace, wait_for

ACC = {"arc_challenge": 0.7, "hellaswag": 0.8, "mmlu": 0.7, "truthfulqa_mc2": 0.7, "winogrande": 0.75,
       "gsm8k": 0.7}
FLEET = {"seed": 3, "reference": "fp16", "variants": [
    {"name": "fp16", "model": "m-fp16", "accuracy": ACC},
    {"name": "same", "model": "m-same", "accuracy": ACC},
    {"name": "int4", "model": "m-int4", "accuracy": {**ACC, "gsm8k": 0.35}},
    # every completion takes a second: a Job on it runs for tens of seconds
    {"name": "slow", "model": "m-slow", "accuracy": ACC, "latencyMs": 1000},
]}
QUICK = {"suite": "local", "tasks": [{"name": "gsm8k", "limit": 8}]}
# one request at a time, a second each: a Job on "slow" runs for 40 s and more
SLOW = {"suite": "local", "tasks": [{"name": "gsm8k", "limit": 40}], "runner": {"concurrency": 1}}


def ref(name):
    return {"inferenceServiceRef": {"name": name, "model": f"m-{name}"}}


@pytest.fixture
def env(cluster, tmp_path):
    from quantgate.simulate.fleet import SimulatedFleet

    install_crds(cluster)
    ns = create_namespace(cluster, "resil")
    install_runner_rbac(cluster, ns)
    with SimulatedFleet(FLEET) as fleet:
        serve_fleet(cluster, ns, fleet)
        procs: list[OperatorProcess] = []

        def operator(*args, kubeconfig=None, **kw):
            op = OperatorProcess(cluster, tmp_path / f"operator-{len(procs)}.log", "--poll-interval", "1", *args,
                                 namespaces=[ns], kubeconfig=kubeconfig or operator_kubeconfig(cluster, tmp_path), **kw)
            procs.append(op)
            return op

        try:
            yield cluster, ns, fleet, operator, tmp_path
        finally:
            for op in procs:
                op.stop()
            cluster.kubectl("delete", "namespace", ns, "--wait=false", check=False)


def _apply(cluster, ns, *objs):
    cluster.kubectl("apply", "-n", ns, "-f", "-", input=yaml.safe_dump_all(objs))


def _items(cluster, kind, ns, selector=None):
    args = ["get", kind, "-n", ns, "-o", "json"] + (["-l", selector] if selector else [])
    return json.loads(cluster.kubectl(*args).stdout)["items"]


def _verdict_events(cluster, ns):
    counts: dict[str, int] = {}
    for e in _items(cluster, "events.events.k8s.io", ns):
        if e.get("reason") in ("Verdict", "Blocked"):
            name = e["regarding"]["name"]
            counts[name] = counts.get(name, 0) + 1
    return counts


def _settled(cluster, ns, names):
    items = {o["metadata"]["name"]: o for o in _items(cluster, "meval", ns)}
    return all((items[n].get("status") or {}).get("phase") in ("Succeeded", "Failed")
               and items[n]["status"].get("observedGeneration") == items[n]["metadata"]["generation"] for n in names)


def test_api_faults_on_results_reads_and_status_patches_delay_but_never_strand_an_evaluation(env):
    cluster, ns, fleet, operator, tmp = env
    proxy = FaultProxy(operator_kubeconfig(cluster, tmp))
    try:
        # every evaluation runs its own baseline: a shared one becomes reusable only with its owner's
        # verdict (docs/operator.md), i.e. after a status patch, which the faults hold back
        op = operator("--max-concurrent", "6", "--no-baseline-cache",
                      kubeconfig=proxy.kubeconfig(tmp / "proxied.kubeconfig"))
        names = [f"f-{i}" for i in range(6)]
        proxy.faults = True  # from the first status patch on
        op.start()
        _apply(cluster, ns, *[evaluation(n, ref("fp16"), ref("same" if i % 2 else "int4"), **QUICK)
                              for i, n in enumerate(names)])
        # the runner Jobs get created (a create is not faulted) and finish while every status
        # patch and every results read fails
        wait_for(lambda: sum(1 for j in _items(cluster, "jobs", ns) if (j.get("status") or {}).get("succeeded"))
                 >= len(names), timeout=240, interval=1, what="all runner Jobs complete under faults")
        time.sleep(5)  # reconciles keep failing a while longer
        assert all(v > 0 for v in proxy.injected.values()), proxy.injected
        assert not any((o.get("status") or {}).get("phase") in ("Succeeded", "Failed")
                       for o in _items(cluster, "meval", ns)), "a status patch got through the faults"
        proxy.faults = False
        wait_for(lambda: _settled(cluster, ns, names), timeout=180, interval=1, what="every evaluation settles")
    finally:
        proxy.faults = False
        proxy.close()
    for i, n in enumerate(names):
        status = get(cluster, "meval", n, ns)["status"]
        assert status["phase"] == "Succeeded", (n, status.get("reason"), status.get("message"))
        assert len(_items(cluster, "jobs", ns, f"quantgate.io/evaluation={n}")) == 1
    assert _verdict_events(cluster, ns) == {n: 1 for n in names}  # one verdict per generation
    log = op.log()
    assert "failed (attempt" in log and "HTTP 500" in log and "HTTP 429" in log
    assert "injected fault" not in log  # a line per error, status and reason only


def test_a_job_deleted_while_the_operator_is_down_ends_the_evaluation_after_the_restart(env):
    cluster, ns, fleet, operator, _tmp = env
    op = operator().start()
    _apply(cluster, ns, evaluation("gone", ref("fp16"), ref("slow"), **SLOW))
    running = wait_phase(cluster, "gone", ns, ("Running",), timeout=120)
    op.stop()
    cluster.kubectl("delete", "job", running["status"]["jobName"], "-n", ns, "--cascade=background")
    op.start()
    status = wait_phase(cluster, "gone", ns, ("Failed", "Succeeded"), timeout=120)["status"]
    assert (status["phase"], status["reason"]) == ("Failed", "JobMissing")  # the documented rule


def test_long_waits_for_a_slot_or_a_baseline_do_not_count_against_the_endpoint_timeout(env):
    cluster, ns, fleet, operator, _tmp = env
    timeout = 6
    op = operator("--max-concurrent", "1", "--endpoint-timeout", str(timeout)).start()
    # "base" holds the only slot for tens of seconds; "queued" waits for it, then flaps
    _apply(cluster, ns, evaluation("base", ref("fp16"), ref("slow"), **SLOW))
    wait_phase(cluster, "base", ns, ("Running",), timeout=120)
    _apply(cluster, ns,
           evaluation("queued", ref("fp16"), ref("int4"), **QUICK),
           evaluation("reuse", {"resultsFrom": "base"}, ref("same"), **SLOW))  # base's tasks and limits
    wait_for(lambda: (get(cluster, "meval", "queued", ns).get("status") or {}).get("reason") == "Queued",
             timeout=60, interval=0.5, what="queued waits for a slot")
    reuse = wait_for(lambda: (get(cluster, "meval", "reuse", ns).get("status") or {}).get("reason")
                     == "BaselineInProgress" and get(cluster, "meval", "reuse", ns), timeout=60, interval=0.5,
                     what="reuse waits for the baseline")
    assert reuse["status"]["phase"] == "Pending"
    time.sleep(timeout + 2)  # both have now waited longer than the endpoint timeout
    set_isvc_status(cluster, ns, "int4", fleet.url("int4"), False)  # a readiness flap
    wait_for(lambda: (get(cluster, "meval", "queued", ns).get("status") or {}).get("phase") == "WaitingForEndpoints",
             timeout=60, interval=0.5, what="queued sees the flap")
    set_isvc_status(cluster, ns, "int4", fleet.url("int4"), True)
    for name in ("base", "queued", "reuse"):
        status = wait_phase(cluster, name, ns, ("Succeeded", "Failed"), timeout=240)["status"]
        assert status["phase"] == "Succeeded", (name, status.get("reason"), status.get("message"))
    assert get(cluster, "meval", "reuse", ns)["status"]["resultsRef"]["baselineReused"] is True


def test_two_replicas_one_reconciles_and_the_standby_takes_over_when_the_leader_dies(env):
    cluster, ns, fleet, operator, _tmp = env
    lease = "6"
    a = operator("--lease-duration", lease).start()
    wait_for(a.leading, timeout=60, interval=0.5, what="the first replica leads")
    b = operator("--lease-duration", lease).start()
    time.sleep(3)
    assert not b.leading() and "standby: lease" in b.log()
    _apply(cluster, ns, *[evaluation(f"r-{i}", ref("fp16"), ref("same"), **QUICK) for i in range(3)])
    for i in range(3):
        assert wait_phase(cluster, f"r-{i}", ns, ("Succeeded", "Failed"), timeout=180)["status"]["phase"] == "Succeeded"
    assert "runner Job" in a.log() and "runner Job" not in b.log()  # only the leader reconciled
    a.kill()
    killed = time.monotonic()
    wait_for(b.leading, timeout=120, interval=0.25, what="the standby takes over")
    print(f"failover after SIGKILL of the leader: {time.monotonic() - killed:.1f} s (lease duration {lease} s)")
    _apply(cluster, ns, evaluation("after", ref("fp16"), ref("int4"), **QUICK))
    assert wait_phase(cluster, "after", ns, ("Succeeded", "Failed"), timeout=180)["status"]["phase"] == "Succeeded"
    assert "runner Job" in b.log()
    a.start()  # back as the standby: the new leader keeps the Lease
    time.sleep(3)
    assert b.leading() and not a.leading()


def test_healthz_turns_unhealthy_while_the_worker_is_wedged(env):
    cluster, ns, fleet, operator, tmp = env
    wedge = tmp / "wedge"
    op = operator(env={"QUANTGATE_TEST_WEDGE_FILE": str(wedge), "QUANTGATE_HEALTH_STALL_S": "3"}).start()
    assert op.healthz() == 200
    wedge.touch()
    _apply(cluster, ns, evaluation("wedged", ref("fp16"), ref("same"), **QUICK))
    wait_for(lambda: op.healthz() == 503, timeout=60, interval=0.5, what="/healthz 503 while wedged")
    wedge.unlink()
    wait_for(lambda: op.healthz() == 200, timeout=60, interval=0.5, what="/healthz 200 again")
    assert wait_phase(cluster, "wedged", ns, ("Succeeded", "Failed"), timeout=180)["status"]["phase"] == "Succeeded"
