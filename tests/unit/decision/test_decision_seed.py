"""The seed's worked examples: the quiz and the decision matrix (the rule is the contract;
the seed's "Avg Drop" figures are approximate, see docs/decision.md)."""

from pathlib import Path

import pytest

from decision_helpers import make_run, scaled
from quantgate.decision import Policy, Verdict, compare, matrix
from quantgate.lmeval.results import load_run

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
FP16 = {"gsm8k": 0.56, "mmlu": 0.64, "hellaswag": 0.82, "arc_challenge": 0.58, "winogrande": 0.76,
        "truthfulqa_mc2": 0.52}


def test_quiz_int4_under_math_tutoring_blocks():
    base = {"gsm8k": 0.5, "mmlu": 0.6, "hellaswag": 0.8}
    int4 = scaled(base, {"gsm8k": 4, "mmlu": 1, "hellaswag": 1})
    out = compare(make_run(base), make_run(int4), Policy(profile="math-tutoring"))
    assert out.verdict is Verdict.BLOCK and not out.promotable
    assert out.reasons[0] == "gsm8k: drop 4.00% >= 2% limit of profile math-tutoring"
    assert [t.drop for t in out.tasks] == [4.0, 1.0, 1.0]
    # the same model under the general profile: average (0.02+0.006+0.008)/1.9 = 1.79% → Monitor
    general = compare(make_run(base), make_run(int4), Policy())
    assert general.verdict is Verdict.MONITOR and general.average_drop == 1.79


@pytest.mark.parametrize("name, avg, verdict", [
    ("INT8", 0.8, Verdict.SHIP),
    ("INT4 g128", 2.1, Verdict.MONITOR),
    ("INT4 g64", 1.5, Verdict.MONITOR),  # the seed says "Yes": Monitor is promotable
])
def test_seed_matrix_rows(name, avg, verdict):
    # every task down by the same relative amount gives exactly that average drop
    variant = make_run(scaled(FP16, {t: avg for t in FP16}))
    m = matrix(make_run(FP16), {name: variant}, Policy(), sizes={"Reference": "16 GB", name: "x"})
    ref, row = m.rows
    assert (ref.name, ref.size, ref.average_drop, ref.verdict) == ("Reference", "16 GB", None, None)
    assert row.average_drop == pytest.approx(avg) and row.verdict is verdict and row.promotable


def test_example_result_sets_reproduce_the_matrix():
    base = load_run(EXAMPLES / "fp16")
    variants = {n: load_run(EXAMPLES / n) for n in ("int8", "int4-g128", "int4-g64")}
    m = matrix(base, variants, Policy())
    got = {r.name: (r.verdict, r.average_drop) for r in m.rows[1:]}
    assert got == {"int8": (Verdict.SHIP, 0.73), "int4-g128": (Verdict.MONITOR, 2.2),
                   "int4-g64": (Verdict.MONITOR, 1.22)}
    quiz = compare(base, variants["int4-g128"], Policy(profile="math-tutoring"))
    assert quiz.verdict is Verdict.BLOCK and quiz.tasks[0].flips.correct_to_incorrect > 0
