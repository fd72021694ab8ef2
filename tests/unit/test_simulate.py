"""The simulated vLLM server: tokenizer, planting, HTTP API, knobs."""

import json
import urllib.error
import urllib.request

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quantgate.simulate import SimulatedFleet, load_fleet
from quantgate.simulate.config import FleetConfig
from quantgate.simulate.plan import plant
from quantgate.simulate.tokenizer import EOS_TOKEN, default_tokenizer


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_tokenizer_is_lossless(text):
    tok = default_tokenizer()
    assert tok.decode(tok.encode(text)) == text


def test_tokenizer_knows_dataset_words_and_the_eos_token():
    tok = default_tokenizer()
    assert len(tok.encode("Question: How many legs")) == 5  # Question, :, " How", " many", " legs"
    assert tok.encode(EOS_TOKEN) == [256]


def _fleet(**variant_overrides) -> FleetConfig:
    return FleetConfig.model_validate({"seed": 3, "reference": "ref", "variants": [
        {"name": "ref", "accuracy": {"gsm8k": 0.5}},
        {"name": "q", "accuracy": {"gsm8k": 0.48}, "flipRate": {"gsm8k": 0.12}, **variant_overrides}]})


def test_planting_gives_exact_accuracy_and_flip_counts():
    config = _fleet()
    items = [str(i) for i in range(250)]
    ref = plant(config, config.variant("ref"), "gsm8k", items)
    q = plant(config, config.variant("q"), "gsm8k", items)
    assert len(ref) == 125 and len(q) == 120
    assert len(ref - q) + len(q - ref) == 31  # 12% of 250 = 30, made odd to allow a net loss of 5
    assert len(ref - q) - len(q - ref) == 5
    assert plant(config, config.variant("q"), "gsm8k", items) == q  # deterministic


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 400), st.floats(0, 1), st.floats(0, 1), st.floats(0, 1))
def test_planting_is_exact_for_any_accuracy_and_flip_rate(n, acc_ref, acc_q, flip):
    config = FleetConfig.model_validate({"reference": "ref", "variants": [
        {"name": "ref", "accuracy": {"t": acc_ref}}, {"name": "q", "accuracy": {"t": acc_q}, "flipRate": {"t": flip}}]})
    items = [str(i) for i in range(n)]
    q = plant(config, config.variant("q"), "t", items)
    assert len(q) == round(acc_q * n)


def _get(url, headers=None):
    req = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return resp.status, json.load(resp) if resp.headers.get("Content-Type", "").startswith("application/json") else None


def _post(url, body, headers=None):
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json", **(headers or {})})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.load(resp)


@pytest.fixture(scope="module")
def fleet():
    config = {"seed": 1, "variants": [
        {"name": "plain", "model": "m1", "maxModelLen": 4096},
        {"name": "kserve", "routePrefix": "/openai", "apiKey": "sk-test-123456"},
    ]}
    with SimulatedFleet(config) as f:
        yield f


def test_models_health_and_tokenizer_endpoints(fleet):
    base = fleet.url("plain")
    assert _get(f"{base}/health")[0] == 200
    _, models = _get(f"{base}/v1/models")
    assert models["data"][0]["id"] == "m1" and models["data"][0]["max_model_len"] == 4096
    ids = _post(f"{base}/tokenize", {"prompt": "Question: hi", "add_special_tokens": False})["tokens"]
    assert _post(f"{base}/detokenize", {"tokens": ids})["prompt"] == "Question: hi"
    assert _get(f"{base}/tokenizer_info")[1]["eos_token"] == EOS_TOKEN


def test_generation_honours_stop_and_max_tokens(fleet):
    base = fleet.url("plain")
    prompt = "Question: something no local item asks\nAnswer:"
    full = _post(f"{base}/v1/completions", {"model": "m1", "prompt": prompt, "max_tokens": 50})
    text = full["choices"][0]["text"]
    cut = _post(f"{base}/v1/completions", {"model": "m1", "prompt": prompt, "max_tokens": 50, "stop": [" sure"]})
    assert cut["choices"][0]["text"] == text[: text.index(" sure")]
    short = _post(f"{base}/v1/completions", {"model": "m1", "prompt": prompt, "max_tokens": 2})
    assert short["usage"]["completion_tokens"] == 2 and short["choices"][0]["finish_reason"] == "length"


def test_echo_logprobs_have_a_null_first_and_one_generated_token(fleet):
    base = fleet.url("plain")
    tok = default_tokenizer()
    ids = tok.encode("Question: anything\nAnswer: yes")
    out = _post(f"{base}/v1/completions", {"model": "m1", "prompt": [ids], "max_tokens": 1, "logprobs": 1,
                                           "echo": True, "temperature": 0})
    lp = out["choices"][0]["logprobs"]
    assert lp["token_logprobs"][0] is None and len(lp["token_logprobs"]) == len(ids) + 1
    assert lp["top_logprobs"][0] is None and len(lp["top_logprobs"]) == len(ids) + 1


def test_kserve_prefix_and_bearer_auth(fleet):
    base = fleet.url("kserve")
    assert base.endswith("/openai")
    with pytest.raises(urllib.error.HTTPError) as err:
        _get(f"{base}/v1/models")
    assert err.value.code == 401
    _, models = _get(f"{base}/v1/models", {"Authorization": "Bearer sk-test-123456"})
    assert models["data"][0]["id"] == "kserve"
    with pytest.raises(urllib.error.HTTPError) as err:  # not served at the root
        _get(f"{fleet.root_url('kserve')}/v1/models", {"Authorization": "Bearer sk-test-123456"})
    assert err.value.code == 404


def test_wrong_model_name_is_a_404(fleet):
    with pytest.raises(urllib.error.HTTPError) as err:
        _post(f"{fleet.url('plain')}/v1/completions", {"model": "other", "prompt": "x"})
    assert err.value.code == 404


def test_demo_fleet_mirrors_the_seed_matrix():
    """Planted scores give INT8 < 1% average drop, both INT4 between 1 and 3%, INT4 gsm8k drops >= 2%."""
    config = load_fleet("examples/simulate/demo-fleet.yaml")
    n = {"arc_challenge": 200, "hellaswag": 200, "mmlu": 200, "truthfulqa_mc2": 150, "winogrande": 200, "gsm8k": 250}
    score = {v.name: {t: round(v.accuracy[t] * k) / k for t, k in n.items()} for v in config.variants}
    ref = sum(score["fp16"].values())
    avg = {name: (ref - sum(s.values())) / ref * 100 for name, s in score.items()}
    gsm = {name: (score["fp16"]["gsm8k"] - s["gsm8k"]) / score["fp16"]["gsm8k"] * 100 for name, s in score.items()}
    assert avg["int8"] < 1 and gsm["int8"] < 2
    assert 1 <= avg["int4-g128"] <= 3 and 1 <= avg["int4-g64"] <= 3 and avg["int4-g64"] < avg["int4-g128"]
    assert gsm["int4-g128"] >= 2 and gsm["int4-g64"] >= 2


def test_simulate_command_prints_urls_and_stops_on_sigterm(tmp_path):
    import signal
    import subprocess
    import sys

    config = tmp_path / "fleet.yaml"
    config.write_text("variants:\n  - name: a\n  - name: b\n    routePrefix: /openai\n")
    proc = subprocess.Popen([sys.executable, "-m", "quantgate.cli", "simulate", "-f", str(config)],
                            stdout=subprocess.PIPE, text=True)
    try:
        lines = [proc.stdout.readline().split("\t") for _ in range(2)]
        assert [line[0] for line in lines] == ["a", "b"] and lines[1][1].endswith("/openai")
        assert _get(f"{lines[0][1]}/health")[0] == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0


def test_bad_variants_file_is_an_input_error(tmp_path):
    from quantgate.errors import InputError

    bad = tmp_path / "bad.yaml"
    bad.write_text("variants:\n  - name: a\n    accuracy: {gsm8k: 1.5}\n")
    with pytest.raises(InputError, match="invalid variants file"):
        load_fleet(bad)
    with pytest.raises(InputError, match="cannot read"):
        load_fleet(tmp_path / "missing.yaml")


def test_simulate_json_output_is_one_parsable_line_with_live_urls(tmp_path):
    import json
    import signal
    import subprocess
    import sys
    import urllib.request
    from pathlib import Path

    demo = Path(__file__).resolve().parents[2] / "examples" / "simulate" / "demo-fleet.yaml"
    proc = subprocess.Popen([sys.executable, "-m", "quantgate.cli", "simulate", "-f", str(demo), "--variant", "fp16",
                             "-o", "json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        doc = json.loads(proc.stdout.readline())
        (variant,) = doc["variants"]
        assert variant["name"] == "fp16"
        served = json.loads(urllib.request.urlopen(variant["url"] + "/v1/models", timeout=30).read())
        assert [m["id"] for m in served["data"]] == [variant["model"]]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
