"""Progressive stages that append (`quantgate run --fraction F --after F0`, quantgate.lmeval.stage_delta)
on the simulator, with few-shot tasks: the runs of stages 1..k, each only the documents its stage
adds, merge into exactly the run of stage k from scratch — the same documents, scores and prompts
(each document draws the few-shot examples the run of every document draws); at 100% that is the
ordinary run. Broken chains are refused."""

import json
from pathlib import Path

import pytest

from quantgate.cli import main
from quantgate.lmeval.merge import MergeError, ShardRun, read_shard_dir
from quantgate.lmeval.stage_delta import merge_stages
from quantgate.simulate import SimulatedFleet
from quantgate.simulate.config import FleetConfig

FLEET = FleetConfig.model_validate({"seed": 5, "reference": "fp16", "variants": [
    {"name": "fp16", "accuracy": {"arc_challenge": 0.6, "mmlu": 0.66}}]})
TASKS = "arc_challenge:3,mmlu:2"  # a multiple-choice task and a group (strata), both few-shot


@pytest.fixture(scope="module")
def fleet():
    with SimulatedFleet(FLEET) as f:
        yield f


def run(fleet, out: Path, *extra) -> Path:
    rc = main(["run", "--endpoint", fleet.url("fp16"), "--tasks", TASKS, "--local-data", "--output", str(out),
               "--progress-interval", "60", *extra])
    assert rc == 0
    return out


def lines(run_dir: Path) -> dict[str, dict[int, dict]]:
    """Per leaf task: doc id → lm-eval's full sample record (prompt included)."""
    manifest = json.loads((run_dir / "manifest.json").read_text())
    out = {}
    for name in manifest["samples"]:
        task = name[len("samples_"):].rsplit("_", 1)[0]
        recs = [json.loads(x) for x in (run_dir / name).read_text().splitlines() if x.strip()]
        out[task] = {r["doc_id"]: r for r in recs}
    return out


def prompts(record: dict) -> list:
    return [a.get("arg_0") if isinstance(a, dict) else a for a in record["arguments"].values()] \
        if isinstance(record["arguments"], dict) else record["arguments"]


@pytest.fixture(scope="module")
def runs(fleet, tmp_path_factory):
    base = tmp_path_factory.mktemp("stages")
    return {
        "s1": run(fleet, base / "s1", "--fraction", "0.25", "--after", "0"),
        "s2": run(fleet, base / "s2", "--fraction", "0.5", "--after", "0.25"),
        "s4": run(fleet, base / "s4", "--fraction", "1.0", "--after", "0.5"),
        "scratch": run(fleet, base / "scratch", "--fraction", "0.5"),
        "full": run(fleet, base / "full"),
    }


def payload(run_dir: Path) -> dict:
    return read_shard_dir(run_dir, entry="stage").to_payload()


def test_appended_stages_merge_into_the_stage_run_from_scratch_prompts_included(runs):
    merged, records, manifest = merge_stages([payload(runs["s1"]), payload(runs["s2"])])
    scratch = lines(runs["scratch"])
    first, second = lines(runs["s1"]), lines(runs["s2"])
    assert set(records) == set(scratch)
    gaps = 0
    for task, by_id in scratch.items():
        assert [r["doc_id"] for r in records[task]] == sorted(by_id), task
        assert not set(first.get(task, {})) & set(second.get(task, {})), f"{task}: a document in two stages"
        for rec in records[task]:
            want = by_id[rec["doc_id"]]
            assert rec["doc_hash"] == want["doc_hash"]
            assert all(rec[m] == want[m] for m in rec["metrics"])
        for doc_id, rec in {**first.get(task, {}), **second.get(task, {})}.items():
            assert prompts(rec) == prompts(by_id[doc_id]), f"{task} doc {doc_id}: another prompt than from scratch"
        ids = sorted(by_id)
        gaps += sum(b - a > 1 for a, b in zip(ids, ids[1:]))
    assert gaps > 0  # the stage's documents are not a prefix: the few-shot draws had gaps to replay
    scratch_results = json.loads((runs["scratch"] / json.loads(
        (runs["scratch"] / "manifest.json").read_text())["results"]).read_text())
    for task, entry in scratch_results["results"].items():
        for key, value in entry.items():
            if "," in key:
                assert merged["results"][task][key] == value, (task, key)
    assert [t.get("fraction") for t in manifest["tasks"]] == [0.5, 0.5]
    assert all("after" not in t and "pieces" not in t for t in manifest["tasks"])


def test_every_stage_to_100_percent_is_the_ordinary_run(runs):
    s3 = payload(runs["s4"])  # stages 0.25, 0.5, 1.0
    merged, records, _ = merge_stages([payload(runs["s1"]), payload(runs["s2"]), s3])
    full = lines(runs["full"])
    staged = [lines(runs[k]) for k in ("s1", "s2", "s4")]
    for task, by_id in full.items():
        assert [r["doc_id"] for r in records[task]] == sorted(by_id)
        for stage in staged:  # every stage asked each of its documents the ordinary run's prompt
            for doc_id, rec in stage.get(task, {}).items():
                assert prompts(rec) == prompts(by_id[doc_id]), f"{task} doc {doc_id}"
        for rec in records[task]:
            assert all(rec[m] == by_id[rec["doc_id"]][m] for m in rec["metrics"])
    sent = [json.loads((runs[k] / "manifest.json").read_text())["requests"] for k in ("s1", "s2", "s4", "full")]
    assert sum(sent[:3]) == sent[3]  # the stages together asked what the ordinary run asks, once
    full_results = json.loads((runs["full"] / json.loads(
        (runs["full"] / "manifest.json").read_text())["results"]).read_text())
    for task, entry in full_results["results"].items():
        assert {k: v for k, v in entry.items() if "," in k} == \
            {k: v for k, v in merged["results"][task].items() if "," in k}, task


def test_a_broken_chain_of_stages_is_refused(runs):
    s1, s2, s4 = payload(runs["s1"]), payload(runs["s2"]), payload(runs["s4"])
    with pytest.raises(MergeError, match="starts after share 0.5"):
        merge_stages([s1, s4])  # stage 0.5 missing
    with pytest.raises(MergeError, match="starts after share 0.25"):
        merge_stages([s2])  # stage 1 missing
    with pytest.raises(MergeError):
        merge_stages([s1, s1])
    with pytest.raises(MergeError, match="not a stage run"):
        merge_stages([ShardRun(manifest={"tasks": []}, results={}).to_payload()])


def test_after_needs_a_larger_fraction(fleet, tmp_path, capsys):
    rc = main(["run", "--endpoint", fleet.url("fp16"), "--tasks", TASKS, "--local-data", "--output",
               str(tmp_path / "x"), "--fraction", "0.25", "--after", "0.5"])
    err = capsys.readouterr().err
    assert rc == 2 and "--after 0.5 needs --fraction F with F greater than it" in err
    assert "Traceback" not in err and not (tmp_path / "x").exists()


def test_quantgate_merge_joins_stage_runs_into_the_stage_run(runs, tmp_path, capsys):
    """Reproducing a cluster stage locally: `quantgate merge` on the stage run directories (any order)
    writes the run of the last stage — lm-eval's full sample records (prompts included) and scores."""
    out = tmp_path / "merged"
    assert main(["merge", str(runs["s2"]), str(runs["s1"]), "-o", str(out)]) == 0
    merged, scratch = lines(out), lines(runs["scratch"])
    assert set(merged) == set(scratch)
    for task, by_id in scratch.items():
        assert sorted(merged[task]) == sorted(by_id)
        for doc_id, rec in merged[task].items():
            assert prompts(rec) == prompts(by_id[doc_id])
            assert all(rec[m] == by_id[doc_id][m] for m in rec["metrics"])
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["complete"] is True and "stage" not in manifest
    assert [m["stage"] for m in manifest["mergedFrom"]] == ["0.0-0.25", "0.25-0.5"]
    rc = main(["merge", str(runs["s1"]), str(runs["s4"]), "-o", str(tmp_path / "gap")])
    err = capsys.readouterr().err
    assert rc == 2 and "starts after share 0.5" in err and "Traceback" not in err


def test_local_stages_with_few_shot_tasks_ask_each_document_once(fleet, tmp_path):
    """`evaluate --local --progressive`'s way: each stage runs its whole prefix with lm-eval's request
    cache. Since every document keeps its prompt from stage to stage (few-shot examples included), the
    cache answers all of the earlier stages' documents: the stages together send what one plain run
    of their last stage sends."""
    cache = tmp_path / "cache" / "fp16"
    cache.parent.mkdir()
    sent = []
    for fraction in ("0.25", "0.5"):
        out = run(fleet, tmp_path / fraction, "--fraction", fraction, "--request-cache", str(cache))
        sent.append(json.loads((out / "manifest.json").read_text())["requests"])
    plain = run(fleet, tmp_path / "plain", "--fraction", "0.5")
    assert sent[0] > 0 and sum(sent) == json.loads((plain / "manifest.json").read_text())["requests"]
