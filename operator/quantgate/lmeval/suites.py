"""Named task suites and the resolution of a spec's suite/tasks into TaskSpecs.

`resolve_tasks(suite, tasks)` is the one place that expands a suite into tasks: the runner
(`quantgate run`) calls it, and a spec's run plan (quantgate.lmeval.plan) calls it for the
operator's Job builder, baseline cache key and trust check.
"""

from __future__ import annotations

from quantgate.api.v1alpha1 import TaskSpec
from quantgate.errors import InputError

# The Open LLM Leaderboard (v1) six with their standard shots.
LEADERBOARD_SHOTS = {
    "arc_challenge": 25,
    "hellaswag": 10,
    "mmlu": 5,
    "truthfulqa_mc2": 0,
    "winogrande": 5,
    "gsm8k": 5,
}
# tinyBenchmarks (100 items each); never run with a limit: their IRT estimate needs every item.
TINY_SHOTS = {
    "tinyArc": 25,
    "tinyHellaswag": 10,
    "tinyMMLU": 0,
    "tinyTruthfulQA": 0,
    "tinyWinogrande": 5,
    "tinyGSM8k": 5,
}
SUITES = {
    "leaderboard": LEADERBOARD_SHOTS,
    "tiny": TINY_SHOTS,
    # Same task names and shots as leaderboard, on the small datasets shipped in
    # quantgate/lmeval/tasks/data (see quantgate.lmeval.local_tasks).
    "local": LEADERBOARD_SHOTS,
    # The same six at their official sizes (quantgate.lmeval.full_sizes) on datasets of our own,
    # generated at first use (quantgate.lmeval.full_tasks).
    "local-full": LEADERBOARD_SHOTS,
    # HumanEval/MBPP-style problems of our own (quantgate.lmeval.code_tasks), at lm-eval's
    # standard shots; they run model-written code, so only with --allow-code-execution.
    "code": {"humaneval": 0, "mbpp": 3},
}
DEFAULT_SUITE = "leaderboard"


def resolve_tasks(suite: str | None, tasks: list[TaskSpec] | None) -> list[TaskSpec]:
    """The tasks to run: explicit `tasks` if given, else the named suite (default leaderboard).

    Raises InputError for an unknown suite, both given, duplicates, or a limit on a tiny task.
    """
    if suite is not None and tasks:
        raise InputError("give either a suite or a list of tasks, not both")
    if tasks:
        resolved = [TaskSpec.model_validate(t) if isinstance(t, dict) else t for t in tasks]
    else:
        name = suite or DEFAULT_SUITE
        if name not in SUITES:
            raise InputError(f"unknown suite {name!r}; choose one of {', '.join(SUITES)}")
        resolved = [TaskSpec(name=task, num_fewshot=shots) for task, shots in SUITES[name].items()]
    seen: set[str] = set()
    for spec in resolved:
        if spec.name in seen:
            raise InputError(f"task {spec.name!r} is listed twice; list each task once")
        seen.add(spec.name)
        if spec.limit is not None and spec.name.startswith("tiny"):
            raise InputError(
                f"task {spec.name!r} is a tinyBenchmarks task and must run in full; remove its limit"
            )
    return resolved
