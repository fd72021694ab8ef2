"""Exact McNemar p-values, minimum detectable drops and documents needed (decision/significance.py)."""

import math
from statistics import NormalDist

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from decision_helpers import make_run
from quantgate.decision import Policy, compare
from quantgate.decision.significance import documents_needed, mcnemar_p, min_detectable_drop

examples = settings(max_examples=100, deadline=None)


@examples
@given(st.integers(0, 400), st.integers(0, 400))
def test_mcnemar_matches_scipys_exact_binomial_test(worse, better):
    # scipy (an lm-eval dependency) computes the same exact test independently.
    n = worse + better
    expected = 1.0 if n == 0 else stats.binomtest(min(worse, better), n, 0.5).pvalue
    assert mcnemar_p(worse, better) == pytest.approx(expected, rel=1e-9, abs=1e-300)


def test_mcnemar_known_values_and_large_counts():
    assert mcnemar_p(6, 0) == pytest.approx(2 / 64)  # 2 * 0.5**6
    assert mcnemar_p(0, 0) == 1.0 and mcnemar_p(7, 7) == 1.0
    assert mcnemar_p(3, 4) == mcnemar_p(4, 3) == 1.0
    # no underflow or overflow at MMLU's full size
    p = mcnemar_p(1100, 900)
    assert 0 < p < 1e-5 and p == pytest.approx(stats.binomtest(900, 2000, 0.5).pvalue, rel=1e-9)
    assert mcnemar_p(7000, 7042) > 0.5
    with pytest.raises(ValueError):
        mcnemar_p(-1, 2)


def test_minimum_detectable_drop_formula():
    # a 0/1 metric, 10% of 1,000 answers flipped evenly: sd of one difference = sqrt(0.1)
    sd = math.sqrt(0.1)
    z = NormalDist().inv_cdf(0.975) + NormalDist().inv_cdf(0.8)
    assert min_detectable_drop(sd, 1000, 0.5, "absolute") == pytest.approx(z * sd / math.sqrt(1000) * 100)
    assert min_detectable_drop(sd, 1000, 0.5, "relative") == pytest.approx(z * sd / math.sqrt(1000) * 200)
    # four times the documents halve it
    assert min_detectable_drop(sd, 4000, 0.5, "absolute") == pytest.approx(
        min_detectable_drop(sd, 1000, 0.5, "absolute") / 2)
    assert min_detectable_drop(sd, 1, 0.5, "absolute") is None


@examples
@given(st.floats(0.01, 1), st.floats(0.01, 10), st.floats(0.1, 1))
def test_documents_needed_make_the_half_width_fit(sd, distance, base):
    n = documents_needed(sd, distance, base, "relative")
    half = lambda k: NormalDist().inv_cdf(0.975) * sd / math.sqrt(k) * 100 / base  # noqa: E731
    assert half(n) <= distance * (1 + 1e-9)
    assert n == 1 or half(n - 1) > distance
    assert documents_needed(sd, 0.0, base, "relative") is None


def _runs(b_vals, c_vals, task="hellaswag"):
    b = make_run({task: sum(b_vals) / len(b_vals)}, samples={task: {"acc_norm,none": b_vals}}, n=len(b_vals))
    c = make_run({task: sum(c_vals) / len(c_vals)}, samples={task: {"acc_norm,none": c_vals}}, n=len(c_vals))
    return b, c


def test_compare_reports_p_mdd_and_reasons():
    # 200 questions; 12 correct→incorrect, 2 incorrect→correct
    b_vals = [1] * 120 + [0] * 80
    c_vals = [0] * 12 + [1] * 108 + [1] * 2 + [0] * 78
    comp = compare(*_runs(b_vals, c_vals), Policy())
    t = comp.tasks[0]
    assert (t.flips.correct_to_incorrect, t.flips.incorrect_to_correct) == (12, 2)
    assert t.flips.mcnemar_p == pytest.approx(stats.binomtest(2, 14, 0.5).pvalue, rel=5e-3)  # 3 significant digits
    assert t.min_detectable_drop is not None and t.min_detectable_drop > 0
    dumped = t.dump()
    assert "mcnemarP" in dumped["flips"] and "minDetectableDrop" in dumped
    assert any(r.startswith("exact McNemar test") and "significantly worse" in r for r in comp.reasons)
    assert any(r.startswith("minimum detectable drop") for r in comp.reasons)


def test_documents_needed_when_not_decisive_and_they_would_decide():
    # a 4% drop on one task: ABTest, with Monitor and Block inside its interval
    b_vals = [1] * 100 + [0] * 100
    c_vals = [0] * 10 + [1] * 90 + [1] * 6 + [0] * 94
    comp = compare(*_runs(b_vals, c_vals), Policy())
    t = comp.tasks[0]
    assert not comp.decisive and t.documents_needed is not None and t.documents_needed > t.n
    assert any("documents (this run: 200) would decide it" in r for r in comp.reasons)
    # the same disagreement pattern repeated to that many documents is decisive
    k = math.ceil(t.documents_needed / len(b_vals)) + 1
    bigger = compare(*_runs(b_vals * k, c_vals * k), Policy())
    assert bigger.decisive and bigger.tasks[0].documents_needed is None
    assert bigger.verdict == comp.verdict
    # a drop exactly on a bound: no number of documents decides it
    on_edge = [0] * 10 + [1] * 90 + [1] * 5 + [0] * 95
    edge = compare(*_runs(b_vals, on_edge), Policy())
    assert edge.tasks[0].drop == 5.0 and not edge.decisive and edge.tasks[0].documents_needed is None
    assert any("no number of documents decides it" in r for r in edge.reasons)


def test_decisive_comparison_has_no_documents_needed():
    b_vals = [1] * 100 + [0] * 100
    comp = compare(*_runs(b_vals, list(b_vals)), Policy())
    assert comp.decisive and comp.tasks[0].documents_needed is None
    assert comp.tasks[0].flips.mcnemar_p == 1.0


def test_no_minimum_detectable_drop_without_any_disagreement():
    b_vals = [1] * 100 + [0] * 100
    assert compare(*_runs(b_vals, list(b_vals)), Policy()).tasks[0].min_detectable_drop is None
