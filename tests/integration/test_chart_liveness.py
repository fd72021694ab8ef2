"""The chart's liveness probe restarts a wedged operator on the dev cluster: the chart installed
with short probe timings (values operator.healthStallSeconds, operator.livenessProbe and
operator.shutdownDeadlineSeconds), the operator pod (process kubelet) wedged with the /healthz
test hook, /healthz turns 503, the kubelet kills and restarts the container (restartCount;
lastState with exit code 1: the operator's shutdown deadline ended it on TERM, before the KILL;
the kubelet's Unhealthy and Killing Events on the pod), and the restarted operator is healthy
and settles both the evaluation it was wedged on and one created after the restart.

The hook's file is /tmp/wedge inside the pod: the chart mounts an emptyDir at /tmp, so the test
writes the file into that volume on the host, as `kubectl exec ... touch /tmp/wedge` would (a
host path under /tmp would not be what the container sees at that path). The emptyDir outlives
the container restart, so the restarted operator stays wedged until the test removes the file."""

from __future__ import annotations

import urllib.error
import urllib.request

import yaml

from operator_harness import evaluation, free_port, serve_fleet, wait_phase
from quantgate.dev.harness import create_namespace, get_json, pod_volume, wait_for
from test_chart_install import CHART, FLEET, KSERVE_CRD, RESTRICTED, helm, operator_pods, running_operator

RELEASE = "live"
REF = {"inferenceServiceRef": {"name": "fp16", "model": "m-fp16"}}
QUICK = {"suite": "local", "tasks": [{"name": "gsm8k", "limit": 4}]}


def healthz(port: int) -> int | None:
    """/healthz's status code; None while nothing answers (the container is down)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return None


def operator_status(cluster, ns: str) -> dict:
    (pod,) = operator_pods(cluster, ns)
    (status,) = pod["status"]["containerStatuses"]
    return status


def test_liveness_probe_restarts_a_wedged_operator(cluster, tmp_path):
    from quantgate.simulate.fleet import SimulatedFleet

    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CHART / "crds"))
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(KSERVE_CRD))
    ns = create_namespace(cluster, "live", labels=RESTRICTED)
    port = free_port()
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump({
        "image": {"repository": "quantgate", "tag": "test"},
        "watch": {"namespaces": [ns]},
        "metrics": {"port": port},
        "operator": {"healthStallSeconds": 3, "shutdownDeadlineSeconds": 1, "terminationGracePeriodSeconds": 3,
                     "livenessProbe": {"initialDelaySeconds": 5, "periodSeconds": 2, "timeoutSeconds": 1,
                                       "failureThreshold": 2},
                     "extraEnv": [{"name": "QUANTGATE_METRICS_HOST", "value": "127.0.0.1"},
                                  {"name": "QUANTGATE_POLL_INTERVAL_S", "value": "1"},
                                  {"name": "QUANTGATE_TEST_WEDGE_FILE", "value": "/tmp/wedge"}]},
    }))
    helm(cluster, "install", RELEASE, str(CHART), "-n", ns, "-f", str(values), "--wait", "--timeout", "120s")
    try:
        with SimulatedFleet(FLEET) as fleet:
            serve_fleet(cluster, ns, fleet)
            pod = running_operator(cluster, ns)
            first = operator_status(cluster, ns)
            assert first["restartCount"] == 0
            wedge = pod_volume(cluster, pod, "tmp") / "wedge"
            wedge.touch()
            cluster.apply(evaluation("stuck", REF, {**REF}, **QUICK), ns)

            wait_for(lambda: healthz(port) == 503, timeout=60, interval=0.2, what="/healthz 503 while wedged")
            wait_for(lambda: operator_status(cluster, ns)["restartCount"] >= 1, timeout=120, interval=0.5,
                     what="the kubelet restarts the wedged operator")
            wedge.unlink()
            restarted = wait_for(lambda: "running" in (s := operator_status(cluster, ns))["state"] and s,
                                 timeout=60, interval=0.5, what="the restarted operator running")
            assert restarted["restartCount"] >= 1 and "terminated" in restarted["lastState"], restarted
            # the shutdown deadline ended the wedged process on TERM (1), before the grace period's KILL (137)
            assert restarted["lastState"]["terminated"]["exitCode"] == 1, restarted
            assert restarted["containerID"] != first["containerID"], "a new process, not the wedged one"
            # the kubelet's Events on the pod, as a kubelet posts them
            meta = pod["metadata"]
            events = get_json(cluster, "events", "-n", ns, "--field-selector",
                              f"involvedObject.uid={meta['uid']}")["items"]
            said = [(e["type"], e["reason"], e["message"]) for e in events]
            # (a restarted container probed before it listens adds an Unhealthy 'Get "<url>": ...')
            failed = [e for e in events if e["reason"] == "Unhealthy"
                      and e["message"] == "Liveness probe failed: HTTP probe failed with statuscode: 503"]
            kills = [e for e in events if e["reason"] == "Killing"]
            assert len(failed) == 1 and len(kills) == 1, said  # repeats bump the count of one Event
            (unhealthy,), (killing,) = failed, kills
            assert unhealthy["type"] == "Warning" and unhealthy["count"] >= 2, unhealthy
            assert killing["type"] == "Normal", killing
            assert killing["message"] == "Container operator failed liveness probe, will be restarted", killing
            for event in unhealthy, killing:
                assert event["involvedObject"]["kind"] == "Pod" and event["involvedObject"]["name"] == meta["name"]
                assert event["involvedObject"]["fieldPath"] == "spec.containers{operator}", event
                assert event["source"]["component"] == "kubelet", event

            cluster.apply(evaluation("after", REF, {**REF}, **QUICK), ns)
            for name in ("stuck", "after"):
                status = wait_phase(cluster, name, ns, ("Succeeded", "Failed"), timeout=240)["status"]
                assert status["phase"] == "Succeeded", (name, status.get("reason"), status.get("message"))
            wait_for(lambda: healthz(port) == 200, timeout=60, interval=0.5, what="/healthz 200 after the restart")
    finally:
        helm(cluster, "uninstall", RELEASE, "-n", ns, "--wait", check=False)
        cluster.kubectl("delete", "namespace", ns, "--wait=false", check=False)
