"""A real model through the pipeline: SmolLM2-135M-Instruct GGUF files evaluated by llama.cpp.

Needs `make tools-llama` (llama-cpp-python's wheel, the Q4_1 reference and its Q3_K_M / Q2_K
requantizations under ~/.cache/quantgate/). Without them the tests skip, unless
QUANTGATE_REQUIRE_CLUSTER is set (make test sets it), in which case they fail.

Correctness is checked against independent computations, never against lm-eval's own CLI
on a server (which reproduces a broken server's numbers without a warning).
"""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from quantgate.engines.real_models import CANDIDATES, REFERENCE, missing, model_path

problem = missing()
if problem:
    if os.environ.get("QUANTGATE_REQUIRE_CLUSTER"):
        raise RuntimeError(f"real model test ground missing: {problem}")
    pytest.skip(f"real model test ground missing: {problem}", allow_module_level=True)

# Small on purpose (two cores): 0-shot multiple-choice items give per-choice loglikelihoods.
TASKS = "arc_challenge:0@30,winogrande:0@30"
PROMPTS = [
    ("The capital of France is", [" Paris", " Berlin", " a city in Europe"]),
    ("1, 2, 3, 4, 5, 6, 7,", [" 8", " 9", " eight"]),
    ("Question: Which planet is closest to the sun?\nAnswer:", [" Mercury", " Venus"]),
]


def _independent_logprob(model_path_: Path, context: list[int], continuation: list[int]) -> float:
    """A fresh llama.cpp context per sequence, log-softmax by hand in plain Python."""
    from llama_cpp import Llama

    llm = Llama(model_path=str(model_path_), n_ctx=512, logits_all=True, verbose=False, n_threads=2)
    seq = context + continuation
    llm.eval(seq)
    total = 0.0
    for pos in range(len(context), len(seq)):
        row = [float(x) for x in llm.scores[pos - 1]]
        top = max(row)
        total += row[seq[pos]] - top - math.log(sum(math.exp(x - top) for x in row))
    llm.close()
    return total


@pytest.fixture(scope="module")
def engine():
    from quantgate.engines.llama_lm import LlamaCppLM

    return LlamaCppLM(model_path=str(model_path(REFERENCE)), n_ctx=512, n_threads=2)


def test_engine_loglikelihoods_equal_the_log_softmax_of_the_logits(engine):
    from lm_eval.api.instance import Instance

    requests_ = [Instance("loglikelihood", {}, (ctx, cont), i) for i, (ctx, conts) in enumerate(PROMPTS)
                 for cont in conts]
    got = engine.loglikelihood(requests_)
    for req, (ll, _) in zip(requests_, got):
        ctx, cont = engine._encode_pair(*req.args)
        want = _independent_logprob(model_path(REFERENCE), ctx, cont)
        assert ll == pytest.approx(want, abs=2e-3), req.args
    by = {req.args: ll for req, (ll, _) in zip(requests_, got)}
    assert by[("1, 2, 3, 4, 5, 6, 7,", " 8")] > by[("1, 2, 3, 4, 5, 6, 7,", " eight")]  # the model counts
    assert by[("1, 2, 3, 4, 5, 6, 7,", " 8")] > -1.0


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """llama-cpp-python's own OpenAI-compatible server on the reference model (loopback)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = tmp_path_factory.mktemp("server") / "server.log"
    with open(log, "w") as sink:  # a file, not a pipe: llama.cpp logs a lot and would block on a full pipe
        proc = subprocess.Popen([sys.executable, "-m", "llama_cpp.server", "--model", str(model_path(REFERENCE)),
                                 "--host", "127.0.0.1", "--port", str(port), "--logits_all", "true", "--n_ctx",
                                 "512", "--n_threads", "2", "--model_alias", "smollm2"],
                                stdout=sink, stderr=sink)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"llama_cpp.server exited: {log.read_text()[-2000:]}")
        try:
            if requests.get(f"{url}/v1/models", timeout=2).status_code == 200:
                break
        except requests.RequestException:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"llama_cpp.server did not answer in 300 s: {log.read_text()[-2000:]}")
        time.sleep(0.2)
    yield url
    proc.terminate()
    proc.wait(timeout=30)


def test_the_probe_refuses_llama_cpp_python_server_as_shifted(server):
    from quantgate.lmeval.logprob_probe import LogprobProbeError, probe_logprobs

    with pytest.raises(LogprobProbeError) as err:
        probe_logprobs(f"{server}/v1/completions", "smollm2")
    assert err.value.kind == "shifted" and "shifted by one token" in str(err.value)


def test_greedy_generation_agrees_between_engine_and_server(engine, server):
    # The server's default repeat_penalty is 1.1 (llama-cpp-python's own extension), which is not
    # greedy decoding: with it, SmolLM2 continues " Paris." with "\n- The" instead of "\n\nThe".
    for prompt in ("The capital of France is", "Question: What is 2 + 3?\nAnswer:"):
        answer = requests.post(f"{server}/v1/completions", json={
            "model": "smollm2", "prompt": prompt, "max_tokens": 16, "temperature": 0, "seed": 1234,
            "repeat_penalty": 1.0}, timeout=120)
        text = answer.json()["choices"][0]["text"]
        assert engine.scorer.generate(engine.tok_encode(prompt), 16, []) == text


def test_generated_logprobs_from_the_server_equal_the_engine(engine, server):
    """Generation logprobs are right on the server: they match the engine's loglikelihood."""
    prefix = "1, 2, 3, 4, 5, 6, 7,"
    answer = requests.post(f"{server}/v1/completions", json={
        "model": "smollm2", "prompt": prefix, "max_tokens": 1, "temperature": 0, "logprobs": 1}, timeout=120).json()
    token, value = answer["choices"][0]["logprobs"]["tokens"][0], answer["choices"][0]["logprobs"]["token_logprobs"][0]
    ctx, cont = engine._encode_pair(prefix, token)
    assert engine.scorer.loglikelihood(ctx, cont)[0] == pytest.approx(value, abs=2e-2)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    from quantgate.cli import main

    out = tmp_path_factory.mktemp("real")
    for kind in (REFERENCE, *CANDIDATES):
        rc = main(["run", "--engine", "llama-cpp", "--model-path", str(model_path(kind)), "--tasks", TASKS,
                   "--local-data", "--output", str(out / kind), "--threads", "2"])
        assert rc == 0, kind
    return out


def _compare(runs: Path, kind: str, capsys) -> dict:
    from quantgate.cli import main

    main(["compare", "--baseline", str(runs / REFERENCE), "--candidate", str(runs / kind), "-o", "json"])
    return json.loads(capsys.readouterr().out)


def test_reference_vs_q2_k_shows_real_flips_and_divergence(runs, capsys):
    q2 = _compare(runs, "Q2_K", capsys)
    q3 = _compare(runs, "Q3_K_M", capsys)
    flips = sum(t["flips"]["correctToIncorrect"] + t["flips"]["incorrectToCorrect"] for t in q2["tasks"])
    assert flips > 0
    for t in q2["tasks"]:
        assert t["choiceKld"] > 0 and t["top1Agreement"] < 1
    mean = lambda c: sum(t["choiceKld"] for t in c["tasks"]) / len(c["tasks"])  # noqa: E731
    assert mean(q2) > mean(q3)  # the coarser quantization diverges more
    manifest = json.loads((runs / "Q2_K" / "manifest.json").read_text())
    assert manifest["engine"] == "llama-cpp" and manifest["complete"] is True
    results = json.loads(next((runs / "Q2_K").glob("results_*.json")).read_text())
    assert results["config"]["model"] == "quantgate-llama-cpp"


def test_demo_real_prints_the_matrix_on_a_small_task_set(tmp_path):
    """`make demo-real`'s driver end to end on a few questions (the make target runs the full set):
    three real models, a matrix, flips and fidelity, even though the reference scores 0 on GSM8K;
    GSM8K also through llama-cpp-python's server, whose answers must be the engine's, text for text."""
    from quantgate.engines.generations import agreement, generations

    out = tmp_path / "demo"
    proc = subprocess.run([sys.executable, "-m", "quantgate.demo.real", "--output", str(out),
                           "--tasks", "arc_challenge:0@6,gsm8k:0@2"], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    server_at = next(i for i, line in enumerate(lines)
                     if line.startswith("Generation through llama-cpp-python's server"))
    lines, served_lines = lines[:server_at], lines[server_at:]
    rows = {line.split()[0]: line for line in lines if line.split()[:1] in (["Reference"], ["Q3_K_M"], ["Q2_K"])}
    assert set(rows) == {"Reference", "Q3_K_M", "Q2_K"}
    assert any(v in rows["Q2_K"] for v in ("Ship", "Monitor", "ABTest", "Block"))
    assert any(line.strip().startswith("Q2_K: arc_challenge KLD") for line in lines)
    assert (out / "report.html").is_file() and all((out / k / "manifest.json").is_file() for k in rows if k != "Reference")
    for kind in (REFERENCE, *CANDIDATES):
        manifest = json.loads((out / "server" / kind / "manifest.json").read_text())
        assert manifest["engine"] == "api" and manifest["prompts"] == "text"
        assert manifest["genKwargs"] == {"repeat_penalty": 1.0} and manifest["logprobProbe"].startswith("skipped")
        served, engine = generations(out / "server" / kind, "gsm8k"), generations(out / kind, "gsm8k")
        assert len(served) == 2 and agreement(served, engine).identical, (kind, served, engine)
        assert any(line.split()[:2] in ([kind, "gsm8k"], [kind, "(Reference)"]) and line.rstrip().endswith("2/2")
                   for line in served_lines), kind
    assert "every generated answer is identical through the server and the in-process engine" in proc.stdout


def test_a_server_that_cannot_load_its_model_fails_in_one_line(tmp_path):
    from quantgate.engines.llama_server import LlamaServer, ServerFailed

    bad = tmp_path / "truncated.gguf"
    with open(model_path(REFERENCE), "rb") as whole:
        bad.write_bytes(whole.read(4096))  # a real GGUF header, no tensors
    with pytest.raises(ServerFailed) as err:
        LlamaServer({"bad": bad}, tmp_path / "server", n_threads=2).start()
    message = str(err.value)
    assert "llama_cpp.server exited with status" in message and "Failed to load model" in message
    assert "\n" not in message
