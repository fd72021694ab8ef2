"""Which metric scores a task, and which benchmark a task stands for (docs/decision.md)."""

from __future__ import annotations

from quantgate.errors import InputError

PRIMARY_METRICS = {
    "gsm8k": "exact_match,strict-match",
    "mmlu": "acc,none",
    "hellaswag": "acc_norm,none",
    "arc_challenge": "acc_norm,none",
    "winogrande": "acc,none",
    "truthfulqa_mc2": "acc,none",
    # code-help's task; lm-eval's humaneval scores pass@1 after its create_test filter.
    "humaneval": "pass@1,create_test",
    "mbpp": "pass_at_1,none",  # lm-eval's mbpp metric is a function named pass_at_1, unfiltered
}
DEFAULT_METRICS = ("acc_norm,none", "acc,none", "exact_match,strict-match")

# tinyBenchmarks tasks count for the full benchmark they estimate.
TINY = {
    "tinyGSM8k": "gsm8k",
    "tinyMMLU": "mmlu",
    "tinyArc": "arc_challenge",
    "tinyHellaswag": "hellaswag",
    "tinyWinogrande": "winogrande",
    "tinyTruthfulQA": "truthfulqa_mc2",
}


def canonical(task: str) -> str:
    """The benchmark a task counts for: tinyGSM8k → gsm8k; other names unchanged."""
    return TINY.get(task, task)


def primary_metric(task: str, available: set[str] | dict, overrides: dict[str, str] | None = None) -> str:
    """The `metric,filter` key scoring `task`, given the keys present in its results.

    Order: an override for the task (by its own or its canonical name); the primary-metric table (docs/decision.md)
    for the canonical benchmark; else the first of DEFAULT_METRICS present. A tiny task
    whose results lack the full benchmark's key (tinyMMLU reports only acc_norm, its IRT
    estimate) falls back to the default order. Raises InputError when nothing fits.
    """
    overrides = overrides or {}
    chosen = overrides.get(task) or overrides.get(canonical(task))
    if chosen:
        return chosen
    table = PRIMARY_METRICS.get(canonical(task))
    if table and (task not in TINY or table in available):
        return table
    for key in DEFAULT_METRICS:
        if key in available:
            return key
    have = ", ".join(sorted(available)) or "none"
    raise InputError(f"task {task}: no primary metric among {', '.join(DEFAULT_METRICS)} (has: {have}); "
                     f"choose one with --metric {task}=METRIC,FILTER")
