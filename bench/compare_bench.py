"""Benchmark: load two full-size lm-eval runs with per-question samples and compare them.

Six Open-LLM-Leaderboard tasks at full size (MMLU 14,042 questions over 57 subtasks in
lm-eval's nested groups, GSM8K 1,319 with two filters, HellaSwag 10,042, ARC-Challenge
1,172, Winogrande 1,267, TruthfulQA-mc2 817) are synthesised in a temp directory in
lm-eval 0.4.13's --output_path layout, with sample lines about as long as real few-shot
ones (the prompt is repeated once per answer choice, as lm-eval writes it). The files are
written by a child process, so the measured peak RSS is the comparison's alone.

    .venv/bin/python bench/compare_bench.py

Last line: {"bench": "compare", "seconds": ..., "peak_mib": ..., "cpu_seconds": ...};
goal <= 2 s, <= 300 MiB. Timings include importing quantgate.decision.
"""

from __future__ import annotations

import hashlib
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TS = "2026-01-01T00-00-00.000000"
# task: (questions, choices per question or 0 for generation, prompt characters, metrics, filters)
TASKS = {
    "gsm8k": (1319, 0, 3600, ["exact_match"], ["strict-match", "flexible-extract"]),
    "hellaswag": (10042, 4, 3300, ["acc", "acc_norm"], ["none"]),
    "arc_challenge": (1172, 4, 6000, ["acc", "acc_norm"], ["none"]),
    "winogrande": (1267, 2, 700, ["acc"], ["none"]),
    "truthfulqa_mc2": (817, 8, 700, ["acc"], ["none"]),
}
MMLU_GROUPS = {"mmlu_stem": 19, "mmlu_other": 14, "mmlu_social_sciences": 12, "mmlu_humanities": 12}
MMLU_TOTAL, MMLU_PROMPT = 14042, 2500


def mmlu_subtasks() -> dict[str, list[tuple[str, int]]]:
    """57 subtasks over four groups; sizes sum to 14,042."""
    names = [(g, f"mmlu_{g.removeprefix('mmlu_')}_{i}") for g, k in MMLU_GROUPS.items() for i in range(k)]
    base = MMLU_TOTAL // len(names)
    sizes = [base + (1 if i < MMLU_TOTAL - base * len(names) else 0) for i in range(len(names))]
    out: dict[str, list[tuple[str, int]]] = {g: [] for g in MMLU_GROUPS}
    for (g, name), n in zip(names, sizes):
        out[g].append((name, n))
    return out


def write_samples(path: Path, task: str, n: int, choices: int, prompt_len: int, metrics: list[str],
                  filters: list[str], accuracy: float, variant: int) -> list[float]:
    rng = random.Random(f"{task}-{variant}")
    skill = random.Random(task)
    prompt = ("Question: a few-shot example with its answer. " * (prompt_len // 47 + 1))[:prompt_len]
    means = []
    with open(path, "w", encoding="utf-8") as fh:
        for doc_id in range(n):
            # shared difficulty, per-variant noise: mostly the same answers, some flips
            correct = skill.random() + (rng.random() - 0.5) * 0.2 < accuracy
            doc = {"question": f"item {doc_id} of {task}", "answer": str(doc_id)}
            if choices:
                arguments = {f"gen_args_{i}": {"arg_0": prompt, "arg_1": f" choice {i}"} for i in range(choices)}
                resps = [[[str(-rng.random() * 5), "False"]] for _ in range(choices)]
                filtered = [r[0] for r in resps]
            else:
                arguments = {"gen_args_0": {"arg_0": prompt, "arg_1": {"until": ["Question:"], "do_sample": False}}}
                resps = [[" The answer is 42.\n#### 42" * 8]]
                filtered = ["42"]
            score = (0.55 + rng.random() * 0.4 if correct else rng.random() * 0.45) if task == "truthfulqa_mc2" \
                else float(correct)
            means.append(score)
            for flt in filters:
                record = {"doc_id": doc_id, "doc": doc, "target": str(doc_id), "arguments": arguments,
                          "resps": resps, "filtered_resps": filtered if flt == filters[0] else ["41"],
                          "filter": flt, "metrics": metrics,
                          "doc_hash": hashlib.sha256(f"{task}/{doc_id}".encode()).hexdigest(),
                          "prompt_hash": hashlib.sha256(prompt.encode()).hexdigest(),
                          "target_hash": hashlib.sha256(str(doc_id).encode()).hexdigest()}
                for m in metrics:
                    record[m] = score
                fh.write(json.dumps(record, ensure_ascii=False) + "\n")
    return means


def write_run(out: Path, variant: int) -> None:
    model = out / f"sim__variant{variant}"
    model.mkdir(parents=True)
    acc = 0.62 - 0.02 * variant
    results, hib, n_shot, n_samples = {}, {}, {}, {}

    def add(task: str, means: list[float], metrics: list[str], filters: list[str]):
        entry = {"name": task, "alias": task, "sample_len": len(means)}
        mean = sum(means) / len(means)
        se = (mean * (1 - mean) / (len(means) - 1)) ** 0.5
        for m in metrics:
            for f in filters:
                entry[f"{m},{f}"], entry[f"{m}_stderr,{f}"] = mean, se
        results[task] = entry
        hib[task] = {m: True for m in metrics}
        n_shot[task] = 5
        n_samples[task] = {"original": len(means), "effective": len(means)}

    for task, (n, choices, plen, metrics, filters) in TASKS.items():
        means = write_samples(model / f"samples_{task}_{TS}.jsonl", task, n, choices, plen, metrics, filters,
                              acc + 0.1, variant)
        add(task, means, metrics, filters)
    groups: dict[str, list[str]] = {"mmlu": list(MMLU_GROUPS)}
    all_means: list[float] = []
    for group, subs in mmlu_subtasks().items():
        groups[group] = [name for name, _ in subs]
        g_means: list[float] = []
        for name, n in subs:
            means = write_samples(model / f"samples_{name}_{TS}.jsonl", name, n, 4, MMLU_PROMPT, ["acc"], ["none"],
                                  acc, variant)
            add(name, means, ["acc"], ["none"])
            g_means += means
        add(group, g_means, ["acc"], ["none"])
        all_means += g_means
    add("mmlu", all_means, ["acc"], ["none"])
    for g in groups:
        n_samples.pop(g, None)
    n_shot.pop("mmlu")
    data = {"results": results, "groups": {g: results[g] for g in groups}, "group_subtasks": groups,
            "configs": {}, "versions": {}, "n-shot": n_shot, "higher_is_better": hib, "n-samples": n_samples,
            "config": {"model": "local-completions", "limit": None}, "model_name": f"sim/variant{variant}"}
    (model / f"results_{TS}.json").write_text(json.dumps(data, indent=2))


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--generate":
        for variant in (0, 1):
            write_run(Path(sys.argv[2]) / f"run{variant}", variant)
        return
    with tempfile.TemporaryDirectory(prefix="quantgate-bench-") as tmp:
        t0 = time.perf_counter()
        subprocess.run([sys.executable, __file__, "--generate", tmp], check=True)
        size = sum(f.stat().st_size for f in Path(tmp).rglob("*") if f.is_file())
        print(f"synthesised 2 runs, {size / 2**20:.0f} MiB on disk, in {time.perf_counter() - t0:.1f} s")

        usage0 = resource.getrusage(resource.RUSAGE_SELF)
        start = time.perf_counter()
        from quantgate.decision import Policy, compare
        from quantgate.lmeval.results import load_run

        baseline, candidate = load_run(Path(tmp) / "run0"), load_run(Path(tmp) / "run1")
        loaded = time.perf_counter()
        comparison = compare(baseline, candidate, Policy(profile="math-tutoring"))
        seconds = time.perf_counter() - start
        usage1 = resource.getrusage(resource.RUSAGE_SELF)
        cpu = (usage1.ru_utime - usage0.ru_utime) + (usage1.ru_stime - usage0.ru_stime)
        peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        compact = len(json.dumps(candidate.to_compact(), separators=(",", ":")))
    n = sum(t.n for t in comparison.tasks)
    print(f"load {loaded - start:.2f} s (imports included), compare {seconds - (loaded - start):.2f} s; "
          f"{len(comparison.tasks)} tasks, {n} questions, verdict {comparison.verdict.value}")
    print(f"compact form of one run: {compact / 1024:.0f} KiB of JSON")
    for t in comparison.tasks:
        print(f"  {t.task:15} n={t.n:6} drop={t.drop:6.2f} ci95={t.ci95} flips={t.flips.dump() if t.flips else None}")
    # cpu_seconds: the same work in CPU time, steadier than wall time on a shared machine
    print(json.dumps({"bench": "compare", "seconds": round(seconds, 3), "peak_mib": round(peak_mib, 1),
                      "cpu_seconds": round(cpu, 3), "questions": n, "sample_mib_on_disk": round(size / 2**20)}))


if __name__ == "__main__":
    main()
