"""The simulated vLLM-compatible HTTP server (aiohttp), one variant per server.

Routes (also under `routePrefix`, e.g. KServe's /openai):
  GET  /health                 200 once startupDelayS has passed (503 before)
  GET  /v1/models              the served model, with max_model_len
  POST /v1/completions         generation (stop, max_tokens) and echo+logprobs scoring
  POST /tokenize, /detokenize, GET /tokenizer_info   (vLLM's tokenizer endpoints)
  GET  /stats                  simulator-only counters for tests and benchmarks (and the request keys seen)
Bearer auth (apiKey) guards /v1/* as `vllm serve --api-key` does.
"""

from __future__ import annotations

import asyncio
import json
import random
import time

from aiohttp import web

from quantgate.simulate.config import FleetConfig, Variant
from quantgate.simulate.index import ItemIndex
from quantgate.simulate.model import SimulatedModel
from quantgate.simulate.tokenizer import EOS_TOKEN, Tokenizer


class Stats:
    def __init__(self) -> None:
        self.completions = 0
        self.completion_prompts = 0
        self.tokenize = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.first_request: float | None = None
        self.last_response: float | None = None
        self.request_keys: set[str] = set()  # every key seen in a completion request's body

    def as_dict(self, model: SimulatedModel) -> dict:
        return {
            "completions": self.completions, "completionPrompts": self.completion_prompts,
            "tokenize": self.tokenize, "maxInFlight": self.max_in_flight,
            "firstRequest": self.first_request, "lastResponse": self.last_response,
            "unknownPrompts": model.unknown_prompts, "requestKeys": sorted(self.request_keys),
        }


def _error(status: int, message: str, kind: str = "BadRequestError") -> web.Response:
    return web.json_response({"object": "error", "message": message, "type": kind, "code": status}, status=status)


def build_app(config: FleetConfig, variant: Variant, index: ItemIndex, tokenizer: Tokenizer) -> web.Application:
    model = SimulatedModel(config, variant, index, tokenizer)
    stats = Stats()
    started = time.monotonic()
    slots = asyncio.Semaphore(variant.max_num_seqs)
    faults = random.Random(f"{config.seed}|{variant.name}|faults")

    def ready() -> bool:
        return time.monotonic() - started >= variant.startup_delay_s

    @web.middleware
    async def auth(request: web.Request, handler):
        if variant.api_key and "/v1/" in request.path:
            if request.headers.get("Authorization", "") != f"Bearer {variant.api_key}":
                return _error(401, "Unauthorized", "AuthenticationError")
        return await handler(request)

    async def health(request):
        return web.Response(status=200 if ready() else 503)

    async def models(request):
        if not ready():
            return _error(503, "model is loading", "ServiceUnavailableError")
        return web.json_response({"object": "list", "data": [{
            "id": variant.served_model, "object": "model", "created": 0, "owned_by": "quantgate-simulator",
            "root": variant.served_model, "max_model_len": variant.max_model_len}]})

    def _prompts(raw) -> list[list[int]]:
        if isinstance(raw, str):
            return [tokenizer.encode(raw)]
        if raw and isinstance(raw[0], int):
            return [raw]
        return [tokenizer.encode(p) if isinstance(p, str) else p for p in raw]

    async def completions(request):
        body = await request.json()
        if body.get("model") != variant.served_model:
            return _error(404, f"The model `{body.get('model')}` does not exist.", "NotFoundError")
        stats.completions += 1
        stats.request_keys.update(body)
        count = stats.completions
        if variant.hang_after is not None and count > variant.hang_after:
            await asyncio.sleep(3600)
        if (variant.fail_after is not None and count > variant.fail_after) or faults.random() < variant.error_rate:
            return _error(500, "simulated server error", "InternalServerError")
        prompts = _prompts(body.get("prompt", ""))
        if any(len(p) > variant.max_model_len for p in prompts):
            return _error(400, f"This model's maximum context length is {variant.max_model_len} tokens.")
        echo, logprobs = body.get("echo", False), body.get("logprobs")
        stop = body.get("stop") or []
        stop = [stop] if isinstance(stop, str) else stop
        max_tokens = int(body.get("max_tokens") or 16)
        async with slots:
            stats.in_flight += 1
            stats.max_in_flight = max(stats.max_in_flight, stats.in_flight)
            stats.first_request = stats.first_request or time.time()
            try:
                choices, generated = [], 0
                for i, ids in enumerate(prompts):
                    stats.completion_prompts += 1
                    counting = model.is_counting(ids)  # the log-probability probe's prompts
                    if echo and logprobs is not None:
                        shifted = variant.prompt_logprobs == "shifted"
                        answer = model.counting_echo(ids, shifted) if counting else model.echo_logprobs(ids)
                        if variant.prompt_logprobs == "missing" or (shifted and not counting):
                            answer = model.broken_echo(answer, variant.prompt_logprobs)
                        text = tokenizer.decode(ids) + answer.text
                    elif logprobs is not None and counting:
                        answer = model.counting_generate(ids, max_tokens)
                        text = answer.text
                    else:
                        answer = model.generate(ids, max_tokens, stop)
                        text = answer.text
                    generated += answer.tokens
                    choices.append({"index": i, "text": text, "logprobs": answer.logprobs,
                                    "finish_reason": answer.finish_reason, "stop_reason": None})
                delay = (variant.latency_ms + variant.per_token_ms * generated) / 1000
                if delay:
                    await asyncio.sleep(delay)
            finally:
                stats.in_flight -= 1
                stats.last_response = time.time()
        prompt_tokens = sum(len(p) for p in prompts)
        return web.json_response({
            "id": f"cmpl-{count}", "object": "text_completion", "created": int(time.time()),
            "model": variant.served_model, "choices": choices,
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": generated,
                      "total_tokens": prompt_tokens + generated}},
            dumps=lambda o: json.dumps(o, separators=(",", ":")))

    async def tokenize(request):
        body = await request.json()
        stats.tokenize += 1
        ids = tokenizer.encode(body.get("prompt", ""))
        return web.json_response({"count": len(ids), "max_model_len": variant.max_model_len, "tokens": ids})

    async def detokenize(request):
        body = await request.json()
        try:
            return web.json_response({"prompt": tokenizer.decode(body.get("tokens", []))})
        except ValueError as exc:
            return _error(400, str(exc))

    async def tokenizer_info(request):
        return web.json_response({
            "tokenizer_class": "QuantgateSimulatorTokenizer", "eos_token": EOS_TOKEN, "bos_token": None,
            "pad_token": None, "unk_token": None, "model_max_length": variant.max_model_len,
            "vocab_size": tokenizer.vocab_size})

    async def stats_route(request):
        return web.json_response(stats.as_dict(model))

    app = web.Application(middlewares=[auth], client_max_size=64 * 1024 * 1024)
    prefix = variant.route_prefix.rstrip("/")
    for root in {"", prefix}:
        app.router.add_get(f"{root}/health", health)
        app.router.add_get(f"{root}/stats", stats_route)
    app.router.add_get(f"{prefix}/v1/models", models)
    app.router.add_post(f"{prefix}/v1/completions", completions)
    if variant.tokenizer_endpoints:
        # lm-eval's RemoteTokenizer looks next to the completions URL minus "/v1/completions".
        app.router.add_post(f"{prefix}/tokenize", tokenize)
        app.router.add_post(f"{prefix}/detokenize", detokenize)
        app.router.add_get(f"{prefix}/tokenizer_info", tokenizer_info)
    return app


def tls_context(variant: Variant):
    """The server-side TLS context of a variant with tlsCertFile/tlsKeyFile, else None (plain HTTP)."""
    if not variant.tls_cert_file:
        return None
    import ssl

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(variant.tls_cert_file, variant.tls_key_file)
    return context


async def serve(app: web.Application, host: str, port: int, ssl_context=None) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)  # hung handlers must not delay exit
    await runner.setup()
    site = web.TCPSite(runner, host, port, ssl_context=ssl_context)
    await site.start()
    sock = site._server.sockets[0]  # the bound port when port=0
    return runner, sock.getsockname()[1]
