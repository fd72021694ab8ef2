"""Hostile completions: a model server answers humaneval with attacks; each is contained.

`quantgate run --tasks humaneval --local-data --allow-code-execution` against tests/hostile_model.py,
whose first eight answers read the environment and files for the API key and a ServiceAccount
token, write outside the working directory, connect to a loopback listener, fork-bomb, loop
forever, allocate far more memory than allowed, delete the runner's files and kill the runner;
the other 56 answers are correct. The run must finish with exactly those eight samples failed,
and the host is checked afterwards: no loot, no markers, no connection, the canary file and the
run intact, the key in no output, no sandbox process left.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from quantgate.lmeval.sandbox import SANDBOX_ID_BASE, isolation

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from hostile_model import HostileModel, Listener, Server, Targets, build_app  # noqa: E402

pytestmark = pytest.mark.slow
KEY = "sk-hostile-test-2f9c1e77d04b"
TOKEN = "eyJhbGciOiJSUzI1NiJ9.sa-token-stand-in.4b1f"
MARKERS = ["/tmp/quantgate-hostile-marker", "/var/tmp/quantgate-hostile-marker", "/dev/shm/quantgate-hostile-marker"]


def _sandbox_processes() -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid >= SANDBOX_ID_BASE and (entry / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
                    pids.append(int(entry.name))
            except (OSError, IndexError):
                continue
    return pids


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory):
    if isolation() != "root":
        pytest.skip(f"the full sandbox needs root (here: {isolation()}); see docs/security.md")
    for marker in MARKERS:
        assert not os.path.exists(marker)
    base = tmp_path_factory.mktemp("hostile")
    secrets = base / "secrets"
    secrets.mkdir(mode=0o700)
    key_file, token_file = secrets / "api-key", secrets / "token"
    key_file.write_text(KEY)
    token_file.write_text(TOKEN)
    for f in (key_file, token_file):
        f.chmod(0o600)
    loot = base / "loot"
    loot.mkdir()
    loot.chmod(0o777)  # even a world-writable directory outside the sandbox stays empty
    canary = base / "runner-file"
    canary.write_text("runner data")
    canary.chmod(0o666)
    listener = Listener()
    run_dir = base / "run"
    targets = Targets(api_key=KEY, key_file=str(key_file), token_file=str(token_file), loot_dir=str(loot),
                      canary=str(canary), listener_port=listener.port, run_dir=str(run_dir))
    model = HostileModel(targets)
    server = Server(build_app(model))
    try:
        env = {**os.environ, "QG_TEST_KEY": KEY}
        proc = subprocess.run(
            [str(Path(sys.executable).parent / "quantgate"), "run", "--endpoint", server.url, "--tasks", "humaneval",
             "--local-data", "--allow-code-execution", "--api-key-env", "QG_TEST_KEY", "--output", str(run_dir),
             "--concurrency", "8"],
            env=env, capture_output=True, text=True, timeout=900)
    finally:
        server.close()
        listener.close()
    return proc, run_dir, model, targets, listener, base


def test_the_run_finishes_with_every_attack_failed_and_honest_code_passing(hostile_run):
    proc, run_dir, model, targets, _, _ = hostile_run
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert set(model.served) == set(targets.attacks()), model.served
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["complete"] is True and manifest["codeExecution"] == {"sandbox": "root"}
    results = json.loads(next(run_dir.glob("results_*.json")).read_text())
    n_attacks = len(targets.attacks())
    assert results["results"]["humaneval"]["pass@1,create_test"] == (64 - n_attacks) / 64
    samples = [json.loads(line) for line in next(run_dir.glob("samples_humaneval_*.jsonl")).read_text().splitlines()]
    by_doc = {s["doc_id"]: s["pass@1"] for s in samples}
    assert [by_doc[i] for i in range(n_attacks)] == [0.0] * n_attacks
    assert all(by_doc[i] == 1.0 for i in range(n_attacks, 64))


def test_nothing_leaked_onto_the_host(hostile_run):
    proc, run_dir, _, targets, listener, base = hostile_run
    assert listener.connections == 0
    assert list(Path(targets.loot_dir).iterdir()) == []
    for marker in MARKERS:
        assert not os.path.exists(marker), marker
    assert Path(targets.canary).read_text() == "runner data"
    assert not (run_dir / "hostile-marker").exists()
    assert not Path(str(run_dir) + ".partial").exists()  # the run was published intact
    for path in [*run_dir.rglob("*")]:
        if path.is_file():
            text = path.read_text(errors="replace")
            assert KEY not in text and "sa-token-stand-in" not in text, path
    assert KEY not in proc.stdout + proc.stderr
    assert _sandbox_processes() == []
    assert not list(Path("/tmp").glob("quantgate-sandbox-*"))  # working directories removed
