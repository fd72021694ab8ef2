"""`quantgate run`: lm-eval for one model against one endpoint (or in-process vLLM).

Exit status: 0 complete; 2 bad input; 10 unreachable; 11 not healthy / no OpenAI
API; 12 unauthorized; 13 model not served; 14 no tokenizer endpoints (needed by loglikelihood
tasks only); 15 the endpoint's TLS certificate is not trusted;
16 the --datasets cache lacks a task's data;
17 broken prompt log-probabilities for loglikelihood tasks (lmeval/logprob_probe.py); 20 the
evaluation failed mid-run (the output is left as <DIR>.partial, marked incomplete);
21 results could not be published; 130 interrupted.
"""

from __future__ import annotations

import argparse
import os
import sys
import re

from quantgate.errors import InputError, QuantgateError

PUBLISH_FAILED = 21
TASK_ARG = re.compile(r"^(?P<name>[A-Za-z0-9_.\-]+)(?::(?P<shots>\d+))?(?:@(?P<limit>\d+))?$")


class PublishFailed(QuantgateError):
    exit_code = PUBLISH_FAILED


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "run", help="run lm-eval against an OpenAI-compatible endpoint and write a run directory",
        description="Run lm-eval (its Python API) for one model. Preflight checks the endpoint first; results, "
                    "per-question samples and manifest.json go to --output (complete only when the run is). "
                    "Exit codes: 10 unreachable, 11 unhealthy, 12 unauthorized, 13 model not served, "
                    "14 no tokenizer endpoints, 15 TLS certificate not trusted, 16 datasets cache incomplete, "
                    "17 broken prompt log-probabilities, "
                    "20 failed mid-run, 21 publishing failed.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--endpoint", metavar="URL", help="base URL (…, …/v1 or KServe's …/openai/v1 are detected)")
    p.add_argument("--model", help="served model name (default: the one /v1/models lists)")
    p.add_argument("--suite", choices=("leaderboard", "tiny", "local", "local-full", "code"),
                   help="named task suite (default leaderboard)")
    p.add_argument("--tasks", metavar="LIST", help="comma-separated tasks, each name[:shots][@limit], e.g. gsm8k:5@100")
    p.add_argument("--local-data", nargs="?", const="local", choices=("local", "local-full"), metavar="SUITE",
                   help="run --tasks on quantgate's own datasets: those shipped (local, the default) or the "
                        "full-size generated ones (local-full); implied by --suite local, local-full or code")
    p.add_argument("--limit", type=int, help="evaluate only the first N documents of each task (not for tiny tasks)")
    p.add_argument("--concurrency", type=int, default=32, help="requests in flight (lm-eval's own default is 1)")
    p.add_argument("--max-length", type=int, help="context length (default: the server's max_model_len)")
    p.add_argument("--shard", metavar="I/N", help="evaluate only shard I (0-based) of N, split by expected cost; "
                   "join the N outputs with `quantgate merge`")
    p.add_argument("--output", "-o", required=True, metavar="DIR", help="run directory to create")
    p.add_argument("--force", action="store_true", help="replace an existing --output directory")
    p.add_argument("--tokenizer", metavar="PATH", help="local Hugging Face tokenizer, for servers without /tokenize")
    p.add_argument("--api-key-env", metavar="VAR", default="OPENAI_API_KEY", help="environment variable with the key")
    p.add_argument("--api-key-file", metavar="PATH", help="file with the key (a mounted Secret); wins over the env")
    p.add_argument("--ca-bundle", metavar="FILE", help="PEM CA certificates the endpoint's TLS certificate must "
                   "chain to (a private CA); default: the system CAs")
    p.add_argument("--insecure-skip-verify", action="store_true",
                   help="do not verify the endpoint's TLS certificate (insecure; logged as a warning)")
    p.add_argument("--datasets", metavar="DIR", help="read datasets only from this prepared cache (quantgate "
                   "datasets pull), with the Hugging Face Hub offline; may be read-only")
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--gen-kwargs", metavar="KEY=VALUE,...", help="merged into every generation task's "
                   "generation_kwargs (lm-eval's gen_kwargs, recorded in its results); an endpoint gets the keys "
                   "lm-eval does not interpret in each request, e.g. repeat_penalty=1.0 for llama-cpp-python's "
                   "server, whose default 1.1 is not greedy decoding")
    p.add_argument("--allow-code-execution", action="store_true",
                   help="let code tasks (suite code: humaneval, mbpp) run the model's code, each sample in "
                        "quantgate's sandbox (docs/security.md); without it they are refused")
    p.add_argument("--request-timeout", type=int, default=300, help="seconds per request")
    p.add_argument("--engine", choices=("api", "vllm", "llama-cpp"), default="api",
                   help="vllm: load the model in-process (GPU); llama-cpp: a GGUF file in-process (CPU)")
    p.add_argument("--model-path", help="--engine vllm: weights directory or Hugging Face id; "
                   "--engine llama-cpp: the .gguf file")
    p.add_argument("--threads", type=int, help="--engine llama-cpp: CPU threads (default: all cores)")
    p.add_argument("--tensor-parallel-size", type=int, default=1)
    p.add_argument("--dtype", default="auto")
    p.add_argument("--quantization", help="vLLM quantization method (awq, gptq, fp8, ...)")
    p.add_argument("--gpu-memory-utilization", type=float, default=0.9)
    p.add_argument("--publish-configmap", metavar="NAMESPACE/NAME", help="after a complete run, store the results "
                   "in this ConfigMap (inside the operator's runner Job)")
    p.add_argument("--role", choices=("baseline", "candidate"), help="with --publish-configmap: which model this is")
    p.add_argument("--progress-interval", type=float, default=10.0, help="seconds between progress lines in logs")
    p.add_argument("--label", default="", help="prefix for progress lines")
    p.add_argument("--verbose", action="store_true", help="show lm-eval's INFO logs")
    p.add_argument("--fraction", type=float, metavar="F", help="one progressive stage: F of the suite's documents, "
                   "split equally between the tasks, each a prefix of a seeded order (evaluate --progressive runs "
                   "the stages)")
    p.add_argument("--after", type=float, metavar="F0", help="with --fraction F: only the documents stage F adds "
                   "to stage F0 (0: all of stage F), written as a stage run that `quantgate merge` or the operator "
                   "joins with the earlier stages' (stages append)")
    p.add_argument("--request-cache", metavar="PATH", help="lm-eval request cache: a rerun or a later stage "
                   "reuses answers already given")
    p.set_defaults(func=run)


def parse_tasks(text: str):
    from quantgate.api.v1alpha1 import TaskSpec

    specs = []
    for part in filter(None, (x.strip() for x in text.split(","))):
        m = TASK_ARG.match(part)
        if not m:
            raise InputError(f"--tasks: {part!r} is not name[:shots][@limit], e.g. gsm8k:5@100")
        specs.append(TaskSpec(name=m["name"], num_fewshot=int(m["shots"]) if m["shots"] else None,
                              limit=int(m["limit"]) if m["limit"] else None))
    if not specs:
        raise InputError("--tasks is empty; list at least one task")
    return specs


def parse_gen_kwargs(text: str | None) -> dict | None:
    """KEY=VALUE,... → dict; numbers and true/false become numbers and booleans."""
    if text is None:
        return None
    out: dict = {}
    for part in filter(None, (x.strip() for x in text.split(","))):
        key, eq, raw = part.partition("=")
        if not eq or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key.strip()) or not raw.strip():
            raise InputError(f"--gen-kwargs: {part!r} is not KEY=VALUE, e.g. repeat_penalty=1.0")
        out[key.strip()] = _scalar(raw.strip())
    if not out:
        raise InputError("--gen-kwargs is empty; give KEY=VALUE pairs, e.g. repeat_penalty=1.0")
    return out


def _scalar(raw: str):
    if raw.lower() in ("true", "false"):
        return raw.lower() == "true"
    for kind in (int, float):
        try:
            return kind(raw)
        except ValueError:
            pass
    return raw


def read_api_key(env_var: str | None, key_file: str | None) -> str | None:
    if key_file:
        try:
            with open(key_file) as fh:
                key = fh.read().strip()
        except OSError as exc:
            raise InputError(f"--api-key-file {key_file}: cannot read ({exc.strerror})") from None
        if not key:
            raise InputError(f"--api-key-file {key_file} is empty; mount the Secret key holding the API key")
        return key
    return os.environ.get(env_var or "OPENAI_API_KEY") or None


def parse_publish(value: str | None, role: str | None) -> tuple[str, str] | None:
    if value is None:
        if role is not None:
            raise InputError("--role only makes sense with --publish-configmap NAMESPACE/NAME")
        return None
    namespace, _, name = value.partition("/")
    if not namespace or not name or "/" in name:
        raise InputError(f"--publish-configmap {value!r}: expected NAMESPACE/NAME")
    if role is None:
        raise InputError("--publish-configmap needs --role baseline|candidate")
    return namespace, name


def config_from_args(args):
    from pathlib import Path

    from quantgate.lmeval.runner import RunConfig, VllmSettings

    if args.suite and args.tasks:
        raise InputError("give either --suite or --tasks, not both")
    vllm = None
    if args.engine == "vllm":
        if not args.model_path:
            raise InputError("--engine vllm needs --model-path PATH")
        vllm = VllmSettings(model_path=args.model_path, tensor_parallel_size=args.tensor_parallel_size,
                            dtype=args.dtype, quantization=args.quantization,
                            gpu_memory_utilization=args.gpu_memory_utilization, max_model_len=args.max_length)
    llama = None
    if args.engine == "llama-cpp":
        from quantgate.lmeval.runner import LlamaCppSettings

        if not args.model_path:
            raise InputError("--engine llama-cpp needs --model-path FILE.gguf")
        llama = LlamaCppSettings(model_path=args.model_path, n_threads=args.threads)
    elif not args.endpoint and args.engine == "api":
        raise InputError("--endpoint URL is required (or --engine vllm --model-path PATH)")
    if args.ca_bundle and args.insecure_skip_verify:
        raise InputError("give --ca-bundle or --insecure-skip-verify, not both")
    try:
        return RunConfig(
            output=Path(args.output), engine=args.engine, endpoint=args.endpoint, model=args.model,
            suite=args.suite, tasks=parse_tasks(args.tasks) if args.tasks else None, limit=args.limit,
            concurrency=args.concurrency, max_length=args.max_length, tokenizer=args.tokenizer,
            api_key=read_api_key(args.api_key_env, args.api_key_file), seed=args.seed,
            request_timeout=args.request_timeout, vllm=vllm, llama_cpp=llama, force=args.force, label=args.label,
            local_data=args.local_data, fraction=args.fraction, after=args.after,
            request_cache=Path(args.request_cache) if args.request_cache else None,
            ca_bundle=args.ca_bundle, insecure_skip_verify=args.insecure_skip_verify,
            datasets=Path(args.datasets) if args.datasets else None,
            shard=_shard(args.shard), allow_code_execution=args.allow_code_execution,
            gen_kwargs=parse_gen_kwargs(args.gen_kwargs))
    except ValueError as exc:  # pydantic: one line, no values echoed (the key is a SecretStr anyway)
        first = str(exc).splitlines()
        raise InputError(" ".join(first[1:3]).strip() or "invalid arguments") from None


def _shard(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    from quantgate.lmeval.shard import parse_shard

    shard = parse_shard(text)
    return shard.index, shard.count


def _publish_refusal(publish: tuple[str, str], role: str, message: str) -> None:
    try:
        from quantgate.k8s.results_channel import publish_refusal

        publish_refusal(publish[0], publish[1], role, message)
    except Exception as exc:  # the refusal itself stands; the operator then reports a failed Job
        print(f"quantgate run: could not publish the refusal to ConfigMap {'/'.join(publish)}: "
              f"{type(exc).__name__}", file=sys.stderr)


def run(args) -> int:
    from quantgate.lmeval.progress import Progress
    from quantgate.lmeval.runner import run_evaluation

    target = parse_publish(args.publish_configmap, args.role)
    config = config_from_args(args)
    try:
        run_dir = run_evaluation(config, progress=Progress(interval=args.progress_interval, label=args.label),
                                 verbose=args.verbose)
    except QuantgateError as exc:
        from quantgate.lmeval.logprob_probe import LogprobProbeError

        if target and isinstance(exc, LogprobProbeError):  # the probe refused: tell the operator why
            _publish_refusal(target, args.role, str(exc))
        raise
    if target:
        publish(run_dir, target, args.role)
    print(run_dir)
    return 0


def publish(run_dir, target: tuple[str, str], role: str) -> None:
    """Store a complete run directory in the results ConfigMap(s) NAMESPACE/NAME (PublishFailed on error)."""
    try:
        from quantgate.k8s.results_channel import publish_run
    except ImportError as exc:
        raise PublishFailed(f"cannot publish results: {exc}") from None
    try:
        from quantgate.lmeval.merge import piece_kind

        piece = piece_kind(run_dir)
        if piece:  # a shard's share or a progressive stage's added documents, merged by the operator
            from quantgate.k8s.shard_channel import publish_piece

            target = (target[0], publish_piece(run_dir, target[0], target[1], role, piece))
        else:
            publish_run(run_dir, target[0], target[1], role)
    except QuantgateError:
        raise
    except Exception as exc:  # kubernetes ApiException and friends: one line
        raise PublishFailed(f"publishing results to ConfigMap {'/'.join(target)} failed: "
                            f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}") from None
    print(f"published results to ConfigMap {'/'.join(target)} ({role})")
