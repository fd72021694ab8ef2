"""Write the `local` suite's datasets (our own items, generated from templates).

Run `python -m quantgate.lmeval.tasks._generate_data` to regenerate
operator/quantgate/lmeval/tasks/data/. Every item is written here from simple
templates (arithmetic word problems, unit and science facts, name/pronoun
sentences); nothing is copied from any benchmark. Each file follows the schema
of the official dataset the task's lm-eval YAML expects, so lm-eval's own
prompts, filters and metrics run unchanged. Output is deterministic (seeded).

Items never contain a blank line ("\\n\\n"): lm-eval separates few-shot
examples with one, and the simulator finds the item a request is about from the
text after the last blank line.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

DATA = Path(__file__).parent / "data"
SEED = 20240611
LETTERS = "ABCD"

NAMES = ["Ava", "Ben", "Chloe", "Dev", "Elena", "Farid", "Grace", "Hugo", "Ines", "Jonas", "Keiko", "Luis",
         "Maya", "Nils", "Omar", "Priya", "Quinn", "Rosa", "Sami", "Tara", "Umar", "Vera", "Wen", "Yusuf", "Zoe"]
NUMBER_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
                "twelve"]


def _write(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as fh:
        for row in rows:
            fh.write(json.dumps(row, sort_keys=True) + "\n")


def _unique(make, count: int, key, seen: set | None = None, tries: int = 200) -> list[dict]:
    """Call make() until `count` items with distinct keys exist; keys already in `seen` count as
    taken, and the new ones are added to it."""
    seen = set() if seen is None else seen
    out: list[dict] = []
    for _ in range(count * tries):
        item = make()
        k = key(item)
        if k in seen:
            continue
        seen.add(k)
        out.append(item)
        if len(out) == count:
            return out
    raise RuntimeError(f"could not make {count} distinct items")


def _shuffled_choices(rng: random.Random, correct: str, wrong: list[str]) -> tuple[list[str], int]:
    options = [correct] + rng.sample(wrong, 3)
    rng.shuffle(options)
    return options, options.index(correct)


def _near_numbers(rng: random.Random, value: int, unit: str = "") -> list[str]:
    deltas = rng.sample([-3, -2, -1, 1, 2, 3, 4, 5, 10], 3)
    wrong = sorted({max(0, value + d) for d in deltas if value + d != value})
    while len(wrong) < 3:
        wrong.append(value + 20 + len(wrong))
    return [f"{w}{unit}" for w in wrong[:3]]


# ---------------------------------------------------------------- gsm8k
def gsm8k_item(rng: random.Random) -> dict:
    name = rng.choice(NAMES)
    kind = rng.randrange(6)
    if kind == 0:
        a, b, c = rng.randint(5, 60), rng.randint(2, 30), rng.randint(1, 20)
        fruit = rng.choice(["apples", "pears", "plums", "lemons", "peaches"])
        q = f"{name} has {a} {fruit}. {name} buys {b} more and then gives {c} to a neighbour. How many {fruit} does {name} have now?"
        n = a + b - c
        steps = f"After buying, {name} has {a} + {b} = {a + b} {fruit}. After giving some away, {name} has {a + b} - {c} = {n}."
    elif kind == 1:
        boxes, per = rng.randint(2, 12), rng.randint(3, 24)
        q = f"A shop packs {per} pencils into each box. {name} buys {boxes} boxes. How many pencils does {name} get?"
        n = boxes * per
        steps = f"Each box holds {per} pencils, so {boxes} boxes hold {boxes} * {per} = {n}."
    elif kind == 2:
        price, qty, paid = rng.randint(2, 15), rng.randint(2, 8), 0
        paid = price * qty + rng.randint(1, 40)
        q = f"{name} buys {qty} notebooks that cost ${price} each and pays with ${paid}. How much change does {name} get?"
        n = paid - price * qty
        steps = f"The notebooks cost {qty} * {price} = {price * qty} dollars. The change is {paid} - {price * qty} = {n}."
    elif kind == 3:
        per_day, days, extra = rng.randint(2, 25), rng.randint(2, 14), rng.randint(0, 30)
        q = f"{name} reads {per_day} pages every day for {days} days and then reads {extra} pages on the weekend. How many pages does {name} read in total?"
        n = per_day * days + extra
        steps = f"On weekdays {name} reads {per_day} * {days} = {per_day * days} pages. In total {per_day * days} + {extra} = {n}."
    elif kind == 4:
        groups, total_per = rng.randint(2, 9), rng.randint(2, 12)
        total = groups * total_per
        q = f"A teacher shares {total} stickers equally among {groups} tables. How many stickers does each table get?"
        n = total_per
        steps = f"Each table gets {total} / {groups} = {n} stickers."
    else:
        speed, hours, stop = rng.randint(20, 90), rng.randint(2, 6), rng.randint(5, 60)
        q = f"A bus drives at {speed} kilometers per hour for {hours} hours, then drives {stop} more kilometers. How far does it travel?"
        n = speed * hours + stop
        steps = f"In {hours} hours it covers {speed} * {hours} = {speed * hours} km. Adding {stop} km gives {n}."
    return {"question": q, "answer": f"{steps}\n#### {n}"}


# ---------------------------------------------------------------- arc_challenge
UNITS = {"mass": "kilogram", "length": "meter", "time": "second", "temperature": "kelvin",
         "electric current": "ampere", "force": "newton", "energy": "joule", "power": "watt",
         "pressure": "pascal", "frequency": "hertz"}
ANIMALS = {"whale": "mammal", "bat": "mammal", "dolphin": "mammal", "penguin": "bird", "ostrich": "bird",
           "owl": "bird", "lizard": "reptile", "turtle": "reptile", "snake": "reptile", "frog": "amphibian",
           "salamander": "amphibian", "toad": "amphibian", "shark": "fish", "salmon": "fish", "tuna": "fish",
           "beetle": "insect", "ant": "insect", "butterfly": "insect"}
STATES = {"ice": "solid", "steam": "gas", "milk": "liquid", "oxygen": "gas", "sand": "solid", "juice": "liquid",
          "iron": "solid", "helium": "gas", "vinegar": "liquid", "chalk": "solid"}
SETTINGS = ["A student", "A science class", "A group of campers", "A teacher", "A lab team", "A young scientist"]


def arc_item(rng: random.Random) -> dict:
    who = rng.choice(SETTINGS)
    kind = rng.randrange(4)
    if kind == 0:
        dist, t = rng.randint(2, 30), rng.randint(2, 10)
        d = dist * t
        q = f"{who} measures a toy car that travels {d} meters in {t} seconds. What is its average speed?"
        correct = f"{dist} meters per second"
        wrong = [f"{w} meters per second" for w in (d * t, d + t, max(1, dist - 1), dist + 2)]
    elif kind == 1:
        quantity, unit = rng.choice(list(UNITS.items()))
        q = f"{who} needs to record {quantity} in SI units. Which unit should be used?"
        correct = unit
        wrong = [u for u in UNITS.values() if u != unit]
    elif kind == 2:
        animal, group = rng.choice(list(ANIMALS.items()))
        q = f"{who} is sorting animals into groups. To which group does the {animal} belong?"
        correct = group
        wrong = [g for g in {"mammal", "bird", "reptile", "amphibian", "fish", "insect"} if g != group]
        wrong.sort()
    else:
        thing, state = rng.choice(list(STATES.items()))
        temp = rng.choice(["at room temperature", "on a mild spring day", "in a classroom"])
        q = f"{who} observes {thing} {temp}. In which state of matter is it?"
        correct = state
        wrong = [s for s in ("solid", "liquid", "gas", "plasma") if s != state]
    options, gold = _shuffled_choices(rng, correct, wrong if len(wrong) >= 3 else wrong + ["none of these"])
    return {"id": "", "question": q, "choices": {"text": options, "label": list(LETTERS)}, "answerKey": LETTERS[gold]}


# ---------------------------------------------------------------- hellaswag
ACTIVITIES = [
    ("Making tea", "fills a kettle with water and switches it on.", "waits for the water to boil and pours it over a tea bag."),
    ("Washing a car", "sprays the car with a hose and fills a bucket with soapy water.", "scrubs the doors with a sponge and rinses the soap away."),
    ("Planting a tree", "digs a deep hole in the garden with a shovel.", "places the young tree in the hole and packs soil around the roots."),
    ("Painting a fence", "stirs a can of white paint and dips a brush into it.", "spreads the paint along the boards in long even strokes."),
    ("Baking bread", "mixes flour, water and yeast in a large bowl.", "kneads the dough on the counter and leaves it to rise."),
    ("Riding a bike", "straps on a helmet and wheels a bicycle out of the garage.", "pushes off from the curb and pedals down the street."),
    ("Ironing a shirt", "lays a wrinkled shirt flat on an ironing board.", "presses the hot iron slowly across the sleeves."),
    ("Changing a tire", "loosens the nuts on the flat wheel and raises the car with a jack.", "pulls off the flat tire and bolts the spare in its place."),
    ("Walking a dog", "clips a leash to the dog's collar by the front door.", "leads the dog along the path through the park."),
    ("Brushing teeth", "squeezes toothpaste onto a toothbrush at the sink.", "brushes each tooth in small circles and rinses with water."),
    ("Making a sandwich", "lays two slices of bread on a cutting board.", "spreads butter on the bread and adds cheese and lettuce."),
    ("Wrapping a gift", "cuts a sheet of colorful paper to fit a box.", "folds the paper around the box and tapes the edges."),
    ("Cleaning windows", "sprays glass cleaner across a dusty window.", "wipes the glass with a cloth until it shines."),
    ("Building a snowman", "rolls a large ball of snow across the yard.", "stacks a smaller ball on top and adds a carrot nose."),
    ("Mowing a lawn", "checks the fuel and starts the lawn mower.", "pushes the mower back and forth across the grass in rows."),
    ("Tying shoelaces", "sits on a step and pulls the laces of a sneaker tight.", "loops the laces into two bows and pulls the knot firm."),
    ("Swimming laps", "adjusts a pair of goggles at the edge of the pool.", "dives into the water and swims to the far wall."),
    ("Frying an egg", "heats a little oil in a pan on the stove.", "cracks an egg into the pan and waits for the white to set."),
    ("Folding laundry", "empties a basket of clean clothes onto the bed.", "folds each towel into a neat square and stacks them."),
    ("Playing the guitar", "sits down and tunes the strings of a guitar.", "strums a few chords and starts to sing along."),
]
PEOPLE = ["A man", "A woman", "A boy", "A girl", "An old man", "An old woman", "A teenager", "A father",
          "A mother", "A young woman", "A young man", "A neighbor"]
FOLLOW = ["then", "next", "after that", "soon", "carefully", "slowly", "quickly", "finally", "calmly", "eagerly", "happily"]


def hellaswag_item(rng: random.Random) -> dict:
    idx = rng.randrange(len(ACTIVITIES))
    label, start, end = ACTIVITIES[idx]
    person = rng.choice(PEOPLE)
    others = rng.sample([a for i, a in enumerate(ACTIVITIES) if i != idx], 3)
    endings = [end] + [o[2] for o in others]
    rng.shuffle(endings)
    pronoun = "he" if person.split()[-1] in ("man", "boy", "father") else "she"
    return {
        "ind": 0, "activity_label": label, "ctx_a": f"{person} {start}", "ctx_b": f"{pronoun} {rng.choice(FOLLOW)}",
        "endings": endings, "label": str(endings.index(end)), "source_id": "quantgate-local", "split": "",
        "split_type": "indomain",
    }


# ---------------------------------------------------------------- winogrande
# (template, index of the name that resolves "_": 0 = first name, 1 = second)
WINO = [
    ("{a} lent money to {b} because _ had saved plenty that month.", 0),
    ("{a} lent money to {b} because _ was short on rent that month.", 1),
    ("{a} asked {b} for help with the puzzle because _ was stuck.", 0),
    ("{a} asked {b} for help with the puzzle because _ was good at puzzles.", 1),
    ("{a} thanked {b} warmly because _ had received a kind favor.", 0),
    ("{a} thanked {b} warmly because _ had done a kind favor.", 1),
    ("{a} drove {b} to the station since _ owned a car.", 0),
    ("{a} drove {b} to the station since _ had no car.", 1),
    ("{a} beat {b} in the race because _ had trained all winter.", 0),
    ("{a} beat {b} in the race because _ had skipped training all winter.", 1),
    ("{a} taught {b} to cook because _ was an experienced chef.", 0),
    ("{a} taught {b} to cook because _ had never cooked before.", 1),
    ("{a} apologized to {b} because _ had broken the vase.", 0),
    ("{a} apologized to {b} because _ was upset about the broken vase.", 1),
    ("{a} called {b} for directions because _ was lost in the city.", 0),
    ("{a} called {b} for directions because _ knew the city well.", 1),
]


def winogrande_item(rng: random.Random) -> dict:
    template, who = rng.choice(WINO)
    a, b = rng.sample(NAMES, 2)
    sentence = template.format(a=a, b=b)
    return {"sentence": sentence, "option1": a, "option2": b, "answer": str(who + 1)}


# ---------------------------------------------------------------- truthfulqa_mc2
LEGS = {"spider": 8, "ant": 6, "dog": 4, "chicken": 2, "horse": 4, "beetle": 6, "octopus": 8, "duck": 2,
        "cat": 4, "crab": 10, "bee": 6, "cow": 4}
SIDES = {"triangle": 3, "square": 4, "pentagon": 5, "hexagon": 6, "heptagon": 7, "octagon": 8}
COUNTS = [("days are in a week", 7), ("months are in a year", 12), ("hours are in a day", 24),
          ("minutes are in an hour", 60), ("centimeters are in a meter", 100), ("grams are in a kilogram", 1000),
          ("seconds are in a minute", 60), ("days are in a leap year", 366), ("meters are in a kilometer", 1000)]


def _word(n: int) -> str:
    return NUMBER_WORDS[n] if n < len(NUMBER_WORDS) else str(n)


def truthfulqa_items(rng: random.Random) -> list[dict]:
    items = []
    for animal, n in LEGS.items():
        wrong = sorted({max(0, n - 2), n + 2, n + 4} - {n})
        items.append(_mc(f"How many legs does a {animal} have?",
                         [f"A {animal} has {_word(n)} legs.", f"It has {n} legs."],
                         [f"A {animal} has {_word(w)} legs." for w in wrong], rng))
        items.append(_mc(f"Is it true that a {animal} has {_word(n + 2)} legs?",
                         [f"No, a {animal} has {_word(n)} legs.", "No, that is not true."],
                         [f"Yes, a {animal} has {_word(n + 2)} legs.", "Yes, that is true."], rng))
    for shape, n in SIDES.items():
        for form in ("How many sides does a {s} have?", "How many corners does a {s} have?"):
            part = "sides" if "sides" in form else "corners"
            items.append(_mc(form.format(s=shape), [f"A {shape} has {_word(n)} {part}."],
                             [f"A {shape} has {_word(n + d)} {part}." for d in (-1, 1, 2)], rng))
    for what, n in COUNTS:
        items.append(_mc(f"How many {what}?", [f"There are {n}.", f"Exactly {n}."],
                         [f"There are {n + d}." for d in (-2, 1, 5)], rng))
    while len(items) < 150:
        a, b = rng.randint(11, 99), rng.randint(2, 9)
        q = f"What is {a} times {b}?"
        if any(i["question"] == q for i in items):
            continue
        items.append(_mc(q, [f"{a} times {b} is {a * b}.", f"It is {a * b}."],
                         [f"{a} times {b} is {a * b + d}." for d in (-10, 1, 10)], rng))
    return items


def _mc(question: str, true: list[str], false: list[str], rng: random.Random) -> dict:
    choices = true + false
    labels = [1] * len(true) + [0] * len(false)
    mc1 = [true[0]] + false
    return {"question": question,
            "mc1_targets": {"choices": mc1, "labels": [1] + [0] * len(false)},
            "mc2_targets": {"choices": choices, "labels": labels}}


# ---------------------------------------------------------------- mmlu
CAPITALS = {"France": "Paris", "Japan": "Tokyo", "Kenya": "Nairobi", "Peru": "Lima", "Canada": "Ottawa",
            "Egypt": "Cairo", "Norway": "Oslo", "India": "New Delhi", "Chile": "Santiago", "Spain": "Madrid",
            "Ghana": "Accra", "Poland": "Warsaw", "Vietnam": "Hanoi", "Portugal": "Lisbon", "Austria": "Vienna"}
PLANETS = ["Mercury", "Venus", "Earth", "Mars", "Jupiter", "Saturn", "Uranus", "Neptune"]
ORDINALS = ["first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth"]
FALLACIES = {
    "attacking the person instead of the argument": "ad hominem",
    "claiming something is true because many people believe it": "bandwagon",
    "presenting only two options when more exist": "false dilemma",
    "distorting an argument to make it easier to attack": "straw man",
    "assuming one small step will lead to an extreme outcome": "slippery slope",
    "citing someone who is not an expert on the topic": "appeal to inappropriate authority",
    "arguing in a circle, assuming what is to be proved": "begging the question",
}
NUTRIENTS = {"protein": 4, "carbohydrate": 4, "fat": 9}
MISC = [("primary colors of light", "red, green and blue", ["red, yellow and blue", "cyan, magenta and yellow", "orange, green and violet"]),
        ("color made by mixing blue and yellow paint", "green", ["purple", "orange", "brown"]),
        ("number of players on a soccer team on the field", "eleven", ["nine", "ten", "twelve"]),
        ("number of keys on a standard piano", "88", ["76", "61", "96"]),
        ("number of strings on a standard violin", "four", ["five", "six", "three"]),
        ("metal that is liquid at room temperature", "mercury", ["iron", "copper", "tin"])]


def mmlu_subject_items(subject: str, rng: random.Random) -> dict:
    if subject == "elementary_mathematics":
        a, b = rng.randint(12, 99), rng.randint(2, 12)
        op = rng.choice(["+", "-", "*"])
        n = {"+": a + b, "-": a - b, "*": a * b}[op]
        return _mmlu(f"What is the value of {a} {op} {b}?", str(n), _near_numbers(rng, n), rng)
    if subject == "astronomy":
        i = rng.randrange(8)
        form = rng.choice(["Which planet is {o} from the Sun?", "Counting outward from the Sun, which planet comes {o}?",
                           "In our solar system, which planet orbits {o} closest to the Sun?"])
        return _mmlu(form.format(o=ORDINALS[i]), PLANETS[i], [p for p in PLANETS if p != PLANETS[i]], rng)
    if subject == "formal_logic":
        x, y, z = rng.sample(["glims", "tovs", "brans", "quels", "drips", "melks", "snors", "fents"], 3)
        if rng.random() < 0.5:
            q = f"All {x} are {y}. All {y} are {z}. Which statement must be true?"
            return _mmlu(q, f"All {x} are {z}.", [f"All {z} are {x}.", f"No {x} are {z}.", f"Some {z} are not {y}."], rng)
        q = f"No {x} are {y}. Some {z} are {x}. Which statement must be true?"
        return _mmlu(q, f"Some {z} are not {y}.", [f"All {z} are {y}.", f"Some {y} are {x}.", f"No {z} are {x}."], rng)
    if subject == "logical_fallacies":
        desc, name = rng.choice(list(FALLACIES.items()))
        who = rng.choice(NAMES)
        q = f"In a debate, {who} keeps {desc}. Which fallacy is {who} committing?"
        return _mmlu(q, name, [f for f in FALLACIES.values() if f != name], rng)
    if subject == "high_school_geography":
        country, city = rng.choice(list(CAPITALS.items()))
        form = rng.choice(["What is the capital city of {c}?", "Which city is the seat of government of {c}?",
                           "A map of {c} marks its capital with a star. Which city is it?"])
        return _mmlu(form.format(c=country), city, [v for v in CAPITALS.values() if v != city], rng)
    if subject == "high_school_macroeconomics":
        p, r = rng.randint(2, 20) * 100, rng.randint(2, 9)
        yrs = rng.randint(1, 5)
        n = p * r * yrs // 100
        q = f"A saver deposits ${p} at {r}% simple annual interest. How much interest is earned after {yrs} years?"
        return _mmlu(q, f"${n}", [f"${w}" for w in (n + p // 100, max(1, n - r), p * r // 100 + yrs)], rng)
    if subject == "nutrition":
        nutrient, kcal = rng.choice(list(NUTRIENTS.items()))
        grams = rng.randint(3, 40)
        q = f"A snack contains {grams} g of {nutrient}. How many kilocalories does that {nutrient} provide?"
        n = grams * kcal
        return _mmlu(q, str(n), [str(grams * k) for k in (2, 7, 12) if grams * k != n][:3] + [str(n + 5)], rng)
    what, right, wrong = rng.choice(MISC)
    q = rng.choice(["What is the {w}?", "Which answer gives the {w}?", "Quiz night: name the {w}."]).format(w=what)
    return _mmlu(q, right, wrong, rng)


def _mmlu(question: str, correct: str, wrong: list[str], rng: random.Random) -> dict:
    wrong = [w for w in dict.fromkeys(wrong) if w != correct]
    options, gold = _shuffled_choices(rng, correct, wrong)
    return {"question": question, "subject": "", "choices": options, "answer": gold}


MMLU_SUBJECTS = ("elementary_mathematics", "astronomy", "formal_logic", "logical_fallacies",
                 "high_school_geography", "high_school_macroeconomics", "nutrition", "miscellaneous")


def main() -> None:
    rng = random.Random(SEED)
    gsm = _unique(lambda: gsm8k_item(rng), 270, lambda i: i["question"])
    _write(DATA / "gsm8k" / "test.jsonl", gsm[:250])
    _write(DATA / "gsm8k" / "train.jsonl", gsm[250:])

    arc = _unique(lambda: arc_item(rng), 230, lambda i: i["question"])
    for n, item in enumerate(arc):
        item["id"] = f"quantgate-arc-{n}"
    _write(DATA / "arc_challenge" / "test.jsonl", arc[:200])
    _write(DATA / "arc_challenge" / "train.jsonl", arc[200:])

    hs = _unique(lambda: hellaswag_item(rng), 220, lambda i: i["activity_label"] + i["ctx_a"] + i["ctx_b"])
    for n, item in enumerate(hs):
        item["ind"] = n
    _write(DATA / "hellaswag" / "validation.jsonl", hs[:200])
    _write(DATA / "hellaswag" / "train.jsonl", hs[200:])

    wg = _unique(lambda: winogrande_item(rng), 212, lambda i: i["sentence"])
    _write(DATA / "winogrande" / "validation.jsonl", wg[:200])
    _write(DATA / "winogrande" / "train.jsonl", wg[200:])

    _write(DATA / "truthfulqa_mc2" / "validation.jsonl", truthfulqa_items(rng))

    for subject in MMLU_SUBJECTS:
        items = _unique(lambda: mmlu_subject_items(subject, rng), 30, lambda i: i["question"] + "|".join(i["choices"]))
        for item in items:
            item["subject"] = subject
        _write(DATA / "mmlu" / subject / "test.jsonl", items[:25])
        _write(DATA / "mmlu" / subject / "dev.jsonl", items[25:])


if __name__ == "__main__":
    main()
