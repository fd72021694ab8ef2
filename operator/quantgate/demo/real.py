"""`make demo-real`: a real model through the whole pipeline.

Evaluates SmolLM2-135M-Instruct's Q4_1 GGUF (the reference) and its Q3_K_M and Q2_K
requantizations with the in-process llama.cpp engine (`quantgate run --engine llama-cpp`) on
the local suite's datasets, then prints the decision matrix with the real scores, answer flips
and the fidelity signals (choice KLD, top-1 agreement), and writes an HTML report. The
generation tasks also run through llama-cpp-python's OpenAI-compatible server
(demo/server.py), printed beside the engine's with the answers compared.
Run: python -m quantgate.demo.real [--output DIR] [--tasks LIST] [--parallel N] [--drop-mode M] [--reuse]
     [--server-tasks NAMES|none] [--server-port PORT]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

# 0-shot multiple-choice tasks (per-choice loglikelihoods: flips and fidelity) and a short
# generation task; sized to finish in a few minutes on two cores.
DEFAULT_TASKS = "arc_challenge:0@100,hellaswag:0@100,winogrande:0@100,truthfulqa_mc2:0@50,mmlu:0@10,gsm8k:0@10"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="demo-real")
    parser.add_argument("--output", default="demo-real-output")
    parser.add_argument("--tasks", default=DEFAULT_TASKS, help="name[:shots][@limit],... on the local datasets")
    parser.add_argument("--parallel", type=int, default=1, help="models evaluated at once")
    # A 135M model answers almost no GSM8K question (0 of 10 here): a relative drop from a zero
    # baseline is undefined, so the demo compares in percentage points.
    parser.add_argument("--drop-mode", choices=("absolute", "relative"), default="absolute",
                        help="per-task drops in percentage points (default: the reference's GSM8K score is 0) "
                        "or relative")
    parser.add_argument("--reuse", action="store_true", help="reuse complete run directories under --output")
    parser.add_argument("--server-tasks", metavar="NAMES", help="tasks of --tasks also run through llama-cpp-python's "
                        "server (default: its generation tasks; none: no server)")
    parser.add_argument("--server-port", type=int, metavar="PORT",
                        help="the server's loopback port (default: a free one)")
    args = parser.parse_args(argv)

    from quantgate.decision import matrix
    from quantgate.decision.model import Policy
    from quantgate.demo.server import check_server, run_through_server, server_section, server_tasks
    from quantgate.engines.real_models import CANDIDATES, REFERENCE, missing, model_path
    from quantgate.lmeval.parallel import RunJob, run_all
    from quantgate.lmeval.results import load_run
    from quantgate.report.html import render_html
    from quantgate.report.text import fidelity_lines
    from quantgate.demo.simulated import decision_table, flip_lines

    problem = missing()
    if problem:
        print(f"demo-real: {problem}", file=sys.stderr)
        return 2
    through_server = server_tasks(args.tasks, args.server_tasks)
    kinds = (REFERENCE, *CANDIDATES)
    out = Path(args.output)
    if through_server:
        check_server({k: model_path(k) for k in kinds}, out / "server", args.server_port)
    t0 = time.monotonic()
    say = lambda text: print(f"[{time.monotonic() - t0:6.1f}s] {text}", flush=True)  # noqa: E731
    out.mkdir(parents=True, exist_ok=True)
    threads = max(1, (os.cpu_count() or 1) // max(1, args.parallel))
    jobs = [RunJob(k, ["--engine", "llama-cpp", "--model-path", str(model_path(k)), "--tasks", args.tasks,
                       "--local-data", "--output", str(out / k), "--force", "--threads", str(threads),
                       "--label", f"[{k}]", "--progress-interval", "30"], out / k) for k in kinds]
    say(f"evaluating {', '.join(kinds)} of SmolLM2-135M-Instruct in process with llama.cpp: {args.tasks}")
    if args.reuse:
        jobs = [j for j in jobs if not (j.output / "manifest.json").is_file()]  # run renames DIR.partial only when complete
    run_all(jobs, max_parallel=args.parallel)
    failed = [j for j in jobs if j.failed or j.returncode is None]
    if failed:
        print(f"demo-real: the {failed[0].label} run failed (exit status {failed[0].returncode})", file=sys.stderr)
        return 1
    server_dirs = None
    if through_server:
        server_dirs = run_through_server({k: model_path(k) for k in kinds}, through_server, out / "server", threads,
                                         args.server_port, args.reuse, say)
    runs = {k: load_run(out / k) for k in kinds}
    sizes = {("Reference" if k == REFERENCE else k): f"{model_path(k).stat().st_size / 2**20:.1f}Mi" for k in kinds}
    candidates = {k: runs[k] for k in CANDIDATES}
    matrices = {p: matrix(runs[REFERENCE], candidates, Policy(profile=p, drop_mode=args.drop_mode), sizes)
                for p in ("general", "math-tutoring")}
    print()
    print(f"Decision matrix: {', '.join(CANDIDATES)} against {REFERENCE} (Reference; itself a 4-bit GGUF, "
          f"the candidates are further requantizations of it); {args.drop_mode} drops")
    print(decision_table(matrices))
    print()
    print("Answer flips against the reference (correct→incorrect / incorrect→correct, share of questions):")
    for line in flip_lines(matrices["general"], 7):
        print(line)
    print()
    print("Fidelity to the reference (mean choice KLD in nats, top-1 agreement):")
    for line in fidelity_lines(matrices["general"]):
        print(f"  {line}")
    print()
    for p, m in matrices.items():
        for row in m.rows[1:]:
            print(f"{row.name} [{p}]: {row.verdict.value} - {row.comparison.reasons[0]}")
    if server_dirs:
        print()
        print("Generation through llama-cpp-python's server (text prompts, repeat_penalty=1.0) beside the in-process "
              "engine; scores on the matrix's metric:")
        for line in server_section(REFERENCE, {k: out / k for k in kinds}, server_dirs, through_server,
                                   matrices["general"], args.drop_mode):
            print(f"  {line}" if line else "")
    report = out / "report.html"
    report.write_text(render_html(matrices["general"], title="quantgate demo-real: SmolLM2-135M GGUF"))
    print()
    say(f"HTML report: {report}; run directories under {out}/")
    return 0


if __name__ == "__main__":
    from quantgate.errors import QuantgateError

    try:
        sys.exit(main())
    except QuantgateError as exc:  # one line, no traceback
        print(f"demo-real: error: {exc}", file=sys.stderr)
        sys.exit(2)
