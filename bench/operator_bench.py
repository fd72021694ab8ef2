"""Operator latency and memory on the real control plane.

200 ModelEvaluations are created at once; the bench reports p50/p99 of (CR created → its
runner Job created) and (Job complete → verdict in status). It does that in three rounds, one
burst after the other (the first two rounds' evaluations stay, settled), because one burst's
p99 on a 2-core machine shared by the control plane, the kubelet and 400 runner processes
moves by a factor of two from run to run; the headline figures are the median of the rounds'
figures, and every round's p99 is printed too. Then it adds evaluations up to 1,000 and
reports the operator's resident memory once all of them have a verdict.

Times: each event's earliest observation. The bench watches the evaluations and the runner
Jobs from a separate process (so its own create threads cannot delay those watches on the
GIL), and reads the operator's log (millisecond timestamps, written after the API call
returned) as a second observer of Job creation and of verdicts. CR created = the earlier of
its create call returning and its ADDED event; Job created = the earlier of its ADDED event
and the operator's "created runner Job" line; Job complete = the event that first shows its
Complete condition; verdict = the earlier of the event that first shows status.verdict and
the operator's verdict line. As a cross-check the bench also prints an upper bound of Job
complete → verdict from the Job's completionTime, which has whole seconds and is stamped by
the Job controller before its status write reaches the API server.

Runner: a BENCHMARK STUB (bench/runner_stub.sh, clearly labelled, used nowhere else) stands in
for `quantgate run`: it publishes a results ConfigMap prepared from a REAL tiny lm-eval run
that this bench makes first against the simulated servers. Everything the operator does is
real: endpoint preflight, Job creation, watching, reading and decoding the ConfigMaps, the
decision engine, the status patch, the event. The baseline cache is off so every evaluation
gets its own Job, and the concurrency cap is above the count, so no evaluation queues (the
latencies measure the operator, not the queue).

    .venv/bin/python bench/operator_bench.py [--count 200] [--rounds 3] [--total 1000]

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
    payloads = {}
    for role, variant in (("baseline", "fp16"), ("candidate", "int4")):
        out = work / f"run-{variant}"
        subprocess.run([str(ROOT / ".venv/bin/quantgate"), "run", "--endpoint", fleet.url(variant), "--suite",
                        "local", "--limit", "3", "--output", str(out), "--force", "--progress-interval", "60"],
                       check=True, capture_output=True)
        payloads[role] = results_channel.encode(results_channel.compact_document(out))  # with its run record
    return payloads


def write_templates(payloads: dict[str, bytes], directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for role, payload in payloads.items():
        cms = results_channel.build_configmaps(payload, namespace="@NS@", name="@NAME@", role=role,
                                               evaluation="@OWNER@", owner_uid="@UID@",
                                               extra_labels={names.LABEL_BASELINE_KEY: "@BKEY@"},
                                               job=("@JOB@", "@JOBUID@"), pod=("@POD@", "@PODUID@"))
        assert len(cms) == 1, "tiny results fit one ConfigMap"
        (directory / f"{role}.json").write_text(json.dumps(cms[0]))


class Watcher:
    """First-seen times (time.time()) of the bench namespace's evaluations and runner Jobs,
    from raw watches in a separate process (so the bench's own create threads cannot delay
    them on the GIL), plus the operator's log lines as a second observer of Job creation and
    verdicts: each event's time is its earliest observation."""

    def __init__(self, kubeconfig: Path, namespace: str):
        import multiprocessing

        self.cr_added: dict[str, float] = {}
        self.verdict: dict[str, float] = {}
        self.job_added: dict[str, float] = {}
        self.job_complete: dict[str, float] = {}
        self.job_completion_time: dict[str, float] = {}
        context = multiprocessing.get_context("spawn")
        self._queue = context.Queue()
        self._process = context.Process(target=watch_process, args=(str(kubeconfig), namespace, self._queue),
                                        daemon=True)
        self._process.start()
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        while True:
            kind, name, at = self._queue.get()
            getattr(self, kind).setdefault(name, at)

    def add_operator_log(self, log_text: str, namespace: str) -> None:
        for kind, times in zip(("job_added", "verdict"), operator_times(log_text, namespace)):
            table = getattr(self, kind)
            for name, at in times.items():
                table[name] = min(at, table.get(name, at))

    def stop(self) -> None:
        self._process.terminate()


def watch_process(kubeconfig: str, namespace: str, out) -> None:
    """Runs in its own process: watch evaluations and runner Jobs, put (table, name, time)."""
    from datetime import datetime, timezone

    from kubernetes import client

    api = harness.attach(Path(kubeconfig)).api_client()
    custom, batch = client.CustomObjectsApi(api), client.BatchV1Api(api)

    def lines(response):
        buffer = b""
        for chunk in response.stream(65536):
            buffer += chunk
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                if line.strip():
                    yield json.loads(line), time.time()

    def evaluations() -> None:
        for event, at in lines(custom.list_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, watch=True, timeout_seconds=3600, _preload_content=False)):
            obj = event.get("object") or {}
            name = (obj.get("metadata") or {}).get("name")
            if name and event.get("type") in ("ADDED", "MODIFIED"):
                out.put(("cr_added", name, at))
                if (obj.get("status") or {}).get("verdict"):
                    out.put(("verdict", name, at))

    def jobs() -> None:
        for event, at in lines(batch.list_namespaced_job(
                namespace, label_selector=f"{names.MANAGED_BY}={names.MANAGER}", watch=True, timeout_seconds=3600,
                _preload_content=False)):
            obj = event.get("object") or {}
            evaluation = ((obj.get("metadata") or {}).get("labels") or {}).get(names.LABEL_EVALUATION)
            if not evaluation or event.get("type") not in ("ADDED", "MODIFIED"):
                continue
            out.put(("job_added", evaluation, at))
            status = obj.get("status") or {}
            if any(c.get("type") == "Complete" and c.get("status") == "True" for c in status.get("conditions") or []):
                out.put(("job_complete", evaluation, at))
                if status.get("completionTime"):
                    out.put(("job_completion_time", evaluation, datetime.strptime(
                        status["completionTime"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc).timestamp()))

    def forever(target) -> None:
        while True:
            try:
                target()
            except Exception as exc:  # a dropped watch: reopen it (first-seen times are kept)
                say(f"watch reopened after {type(exc).__name__}")
                time.sleep(0.2)

    threads = [threading.Thread(target=forever, args=(t,), daemon=True) for t in (evaluations, jobs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


LOG_TIME = "%Y-%m-%d %H:%M:%S,%f"


def operator_times(log_text: str, namespace: str) -> tuple[dict[str, float], dict[str, float]]:
    """From the operator's log (millisecond timestamps, written after the API call returned):
    when it created each evaluation's Job and when it had written each verdict."""
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
    parser.add_argument("--rounds", type=int, default=3, help="bursts of --count, one after the other")
    parser.add_argument("--timeout", type=float, default=1500)
    args = parser.parse_args()

    from kubernetes import client

    from quantgate.simulate.fleet import SimulatedFleet

    work = Path(tempfile.mkdtemp(prefix="quantgate-opbench-"))
    reuse = os.environ.get("QUANTGATE_KUBECONFIG")
    cluster = harness.attach(Path(reuse)) if reuse else harness.start(work / "dev")
    op = watcher = None
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
            watcher = Watcher(cluster.kubeconfig, ns)
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

            def burst(round_: int) -> dict:
                batch = [f"ev-{round_}-{i:04d}" for i in range(args.count)]
                say(f"round {round_}: creating {len(batch)} ModelEvaluations at once")
                started, cpu0, load0 = time.monotonic(), cpu_seconds(op.proc.pid), os.getloadavg()[0]
                created = create_all(custom, ns, batch)
                creating = time.monotonic() - started
                wait_verdicts(batch)
                wall = time.monotonic() - started
                time.sleep(1)  # the operator's last log lines and the watch process's last times
                watcher.add_operator_log(op.log(), ns)
                cpu_ms = 1000 * (cpu_seconds(op.proc.pid) - cpu0) / len(batch)
                load1 = os.getloadavg()[0]
                born = {n: min(created[n], watcher.cr_added.get(n, created[n])) for n in batch}
                cr_to_job = [watcher.job_added[n] - born[n] for n in batch]
                job_to_verdict = [watcher.verdict[n] - watcher.job_complete[n] for n in batch]
                upper = [watcher.verdict[n] - watcher.job_completion_time[n] for n in batch]
                say(f"round {round_}: {len(batch)} evaluations created in {creating:.1f}s, all with a verdict "
                    f"after {wall:.1f}s; operator CPU {cpu_ms:.0f} ms per evaluation; "
                    f"machine load average {load0:.1f} → {load1:.1f} on {os.cpu_count()} CPUs")
                say(f"round {round_}: CR created → Job created: p50 {pct(cr_to_job, .5):.3f}s "
                    f"p99 {pct(cr_to_job, .99):.3f}s max {max(cr_to_job):.3f}s")
                say(f"round {round_}: Job complete → verdict:  p50 {pct(job_to_verdict, .5):.3f}s "
                    f"p99 {pct(job_to_verdict, .99):.3f}s max {max(job_to_verdict):.3f}s")
                say(f"round {round_}:   upper bound from completionTime (whole seconds): "
                    f"p50 {pct(upper, .5):.3f}s p99 {pct(upper, .99):.3f}s")
                time.sleep(3)  # let the round's last events drain before the next burst
                return {"cr_to_job_p50_s": pct(cr_to_job, .5), "cr_to_job_p99_s": pct(cr_to_job, .99),
                        "job_to_verdict_p50_s": pct(job_to_verdict, .5),
                        "job_to_verdict_p99_s": pct(job_to_verdict, .99),
                        "job_to_verdict_p99_upper_bound_s": pct(upper, .99), "create_s": creating,
                        "wall_s": wall, "operator_cpu_ms_per_evaluation": cpu_ms, "load_average_end": load1}

            rounds = [burst(r + 1) for r in range(args.rounds)]
            rss_burst = rss_mib(op.proc.pid)
            present = args.rounds * args.count
            say(f"operator RSS with {present} evaluations: {rss_burst:.1f} MiB")
            more = [f"ev-fill-{i:04d}" for i in range(max(0, args.total - present))]
            if more:
                say(f"adding {len(more)} more evaluations (total {args.total})")
                create_all(custom, ns, more)
                wait_verdicts(more)
            time.sleep(5)  # settle: every CR seen, handlers idle
            rss_total = rss_mib(op.proc.pid)
            say(f"operator RSS with {present + len(more)} evaluations: {rss_total:.1f} MiB")

            def median(key: str) -> float:
                return round(statistics.median(r[key] for r in rounds), 3)

            headline = {k: median(k) for k in rounds[0]}
            say("headline figures: the median over rounds of each round's figure; every round: *_rounds")
            print(json.dumps({
                "bench": "operator", "evaluations": args.count, "rounds": args.rounds, **headline,
                **{f"{k}_rounds": [round(r[k], 3) for r in rounds] for k in
                   ("cr_to_job_p99_s", "job_to_verdict_p99_s", "job_to_verdict_p99_upper_bound_s")},
                "cpus": os.cpu_count(), f"rss_mib_{present}": round(rss_burst, 1),
                "rss_mib_1000": round(rss_total, 1), "total_evaluations": present + len(more),
                "runner": "bench stub publishing a real tiny lm-eval run",
            }), flush=True)
            return 0
    finally:
        if watcher is not None:
            watcher.stop()
        if op is not None:
            op.stop()
        if not reuse:
            harness.stop(cluster)
        elif ns:
            cluster.kubectl("delete", "namespace", ns, "--wait=false", check=False)


if __name__ == "__main__":
    sys.exit(main())
