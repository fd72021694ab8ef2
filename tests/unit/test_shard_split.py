"""The pure split of a run plan into shards (quantgate.lmeval.shard)."""

import pytest

from quantgate.errors import InputError
from quantgate.lmeval.shard import Unit, parse_shard, plan_digest, split


def _units(**sizes):
    """Each task: (documents, requests per document)."""
    return [Unit(task=t, costs=(float(c),) * n) for t, (n, c) in sizes.items()]


def _covered(shards, units):
    """Every document of every task in exactly one shard."""
    for u in units:
        seen = []
        for s in shards:
            if u.task in s:
                seen.extend(range(*s[u.task]))
        assert sorted(seen) == list(range(len(u.costs))), u.task


def _loads(shards, units):
    by = {u.task: u for u in units}
    return [sum(sum(by[t].costs[a:b]) for t, (a, b) in s.items()) for s in shards]


def test_whole_tasks_when_they_balance():
    units = _units(a=(100, 4), b=(100, 4), c=(100, 4), d=(100, 4), e=(50, 2), f=(50, 2), g=(50, 2), h=(50, 2))
    shards = split(units, 4)
    _covered(shards, units)
    assert all(piece == (0, len(next(u for u in units if u.task == t).costs)) for s in shards for t, piece in s.items())
    assert _loads(shards, units) == [500.0] * 4


def test_large_tasks_are_cut_into_item_ranges():
    # the local suite's shape: one task costs more than a quarter of the plan
    units = _units(arc_challenge=(200, 4), hellaswag=(200, 4), mmlu_a=(25, 4), truthfulqa_mc2=(150, 8),
                   winogrande=(200, 2), gsm8k=(250, 1))
    shards = split(units, 4)
    _covered(shards, units)
    loads = _loads(shards, units)
    total = sum(u.cost for u in units)
    assert max(loads) - min(loads) <= 2 * 8  # within two documents of the most expensive kind
    assert sum(loads) == total
    cut = [t for s in shards for t, (a, b) in s.items() if (a, b) != (0, len(next(u for u in units if u.task == t).costs))]
    assert cut and len(cut) <= 2 * (4 - 1)  # at most two partial ranges per boundary


@pytest.mark.parametrize("count", [1, 2, 3, 4, 7, 16])
def test_every_count_covers_the_plan_once(count):
    units = _units(a=(13, 3), b=(1, 5), c=(40, 1), d=(7, 2))
    shards = split(units, count)
    assert len(shards) == count and all(shards)
    _covered(shards, units)


def test_split_is_deterministic_and_the_digest_names_the_plan():
    units = _units(a=(30, 4), b=(9, 1))
    assert split(units, 3) == split(list(units), 3)
    assert plan_digest(units) == plan_digest(_units(a=(30, 4), b=(9, 1)))
    assert plan_digest(units) != plan_digest(_units(a=(31, 4), b=(9, 1)))


def test_more_shards_than_documents_is_an_input_error():
    with pytest.raises(InputError, match="lower the parallelism to at most 3"):
        split(_units(a=(3, 1)), 4)


@pytest.mark.parametrize("text", ["4/4", "-1/4", "1", "a/b", "0/0", "1/4/2"])
def test_bad_shard_arguments(text):
    with pytest.raises(InputError, match="INDEX"):
        parse_shard(text)


def test_shard_argument():
    s = parse_shard("2/5")
    assert (s.index, s.count, str(s)) == (2, 5, "2/5")


def test_a_task_whose_aggregation_the_merge_cannot_reproduce_is_refused_before_running():
    from types import SimpleNamespace

    from lm_eval.api.metrics import mean

    from quantgate.lmeval.merge import unmergeable

    config = {"metric_list": [{"metric": "acc", "aggregation": "mean", "higher_is_better": True}]}
    plain = SimpleNamespace(dump_config=lambda: config, aggregation=lambda: {"acc": mean})
    assert unmergeable(plain) is None

    def irt_estimate(items):  # e.g. tinyBenchmarks' estimator: needs every item at once
        return 0.0

    custom = SimpleNamespace(dump_config=lambda: config, aggregation=lambda: {"acc": irt_estimate})
    assert "irt_estimate" in unmergeable(custom)
