"""Property tests: monotone verdicts, identity, symmetry of flips."""

from hypothesis import given, settings
from hypothesis import strategies as st

from decision_helpers import make_run
from quantgate.decision import Policy, Thresholds, compare
from quantgate.decision.model import PROFILES
from quantgate.decision.rule import Limit, Rule, decide

TASKS = ["gsm8k", "mmlu", "hellaswag", "arc_challenge"]
drops = st.lists(st.floats(-20, 20, allow_nan=False), min_size=4, max_size=4)
increments = st.lists(st.floats(0, 10, allow_nan=False), min_size=4, max_size=4)
baselines = st.lists(st.floats(0.05, 1.0), min_size=4, max_size=4)
bits = st.lists(st.booleans(), min_size=1, max_size=40)

# per-test settings: a global profile would leak into other test modules
examples = settings(max_examples=150, deadline=None)


@st.composite
def rules(draw):
    ship = draw(st.floats(0, 3))
    monitor = ship + draw(st.floats(0, 3))
    ab = monitor + draw(st.floats(0, 3))
    limits = {t: Limit(draw(st.floats(0, 10)), "task limit") for t in draw(st.sets(st.sampled_from(TASKS)))}
    return Rule(thresholds=Thresholds(ship=ship, monitor=monitor, ab_test=ab),
                aggregate=draw(st.sampled_from(["relativeDropOfMean", "meanOfRelativeDrops"])),
                drop_mode=draw(st.sampled_from(["relative", "absolute"])), task_limits=limits,
                average_limit=draw(st.one_of(st.none(), st.builds(Limit, st.floats(0, 10), st.just("profile")))))


@examples
@given(rules(), baselines, drops, increments)
def test_verdict_is_monotone_in_the_drops(rule, bases, d, inc):
    worse = [x + y for x, y in zip(d, inc)]
    assert decide(TASKS, worse, bases, rule).verdict.rank >= decide(TASKS, d, bases, rule).verdict.rank


@examples
@given(baselines, st.lists(bits, min_size=4, max_size=4), st.sampled_from(PROFILES[:2] + PROFILES[3:]),
       st.sampled_from(["relative", "absolute"]))
def test_identical_candidate_ships_with_no_flips(scores, per_question, profile, mode):
    samples = {t: {"acc,none" if t != "gsm8k" else "exact_match,strict-match": [float(b) for b in q]}
               for t, q in zip(TASKS, per_question)}
    samples["mmlu"] = {"acc,none": samples["mmlu"]["acc,none"]}
    run = make_run(dict(zip(TASKS, scores)), samples={k: v for k, v in samples.items() if k in ("gsm8k", "mmlu")})
    out = compare(run, run, Policy(profile=profile, drop_mode=mode))
    assert out.verdict.value == "Ship" and out.promotable and out.average_drop == 0
    assert all(t.drop == 0 and t.passed for t in out.tasks)
    flipped = [t.flips for t in out.tasks if t.flips is not None]
    assert len(flipped) == 2 and all(f.correct_to_incorrect == f.incorrect_to_correct == 0 == f.rate for f in flipped)


@examples
@given(st.lists(st.tuples(st.booleans(), st.booleans()), min_size=1, max_size=60))
def test_swapping_runs_swaps_flip_directions(pairs):
    b_vals = [float(x) for x, _ in pairs]
    c_vals = [float(y) for _, y in pairs]
    mean = lambda v: max(sum(v) / len(v), 0.01)  # noqa: E731 (a zero score cannot be a relative baseline)
    b = make_run({"gsm8k": mean(b_vals)}, samples={"gsm8k": {"exact_match,strict-match": b_vals}})
    c = make_run({"gsm8k": mean(c_vals)}, samples={"gsm8k": {"exact_match,strict-match": c_vals}})
    ab = compare(b, c, Policy(drop_mode="absolute")).tasks[0]
    ba = compare(c, b, Policy(drop_mode="absolute")).tasks[0]
    assert ab.flips.correct_to_incorrect == ba.flips.incorrect_to_correct
    assert ab.flips.incorrect_to_correct == ba.flips.correct_to_incorrect
    assert ab.flips.rate == ba.flips.rate
    assert ab.drop == -ba.drop
