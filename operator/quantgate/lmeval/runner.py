"""Run lm-eval for one model and write a run directory the decision engine reads.

Python API (the operator's Job and the tests use it):

    config = RunConfig(endpoint="http://llm:8000", suite="local", output=Path("out/fp16"))
    run_dir = run_evaluation(config, progress=Progress(label="fp16"))

The run directory holds lm-eval's own files, written by its EvaluationTracker
(`results_<ts>.json`, `samples_<task>_<ts>.jsonl`; samples are always logged:
answer flips need them) and `manifest.json`. Everything is written into
`<output>.partial` and renamed to `<output>` only after the manifest, with
`"complete": true`, is on disk, so an interrupted run never looks complete; a
failed run leaves `<output>.partial` with `"complete": false` and the error.

The API key travels only in request headers (never in model_args, which
lm-eval copies into its results); every output file and log line is redacted.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from quantgate import __version__
from quantgate.api.v1alpha1 import TaskSpec
from quantgate.errors import InputError, QuantgateError
from quantgate.lmeval.code_tasks import check_code_tasks, code_execution
from quantgate.lmeval.offline import offline_environment
from quantgate.lmeval.preflight import Endpoint, preflight, public_url
from quantgate.lmeval.plan import effective_limit
from quantgate.lmeval.progress import Progress, SilentProgress
from quantgate.lmeval.redact import Redactor, RedactingFilter
from quantgate.lmeval.suites import resolve_tasks
from quantgate.lmeval.tls import Trust, context_from_file

RUN_FAILED = 20
MANIFEST = "manifest.json"
DEFAULT_MAX_LENGTH = 2048  # lm-eval's own default, used when the server does not report max_model_len


class RunFailed(QuantgateError):
    exit_code = RUN_FAILED


class VllmSettings(BaseModel):
    """lm-eval's in-process vLLM engine (GPU nodes; `pip install quantgate[vllm]`)."""

    model_config = ConfigDict(extra="forbid")
    model_path: str
    tensor_parallel_size: int = Field(1, ge=1)
    dtype: str = "auto"
    quantization: str | None = None
    gpu_memory_utilization: float = Field(0.9, gt=0, le=1)
    max_model_len: int | None = None


class LlamaCppSettings(BaseModel):
    """The in-process llama.cpp engine for GGUF files (quantgate/engines/llama_lm.py)."""

    model_config = ConfigDict(extra="forbid")
    model_path: str
    n_ctx: int = Field(2048, ge=16)
    n_threads: int | None = Field(None, ge=1)


class RunConfig(BaseModel):
    """Everything one run needs. `api_key` is a SecretStr: never printed or serialised."""

    model_config = ConfigDict(extra="forbid")
    output: Path
    engine: Literal["api", "vllm", "llama-cpp"] = "api"
    endpoint: str | None = None
    model: str | None = None
    suite: str | None = None
    tasks: list[TaskSpec] | None = None
    limit: int | None = Field(None, ge=1, description="Applies to every task without its own limit.")
    concurrency: int = Field(32, ge=1, le=1024)
    max_length: int | None = Field(None, ge=16)
    tokenizer: str | None = Field(None, description="Local Hugging Face tokenizer dir when the server has none.")
    api_key: SecretStr | None = None
    seed: int = 1234
    request_timeout: int = Field(300, ge=1)
    max_retries: int = Field(3, ge=1)
    vllm: VllmSettings | None = None
    llama_cpp: LlamaCppSettings | None = None
    force: bool = False
    local_data: bool | Literal["local", "local-full"] | None = Field(
        None, description="Use quantgate's own datasets (default: for suites local, local-full and code only); "
        "lets an explicit task list run on them: True or 'local' the shipped ones, 'local-full' the full-size ones.")
    offline: bool | None = Field(None, description="HF offline mode; default: on with local data or a datasets cache.")
    ca_bundle: str | None = Field(None, description="PEM CA file the endpoint's certificate must chain to.")
    insecure_skip_verify: bool = Field(False, description="Do not verify the endpoint's TLS certificate.")
    datasets: Path | None = Field(None, description="A prepared datasets cache (quantgate datasets pull), read-only.")
    label: str = ""
    fraction: float | None = Field(None, gt=0, le=1, description="Progressive stage: this share of the suite's "
                                   "documents, split equally between the tasks (task_fractions), each a prefix of a "
                                   "seeded order per subtask (quantgate.decision.progressive).")
    after: float | None = Field(None, ge=0, lt=1, description="With fraction: evaluate only the documents stage "
                                "`fraction` adds to stage `after` (0: all of them), published as a stage run that "
                                "merges with the earlier stages' (quantgate.lmeval.stage_delta).")
    request_cache: Path | None = Field(None, description="lm-eval request cache (sqlite path prefix): a later "
                                       "stage reuses the answers of the earlier ones instead of asking again.")
    shard: tuple[int, int] | None = Field(None, description="(index, count): evaluate only this shard of the "
                                          "plan (quantgate.lmeval.shard); join the shards with `quantgate merge`.")
    allow_code_execution: bool = Field(False, description="Run code tasks (model-written code, in the sandbox).")
    gen_kwargs: dict[str, str | bool | int | float] | None = Field(
        None, description="lm-eval gen_kwargs: merged into every generation task's generation_kwargs; "
        "local-completions sends the keys it does not interpret (e.g. repeat_penalty) in each request.")

    @model_validator(mode="after")
    def _stage(self) -> "RunConfig":
        if self.after is not None and (self.fraction is None or self.after >= self.fraction):
            raise ValueError(f"--after {self.after!r} needs --fraction F with F greater than it (the stage whose "
                             "added documents to evaluate)")
        if self.after is not None and self.shard is not None:
            raise ValueError("--after and --shard cannot be combined: a stage run is one piece already")
        return self

    @property
    def local_suite(self) -> str | None:
        """Which of quantgate's own datasets the tasks read: "local", "local-full" or None (the Hub's)."""
        if self.local_data is False:
            return None
        if self.suite == "local-full" and not self.tasks:
            return "local-full"
        if isinstance(self.local_data, str):
            return self.local_data
        if self.local_data is True or (not self.tasks and self.suite in ("local", "code")):
            return "local"
        return None

    @property
    def uses_local_data(self) -> bool:
        return self.local_suite is not None

    def secret(self) -> str | None:
        return self.api_key.get_secret_value() if self.api_key else None

    @property
    def trust(self) -> Trust:
        return Trust(self.ca_bundle, self.insecure_skip_verify)


# ------------------------------------------------------------------ model args
def api_model_args(config: RunConfig, endpoint: Endpoint) -> dict:
    """local-completions model_args (no secrets: lm-eval copies these into its results)."""
    args = {
        "model": endpoint.model,
        "base_url": endpoint.completions_url,
        "num_concurrent": config.concurrency,
        "max_retries": config.max_retries,
        "timeout": config.request_timeout,
        "max_length": config.max_length or endpoint.max_model_len or DEFAULT_MAX_LENGTH,
        "seed": config.seed,
        "tokenized_requests": True,
    }
    if config.tokenizer:
        args.update(tokenizer_backend="huggingface", tokenizer=config.tokenizer)
    else:
        args.update(tokenizer_backend="remote")
    if config.insecure_skip_verify:
        args["verify_certificate"] = False
    elif config.ca_bundle:
        args["ca_cert_path"] = config.ca_bundle
    return args


def vllm_model_args(settings: VllmSettings, seed: int = 1234, max_length: int | None = None) -> dict:
    """model_args for lm-eval's `vllm` model (lm_eval/models/vllm_causallms.py)."""
    args = {
        "pretrained": settings.model_path,
        "tensor_parallel_size": settings.tensor_parallel_size,
        "dtype": settings.dtype,
        "gpu_memory_utilization": settings.gpu_memory_utilization,
        "seed": seed,
    }
    if settings.quantization:
        args["quantization"] = settings.quantization
    if settings.max_model_len or max_length:
        args["max_model_len"] = settings.max_model_len or max_length
    return args


def _instrumented_completions(progress: Progress):
    """lm-eval's local-completions, counting requests for progress and the manifest."""
    from lm_eval.models.openai_completions import LocalCompletionsAPI

    class InstrumentedCompletions(LocalCompletionsAPI):
        def use_trust(self, trust: Trust) -> None:
            """lm-eval hands `verify_certificate` to both aiohttp (ssl=) and requests (verify=), which
            take different types for a CA bundle: keep the SSLContext for aiohttp, the path for requests."""
            self._requests_verify = trust.requests_verify()
            self.verify_certificate = trust.aiohttp_ssl()

        def loglikelihood(self, requests, disable_tqdm: bool = False):
            progress.phase("tokenizing", 2 * len(requests), unit="/tokenize calls")
            self._tokenizing = True
            try:
                return super().loglikelihood(requests, disable_tqdm=True)
            finally:
                self._tokenizing = False

        def _loglikelihood_tokens(self, requests, **kwargs):
            progress.phase("loglikelihood", len(requests))
            return super()._loglikelihood_tokens(requests, **kwargs)

        def generate_until(self, requests, disable_tqdm: bool = False):
            progress.phase("generate_until", len(requests))
            return super().generate_until(requests, disable_tqdm=True)

        def tok_encode(self, string, *args, **kwargs):
            # lm-eval encodes a multiple-choice context once per choice, each a /tokenize round trip:
            # remember single strings (the tokenizer is deterministic).
            if not isinstance(string, str) or args or kwargs.get("left_truncate_len"):
                return super().tok_encode(string, *args, **kwargs)
            cache = self.__dict__.setdefault("_encode_cache", {})
            key = (string, tuple(sorted(kwargs.items())))
            if key not in cache:
                cache[key] = super().tok_encode(string, **kwargs)
            if getattr(self, "_tokenizing", False):
                progress.advance(1, request=False)  # two encodes per loglikelihood request
            return list(cache[key])

        async def amodel_call(self, *args, **kwargs):
            out = await super().amodel_call(*args, **kwargs)
            progress.advance(1)
            return out

        def model_call(self, *args, **kwargs):
            aiohttp_ssl = self.verify_certificate
            self.verify_certificate = self.__dict__.get("_requests_verify", aiohttp_ssl)
            try:
                out = super().model_call(*args, **kwargs)
            finally:
                self.verify_certificate = aiohttp_ssl
            progress.advance(1)
            return out

    return InstrumentedCompletions


# ------------------------------------------------------------------ tasks
def _task_manager(local_suite: str | None):
    if local_suite == "local-full":
        from quantgate.lmeval.full_tasks import full_task_manager

        return full_task_manager()
    if local_suite:
        from quantgate.lmeval.local_tasks import local_task_manager

        return local_task_manager()
    from lm_eval.tasks import TaskManager

    return TaskManager()


def _load_tasks(task_manager, specs: list[TaskSpec], global_limit: int | None, fraction: float | None = None,
                seed: int = 1234, after: float | None = None):
    """Load tasks and apply per-task shots; return (objects, samples-or-None, plan, leaf tasks by name).
    With `fraction` (a progressive stage: that share of the suite's documents, split equally
    between the tasks by `task_fractions`) every leaf evaluates the first ceil(share * N) of its
    documents in a seeded order, and the plan records each leaf's N; every selected document draws
    the few-shot examples the run of all documents draws (shard.full_run_fewshot). With
    `after` too, only positions [c(after), c(fraction)) of that order, recorded as `pieces`."""
    from quantgate.lmeval.shard import Ids, full_run_fewshot
    from quantgate.decision.progressive import document_order, stage_count, task_fractions

    loaded_objs, samples, plan, leaves = [], {}, [], {}
    limits = {s.name: effective_limit(s, global_limit) for s in specs}
    loaded_specs = []
    for spec in specs:
        try:
            loaded = task_manager.load([spec.name])
        except Exception as exc:
            from quantgate.lmeval.datasets_cache import missing_dataset

            # reading a prepared cache, a task that exists but cannot load: its data is missing
            missing = None if isinstance(exc, KeyError) else missing_dataset(spec.name, exc)
            if missing is not None:
                raise missing from None
            if isinstance(exc, (KeyError, ValueError)):
                raise InputError(f"unknown lm-eval task {spec.name!r} ({exc}); check the task name") from None
            raise
        loaded_specs.append((spec, loaded))
    if fraction is not None:
        for spec in specs:
            if limits[spec.name]:
                raise InputError(f"task {spec.name}: a progressive run evaluates stages of every task; "
                                 "remove its limit")
        sizes = {spec.name: sum(len(leaf.eval_docs) for leaf in loaded["tasks"].values()) for spec, loaded in loaded_specs}
        shares = task_fractions(fraction, sizes)
        before = task_fractions(after, sizes) if after else None
    for spec, loaded in loaded_specs:
        documents: dict[str, int] = {}
        pieces: dict[str, list[int]] = {}
        groups = loaded.get("groups", {})
        objs = [groups[spec.name]] if spec.name in groups else list(loaded["tasks"].values())
        for leaf_name, leaf in loaded["tasks"].items():
            leaves[leaf_name] = leaf
            if spec.num_fewshot is not None:
                leaf.set_config(key="num_fewshot", value=spec.num_fewshot)
            if fraction is not None:
                total = len(leaf.eval_docs)
                documents[leaf_name] = total
                order = document_order(seed, spec.name, leaf_name, total)
                stop = stage_count(shares[spec.name], total)
                start = min(stop, stage_count(before[spec.name], total)) if before else 0
                pieces[leaf_name] = [start, stop]
                samples[leaf_name] = Ids(sorted(order[start:stop]))  # lm-eval tests `i in samples` per document
                full_run_fewshot(leaf, samples[leaf_name])
            elif limits[spec.name]:
                samples[leaf_name] = list(range(min(limits[spec.name], len(leaf.eval_docs))))
        loaded_objs.extend(objs)
        plan.append({"name": spec.name, "numFewshot": spec.num_fewshot, "limit": limits[spec.name],
                     "metric": spec.metric, "subtasks": sorted(loaded["tasks"]) if spec.name not in
                     loaded["tasks"] else [],
                     **({"fraction": fraction, "documents": documents} if fraction is not None else {}),
                     **({"after": after, "pieces": pieces} if fraction is not None and after is not None else {})})
    return loaded_objs, (samples or None), plan, leaves


# ------------------------------------------------------------------ logging
_RUNNER_LOGGERS = ("lm_eval", "quantgate", "asyncio")


@contextlib.contextmanager
def _runner_logging(redactor: Redactor, verbose: bool):
    """The run's own log handler (redacting, one format) on lm-eval's, quantgate's and asyncio's
    loggers, propagation off; on the way out every one of them is as it was before, so a run
    inside a longer-lived process (evaluate --local, tests) leaves that process's logging alone."""
    saved = {name: (list(log.handlers), log.propagate, log.level)
             for name in _RUNNER_LOGGERS for log in [logging.getLogger(name)]}
    try:
        yield _configure_logging(redactor, verbose)
    finally:
        for name, (handlers, propagate, level) in saved.items():
            log = logging.getLogger(name)
            log.handlers, log.propagate = handlers, propagate
            log.setLevel(level)


def _configure_logging(redactor: Redactor, verbose: bool) -> logging.Handler:
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s [%(name)s] %(message)s"))
    handler.addFilter(RedactingFilter(redactor))
    # Once a request has failed for good, lm-eval closes its HTTP session and logs every other
    # in-flight request's "Session is closed": noise after the real error.
    handler.addFilter(lambda record: "Session is closed" not in record.getMessage())
    if not verbose:  # lm-eval logs each failed request's repr, request headers included: too much
        handler.addFilter(lambda record: not record.getMessage().startswith("Exception:"))
        # Said once by the runner instead: --gen-kwargs (lm-eval adds advice on do_sample) and text
        # prompts without a tokenizer (lm-eval cannot name the EOS string; the server stops at EOS).
        handler.addFilter(lambda record: not record.getMessage().startswith(
            ("generation_kwargs: ", "Cannot determine EOS string")))
    for name in _RUNNER_LOGGERS:
        logger = logging.getLogger(name)
        logger.handlers = [handler]
        logger.propagate = False
        logger.setLevel(logging.INFO if verbose else logging.WARNING)
    # After a request fails for good, lm-eval's other in-flight requests die with "Session is
    # closed" and asyncio reports each as an unretrieved task: noise after our one-line error.
    if not verbose:
        logging.getLogger("asyncio").setLevel(logging.CRITICAL)
    return handler


def _quiet_progress_bars() -> None:
    os.environ.setdefault("TQDM_DISABLE", "1")
    try:
        import datasets

        datasets.disable_progress_bars()
        datasets.logging.set_verbosity_error()
    except ImportError:
        pass


# ------------------------------------------------------------------ run
def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def _prepare_dirs(output: Path, force: bool) -> Path:
    if output.exists() and (not output.is_dir() or any(output.iterdir())) and not force:
        raise InputError(f"output directory {output} already exists; remove it or pass --force")
    staging = output.with_name(output.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    return staging


def _write_json_atomic(path: Path, data: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w") as fh:
        json.dump(data, fh, indent=2)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def run_evaluation(config: RunConfig, progress: Progress | None = None, verbose: bool = False) -> Path:
    """Run lm-eval as configured; return the complete run directory (== config.output).

    Raises PreflightError (exit 10-15) before any work, InputError (2) on bad
    input, RunFailed (20) when lm-eval fails mid-run.
    """
    progress = progress or SilentProgress()
    specs = resolve_tasks(config.suite, config.tasks)
    check_code_tasks([s.name for s in specs], config.allow_code_execution, config.uses_local_data)
    redactor = Redactor([config.secret()])
    with _runner_logging(redactor, verbose):
        return _run(config, specs, redactor, progress)


def _run(config: RunConfig, specs: list[TaskSpec], redactor: Redactor, progress: Progress) -> Path:
    if config.datasets is not None:
        from quantgate.lmeval.datasets_cache import use_cache

        use_cache(config.datasets)  # Hub offline; a missing dataset fails at task loading, naming the task
    offline_environment(require_offline=config.offline if config.offline is not None else
                        (config.uses_local_data or config.datasets is not None))
    _quiet_progress_bars()

    endpoint, tasks = None, None
    if config.gen_kwargs and config.engine == "llama-cpp":
        raise InputError("--gen-kwargs: the in-process llama.cpp engine decodes greedily and takes no generation "
                         "settings; drop --gen-kwargs or evaluate through an endpoint")
    if config.engine == "api":
        if not config.endpoint:
            raise InputError("--endpoint is required (or use --engine vllm --model-path PATH)")
        if config.ca_bundle:
            context_from_file(config.ca_bundle)  # unreadable or not PEM: InputError now, not a TLS error later
        if config.insecure_skip_verify:
            _insecure_warning(config.endpoint, progress)
        if config.tokenizer:
            _check_tokenizer(config.tokenizer)
        progress.message(f"preflight {public_url(config.endpoint)}")
        endpoint = preflight(config.endpoint, config.model, config.secret(), need_remote_tokenizer=False,
                             trust=config.trust)
        model_args = api_model_args(config, endpoint)
        if not endpoint.remote_tokenizer and not config.tokenizer:
            # Only loglikelihood tasks need token ids: load the tasks now, before any output, to tell.
            tasks = _generation_only(config, specs, endpoint, progress)
            model_args.update(tokenizer_backend=None, tokenized_requests=False)
        if not config.max_length and not endpoint.max_model_len:
            progress.message(f"warning: the server does not report max_model_len; using {DEFAULT_MAX_LENGTH} "
                             "tokens (set --max-length to the served context length)")
        progress.message(f"model {endpoint.model} at {public_url(endpoint.api_base)}, "
                         f"max_length {model_args['max_length']}, concurrency {config.concurrency}")
    elif config.engine == "llama-cpp":
        if config.llama_cpp is None:
            raise InputError("--engine llama-cpp needs --model-path FILE.gguf")
        if not Path(config.llama_cpp.model_path).is_file():
            raise InputError(f"--model-path {config.llama_cpp.model_path}: no such GGUF file; check the path")
        model_args = {"model_path": config.llama_cpp.model_path,
                      "n_ctx": config.max_length or config.llama_cpp.n_ctx, "seed": config.seed}
        if config.llama_cpp.n_threads:
            model_args["n_threads"] = config.llama_cpp.n_threads
    else:
        if config.vllm is None:
            raise InputError("--engine vllm needs --model-path PATH")
        model_args = vllm_model_args(config.vllm, config.seed, config.max_length)

    staging = _prepare_dirs(config.output, config.force)
    started = _now()
    t0 = time.monotonic()
    manifest = {
        "apiVersion": "quantgate.io/v1alpha1", "kind": "RunManifest", "complete": False,
        "engine": config.engine,
        "endpoint": public_url(endpoint.api_base) if endpoint else None,
        "model": endpoint.model if endpoint else (config.llama_cpp or config.vllm).model_path,
        "suite": config.suite if not config.tasks else None,
        "localData": config.uses_local_data,
        **({"localSuite": config.local_suite} if config.local_suite == "local-full" else {}),
        "datasetsCache": str(config.datasets) if config.datasets is not None else None,
        "tlsVerify": "off" if config.insecure_skip_verify else ("caBundle" if config.ca_bundle else "system"),
        "concurrency": config.concurrency if endpoint else None,
        "maxLength": model_args.get("max_length") or model_args.get("max_model_len") or model_args.get("n_ctx"),
        "seed": config.seed, "lmEvalVersion": _lm_eval_version(), "quantgateVersion": __version__,
        "startedAt": started,
    }
    if endpoint:
        manifest["prompts"] = "tokens" if model_args.get("tokenized_requests", True) else "text"
    if config.gen_kwargs:
        manifest["genKwargs"] = config.gen_kwargs
        progress.message(f"generation kwargs for every generation task: "
                         f"{', '.join(f'{k}={v}' for k, v in config.gen_kwargs.items())}")
    # Marked incomplete from the start: a run killed at any point (SIGKILL, evicted pod) leaves a
    # directory that every reader refuses, even if lm-eval's files were already written.
    _write_json_atomic(staging / MANIFEST, manifest)
    try:
        results = _evaluate(config, specs, model_args, staging, progress, redactor, manifest, tasks)
    except QuantgateError as exc:
        _fail(staging, manifest, redactor.text(str(exc)))
        raise
    except KeyboardInterrupt:
        _fail(staging, manifest, "interrupted")
        raise
    except Exception as exc:  # lm-eval/aiohttp errors: report in one line, secrets masked
        message = redactor.text(f"{type(exc).__name__}: {exc}".splitlines()[0])[:400]
        _fail(staging, manifest, message)
        raise RunFailed(f"evaluation failed: {message}; partial output in {staging}") from None

    elapsed = time.monotonic() - t0
    manifest.update({
        "finishedAt": _now(), "durationSeconds": round(elapsed, 2),
        "requests": progress.requests,
        "throughputRps": round(progress.throughput, 2) if progress.throughput else None,
        "results": results["file"], "samples": results["samples"],
    })
    redactor.files(staging)
    manifest["complete"] = True
    _write_json_atomic(staging / MANIFEST, redactor.data(manifest))
    if config.output.exists():
        shutil.rmtree(config.output)
    os.replace(staging, config.output)
    progress.message(f"done: {progress.requests} requests in {elapsed:.1f}s → {config.output}")
    return config.output


def _insecure_warning(url: str, progress: Progress) -> None:
    import urllib3

    urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)  # one loud line instead of one per request
    line = (f"WARNING: TLS certificate verification is OFF for {public_url(url)} (insecureSkipVerify): anyone on "
            "the network path can impersonate this model; give its CA with caBundle instead")
    logging.getLogger("quantgate.runner").warning(line)
    progress.message(line)


def _check_tokenizer(path: str) -> None:
    """--tokenizer loads a Hugging Face tokenizer through transformers: fail before any work."""
    import importlib.util

    if importlib.util.find_spec("transformers") is None:
        raise InputError("--tokenizer needs the transformers package, which is not installed; "
                         "pip install 'quantgate[hf-tokenizer]' (or use a server with tokenizer endpoints)")
    if not Path(path).exists():
        raise InputError(f"--tokenizer {path}: no such directory; give a local Hugging Face tokenizer directory")


def _fail(staging: Path, manifest: dict, message: str) -> None:
    manifest.update({"complete": False, "finishedAt": _now(), "error": message})
    try:
        _write_json_atomic(staging / MANIFEST, manifest)
    except OSError:
        pass


def _lm_eval_version() -> str:
    from importlib.metadata import version

    return version("lm_eval")


def _probe_if_needed(config, model_args: dict, leaves: list, progress: Progress, manifest: dict) -> None:
    """Loglikelihood tasks are scored from echoed prompt log-probabilities: check them first."""
    from quantgate.lmeval.logprob_probe import needs_loglikelihood, probe_logprobs

    scored = needs_loglikelihood(leaves)
    if not scored:
        manifest["logprobProbe"] = "skipped: generation-only tasks"
        return
    found = probe_logprobs(model_args["base_url"], model_args["model"], config.secret(),
                           config.trust.requests_verify())
    manifest["logprobProbe"] = (f"passed: echo {found.echoed_logprob:.4f} vs generated "
                                f"{found.generated_logprob:.4f} for {found.generated_token!r}")
    progress.message(f"log-probability probe passed ({len(scored)} loglikelihood tasks)")


def _generation_only(config, specs, endpoint: Endpoint, progress: Progress) -> tuple:
    """The loaded tasks when none needs loglikelihoods (then lm-eval sends text prompts and the
    server tokenizes them); else PreflightError 14, before any output is written."""
    from quantgate.lmeval.logprob_probe import needs_loglikelihood
    from quantgate.lmeval.preflight import no_tokenizer

    task_manager = _task_manager(config.local_suite)
    loaded = _load_tasks(task_manager, specs, config.limit, config.fraction, config.seed, config.after)
    scored = needs_loglikelihood(list(loaded[3].values()))
    if scored:
        raise no_tokenizer(config.endpoint, scored)
    progress.message(f"{public_url(endpoint.api_base)} has no tokenizer endpoints: generation-only tasks, "
                     "prompts sent as text (the server tokenizes them and stops at its own end-of-sequence token)")
    return task_manager, loaded


def _evaluate(config, specs, model_args, staging: Path, progress: Progress, redactor: Redactor,
              manifest: dict, tasks: tuple | None = None) -> dict:
    from lm_eval import simple_evaluate
    from lm_eval.loggers import EvaluationTracker

    if tasks is None:
        task_manager = _task_manager(config.local_suite)
        tasks = task_manager, _load_tasks(task_manager, specs, config.limit, config.fraction, config.seed,
                                          config.after)
    task_manager, (objs, samples, plan, leaves) = tasks
    manifest["tasks"] = plan
    if config.shard:
        from quantgate.lmeval.shard import Shard, restrict

        objs, samples, manifest["shard"] = restrict(objs, samples, Shard(*config.shard))
    if config.after is not None:
        from quantgate.lmeval.stage_delta import restrict_to_delta

        objs, samples, manifest["stage"] = restrict_to_delta(objs, samples, plan)

    if config.engine == "api":
        _probe_if_needed(config, model_args, list(leaves.values()), progress, manifest)
        headers = {"Authorization": f"Bearer {config.secret()}"} if config.secret() else {"Authorization": "Bearer "}
        lm_class = _instrumented_completions(progress)
        lm = lm_class(**model_args, header=headers, auth_token=config.secret())
        lm.use_trust(config.trust)
        model, recorded_args = lm, model_args
    elif config.engine == "llama-cpp":
        from quantgate.engines.llama_lm import NAME, LlamaCppLM

        progress.message(f"loading {config.llama_cpp.model_path} into llama.cpp")
        model, recorded_args = LlamaCppLM(**model_args, progress=progress), model_args
    else:
        model, recorded_args = "vllm", model_args

    tracker = EvaluationTracker(output_path=str(staging / "results.json"))
    # Unsafe (code) tasks only where every one is quantgate's sandboxed version: the local task manager.
    sandboxed = config.allow_code_execution and config.uses_local_data
    with code_execution(sandboxed, manifest):
        results = simple_evaluate(
            model=model, model_args=recorded_args, tasks=objs, task_manager=task_manager,
            samples=samples, log_samples=True, evaluation_tracker=tracker,
            random_seed=config.seed, numpy_random_seed=config.seed, torch_random_seed=config.seed,
            fewshot_random_seed=config.seed, confirm_run_unsafe_code=sandboxed,
            use_cache=str(config.request_cache) if config.request_cache else None,
            gen_kwargs=dict(config.gen_kwargs) if config.gen_kwargs else None,
        )
    if results is None:
        raise RunFailed("lm-eval returned no results")
    if config.engine == "api":
        results["config"]["model"] = "local-completions"
    elif config.engine == "llama-cpp":
        results["config"]["model"] = NAME
    logged = results.pop("samples")
    results = redactor.data(results)
    tracker.save_results_aggregated(results=results, samples=logged)
    for task_name in results["configs"]:
        tracker.save_results_samples(task_name=task_name, samples=redactor.data(logged[task_name]))
    written = sorted(p.name for p in staging.glob("results_*.json"))
    sample_files = sorted(p.name for p in staging.glob("samples_*.jsonl"))
    if not written or len(sample_files) != len(results["configs"]):
        raise RunFailed(f"lm-eval did not write its results into {staging} (disk full or not writable?)")
    return {"file": written[-1], "samples": sample_files}
