"""Choice-distribution KLD and top-1 agreement: the math, and their place in compare."""

import json
import math
from pathlib import Path

import pytest

from quantgate.cli import main
from quantgate.decision.fidelity import check_limits, choice_distribution, kl_divergence, task_fidelity

EX = Path(__file__).resolve().parents[3] / "examples"


def test_identical_choices_have_zero_kld_and_full_agreement():
    rows = [[-1.0, -2.0, -3.0], [-0.1, -5.0, -0.2]]
    f = task_fidelity("t", rows, rows)
    assert f.kld == 0.0 and f.top1 == 1.0 and f.n == 2


def test_kld_matches_a_hand_computation():
    b, c = [math.log(0.5), math.log(0.5)], [math.log(0.9), math.log(0.1)]
    expected = 0.5 * math.log(0.5 / 0.9) + 0.5 * math.log(0.5 / 0.1)
    assert kl_divergence(choice_distribution(b), choice_distribution(c)) == pytest.approx(expected)
    # softmax is shift-invariant: loglikelihoods of any scale give the same distribution
    assert choice_distribution([-100.0, -101.0]) == pytest.approx(choice_distribution([0.0, -1.0]))


def test_top1_counts_questions_whose_first_choice_changed():
    b = [[-1.0, -2.0], [-1.0, -2.0], [-2.0, -1.0], [-3.0, -1.0]]
    c = [[-1.0, -2.0], [-2.0, -1.0], [-2.0, -1.0], [-1.0, -3.0]]
    f = task_fidelity("t", b, c)
    assert f.top1 == 0.5 and f.kld > 0


def test_limits_only_add_reasons():
    f = task_fidelity("arc", [[-1.0, -2.0]], [[-2.0, -1.0]])
    assert check_limits([f], None, None) == []
    assert check_limits([f], 10.0, 0.0) == []
    assert check_limits([f], 0.01, 0.9) == [f"arc: choice KLD {f.kld:.4f} > limit 0.01",
                                           "arc: top-1 agreement 0.000 < limit 0.9"]


def _compare(capsys, *extra):
    rc = main(["compare", "--baseline", str(EX / "fp16"), "--candidate", str(EX / "int4-g128"), "-o", "json", *extra])
    return rc, json.loads(capsys.readouterr().out)


def test_compare_reports_fidelity_for_multiple_choice_tasks_only(capsys):
    rc, data = _compare(capsys)
    by_task = {t["task"]: t for t in data["tasks"]}
    assert "choiceKld" not in by_task["gsm8k"] and "top1Agreement" not in by_task["gsm8k"]
    for task in ("arc_challenge", "hellaswag", "winogrande", "mmlu", "truthfulqa_mc2"):
        assert by_task[task]["choiceKld"] > 0 and 0.9 < by_task[task]["top1Agreement"] < 1
    # flips (correctness changes) can only happen where the first choice changed
    arc = by_task["arc_challenge"]
    flipped = arc["flips"]["correctToIncorrect"] + arc["flips"]["incorrectToCorrect"]
    assert flipped <= round((1 - arc["top1Agreement"]) * arc["n"])


def test_a_fidelity_limit_makes_the_verdict_stricter_never_looser(capsys):
    rc, base = _compare(capsys)
    assert rc == 0 and base["verdict"] == "Monitor"
    rc, loose = _compare(capsys, "--max-choice-kld", "5", "--min-top1-agreement", "0.5")
    assert rc == 0 and loose["verdict"] == "Monitor" and loose["reasons"] == base["reasons"]
    rc, strict = _compare(capsys, "--max-choice-kld", "0.1")
    assert rc == 1 and strict["verdict"] == "Block"
    assert any(r.startswith("mmlu: choice KLD") and "> limit 0.1" in r for r in strict["reasons"])
    rc, blocked = _compare(capsys, "--profile", "math-tutoring", "--max-choice-kld", "5")
    assert rc == 1 and blocked["verdict"] == "Block"  # a loose limit never lifts a block


def test_bad_limit_is_one_line(capsys):
    rc = main(["compare", "--baseline", str(EX / "fp16"), "--candidate", str(EX / "int4-g128"),
               "--min-top1-agreement", "1.5"])
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "--min-top1-agreement" in err


def test_task_fidelity_is_the_per_question_formula_over_mixed_widths():
    """The vectorised task_fidelity equals the one-question formulas, averaged (2- and 4-choice
    questions mixed; a question whose widths differ, or with one choice, is left out)."""
    import random

    rng = random.Random(4)
    base, cand = [], []
    for i in range(300):
        width = 2 if i % 3 else 4
        base.append([rng.uniform(-30, 0) for _ in range(width)])
        cand.append([x + rng.gauss(0, 2) for x in base[-1]])
    base += [[-1.0, -2.0], [-1.0]]
    cand += [[-1.0, -2.0, -3.0], [-2.0]]
    f = task_fidelity("t", base, cand)
    pairs = [(b, c) for b, c in zip(base, cand) if len(b) == len(c) >= 2]
    want_kld = sum(kl_divergence(choice_distribution(b), choice_distribution(c)) for b, c in pairs) / len(pairs)
    want_top1 = sum(max(range(len(b)), key=b.__getitem__) == max(range(len(c)), key=c.__getitem__)
                    for b, c in pairs) / len(pairs)
    assert f.n == 300 and f.kld == pytest.approx(want_kld, rel=1e-9) and f.top1 == want_top1
