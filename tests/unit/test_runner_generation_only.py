"""Generation through servers without tokenizer endpoints, and --gen-kwargs (llama-cpp-python's server
has neither /tokenize nor greedy defaults)."""

import json

import pytest

from quantgate.cli import build_parser, main
from quantgate.commands.run import config_from_args, parse_gen_kwargs
from quantgate.errors import InputError
from quantgate.simulate import SimulatedFleet


@pytest.fixture(scope="module")
def fleet():
    with SimulatedFleet({"variants": [{"name": "notok", "tokenizerEndpoints": False},
                                      {"name": "ok"}]}) as f:
        yield f


def _results(run_dir):
    return json.loads(next(run_dir.glob("results_*.json")).read_text())


def test_generation_only_tasks_run_without_tokenizer_endpoints_as_text_prompts(fleet, tmp_path, capsys):
    out = tmp_path / "run"
    rc = main(["run", "--endpoint", fleet.url("notok"), "--tasks", "gsm8k:0@4", "--local-data", "--output", str(out),
               "--gen-kwargs", "repeat_penalty=1.0,top_k=1"])
    err = capsys.readouterr().err
    assert rc == 0, err
    assert "no tokenizer endpoints: generation-only tasks, prompts sent as text" in err
    assert "generation kwargs for every generation task: repeat_penalty=1.0, top_k=1" in err
    assert "Cannot determine EOS string" not in err and "specified through cli" not in err  # said once, above
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["prompts"] == "text" and manifest["genKwargs"] == {"repeat_penalty": 1.0, "top_k": 1}
    assert manifest["logprobProbe"].startswith("skipped") and manifest["requests"] == 4
    results = _results(out)
    assert results["config"]["model_args"]["tokenized_requests"] is False
    assert results["config"]["gen_kwargs"] == {"repeat_penalty": 1.0, "top_k": 1}  # recorded: comparability sees it
    stats = fleet.stats("notok")
    assert stats["unknownPrompts"] == 0 and stats["tokenize"] == 0  # the simulator tokenized the text itself
    assert {"repeat_penalty", "top_k"} <= set(stats["requestKeys"])  # lm-eval forwards them in each request


def test_loglikelihood_tasks_still_need_a_tokenizer_and_fail_before_any_output(fleet, tmp_path, capsys):
    out = tmp_path / "run"
    rc = main(["run", "--endpoint", fleet.url("notok"), "--tasks", "gsm8k:0@2,winogrande:0@2", "--local-data",
               "--output", str(out)])
    err = capsys.readouterr().err
    assert rc == 14, err
    line = next(line for line in err.splitlines() if "error:" in line)
    assert "no tokenizer endpoints" in line and "loglikelihood tasks (winogrande)" in line
    assert not out.exists() and not (tmp_path / "run.partial").exists()


def test_servers_with_a_tokenizer_keep_token_prompts(fleet, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", "--endpoint", fleet.url("ok"), "--tasks", "gsm8k:0@2", "--local-data",
                 "--output", str(out)]) == 0, capsys.readouterr().err
    assert json.loads((out / "manifest.json").read_text())["prompts"] == "tokens"
    assert not _results(out)["config"].get("gen_kwargs")


def test_gen_kwargs_parse_to_typed_values_with_one_line_errors():
    assert parse_gen_kwargs("repeat_penalty=1.0, top_k=1,do_sample=false,name=x") == {
        "repeat_penalty": 1.0, "top_k": 1, "do_sample": False, "name": "x"}
    assert parse_gen_kwargs(None) is None
    for bad in ("repeat_penalty", "=1", "a b=1", "x=", ","):
        with pytest.raises(InputError, match="--gen-kwargs"):
            parse_gen_kwargs(bad)


def test_the_llama_cpp_engine_refuses_gen_kwargs(tmp_path, capsys):
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF")
    config = config_from_args(build_parser().parse_args([
        "run", "--engine", "llama-cpp", "--model-path", str(gguf), "--tasks", "gsm8k", "--output", str(tmp_path / "o"),
        "--gen-kwargs", "repeat_penalty=1.1"]))
    assert config.gen_kwargs == {"repeat_penalty": 1.1}
    rc = main(["run", "--engine", "llama-cpp", "--model-path", str(gguf), "--tasks", "gsm8k", "--local-data",
               "--output", str(tmp_path / "o"), "--gen-kwargs", "repeat_penalty=1.1"])
    err = capsys.readouterr().err
    assert rc == 2 and "decodes greedily and takes no generation settings" in err
    assert not (tmp_path / "o").exists() and not (tmp_path / "o.partial").exists()
