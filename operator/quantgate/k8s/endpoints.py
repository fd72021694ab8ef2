"""Where a model is served: KServe InferenceService resolution and the endpoint preflight.

Pure functions take the objects read from the API; `preflight` is the only network call
(a GET of /v1/models with a short timeout) and never logs or returns the API key.
"""

from __future__ import annotations

import hashlib
import json
import logging
import ssl
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field

from quantgate.api.v1alpha1 import ConfigMapKeyRef, ModelSource, SecretKeyRef
from quantgate.errors import InputError
from quantgate.lmeval.tls import context_from_pem, tls_failure, untrusted_message

log = logging.getLogger("quantgate.endpoints")

KSERVE_GROUP, KSERVE_VERSION, KSERVE_PLURAL = "serving.kserve.io", "v1beta1", "inferenceservices"


@dataclass(frozen=True)
class Resolved:
    """A model's endpoint as the runner will use it (None url: the in-Job vLLM engine)."""

    url: str | None
    model: str | None
    secret: SecretKeyRef | None
    identity: str  # stable, secret-free identity for the baseline cache
    ca_bundle: ConfigMapKeyRef | None = None  # the source's own; the chart default applies in trust.effective_ca
    insecure: bool = False


@dataclass(frozen=True)
class TLS:
    """How the preflight verifies an https endpoint: the system CAs, only `ca_pem`'s CAs, or not at all."""

    ca_pem: str | None = None
    insecure: bool = False

    def key(self) -> str:
        if self.insecure:
            return "insecure"
        return hashlib.sha256(self.ca_pem.encode()).hexdigest() if self.ca_pem else "system"

    def context(self) -> ssl.SSLContext | None:
        if self.insecure:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            return context
        return context_from_pem(self.ca_pem) if self.ca_pem else None


class TLSProblem(str):
    """A preflight problem that is about TLS trust: retrying with the same trust cannot succeed."""


@dataclass(frozen=True)
class NotReady:
    reason: str
    message: str


def isvc_ready(isvc: dict) -> tuple[bool, str]:
    """KServe readiness: condition Ready=True and an address URL."""
    status = isvc.get("status") or {}
    ready = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), None)
    if not ready or ready.get("status") != "True":
        why = (ready or {}).get("message") or (ready or {}).get("reason") or "no Ready condition yet"
        return False, f"InferenceService {isvc['metadata']['name']} not Ready: {why}"
    if not ((status.get("address") or {}).get("url") or status.get("url")):
        return False, f"InferenceService {isvc['metadata']['name']} has no status.address.url"
    return True, ""


def resolve(source: ModelSource, get_isvc) -> Resolved | NotReady:
    """Resolve one model source. `get_isvc(name)` returns the InferenceService dict or None."""
    if source.endpoint is not None:
        ep = source.endpoint
        return Resolved(ep.url.rstrip("/"), ep.model, ep.api_key_secret_ref, f"endpoint:{ep.url.rstrip('/')}",
                        source.ca_bundle, bool(source.insecure_skip_verify))
    if source.llama_cpp is not None:
        g = source.llama_cpp
        return Resolved(None, g.model_path, None, f"llama-cpp:{g.pvc or ''}:{g.model_path}")
    if source.vllm is not None:
        v = source.vllm
        ident = f"vllm:{v.pvc or ''}:{v.model_path}:{v.quantization or ''}:{v.dtype}:{v.tensor_parallel_size}"
        return Resolved(None, v.model_path, None, ident)
    ref = source.inference_service_ref
    assert ref is not None
    isvc = get_isvc(ref.name)
    if isvc is None:
        return NotReady("InferenceServiceNotFound", f"InferenceService {ref.name} not found")
    ok, why = isvc_ready(isvc)
    if not ok:
        return NotReady("InferenceServiceNotReady", why)
    status = isvc["status"]
    url = ((status.get("address") or {}).get("url") or status["url"]).rstrip("/")
    meta = isvc["metadata"]
    # a new ISVC generation (new weights, new runtime) is a new model for the cache
    ident = f"isvc:{meta.get('namespace')}/{meta['name']}@{meta.get('uid')}/{meta.get('generation')}"
    return Resolved(url, ref.model or ref.name, ref.api_key_secret_ref, ident, source.ca_bundle,
                    bool(source.insecure_skip_verify))


def model_urls(base: str) -> list[str]:
    """Candidate /models URLs: the base may already end in /v1, or serve KServe's /openai/v1."""
    base = base.rstrip("/")
    if base.endswith("/v1"):
        return [base + "/models"]
    return [base + "/v1/models", base + "/openai/v1/models"]


def preflight(url: str, model: str | None, api_key: str | None, timeout: float,
              tls: TLS | None = None) -> str | None:
    """None when the endpoint answers /v1/models (and serves `model`); else a one-line reason
    (a TLSProblem when the endpoint's certificate is not trusted)."""
    last = "no answer"
    try:
        context = tls.context() if tls else None
    except InputError as exc:
        return TLSProblem(f"TLS: caBundle unusable: {exc}")
    if tls and tls.insecure:
        log.warning("TLS certificate verification is OFF for %s (insecureSkipVerify): anyone on the network "
                    "path can impersonate this model; give its CA with caBundle instead", url)
    for candidate in model_urls(url):
        request = urllib.request.Request(candidate)
        if api_key:
            request.add_header("Authorization", f"Bearer {api_key}")
        try:
            with urllib.request.urlopen(request, timeout=timeout, context=context) as response:
                body = json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as exc:
            last = f"{candidate} answered HTTP {exc.code}"
            continue
        except (OSError, ValueError) as exc:
            reason = tls_failure(exc)
            if reason:
                return TLSProblem(untrusted_message(url, reason))
            last = f"{candidate} unreachable: {type(exc).__name__}"
            continue
        served = [m.get("id") for m in body.get("data") or [] if isinstance(m, dict)]
        if model and served and model not in served:
            return f"{url} does not serve model {model} (serves {', '.join(map(str, served))})"
        return None
    return last


@dataclass
class PreflightCache:
    """Recent preflight answers, so that 200 evaluations created against one endpoint pair
    cost two preflights, not 400: a success is trusted for `ttl_s`, a failure for
    `failure_ttl_s` (an endpoint that is down is asked again at most that often, and the
    evaluations waiting on it do not queue behind its timeout). Concurrent callers for one
    endpoint share a single request (single-flight: they wait for its answer, no lock is held
    while it runs); at most `parallel` requests run at once. The key includes a hash of the
    API key, never the key itself."""

    ttl_s: float = 10.0
    check: object = None  # preflight(url, model, api_key, timeout) -> str | None; None: `preflight`
    failure_ttl_s: float = 5.0
    parallel: int = 16
    _answers: dict = field(default_factory=dict)  # key -> (until monotonic, problem or None)
    _flights: dict = field(default_factory=dict)  # key -> threading.Event of the running request
    _guard: threading.Lock = field(default_factory=threading.Lock)
    _slots: threading.Semaphore | None = None

    def __call__(self, url: str, model: str | None, api_key: str | None, timeout: float,
                 tls: TLS | None = None) -> str | None:
        key = (url, model, hashlib.sha256(api_key.encode()).hexdigest() if api_key else None,
               tls.key() if tls else "system")
        while True:
            with self._guard:
                until, problem = self._answers.get(key, (0.0, None))
                if until > time.monotonic():
                    return problem
                flight = self._flights.get(key)
                if flight is None:  # ours to ask
                    flight = self._flights[key] = threading.Event()
                    break
            flight.wait(timeout * 3 + 1)  # another caller asks; then read its answer
        try:
            if self._slots is None:
                with self._guard:
                    self._slots = self._slots or threading.Semaphore(max(1, self.parallel))
            with self._slots:
                problem = (self.check or preflight)(url, model, api_key, timeout, *([tls] if tls else []))
            ttl = self.ttl_s if problem is None else self.failure_ttl_s
            with self._guard:
                if ttl > 0:
                    self._answers[key] = (time.monotonic() + ttl, problem)
                else:
                    self._answers.pop(key, None)
            return problem
        finally:
            with self._guard:
                self._flights.pop(key, None)
            flight.set()
