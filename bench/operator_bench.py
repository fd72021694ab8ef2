"""Operator latency and memory on the real control plane.

200 ModelEvaluations are created at once; the bench watches Jobs and evaluations and reports
p50/p99 of (CR created → its runner Job created) and (Job complete → verdict in status). Then
it adds evaluations up to 1,000 and reports the operator's resident memory once all of them
have a verdict.

Runner: a BENCHMARK STUB (bench/runner_stub.sh, clearly labelled, used nowhere else) stands in
for `quantgate run`: it publishes a results ConfigMap prepared from a REAL tiny lm-eval run
that this bench makes first against the simulated servers. Everything the operator does is
real: endpoint preflight, Job creation, watching, reading and decoding the ConfigMaps, the
decision engine, the status patch, the event. The baseline cache is off so every evaluation
gets its own Job, and the concurrency cap is above the count, so no evaluation queues (the
latencies measure the operator, not the queue).

    .venv/bin/python bench/operator_bench.py [--count 200] [--total 1000]

Reuses the cluster named by QUANTGATE_KUBECONFIG if set, else starts (and stops) its own.
Last line: {"bench": "operator", "cr_to_job_p99_s": ..., "job_to_verdict_p99_s": ..., "rss_mib_1000": ...}
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests/integration"))

from operator_harness import (OperatorProcess, install_crds, install_runner_rbac, isvc,  # noqa: E402
                              operator_kubeconfig, set_isvc_status)
from quantgate.api.v1alpha1 import GROUP, PLURAL, VERSION  # noqa: E402
from quantgate.dev import harness  # noqa: E402
from quantgate.k8s import names, results_channel  # noqa: E402

ACC = {"arc_challenge": 0.7, "hellaswag": 0.8, "mmlu": 0.7, "truthfulqa_mc2": 0.7, "winogrande": 0.75,
       "gsm8k": 0.7}
FLEET = {"seed": 3, "reference": "fp16", "variants": [
    {"name": "fp16", "model": "m-fp16", "accuracy": ACC},
    {"name": "int4", "model": "m-int4", "accuracy": {**ACC, "gsm8k": 0.5}, "flipRate": {"default": 0.1}},
]}
STUB = ROOT / "bench/runner_stub.sh"


def say(msg: str) -> None:
    print(f"operator_bench: {msg}", flush=True)


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def real_tiny_runs(fleet, work: Path) -> dict[str, bytes]:
    """One real lm-eval run per variant (local suite, 3 documents per task) → result payloads."""
    from quantgate.lmeval.results import load_run

    payloads = {}
    for role, variant in (("baseline", "fp16"), ("candidate", "int4")):
        out = work / f"run-{variant}"
        subprocess.run([str(ROOT / ".venv/bin/quantgate"), "run", "--endpoint", fleet.url(variant), "--suite",
                        "local", "--limit", "3", "--output", str(out), "--force", "--progress-interval", "60"],
                       check=True, capture_output=True)
        payloads[role] = results_channel.encode(load_run(out).to_compact())
    return payloads


def write_templates(payloads: dict[str, bytes], directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for role, payload in payloads.items():
        cms = results_channel.build_configmaps(payload, namespace="@NS@", name="@NAME@", role=role,
                                               evaluation="@OWNER@", owner_uid="@UID@",
                                               extra_labels={names.LABEL_BASELINE_KEY: "@BKEY@"})
        assert len(cms) == 1, "tiny results fit one ConfigMap"
        (directory / f"{role}.json").write_text(json.dumps(cms[0]))


class Watcher:
    """Local receive times of: a Job per evaluation appearing, it completing, the verdict."""

    def __init__(self, api_client, namespace: str):
        from kubernetes import client

        self.batch = client.BatchV1Api(api_client)
        self.custom = client.CustomObjectsApi(api_client)
        self.ns = namespace
        self.job_seen: dict[str, float] = {}
        self.job_done: dict[str, float] = {}
        self.verdict: dict[str, float] = {}
        self.stop = threading.Event()
        for target in (self._jobs, self._evaluations):
            threading.Thread(target=target, daemon=True).start()

    def _loop(self, lister, handle):
        from kubernetes import watch

        while not self.stop.is_set():
            try:
                for event in watch.Watch().stream(lister, self.ns, timeout_seconds=30, deserialize=False):
                    handle(event["object"])
                    if self.stop.is_set():
                        return
            except Exception:  # a dropped watch: re-list and go on
                time.sleep(0.2)

    def _jobs(self):
        def handle(job):
            now = time.monotonic()
            ev = (job["metadata"].get("labels") or {}).get(names.LABEL_EVALUATION)
            self.job_seen.setdefault(ev, now)
            if any(c["type"] == "Complete" and c["status"] == "True"
                   for c in (job.get("status") or {}).get("conditions") or []):
                self.job_done.setdefault(ev, now)

        self._loop(self.batch.list_namespaced_job, handle)

    def _evaluations(self):
        def lister(ns, **kw):
            return self.custom.list_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, **kw)

        def handle(obj):
            now = time.monotonic()
            if (obj.get("status") or {}).get("verdict"):
                self.verdict.setdefault(obj["metadata"]["name"], now)

        self._loop(lister, handle)


def evaluation(name: str) -> dict:
    ref = {"inferenceServiceRef": {"name": "fp16", "model": "m-fp16"}}
    cand = {"inferenceServiceRef": {"name": "int4", "model": "m-int4"}}
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "ModelEvaluation", "metadata": {"name": name},
            "spec": {"baseline": ref, "candidate": cand, "suite": "local", "limit": 3}}


def create_all(custom, ns: str, names_: list[str]) -> dict[str, float]:
    created: dict[str, float] = {}

    def create(name):
        custom.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, evaluation(name))
        created[name] = time.monotonic()

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(create, names_))
    return created


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200, help="evaluations created at once")
    parser.add_argument("--total", type=int, default=1000, help="evaluations present for the RSS figure")
    parser.add_argument("--timeout", type=float, default=1500)
    args = parser.parse_args()

    from kubernetes import client

    from quantgate.simulate.fleet import SimulatedFleet

    work = Path(tempfile.mkdtemp(prefix="quantgate-opbench-"))
    reuse = os.environ.get("QUANTGATE_KUBECONFIG")
    cluster = harness.attach(Path(reuse)) if reuse else harness.start(work / "dev")
    op = None
    ns = None
    try:
        install_crds(cluster)
        ns = harness.create_namespace(cluster, "bench")
        install_runner_rbac(cluster, ns)
        kubeconfig = operator_kubeconfig(cluster, work)
        with SimulatedFleet(FLEET) as fleet:
            for v in fleet.names:
                cluster.apply(isvc(v, None), ns)
                set_isvc_status(cluster, ns, v, fleet.url(v), True)
            say("making the real tiny lm-eval runs the stub will publish")
            write_templates(real_tiny_runs(fleet, work), work / "templates")
            op = OperatorProcess(cluster, work / "operator.log", "--namespace", ns, "--no-baseline-cache",
                                 "--max-concurrent", str(args.total + 10), "--poll-interval", "2",
                                 "--runner-command", f"sh {STUB} {work / 'templates'}", kubeconfig=kubeconfig)
            op.start()
            api = cluster.api_client()
            custom = client.CustomObjectsApi(api)
            watcher = Watcher(cluster.api_client(), ns)
            time.sleep(1)

            batch = [f"ev-{i:04d}" for i in range(args.count)]
            say(f"creating {len(batch)} ModelEvaluations at once")
            started = time.monotonic()
            created = create_all(custom, ns, batch)

            def wait_verdicts(names_):
                deadline = time.monotonic() + args.timeout
                while not all(n in watcher.verdict for n in names_):
                    if time.monotonic() > deadline:
                        missing = [n for n in names_ if n not in watcher.verdict]
                        raise SystemExit(f"operator_bench: {len(missing)} evaluations got no verdict "
                                         f"(e.g. {missing[:3]}); operator log: {work / 'operator.log'}")
                    time.sleep(0.5)

            wait_verdicts(batch)
            wall = time.monotonic() - started
            cr_to_job = [watcher.job_seen[n] - created[n] for n in batch]
            job_to_verdict = [watcher.verdict[n] - watcher.job_done[n] for n in batch if n in watcher.job_done]
            say(f"{len(batch)} evaluations to verdict in {wall:.1f}s")
            say(f"CR created → Job created: p50 {pct(cr_to_job, .5):.3f}s p99 {pct(cr_to_job, .99):.3f}s "
                f"max {max(cr_to_job):.3f}s")
            say(f"Job complete → verdict:  p50 {pct(job_to_verdict, .5):.3f}s p99 {pct(job_to_verdict, .99):.3f}s "
                f"max {max(job_to_verdict):.3f}s (n={len(job_to_verdict)})")
            rss_200 = rss_mib(op.proc.pid)
            say(f"operator RSS with {len(batch)} evaluations: {rss_200:.1f} MiB")

            more = [f"ev-{i:04d}" for i in range(args.count, args.total)]
            if more:
                say(f"adding {len(more)} more evaluations (total {args.total})")
                create_all(custom, ns, more)
                wait_verdicts(more)
            time.sleep(5)  # settle: every CR seen, handlers idle
            rss_total = rss_mib(op.proc.pid)
            say(f"operator RSS with {args.total} evaluations: {rss_total:.1f} MiB")
            watcher.stop.set()
            print(json.dumps({
                "bench": "operator", "evaluations": len(batch),
                "cr_to_job_p50_s": round(pct(cr_to_job, .5), 3), "cr_to_job_p99_s": round(pct(cr_to_job, .99), 3),
                "job_to_verdict_p50_s": round(pct(job_to_verdict, .5), 3),
                "job_to_verdict_p99_s": round(pct(job_to_verdict, .99), 3),
                "wall_s_200": round(wall, 1), "rss_mib_200": round(rss_200, 1),
                "rss_mib_1000": round(rss_total, 1), "total_evaluations": args.total,
                "runner": "bench stub publishing a real tiny lm-eval run",
            }), flush=True)
            return 0
    finally:
        if op is not None:
            op.stop()
        if not reuse:
            harness.stop(cluster)
        elif ns:
            cluster.kubectl("delete", "namespace", ns, "--wait=false", check=False)


if __name__ == "__main__":
    sys.exit(main())
