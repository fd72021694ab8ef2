"""demo-real's server part without a model: starting errors, the server config, task choice and the
comparison of generated answers (the real server runs in tests/integration/test_real_model.py)."""

import json
import socket
from pathlib import Path

import pytest

from quantgate.engines import llama_server
from quantgate.demo.server import server_tasks
from quantgate.engines.generations import agreement, generations
from quantgate.engines.llama_server import LlamaServer, ServerFailed, server_config
from quantgate.errors import InputError


def test_a_busy_port_is_one_line_before_anything_starts(tmp_path, monkeypatch):
    monkeypatch.setattr(llama_server, "missing_server_modules", lambda: [])
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(ServerFailed, match=f"port {port} on 127.0.0.1 is in use"):
            LlamaServer({"m": Path("m.gguf")}, tmp_path, port=port).start()
    assert not (tmp_path / "server-config.json").exists()


def test_missing_server_extra_names_the_modules_and_the_fix(tmp_path, monkeypatch):
    real = llama_server.importlib.util.find_spec
    monkeypatch.setattr(llama_server.importlib.util, "find_spec",
                        lambda name: None if name in ("fastapi", "sse_starlette") else real(name))
    with pytest.raises(ServerFailed) as err:
        LlamaServer({"m": Path("m.gguf")}, tmp_path).start()
    assert "(fastapi, sse_starlette missing)" in str(err.value) and "make tools-llama" in str(err.value)


def test_a_server_that_exits_reports_its_port_clash_from_the_log(tmp_path):
    server = LlamaServer({"m": Path("m.gguf")}, tmp_path, port=1234)
    server.log.write_text("INFO: started\nERROR: [Errno 98] error while attempting to bind on address "
                          "('127.0.0.1', 1234): address already in use\n")
    assert server._last_log_line() == "port 1234 on 127.0.0.1 is in use"
    server.log.write_text("ValueError: Failed to load model from file: m.gguf\n\n")
    assert server._last_log_line() == "ValueError: Failed to load model from file: m.gguf"


def test_one_config_entry_per_model_under_its_alias_generation_only():
    config = server_config({"Q4_1": Path("/m/a.gguf"), "Q2_K": Path("/m/b.gguf")}, 8123, 2048, 2, 7)
    assert config["host"] == "127.0.0.1" and config["port"] == 8123
    assert [(m["model_alias"], m["model"]) for m in config["models"]] == [("Q4_1", "/m/a.gguf"), ("Q2_K", "/m/b.gguf")]
    assert all(m["logits_all"] is False and m["n_ctx"] == 2048 and m["seed"] == 7 for m in config["models"])


def test_server_tasks_are_the_generation_tasks_unless_chosen():
    tasks = "arc_challenge:0@100,gsm8k:0@10,winogrande:0@5"
    assert server_tasks(tasks, None) == ["gsm8k:0@10"]
    assert server_tasks("arc_challenge:0@5", None) == []
    assert server_tasks(tasks, "none") == []
    assert server_tasks(tasks, "gsm8k,winogrande") == ["gsm8k:0@10", "winogrande:0@5"]
    with pytest.raises(InputError, match="--server-tasks: hellaswag is not in --tasks"):
        server_tasks(tasks, "hellaswag")


def _samples(directory: Path, task: str, texts: dict[int, str]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / f"samples_{task}_2026-12-02T11-00-00.000000.jsonl", "w") as fh:
        for doc_id, text in texts.items():
            for flt in ("strict-match", "flexible-extract"):  # lm-eval logs one record per filter
                fh.write(json.dumps({"doc_id": doc_id, "resps": [[text]], "filtered_resps": [text[:2]],
                                     "filter": flt}) + "\n")
    return directory


def test_generated_texts_are_compared_per_document(tmp_path):
    a = generations(_samples(tmp_path / "a", "gsm8k", {0: " 12", 1: " 7\n", 2: " x"}), "gsm8k")
    b = generations(_samples(tmp_path / "b", "gsm8k", {0: " 12", 1: " 7", 3: " y"}), "gsm8k")
    assert a == {0: " 12", 1: " 7\n", 2: " x"}
    found = agreement(a, b)
    assert (found.same, found.compared, found.differing, found.unmatched) == (1, 2, [1], 2)
    assert not found.identical and agreement(a, dict(a)).identical
    _samples(tmp_path / "a", "gsm8k_cot", {0: "other"})  # another task's file is not read
    assert generations(tmp_path / "a", "gsm8k") == a
    with pytest.raises(InputError, match="no samples file of task mmlu"):
        generations(tmp_path / "a", "mmlu")
