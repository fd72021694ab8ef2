"""Write the `local-full` suite's datasets: our own items at the official sizes.

`write_full_data(target)` writes, in the same schemas as the committed `local`
data (quantgate/lmeval/tasks/data, written by _generate_data), the evaluated
split of every leaderboard task at its official size (quantgate/lmeval/full_sizes.py:
MMLU 14,042 in 57 subjects, HellaSwag 10,042, ARC-Challenge 1,172, Winogrande
1,267, GSM8K 1,319, TruthfulQA-mc2 817) plus the few-shot split each official
task config draws from (MMLU dev: 5 per subject, as the official one; train
splits of FEWSHOT_ITEMS items). Items come from _generate_data's templates,
widened here where the official size needs more distinct items than a template
gives (time-of-day openings for HellaSwag, more science and truthfulness
questions, a numeric-reasoning family per MMLU subject). Nothing is copied from
any benchmark.

Deterministic: one seeded random.Random, no set iteration, sorted JSON keys, so
every call writes the same bytes (tests/unit/test_full_suite.py). Within a task,
every evaluated item's prompt is distinct (the simulator recognises an item by
its prompt), and none repeats a `local` item. Takes about a second.
"""

from __future__ import annotations

import random
from pathlib import Path

from quantgate.lmeval.full_sizes import MMLU_SUBJECT_SIZES, TASK_SIZES
from quantgate.lmeval.tasks import _generate_data as base

SEED = 20251202
FEWSHOT_ITEMS = 100  # train split of gsm8k, arc_challenge, hellaswag, winogrande (25 shots at most)
MMLU_DEV_ITEMS = 5

# ---------------------------------------------------------------- helpers


def _distinct(make, count: int, key, seen: set[str]) -> list[dict]:
    """`count` items whose key is not in `seen` (adds their keys): the local suite's generator,
    with more tries (the full sizes exhaust some templates)."""
    return base._unique(make, count, key, seen, tries=400)


def _local_keys(local_dir: Path, task: str, key) -> set[str]:
    """Keys of the committed `local` items of a task (so that local-full repeats none)."""
    import json

    keys: set[str] = set()
    for f in sorted((local_dir / task).rglob("*.jsonl")):
        keys.update(key(json.loads(line)) for line in f.open())
    return keys


# ---------------------------------------------------------------- arc_challenge
MATERIALS = {"water": 1000, "ice": 917, "aluminum": 2700, "iron": 7870, "oak wood": 750, "glass": 2500,
             "copper": 8960, "olive oil": 910}


def arc_full_item(rng: random.Random) -> dict:
    """_generate_data.arc_item or one of three wider physics families."""
    kind = rng.randrange(5)
    if kind < 2:
        return base.arc_item(rng)
    who = rng.choice(base.SETTINGS)
    if kind == 2:
        mass, accel = rng.randint(2, 40), rng.randint(2, 12)
        q = f"{who} pushes a {mass} kilogram cart so that it speeds up by {accel} meters per second every second. " \
            "What net force acts on the cart?"
        n, unit = mass * accel, " newtons"
    elif kind == 3:
        volts, amps = rng.randint(2, 30) * 2, rng.randint(1, 12)
        q = f"{who} connects a {volts} volt battery to a lamp and measures a current of {amps} amperes. " \
            "How much power does the lamp use?"
        n, unit = volts * amps, " watts"
    else:
        material, density = rng.choice(sorted(MATERIALS.items()))  # grams per liter
        liters = rng.randint(2, 60)
        q = f"{who} measures {liters} liters of {material}. What is the mass of the {material} in grams?"
        n, unit = density * liters, " grams"
    options, gold = base._shuffled_choices(rng, f"{n}{unit}", base._near_numbers(rng, n, unit))
    return {"id": "", "question": q, "choices": {"text": options, "label": list(base.LETTERS)},
            "answerKey": base.LETTERS[gold]}


# ---------------------------------------------------------------- hellaswag
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
PARTS = ["morning", "afternoon", "evening"]
WEATHER = ["sunny", "rainy", "cloudy", "windy", "quiet", "busy"]


def hellaswag_full_item(rng: random.Random) -> dict:
    """_generate_data.hellaswag_item with a time-of-day opening (10,000+ distinct contexts)."""
    item = base.hellaswag_item(rng)
    opening = f"On a {rng.choice(WEATHER)} {rng.choice(DAYS)} {rng.choice(PARTS)}, "
    ctx_a = item["ctx_a"]
    item["ctx_a"] = opening + ctx_a[0].lower() + ctx_a[1:]
    item["source_id"] = "quantgate-local-full"
    return item


# ---------------------------------------------------------------- truthfulqa_mc2
def truthfulqa_full_items(rng: random.Random, count: int, seen: set[str]) -> list[dict]:
    """_generate_data.truthfulqa_items, then arithmetic questions in three forms up to `count`."""
    items = [i for i in base.truthfulqa_items(rng) if i["question"] not in seen]
    seen.update(i["question"] for i in items)

    def make() -> dict:
        a, b = rng.randint(11, 199), rng.randint(2, 19)
        form = rng.randrange(3)
        if form == 0:
            q, n = f"What is {a} times {b}?", a * b
            return base._mc(q, [f"{a} times {b} is {n}.", f"It is {n}."],
                            [f"{a} times {b} is {n + d}." for d in (-10, 1, 10)], rng)
        if form == 1:
            q, n = f"What do you get when you add {a} and {b * 7}?", a + b * 7
            return base._mc(q, [f"You get {n}.", f"The sum is {n}."], [f"You get {n + d}." for d in (-2, 3, 10)], rng)
        q, n = f"Is {a} times {b} equal to {a * b + 1}?", a * b
        return base._mc(q, [f"No, {a} times {b} is {n}.", "No, that is not right."],
                        [f"Yes, {a} times {b} is {n + 1}.", "Yes, that is right."], rng)

    return items[:count] + _distinct(make, max(0, count - len(items)), lambda i: i["question"], seen)


# ---------------------------------------------------------------- mmlu
NOUNS = ["reports", "samples", "forms", "cases", "charts", "records", "files", "lessons", "surveys", "notes"]
CONTEXTS = ["In a {t} course", "For a {t} exercise", "During a {t} seminar", "In a {t} study group"]


def mmlu_numeric_item(subject: str, rng: random.Random) -> dict:
    """A numeric-reasoning question set in the subject (its name is in the question)."""
    ctx = rng.choice(CONTEXTS).format(t=subject.replace("_", " "))
    name, noun = rng.choice(base.NAMES), rng.choice(NOUNS)
    kind = rng.randrange(4)
    if kind == 0:
        a, b = rng.randint(3, 60), rng.randint(2, 25)
        q, n = f"{ctx}, {name} reviews {a} {noun} a day for {b} days. How many {noun} is that?", a * b
    elif kind == 1:
        people, pct = rng.randint(1, 80) * 20, rng.randint(1, 19) * 5
        q, n = f"{ctx}, a poll of {people} people finds that {pct}% agree. How many people agree?", people * pct // 100
    elif kind == 2:
        start, step = rng.randint(1, 90), rng.randint(2, 15)
        seq = ", ".join(str(start + i * step) for i in range(4))
        q, n = f"{ctx}, {name} lists the numbers {seq}. Which number comes next?", start + 4 * step
    else:
        total, groups = rng.randint(2, 40), rng.randint(2, 12)
        q = f"{ctx}, {name} shares {total * groups} {noun} equally among {groups} teams. How many does each team get?"
        n = total
    return base._mmlu(q, str(n), base._near_numbers(rng, n), rng)


def mmlu_full_item(subject: str, rng: random.Random) -> dict:
    """The `local` subject template (for the eight local subjects, half the time) or the numeric family."""
    item = None
    if subject in base.MMLU_SUBJECTS and rng.random() < 0.5:
        try:
            item = base.mmlu_subject_items(subject, rng)
        except ValueError:  # a draw without three distinct wrong answers (e.g. 12 - 12): use the family
            item = None
    if item is None:
        item = mmlu_numeric_item(subject, rng)
    item["subject"] = subject
    return item


# ---------------------------------------------------------------- write
def _mmlu_key(item: dict) -> str:
    return item["question"] + "|" + "|".join(item["choices"])


def write_full_data(target: Path, local_dir: Path = base.DATA) -> None:
    """Write every local-full dataset under `target` (same layout as the local data)."""
    rng = random.Random(SEED)
    q = lambda i: i["question"]  # noqa: E731

    seen = _local_keys(local_dir, "gsm8k", q)
    gsm = _distinct(lambda: base.gsm8k_item(rng), TASK_SIZES["gsm8k"] + FEWSHOT_ITEMS, q, seen)
    base._write(target / "gsm8k" / "test.jsonl", gsm[:TASK_SIZES["gsm8k"]])
    base._write(target / "gsm8k" / "train.jsonl", gsm[TASK_SIZES["gsm8k"]:])

    seen = _local_keys(local_dir, "arc_challenge", q)
    arc = _distinct(lambda: arc_full_item(rng), TASK_SIZES["arc_challenge"] + FEWSHOT_ITEMS, q, seen)
    for n, item in enumerate(arc):
        item["id"] = f"quantgate-full-arc-{n}"
    base._write(target / "arc_challenge" / "test.jsonl", arc[:TASK_SIZES["arc_challenge"]])
    base._write(target / "arc_challenge" / "train.jsonl", arc[TASK_SIZES["arc_challenge"]:])

    hs_key = lambda i: i["activity_label"] + i["ctx_a"] + i["ctx_b"]  # noqa: E731
    seen = _local_keys(local_dir, "hellaswag", hs_key)
    hs = _distinct(lambda: hellaswag_full_item(rng), TASK_SIZES["hellaswag"] + FEWSHOT_ITEMS, hs_key, seen)
    for n, item in enumerate(hs):
        item["ind"] = n
    base._write(target / "hellaswag" / "validation.jsonl", hs[:TASK_SIZES["hellaswag"]])
    base._write(target / "hellaswag" / "train.jsonl", hs[TASK_SIZES["hellaswag"]:])

    seen = _local_keys(local_dir, "winogrande", lambda i: i["sentence"])
    wg = _distinct(lambda: base.winogrande_item(rng), TASK_SIZES["winogrande"] + FEWSHOT_ITEMS,
                   lambda i: i["sentence"], seen)
    base._write(target / "winogrande" / "validation.jsonl", wg[:TASK_SIZES["winogrande"]])
    base._write(target / "winogrande" / "train.jsonl", wg[TASK_SIZES["winogrande"]:])

    seen = _local_keys(local_dir, "truthfulqa_mc2", q)
    base._write(target / "truthfulqa_mc2" / "validation.jsonl",
                truthfulqa_full_items(rng, TASK_SIZES["truthfulqa_mc2"], seen))

    seen = _local_keys(local_dir, "mmlu", _mmlu_key)  # one set: no prompt repeats across subjects
    for subject, size in MMLU_SUBJECT_SIZES.items():
        items = _distinct(lambda: mmlu_full_item(subject, rng), size + MMLU_DEV_ITEMS, _mmlu_key, seen)
        base._write(target / "mmlu" / subject / "test.jsonl", items[:size])
        base._write(target / "mmlu" / subject / "dev.jsonl", items[size:])
