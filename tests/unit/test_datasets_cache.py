"""Disconnected clusters: lm-eval's own task definitions read a prepared datasets cache with the
Hub offline. The cache here is quantgate's local data packed under the official dataset ids
(`quantgate datasets pack-local`), laid out as `quantgate datasets pull` lays out a download.

Runs go through the `quantgate` command in a fresh process, as in a runner Job: the Hugging
Face libraries read their offline switches once, at import.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from quantgate.simulate import SimulatedFleet

pytestmark = pytest.mark.slow  # each run constructs lm-eval's TaskManager in a fresh process

TASKS = "gsm8k@4,arc_challenge@4,hellaswag@4,winogrande@4,truthfulqa_mc2@4,mmlu_astronomy@4"
NAMES = ["gsm8k", "arc_challenge", "hellaswag", "winogrande", "truthfulqa_mc2", "mmlu_astronomy"]


def quantgate(*args, home: Path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env.update(HF_HOME=str(home), QUANTGATE_CACHE=str(home / "qg"))
    return subprocess.run([sys.executable, "-m", "quantgate.cli", *args], capture_output=True, text=True, env=env,
                          timeout=600)


def listing(directory: Path) -> list[str]:
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*"))


@pytest.fixture(scope="module")
def packed(tmp_path_factory):
    d = tmp_path_factory.mktemp("cache") / "datasets"
    done = quantgate("datasets", "pack-local", "--to", str(d), home=tmp_path_factory.mktemp("hf"))
    assert done.returncode == 0, done.stderr
    assert "13 datasets" in done.stdout
    return d


@pytest.fixture(scope="module")
def without_winogrande(packed, tmp_path_factory):
    d = tmp_path_factory.mktemp("partial") / "datasets"
    shutil.copytree(packed, d)
    shutil.rmtree(d / "allenai___winogrande")
    return d


@pytest.fixture(scope="module")
def fleet():
    with SimulatedFleet({"variants": [{"name": "m", "model": "m"}]}) as f:
        yield f


def test_pack_local_lays_out_the_official_ids(packed):
    dirs = {p.relative_to(packed).parts[:2] for p in packed.glob("*/*/*/*")}
    assert ("openai___gsm8k", "main") in dirs and ("allenai___winogrande", "winogrande_xl") in dirs
    assert ("cais___mmlu", "astronomy") in dirs and ("Rowan___hellaswag", "default") in dirs
    info = json.loads(next((packed / "openai___gsm8k").glob("main/*/*/dataset_info.json")).read_text())
    assert info["splits"]["test"]["num_examples"] == 250


def test_a_run_reads_only_the_cache_with_the_hub_offline(packed, fleet, tmp_path):
    before = listing(packed)
    done = quantgate("run", "--endpoint", fleet.url("m"), "--tasks", TASKS, "--datasets", str(packed),
                     "--output", str(tmp_path / "out"), home=tmp_path / "hf")
    assert done.returncode == 0, done.stderr
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["complete"] is True and manifest["datasetsCache"] == str(packed)
    results = json.loads(next((tmp_path / "out").glob("results_*.json")).read_text())
    assert set(results["results"]) >= set(NAMES)
    assert results["configs"]["gsm8k"]["dataset_path"] == "openai/gsm8k"  # lm-eval's own task, not a local copy
    assert listing(packed) == before  # read-only use: no lock or cache file was written into it
    assert not (tmp_path / "hf" / "hub").exists()  # nothing was downloaded


def test_a_cache_missing_one_task_fails_fast_naming_it(without_winogrande, fleet, tmp_path):
    before = fleet.stats("m")["completions"]
    done = quantgate("run", "--endpoint", fleet.url("m"), "--tasks", TASKS, "--datasets", str(without_winogrande),
                     "--output", str(tmp_path / "out"), home=tmp_path / "hf")
    assert done.returncode == 16, done.stderr
    [line] = [x for x in done.stderr.splitlines() if "error:" in x]
    assert "task winogrande" in line and "allenai/winogrande" in line and "Offline" in line, line
    assert "Traceback" not in done.stderr
    assert fleet.stats("m")["completions"] == before  # failed at task loading, before any request


def test_check_verifies_a_cache_and_names_what_is_missing(packed, without_winogrande, tmp_path):
    ok = quantgate("datasets", "check", str(packed), "--tasks", TASKS, home=tmp_path / "hf")
    assert ok.returncode == 0, ok.stderr
    assert all(f"{name}: ok" in ok.stdout for name in NAMES) and "all 6 tasks" in ok.stdout
    bad = quantgate("datasets", "check", str(without_winogrande), "--tasks", TASKS, home=tmp_path / "hf")
    assert bad.returncode == 16, bad.stderr
    assert "winogrande: MISSING" in bad.stdout and "gsm8k: ok" in bad.stdout
    [line] = [x for x in bad.stderr.splitlines() if "error:" in x]
    assert "lacks the data of winogrande;" in line and "datasets pull --tasks winogrande" in line


def test_a_directory_that_is_no_cache_is_bad_input(tmp_path):
    (tmp_path / "empty").mkdir()
    for directory in (tmp_path / "empty", tmp_path / "absent"):
        done = quantgate("datasets", "check", str(directory), "--suite", "leaderboard", home=tmp_path / "hf")
        assert done.returncode == 2 and "Traceback" not in done.stderr
        assert len([x for x in done.stderr.splitlines() if "error:" in x]) == 1
