"""Answer flips, 95% intervals (paired and from stderrs) and the decisive flag."""

import math

import pytest

from decision_helpers import make_run
from quantgate.decision import Policy, Verdict, compare
from quantgate.decision.paired import Z95
from quantgate.errors import InputError

STRICT, FLEX = "exact_match,strict-match", "exact_match,flexible-extract"


def gsm8k_runs(b_strict, b_flex, c_strict, c_flex, **kw):
    def run(strict, flex):
        return make_run({"gsm8k": sum(strict) / len(strict)},
                        metrics={"gsm8k": {FLEX: sum(flex) / len(flex)}},
                        samples={"gsm8k": {STRICT: strict, FLEX: flex}}, **kw)
    return run(b_strict, b_flex), run(c_strict, c_flex)


def test_gsm8k_flips_use_the_primary_filter_only():
    b, c = gsm8k_runs([1, 1, 0, 0, 1], [1, 1, 1, 0, 1], [1, 0, 0, 1, 0], [1, 1, 1, 1, 1])
    f = compare(b, c, Policy()).tasks[0].flips
    assert (f.correct_to_incorrect, f.incorrect_to_correct, f.rate) == (2, 1, 0.6)
    flex = compare(b, c, Policy(metrics={"gsm8k": FLEX})).tasks[0].flips
    assert (flex.correct_to_incorrect, flex.incorrect_to_correct, flex.rate) == (0, 1, 0.2)


def test_mc2_probabilities_count_as_correct_from_one_half():
    b_vals = [0.7, 0.6, 0.5, 0.2, 0.49, 0.9]
    c_vals = [0.55, 0.4, 0.49, 0.6, 0.5, 0.91]
    b = make_run({"truthfulqa_mc2": sum(b_vals) / 6}, samples={"truthfulqa_mc2": {"acc,none": b_vals}})
    c = make_run({"truthfulqa_mc2": sum(c_vals) / 6}, samples={"truthfulqa_mc2": {"acc,none": c_vals}})
    t = compare(b, c, Policy()).tasks[0]
    # 0.6→0.4 and 0.5→0.49 lose; 0.2→0.6 and 0.49→0.5 gain; 0.7→0.55 and 0.9→0.91 stay correct
    assert (t.flips.correct_to_incorrect, t.flips.incorrect_to_correct) == (2, 2)
    assert t.n == 6


def test_group_flips_pool_every_leaf():
    groups = {"mmlu": ["mmlu_a", "mmlu_b"]}
    scores = {"mmlu_a": 0.5, "mmlu_b": 0.5, "mmlu": 0.5}
    b = make_run(scores, groups=groups, samples={"mmlu_a": {"acc,none": [1, 0]}, "mmlu_b": {"acc,none": [1, 0]}})
    c = make_run(scores, groups=groups, samples={"mmlu_a": {"acc,none": [0, 1]}, "mmlu_b": {"acc,none": [1, 0]}})
    t = compare(b, c, Policy()).tasks[0]
    assert t.task == "mmlu" and t.n == 4
    assert (t.flips.correct_to_incorrect, t.flips.incorrect_to_correct, t.flips.rate) == (1, 1, 0.5)


def test_no_flips_without_samples_of_both_runs():
    b, c = gsm8k_runs([1, 0], [1, 0], [1, 1], [1, 1])
    c.samples.clear()
    t = compare(b, c, Policy()).tasks[0]
    assert t.flips is None and "flips" not in t.dump()
    assert t.ci95 is not None  # from the stderrs instead


def test_paired_interval_from_per_question_differences():
    strict_b, strict_c = [1, 1, 0, 0], [1, 0, 0, 1]
    b, c = gsm8k_runs(strict_b, strict_b, strict_c, strict_c)
    # differences 0, 1, 0, -1: mean 0, sample variance 2/3, se sqrt(2/3 / 4)
    se = math.sqrt(2 / 3 / 4)
    absolute = compare(b, c, Policy(drop_mode="absolute")).tasks[0]
    assert absolute.ci95 == pytest.approx((-Z95 * se * 100, Z95 * se * 100), abs=0.006)
    relative = compare(b, c, Policy()).tasks[0]
    assert relative.ci95 == pytest.approx((-Z95 * se * 100 / 0.5, Z95 * se * 100 / 0.5), abs=0.006)


def test_interval_from_both_stderrs_without_samples():
    b = make_run({"winogrande": 0.5}, stderr=0.03)
    c = make_run({"winogrande": 0.45}, stderr=0.04)
    half = Z95 * 0.05 * 100  # sqrt(0.03² + 0.04²) = 0.05
    assert compare(b, c, Policy(drop_mode="absolute")).tasks[0].ci95 == pytest.approx((5 - half, 5 + half), abs=0.006)
    assert compare(b, c, Policy()).tasks[0].ci95 == pytest.approx((10 - 2 * half, 10 + 2 * half), abs=0.006)


def test_no_interval_without_stderrs_or_samples():
    b, c = make_run({"winogrande": 0.5}, stderr=None), make_run({"winogrande": 0.45}, stderr=None)
    out = compare(b, c, Policy())
    assert out.tasks[0].ci95 is None and out.decisive is True


def test_decisive_when_no_interval_reaches_another_verdict():
    b = make_run({"winogrande": 0.5, "arc_challenge": 0.5}, stderr=0.0001)
    c = make_run({"winogrande": 0.49, "arc_challenge": 0.49}, stderr=0.0001)
    out = compare(b, c, Policy())
    assert out.verdict is Verdict.MONITOR and out.decisive is True
    assert not any(r.startswith("not decisive") for r in out.reasons)


def test_not_decisive_names_the_task_and_its_interval():
    b = make_run({"winogrande": 0.5, "arc_challenge": 0.5}, stderr=0.0001)
    c = make_run({"winogrande": 0.49, "arc_challenge": 0.49}, stderr=0.0001)
    b.tasks["arc_challenge"].stderrs["acc_norm,none"] = 0.02
    out = compare(b, c, Policy())
    assert out.verdict is Verdict.MONITOR and out.decisive is False
    doubt = [r for r in out.reasons if r.startswith("not decisive")]
    lo, hi = out.tasks[1].ci95
    # arc's drop must move by 2 (the average by 1) to change the verdict: the half-width
    # 1.96 * sd * 100 / 0.5 / sqrt(n) fits in 2 from n = (1.96 * 0.2 * 200 / 2)**2 = 1537 documents
    assert doubt == [f"not decisive: arc_challenge drop 2.00% has 95% CI [{lo:.2f}, {hi:.2f}], within which "
                     f"the verdict could be Ship at {lo:.2f}% or Block at {hi:.2f}%; about 1537 documents "
                     "(this run: 100) would decide it at the same standard error per document"]
    assert out.tasks[1].documents_needed == 1537


def test_task_limit_decides_the_decisive_flag_too():
    b = make_run({"gsm8k": 0.5, "mmlu": 0.6}, stderr=0.001)
    c = make_run({"gsm8k": 0.495, "mmlu": 0.6}, stderr=0.001)
    tight = compare(b, c, Policy(profile="math-tutoring"))
    assert tight.verdict is Verdict.SHIP and tight.decisive is True  # 1% drop, CI ~[0.45, 1.55] < 2
    b.tasks["gsm8k"].stderrs["exact_match,strict-match"] = 0.01
    loose = compare(b, c, Policy(profile="math-tutoring"))
    assert loose.decisive is False
    assert any(r.startswith("not decisive: gsm8k") and "Block at" in r for r in loose.reasons)


def test_different_documents_are_refused_or_skipped_with_allow_mismatch():
    b, c = gsm8k_runs([1, 0], [1, 0], [1, 1], [1, 1])
    c.samples["gsm8k"].digest = "other-docs"
    with pytest.raises(InputError, match="task gsm8k: baseline and candidate were evaluated on different documents"):
        compare(b, c, Policy())
    out = compare(b, c, Policy(), allow_mismatch=True)
    assert out.tasks[0].flips is None
    assert any(r.startswith("warning: task gsm8k: baseline and candidate were evaluated on different documents")
               for r in out.reasons)
