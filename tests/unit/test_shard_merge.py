"""`quantgate run --shard I/N` + `quantgate merge` equal an unsharded run, bit for bit.

Real lm-eval against simulated models: scores, stderrs, per-question samples, prompts
(few-shot examples included), and the comparison (verdict, drops, flips, intervals).
"""

import json
import shutil
from pathlib import Path

import pytest
import yaml

from quantgate.cli import main
from quantgate.errors import InputError
from quantgate.lmeval.merge import MergeError, merge_dirs, merge_payloads, read_shard_dir
from quantgate.lmeval.results import load_run
from quantgate.simulate import SimulatedFleet

ROOT = Path(__file__).resolve().parents[2]
# a group (mmlu), random few-shot draws (arc), generation (gsm8k), a continuous metric (truthfulqa_mc2)
TASKS = "arc_challenge:5@24,mmlu:2@3,truthfulqa_mc2@10,gsm8k:3@8,winogrande:5@10"
COUNTS = (1, 3, 4)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    cfg = yaml.safe_load((ROOT / "examples/simulate/demo-fleet.yaml").read_text())
    cfg["variants"] = [v for v in cfg["variants"] if v["name"] in ("fp16", "int4-g128")]
    root = tmp_path_factory.mktemp("shards")
    with SimulatedFleet(cfg) as fleet:
        for model in ("fp16", "int4-g128"):
            base = ["run", "--endpoint", fleet.url(model), "--tasks", TASKS, "--local-data"]
            assert main([*base, "--output", str(root / model / "full")]) == 0
            for n in COUNTS:
                for i in range(n):
                    assert main([*base, "--shard", f"{i}/{n}", "--output", str(root / model / f"{n}" / f"s{i}")]) == 0
                assert main(["merge", *[str(root / model / f"{n}" / f"s{i}") for i in range(n)],
                             "--output", str(root / model / f"merged{n}")]) == 0
    return root


def _shard_dirs(runs, model, n):
    return [runs / model / f"{n}" / f"s{i}" for i in range(n)]


def _records(run_dir):
    out = {}
    for p in sorted(Path(run_dir).glob("samples_*.jsonl")):
        task = p.name[len("samples_"):].rsplit("_", 1)[0]
        out[task] = [(r["doc_id"], r["filter"], json.dumps(r["arguments"]), r["doc_hash"], r["filtered_resps"],
                      {m: r[m] for m in r["metrics"]}) for r in map(json.loads, p.read_text().splitlines())]
    return out


def _results(run_dir):
    return json.loads(next(Path(run_dir).glob("results_*.json")).read_text())


@pytest.mark.parametrize("n", COUNTS)
@pytest.mark.parametrize("model", ["fp16", "int4-g128"])
def test_merged_run_equals_the_unsharded_run(runs, model, n):
    full, merged = runs / model / "full", runs / model / f"merged{n}"
    a, b = _results(full), _results(merged)
    for key in ("results", "groups", "group_subtasks", "n-shot", "higher_is_better", "n-samples", "configs",
                "versions"):
        assert a[key] == b[key], key
    # the same documents, prompts (few-shot examples included), responses and per-question values
    assert _records(full) == _records(merged)
    ra, rb = load_run(full), load_run(merged)
    assert ra.tasks == rb.tasks and ra.samples == rb.samples and ra.group_subtasks == rb.group_subtasks


def test_four_shards_cut_tasks_into_ranges_and_balance_cost(runs):
    infos = [read_shard_dir(d).info for d in _shard_dirs(runs, "fp16", 4)]
    cut = [t for i in infos for t, (a, b) in i["pieces"].items() if (a, b) != (0, i["tasks"][t])]
    assert cut, "the plan has a task larger than a quarter: some task must be cut"
    costs = [i["cost"] for i in infos]
    assert sum(costs) == infos[0]["totalCost"]
    assert max(costs) - min(costs) <= 2 * 10  # two documents of the costliest kind (truthfulqa_mc2)


def test_verdict_flips_and_intervals_are_identical(runs, capsys):
    def compare(tag):
        rc = main(["compare", "--baseline", str(runs / "fp16" / tag), "--candidate", str(runs / "int4-g128" / tag),
                   "--profile", "math-tutoring", "-o", "json"])
        return rc, capsys.readouterr().out

    rc, unsharded = compare("full")
    report = json.loads(unsharded)
    assert any("flips" in t for t in report["tasks"]) and report["verdict"]
    for n in COUNTS:
        assert compare(f"merged{n}") == (rc, unsharded)


def test_operator_payload_merge_equals_the_compact_results(runs, tmp_path):
    """The operator merges the shards' published payloads: same compact results as the unsharded run."""
    payloads = [json.loads(json.dumps(read_shard_dir(d).to_payload())) for d in _shard_dirs(runs, "int4-g128", 3)]
    merged = merge_payloads(payloads, tmp_path / "w")
    full = load_run(runs / "int4-g128" / "full").to_compact()
    # a merged run carries no lm-eval task hash (each shard's covers only its own documents)
    assert "docs" in full["setup"] and "docs" not in merged.to_compact()["setup"]
    full["setup"].pop("docs")
    assert merged.to_compact() | {"source": None} == full | {"source": None}


def test_incomplete_or_foreign_shard_sets_are_refused(runs, tmp_path):
    three, four = _shard_dirs(runs, "fp16", 3), _shard_dirs(runs, "fp16", 4)
    with pytest.raises(MergeError, match="1/3 missing"):
        merge_dirs([three[0], three[2]], tmp_path / "a")
    with pytest.raises(MergeError, match="given twice"):
        merge_dirs([three[0], three[0], three[1], three[2]], tmp_path / "b")
    with pytest.raises(MergeError, match="belongs to another run"):
        merge_dirs([three[0], four[1], three[2]], tmp_path / "c")
    with pytest.raises(InputError, match="not a shard"):
        merge_dirs([runs / "fp16" / "full"], tmp_path / "d")
    assert not (tmp_path / "a").exists()


def test_a_shard_whose_numbers_do_not_recompute_is_refused(runs, tmp_path):
    shards = []
    for d in _shard_dirs(runs, "fp16", 3):
        shutil.copytree(d, tmp_path / d.name)
        shards.append(tmp_path / d.name)
    results_file = next(shards[1].glob("results_*.json"))
    data = json.loads(results_file.read_text())
    task = next(t for t in read_shard_dir(shards[1]).info["pieces"] if t in data["results"])
    key = next(k for k in data["results"][task] if "," in k and "_stderr" not in k)
    data["results"][task][key] += 1e-12
    results_file.write_text(json.dumps(data))
    with pytest.raises(MergeError, match="cannot be merged exactly"):
        merge_dirs(shards, tmp_path / "out")


def test_merge_cli_bad_input_is_one_line(runs, tmp_path, capsys):
    rc = main(["merge", str(_shard_dirs(runs, "fp16", 3)[0]), "--output", str(tmp_path / "x")])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "missing" in err and "Traceback" not in err
