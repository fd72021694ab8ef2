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
from quantgate.simulate.index import ItemIndex
from quantgate.simulate.plan import plant, wrong_choice, wrong_number
from quantgate.simulate.tokenizer import EOS_ID, Tokenizer

CHOSEN_LOGPROB = -0.01
MC2_OTHER_LOGPROB = -40.0
UNKNOWN_TEXT = " I am not sure."


@lru_cache(maxsize=2)
def _code_completions(task: str) -> dict:
    from quantgate.lmeval.tasks._generate_code import completions

    return completions(task)


@dataclass
class Answer:
    text: str  # generated text (after stop/max_tokens)
    tokens: int  # generated token count
    logprobs: dict | None = None
    finish_reason: str = "length"


class SimulatedModel:
    def __init__(self, config: FleetConfig, variant: Variant, index: ItemIndex, tokenizer: Tokenizer):
        self.config, self.variant, self.index, self.tok = config, variant, index, tokenizer
        self.correct = {unit: plant(config, variant, unit, list(items)) for unit, items in index.items.items()}
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

    def _piece(self, token_id: int) -> str:
        if token_id < 256:
            return f"<0x{token_id:02X}>"
        if token_id == EOS_ID:
            return "<|endoftext|>"
        return self.tok.id_to_piece[token_id]
