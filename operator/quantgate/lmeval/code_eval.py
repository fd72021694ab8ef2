"""pass@k for the code tasks, scored in quantgate's sandbox instead of HF `evaluate`'s code_eval.

lm-eval's own humaneval and mbpp utils load `evaluate.load("code_eval")` when imported: that
fetches the metric from the Hugging Face Hub and runs the model's code in a plain subprocess
of the evaluator. quantgate's code tasks (quantgate.lmeval.code_tasks) keep the official task
configs and point their metric and filter at the functions here, which have the same contract
(same names, arguments and return values, so results keep lm-eval's metric keys:
``pass@1,create_test`` for humaneval, ``pass_at_1,none`` for mbpp) but run each program with
`quantgate.lmeval.sandbox.run_program`.

Nothing runs unless the process opted in (`allow_code_execution()`, which `quantgate run
--allow-code-execution` enters): otherwise scoring raises CodeExecutionRefused.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from quantgate.errors import InputError
from quantgate.lmeval.sandbox import run_program

_allowed = False


class CodeExecutionRefused(InputError):
    pass


@contextlib.contextmanager
def allow_code_execution() -> Iterator[None]:
    global _allowed
    previous, _allowed = _allowed, True
    try:
        yield
    finally:
        _allowed = previous


def _check_allowed() -> None:
    if not _allowed:
        raise CodeExecutionRefused("scoring a code task runs model-written code; "
                                   "pass --allow-code-execution to run it in the sandbox")


def _passes(program: str, tests: str) -> bool:
    # code_eval's program: the candidate, a newline, then the test code.
    return run_program(program + "\n" + tests).passed


def _pass_at(references: list[str], predictions: list[list[str]], k: int) -> float:
    """Mean over problems of the unbiased pass@k estimate (Chen et al. 2021): 1 - C(n-c, k) / C(n, k)."""
    from math import comb

    scores = []
    for tests, candidates in zip(references, predictions, strict=True):
        n = len(candidates)
        c = sum(_passes(candidate, tests) for candidate in candidates)
        scores.append(1.0 if n - c < k else 1.0 - comb(n - c, k) / comb(n, k))
    return sum(scores) / len(scores) if scores else 0.0


def pass_at_k(references: list[str], predictions: list[list[str]], k: list[int] | int | None = None) -> dict:
    """humaneval's metric contract: {"pass@1": score, ...} for each k."""
    _check_allowed()
    if k is None:
        raise ValueError("pass_at_k needs k")
    ks = [k] if isinstance(k, int) else list(k)
    return {f"pass@{n}": _pass_at(references, predictions, n) for n in ks}


def pass_at_1(references: str | list[str], predictions: str | list[list[str]]) -> float:
    """mbpp's metric contract: a float, pass@1."""
    _check_allowed()
    if isinstance(references, str):
        references = [references]
    if isinstance(predictions[0], str):
        predictions = [[p] for p in predictions]  # type: ignore[misc]
    return _pass_at(references, predictions, 1)  # type: ignore[arg-type]


def build_predictions(resps: list[list[str]], docs: list[dict]) -> list[list[str]]:
    """humaneval's create_test filter: the prompt (signature and docstring) plus each completion."""
    return [[doc["prompt"] + r for r in resp] for resp, doc in zip(resps, docs)]

