"""Operator latency and memory on the real control plane.

200 ModelEvaluations are created at once; the bench reports p50/p99 of (CR created → its
runner Job created) and (Job complete → verdict in status), then adds evaluations up to
1,000 and reports the operator's resident memory once all of them have a verdict.

Times come from the bench's own watches (one on the Jobs, one on the evaluations), so both
ends of each interval are seen the same way: CR created = the earlier of its create call
returning and its ADDED event; Job created = the Job's ADDED event; Job complete = the event
that first shows its Complete condition; verdict = the event that first shows
status.verdict. A watch sees a change a few ms after it happens, at both ends alike. As a
cross-check the bench also prints an upper bound of Job complete → verdict from the Job's
completionTime, which has whole seconds.

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
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests/integration"))

from operator_harness import (OperatorProcess, install_crds, install_runner_rbac, serve_fleet,  # noqa: E402
                              operator_kubeconfig)
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
    """First-seen times (time.time()) from raw watches of the bench namespace's evaluations
    and runner Jobs; raw JSON lines, not the client's model classes, to stay light."""

    def __init__(self, api, namespace: str):
        from kubernetes import client

        self.custom, self.batch, self.ns = client.CustomObjectsApi(api), client.BatchV1Api(api), namespace
        self.cr_added: dict[str, float] = {}
        self.verdict: dict[str, float] = {}
        self.job_added: dict[str, float] = {}
        self.job_complete: dict[str, float] = {}
        self.job_completion_time: dict[str, float] = {}
        for target in (self._evaluations, self._jobs):
            threading.Thread(target=self._forever, args=(target,), daemon=True).start()

    @staticmethod
    def _forever(target) -> None:
        while True:
            try:
                target()
            except Exception as exc:  # a dropped watch: reopen it (first-seen times are kept)
                say(f"watch reopened after {type(exc).__name__}")
                time.sleep(0.2)

    @staticmethod
    def _lines(response):
        buffer = b""
        for chunk in response.stream(65536):
            buffer += chunk
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                if line.strip():
                    yield json.loads(line), time.time()

    def _evaluations(self) -> None:
        response = self.custom.list_namespaced_custom_object(GROUP, VERSION, self.ns, PLURAL, watch=True,
                                                             timeout_seconds=3600, _preload_content=False)
        for event, at in self._lines(response):
            obj = event.get("object") or {}
            name = (obj.get("metadata") or {}).get("name")
            if not name or event.get("type") not in ("ADDED", "MODIFIED"):
                continue
            self.cr_added.setdefault(name, at)
            if (obj.get("status") or {}).get("verdict"):
                self.verdict.setdefault(name, at)

    def _jobs(self) -> None:
        from datetime import datetime, timezone

        response = self.batch.list_namespaced_job(self.ns, label_selector=f"{names.MANAGED_BY}={names.MANAGER}",
                                                  watch=True, timeout_seconds=3600, _preload_content=False)
        for event, at in self._lines(response):
            obj = event.get("object") or {}
            evaluation = ((obj.get("metadata") or {}).get("labels") or {}).get(names.LABEL_EVALUATION)
            if not evaluation or event.get("type") not in ("ADDED", "MODIFIED"):
                continue
            self.job_added.setdefault(evaluation, at)
            status = obj.get("status") or {}
            if any(c.get("type") == "Complete" and c.get("status") == "True" for c in status.get("conditions") or []):
                self.job_complete.setdefault(evaluation, at)
                done = status.get("completionTime")
                if done:
                    self.job_completion_time.setdefault(evaluation, datetime.strptime(
                        done, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc).timestamp())


def evaluation(name: str) -> dict:
    ref = {"inferenceServiceRef": {"name": "fp16", "model": "m-fp16"}}
    cand = {"inferenceServiceRef": {"name": "int4", "model": "m-int4"}}
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "ModelEvaluation", "metadata": {"name": name},
            "spec": {"baseline": ref, "candidate": cand, "suite": "local", "limit": 3}}


def create_all(custom, ns: str, names_: list[str]) -> dict[str, float]:
    created: dict[str, float] = {}

    def create(name):
        custom.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, evaluation(name))
        created[name] = time.time()

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(create, names_))
    return created


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (/proc/PID/stat fields 14 and 15, in clock ticks)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


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
            serve_fleet(cluster, ns, fleet)
            say("making the real tiny lm-eval runs the stub will publish")
            write_templates(real_tiny_runs(fleet, work), work / "templates")
            op = OperatorProcess(cluster, work / "operator.log", "--namespace", ns, "--no-baseline-cache",
                                 "--max-concurrent", str(args.total + 10), "--poll-interval", "2",
                                 "--runner-command", f"sh {STUB} {work / 'templates'}", kubeconfig=kubeconfig)
            if os.environ.get("QUANTGATE_BENCH_LAUNCHER"):  # diagnostics only (e.g. a tracemalloc wrapper)
                op.launcher = os.environ["QUANTGATE_BENCH_LAUNCHER"].split()
            op.start()
            api = cluster.api_client()
            custom = client.CustomObjectsApi(api)
            watcher = Watcher(api, ns)
            time.sleep(2)

            def wait_verdicts(names_):
                deadline = time.monotonic() + args.timeout
                while True:
                    missing = set(names_) - set(watcher.verdict)
                    if not missing:
                        return
                    if time.monotonic() > deadline:
                        raise SystemExit(f"operator_bench: {len(missing)} evaluations got no verdict "
                                         f"(e.g. {sorted(missing)[:3]}); operator log: {work / 'operator.log'}")
                    time.sleep(0.5)

            batch = [f"ev-{i:04d}" for i in range(args.count)]
            say(f"creating {len(batch)} ModelEvaluations at once")
            started, cpu0, load0 = time.monotonic(), cpu_seconds(op.proc.pid), os.getloadavg()[0]
            created = create_all(custom, ns, batch)
            creating = time.monotonic() - started
            wait_verdicts(batch)
            wall = time.monotonic() - started
            cpu_ms = 1000 * (cpu_seconds(op.proc.pid) - cpu0) / len(batch)
            load1 = os.getloadavg()[0]
            born = {n: min(created[n], watcher.cr_added.get(n, created[n])) for n in batch}
            cr_to_job = [watcher.job_added[n] - born[n] for n in batch]
            job_to_verdict = [watcher.verdict[n] - watcher.job_complete[n] for n in batch]
            upper = [watcher.verdict[n] - watcher.job_completion_time[n] for n in batch]
            say(f"{len(batch)} evaluations created in {creating:.1f}s, all with a verdict after {wall:.1f}s; "
                f"operator CPU {cpu_ms:.0f} ms per evaluation; "
                f"machine load average {load0:.1f} → {load1:.1f} on {os.cpu_count()} CPUs")
            say(f"CR created → Job created: p50 {pct(cr_to_job, .5):.3f}s p99 {pct(cr_to_job, .99):.3f}s "
                f"max {max(cr_to_job):.3f}s")
            say(f"Job complete → verdict:  p50 {pct(job_to_verdict, .5):.3f}s p99 {pct(job_to_verdict, .99):.3f}s "
                f"max {max(job_to_verdict):.3f}s")
            say(f"  upper bound from completionTime (whole seconds): p50 {pct(upper, .5):.3f}s "
                f"p99 {pct(upper, .99):.3f}s")
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
            print(json.dumps({
                "bench": "operator", "evaluations": len(batch),
                "cr_to_job_p50_s": round(pct(cr_to_job, .5), 3), "cr_to_job_p99_s": round(pct(cr_to_job, .99), 3),
                "job_to_verdict_p50_s": round(pct(job_to_verdict, .5), 3),
                "job_to_verdict_p99_s": round(pct(job_to_verdict, .99), 3),
                "job_to_verdict_p99_upper_bound_s": round(pct(upper, .99), 3), "create_s_200": round(creating, 1),
                "wall_s_200": round(wall, 1), "operator_cpu_ms_per_evaluation": round(cpu_ms, 1),
                "load_average_end": round(load1, 1), "cpus": os.cpu_count(), "rss_mib_200": round(rss_200, 1),
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
