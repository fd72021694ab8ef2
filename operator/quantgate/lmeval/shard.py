"""Split one run plan into N shards of balanced expected cost (`quantgate run --shard i/N`).

The plan is the list of leaf tasks (a group such as MMLU counts as its subtasks) in the
order lm-eval runs them, each with the documents the unsharded run evaluates (all of
them, or the first `limit`). A document's expected cost is the number of requests it
sends: its number of choices for a multiple-choice task, one for a generation task.

`split(units, count)` first tries whole tasks (largest first, each onto the least loaded
shard); when that leaves a shard more than `tolerance` above the mean, it cuts the plan,
laid out in task order, into `count` contiguous pieces of equal cost instead: every shard
then holds whole tasks plus at most two item ranges of tasks that are cut. The split is
a pure function of the plan, so every shard computes the same one on its own.

`restrict(objs, samples, shard)` applies a shard to lm-eval's loaded task objects: it
drops the leaves of other shards (also out of groups), selects the shard's documents by
index (lm-eval's `samples=`), and makes each cut task draw the same few-shot examples
for its documents as the unsharded run does (lm-eval draws them from one random
generator per task, document after document, so the shard replays the draws of the
documents before its range: `full_run_fewshot`, which progressive stages use too). The
manifest's `shard` entry records what the merge needs.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass

from quantgate.errors import InputError

TOLERANCE = 0.05
_SHARD_RE = re.compile(r"^(?P<index>\d+)/(?P<count>\d+)$")


@dataclass(frozen=True)
class Shard:
    """Shard `index` (0-based, like a Job's completion index) of `count`."""

    index: int
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def parse_shard(text: str) -> Shard:
    m = _SHARD_RE.match(text.strip())
    if not m:
        raise InputError(f"--shard {text!r}: expected INDEX/COUNT with 0 <= INDEX < COUNT, e.g. 0/4")
    index, count = int(m["index"]), int(m["count"])
    if count < 1 or index >= count:
        raise InputError(f"--shard {text!r}: INDEX must be 0..COUNT-1 and COUNT at least 1, e.g. 0/4")
    return Shard(index, count)


@dataclass(frozen=True)
class Unit:
    """One leaf task of the plan: the documents it evaluates (doc ids 0..len-1) and their costs."""

    task: str
    costs: tuple[float, ...]

    @property
    def cost(self) -> float:
        return sum(self.costs)


Piece = tuple[int, int]  # [start, stop) document ids of one task


def split(units: list[Unit], count: int, tolerance: float = TOLERANCE) -> list[dict[str, Piece]]:
    """The shards of a plan: for each, task → [start, stop) of the documents it evaluates.

    Raises InputError when there are fewer documents than shards (a shard would be empty).
    """
    docs = sum(len(u.costs) for u in units)
    if count < 1:
        raise InputError("the number of shards must be at least 1")
    if docs < count:
        raise InputError(f"{count} shards for {docs} documents: lower the parallelism to at most {docs}")
    if count == 1:
        return [{u.task: (0, len(u.costs)) for u in units if u.costs}]
    whole = _whole_tasks(units, count)
    mean = sum(u.cost for u in units) / count
    if whole is not None and max(load for load, _ in whole) <= mean * (1 + tolerance):
        return [{u.task: (0, len(u.costs)) for u in units if u.task in tasks} for _, tasks in whole]
    return _contiguous(units, count)


def _whole_tasks(units: list[Unit], count: int) -> list[tuple[float, set[str]]] | None:
    if sum(1 for u in units if u.costs) < count:
        return None
    shards: list[tuple[float, set[str]]] = [(0.0, set()) for _ in range(count)]
    for u in sorted((u for u in units if u.costs), key=lambda u: -u.cost):  # stable: plan order on ties
        i = min(range(count), key=lambda k: shards[k][0])
        shards[i] = (shards[i][0] + u.cost, shards[i][1] | {u.task})
    return shards


def _contiguous(units: list[Unit], count: int) -> list[dict[str, Piece]]:
    """Cut the plan (tasks in order, documents in order) at the document boundaries
    nearest to k * total / count; every shard gets at least one document."""
    flat = [(u.task, d, c) for u in units for d, c in enumerate(u.costs)]
    total = sum(c for _, _, c in flat)
    bounds, acc, pos = [0], 0.0, 0
    cumulative = []
    for _, _, c in flat:
        acc += c
        cumulative.append(acc)
    for k in range(1, count):
        target = total * k / count
        while pos < len(flat) and cumulative[pos] < target:
            pos += 1
        # boundary after document `pos` or before it, whichever is nearer the target
        before = cumulative[pos - 1] if pos > 0 else 0.0
        cut = pos + 1 if pos < len(flat) and cumulative[pos] - target < target - before else pos
        cut = max(cut, bounds[-1] + 1)  # never an empty shard
        cut = min(cut, len(flat) - (count - k))  # leave a document for each shard after this one
        bounds.append(cut)
    bounds.append(len(flat))
    shards = []
    for lo, hi in zip(bounds, bounds[1:]):
        pieces: dict[str, Piece] = {}
        for task, d, _ in flat[lo:hi]:
            start, _stop = pieces.get(task, (d, d))
            pieces[task] = (start, d + 1)
        shards.append(pieces)
    return shards


def plan_digest(units: list[Unit]) -> str:
    """Identifies the plan (tasks, document counts, costs): shards of one run share it."""
    text = json.dumps([[u.task, list(u.costs)] for u in units], separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# ------------------------------------------------------------------ lm-eval objects
def _is_group(obj) -> bool:
    from lm_eval.api.group import Group

    return isinstance(obj, Group)


def _leaves(objs) -> list:
    out = []
    for obj in objs:
        out.extend(obj.get_all_tasks() if _is_group(obj) else [obj])
    return out


def _groups(objs) -> list:
    out = []
    for obj in objs:
        if _is_group(obj):
            out.append(obj)
            out.extend(obj.get_all_groups(recursive=True))
    return out


def doc_cost(task, doc) -> float:
    """Requests one document sends: one per choice (multiple choice), else one."""
    if getattr(task, "OUTPUT_TYPE", None) == "multiple_choice":
        try:
            return float(max(1, len(task.doc_to_choice(doc))))
        except (TypeError, KeyError, IndexError, ValueError):
            return 1.0
    return 1.0


def plan_units(objs, samples: dict[str, list[int]] | None) -> list[Unit]:
    """The plan of loaded lm-eval objects: leaf tasks in run order with their documents' costs."""
    units = []
    for leaf in _leaves(objs):
        docs = leaf.eval_docs
        ids = samples.get(leaf.task_name) if samples else None
        n = len(ids) if ids is not None else len(docs)
        units.append(Unit(task=leaf.task_name, costs=tuple(doc_cost(leaf, docs[i]) for i in range(n))))
    return units


def group_recipes(objs) -> dict[str, dict]:
    """What the merge needs of each group: its children (in order), alias and aggregation."""
    from dataclasses import asdict

    recipes = {}
    for group in _groups(objs):
        recipes[group.name] = {
            "children": list(group.child_names),
            "alias": group.alias or group.name,
            "aggregate": [asdict(a) for a in group.aggregate_metric_list or []],
        }
    return recipes


def full_run_fewshot(task, ids: list[int]) -> None:
    """Make `task`, run on the document ids `ids` (lm-eval's `samples=`), draw for each of them the
    few-shot examples the run of every document draws: before building a selected document's
    prompt, build (and discard) the prompts of the documents left out since the previous one.
    A shard's range replays the documents before it; a progressive stage's selection, its gaps.
    Calling it again on the same task narrows the selection (a shard of a stage's documents)."""
    task._quantgate_fewshot_ids = sorted(ids)
    if getattr(task, "_quantgate_fewshot_replay", False):
        return
    task._quantgate_fewshot_replay = True
    original = task.build_all_requests

    def build_all_requests(**kwargs):
        ids = task._quantgate_fewshot_ids
        shots = 0 if task.config.num_fewshot is None else task.config.num_fewshot
        if shots <= 0 or ids == list(range(len(ids))):  # nothing to replay: a prefix draws like the full run
            return original(**kwargs)
        docs = task.eval_docs
        own = task.__dict__.get("fewshot_context")
        context = task.fewshot_context
        state = {"calls": 0, "next": 0}

        def fewshot_context(doc, **kw):
            if state["calls"] >= len(ids):
                raise InputError(f"task {task.task_name}: lm-eval built more prompts than the run selects; "
                                 "its few-shot examples cannot be replayed")
            target = ids[state["calls"]]
            for i in range(state["next"], target):
                skipped = docs[i]
                context(skipped, **{**kw, "gen_prefix": task.doc_to_prefix(skipped)})
            state["calls"], state["next"] = state["calls"] + 1, target + 1
            return context(doc, **kw)

        task.fewshot_context = fewshot_context
        try:
            out = original(**kwargs)
        finally:
            if own is None:
                del task.fewshot_context
            else:
                task.fewshot_context = own
        if state["calls"] != len(ids):
            raise InputError(f"task {task.task_name}: lm-eval built {state['calls']} prompts for the run's "
                             f"{len(ids)} documents; its few-shot examples cannot be replayed")
        return out

    task.build_all_requests = build_all_requests


class Ids(list):
    """Document ids for lm-eval's `samples=`, which tests `i in samples` for every document:
    a set answers that in constant time on full-size tasks."""

    def __init__(self, ids):
        super().__init__(ids)
        self._set = frozenset(ids)

    def __contains__(self, item) -> bool:
        return item in self._set


def _prune(group, keep: set[str]) -> None:
    for child in list(group):
        if _is_group(child):
            _prune(child, keep)
            if not child.get_all_tasks():
                group.pop(child.name)
        elif child.task_name not in keep:
            group.pop(child.task_name)


def restrict(objs, samples: dict[str, list[int]] | None, shard: Shard):
    """Apply `shard` to loaded lm-eval objects; return (objs, samples, manifest entry)."""
    if shard.count > 1:
        from quantgate.lmeval.merge import unmergeable

        for leaf in _leaves(objs):
            why = unmergeable(leaf)
            if why:
                raise InputError(f"task {leaf.task_name} cannot be sharded ({why}); run it without --shard")
    units = plan_units(objs, samples)
    recipes = group_recipes(objs)
    pieces = split(units, shard.count)[shard.index]
    info = {
        "index": shard.index, "count": shard.count, "plan": plan_digest(units),
        "tasks": {u.task: len(u.costs) for u in units},
        "pieces": {task: list(piece) for task, piece in pieces.items()},
        "groups": recipes,
        "cost": sum(sum(u.costs[slice(*pieces[u.task])]) for u in units if u.task in pieces),
        "totalCost": sum(u.cost for u in units),
    }
    keep = set(pieces)
    selected: dict[str, list[int]] = {}
    for leaf in _leaves(objs):
        if leaf.task_name not in keep:
            continue
        ids = samples.get(leaf.task_name) if samples else None
        ids = ids if ids is not None else list(range(len(leaf.eval_docs)))
        start, stop = pieces[leaf.task_name]
        selected[leaf.task_name] = Ids(ids[start:stop])
        full_run_fewshot(leaf, ids[start:stop])
    return keep_leaves(objs, keep), selected, info


def keep_leaves(objs, keep: set[str]) -> list:
    """The loaded objects with only the leaves named in `keep` (groups pruned, empty ones dropped)."""
    kept = []
    for obj in objs:
        if _is_group(obj):
            _prune(obj, keep)
            if obj.get_all_tasks():
                kept.append(obj)
        elif obj.task_name in keep:
            kept.append(obj)
    return kept
