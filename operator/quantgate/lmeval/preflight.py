"""Check an OpenAI-compatible endpoint before any work, failing fast with one line.

Each failure has its own exit status (documented in docs/runner.md):
  10 unreachable      11 not healthy / no OpenAI API      12 unauthorized
  13 model not served 14 no tokenizer endpoints (and no --tokenizer given) for loglikelihood tasks
  15 the endpoint's TLS certificate is not trusted (give its CA with --ca-bundle)
No retries: a preflight answers in seconds, not after lm-eval's backoff.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import requests

from quantgate.errors import QuantgateError
from quantgate.lmeval.tls import Trust, tls_failure, untrusted_message

CONNECT_TIMEOUT = 3.0
READ_TIMEOUT = 15.0


class PreflightError(QuantgateError):
    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code


UNREACHABLE, UNHEALTHY, UNAUTHORIZED, MODEL_NOT_SERVED, NO_TOKENIZER, TLS_UNTRUSTED = 10, 11, 12, 13, 14, 15


@dataclass(frozen=True)
class Endpoint:
    api_base: str  # …/v1 or …/openai/v1
    completions_url: str
    tokenizer_root: str  # where lm-eval's RemoteTokenizer looks: completions URL minus /v1/completions
    model: str
    max_model_len: int | None
    remote_tokenizer: bool


def public_url(url: str) -> str:
    """The URL without credentials, query or fragment (safe to log and record)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path.rstrip("/"), "", ""))


def candidate_api_bases(url: str) -> list[str]:
    """…/v1 as given; else the URL + /v1, then + /openai/v1 (KServe's Hugging Face runtime)."""
    base = url.rstrip("/")
    for suffix in ("/completions", "/models"):
        if base.endswith(suffix):
            base = base[: -len(suffix)]
    if base.endswith("/v1"):
        return [base]
    if base.endswith("/openai"):
        return [base + "/v1"]
    return [base + "/v1", base + "/openai/v1"]


class _Client:
    def __init__(self, api_key: str | None, trust: Trust | None = None):
        self.session = requests.Session()
        # per request, not session.verify: REQUESTS_CA_BUNDLE in the environment would override the session's
        self.verify = (trust or Trust()).requests_verify()
        if api_key:
            self.session.headers["Authorization"] = f"Bearer {api_key}"

    def get(self, url: str):
        return self.session.get(url, timeout=(CONNECT_TIMEOUT, READ_TIMEOUT), verify=self.verify)

    def post(self, url: str, body: dict):
        return self.session.post(url, json=body, timeout=(CONNECT_TIMEOUT, READ_TIMEOUT), verify=self.verify)


def _unreachable(url: str, exc: Exception) -> PreflightError:
    tls = tls_failure(exc)
    if tls:
        return PreflightError(untrusted_message(public_url(url), tls), TLS_UNTRUSTED)
    kind = "timed out" if isinstance(exc, requests.Timeout) else "connection failed"
    return PreflightError(f"endpoint {public_url(url)} is unreachable ({kind}); check the URL and that the "
                          "server is running", UNREACHABLE)


def _check_status(resp, url: str) -> None:
    if resp.status_code in (401, 403):
        raise PreflightError(f"endpoint {public_url(url)} refused the API key (HTTP {resp.status_code}); pass the "
                             "right key with --api-key-env or --api-key-file", UNAUTHORIZED)
    if resp.status_code >= 500:
        raise PreflightError(f"endpoint {public_url(url)} is not healthy (HTTP {resp.status_code}); wait until the "
                             "model has loaded and retry", UNHEALTHY)


def preflight(url: str, model: str | None, api_key: str | None, need_remote_tokenizer: bool,
              trust: Trust | None = None) -> Endpoint:
    client = _Client(api_key, trust)
    listing, api_base = None, None
    for base in candidate_api_bases(url):
        try:
            resp = client.get(f"{base}/models")
        except requests.RequestException as exc:
            raise _unreachable(url, exc) from None
        _check_status(resp, url)
        if resp.status_code == 200:
            try:
                listing, api_base = resp.json(), base
            except ValueError:
                continue
            break
    if listing is None:
        raise PreflightError(f"no OpenAI-compatible API at {public_url(url)} (tried "
                             f"{', '.join(b[len(url.rstrip('/')):] or '/v1' for b in candidate_api_bases(url))}"
                             "/models); give the base URL of a vLLM or KServe endpoint", UNHEALTHY)
    server_root = api_base[: -len("/v1")]
    try:
        health = client.get(f"{server_root}/health")
        if health.status_code >= 500:
            raise PreflightError(f"endpoint {public_url(url)} is not healthy (/health answered "
                                 f"{health.status_code}); wait until the model has loaded and retry", UNHEALTHY)
    except requests.RequestException as exc:
        raise _unreachable(url, exc) from None

    served = {m.get("id"): m for m in listing.get("data", []) if isinstance(m, dict)}
    if model is None:
        if len(served) != 1:
            raise PreflightError(f"endpoint serves {len(served)} models ({', '.join(served) or 'none'}); choose one "
                                 "with --model", MODEL_NOT_SERVED)
        model = next(iter(served))
    elif model not in served:
        raise PreflightError(f"endpoint {public_url(url)} does not serve model {model!r} (it serves "
                             f"{', '.join(map(repr, served)) or 'nothing'}); fix --model", MODEL_NOT_SERVED)
    max_len = served[model].get("max_model_len")

    completions = f"{api_base}/completions"
    tok_root = completions.replace("/v1/completions", "").rstrip("/")
    remote = _has_tokenizer(client, tok_root)
    if need_remote_tokenizer and not remote:
        raise no_tokenizer(url)
    return Endpoint(api_base, completions, tok_root, model, int(max_len) if max_len else None, remote)


def no_tokenizer(url: str, tasks: list[str] | None = None) -> PreflightError:
    need = f" for its loglikelihood tasks ({', '.join(tasks[:3])}{', ...' if len(tasks) > 3 else ''})" if tasks else ""
    return PreflightError(f"endpoint {public_url(url)} has no tokenizer endpoints (/tokenizer_info, /tokenize; "
                          f"vLLM needs --enable-tokenizer-info-endpoint){need}; pass --tokenizer PATH to a local "
                          "Hugging Face tokenizer directory instead, or run generation-only tasks", NO_TOKENIZER)


def _has_tokenizer(client: _Client, root: str) -> bool:
    try:
        info = client.get(f"{root}/tokenizer_info")
        if info.status_code != 200:
            return False
        tok = client.post(f"{root}/tokenize", {"prompt": "hello", "add_special_tokens": False})
        return tok.status_code == 200 and isinstance(tok.json().get("tokens"), list)
    except (requests.RequestException, ValueError):
        return False
