"""`make e2e`: the operator's full path on a fresh dev cluster (run by scripts/e2e.sh).

dev cluster up → CRDs (ModelEvaluation, KServe stand-in) and RBAC → simulated model servers
and their InferenceServices (status.address.url on loopback) → `quantgate operator` as its
own ServiceAccount → manifests/samples/ (the ones labelled quantgate.io/sample-runs-offline
run; the rest are validated by the apiserver with a server-side dry run) → wait → print
`kubectl get meval` → tear everything down. Exit 0 when every runnable sample Succeeded.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests/integration"))

import yaml  # noqa: E402

from operator_harness import (OperatorProcess, install_crds, install_runner_rbac, serve_fleet,  # noqa: E402
                              operator_kubeconfig)
from quantgate.dev import harness  # noqa: E402

NS = "models"
OFFLINE = "quantgate.io/sample-runs-offline"


def say(msg: str) -> None:
    print(f"e2e: {msg}", flush=True)


def main() -> int:
    from quantgate.simulate.fleet import SimulatedFleet

    work = Path(tempfile.mkdtemp(prefix="quantgate-e2e-"))
    started = time.monotonic()
    say(f"starting the dev cluster in {work}")
    cluster = harness.start(work / "dev", progress=lambda m: say(m))
    op = None
    try:
        install_crds(cluster)
        cluster.kubectl("create", "namespace", NS)
        harness.wait_for(lambda: cluster.kubectl("get", "sa", "default", "-n", NS, check=False).returncode == 0,
                         timeout=30, what="namespace ready")
        install_runner_rbac(cluster, NS)
        kubeconfig = operator_kubeconfig(cluster, work)
        say("CRDs and RBAC installed")
        with SimulatedFleet(ROOT / "tests/e2e/fleet.yaml") as fleet:
            serve_fleet(cluster, NS, fleet)
            say(f"simulated servers up: {', '.join(f'{n}={fleet.url(n)}' for n in fleet.names)}")
            op = OperatorProcess(cluster, work / "operator.log", "--poll-interval", "1",
                                 kubeconfig=kubeconfig).start()
            say(f"operator running (log {work / 'operator.log'})")
            runnable = []
            for path in sorted((ROOT / "manifests/samples").glob("*.yaml")):
                docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
                runs = all(d.get("metadata", {}).get("labels", {}).get(OFFLINE) == "true"
                           for d in docs if d.get("kind") == "ModelEvaluation")
                mode = [] if runs else ["--dry-run=server"]
                out = cluster.kubectl("apply", *mode, "-f", str(path)).stdout.strip()
                say(f"{path.name}: {out.replace(chr(10), '; ')}")
                if runs:
                    runnable += [d["metadata"]["name"] for d in docs if d.get("kind") == "ModelEvaluation"]

            def settled():
                items = json.loads(cluster.kubectl("get", "meval", "-n", NS, "-o", "json").stdout)["items"]
                done = {o["metadata"]["name"]: o["status"] for o in items
                        if (o.get("status") or {}).get("phase") in ("Succeeded", "Failed")}
                return done if set(runnable) <= set(done) else None

            done = harness.wait_for(settled, timeout=900, interval=2, what="samples evaluated")
            print(cluster.kubectl("get", "meval", "-n", NS).stdout, flush=True)
            print(cluster.kubectl("get", "meval", "-n", NS, "-o", "wide").stdout, flush=True)
            failed = {n: s.get("message") for n, s in done.items() if s.get("phase") != "Succeeded"}
            for name, message in failed.items():
                say(f"{name} failed: {message}")
            say(f"done in {time.monotonic() - started:.0f}s")
            return 1 if failed else 0
    finally:
        if op is not None:
            op.stop()
        harness.stop(cluster)
        say("dev cluster stopped")


if __name__ == "__main__":
    sys.exit(main())
