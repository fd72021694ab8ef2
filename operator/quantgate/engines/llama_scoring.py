"""Loglikelihoods and greedy generation on a GGUF model through llama-cpp-python, in process.

`LlamaScorer` wraps one `llama_cpp.Llama` created with ``logits_all=True``: evaluating a
token sequence leaves one row of logits per position in ``Llama.scores``; the row at
position i is the distribution of token i + 1. A continuation's loglikelihood is the sum,
over its tokens, of the log-softmax of the row *before* each token: exactly the alignment
an OpenAI server's echo gets wrong when it is shifted by one.

Requests are scored in lexicographic order of their token sequences, so multiple-choice
requests that share a context reuse its evaluated prefix (KV cache and logit rows) and only
the choices are evaluated; the results come back in the callers' order.
"""

from __future__ import annotations

import numpy as np


def log_softmax_at(row: np.ndarray, token: int) -> float:
    top = float(row.max())
    return float(row[token]) - top - float(np.log(np.exp(row.astype(np.float64) - top).sum()))


class LlamaScorer:
    def __init__(self, llm):
        self.llm = llm
        self.n_ctx = llm.n_ctx()
        self.evaluated_tokens = 0  # tokens actually run through the model (prefix reuse saves the rest)

    def _eval(self, seq: list[int]) -> None:
        """Make llm.scores[:len(seq)] the logits of `seq`, reusing the longest evaluated prefix."""
        llm = self.llm
        n = llm.n_tokens
        lim = min(n, len(seq))
        common = 0
        if lim:
            same = llm.input_ids[:lim] == np.asarray(seq[:lim], dtype=llm.input_ids.dtype)
            common = lim if bool(same.all()) else int(np.argmin(same))
        if common == len(seq) and common <= n:
            llm.n_tokens = common
            return
        llm.n_tokens = common
        llm.eval(seq[common:])
        self.evaluated_tokens += len(seq) - common

    def loglikelihood(self, context: list[int], continuation: list[int]) -> tuple[float, bool]:
        """(sum of the continuation's token logprobs, whether each token is the argmax)."""
        seq = (context + continuation)[-self.n_ctx:]
        start = len(seq) - len(continuation)
        if start < 1:
            raise ValueError("a continuation needs at least one context token")
        self._eval(seq)
        rows = self.llm.scores[start - 1: len(seq) - 1]
        total, greedy = 0.0, True
        for row, token in zip(rows, seq[start:]):
            total += log_softmax_at(row, token)
            greedy = greedy and int(row.argmax()) == token
        return total, greedy

    def loglikelihoods(self, pairs: list[tuple[list[int], list[int]]]) -> list[tuple[float, bool]]:
        order = sorted(range(len(pairs)), key=lambda i: pairs[i][0] + pairs[i][1])
        out: list = [None] * len(pairs)
        for i in order:
            out[i] = self.loglikelihood(*pairs[i])
        return out

    def generate(self, prompt: list[int], max_tokens: int, stop: list[str], seed: int = 1234) -> str:
        """Greedy generation (temperature 0) until a stop string, EOS or max_tokens."""
        prompt = prompt[-(self.n_ctx - max_tokens):] if len(prompt) + max_tokens > self.n_ctx else prompt
        answer = self.llm.create_completion(prompt, max_tokens=max_tokens, temperature=0.0, top_k=1,
                                            stop=[s for s in stop if s] or None, seed=seed)
        return answer["choices"][0]["text"]
