"""`make demo`: a live evaluation of simulated FP16/INT8/INT4 models.

Starts the demo fleet (examples/simulate/demo-fleet.yaml, or the copy shipped in
the package), runs the `local` suite against every variant with `quantgate run`
(two at a time: this is meant to finish in minutes on two cores), compares each
quantized variant with FP16 under the general rule and the math-tutoring
profile, prints the seed-style decision matrix and writes HTML reports.
Run: python -m quantgate.demo.simulated [--fleet FILE] [--output DIR] [--limit N]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

PROFILES = ("general", "math-tutoring")


def grid(head: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)]
    line = lambda cells: "  ".join(str(c).ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    return "\n".join([line(head), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def flip_lines(m, width: int) -> list[str]:
    """One line per candidate: each task's answer flips against the reference."""
    out = []
    for row in m.rows[1:]:
        flips = [f"{t.task} {t.flips.correct_to_incorrect}/{t.flips.incorrect_to_correct} ({t.flips.rate:.1%})"
                 for t in row.comparison.tasks if t.flips]
        out.append(f"  {row.name:<{width}} " + ", ".join(flips))
    return out


def decision_table(matrices: dict) -> str:
    """Variant, size, per-task scores, average drop, then one verdict column per profile."""
    from quantgate.report.text import matrix_rows

    general = matrices["general"]
    head, rows = matrix_rows(general)
    keep = len(head) - 2  # drop the general matrix's Verdict/Promotable columns
    head = head[:keep] + [f"Verdict ({p})" for p in matrices]
    out = []
    for i, row in enumerate(rows):
        verdicts = []
        for m in matrices.values():
            v = m.rows[i].verdict
            verdicts.append("Reference" if v is None else f"{v.value} ({'yes' if v.promotable else 'no'})")
        out.append(row[:keep] + verdicts)
    return grid(head, out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="demo")
    default_fleet = Path(__file__).resolve().parents[3] / "examples" / "simulate" / "demo-fleet.yaml"
    parser.add_argument("--fleet", default=str(default_fleet))
    parser.add_argument("--output", default="demo-output")
    parser.add_argument("--limit", type=int, help="first N documents per task (quicker, less exact)")
    parser.add_argument("--parallel", type=int, default=2, help="runs at once")
    args = parser.parse_args(argv)

    from quantgate.decision import matrix
    from quantgate.decision.model import Policy
    from quantgate.lmeval.parallel import RunJob, run_all, run_args
    from quantgate.lmeval.results import load_run
    from quantgate.report.html import render_html
    from quantgate.simulate import SimulatedFleet, load_fleet

    t0 = time.monotonic()
    config = load_fleet(args.fleet)
    reference = config.reference or config.variants[0].name
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    say = lambda text: print(f"[{time.monotonic() - t0:5.1f}s] {text}", flush=True)  # noqa: E731
    say(f"starting {len(config.variants)} simulated vLLM servers from {args.fleet}")
    with SimulatedFleet(config) as fleet:
        for v in config.variants:
            say(f"  {v.name:<10} {fleet.url(v.name)}  model {v.served_model}")
        jobs = [RunJob(v.name, run_args(fleet.url(v.name), out / v.name, suite="local", limit=args.limit,
                                        label=v.name, api_key_env="QUANTGATE_NO_API_KEY", progress_interval=10),
                       out / v.name) for v in config.variants]
        say(f"running lm-eval's local suite (6 tasks, ~3,800 requests per model), {args.parallel} models at a time")
        run_all(jobs, max_parallel=args.parallel)
        failed = [j for j in jobs if j.failed or j.returncode is None]
        if failed:
            print(f"demo: the {failed[0].label} run failed (exit status {failed[0].returncode})", file=sys.stderr)
            return 1
        say("all runs complete; servers stopping")

    runs = {v.name: load_run(out / v.name) for v in config.variants}
    sizes = {v.name: v.size for v in config.variants if v.size}
    candidates = {n: r for n, r in runs.items() if n != reference}
    sizes = {("Reference" if n == reference else n): s for n, s in sizes.items()}
    matrices = {p: matrix(runs[reference], candidates, Policy(profile=p), sizes) for p in PROFILES}
    print()
    print(f"Decision matrix: {', '.join(candidates)} against {reference} (Reference), local suite")
    print(decision_table(matrices))
    print()
    print("Answer flips against the reference (correct→incorrect / incorrect→correct, share of questions):")
    for line in flip_lines(matrices["general"], 10):
        print(line)
    print()
    for p, m in matrices.items():
        for row in m.rows[1:]:
            if row.verdict.value in ("Block", "ABTest") or p == "general":
                print(f"{row.name} [{p}]: {row.verdict.value} - {row.comparison.reasons[0]}")
    print()
    for p, m in matrices.items():
        print(f"selected [{p}]: {m.selected.name or 'none'} ({m.selected.reason})")
    reports = []
    for p, m in matrices.items():
        path = out / f"report-{p}.html"
        path.write_text(render_html(m, title=f"quantgate demo: profile {p}"))
        reports.append(path)
    print()
    say(f"HTML reports: {', '.join(str(p) for p in reports)}; run directories under {out}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
