"""load_run on real lm-eval 0.4.13 output (tests/fixtures/lmeval/runs, made by generate.py)."""

import gzip
import json
import random
import shutil
from pathlib import Path

import pytest

from quantgate.decision import Policy, compare
from quantgate.errors import InputError
from quantgate.core.runs import RunResults
from quantgate.lmeval.results import load_run
from quantgate.core.samples import TaskSamples
from quantgate.lmeval.samples import read_samples_file

RUNS = Path(__file__).resolve().parents[2] / "fixtures" / "lmeval" / "runs"


@pytest.fixture
def baseline_dir(tmp_path) -> Path:
    """A writable copy of the baseline's --output_path directory."""
    return Path(shutil.copytree(RUNS / "baseline", tmp_path / "baseline"))


def results_file(d: Path) -> Path:
    return next(d.glob("*/results_*.json"))


def test_output_directory_layout():
    run = load_run(RUNS / "baseline")
    assert run.model == "quantgate-sim/baseline"
    assert sorted(run.top_level()) == ["arc_challenge", "gsm8k", "hellaswag", "mmlu", "truthfulqa_mc2", "winogrande"]
    assert run.group_subtasks["mmlu"] == ["mmlu_stem", "mmlu_humanities"]
    assert run.leaves("mmlu") == ["mmlu_anatomy", "mmlu_astronomy", "mmlu_philosophy"]
    assert run.tasks["mmlu"].is_group and run.tasks["mmlu"].n == 12
    gsm = run.tasks["gsm8k"]
    assert set(gsm.metrics) == {"exact_match,strict-match", "exact_match,flexible-extract"}
    assert gsm.stderrs["exact_match,strict-match"] > 0 and gsm.n_shot == 0 and gsm.n == 10
    assert run.higher_is_better("mmlu", "acc,none") is True  # groups: from their subtasks
    # samples: every leaf, gsm8k with both filters, mc2 as probabilities
    assert set(run.samples) == set(run.tasks) - {"mmlu", "mmlu_stem", "mmlu_humanities"}
    assert set(run.samples["gsm8k"].values) == {"exact_match,strict-match", "exact_match,flexible-extract"}
    mc2 = run.samples["truthfulqa_mc2"].values["acc,none"]
    assert any(0 < v < 1 and v not in (0.03, 0.97) for v in mc2)
    assert sum(mc2) / len(mc2) == pytest.approx(run.tasks["truthfulqa_mc2"].metrics["acc,none"])


def test_results_file_directly_finds_its_samples():
    run = load_run(results_file(RUNS / "candidate"))
    assert run.samples["gsm8k"].doc_ids == list(range(10))


def test_fixture_comparison_end_to_end():
    out = compare(load_run(RUNS / "baseline"), load_run(RUNS / "candidate"), Policy(profile="math-tutoring"))
    g = out.tasks[0]
    assert (g.task, g.baseline, g.candidate, g.drop, g.n) == ("gsm8k", 0.5, 0.4, 20.0, 10)
    assert (g.flips.correct_to_incorrect, g.flips.incorrect_to_correct) == (1, 0)
    assert out.verdict.value == "Block"
    mmlu = next(t for t in out.tasks if t.task == "mmlu")
    assert mmlu.n == 12 and mmlu.flips is not None


def test_newest_results_file_wins(baseline_dir):
    old = results_file(baseline_dir)
    data = json.loads(old.read_text())
    data["results"]["gsm8k"]["exact_match,strict-match"] = 0.9
    newer = old.with_name("results_2099-01-01T00-00-00.000000.json")
    newer.write_text(json.dumps(data))
    run = load_run(baseline_dir)
    assert run.tasks["gsm8k"].metrics["exact_match,strict-match"] == 0.9
    assert run.samples == {}  # no samples carry the newer timestamp


def test_runner_directory_with_manifest(baseline_dir):
    (baseline_dir / "manifest.json").write_text(json.dumps({"complete": True}))
    assert "gsm8k" in load_run(baseline_dir).tasks
    rel = results_file(baseline_dir).relative_to(baseline_dir)
    (baseline_dir / "manifest.json").write_text(json.dumps({"complete": True, "results": str(rel)}))
    assert "gsm8k" in load_run(baseline_dir).tasks


@pytest.mark.parametrize("manifest", [{"complete": False}, {"phase": "Failed"}, {"status": "running"}])
def test_incomplete_runner_output_is_refused(baseline_dir, manifest):
    (baseline_dir / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(InputError, match="the run is not complete"):
        load_run(baseline_dir)


def test_failed_runner_output_shows_its_error(baseline_dir):
    manifest = {"complete": False, "error": "ConnectionError: endpoint down\nmore"}
    (baseline_dir / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(InputError) as exc:
        load_run(baseline_dir)
    assert str(exc.value) == (f"{baseline_dir}: the run is not complete (manifest.json: complete=False, phase=unset, "
                              "error: ConnectionError: endpoint down); wait for it to finish or rerun it")


def test_runner_output_missing_its_results_is_refused(baseline_dir):
    (baseline_dir / "manifest.json").write_text(json.dumps({"complete": True, "results": "m/results_x.json"}))
    with pytest.raises(InputError, match="names results file m/results_x.json which is missing"):
        load_run(baseline_dir)
    results_file(baseline_dir).unlink()
    (baseline_dir / "manifest.json").write_text(json.dumps({"complete": True}))
    with pytest.raises(InputError, match="the run recorded in manifest.json has no results file"):
        load_run(baseline_dir)


def test_several_models_in_one_directory_are_refused(tmp_path):
    shutil.copytree(RUNS / "baseline", tmp_path / "both", dirs_exist_ok=True)
    shutil.copytree(RUNS / "candidate", tmp_path / "both", dirs_exist_ok=True)
    with pytest.raises(InputError, match="results of several models"):
        load_run(tmp_path / "both")


@pytest.mark.parametrize("content, message", [
    (None, "no such file or directory"),
    ("{not json", "not valid JSON"),
    ("[1, 2]", "top level is not an object"),
    ('{"foo": 1}', "not lm-eval output \\(no 'results' object\\)"),
    ('{"results": {"gsm8k": 3}}', "results.gsm8k is not an object"),
])
def test_bad_results_files(tmp_path, content, message):
    f = tmp_path / "results_x.json"
    if content is not None:
        f.write_text(content)
    with pytest.raises(InputError, match=message):
        load_run(f)


def test_empty_directory(tmp_path):
    with pytest.raises(InputError, match="no results_\\*.json found"):
        load_run(tmp_path)


def test_garbage_sample_line_is_named(baseline_dir):
    f = next(baseline_dir.glob("*/samples_gsm8k_*.jsonl"))
    f.write_text(f.read_text() + '{"doc_id": 99}\n')
    with pytest.raises(InputError, match=r"samples_gsm8k_.*\.jsonl:21: not an lm-eval sample record"):
        load_run(baseline_dir)


def test_tail_parser_matches_a_full_parse(baseline_dir):
    for f in baseline_dir.glob("*/samples_*.jsonl"):
        fast = read_samples_file(f, "t")
        # same records with keys reordered: forces the full-parse path
        lines = [json.loads(x) for x in f.read_text().splitlines()]
        shuffled = f.with_suffix(".shuffled")
        shuffled.write_text("".join(json.dumps(dict(reversed(list(r.items())))) + "\n" for r in lines))
        slow = read_samples_file(shuffled, "t")
        assert (fast.doc_ids, fast.values, fast.digest) == (slow.doc_ids, slow.values, slow.digest)


def test_compact_round_trip_of_a_real_run():
    run = load_run(RUNS / "baseline")
    compact = json.loads(json.dumps(run.to_compact()))
    back = RunResults.from_compact(compact)
    assert back.tasks == run.tasks and back.group_subtasks == run.group_subtasks
    for name, s in run.samples.items():
        assert back.samples[name].doc_ids == s.doc_ids and back.samples[name].digest == s.digest
        for key, values in s.values.items():
            assert back.samples[name].values[key] == pytest.approx(values, abs=5e-5)
    assert compare(back, back, Policy()).verdict.value == "Ship"


def test_compact_form_is_small_for_full_size_runs():
    rng = random.Random(1)

    def binary(n):
        return [float(rng.random() < 0.6) for _ in range(n)]

    # MMLU's 14,042 questions over 57 subtasks, plus five other full-size tasks
    samples = {f"mmlu_s{i}": TaskSamples(list(range(247 if i else 14042 - 56 * 247)), {}, "d" * 64) for i in range(57)}
    for s in samples.values():
        s.values["acc,none"] = binary(len(s.doc_ids))
    samples["gsm8k"] = TaskSamples(list(range(1319)), {"exact_match,strict-match": binary(1319),
                                                       "exact_match,flexible-extract": binary(1319)}, "d" * 64)
    for name, n in (("hellaswag", 10042), ("arc_challenge", 1172), ("winogrande", 1267)):
        samples[name] = TaskSamples(list(range(n)), {"acc,none": binary(n), "acc_norm,none": binary(n)}, "d" * 64)
    samples["truthfulqa_mc2"] = TaskSamples(list(range(817)), {"acc,none": [rng.random() for _ in range(817)]}, "d" * 64)
    run = RunResults(tasks={}, samples=samples)
    raw = json.dumps(run.to_compact(), separators=(",", ":")).encode()
    assert sum(len(s.doc_ids) for n, s in samples.items() if n.startswith("mmlu")) == 14042
    assert len(raw) < 64_000, len(raw)
    assert len(gzip.compress(raw)) < 48_000
    back = RunResults.from_compact(json.loads(raw))
    assert back.samples["hellaswag"].values == samples["hellaswag"].values


def test_from_compact_rejects_other_data():
    with pytest.raises(InputError, match="not a quantgate compact result"):
        RunResults.from_compact({"results": {}})


def test_group_without_aggregate_is_replaced_by_its_subtasks():
    # real lm-eval output of `--tasks bundle,hellaswag`, bundle = gsm8k + winogrande, no aggregate
    run = load_run(RUNS.parent / "bundle" / "baseline")
    assert run.tasks["bundle"].metrics == {} and run.group_subtasks == {"bundle": ["gsm8k", "winogrande"]}
    assert sorted(run.top_level()) == ["gsm8k", "hellaswag", "winogrande"]
    out = compare(run, run, Policy(profile="math-tutoring"))
    assert [t.task for t in out.tasks] == run.top_level() and out.verdict.value == "Ship"


def test_json_output_path_layout_finds_samples_by_timestamp(baseline_dir):
    # lm-eval --output_path out.json writes out_<timestamp>.json beside samples_<task>_<timestamp>.jsonl
    f = results_file(baseline_dir)
    renamed = f.with_name("out_" + f.name.removeprefix("results_"))
    f.rename(renamed)
    assert "gsm8k" in load_run(renamed).samples



def test_runner_layout_flat_directory_with_manifest(tmp_path):
    # `quantgate run` writes lm-eval's files (output_path=<dir>/results.json) flat beside manifest.json
    src = next((RUNS / "baseline").iterdir())
    run_dir = tmp_path / "run"
    shutil.copytree(src, run_dir)
    files = sorted(p.name for p in run_dir.iterdir())
    manifest = {"kind": "RunManifest", "complete": True, "results": files[0],
                "samples": [f for f in files if f.startswith("samples_")]}
    assert files[0].startswith("results_")
    (run_dir / "manifest.json").write_text(json.dumps(manifest))
    run = load_run(run_dir)
    assert "gsm8k" in run.samples and run.model == "quantgate-sim/baseline"
    next(run_dir.glob("samples_winogrande_*")).unlink()
    with pytest.raises(InputError, match="manifest.json lists samples file samples_winogrande_.* which is missing"):
        load_run(run_dir)


@pytest.mark.parametrize("chunk", [1, 97, 5000])
def test_block_reader_handles_lines_across_blocks(baseline_dir, monkeypatch, chunk):
    from quantgate.lmeval import samples as samples_module

    f = next(baseline_dir.glob("*/samples_truthfulqa_mc2_*.jsonl"))
    f.write_text(f.read_text().replace("\n", "\n\n", 2))  # blank lines are skipped
    whole = read_samples_file(f, "t")
    monkeypatch.setattr(samples_module, "CHUNK", chunk)  # shorter than a line, or cutting lines
    pieces = read_samples_file(f, "t")
    assert (pieces.doc_ids, pieces.values, pieces.digest) == (whole.doc_ids, whole.values, whole.digest)
    assert len(whole.doc_ids) == 6


def test_non_numbers_are_not_metrics():
    from quantgate.lmeval.results import parse_results

    run = parse_results({"results": {"gsm8k": {"exact_match,strict-match": 0.5, "exact_match_stderr,strict-match": "N/A",
                                               "exact_match,flexible-extract": float("nan"), "alias": "gsm8k"}}})
    t = run.tasks["gsm8k"]
    assert t.metrics == {"exact_match,strict-match": 0.5} and t.stderrs == {}
    out = compare(run, run, Policy())
    assert out.tasks[0].ci95 is None and out.verdict.value == "Ship"
