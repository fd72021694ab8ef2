"""Dev cluster benchmark: time from `quantgate dev up` to ready, then 100 trivial Jobs (`true`)
through the real Job controller, scheduler and the process kubelet.

Last line: {"bench": "cluster", "up_seconds": ..., "jobs": 100, "jobs_per_second": ...}
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from quantgate.dev import cluster, procs


def job(name: str) -> dict:
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
            "spec": {"backoffLimit": 0, "template": {"spec": {
                "restartPolicy": "Never",
                "containers": [{"name": "main", "image": "busybox", "command": ["true"]}]}}}}


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=100)
    args = parser.parse_args()
    state_dir = Path(tempfile.mkdtemp(prefix="qg-bench-")) / "dev"
    t0 = time.monotonic()
    subprocess.run([sys.executable, "-m", "quantgate.cli", "dev", "up", "--state-dir", str(state_dir)],
                   check=True, stdout=subprocess.DEVNULL)
    up_seconds = time.monotonic() - t0
    print(f"dev up → ready: {up_seconds:.2f}s")
    try:
        state = cluster.State.load(state_dir)
        api = state.admin()
        ns = "bench"
        api.post("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
        while True:  # pods need the namespace's default ServiceAccount
            try:
                api.get(f"/api/v1/namespaces/{ns}/serviceaccounts/default")
                break
            except Exception:
                time.sleep(0.1)
        names = [f"trivial-{i:03d}" for i in range(args.jobs)]
        t1 = time.monotonic()
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda n: api.post(f"/apis/batch/v1/namespaces/{ns}/jobs", job(n)), names))
        created = time.monotonic() - t1
        done: dict[str, str] = {}
        while len(done) < len(names):
            for item in api.get(f"/apis/batch/v1/namespaces/{ns}/jobs")["items"]:
                for cond in item.get("status", {}).get("conditions") or []:
                    if cond["type"] in ("Complete", "Failed") and cond["status"] == "True":
                        done[item["metadata"]["name"]] = cond["type"]
            if time.monotonic() - t1 > 600:
                raise SystemExit(f"only {len(done)}/{len(names)} Jobs finished in 600s")
            time.sleep(0.25)
        elapsed = time.monotonic() - t1
        kubelet = next(p for p in state.procs if p.name == "kubelet")
        failed = sum(1 for v in done.values() if v == "Failed")
        print(f"{len(names)} Jobs created in {created:.2f}s, all finished in {elapsed:.2f}s "
              f"({failed} failed); kubelet RSS {rss_mib(kubelet.pid):.0f} MiB, alive={procs.alive(kubelet)}")
    finally:
        cluster.down(state_dir, progress=lambda _m: None)
        state_dir.parent.rmdir()
    print(json.dumps({"bench": "cluster", "up_seconds": round(up_seconds, 2), "jobs": len(names),
                      "jobs_per_second": round(len(names) / elapsed, 2), "jobs_failed": failed,
                      "seconds": round(elapsed, 2)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
