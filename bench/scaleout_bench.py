"""Scale-out: one full evaluation unsharded versus sharded 4 ways, in the same run.

By default the `local` suite (six leaderboard tasks on the shipped data, 3,776 requests per
model); `--suite local-full` runs the full-size suite instead (over 100,000 requests per model:
about an hour per configuration at one replica's 32 requests/s, so it is for a machine with the
cores to run 8 runners and 8 simulated servers at once). Each model (the demo's FP16 and
INT4-g128) is served by 4 simulated replicas, each behaving like one GPU server: every
completion takes LATENCY_MS and at most MAX_NUM_SEQS run at once (vLLM's max_num_seqs),
so one replica serves MAX_NUM_SEQS / LATENCY_MS requests per second.

* parallelism 1: `quantgate run --suite local` for baseline and candidate side by side
  (as the runner Job's two containers do), each against replica 0 of its model;
* parallelism 4: shard i of each model (`--shard i/4`) against replica i, 8 processes
  side by side (the Indexed Job's 4 pods, 2 containers each), then `quantgate merge`.

Wall time covers process start to results ready (the merge included). `identical`: the
merged runs' results equal the unsharded runs' (scores, stderrs, per-question values) and
`quantgate compare` prints the same JSON (verdict, drops, flips, intervals). Goal: speedup
>= 3.2 with 4 shards. Every runner is a separate Python process; on a machine with fewer
cores than processes their start-up (imports, task loading) competes for the CPU, so the
CPU count and load average are printed beside the figures.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "operator"))

from quantgate.lmeval.merge import merge_dirs  # noqa: E402
from quantgate.lmeval.parallel import RunJob, run_all, run_args  # noqa: E402
from quantgate.lmeval.results import load_run  # noqa: E402
from quantgate.simulate import SimulatedFleet  # noqa: E402

SHARDS = 4
LATENCY_MS = 250
MAX_NUM_SEQS = 8
MODELS = ("fp16", "int4-g128")


def fleet_config(suite: str) -> dict:
    cfg = yaml.safe_load((ROOT / "examples/simulate/demo-fleet.yaml").read_text())
    cfg["suites"] = [suite]
    cfg["variants"] = [{**v, "latencyMs": LATENCY_MS, "maxNumSeqs": MAX_NUM_SEQS}
                       for v in cfg["variants"] if v["name"] in MODELS]
    return cfg


def cpu_seconds() -> float:
    """CPU time (user + system) of the finished runner processes so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run(jobs: list[RunJob]) -> float:
    started = time.monotonic()
    run_all(jobs)
    failed = [j.label for j in jobs if j.returncode != 0]
    if failed:
        raise SystemExit(f"scaleout bench: runs failed: {', '.join(failed)}")
    return time.monotonic() - started


def compare_json(baseline: Path, candidate: Path) -> str:
    out = subprocess.run([sys.executable, "-m", "quantgate.cli", "compare", "--baseline", str(baseline),
                          "--candidate", str(candidate), "--profile", "math-tutoring", "-o", "json"],
                         capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT / "operator")})
    return out.stdout


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", choices=("local", "local-full"), default="local")
    suite = parser.parse_args().suite
    cfg = fleet_config(suite)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        fleets = [SimulatedFleet(cfg) for _ in range(SHARDS)]
        for f in fleets:
            f.__enter__()
        try:
            load_before = os.getloadavg()
            cpu0 = cpu_seconds()
            one = run([RunJob(m, run_args(fleets[0].url(m), out / "p1" / m, suite=suite, label=f"p1 {m}",
                                          progress_interval=30), out / "p1" / m) for m in MODELS])
            load_mid = os.getloadavg()
            cpu1 = cpu_seconds()
            jobs = []
            for m in MODELS:
                for i in range(SHARDS):
                    args = run_args(fleets[i].url(m), out / "p4" / m / f"s{i}", suite=suite,
                                    label=f"p4 {m} {i}/{SHARDS}", progress_interval=30) + ["--shard", f"{i}/{SHARDS}"]
                    jobs.append(RunJob(f"{m} {i}", args, out / "p4" / m / f"s{i}"))
            started = time.monotonic()
            run(jobs)
            for m in MODELS:
                merge_dirs([out / "p4" / m / f"s{i}" for i in range(SHARDS)], out / "p4" / m / "merged")
            four = time.monotonic() - started
            load_after = os.getloadavg()
            cpu4 = cpu_seconds() - cpu1
            cpu1 -= cpu0
            requests = [f.stats(m)["completions"] for f in fleets for m in MODELS]
        finally:
            for f in fleets:
                f.__exit__(None, None, None)
        identical = True
        for m in MODELS:
            a, b = load_run(out / "p1" / m), load_run(out / "p4" / m / "merged")
            identical &= a.tasks == b.tasks and a.samples == b.samples
        c1 = compare_json(out / "p1" / MODELS[0], out / "p1" / MODELS[1])
        c4 = compare_json(out / "p4" / MODELS[0] / "merged", out / "p4" / MODELS[1] / "merged")
        identical &= bool(c1) and c1 == c4
        verdict = json.loads(c1)["verdict"] if c1 else None

    per_model = sum(requests) // len(MODELS) // 2  # each model ran twice (p1 and p4)
    ideal_one = per_model / (MAX_NUM_SEQS / (LATENCY_MS / 1000))
    print(f"{suite} suite: {per_model} requests per model; replica: {MAX_NUM_SEQS} at once, {LATENCY_MS} ms each "
          f"(ideal {ideal_one:.1f}s per model on one replica, {ideal_one / SHARDS:.1f}s on {SHARDS})")
    print(f"parallelism 1: {one:.1f}s   parallelism {SHARDS}: {four:.1f}s (merge included)   "
          f"speedup {one / four:.2f}x (goal >= 3.2)")
    print(f"identical results and comparison: {identical} (verdict {verdict})")
    print(f"runner CPU: parallelism 1 {cpu1:.0f}s over {one:.0f}s wall ({cpu1 / one:.2f} cores busy), parallelism "
          f"{SHARDS} {cpu4:.0f}s over {four:.0f}s ({cpu4 / four:.2f} cores); achieved {per_model / one:.1f} req/s "
          f"per model unsharded against {MAX_NUM_SEQS / (LATENCY_MS / 1000):.0f} req/s a replica serves")
    print(f"machine: {os.cpu_count()} CPUs; load average before {load_before[0]:.1f}, after parallelism 1 "
          f"{load_mid[0]:.1f}, after parallelism {SHARDS} {load_after[0]:.1f}")
    print(json.dumps({"bench": "scaleout", "shards": SHARDS, "suite": suite, "requests_per_model": per_model,
                      "seconds_p1": round(one, 2), "seconds_p4": round(four, 2), "speedup": round(one / four, 2),
                      "ideal_speedup": SHARDS, "identical": identical, "cpus": os.cpu_count(),
                      "runner_cpu_seconds_p1": round(cpu1, 1), "runner_cpu_seconds_p4": round(cpu4, 1),
                      "load_avg": [round(load_before[0], 1), round(load_after[0], 1)]}))


if __name__ == "__main__":
    main()
