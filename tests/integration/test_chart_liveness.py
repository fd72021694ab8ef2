"""The chart's liveness probe restarts a wedged operator on the dev cluster: the operator pod
(process kubelet) runs with the /healthz test hook; while the hook's file exists every
reconcile blocks, /healthz turns 503, and the kubelet kills and restarts the container."""

from __future__ import annotations

import yaml

from operator_harness import evaluation, free_port, serve_fleet, wait_phase
from quantgate.dev.harness import create_namespace, wait_for
from test_chart_install import CHART, FLEET, KSERVE_CRD, RESTRICTED, helm, operator_pods

RELEASE = "live"


def test_liveness_probe_restarts_a_wedged_operator(cluster, tmp_path):
    from quantgate.simulate.fleet import SimulatedFleet

    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CHART / "crds"))
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(KSERVE_CRD))
    ns = create_namespace(cluster, "live", labels=RESTRICTED)
    wedge = tmp_path / "wedge"
    wedge.touch()
    tmp_path.chmod(0o777)  # the pod runs as UID 10001 on this host; it only reads the hook file
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump({
        "image": {"repository": "quantgate", "tag": "test"},
        "watch": {"namespaces": [ns]},
        "metrics": {"port": free_port()},
        "operator": {"extraEnv": [{"name": "QUANTGATE_METRICS_HOST", "value": "127.0.0.1"},
                                  {"name": "QUANTGATE_TEST_WEDGE_FILE", "value": str(wedge)},
                                  {"name": "QUANTGATE_HEALTH_STALL_S", "value": "3"}]},
    }))
    helm(cluster, "install", RELEASE, str(CHART), "-n", ns, "-f", str(values), "--wait", "--timeout", "120s")
    try:
        with SimulatedFleet(FLEET) as fleet:
            serve_fleet(cluster, ns, fleet)
            ref = {"inferenceServiceRef": {"name": "fp16", "model": "m-fp16"}}
            cluster.kubectl("apply", "-n", ns, "-f", "-", input=yaml.safe_dump(
                evaluation("stuck", ref, {**ref}, suite="local", tasks=[{"name": "gsm8k", "limit": 4}])))

            def restarted():
                pods = operator_pods(cluster, ns)
                return pods and pods[0]["status"].get("containerStatuses", [{}])[0].get("restartCount", 0) >= 1

            # probe: 10 s initial delay, every 20 s, 3 failures → restart within about 80 s
            wait_for(restarted, timeout=240, interval=2, what="the kubelet restarts the wedged operator")
            wedge.unlink()
            status = wait_phase(cluster, "stuck", ns, ("Succeeded", "Failed"), timeout=240)["status"]
            assert status["phase"] == "Succeeded", (status.get("reason"), status.get("message"))
            last = operator_pods(cluster, ns)[0]["status"]["containerStatuses"][0]["lastState"]
            assert "terminated" in last
    finally:
        helm(cluster, "uninstall", RELEASE, "-n", ns, "--wait", check=False)
        cluster.kubectl("delete", "namespace", ns, "--wait=false", check=False)
