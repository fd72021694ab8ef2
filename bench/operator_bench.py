"""Operator latency and memory on the real control plane, with full-size results.

200 ModelEvaluations are created at once; the bench reports p50/p99 of (CR created → its
runner Job created) and (Job complete → verdict in status), the latter from the Job's own
`completionTime` to the operator's status write. It does that in three rounds, one
burst after the other (the first two rounds' evaluations stay, settled), because one burst's
p99 on a 2-core machine shared by the control plane, the kubelet and 400 runner processes
moves by a factor of two from run to run; the headline figures are the median of the rounds'
figures, and every round's p99 is printed too. Then it adds evaluations up to 1,000 and
reports the operator's resident memory once all of them have a verdict.

Times: CR created = the earlier of its create call returning and its ADDED event; Job
created = the earlier of its ADDED event and the operator's "created runner Job" line;
Job complete = the Job's `completionTime` (stamped by the Job controller; whole seconds,
truncated, so this start is up to 1 s early and the figure errs high); verdict = the
earlier of the event that first shows status.verdict and the operator's verdict line
(millisecond log timestamps, written after the status patch returned). The watches run in
a separate process (so the bench's own create threads cannot delay them on the GIL). For
comparison the bench also prints Job complete → verdict from the first watch event that
shows the Job Complete (later than the Job controller's own clock, so it errs low).

Results: full size. The stub publishes, for each role, the compact form of a synthesised
full-size lm-eval run with per-question samples (bench/compare_bench.py's generator: the six
leaderboard tasks, MMLU 14,042 questions over 57 subtasks, GSM8K 1,319 with two filters,
HellaSwag 10,042, ...), so the operator reads, verifies and decodes real-sized ConfigMaps and
compares 30,000+ questions per verdict. Defaults on: the baseline cache (a warm-up
evaluation computes the shared baseline first; every bench evaluation reuses it and its Job
runs only the candidate, as ten candidates against one baseline do in production) and the
runner queue, with its cap (`--max-concurrent`) just above the burst.

Runner: a BENCHMARK STUB (bench/runner_stub.sh, clearly labelled, used nowhere else) stands in
for `quantgate run`: it publishes the prepared results ConfigMap. Everything the operator does
is real: endpoint preflight, baseline cache lookup, Job creation, watching, reading and
decoding the ConfigMaps, the decision engine, the status patch, the event.

    .venv/bin/python bench/operator_bench.py [--count 200] [--rounds 3] [--total 1000]

Reuses the cluster named by QUANTGATE_KUBECONFIG if set, else starts (and stops) its own.
Last line: {"bench": "operator", "cr_to_job_p99_s": ..., "job_to_verdict_p99_s": ..., "rss_mib_<total>": ...,
"payload_mib": ..., "load_average": ...}
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


def full_size_runs(work: Path) -> dict[str, bytes]:
    """Two synthesised full-size lm-eval runs (bench/compare_bench.py's generator, lm-eval's
    --output_path layout with per-question samples) → their published payloads."""
    from quantgate.lmeval.results import load_run

    subprocess.run([sys.executable, str(ROOT / "bench/compare_bench.py"), "--generate", str(work / "runs")],
                   check=True)
    from quantgate.api.v1alpha1 import ModelEvaluationSpec
    from quantgate.k8s import trust

    spec = ModelEvaluationSpec.model_validate(evaluation("x")["spec"])
    payloads = {}
    for role, variant, model in (("baseline", 0, "m-fp16"), ("candidate", 1, "m-int4")):
        doc = load_run(work / "runs" / f"run{variant}").to_compact()
        # the run record a runner writes from its manifest (what the operator checks against the spec)
        doc["run"] = {"model": model, "tasks": [{"name": n, "numFewshot": s, "limit": lim}
                                                for n, s, lim in trust.expected(spec, model).tasks]}
        payloads[role] = results_channel.encode(doc)
    return payloads


def write_templates(payloads: dict[str, bytes], directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for role, payload in payloads.items():
        cms = results_channel.build_configmaps(payload, namespace="@NS@", name="@NAME@", role=role,
                                               evaluation="@OWNER@", owner_uid="@UID@",
                                               extra_labels={names.LABEL_BASELINE_KEY: "@BKEY@"},
                                               job=("@JOB@", "@JOBUID@"), pod=("@POD@", "@PODUID@"))
        assert len(cms) == 1, "the stub publishes one ConfigMap per role (payload under 900 KiB)"
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
        self.failed: dict[str, str] = {}  # evaluation -> "reason: message" of a Failed phase
        context = multiprocessing.get_context("spawn")
        self._queue = context.Queue()
        self._process = context.Process(target=watch_process, args=(str(kubeconfig), namespace, self._queue),
                                        daemon=True)
        self._process.start()
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        while True:
            kind, name, value = self._queue.get()
            getattr(self, kind).setdefault(name, value)

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
                status = obj.get("status") or {}
                if status.get("verdict"):
                    out.put(("verdict", name, at))
                elif status.get("phase") == "Failed":  # settled without a verdict: the bench cannot time it
                    out.put(("failed", name, f"{status.get('reason')}: {status.get('message')}"))

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
                if status.get("completionTime"):  # whole seconds
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
    """The default suite (leaderboard), as the stub's full-size results are."""
    ref = {"inferenceServiceRef": {"name": "fp16", "model": "m-fp16"}}
    cand = {"inferenceServiceRef": {"name": "int4", "model": "m-int4"}}
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "ModelEvaluation", "metadata": {"name": name},
            "spec": {"baseline": ref, "candidate": cand}}


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
            say("synthesising the two full-size runs the stub will publish")
            payloads = full_size_runs(work)
            payload_mib = max(len(p) for p in payloads.values()) / 2**20
            say("payload per role (gzip compact JSON): " + ", ".join(
                f"{role} {len(p) / 2**20:.3f} MiB" for role, p in payloads.items()))
            write_templates(payloads, work / "templates")
            op = OperatorProcess(cluster, work / "operator.log", "--namespace", ns,
                                 "--max-concurrent", str(args.count + 10),
                                 "--runner-command", f"sh {STUB} {work / 'templates'}", kubeconfig=kubeconfig)
            if os.environ.get("QUANTGATE_BENCH_LAUNCHER"):  # diagnostics only (e.g. a tracemalloc wrapper)
                op.launcher = os.environ["QUANTGATE_BENCH_LAUNCHER"].split()
            op.start()
            api = cluster.api_client()
            custom = client.CustomObjectsApi(api)
            watcher = Watcher(cluster.kubeconfig, ns)
            time.sleep(2)
            say("warm-up: one evaluation computes the shared baseline (the cache every later one hits)")
            create_all(custom, ns, ["warm-up"])

            def wait_verdicts(names_):
                deadline = time.monotonic() + args.timeout
                while True:
                    failed = sorted(set(names_) & set(watcher.failed))
                    if failed:  # a Failed evaluation never gets a verdict: stop now, say why
                        raise SystemExit(f"operator_bench: {len(failed)} evaluations failed instead of reaching "
                                         f"a verdict (e.g. {failed[0]}: {watcher.failed[failed[0]]}); "
                                         f"operator log: {work / 'operator.log'}")
                    missing = set(names_) - set(watcher.verdict)
                    if not missing:
                        return
                    if time.monotonic() > deadline:
                        raise SystemExit(f"operator_bench: {len(missing)} evaluations got no verdict "
                                         f"(e.g. {sorted(missing)[:3]}); operator log: {work / 'operator.log'}")
                    time.sleep(0.5)

            wait_verdicts(["warm-up"])

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
                job_to_verdict = [watcher.verdict[n] - watcher.job_completion_time[n] for n in batch]
                seen = [watcher.verdict[n] - watcher.job_complete[n] for n in batch]
                say(f"round {round_}: {len(batch)} evaluations created in {creating:.1f}s, all with a verdict "
                    f"after {wall:.1f}s; operator CPU {cpu_ms:.0f} ms per evaluation; "
                    f"machine load average {load0:.1f} → {load1:.1f} on {os.cpu_count()} CPUs")
                say(f"round {round_}: CR created → Job created: p50 {pct(cr_to_job, .5):.3f}s "
                    f"p99 {pct(cr_to_job, .99):.3f}s max {max(cr_to_job):.3f}s")
                say(f"round {round_}: Job completionTime → verdict written: p50 {pct(job_to_verdict, .5):.3f}s "
                    f"p99 {pct(job_to_verdict, .99):.3f}s max {max(job_to_verdict):.3f}s")
                say(f"round {round_}:   from the first watch event showing the Job Complete: "
                    f"p50 {pct(seen, .5):.3f}s p99 {pct(seen, .99):.3f}s")
                time.sleep(3)  # let the round's last events drain before the next burst
                return {"cr_to_job_p50_s": pct(cr_to_job, .5), "cr_to_job_p99_s": pct(cr_to_job, .99),
                        "job_to_verdict_p50_s": pct(job_to_verdict, .5),
                        "job_to_verdict_p99_s": pct(job_to_verdict, .99),
                        "job_seen_to_verdict_p99_s": pct(seen, .99), "create_s": creating,
                        "wall_s": wall, "operator_cpu_ms_per_evaluation": cpu_ms, "load_average_start": load0,
                        "load_average_end": load1}

            rounds = [burst(r + 1) for r in range(args.rounds)]
            rss_burst = rss_mib(op.proc.pid)
            present = args.rounds * args.count + 1  # and the warm-up
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
                   ("cr_to_job_p99_s", "job_to_verdict_p99_s", "job_seen_to_verdict_p99_s")},
                "cpus": os.cpu_count(), f"rss_mib_{present}": round(rss_burst, 1),
                f"rss_mib_{present + len(more)}": round(rss_total, 1), "total_evaluations": present + len(more),
                "payload_mib": round(payload_mib, 3), "load_average": [round(x, 1) for x in os.getloadavg()],
                "baseline_cache": True, "max_concurrent": args.count + 10,
                "runner": "bench stub publishing synthesised full-size results (six leaderboard tasks, MMLU 14,042)",
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
