"""Preflight: each endpoint problem fails fast, before any lm-eval work, with its own exit status."""

import time

import pytest

from quantgate.cli import main
from quantgate.simulate import SimulatedFleet

KEY = "sk-preflight-secret-4242"


@pytest.fixture(scope="module")
def fleet():
    with SimulatedFleet({"variants": [
        {"name": "ok", "model": "served-model"},
        {"name": "down", "refuseConnections": True},
        {"name": "locked", "apiKey": KEY},
        {"name": "notok", "tokenizerEndpoints": False},
        {"name": "loading", "startupDelayS": 3600},
    ]}) as f:
        yield f


@pytest.mark.parametrize("variant,extra,code,message", [
    ("down", [], 10, "unreachable"),
    ("loading", [], 11, "not healthy"),
    ("locked", [], 12, "refused the API key"),
    ("ok", ["--model", "other-model"], 13, "does not serve model 'other-model'"),
    ("notok", [], 14, "no tokenizer endpoints"),
])
def test_preflight_failures_are_fast_one_line_and_distinct(fleet, tmp_path, capsys, monkeypatch, variant, extra,
                                                           code, message):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-wrong-key-0000")
    started = time.monotonic()
    rc = main(["run", "--endpoint", fleet.url(variant), "--suite", "local", "--output", str(tmp_path / "out"),
               *extra])
    elapsed = time.monotonic() - started
    err = capsys.readouterr().err
    assert rc == code, err
    error_lines = [line for line in err.splitlines() if "error:" in line]
    assert len(error_lines) == 1 and message in error_lines[0], err
    assert "Traceback" not in err and "sk-wrong-key-0000" not in err
    assert elapsed < 30  # generous: seconds, not lm-eval's retry backoff
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.partial").exists()


def test_preflight_accepts_the_right_key_and_finds_the_served_model(fleet, tmp_path, monkeypatch):
    from quantgate.lmeval.preflight import preflight

    ep = preflight(fleet.url("locked"), None, KEY, need_remote_tokenizer=True)
    assert ep.model == "locked" and ep.remote_tokenizer and ep.completions_url.endswith("/v1/completions")
    assert ep.max_model_len == 32768


def test_kserve_prefix_is_detected_and_lm_eval_tokenizes_under_it(tmp_path, capsys):
    """Given only the host, the runner finds /openai/v1 and lm-eval's remote tokenizer finds /openai/tokenize."""
    import json

    from quantgate.lmeval.preflight import preflight

    with SimulatedFleet({"variants": [{"name": "isvc", "routePrefix": "/openai"}]}) as fleet:
        ep = preflight(fleet.root_url("isvc"), None, None, need_remote_tokenizer=True)
        assert ep.api_base.endswith("/openai/v1") and ep.tokenizer_root.endswith("/openai") and ep.remote_tokenizer
        rc = main(["run", "--endpoint", fleet.root_url("isvc"), "--tasks", "gsm8k:1@3,winogrande:0@2",
                   "--local-data", "--output", str(tmp_path / "run")])
        assert rc == 0, capsys.readouterr().err
        assert fleet.stats("isvc")["unknownPrompts"] == 0
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["endpoint"].endswith("/openai/v1") and manifest["requests"] == 3 + 2 * 2
