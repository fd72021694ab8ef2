"""Benchmark: progressive evaluation against the full-suite verdict.

1. statistical: simulated pairs at the official sizes (MMLU 14,042 in its 57 subjects,
   HellaSwag 10,042, ARC 1,172, Winogrande 1,267, GSM8K 1,319, TruthfulQA-mc2 817), with
   item-level correctness: a baseline answers each document right with its task's (or
   subject's) accuracy, the candidate flips a planted number of documents each way. True
   average drops come from a mix: 40% INT8-like (0-0.5%), 40% INT4-like (1-3%), 20% broken
   (5-15%) under the general profile; plus GSM8K-only regressions (0-8% on gsm8k, the rest
   INT8-like noise) under math-tutoring. For each pair the progressive verdict (stages 10%,
   25%, 50%, 100%, confidence 95%, decision/progressive.py) is compared with the verdict of
   the ordinary rule on all documents of the same pair.
2. live: a clear Ship and a clear Block pair through `quantgate evaluate --local
   --progressive` on the simulator, wall time against the same without --progressive, in the
   same run. On the full-size `local-full` suite (28,659 documents per model, generated at
   first use: quantgate/lmeval/full_tasks.py), 0-shot; the plain runs evaluate every document.

    .venv/bin/python bench/progressive_bench.py [--pairs 1000] [--seed 1] [--no-live | --live-only]

Last line: {"bench": "progressive", "pairs": N, "items_fraction_mean": ..., "items_fraction_far": ...,
"agreement": ..., "live_speedup": ...}; goals: agreement >= 0.99, items_fraction_mean <= 0.5,
items_fraction_far <= 0.25, live_speedup >= 3.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "operator"))

from quantgate.decision.model import Thresholds  # noqa: E402
from quantgate.decision.progressive import DEFAULT_STAGES, Stratum, TaskSample, look, stage_count, task_fractions  # noqa: E402
from quantgate.decision.rule import PROFILE_TASK_LIMITS, Limit, Rule  # noqa: E402
from quantgate.lmeval.full_sizes import MMLU_SUBJECT_SIZES, TASK_SIZES  # noqa: E402

# baseline accuracy of a 7-8B model per task (MMLU per subject is spread around it)
ACCURACY = {"arc_challenge": 0.55, "hellaswag": 0.80, "mmlu": 0.63, "truthfulqa_mc2": 0.45,
            "winogrande": 0.75, "gsm8k": 0.40}
# how much more than average a task suffers from quantization (GSM8K most)
SENSITIVITY = {"arc_challenge": 1.0, "hellaswag": 0.8, "mmlu": 1.0, "truthfulqa_mc2": 1.1,
               "winogrande": 0.9, "gsm8k": 1.8}
# kind: (share, true average drop range %, disagreement rate range)
MIX = {"int8": (0.4, (0.0, 0.5), (0.02, 0.05)),
       "int4": (0.4, (1.0, 3.0), (0.06, 0.12)),
       "broken": (0.2, (5.0, 15.0), (0.15, 0.30))}
EDGES = (1.0, 3.0, 5.0)


def strata_sizes(task: str) -> list[int]:
    return list(MMLU_SUBJECT_SIZES.values()) if task == "mmlu" else [TASK_SIZES[task]]


def rule_for(profile: str) -> Rule:
    limits = {t: Limit(v, f"limit of profile {profile}") for t, v in PROFILE_TASK_LIMITS[profile].items()}
    return Rule(thresholds=Thresholds(), aggregate="relativeDropOfMean", drop_mode="relative", task_limits=limits)


def make_pair(rng: np.random.Generator, drops: dict[str, float], rates: dict[str, float]):
    """Per task: a list of (baseline 0/1 array, candidate 0/1 array) per stratum, with the
    planted relative drop (percent) and disagreement rate."""
    pair = {}
    for task in TASK_SIZES:
        sizes = strata_sizes(task)
        acc = np.concatenate([np.full(n, np.clip(ACCURACY[task] + rng.normal(0, 0.12 if task == "mmlu" else 0.03),
                                                 0.25, 0.95)) for n in sizes])
        b = (rng.random(acc.size) < acc).astype(np.int8)
        big_n = b.size
        delta = b.mean() * drops[task] / 100  # absolute drop
        r = max(rates[task], abs(delta) + 0.005)
        c2i = min(int(round(big_n * (r + delta) / 2)), int(b.sum()))
        i2c = min(max(0, int(round(big_n * (r - delta) / 2))), big_n - int(b.sum()))
        c = b.copy()
        right, wrong = np.flatnonzero(b == 1), np.flatnonzero(b == 0)
        c[rng.choice(right, c2i, replace=False)] = 0
        c[rng.choice(wrong, i2c, replace=False)] = 1
        cuts = np.cumsum([0] + sizes)
        pair[task] = [(b[lo:hi], c[lo:hi]) for lo, hi in zip(cuts[:-1], cuts[1:])]
    return pair


def prefix_sums(rng: np.random.Generator, pair):
    """Per stratum, the cumulative sums along a random order: a stage is a prefix."""
    out = {}
    for task, strata in pair.items():
        rows = []
        for b, c in strata:
            order = rng.permutation(b.size)
            bo, co = b[order].astype(np.float64), c[order].astype(np.float64)
            rows.append((b.size, np.cumsum(bo), np.cumsum(co), np.cumsum(bo * co)))
        out[task] = rows
    return out


def samples_at(sums, fraction: float) -> list[TaskSample]:
    samples = []
    shares = task_fractions(fraction, {task: sum(row[0] for row in rows) for task, rows in sums.items()})
    for task, rows in sums.items():
        strata = []
        for big_n, cb, cc, cbc in rows:
            n = stage_count(shares[task], big_n)
            sb, sc, sbc = float(cb[n - 1]), float(cc[n - 1]), float(cbc[n - 1])
            strata.append(Stratum(big_n, n, sb, sc, sb, sc, sbc))  # 0/1 scores: x*x = x
        samples.append(TaskSample(task, strata))
    return samples


def progressive(sums, rule: Rule, stages=DEFAULT_STAGES, confidence=0.95):
    for i, f in enumerate(stages):
        lk = look(samples_at(sums, f), rule, stage=i + 1, stages=len(stages), confidence=confidence)
        if lk.stop:
            return lk
    raise AssertionError("the last stage always stops")


def draw_case(rng: np.random.Generator, kind: str):
    """(profile, per-task relative drops, per-task disagreement rates, nominal average drop)."""
    if kind == "gsm8k-only":
        rates = {t: rng.uniform(0.02, 0.05) for t in TASK_SIZES}
        drops = {t: 0.0 for t in TASK_SIZES}
        drops["gsm8k"] = rng.uniform(0.0, 8.0)
        rates["gsm8k"] = rng.uniform(0.08, 0.15)
        return "math-tutoring", drops, rates
    _, (lo, hi), (rlo, rhi) = MIX[kind]
    target = rng.uniform(lo, hi)
    weights = {t: SENSITIVITY[t] * rng.uniform(0.7, 1.3) for t in TASK_SIZES}
    pooled = sum(ACCURACY[t] * weights[t] for t in TASK_SIZES) / sum(ACCURACY.values())
    drops = {t: target * weights[t] / pooled for t in TASK_SIZES}
    rate = rng.uniform(rlo, rhi)
    rates = {t: rate * rng.uniform(0.8, 1.2) * (1.3 if t == "gsm8k" else 1.0) for t in TASK_SIZES}
    return "general", drops, rates


def statistical(pairs: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    kinds = [k for k, (share, _, _) in MIX.items() for _ in range(round(share * pairs))]
    kinds += ["gsm8k-only"] * max(1, pairs // 5)
    results = []
    t0 = time.monotonic()
    for i, kind in enumerate(kinds):
        profile, drops, rates = draw_case(rng, kind)
        rule = rule_for(profile)
        sums = prefix_sums(rng, make_pair(rng, drops, rates))
        full = look(samples_at(sums, 1.0), rule, stage=len(DEFAULT_STAGES), stages=len(DEFAULT_STAGES))
        prog = progressive(sums, rule)
        gsm = next(e.drop for e in full.tasks if e.task == "gsm8k")
        far = all(abs(full.average_drop - e) >= 1.0 for e in EDGES) and (
            profile != "math-tutoring" or abs(gsm - 2.0) >= 1.0)
        results.append({"kind": kind, "agree": prog.verdict == full.verdict, "stage": prog.stage,
                        "fraction": prog.items_evaluated / prog.items_total, "far": far,
                        "average": full.average_drop, "verdict": full.verdict.value,
                        "progressive": prog.verdict.value})
        if (i + 1) % 200 == 0:
            print(f"  {i + 1}/{len(kinds)} pairs, {time.monotonic() - t0:.0f}s", flush=True)
    return summarize(results)


def summarize(results: list[dict]) -> dict:
    def mean(xs):
        xs = list(xs)
        return round(sum(xs) / len(xs), 4) if xs else None

    by_kind = {}
    for kind in dict.fromkeys(r["kind"] for r in results):
        rows = [r for r in results if r["kind"] == kind]
        by_kind[kind] = {"pairs": len(rows), "agreement": mean(r["agree"] for r in rows),
                         "items_fraction": mean(r["fraction"] for r in rows),
                         "stopped_at": {s: sum(r["stage"] == s for r in rows) for s in range(1, 5)}}
    disagreements = [r for r in results if not r["agree"]]
    return {
        "pairs": len(results),
        "agreement": mean(r["agree"] for r in results),
        "items_fraction_mean": mean(r["fraction"] for r in results),
        "items_fraction_far": mean(r["fraction"] for r in results if r["far"]),
        "far_pairs": sum(r["far"] for r in results),
        "by_kind": by_kind,
        "disagreements": [{k: (round(v, 3) if isinstance(v, float) else v) for k, v in r.items()}
                          for r in disagreements[:10]],
    }


LIVE_TASKS = ("arc_challenge", "hellaswag", "mmlu", "truthfulqa_mc2", "winogrande", "gsm8k")


def live_speedup(workdir: Path | None = None) -> dict:
    """One clear Ship pair (a copy of the reference) and one clear Block pair through
    `quantgate evaluate --local --progressive` on the simulator, each against the same pair
    without --progressive, in this process, one after another (0-shot, suite local-full)."""
    import tempfile

    import yaml

    from quantgate.cli import main as cli
    from quantgate.simulate import SimulatedFleet
    from quantgate.simulate.config import FleetConfig

    base = {"arc_challenge": 0.60, "hellaswag": 0.80, "mmlu": 0.66, "truthfulqa_mc2": 0.52, "winogrande": 0.75,
            "gsm8k": 0.52}
    fleet_config = FleetConfig.model_validate({"seed": 5, "reference": "fp16", "suites": ["local-full"], "variants": [
        {"name": "fp16", "accuracy": base},
        {"name": "ship", "accuracy": base, "flipRate": {"default": 0.0}},
        {"name": "block", "accuracy": {t: v * 0.75 for t, v in base.items()}, "flipRate": {"default": 0.25}}]})
    root = Path(workdir or tempfile.mkdtemp(prefix="progressive-bench-"))
    out = {}
    with SimulatedFleet(fleet_config) as fleet:
        for cand in ("ship", "block"):
            spec = {"apiVersion": "quantgate.io/v1alpha1", "kind": "ModelEvaluation", "metadata": {"name": cand},
                    "spec": {"baseline": {"endpoint": {"url": fleet.url("fp16")}},
                             "candidate": {"endpoint": {"url": fleet.url(cand)}},
                             "suite": "local-full", "tasks": [{"name": t, "numFewshot": 0} for t in LIVE_TASKS]}}
            path = root / f"{cand}.yaml"
            path.write_text(yaml.safe_dump(spec))
            row = {}
            for mode, extra in (("plain", []), ("progressive", ["--progressive"])):
                t0 = time.monotonic()
                rc = cli(["evaluate", "--local", "-f", str(path), "--output",
                          str(root / f"{cand}-{mode}"), *extra])
                seconds = time.monotonic() - t0
                comp = json.loads((root / f"{cand}-{mode}" / "comparison.json").read_text())
                row[mode] = {"seconds": round(seconds, 1), "verdict": comp["verdict"], "rc": rc,
                             "items": sum(t.get("n") or 0 for t in comp["tasks"])}
            row["speedup"] = round(row["plain"]["seconds"] / row["progressive"]["seconds"], 2)
            out[cand] = row
            print(f"live {cand}: plain {row['plain']['seconds']}s {row['plain']['verdict']}, progressive "
                  f"{row['progressive']['seconds']}s {row['progressive']['verdict']} "
                  f"({row['progressive']['items']} documents per model), speedup {row['speedup']}x", flush=True)
    plain = sum(r["plain"]["seconds"] for r in out.values())
    prog = sum(r["progressive"]["seconds"] for r in out.values())
    return {"suite": "local-full (0-shot)", "pairs": out, "speedup": round(plain / prog, 2)}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=1000, help="pairs from the 40/40/20 mix (plus a fifth as many "
                    "GSM8K-only pairs)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--no-live", action="store_true", help="skip the live part")
    ap.add_argument("--live-only", action="store_true", help="only the live part (the JSON's statistical "
                    "fields are then null)")
    args = ap.parse_args(argv)
    if args.live_only:
        live = live_speedup()
        print(json.dumps({"bench": "progressive", "pairs": 0, "items_fraction_mean": None,
                          "items_fraction_far": None, "agreement": None, "live_speedup": live["speedup"],
                          "live": live, "goals_met": {"live_speedup": live["speedup"] >= 3}}))
        return
    t0 = time.monotonic()
    stats = statistical(args.pairs, args.seed)
    print(f"statistical part: {stats['pairs']} pairs in {time.monotonic() - t0:.0f}s")
    for kind, row in stats["by_kind"].items():
        print(f"  {kind:<11} pairs {row['pairs']:>4}  agreement {row['agreement']:.4f}  "
              f"items fraction {row['items_fraction']:.3f}  stopped at stage 1/2/3/4: "
              f"{'/'.join(str(row['stopped_at'][s]) for s in range(1, 5))}")
    print(f"  all         agreement {stats['agreement']:.4f} (goal >= 0.99)  items fraction mean "
          f"{stats['items_fraction_mean']:.3f} (goal <= 0.5)  far ({stats['far_pairs']} pairs) "
          f"{stats['items_fraction_far']:.3f} (goal <= 0.25)")
    for d in stats["disagreements"]:
        print(f"  disagreement: {d}")
    live = None
    if not args.no_live:
        live = live_speedup()
    goals = {"agreement": stats["agreement"] >= 0.99, "items_fraction_mean": stats["items_fraction_mean"] <= 0.5,
             "items_fraction_far": stats["items_fraction_far"] is not None and stats["items_fraction_far"] <= 0.25}
    if live is not None:
        goals["live_speedup"] = live["speedup"] >= 3
    print("goals: " + ", ".join(f"{k} {'met' if v else 'NOT met'}" for k, v in goals.items()))
    print(json.dumps({"bench": "progressive", "pairs": stats["pairs"],
                      "items_fraction_mean": stats["items_fraction_mean"],
                      "items_fraction_far": stats["items_fraction_far"], "agreement": stats["agreement"],
                      "live_speedup": None if live is None else live["speedup"],
                      "live": live, "goals_met": goals}))


if __name__ == "__main__":
    main()
