"""Loglikelihoods and greedy generation on a GGUF model through llama-cpp-python, in process.

`LlamaScorer` drives llama.cpp's own batch API (`llama_decode`) on one `llama_cpp.Llama`.
A continuation's loglikelihood is the sum, over its tokens, of the log-softmax of the logits
row at the position *before* each token: exactly the alignment an OpenAI server's echo gets
wrong when it is shifted by one. llama.cpp is asked for logits only at those positions (the
last context token and every continuation token but the last), so the context tokens cost no
output-layer work and no copy of a vocabulary-wide row.

Requests are scored in lexicographic order of their token sequences, so multiple-choice
requests that share a context reuse its evaluated prefix in the KV cache; only the last
context token (whose logits the next choice needs) and the choices are evaluated again. The
results come back in the callers' order.
"""

from __future__ import annotations

from typing import Callable

import numpy as np


def log_softmax_at(rows: np.ndarray, tokens: list[int]) -> np.ndarray:
    """log p(tokens[i] | row i) for each row of logits (float64 accumulation)."""
    top = rows.max(axis=1, keepdims=True)
    shifted = rows - top
    lse = np.log(np.exp(shifted).sum(axis=1, dtype=np.float64))
    picked = shifted[np.arange(len(tokens)), tokens].astype(np.float64)
    return picked - lse


class LlamaScorer:
    def __init__(self, llm):
        self.llm = llm
        self.n_ctx = llm.n_ctx()
        self.n_vocab = llm.n_vocab()
        self.evaluated_tokens = 0  # tokens actually run through the model (prefix reuse saves the rest)
        # Called with (n_past, tokens, first_output_position) for every decode: the bench replays them.
        self.on_decode: Callable[[int, list[int], int], None] | None = None

    def _decode(self, tokens: list[int], n_past: int, first_output: int) -> np.ndarray:
        """Evaluate `tokens` at positions n_past.. after dropping the KV cache from n_past on;
        return the logits rows of positions >= first_output, in order."""
        llm = self.llm
        if self.on_decode:
            self.on_decode(n_past, tokens, first_output)
        llm._ctx.kv_cache_seq_rm(-1, n_past, -1)
        batch, raw, rows = llm._batch, llm._batch.batch, []
        for start in range(0, len(tokens), llm.n_batch):
            chunk = tokens[start:start + llm.n_batch]
            raw.n_tokens = len(chunk)
            outputs = 0
            for j, token in enumerate(chunk):
                position = n_past + start + j
                raw.token[j], raw.pos[j], raw.n_seq_id[j] = token, position, 1
                raw.seq_id[j][0] = 0
                wanted = position >= first_output
                raw.logits[j] = wanted
                outputs += wanted
            llm._ctx.decode(batch)
            if outputs:
                rows.append(np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(outputs, self.n_vocab)).copy())
        # Keep llama-cpp-python's own bookkeeping true, so its generation reuses this prefix;
        # the last token's logits may not have been produced: generation must evaluate it again.
        llm.input_ids[n_past:n_past + len(tokens)] = tokens
        llm.n_tokens = n_past + len(tokens)
        llm._requires_eval = True
        self.evaluated_tokens += len(tokens)
        return np.concatenate(rows) if rows else np.empty((0, self.n_vocab), dtype=np.float32)

    def _common_prefix(self, seq: list[int]) -> int:
        llm = self.llm
        lim = min(llm.n_tokens, len(seq))
        if not lim:
            return 0
        same = llm.input_ids[:lim] == np.asarray(seq[:lim], dtype=llm.input_ids.dtype)
        return lim if bool(same.all()) else int(np.argmin(same))

    def loglikelihood(self, context: list[int], continuation: list[int]) -> tuple[float, bool]:
        """(sum of the continuation's token logprobs, whether each token is the argmax)."""
        seq = (context + continuation)[-self.n_ctx:]
        start = len(seq) - len(continuation)
        if start < 1:
            raise ValueError("a continuation needs at least one context token")
        # Re-evaluate from the last context token at the latest: its logits predict the first
        # continuation token, and only evaluated positions produce logits.
        n_past = min(self._common_prefix(seq), start - 1)
        rows = self._decode(seq[n_past:len(seq) - 1], n_past, start - 1)
        # The last continuation token is only ever predicted, never needed as a predictor; it is
        # not evaluated, so the KV cache ends one token short of seq (the next request re-evaluates it).
        wanted = seq[start:]
        logprobs = log_softmax_at(rows, wanted)
        greedy = bool((rows.argmax(axis=1) == np.asarray(wanted)).all())
        return float(logprobs.sum()), greedy

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
