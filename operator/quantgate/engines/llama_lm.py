"""lm-eval model `quantgate-llama-cpp`: a GGUF file evaluated in process by llama.cpp.

    simple_evaluate(model="quantgate-llama-cpp", model_args={"model_path": "m.gguf", "n_ctx": 2048})

Tokenization is the GGUF file's own (llama.cpp's tokenizer); loglikelihoods come from the
logits at the right positions (`LlamaScorer`); generation is greedy.
"""

from __future__ import annotations

import os

from lm_eval.api.model import TemplateLM
from lm_eval.api.registry import register_model
from lm_eval.utils import get_rolling_token_windows, make_disjoint_window

from quantgate.engines.llama_scoring import LlamaScorer

NAME = "quantgate-llama-cpp"


def load_llama(model_path: str, n_ctx: int = 2048, n_threads: int | None = None, seed: int = 1234):
    try:
        from llama_cpp import Llama
    except ImportError:
        from quantgate.errors import InputError

        raise InputError("--engine llama-cpp needs llama-cpp-python: pip install 'quantgate[llama-cpp]' "
                         "(or `make tools`, which builds and caches its wheel)") from None
    # logits_all=False: the scorer asks llama.cpp for the rows it needs itself (LlamaScorer._decode),
    # and generation needs only the last one; True would copy a vocabulary-wide row per token.
    return Llama(model_path=model_path, n_ctx=n_ctx, n_batch=min(512, n_ctx), logits_all=False,
                 n_threads=n_threads or os.cpu_count() or 1, seed=seed, verbose=False)


@register_model(NAME)
class LlamaCppLM(TemplateLM):
    def __init__(self, model_path: str, n_ctx: int = 2048, n_threads: int | None = None, seed: int = 1234,
                 max_gen_toks: int = 256, progress=None, **_ignored):
        super().__init__()
        self.llm = load_llama(model_path, int(n_ctx), int(n_threads) if n_threads else None, int(seed))
        self.scorer = LlamaScorer(self.llm)
        self.max_gen_toks = int(max_gen_toks)
        self.seed = int(seed)
        self.progress = progress

    @property
    def eot_token_id(self) -> int:
        return int(self.llm.token_eos())

    @property
    def prefix_token_id(self) -> int:
        bos = self.llm.token_bos()
        return int(bos) if bos is not None and bos >= 0 else self.eot_token_id

    @property
    def max_length(self) -> int:
        return self.scorer.n_ctx

    def tok_encode(self, string: str, add_special_tokens: bool | None = None, **kwargs) -> list[int]:
        return self.llm.tokenize(string.encode("utf-8"), add_bos=bool(add_special_tokens), special=True)

    def tok_decode(self, tokens) -> str:
        return self.llm.detokenize(list(tokens)).decode("utf-8", errors="replace")

    def _loglikelihood_tokens(self, requests, disable_tqdm: bool = False, **kwargs):
        if self.progress:
            self.progress.phase("loglikelihood", len(requests))
        out = []
        pairs = [(list(ctx), list(cont)) for _, ctx, cont in requests]
        order = sorted(range(len(pairs)), key=lambda i: pairs[i][0] + pairs[i][1])
        results: list = [None] * len(pairs)
        for i in order:
            results[i] = self.scorer.loglikelihood(*pairs[i])
            if self.progress:
                self.progress.advance(1)
        for (key, _, _), res in zip(requests, results):
            self.cache_hook.add_partial("loglikelihood", key, res)
            out.append(res)
        return out

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False) -> list[float]:
        out = []
        for (string,) in [req.args for req in requests]:
            windows = map(make_disjoint_window, get_rolling_token_windows(
                token_list=self.tok_encode(string), prefix_token=self.prefix_token_id,
                max_seq_len=self.max_length, context_len=1))
            total = sum(self.scorer.loglikelihood(list(ctx), list(cont))[0] for ctx, cont in windows)
            self.cache_hook.add_partial("loglikelihood_rolling", (string,), total)
            out.append(total)
        return out

    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
        if self.progress:
            self.progress.phase("generate_until", len(requests))
        out = []
        for req in requests:
            context, gen_kwargs = req.args
            kwargs = dict(gen_kwargs or {})
            until = kwargs.get("until") or []
            until = [until] if isinstance(until, str) else list(until)
            max_toks = int(kwargs.get("max_gen_toks") or self.max_gen_toks)
            text = self.scorer.generate(self.tok_encode(context), max_toks, until, self.seed)
            for stop in until:  # llama.cpp stops at the string; cut it as lm-eval's models do
                if stop and stop in text:
                    text = text.split(stop)[0]
            self.cache_hook.add_partial("generate_until", (context, gen_kwargs), text)
            out.append(text)
            if self.progress:
                self.progress.advance(1)
        return out
