"""Argument building of `quantgate run` (no server, no lm-eval run)."""

import pytest

from quantgate.cli import build_parser
from quantgate.commands.run import config_from_args, parse_publish, parse_tasks, read_api_key
from quantgate.errors import InputError
from quantgate.lmeval.preflight import Endpoint, candidate_api_bases, public_url
from quantgate.lmeval.runner import RunConfig, VllmSettings, api_model_args, vllm_model_args

ENDPOINT = Endpoint("http://h:8000/v1", "http://h:8000/v1/completions", "http://h:8000", "m", 8192, True)


def _args(*argv):
    return build_parser().parse_args(["run", *argv])


def test_api_model_args_use_the_servers_context_and_remote_tokenizer_and_hold_no_secret(tmp_path):
    config = RunConfig(output=tmp_path / "o", endpoint="http://h:8000", api_key="sk-secret-value")
    args = api_model_args(config, ENDPOINT)
    assert args["base_url"] == "http://h:8000/v1/completions"
    assert args["max_length"] == 8192 and args["num_concurrent"] == 32
    assert args["tokenizer_backend"] == "remote" and "tokenizer" not in args
    assert "sk-secret-value" not in repr(args) and "sk-secret-value" not in repr(config)
    local = api_model_args(RunConfig(output=tmp_path, tokenizer="/tok", max_length=4096, concurrency=8), ENDPOINT)
    assert local["tokenizer_backend"] == "huggingface" and local["tokenizer"] == "/tok"
    assert local["max_length"] == 4096 and local["num_concurrent"] == 8


def test_vllm_engine_model_args():
    args = vllm_model_args(VllmSettings(model_path="/models/llama-int4", tensor_parallel_size=2, dtype="float16",
                                        quantization="gptq", gpu_memory_utilization=0.85), seed=7, max_length=8192)
    assert args == {"pretrained": "/models/llama-int4", "tensor_parallel_size": 2, "dtype": "float16",
                    "gpu_memory_utilization": 0.85, "seed": 7, "quantization": "gptq", "max_model_len": 8192}
    assert "quantization" not in vllm_model_args(VllmSettings(model_path="/m"))


def test_cli_builds_the_vllm_engine_config(tmp_path):
    config = config_from_args(_args("--engine", "vllm", "--model-path", "/m", "--tensor-parallel-size", "4",
                                    "--quantization", "awq", "--dtype", "bfloat16", "--gpu-memory-utilization",
                                    "0.8", "--output", str(tmp_path / "o"), "--suite", "tiny"))
    assert config.engine == "vllm" and config.vllm.tensor_parallel_size == 4 and config.vllm.quantization == "awq"
    with pytest.raises(InputError, match="--model-path"):
        config_from_args(_args("--engine", "vllm", "--output", "o"))


def test_task_syntax_matches_the_operators_job_builder():
    from quantgate.api.v1alpha1 import TaskSpec
    from quantgate.lmeval.plan import task_arg

    specs = [TaskSpec(name="gsm8k", num_fewshot=5, limit=100), TaskSpec(name="mmlu"), TaskSpec(name="arc_challenge",
                                                                                                limit=3)]
    assert parse_tasks(",".join(task_arg(t) for t in specs)) == specs
    with pytest.raises(InputError, match="name"):
        parse_tasks("gsm8k:five")


def test_api_key_from_file_wins_over_env(tmp_path, monkeypatch):
    monkeypatch.setenv("MY_KEY", "from-env")
    assert read_api_key("MY_KEY", None) == "from-env"
    key = tmp_path / "api-key"
    key.write_text("from-file\n")
    assert read_api_key("MY_KEY", str(key)) == "from-file"
    monkeypatch.delenv("MY_KEY")
    assert read_api_key("MY_KEY", None) is None
    with pytest.raises(InputError, match="cannot read"):
        read_api_key(None, str(tmp_path / "missing"))


def test_publish_flags():
    assert parse_publish("ns/results", "baseline") == ("ns", "results")
    assert parse_publish(None, None) is None
    for value, role, message in [("ns/results", None, "--role"), ("results", "candidate", "NAMESPACE/NAME"),
                                 (None, "baseline", "--publish-configmap")]:
        with pytest.raises(InputError, match=message):
            parse_publish(value, role)
    args = _args("--endpoint", "http://x", "--output", "o", "--publish-configmap", "ns/r", "--role", "candidate")
    assert args.publish_configmap == "ns/r" and args.role == "candidate"


def test_endpoint_url_detection():
    assert candidate_api_bases("http://h:8000") == ["http://h:8000/v1", "http://h:8000/openai/v1"]
    assert candidate_api_bases("http://h/v1/") == ["http://h/v1"]
    assert candidate_api_bases("http://h/openai/v1/completions") == ["http://h/openai/v1"]
    assert candidate_api_bases("http://h/openai") == ["http://h/openai/v1"]
    assert public_url("http://user:pw@h:8000/v1?token=x") == "http://h:8000/v1"


def test_progressive_stage_flags(tmp_path):
    config = config_from_args(_args("--endpoint", "http://h:8000", "--output", str(tmp_path / "o"), "--suite", "local",
                                    "--fraction", "0.25", "--request-cache", str(tmp_path / "cache")))
    assert config.fraction == 0.25 and config.request_cache == tmp_path / "cache"
    for bad in ("0", "1.5", "-0.1"):
        with pytest.raises(InputError):
            config_from_args(_args("--endpoint", "http://h:8000", "--output", "o", "--fraction", bad))
    from quantgate.lmeval.parallel import run_args
    argv = run_args("http://h", tmp_path / "o", suite="local", fraction=0.1, request_cache=tmp_path / "c")
    assert argv[argv.index("--fraction") + 1] == "0.1" and argv[argv.index("--request-cache") + 1] == str(tmp_path / "c")
    assert "--fraction" not in run_args("http://h", tmp_path / "o", suite="local")


def test_tokenizer_without_transformers_is_one_line_before_any_request(tmp_path, capsys, monkeypatch):
    """`--tokenizer PATH` loads a Hugging Face tokenizer: without transformers, say so at once (exit 2)."""
    import importlib.util

    from quantgate.cli import main

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a, **k: None if name == "transformers" else real(name, *a, **k))
    rc = main(["run", "--endpoint", "http://127.0.0.1:9", "--tokenizer", str(tmp_path), "--suite", "local",
               "--output", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1
    assert "quantgate[hf-tokenizer]" in err and "Traceback" not in err
    assert not (tmp_path / "out.partial").exists()
