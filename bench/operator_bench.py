"""Operator latency and memory on the real control plane.

200 ModelEvaluations are created at once; the bench reports p50/p99 of (CR created → its
runner Job created) and (Job complete → verdict in status). Times: CR creation as the bench's
create call returned; Job creation and verdict as the operator logged them (ms, same clock);
Job completion from the Job's completionTime (whole seconds, so that figure is an upper
bound). Then
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
import re
import statistics
import subprocess
import sys
import tempfile
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


LOG_TIME = "%Y-%m-%d %H:%M:%S,%f"


def operator_times(log_text: str, namespace: str) -> tuple[dict[str, float], dict[str, float]]:
    """From the operator's log (millisecond timestamps): when it created each evaluation's Job
    and when it wrote each verdict (epoch seconds)."""
    from datetime import datetime

    created, decided = {}, {}
    job_line = re.compile(rf" {re.escape(namespace)}/(\S+): created runner Job ")
    verdict_line = re.compile(rf" {re.escape(namespace)}/(\S+) generation \d+: (Ship|Monitor|ABTest|Block):")
    for line in log_text.splitlines():
        found = job_line.search(line) or verdict_line.search(line)
        if not found:
            continue
        try:
            at = datetime.strptime(line[:23], LOG_TIME).timestamp()
        except ValueError:
            continue
        (created if found.re is job_line else decided).setdefault(found.group(1), at)
    return created, decided


def completion_times(batch_api, namespace: str) -> dict[str, float]:
    """Job completionTime per evaluation (the Job controller's, whole seconds: truncation makes
    the derived latency an upper bound, by < 1 s)."""
    from datetime import datetime, timezone

    out = {}
    jobs = json.loads(batch_api.list_namespaced_job(namespace, _preload_content=False).data)["items"]
    for job in jobs:
        done = (job.get("status") or {}).get("completionTime")
        if done:
            ev = job["metadata"]["labels"][names.LABEL_EVALUATION]
            out[ev] = datetime.strptime(done, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc).timestamp()
    return out


def verdicts(custom, namespace: str) -> set[str]:
    items = custom.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)["items"]
    return {o["metadata"]["name"] for o in items if (o.get("status") or {}).get("verdict")}


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
            batch_api = client.BatchV1Api(api)
            time.sleep(2)

            def wait_verdicts(names_):
                deadline = time.monotonic() + args.timeout
                while True:
                    missing = set(names_) - verdicts(custom, ns)
                    if not missing:
                        return
                    if time.monotonic() > deadline:
                        raise SystemExit(f"operator_bench: {len(missing)} evaluations got no verdict "
                                         f"(e.g. {sorted(missing)[:3]}); operator log: {work / 'operator.log'}")
                    time.sleep(1)

            batch = [f"ev-{i:04d}" for i in range(args.count)]
            say(f"creating {len(batch)} ModelEvaluations at once")
            started, cpu0, load0 = time.monotonic(), cpu_seconds(op.proc.pid), os.getloadavg()[0]
            created = create_all(custom, ns, batch)
            wait_verdicts(batch)
            wall = time.monotonic() - started
            cpu_ms = 1000 * (cpu_seconds(op.proc.pid) - cpu0) / len(batch)
            load1 = os.getloadavg()[0]
            job_created, decided = operator_times(op.log(), ns)
            completed = completion_times(batch_api, ns)
            cr_to_job = [job_created[n] - created[n] for n in batch]
            job_to_verdict = [decided[n] - completed[n] for n in batch]
            say(f"{len(batch)} evaluations to verdict in {wall:.1f}s; operator CPU {cpu_ms:.0f} ms per evaluation; "
                f"machine load average {load0:.1f} → {load1:.1f} on {os.cpu_count()} CPUs")
            say(f"CR created → Job created: p50 {pct(cr_to_job, .5):.3f}s p99 {pct(cr_to_job, .99):.3f}s "
                f"max {max(cr_to_job):.3f}s")
            say(f"Job complete → verdict:  p50 {pct(job_to_verdict, .5):.3f}s p99 {pct(job_to_verdict, .99):.3f}s "
                f"max {max(job_to_verdict):.3f}s (upper bounds: completionTime has whole seconds)")
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
