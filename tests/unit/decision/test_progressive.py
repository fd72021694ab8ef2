"""The stopping rule of progressive evaluation (decision/progressive.py): property tests."""

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quantgate.decision.model import Thresholds, Verdict
from quantgate.decision.progressive import (
    DEFAULT_STAGES,
    Stratum,
    TaskSample,
    check_stages,
    document_order,
    look,
    stage_count,
    task_fractions,
    verdict_of,
)
from quantgate.decision.rule import Limit, Rule, decide

examples = settings(max_examples=60, deadline=None)
FULL_SIZES = {"arc_challenge": 1172, "hellaswag": 10042, "mmlu": 14042, "truthfulqa_mc2": 817,
              "winogrande": 1267, "gsm8k": 1319}


def population(rng: random.Random, size: int, accuracy: float, c2i: float, i2c: float):
    """Per-document 0/1 answers of a baseline and a candidate that flips with the given rates."""
    b = [1.0 if rng.random() < accuracy else 0.0 for _ in range(size)]
    c = [(0.0 if rng.random() < c2i else 1.0) if x else (1.0 if rng.random() < i2c else 0.0) for x in b]
    return b, c


def suite(rng, sizes, c2i, i2c, strata_of_mmlu=4):
    """task → list of (stratum name, baseline answers, candidate answers) over the full population."""
    out = {}
    for task, size in sizes.items():
        parts = strata_of_mmlu if task == "mmlu" else 1
        cuts = [size * k // parts for k in range(parts + 1)]
        out[task] = []
        for k in range(parts):
            b, c = population(rng, cuts[k + 1] - cuts[k], rng.uniform(0.4, 0.85), c2i, i2c)
            out[task].append((f"s{k}", b, c))
    return out


def sample_at(full, fraction, seed=7):
    samples = []
    for task, strata in full.items():
        parts = []
        for name, b, c in strata:
            order = document_order(seed, task, name, len(b))[:stage_count(fraction, len(b))]
            parts.append(Stratum.of(len(b), [b[i] for i in order], [c[i] for i in order]))
        samples.append(TaskSample(task, parts))
    return samples


def full_decide(full, rule):
    tasks, drops, bases = [], [], []
    for task, strata in full.items():
        b = sum(sum(s[1]) for s in strata) / sum(len(s[1]) for s in strata)
        c = sum(sum(s[2]) for s in strata) / sum(len(s[2]) for s in strata)
        tasks.append(task)
        bases.append(b)
        drops.append((b - c) / b * 100 if rule.drop_mode == "relative" else (b - c) * 100)
    return decide(tasks, drops, bases, rule).verdict


@st.composite
def rules(draw, tasks):
    ship = draw(st.floats(0.2, 3))
    monitor = ship + draw(st.floats(0, 3))
    ab = monitor + draw(st.floats(0, 3))
    limits = {t: Limit(draw(st.floats(0.5, 10)), "task limit") for t in draw(st.sets(st.sampled_from(tasks)))}
    return Rule(thresholds=Thresholds(ship=ship, monitor=monitor, ab_test=ab),
                aggregate=draw(st.sampled_from(["relativeDropOfMean", "meanOfRelativeDrops"])),
                drop_mode=draw(st.sampled_from(["relative", "absolute"])), task_limits=limits,
                average_limit=draw(st.one_of(st.none(), st.builds(Limit, st.floats(0.5, 10), st.just("profile")))))


SMALL = {"arc_challenge": 300, "gsm8k": 250, "mmlu": 800}
flip_rates = st.tuples(st.floats(0, 0.3), st.floats(0, 0.15))


@examples
@given(rules(list(SMALL)), flip_rates, st.integers(0, 10**6), st.sampled_from(DEFAULT_STAGES[:-1]),
       st.floats(0.5, 0.99))
def test_never_stops_while_the_intervals_span_two_verdicts(rule, rates, seed, fraction, confidence):
    rng = random.Random(seed)
    full = suite(rng, SMALL, *rates)
    lk = look(sample_at(full, fraction), rule, stage=1, stages=4, confidence=confidence)
    assert lk.possible[0].rank <= lk.possible[1].rank
    if not lk.stop:
        assert lk.possible[0] != lk.possible[1] and lk.verdict is None
        return
    # every point within the intervals gives the same verdict (the rule is monotone; probe it anyway)
    by_task = {e.task: e.ci for e in lk.tasks}
    for _ in range(50):
        avg = rng.uniform(*lk.average_ci)
        drops = {t: rng.uniform(*by_task[t]) for t in rule.task_limits}
        assert verdict_of(avg, drops, rule) == lk.verdict
    for avg_end in lk.average_ci:
        for pick in (0, 1):
            assert verdict_of(avg_end, {t: by_task[t][pick] for t in rule.task_limits}, rule) == lk.verdict


@examples
@given(rules(list(SMALL)), flip_rates, st.integers(0, 10**6), st.floats(0.5, 0.99))
def test_at_100_percent_the_verdict_is_the_ordinary_one(rule, rates, seed, confidence):
    full = suite(random.Random(seed), SMALL, *rates)
    lk = look(sample_at(full, 1.0), rule, stage=4, stages=4, confidence=confidence)
    assert lk.stop and lk.verdict == full_decide(full, rule)
    assert lk.average_ci[0] == lk.average_ci[1] == lk.average_drop
    for e in lk.tasks:
        assert e.ci[0] == pytest.approx(e.drop) and e.ci[1] == pytest.approx(e.drop)
        assert e.n == e.population


@examples
@given(rules(list(SMALL)), flip_rates, st.integers(0, 10**6), st.sampled_from(DEFAULT_STAGES[:-1]),
       st.floats(0.5, 0.98), st.floats(0.001, 0.019))
def test_monotone_in_confidence(rule, rates, seed, fraction, confidence, more):
    """Asking for more confidence widens every interval: it never stops where less would not,
    and what it stops with is what the lower confidence stops with."""
    samples = sample_at(suite(random.Random(seed), SMALL, *rates), fraction)
    low = look(samples, rule, stage=1, stages=4, confidence=confidence)
    high = look(samples, rule, stage=1, stages=4, confidence=confidence + more)
    assert high.average_ci[0] <= low.average_ci[0] and high.average_ci[1] >= low.average_ci[1]
    assert high.possible[0].rank <= low.possible[0].rank and high.possible[1].rank >= low.possible[1].rank
    if high.stop:
        assert low.stop and low.verdict == high.verdict


@examples
@given(rules(list(SMALL)), st.integers(0, 10**6), st.sampled_from(DEFAULT_STAGES[:-1]))
def test_monotone_in_the_candidate(rule, seed, fraction):
    """A candidate that is worse on every document than another never gets a better range of
    possible verdicts when the two differ only by a constant shift of every answer."""
    full = suite(random.Random(seed), SMALL, 0.05, 0.02)
    worse = {t: [(n, b, [max(0.0, x - 0.02) for x in c]) for n, b, c in strata] for t, strata in full.items()}
    a = look(sample_at(full, fraction), rule, stage=1, stages=4)
    w = look(sample_at(worse, fraction), rule, stage=1, stages=4)
    assert w.average_drop >= a.average_drop
    assert w.possible[1].rank >= a.possible[1].rank


@pytest.mark.parametrize("profile_limits", [{}, {"gsm8k": Limit(2.0, "limit of profile math-tutoring")}])
def test_identical_models_stop_at_the_first_stage_with_ship(profile_limits):
    rng = random.Random(1)
    full = {t: [(s, b, list(b)) for s, b, _ in strata] for t, strata in suite(rng, FULL_SIZES, 0, 0).items()}
    rule = Rule(thresholds=Thresholds(), aggregate="relativeDropOfMean", drop_mode="relative",
                task_limits=profile_limits)
    lk = look(sample_at(full, DEFAULT_STAGES[0]), rule, stage=1, stages=len(DEFAULT_STAGES))
    assert lk.stop and lk.verdict == Verdict.SHIP and lk.stage == 1
    assert lk.items_evaluated < 0.11 * lk.items_total
    assert "stopped early" in lk.reason


def test_clear_block_stops_early_and_a_boundary_pair_does_not():
    rng = random.Random(2)
    rule = Rule(thresholds=Thresholds(), aggregate="relativeDropOfMean", drop_mode="relative")
    broken = suite(rng, FULL_SIZES, 0.2, 0.02)  # about 15-20% worse
    stops = [look(sample_at(broken, f), rule, stage=i + 1, stages=4) for i, f in enumerate(DEFAULT_STAGES)]
    assert stops[0].stop and stops[0].verdict == Verdict.BLOCK
    # a pair whose full-suite average drop lies within a hair of the 1% Ship/Monitor edge
    edge = None
    for seed in range(200):
        cand = suite(random.Random(seed), FULL_SIZES, 0.02, 0.0133)
        final = look(sample_at(cand, 1.0), rule, stage=4, stages=4)
        if abs(final.average_drop - 1.0) < 0.05:
            edge = cand
            break
    assert edge is not None
    for i, f in enumerate(DEFAULT_STAGES[:-1]):
        assert not look(sample_at(edge, f), rule, stage=i + 1, stages=4).stop


def test_document_order_is_seeded_and_stages_append():
    a = document_order(3, "mmlu", "mmlu_astronomy", 152)
    assert a == document_order(3, "mmlu", "mmlu_astronomy", 152) and sorted(a) == list(range(152))
    assert a != document_order(4, "mmlu", "mmlu_astronomy", 152)
    counts = [stage_count(f, 152) for f in DEFAULT_STAGES]
    assert counts == sorted(counts) and counts[-1] == 152 and counts[0] == 16
    assert stage_count(0.1, 5) == 2 and stage_count(0.1, 1) == 1


def test_a_stage_splits_its_documents_equally_between_the_tasks():
    shares = task_fractions(0.1, FULL_SIZES)
    docs = {t: shares[t] * n for t, n in FULL_SIZES.items()}
    assert sum(docs.values()) == pytest.approx(0.1 * sum(FULL_SIZES.values()))  # the stage's budget, no more
    assert len({round(d, 6) for d in docs.values()}) == 1  # every task below its size gets the same share
    full = task_fractions(0.25, FULL_SIZES)
    assert full["truthfulqa_mc2"] == full["arc_challenge"] == full["winogrande"] == 1.0  # small tasks run in full
    assert full["mmlu"] < 0.1 and full["hellaswag"] < 0.15  # their leftover goes to the large ones
    assert task_fractions(1, FULL_SIZES) == {t: 1.0 for t in FULL_SIZES}
    even = task_fractions(0.3, {"a": 200, "b": 200})
    assert even == {"a": pytest.approx(0.3), "b": pytest.approx(0.3)}  # equal sizes: the plain fraction


@examples
@given(st.dictionaries(st.sampled_from("abcdefgh"), st.integers(1, 20000), min_size=1),
       st.lists(st.floats(0.01, 1.0), min_size=2, max_size=5, unique=True))
def test_task_shares_only_grow_and_end_in_full(sizes, fractions):
    looks = [task_fractions(f, sizes) for f in sorted(fractions) + [1.0]]
    for earlier, later in zip(looks, looks[1:]):
        assert all(later[t] >= earlier[t] - 1e-12 for t in sizes)  # stages append, never shrink
        assert all(0 < later[t] <= 1 for t in sizes)
    assert looks[-1] == {t: 1.0 for t in sizes}


def test_stages_are_checked():
    assert check_stages([0.1, 0.5, 1]) == (0.1, 0.5, 1.0)
    for bad in ([], [0.5], [0.5, 0.25, 1], [0, 1], [0.5, 1.5], [0.5, 0.5, 1]):
        with pytest.raises(ValueError):
            check_stages(bad)
