"""The log-probability probe: servers whose echoed prompt logprobs are missing or shifted are
refused before any loglikelihood task (exit 17, one line); generation-only tasks still run."""

import json

import pytest

from quantgate.cli import main
from quantgate.lmeval.logprob_probe import BROKEN_LOGPROBS, LogprobProbeError, probe_logprobs
from quantgate.simulate import SimulatedFleet


@pytest.fixture(scope="module")
def fleet():
    with SimulatedFleet({"variants": [
        {"name": "good"},
        {"name": "missing", "promptLogprobs": "missing"},
        {"name": "shifted", "promptLogprobs": "shifted"},
        {"name": "failing", "errorRate": 1.0},
    ]}) as f:
        yield f


def test_a_right_server_passes_with_echo_equal_to_generation(fleet):
    found = probe_logprobs(fleet.url("good") + "/v1/completions", "good")
    assert found.echoed_logprob == pytest.approx(found.generated_logprob)
    assert found.generated_logprob > -1 and found.prompt_tokens >= 10


@pytest.mark.parametrize("variant,kind,words", [
    ("missing", "missing", "no log-probabilities for prompt tokens"),
    ("shifted", "shifted", "shifted by one token"),
])
def test_broken_servers_are_named(fleet, variant, kind, words):
    with pytest.raises(LogprobProbeError) as err:
        probe_logprobs(fleet.url(variant) + "/v1/completions", variant)
    assert err.value.kind == kind and err.value.exit_code == BROKEN_LOGPROBS
    message = str(err.value)
    assert words in message and "\n" not in message and "--engine llama-cpp" in message


@pytest.mark.parametrize("variant,words", [("missing", "no log-probabilities for prompt tokens"),
                                           ("shifted", "shifted by one token")])
def test_run_refuses_loglikelihood_tasks_in_seconds(fleet, tmp_path, capsys, variant, words):
    rc = main(["run", "--endpoint", fleet.url(variant), "--tasks", "arc_challenge:0@3,gsm8k:0@2",
               "--local-data", "--output", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert rc == BROKEN_LOGPROBS, err
    lines = [line for line in err.splitlines() if "error:" in line]
    assert len(lines) == 1 and words in lines[0] and "Traceback" not in err
    manifest = json.loads((tmp_path / "out.partial" / "manifest.json").read_text())
    assert manifest["complete"] is False and words in manifest["error"]
    assert fleet.stats(variant)["unknownPrompts"] == 0


def test_generation_only_tasks_still_run_on_a_broken_server(fleet, tmp_path, capsys):
    rc = main(["run", "--endpoint", fleet.url("shifted"), "--tasks", "gsm8k:0@2", "--local-data",
               "--output", str(tmp_path / "gen")])
    assert rc == 0, capsys.readouterr().err
    manifest = json.loads((tmp_path / "gen" / "manifest.json").read_text())
    assert manifest["logprobProbe"].startswith("skipped")


def test_a_right_server_runs_loglikelihood_tasks_and_records_the_probe(fleet, tmp_path, capsys):
    rc = main(["run", "--endpoint", fleet.url("good"), "--tasks", "arc_challenge:0@3", "--local-data",
               "--output", str(tmp_path / "ok")])
    assert rc == 0, capsys.readouterr().err
    manifest = json.loads((tmp_path / "ok" / "manifest.json").read_text())
    assert manifest["logprobProbe"].startswith("passed")


def test_a_failing_server_is_unhealthy_not_a_logprob_verdict(fleet):
    """HTTP 500 on every completion says nothing about log-probabilities: exit 11 (not healthy), so
    the operator reports a failed Job, never an EndpointRefused verdict on the server's logprobs."""
    from quantgate.lmeval.preflight import PreflightError

    with pytest.raises(PreflightError) as err:
        probe_logprobs(fleet.url("failing") + "/v1/completions", "failing")
    assert not isinstance(err.value, LogprobProbeError) and err.value.exit_code == 11
    assert "HTTP 500" in str(err.value) and "healthy" in str(err.value)
