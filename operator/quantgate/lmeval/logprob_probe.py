"""Refuse endpoints whose prompt log-probabilities are wrong, before any loglikelihood task.

lm-eval scores multiple-choice and loglikelihood tasks from the log-probabilities a server
echoes for the prompt tokens (`echo: true, logprobs: 1`). Some servers get these wrong
without any error: llama-cpp-python's server scores every prompt token with the
distribution that predicts the *next* token (shifted by one), and llama.cpp's own
`llama-server` returns log-probabilities for generated tokens only. lm-eval then reports
numbers that mean nothing. Generation log-probabilities are right on both, which gives an
independent check:

1. generate one token greedily after a short prompt (`PROBE_PREFIX`), with its logprob;
2. echo the prompt followed by that token, with logprobs;
3. the echo must hold one entry per prompt token (the echoed tokens spell the prompt; else
   `usage.prompt_tokens`), and its entry for
   the last prompt token must equal the generated token's logprob (same model, same context).

A mismatch whose value instead appears one position earlier (in the echo's
`top_logprobs`) is "shifted by one"; no entries for the prompt is "missing prompt
logprobs"; anything else is "inconsistent". Each raises `LogprobProbeError` (exit 17) with
one line naming the problem and what to do. Generation-only tasks do not need the probe.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import requests

from quantgate.lmeval.preflight import PreflightError, public_url

BROKEN_LOGPROBS = 17
PROBE_PREFIX = "1, 2, 3, 4, 5, 6, 7,"
TIMEOUT = (3.0, 30.0)
LOGLIKELIHOOD_TYPES = ("loglikelihood", "loglikelihood_rolling", "multiple_choice")
REMEDY = ("evaluate GGUF models with --engine llama-cpp --model-path FILE.gguf, serve the model with vLLM, "
          "or run generation-only tasks")


class LogprobProbeError(PreflightError):
    def __init__(self, message: str, kind: str):
        super().__init__(message, BROKEN_LOGPROBS)
        self.kind = kind


@dataclass(frozen=True)
class ProbeResult:
    generated_token: str
    generated_logprob: float
    echoed_logprob: float
    prompt_tokens: int


def close(a: float, b: float) -> bool:
    """Same context, same model: equal up to batch-size rounding (generous: a shift is nats away)."""
    return abs(a - b) <= 0.05 + 0.05 * abs(b)


def _post(session: requests.Session, url: str, body: dict, verify: bool | str = True) -> dict:
    try:
        resp = session.post(url, json=body, timeout=TIMEOUT, verify=verify)  # per request: REQUESTS_CA_BUNDLE would win over a session setting
    except requests.RequestException as exc:
        raise PreflightError(f"log-probability probe: {public_url(url)} did not answer ({type(exc).__name__}); "
                             "check that the server is running", 10) from None
    if resp.status_code >= 500 or resp.status_code in (401, 403, 404, 408, 429):
        # the server (or the path to it) is failing, not refusing logprobs: no verdict on its logprobs
        raise PreflightError(f"log-probability probe: {public_url(url)} answered HTTP {resp.status_code} to a "
                             "completion; check that the server is healthy", 11)
    if resp.status_code != 200:
        raise LogprobProbeError(f"log-probability probe: {public_url(url)} refused a completion with logprobs "
                                f"(HTTP {resp.status_code}); loglikelihood tasks need prompt log-probabilities; "
                                f"{REMEDY}", "missing")
    try:
        return resp.json()
    except ValueError:
        raise LogprobProbeError(f"log-probability probe: {public_url(url)} answered no JSON; {REMEDY}",
                                "inconsistent") from None


def _logprobs(answer: dict) -> dict:
    choices = answer.get("choices") or [{}]
    return (choices[0] or {}).get("logprobs") or {}


def _number(x) -> float | None:
    return float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) else None


def _prompt_entries(tokens: list, prompt: str) -> int | None:
    """How many echoed entries spell the prompt (a BOS token the server adds has none); None
    when the token strings do not spell it (byte pieces, or no prompt entries at all)."""
    spelled = ""
    for i, token in enumerate(tokens):
        if not isinstance(token, str):
            return None
        spelled += token
        if spelled == prompt:
            return i + 1
        if len(spelled) >= len(prompt):
            return None
    return None


def probe_logprobs(completions_url: str, model: str, api_key: str | None = None,
                   verify: bool | str = True) -> ProbeResult:
    """Run the probe against an OpenAI-compatible /v1/completions URL; raise LogprobProbeError.
    `verify`: requests' TLS setting (a CA bundle path for private CAs; quantgate.lmeval.tls)."""
    session = requests.Session()
    if api_key:
        session.headers["Authorization"] = f"Bearer {api_key}"
    where = public_url(completions_url)
    gen = _post(session, completions_url, {"model": model, "prompt": PROBE_PREFIX, "max_tokens": 1,
                                           "temperature": 0, "logprobs": 1, "seed": 1234}, verify)
    glp = _logprobs(gen)
    g_tokens, g_values = glp.get("tokens") or [], glp.get("token_logprobs") or []
    g_text = ((gen.get("choices") or [{}])[0] or {}).get("text")
    if not g_tokens or not g_values or _number(g_values[-1]) is None or not isinstance(g_text, str) or not g_text:
        raise LogprobProbeError(f"log-probability probe: {where} returns no log-probabilities for generated tokens, "
                                f"so nothing it scores can be checked; {REMEDY}", "missing")
    g_token, g_value = g_tokens[-1], float(g_values[-1])

    echo = _post(session, completions_url, {"model": model, "prompt": PROBE_PREFIX + g_text, "max_tokens": 1,
                                            "temperature": 0, "logprobs": 1, "echo": True, "seed": 1234}, verify)
    elp = _logprobs(echo)
    values = elp.get("token_logprobs") or []
    tokens = elp.get("tokens") or []
    tops = elp.get("top_logprobs") or []
    n = _prompt_entries(tokens, PROBE_PREFIX + g_text)
    if n is None:
        n = (echo.get("usage") or {}).get("prompt_tokens")
        if not isinstance(n, int) or n < 2:
            n = ((gen.get("usage") or {}).get("prompt_tokens") or 0) + 1
    prompt_values = [_number(v) for v in values[1:n]]
    if len(values) < n or not any(v is not None for v in prompt_values):
        raise LogprobProbeError(
            f"log-probability probe: {where} returns no log-probabilities for prompt tokens (echo gave "
            f"{len(values)} entries for {n} prompt tokens), so loglikelihood tasks would score chance "
            f"(llama.cpp's llama-server does this); {REMEDY}", "missing")
    if len(values) > n + 1:
        raise LogprobProbeError(
            f"log-probability probe: {where} returns {len(values)} echo log-probabilities for {n} prompt tokens "
            f"and 1 generated token (one entry per prompt token expected); {REMEDY}", "inconsistent")
    last = _number(values[n - 1])
    if last is not None and close(last, g_value) and (len(tokens) < n or tokens[n - 1] == g_token):
        return ProbeResult(g_token, g_value, last, n)
    earlier = tops[n - 2] if len(tops) >= n - 1 and isinstance(tops[n - 2], dict) else {}
    shown = "none" if last is None else f"{last:.4f}"
    if _number(earlier.get(g_token)) is not None and close(float(earlier[g_token]), g_value):
        raise LogprobProbeError(
            f"log-probability probe: {where} returns prompt log-probabilities shifted by one token (echo scores "
            f"the last prompt token {g_token!r} {shown}, greedy generation from the shorter prefix "
            f"{g_value:.4f}, which the echo reports one position earlier; llama-cpp-python's server does this); "
            f"{REMEDY}", "shifted")
    raise LogprobProbeError(
        f"log-probability probe: {where} returns inconsistent prompt log-probabilities (echo scores the last "
        f"prompt token {g_token!r} {shown}, greedy generation from the shorter prefix {g_value:.4f}); {REMEDY}",
        "inconsistent")


def needs_loglikelihood(task_objects) -> list[str]:
    """Names of the loaded lm-eval tasks (leaves under groups too) scored from loglikelihoods."""
    out = []

    def visit(obj) -> None:
        if isinstance(obj, dict):
            for value in obj.values():
                visit(value)
            return
        kind = getattr(obj, "OUTPUT_TYPE", None) or getattr(getattr(obj, "config", None), "output_type", None)
        if kind in LOGLIKELIHOOD_TYPES:
            out.append(getattr(obj, "task_name", None) or getattr(obj.config, "task", "?"))

    for obj in task_objects:
        visit(obj)
    return out
