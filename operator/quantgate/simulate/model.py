"""The simulated model: turns a prompt into the completion a planted variant gives.

Loglikelihood requests (echo + logprobs, max_tokens 1): every prompt token gets
logprob 0 except the last, whose logprob carries the whole continuation score
(lm-eval sums token_logprobs[ctxlen:-1], and the last prompt token always lies
in the continuation). The choice the variant picks scores -0.01; every other
choice scores -(10 + its length in characters), so both acc (argmax of the
sum) and acc_norm (argmax of the sum divided by the length) pick it.
truthfulqa_mc2: a variant planted correct puts -0.01 on every true answer and
-40 on every false one, so its normalised probability mass on true answers is
1.0 (to float precision) and its mc2 acc is 1; planted wrong, the reverse (acc
about 4e-18 per item). The task's acc is therefore the planted share exactly,
and an item counts as correct iff its acc >= 0.5.
gsm8k: the answer ends in "#### N" with no other digits, so strict-match and
flexible-extract both read N: gold when planted correct, gold ± delta otherwise.
humaneval, mbpp: the problem's canonical solution when planted correct, else its plausible
wrong solution (quantgate.lmeval.tasks._generate_code), which fails at least one test; so
pass@1 in the sandbox is the planted share.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from quantgate.simulate.config import FleetConfig, Variant
from quantgate.simulate.index import FULL_PREFIX, ItemIndex
from quantgate.simulate.plan import plant, wrong_choice, wrong_number
from quantgate.simulate.tokenizer import EOS_ID, Tokenizer

CHOSEN_LOGPROB = -0.01
# The one text the simulator models as a language model (for the log-probability probe): counting.
COUNTING = ", ".join(str(i) for i in range(1, 40))
COUNTING_LOGPROB, OFF_COUNTING_LOGPROB = -0.0125, -9.5
MC2_OTHER_LOGPROB = -40.0
UNKNOWN_TEXT = " I am not sure."


@lru_cache(maxsize=2)
def _code_completions(task: str) -> dict:
    from quantgate.lmeval.tasks._generate_code import completions

    return completions(task)


def _by_suite(items) -> list[list[str]]:
    local = [i for i in items if not i.startswith(FULL_PREFIX)]
    full = [i for i in items if i.startswith(FULL_PREFIX)]
    return [group for group in (local, full) if group]


@dataclass
class Answer:
    text: str  # generated text (after stop/max_tokens)
    tokens: int  # generated token count
    logprobs: dict | None = None
    finish_reason: str = "length"


class SimulatedModel:
    def __init__(self, config: FleetConfig, variant: Variant, index: ItemIndex, tokenizer: Tokenizer):
        self.config, self.variant, self.index, self.tok = config, variant, index, tokenizer
        # each suite's items planted on their own: the local suite's exactly as without local-full
        self.correct = {unit: set().union(*(plant(config, variant, unit, ids) for ids in _by_suite(items)))
                        for unit, items in index.items.items()}
        self.unknown_prompts = 0

    # -------------------------------------------------------------- choices
    def _winning_choices(self, unit: str, item: str) -> set[int]:
        info = self.index.items[unit][item]
        right = item in self.correct[unit]
        if unit == "truthfulqa_mc2":
            true = set(info["gold"])
            return true if right else set(range(info["choices"])) - true
        if right:
            return {info["gold"]}
        return {wrong_choice(self.config.seed, unit, item, info["gold"], info["choices"])}

    def continuation_logprob(self, prompt_text: str) -> float:
        entry = self.index.lookup(prompt_text)
        if entry is None or entry.choice is None:
            self.unknown_prompts += 1
            return -1.0
        if entry.choice in self._winning_choices(entry.task, entry.item):
            return CHOSEN_LOGPROB
        if entry.task == "truthfulqa_mc2":
            return MC2_OTHER_LOGPROB
        return -(10.0 + max(1, entry.cont_chars))

    def generation(self, prompt_text: str) -> str:
        entry = self.index.lookup(prompt_text)
        if entry is None or entry.choice is not None:
            self.unknown_prompts += 1
            return UNKNOWN_TEXT
        gold = self.index.items[entry.task][entry.item]["gold"]
        right = entry.item in self.correct[entry.task]
        if entry.task in ("humaneval", "mbpp"):
            passing, failing = _code_completions(entry.task)[gold]
            return passing if right else failing
        number = gold if right else wrong_number(self.config.seed, entry.task, entry.item, gold)
        return f" Working through the question step by step gives the result.\n#### {number}"

    # -------------------------------------------------------------- API shapes
    def echo_logprobs(self, prompt_ids: list[int]) -> Answer:
        """The vLLM `logprobs` object for echo=True, max_tokens=1."""
        text = self.tok.decode(prompt_ids)
        last = self.continuation_logprob(text)
        pieces = [self._piece(i) for i in prompt_ids]
        n = len(prompt_ids)
        token_logprobs: list = [None] + [0.0] * (n - 1)
        top: list = [None] + [{p: 0.0} for p in pieces[1:]]
        if n > 1:
            token_logprobs[-1] = last
            top[-1] = {pieces[-1]: last} if last == CHOSEN_LOGPROB else {pieces[-1]: last, "<alt>": CHOSEN_LOGPROB}
        gen_piece = "\n"
        return Answer(
            text=gen_piece, tokens=1,
            logprobs={
                "tokens": pieces + [gen_piece],
                "token_logprobs": token_logprobs + [-0.5],
                "top_logprobs": top + [{gen_piece: -0.5}],
                "text_offset": [0] * (n + 1),
            },
        )

    def generate(self, prompt_ids: list[int], max_tokens: int, stop: list[str]) -> Answer:
        text = self.generation(self.tok.decode(prompt_ids))
        finish = "stop"
        cut = min((text.find(s) for s in stop if s and s in text), default=-1)
        if cut >= 0:
            text = text[:cut]
        ids = self.tok.encode(text)
        if len(ids) > max_tokens:
            ids, finish = ids[:max_tokens], "length"
            text = self.tok.decode(ids)
        return Answer(text=text, tokens=max(1, len(ids)), finish_reason=finish)

    # -------------------------------------------------------------- counting (the probe's text)
    def is_counting(self, prompt_ids: list[int]) -> bool:
        return len(prompt_ids) > 1 and COUNTING.startswith(self.tok.decode(prompt_ids[:2]))

    def _counting_logprob(self, prefix: list[int], token_id: int) -> float:
        text = self.tok.decode(prefix) + self.tok.decode([token_id])
        return COUNTING_LOGPROB if COUNTING.startswith(text) else OFF_COUNTING_LOGPROB

    def _counting_next(self, prefix: list[int]) -> int | None:
        ids = self.tok.encode(COUNTING)
        return ids[len(prefix)] if ids[: len(prefix)] == prefix and len(prefix) < len(ids) else None

    def counting_generate(self, prompt_ids: list[int], max_tokens: int) -> Answer:
        """Greedy generation with logprobs: the counting continues."""
        ids, pieces, values = list(prompt_ids), [], []
        for _ in range(max(1, max_tokens)):
            nxt = self._counting_next(ids)
            if nxt is None:
                break
            pieces.append(self._piece(nxt))
            values.append(self._counting_logprob(ids, nxt))
            ids.append(nxt)
        text = self.tok.decode(ids[len(prompt_ids):]) or UNKNOWN_TEXT
        return Answer(text=text, tokens=max(1, len(pieces)), logprobs={
            "tokens": pieces, "token_logprobs": values, "top_logprobs": [{p: v} for p, v in zip(pieces, values)],
            "text_offset": [0] * len(pieces)})

    def counting_echo(self, prompt_ids: list[int], shifted: bool = False) -> Answer:
        """echo=True, max_tokens=1 on a counting prompt: entry i scores token i with the distribution
        given tokens < i (shifted: given tokens <= i, the one predicting token i + 1)."""
        n, k = len(prompt_ids), (1 if shifted else 0)
        values: list = [None] * (1 - k) + [self._counting_logprob(prompt_ids[:i + k], prompt_ids[i])
                                           for i in range(1 - k, n)]
        tops: list = [None] * (1 - k)
        for i in range(1 - k, n):
            nxt = self._counting_next(prompt_ids[:i + k])
            tops.append({self._piece(nxt): COUNTING_LOGPROB} if nxt is not None else {})
        gen = self.counting_generate(prompt_ids, 1).logprobs
        return Answer(text="\n", tokens=1, logprobs={
            "tokens": [self._piece(i) for i in prompt_ids] + (gen["tokens"] or ["\n"]),
            "token_logprobs": values + (gen["token_logprobs"] or [-0.5]),
            "top_logprobs": tops + (gen["top_logprobs"] or [{"\n": -0.5}]),
            "text_offset": [0] * (n + 1)})

    @staticmethod
    def broken_echo(answer: Answer, mode: str) -> Answer:
        """The simulator's knob `promptLogprobs` on any echo answer: `missing` keeps the generated
        token's entry only; `shifted` moves every entry one position earlier."""
        lp = answer.logprobs
        if mode == "missing":
            lp = {k: v[-1:] for k, v in lp.items()}
        elif mode == "shifted":
            lp = {k: (v[1:] + v[-1:] if k in ("token_logprobs", "top_logprobs") else v) for k, v in lp.items()}
        return Answer(answer.text, answer.tokens, lp, answer.finish_reason)

    def _piece(self, token_id: int) -> str:
        if token_id < 256:
            return f"<0x{token_id:02X}>"
        if token_id == EOS_ID:
            return "<|endoftext|>"
        return self.tok.id_to_piece[token_id]
