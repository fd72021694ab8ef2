"""Every branch and boundary of the decision rule (docs/decision.md)."""

import pytest
from pydantic import ValidationError

from decision_helpers import make_run, scaled
from quantgate.decision import Policy, Thresholds, Verdict, compare
from quantgate.errors import InputError

BASE = {"gsm8k": 0.5, "mmlu": 0.6, "hellaswag": 0.8}


def one_task(drop: float, **policy) -> "Comparison":  # noqa: F821
    b = make_run({"winogrande": 0.5})
    c = make_run(scaled({"winogrande": 0.5}, {"winogrande": drop}))
    return compare(b, c, Policy(**policy))


@pytest.mark.parametrize("avg, verdict", [
    (-2.0, Verdict.SHIP), (0.0, Verdict.SHIP), (0.99, Verdict.SHIP),
    (1.0, Verdict.MONITOR), (2.0, Verdict.MONITOR), (3.0, Verdict.MONITOR),
    (3.01, Verdict.AB_TEST), (5.0, Verdict.AB_TEST),
    (5.01, Verdict.BLOCK), (40.0, Verdict.BLOCK),
])
def test_general_bounds_and_their_boundaries(avg, verdict):
    c = one_task(avg)
    assert c.verdict is verdict
    assert c.average_drop == pytest.approx(avg)
    assert c.promotable is verdict.promotable
    assert c.reasons[0].startswith(f"average drop {avg:.2f}% (relativeDropOfMean): {verdict.value}, since")


@pytest.mark.parametrize("avg, verdict", [(0.49, Verdict.SHIP), (0.5, Verdict.MONITOR), (2.0, Verdict.MONITOR),
                                          (2.5, Verdict.AB_TEST), (4.0, Verdict.AB_TEST), (4.1, Verdict.BLOCK)])
def test_thresholds_are_overridable(avg, verdict):
    assert one_task(avg, thresholds=Thresholds(ship=0.5, monitor=2, ab_test=4)).verdict is verdict


@pytest.mark.parametrize("bad", [dict(ship=2, monitor=1), dict(monitor=6, ab_test=5), dict(ship=-1)])
def test_inconsistent_thresholds_are_rejected(bad):
    with pytest.raises(ValidationError):
        Thresholds(**bad)


def test_relative_and_absolute_drop_modes():
    b, c = make_run({"winogrande": 0.6}), make_run({"winogrande": 0.57})
    rel = compare(b, c, Policy())
    ab = compare(b, c, Policy(drop_mode="absolute"))
    assert rel.tasks[0].drop == pytest.approx(5.0) and rel.drop_mode == "relative"
    assert ab.tasks[0].drop == pytest.approx(3.0) and ab.drop_mode == "absolute"
    assert ab.verdict is Verdict.MONITOR and rel.verdict is Verdict.AB_TEST
    assert "pp" in ab.reasons[0]


def test_both_aggregates():
    b = make_run({"winogrande": 0.8, "arc_challenge": 0.2})
    c = make_run({"winogrande": 0.8, "arc_challenge": 0.1})
    of_mean = compare(b, c, Policy())
    mean_of = compare(b, c, Policy(aggregate="meanOfRelativeDrops"))
    assert [t.drop for t in of_mean.tasks] == [0.0, 50.0]
    assert of_mean.average_drop == pytest.approx(10.0)  # (1.0 - 0.9) / 1.0
    assert mean_of.average_drop == pytest.approx(25.0)
    assert of_mean.aggregate == "relativeDropOfMean" and mean_of.aggregate == "meanOfRelativeDrops"


def test_absolute_mode_average_is_percentage_points_of_the_mean():
    b = make_run({"winogrande": 0.8, "arc_challenge": 0.2})
    c = make_run({"winogrande": 0.79, "arc_challenge": 0.17})
    for aggregate in ("relativeDropOfMean", "meanOfRelativeDrops"):
        assert compare(b, c, Policy(drop_mode="absolute", aggregate=aggregate)).average_drop == pytest.approx(2.0)


def test_lower_is_better_flips_the_sign():
    b = make_run({"winogrande": 0.2}, hib={"winogrande": False})
    worse = compare(b, make_run({"winogrande": 0.3}, hib={"winogrande": False}), Policy())
    better = compare(b, make_run({"winogrande": 0.1}, hib={"winogrande": False}), Policy())
    assert worse.tasks[0].drop == pytest.approx(50.0) and worse.verdict is Verdict.BLOCK
    assert better.tasks[0].drop == pytest.approx(-50.0) and better.verdict is Verdict.SHIP


@pytest.mark.parametrize("drop, verdict, passed", [(1.99, Verdict.SHIP, True), (2.0, Verdict.BLOCK, False)])
def test_math_tutoring_limit_is_exclusive(drop, verdict, passed):
    b = make_run({"gsm8k": 0.5, "mmlu": 0.6, "hellaswag": 0.8}, stderr=None)
    # a small gsm8k drop keeps the average under 1
    c = make_run(scaled({"gsm8k": 0.5, "mmlu": 0.6, "hellaswag": 0.8}, {"gsm8k": drop}), stderr=None)
    out = compare(b, c, Policy(profile="math-tutoring"))
    g = out.tasks[0]
    assert (g.task, g.limit, g.passed) == ("gsm8k", 2.0, passed)
    assert out.verdict is verdict
    assert all(t.limit is None and t.passed for t in out.tasks[1:])
    assert f"gsm8k: drop {drop:.2f}% {'<' if passed else '>='} 2% limit of profile math-tutoring" in out.reasons


@pytest.mark.parametrize("drop, verdict", [(2.99, Verdict.MONITOR), (3.0, Verdict.BLOCK)])
def test_summarization_limits_mmlu(drop, verdict):
    b = make_run({"mmlu": 0.6})
    assert compare(b, make_run(scaled({"mmlu": 0.6}, {"mmlu": drop})), Policy(profile="summarization")).verdict is verdict


def test_code_help_limits_humaneval():
    b = make_run({"humaneval": 0.4, "mmlu": 0.6})
    c = make_run({"humaneval": 0.39, "mmlu": 0.6})
    out = compare(b, c, Policy(profile="code-help"))
    assert out.tasks[0].metric == "pass@1,create_test"
    assert out.verdict is Verdict.BLOCK and "humaneval: drop 2.50% >= 2% limit of profile code-help" in out.reasons


@pytest.mark.parametrize("avg, general, chat", [(4.99, Verdict.AB_TEST, Verdict.AB_TEST),
                                                (5.0, Verdict.AB_TEST, Verdict.BLOCK)])
def test_general_chat_limits_the_average(avg, general, chat):
    assert one_task(avg).verdict is general
    out = one_task(avg, profile="general-chat")
    assert out.verdict is chat
    assert any(r.startswith(f"average drop {avg:.2f}% ") and "limit of profile general-chat" in r for r in out.reasons)


def test_profile_task_missing_is_an_input_error():
    b = make_run({"mmlu": 0.6, "hellaswag": 0.8})
    with pytest.raises(InputError, match=r"profile math-tutoring needs task gsm8k \(or tinyGSM8k\)"):
        compare(b, b, Policy(profile="math-tutoring"))
    with pytest.raises(InputError, match="profile code-help needs task humaneval"):
        compare(b, b, Policy(profile="code-help"))


def test_explicit_task_limits_add_to_and_override_the_profile():
    b = make_run(BASE)
    c = make_run(scaled(BASE, {"gsm8k": 4, "hellaswag": 1}))
    assert compare(b, c, Policy(profile="math-tutoring")).verdict is Verdict.BLOCK
    relaxed = compare(b, c, Policy(profile="math-tutoring", task_limits={"gsm8k": 5}))
    assert relaxed.tasks[0].limit == 5 and relaxed.verdict is Verdict.MONITOR
    assert "gsm8k: drop 4.00% < 5% task limit" in relaxed.reasons
    extra = compare(b, c, Policy(task_limits={"hellaswag": 1}))
    assert extra.verdict is Verdict.BLOCK and extra.tasks[2].passed is False


def test_task_limit_for_unknown_task_is_an_input_error():
    b = make_run(BASE)
    with pytest.raises(InputError, match="task limit for humaneval: no such task"):
        compare(b, b, Policy(task_limits={"humaneval": 2}))


def test_tiny_tasks_count_for_their_benchmark():
    b = make_run({"tinyGSM8k": 0.5, "tinyArc": 0.6})
    c = make_run({"tinyGSM8k": 0.48, "tinyArc": 0.6})
    out = compare(b, c, Policy(profile="math-tutoring"))
    assert [t.metric for t in out.tasks] == ["exact_match,strict-match", "acc_norm,none"]
    assert out.tasks[0].limit == 2 and out.verdict is Verdict.BLOCK
    assert "tinyGSM8k: drop 4.00% >= 2% limit of profile math-tutoring" in out.reasons
    assert compare(b, c, Policy(task_limits={"gsm8k": 5})).tasks[0].limit == 5


def test_tiny_mmlu_uses_acc_when_present_else_its_own_acc_norm():
    only_norm = make_run({"tinyMMLU": 0.6}, metrics={"tinyMMLU": {"acc_norm,none": 0.61}})
    del only_norm.tasks["tinyMMLU"].metrics["acc,none"]
    assert compare(only_norm, only_norm, Policy(profile="summarization")).tasks[0].metric == "acc_norm,none"
    both = make_run({"tinyMMLU": 0.6}, metrics={"tinyMMLU": {"acc_norm,none": 0.61}})
    assert compare(both, both, Policy()).tasks[0].metric == "acc,none"


def test_only_top_level_tasks_and_groups_are_compared():
    groups = {"mmlu": ["mmlu_stem"], "mmlu_stem": ["mmlu_anatomy", "mmlu_astronomy"]}
    scores = {"mmlu_anatomy": 0.5, "mmlu_astronomy": 0.7, "mmlu_stem": 0.6, "mmlu": 0.6, "gsm8k": 0.5}
    b = make_run(scores, groups=groups)
    c = make_run({**scores, "mmlu": 0.57, "mmlu_anatomy": 0.1}, groups=groups)
    out = compare(b, c, Policy())
    assert [t.task for t in out.tasks] == ["mmlu", "gsm8k"]  # results order
    assert out.tasks[0].candidate == 0.57 and out.tasks[0].drop == pytest.approx(5.0)


def test_metric_override_and_default_order():
    b = make_run({"gsm8k": 0.5, "piqa": 0.7},
                 metrics={"gsm8k": {"exact_match,flexible-extract": 0.6}, "piqa": {"acc_norm,none": 0.72}})
    c = make_run({"gsm8k": 0.5, "piqa": 0.7},
                 metrics={"gsm8k": {"exact_match,flexible-extract": 0.3}, "piqa": {"acc_norm,none": 0.72}})
    out = compare(b, c, Policy())
    assert [t.metric for t in out.tasks] == ["exact_match,strict-match", "acc_norm,none"]
    assert out.tasks[0].drop == 0
    over = compare(b, c, Policy(metrics={"gsm8k": "exact_match,flexible-extract"}))
    assert over.tasks[0].metric == "exact_match,flexible-extract" and over.tasks[0].drop == pytest.approx(50)


def test_no_known_metric_is_an_input_error():
    b = make_run({"wikitext": 0.5})
    b.tasks["wikitext"].metrics.clear()
    b.tasks["wikitext"].metrics["word_perplexity,none"] = 12.0
    with pytest.raises(InputError, match=r"task wikitext: no primary metric .*\(has: word_perplexity,none\)"):
        compare(b, b, Policy())


def test_verdict_is_the_worst_outcome_and_reasons_lead_with_failures():
    b = make_run(BASE)
    c = make_run(scaled(BASE, {"gsm8k": 30, "mmlu": 30, "hellaswag": 30}))
    out = compare(b, c, Policy(profile="math-tutoring"))
    assert out.verdict is Verdict.BLOCK
    assert out.reasons[0].startswith("gsm8k: drop 30.00% >= 2%")
    assert "Block, since 30.00 > 5" in out.reasons[1]


def test_output_rounds_but_decides_on_full_precision():
    b = make_run({"winogrande": 0.7})
    c = make_run({"winogrande": 0.69300712})
    out = compare(b, c, Policy())
    t = out.tasks[0]
    assert (t.baseline, t.candidate) == (0.7, 0.693)
    assert t.drop == 1.0 and out.average_drop == 1.0  # 0.9989...% rounded for display
    assert out.verdict is Verdict.SHIP  # decided on 0.9989...%, below 1
