"""Runs against a simulated endpoint: secrets never written, failures never look complete."""

import json

import pytest

from quantgate.cli import main
from quantgate.errors import InputError
from quantgate.simulate import SimulatedFleet

KEY = "sk-live-7f3a9c2e5b1d"


@pytest.fixture(scope="module")
def fleet():
    with SimulatedFleet({"seed": 5, "variants": [
        {"name": "secured", "apiKey": KEY},
        {"name": "breaks", "apiKey": KEY, "failAfter": 40},
        {"name": "hangs", "hangAfter": 0},
    ]}) as f:
        yield f


def _all_text(root, captured: str) -> str:
    files = [p for p in root.rglob("*") if p.is_file()]
    return captured + "".join(p.read_text(errors="replace") for p in files)


def test_api_key_never_reaches_files_or_logs(fleet, tmp_path, capfd, caplog):
    key_file = tmp_path / "secret" / "api-key"
    key_file.parent.mkdir()
    key_file.write_text(KEY + "\n")
    out = tmp_path / "run"
    rc = main(["run", "--endpoint", fleet.url("secured"), "--tasks", "gsm8k:2@4,arc_challenge:1@3,winogrande@2", "--local-data",
               "--api-key-file", str(key_file), "--output", str(out), "--verbose"])
    captured = capfd.readouterr()
    assert rc == 0, captured.err
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["complete"] is True and manifest["requests"] == 4 + 3 * 4 + 2 * 2
    assert {t["name"]: (t["numFewshot"], t["limit"]) for t in manifest["tasks"]} == {
        "gsm8k": (2, 4), "arc_challenge": (1, 3), "winogrande": (None, 2)}
    everything = _all_text(out, captured.out + captured.err + caplog.text)
    assert "Authorization" not in (out / "manifest.json").read_text()
    assert KEY not in everything


def test_server_failing_mid_run_leaves_an_incomplete_run_that_compare_refuses(fleet, tmp_path, capfd, caplog):
    from quantgate.lmeval.results import load_run

    out = tmp_path / "run"
    rc = main(["run", "--endpoint", fleet.url("breaks"), "--suite", "local", "--limit", "20", "--verbose",
               "--api-key-file", _key(tmp_path), "--output", str(out)])
    captured = capfd.readouterr()
    assert rc == 20, captured.err
    assert "evaluation failed" in captured.err and "Traceback" not in captured.err
    assert not out.exists()
    partial = tmp_path / "run.partial"
    manifest = json.loads((partial / "manifest.json").read_text())
    assert manifest["complete"] is False and manifest["error"]
    with pytest.raises(InputError):
        load_run(partial)
    # lm-eval logs each failed request's repr, request headers included: the key must be masked there
    assert "Authorization': 'Bearer ***'" in captured.err
    assert KEY not in _all_text(partial, captured.out + captured.err + caplog.text)


def test_interrupted_run_is_never_complete(fleet, tmp_path, monkeypatch):
    """An interruption (Ctrl-C, pod killed) between lm-eval and the manifest leaves only DIR.partial."""
    import quantgate.lmeval.runner as runner
    from quantgate.lmeval.runner import RunConfig, run_evaluation

    seen = {}

    def killed_after_lm_eval_wrote(config, specs, model_args, staging, *rest):
        # what a SIGKILL here would leave: lm-eval's file and a manifest saying incomplete
        seen["manifest"] = json.loads((staging / "manifest.json").read_text())
        (staging / "results_2026-01-01T00-00-00.json").write_text("{}")
        raise KeyboardInterrupt

    monkeypatch.setattr(runner, "_evaluate", killed_after_lm_eval_wrote)
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        run_evaluation(RunConfig(endpoint=fleet.url("secured"), api_key=KEY, suite="local", output=out))
    assert not out.exists()
    assert seen["manifest"]["complete"] is False
    assert json.loads((tmp_path / "run.partial" / "manifest.json").read_text())["complete"] is False
    from quantgate.lmeval.results import load_run

    with pytest.raises(InputError):
        load_run(tmp_path / "run.partial")


def test_existing_output_needs_force(fleet, tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "old").write_text("x")
    rc = main(["run", "--endpoint", fleet.url("secured"), "--suite", "local", "--output", str(out),
               "--api-key-file", _key(tmp_path)])
    assert rc == 2 and "--force" in capsys.readouterr().err


def _key(tmp_path):
    path = tmp_path / "key"
    path.write_text(KEY)
    return str(path)


def test_hung_server_fails_the_run_after_the_request_timeout(fleet, tmp_path, capfd):
    # a generation task: a loglikelihood task would stop earlier, at the log-probability probe
    # (exit 10, test_logprob_probe.py), before any evaluation request could hang
    out = tmp_path / "run"
    rc = main(["run", "--endpoint", fleet.url("hangs"), "--tasks", "gsm8k:0@2", "--local-data",
               "--request-timeout", "1", "--output", str(out)])
    assert rc == 20, capfd.readouterr().err
    assert not out.exists() and (tmp_path / "run.partial" / "manifest.json").exists()


def test_publish_configmap_hands_the_complete_run_to_the_results_channel(fleet, tmp_path, monkeypatch):
    import quantgate.k8s.results_channel as channel

    calls = []
    monkeypatch.setattr(channel, "publish_run", lambda *args: calls.append(args))
    out = tmp_path / "run"
    rc = main(["run", "--endpoint", fleet.url("secured"), "--api-key-file", _key(tmp_path), "--tasks",
               "gsm8k:0@2", "--local-data", "--output", str(out), "--publish-configmap", "team-a/meval-results",
               "--role", "candidate"])
    assert rc == 0
    assert calls == [(out, "team-a", "meval-results", "candidate")]
    assert json.loads((out / "manifest.json").read_text())["complete"] is True


def test_a_run_leaves_the_process_logging_as_it_found_it(fleet, tmp_path, capfd):
    """`evaluate --local` and the tests run `quantgate run` in process: afterwards quantgate's
    warnings must reach the process's own handlers again (the run turns propagation off while it
    runs; left off, they went to Python's last-resort handler and pytest's caplog saw nothing)."""
    import logging

    before = {name: (logging.getLogger(name).propagate, list(logging.getLogger(name).handlers))
              for name in ("quantgate", "lm_eval", "asyncio")}
    ok = main(["run", "--endpoint", fleet.url("secured"), "--tasks", "arc_challenge@2", "--local-data",
               "--api-key-file", _key(tmp_path), "--output", str(tmp_path / "ok")])
    refused = main(["run", "--endpoint", "http://127.0.0.1:9", "--tasks", "arc_challenge@2", "--local-data",
                    "--output", str(tmp_path / "refused")])
    capfd.readouterr()
    assert (ok, refused) == (0, 10)
    after = {name: (logging.getLogger(name).propagate, list(logging.getLogger(name).handlers))
             for name in ("quantgate", "lm_eval", "asyncio")}
    assert after == before
