"""Write the `code` suite's datasets: our own programming problems, generated from templates.

Run `python -m quantgate.lmeval.tasks._generate_code` to regenerate
operator/quantgate/lmeval/tasks/data/{humaneval,mbpp}/. Sixteen problem templates (each
written here, none taken from a benchmark) are instantiated with different constants:
humaneval gets one set of constants, mbpp another, so no function appears in both. Each
problem has a canonical solution and a plausible wrong one (an off-by-one, a missed edge
case); the expected values in the tests are computed by running the canonical solution, and
generation fails unless the wrong solution fails at least one test. The simulator serves the
canonical solution for an item a variant is planted to pass and the wrong one otherwise
(`problems()` is its source of both).

Schemas are those of the official datasets lm-eval's tasks read: humaneval `task_id`,
`prompt`, `canonical_solution`, `test`, `entry_point`; mbpp (config "full") `task_id`,
`text`, `code`, `test_list`, `test_setup_code`, `challenge_test_list`, plus a `prompt` split
whose items carry `is_fewshot` (as lm-eval's own mbpp few-shot examples do). No prompt or
solution contains a blank line (the simulator keys requests on the text after the last one).
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path

DATA = Path(__file__).parent / "data"
SEED = 20251202
HUMANEVAL_PARAMS = (0, 2, 4, 6)  # indices into each template's constants
MBPP_PARAMS = (1, 3, 5, 7)
FEWSHOT_TEMPLATES = ("rotate_left", "pad_to_multiple", "triangular_mod")  # mbpp prompt split, constant 8


@dataclass
class Problem:
    template: str
    name: str
    args: str  # signature, e.g. "values: list"
    returns: str
    doc: list[str]  # docstring lines (humaneval) / first line is the mbpp text
    body: str  # canonical body, indented, ends with a newline
    wrong: str  # plausible wrong body
    cases: list[tuple]
    expected: list = field(default_factory=list)

    def function(self, body: str) -> str:
        return f"def {self.name}({self.args}) -> {self.returns}:\n{body}"

    def call(self, case: tuple, name: str | None = None) -> str:
        return f"{name or self.name}({', '.join(repr(a) for a in case)})"


def _run(problem: Problem, body: str) -> list:
    scope: dict = {}
    exec(problem.function(body), scope)  # our own template code, never model output
    fn = scope[problem.name]
    out = []
    for case in problem.cases:
        try:
            out.append(fn(*[list(a) if isinstance(a, list) else a for a in case]))
        except Exception as exc:  # a wrong body may raise: that is a failing test too
            out.append(exc)
    return out


# ----------------------------------------------------------------- templates
def _ints(rng: random.Random, n: int, lo: int = -20, hi: int = 40) -> list[int]:
    return [rng.randint(lo, hi) for _ in range(n)]


def count_multiples(k: int, rng: random.Random) -> Problem:
    return Problem("count_multiples", f"count_multiples_of_{k}", "values: list", "int",
                   [f"Count how many integers in values are divisible by {k} (zero and negative numbers count too)."],
                   f"    return sum(1 for v in values if v % {k} == 0)\n",
                   f"    return sum(1 for v in values if v % {k} == 0 and v > 0)\n",
                   [([k, 2 * k + 1, 3 * k],), ([0, -k, 1, -2 * k],), (_ints(rng, 8),), ([],)])


def rotate_left(k: int, rng: random.Random) -> Problem:
    return Problem("rotate_left", f"rotate_left_by_{k}", "values: list", "list",
                   [f"Rotate values left by {k} places: the first {k} items move to the end, in order.",
                    f"When the list is shorter, rotate by {k} modulo its length; an empty list stays empty."],
                   f"    if not values:\n        return []\n    shift = {k} % len(values)\n"
                   "    return values[shift:] + values[:shift]\n",
                   f"    if not values:\n        return []\n    shift = {k} % len(values)\n"
                   "    return values[-shift:] + values[:-shift]\n",
                   [(list(range(1, k + 4)),), (_ints(rng, k + 2),), ([7],), ([],), (list("abcdefghijklm"),)])


def clamp(bounds: tuple[int, int], rng: random.Random) -> Problem:
    lo, hi = bounds
    tag = f"{lo}_{hi}".replace("-", "minus")
    return Problem("clamp", f"clamp_{tag}", "x: int", "int",
                   [f"Return x limited to the closed range from {lo} to {hi}: values below {lo} become {lo}, "
                    f"values above {hi} become {hi}."],
                   f"    return max({lo}, min({hi}, x))\n",
                   f"    return min({lo}, max({hi}, x))\n",
                   [(lo - 3,), ((lo + hi) // 2,), (hi + 7,), (lo,), (hi,)])


def every_nth(k: int, rng: random.Random) -> Problem:
    return Problem("every_nth", f"every_{k}th_item", "values: list", "list",
                   [f"Return the items at positions {k}, {2 * k}, {3 * k}, ... of values, counting positions from 1."],
                   f"    return values[{k} - 1::{k}]\n",
                   f"    return values[::{k}]\n",
                   [(list(range(1, 3 * k + 2)),), (_ints(rng, 2 * k),), ([1],), ([],)])


def caesar(k: int, rng: random.Random) -> Problem:
    return Problem("caesar", f"shift_letters_by_{k}", "text: str", "str",
                   [f"Shift every lowercase letter a-z of text {k} places forward in the alphabet, wrapping "
                    "from z to a; leave every other character unchanged."],
                   "    out = []\n    for ch in text:\n        if \"a\" <= ch <= \"z\":\n"
                   f"            out.append(chr((ord(ch) - 97 + {k}) % 26 + 97))\n        else:\n"
                   "            out.append(ch)\n    return \"\".join(out)\n",
                   "    out = []\n    for ch in text:\n        if \"a\" <= ch <= \"z\":\n"
                   f"            out.append(chr(ord(ch) + {k}))\n        else:\n"
                   "            out.append(ch)\n    return \"\".join(out)\n",
                   [("hello world",), ("xyz, Zebra!",), ("",), ("quantized models",)])


def capped_running_total(cap: int, rng: random.Random) -> Problem:
    return Problem("capped_running_total", f"running_total_capped_at_{cap}", "values: list", "list",
                   [f"Return the running totals of values, where the total can never exceed {cap}: after each "
                    f"item the total becomes the smaller of {cap} and the previous total plus the item."],
                   "    total, out = 0, []\n    for v in values:\n"
                   f"        total = min({cap}, total + v)\n        out.append(total)\n    return out\n",
                   "    total, out = 0, []\n    for v in values:\n"
                   f"        total += v\n        out.append(min({cap}, total))\n    return out\n",
                   [([1, 2, 3],), ([cap, 5, -4, 2],), ([cap - 1, 3, -cap],), ([],)])


def digit_power_sum(p: int, rng: random.Random) -> Problem:
    return Problem("digit_power_sum", f"digit_power_sum_{p}", "n: int", "int",
                   [f"Return the sum of the decimal digits of n, each raised to the power {p}; the sign of n "
                    "is ignored."],
                   f"    return sum(int(d) ** {p} for d in str(abs(n)))\n",
                   f"    return sum(int(d) * {p} for d in str(abs(n)))\n",
                   [(rng.randint(100, 999),), (-47,), (0,), (rng.randint(10_000, 99_999),)])


def longest_run(ch: str, rng: random.Random) -> Problem:
    return Problem("longest_run", f"longest_run_of_{ch}", "s: str", "int",
                   [f"Return the length of the longest block of consecutive {ch!r} characters in s (0 if none)."],
                   "    best = run = 0\n    for c in s:\n"
                   f"        run = run + 1 if c == {ch!r} else 0\n        best = max(best, run)\n    return best\n",
                   f"    return s.count({ch!r})\n",
                   [(f"{ch}{ch}.{ch}{ch}{ch}.{ch}",), ("",), (f"{ch}",), (f"-{ch}-{ch}{ch}-",)])


def pad_to_multiple(k: int, rng: random.Random) -> Problem:
    return Problem("pad_to_multiple", f"pad_to_multiple_of_{k}", "s: str", "str",
                   [f"Append '.' characters to s until its length is a multiple of {k}; a string whose length "
                    f"already is a multiple of {k} is returned unchanged."],
                   f"    return s + \".\" * (-len(s) % {k})\n",
                   f"    return s + \".\" * ({k} - len(s) % {k})\n",
                   [("ab",), ("x" * k,), ("",), ("quant" * 3,)])


def chunk_sums(k: int, rng: random.Random) -> Problem:
    return Problem("chunk_sums", f"sums_of_chunks_of_{k}", "values: list", "list",
                   [f"Split values into consecutive chunks of {k} items (the last chunk may be shorter) and "
                    "return the sum of each chunk."],
                   f"    return [sum(values[i:i + {k}]) for i in range(0, len(values), {k})]\n",
                   f"    return [sum(values[i:i + {k}]) for i in range(0, len(values) - {k} + 1, {k})]\n",
                   [(list(range(1, 2 * k + 2)),), (_ints(rng, 3 * k),), ([5],), ([],)])


def triangular_mod(m: int, rng: random.Random) -> Problem:
    return Problem("triangular_mod", f"triangular_mod_{m}", "n: int", "int",
                   [f"Return the n-th triangular number 1 + 2 + ... + n, modulo {m} (n >= 0)."],
                   f"    return n * (n + 1) // 2 % {m}\n",
                   f"    return n * (n - 1) // 2 % {m}\n",
                   [(1,), (rng.randint(5, 50),), (0,), (rng.randint(100, 1000),)])


def vowel_words(n: int, rng: random.Random) -> Problem:
    return Problem("vowel_words", f"count_vowel_words_min_{n}", "sentence: str", "int",
                   [f"Count the words of sentence (separated by whitespace) that start with a vowel (a, e, i, o "
                    f"or u, in either case) and have at least {n} characters."],
                   f"    return sum(1 for w in sentence.split() if w[0].lower() in \"aeiou\" and len(w) >= {n})\n",
                   f"    return sum(1 for w in sentence.split() if w[0] in \"aeiou\" and len(w) >= {n})\n",
                   [("An owl ate every insect",), ("Unusually elaborate Operators underestimate aims",), ("",),
                    ("Extraordinarily Inexpensive Accommodation",)])


def step_sequence(k: int, rng: random.Random) -> Problem:
    return Problem("step_sequence", f"is_step_{k}_sequence", "values: list", "bool",
                   [f"Return True if every item of values is exactly {k} more than the item before it (lists with "
                    "fewer than two items qualify), else False."],
                   f"    return all(b - a == {k} for a, b in zip(values, values[1:]))\n",
                   f"    return all(abs(b - a) == {k} for a, b in zip(values, values[1:]))\n",
                   [([1, 1 + k, 1 + 2 * k],), ([3 * k, 2 * k, k],), ([4],), ([0, k, 2 * k + 1],)])


def mark_multiples(k: int, rng: random.Random) -> Problem:
    return Problem("mark_multiples", f"zero_multiples_of_{k}", "n: int", "list",
                   [f"Return the numbers 1 to n in order, with every multiple of {k} replaced by 0."],
                   f"    return [0 if i % {k} == 0 else i for i in range(1, n + 1)]\n",
                   f"    return [0 if i % {k} == 0 else i for i in range(1, n)]\n",
                   [(2 * k + 1,), (k,), (0,), (3,)])


def kth_largest_distinct(k: int, rng: random.Random) -> Problem:
    return Problem("kth_largest_distinct", f"largest_distinct_number_{k}", "values: list", "object",
                   [f"Return the {k}-th largest distinct value of values (equal values count once), or None "
                    f"when values has fewer than {k} distinct values."],
                   "    distinct = sorted(set(values), reverse=True)\n"
                   f"    return distinct[{k} - 1] if len(distinct) >= {k} else None\n",
                   "    ordered = sorted(values, reverse=True)\n"
                   f"    return ordered[{k} - 1] if len(ordered) >= {k} else None\n",
                   [([9, 9, 9] + list(range(1, k + 2)),), (list(range(k + 3)),), ([1] * (k + 1),), ([],)])


def window_max_sum(k: int, rng: random.Random) -> Problem:
    return Problem("window_max_sum", f"best_window_sum_{k}", "values: list", "object",
                   [f"Return the largest sum of {k} consecutive items of values, or None when values has fewer "
                    f"than {k} items."],
                   f"    if len(values) < {k}:\n        return None\n"
                   f"    return max(sum(values[i:i + {k}]) for i in range(len(values) - {k} + 1))\n",
                   f"    if len(values) < {k}:\n        return None\n"
                   f"    return max(sum(values[i:i + {k}]) for i in range(len(values) - {k}))\n",
                   [([0] * (k + 2) + [5] * k,), (_ints(rng, 2 * k),), (list(range(k)),), ([1] * (k - 1),)])


TEMPLATES = {
    "count_multiples": (count_multiples, list(range(2, 11))),
    "rotate_left": (rotate_left, list(range(1, 10))),
    "clamp": (clamp, [(0, 10), (-5, 5), (1, 100), (10, 20), (-100, 0), (3, 7), (0, 255), (-1, 1), (50, 60)]),
    "every_nth": (every_nth, list(range(2, 11))),
    "caesar": (caesar, list(range(1, 10))),
    "capped_running_total": (capped_running_total, [10, 15, 20, 25, 30, 40, 50, 60, 100]),
    "digit_power_sum": (digit_power_sum, list(range(2, 11))),
    "longest_run": (longest_run, list("abxzeostk")),
    "pad_to_multiple": (pad_to_multiple, list(range(2, 11))),
    "chunk_sums": (chunk_sums, list(range(2, 11))),
    "triangular_mod": (triangular_mod, [7, 10, 11, 13, 17, 19, 23, 29, 31]),
    "vowel_words": (vowel_words, list(range(1, 10))),
    "step_sequence": (step_sequence, list(range(1, 10))),
    "mark_multiples": (mark_multiples, list(range(2, 11))),
    "kth_largest_distinct": (kth_largest_distinct, list(range(2, 11))),
    "window_max_sum": (window_max_sum, list(range(2, 11))),
}


def _instantiate(template: str, index: int, rng: random.Random) -> Problem:
    make, params = TEMPLATES[template]
    problem = make(params[index], rng)
    problem.expected = _run(problem, problem.body)
    if any(isinstance(e, Exception) for e in problem.expected):
        raise RuntimeError(f"{problem.name}: the canonical solution raises on a test case")
    if _run(problem, problem.wrong) == problem.expected:
        raise RuntimeError(f"{problem.name}: the wrong solution passes every test case")
    return problem


def problems(split: str) -> list[Problem]:
    """"humaneval", "mbpp" or "mbpp-prompt" problems, in dataset order (deterministic)."""
    rng = random.Random(f"{SEED}|{split}")
    if split == "mbpp-prompt":
        return [_instantiate(t, 8, rng) for t in FEWSHOT_TEMPLATES]
    indices = HUMANEVAL_PARAMS if split == "humaneval" else MBPP_PARAMS
    return [_instantiate(t, i, rng) for i in indices for t in TEMPLATES]


# ----------------------------------------------------------------- schemas
def _assert_line(problem: Problem, case: tuple, expected, name: str) -> str:
    return f"assert {problem.call(case, name)} == {expected!r}"


def humaneval_record(n: int, p: Problem) -> dict:
    example = p.cases[0]
    doc = "\n".join(f"    {line}" for line in p.doc)
    prompt = (f"def {p.name}({p.args}) -> {p.returns}:\n    \"\"\"\n{doc}\n    >>> {p.call(example)}\n"
              f"    {p.expected[0]!r}\n    \"\"\"\n")
    checks = "\n".join(f"    {_assert_line(p, c, e, 'candidate')}" for c, e in zip(p.cases, p.expected))
    return {"task_id": f"QuantgateEval/{n}", "prompt": prompt, "canonical_solution": p.body,
            "test": f"def check(candidate):\n{checks}\n", "entry_point": p.name}


def _mbpp_tests(p: Problem) -> list[str]:
    """Three asserts, at least one of which the wrong solution fails."""
    wrong = _run(p, p.wrong)
    failing = [i for i, (w, e) in enumerate(zip(wrong, p.expected)) if isinstance(w, Exception) or w != e]
    order = [failing[0]] + [i for i in range(len(p.cases)) if i != failing[0]]
    chosen = sorted(order[:3])
    return [_assert_line(p, p.cases[i], p.expected[i], p.name) for i in chosen]


def mbpp_record(task_id: int, p: Problem, fewshot: bool = False) -> dict:
    text = f"Write a function {p.name} that takes {p.args.split(':')[0]}. " + " ".join(p.doc)
    record = {"task_id": task_id, "text": text, "code": p.function(p.body).rstrip("\n"),
              "test_list": _mbpp_tests(p), "test_setup_code": "", "challenge_test_list": []}
    if fewshot:
        record["is_fewshot"] = True
    return record


def completions(split: str) -> dict:
    """task_id → (passing completion, failing completion), as a model would continue the prompt:
    humaneval the function body; mbpp the whole function, then lm-eval's stop marker [DONE]."""
    if split == "humaneval":
        return {f"QuantgateEval/{n}": (p.body, p.wrong) for n, p in enumerate(problems("humaneval"))}
    return {100 + n: (p.function(p.body) + "[DONE]", p.function(p.wrong) + "[DONE]")
            for n, p in enumerate(problems("mbpp"))}


def _write(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as fh:
        for row in rows:
            fh.write(json.dumps(row, sort_keys=True) + "\n")


def main() -> None:
    _write(DATA / "humaneval" / "test.jsonl", [humaneval_record(n, p) for n, p in enumerate(problems("humaneval"))])
    _write(DATA / "mbpp" / "test.jsonl", [mbpp_record(100 + n, p) for n, p in enumerate(problems("mbpp"))])
    _write(DATA / "mbpp" / "prompt.jsonl", [mbpp_record(n + 1, p, fewshot=True)
                                            for n, p in enumerate(problems("mbpp-prompt"))])


if __name__ == "__main__":
    main()
