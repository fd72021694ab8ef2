"""compare() refuses inputs it cannot judge, with one line naming the problem."""

import pytest

from decision_helpers import make_run
from quantgate.decision import Policy, compare
from quantgate.errors import InputError

BASE = {"gsm8k": 0.5, "mmlu": 0.6}


def one_line(exc: pytest.ExceptionInfo) -> str:
    text = str(exc.value)
    assert "\n" not in text
    return text


def test_different_task_sets_are_named():
    with pytest.raises(InputError) as exc:
        compare(make_run({**BASE, "hellaswag": 0.8}), make_run({**BASE, "winogrande": 0.7}), Policy())
    assert one_line(exc) == ("the runs evaluated different tasks (only in baseline: hellaswag; only in candidate: "
                             "winogrande); evaluate both on the same tasks")


def test_different_task_sets_are_refused_even_with_allow_mismatch():
    with pytest.raises(InputError, match="only in candidate: winogrande"):
        compare(make_run(BASE), make_run({**BASE, "winogrande": 0.7}), Policy(), allow_mismatch=True)


def test_no_tasks():
    with pytest.raises(InputError, match="no tasks to compare"):
        compare(make_run({}), make_run({}), Policy())


def test_different_few_shot_counts_are_named_or_warned():
    b, c = make_run(BASE, n_shot=5), make_run(BASE, n_shot=5)
    c.tasks["gsm8k"] = type(c.tasks["gsm8k"])(**{**c.tasks["gsm8k"].__dict__, "n_shot": 0})
    with pytest.raises(InputError) as exc:
        compare(b, c, Policy())
    assert one_line(exc).startswith("few-shot counts differ: gsm8k 5 vs 0 (baseline vs candidate); "
                                    "rerun both with the same settings or pass --allow-mismatch")
    out = compare(b, c, Policy(), allow_mismatch=True)
    assert out.reasons[-1].startswith("warning: few-shot counts differ: gsm8k 5 vs 0")


def test_different_limits_and_sample_counts_are_named():
    with pytest.raises(InputError, match=r"limit differs: 100 vs none; sample counts differ: gsm8k n=100 vs 50"):
        b, c = make_run(BASE, limit=100), make_run(BASE)
        c.tasks["gsm8k"] = type(c.tasks["gsm8k"])(**{**c.tasks["gsm8k"].__dict__, "n": 50})
        compare(b, c, Policy())
    assert compare(b, c, Policy(), allow_mismatch=True).verdict.value == "Ship"


def test_missing_metric_names_the_run_task_and_metric():
    b = make_run(BASE)
    c = make_run(BASE, metrics={"gsm8k": {"exact_match,flexible-extract": 0.5}})
    del c.tasks["gsm8k"].metrics["exact_match,strict-match"]
    with pytest.raises(InputError) as exc:
        compare(b, c, Policy())
    assert one_line(exc).startswith("candidate results for task gsm8k lack metric exact_match,strict-match "
                                    "(has: exact_match,flexible-extract)")
    with pytest.raises(InputError, match="baseline results for task gsm8k lack metric acc,none"):
        compare(b, b, Policy(metrics={"gsm8k": "acc,none"}))


def test_zero_baseline_is_refused_in_relative_mode_only():
    b, c = make_run({"gsm8k": 0.0, "mmlu": 0.6}), make_run({"gsm8k": 0.1, "mmlu": 0.6})
    with pytest.raises(InputError, match="task gsm8k: baseline exact_match,strict-match is 0, so a relative drop "
                                         "is undefined; use --drop-mode absolute"):
        compare(b, c, Policy())
    assert compare(b, c, Policy(drop_mode="absolute")).tasks[0].drop == pytest.approx(-10)


def test_groups_with_different_subtasks_are_named():
    b = make_run({"mmlu_a": 0.5, "mmlu_b": 0.5, "mmlu": 0.5}, groups={"mmlu": ["mmlu_a", "mmlu_b"]})
    c = make_run({"mmlu_a": 0.5, "mmlu_c": 0.5, "mmlu": 0.5}, groups={"mmlu": ["mmlu_a", "mmlu_c"]})
    with pytest.raises(InputError) as exc:
        compare(b, c, Policy())
    assert one_line(exc) == ("group mmlu has different subtasks in the two runs (only in baseline: mmlu_b; "
                             "only in candidate: mmlu_c); evaluate both on the same tasks")
