"""The `local-full` suite: generated deterministically at the official sizes, in the local data's schemas."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from quantgate.lmeval.full_sizes import MMLU_SUBJECT_SIZES, TASK_SIZES
from quantgate.lmeval.local_tasks import DATA_DIR, LOCAL_TASKS
from quantgate.lmeval.suites import LEADERBOARD_SHOTS, resolve_tasks
from quantgate.lmeval.tasks.full_data import FEWSHOT_ITEMS, MMLU_DEV_ITEMS, write_full_data

EVALUATED = {"gsm8k": "test", "arc_challenge": "test", "hellaswag": "validation", "winogrande": "validation",
             "truthfulqa_mc2": "validation"}


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*.jsonl"))}


@pytest.fixture(scope="module")
def full(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("full") / "data"
    write_full_data(root)
    return root


def test_the_same_bytes_every_time_in_any_process(full, tmp_path):
    again = tmp_path / "again"
    write_full_data(again)
    assert _files(again) == _files(full)
    # another interpreter with another string-hash seed: no set order leaks into the data
    other = tmp_path / "other"
    code = "import sys; from pathlib import Path; from quantgate.lmeval.tasks.full_data import write_full_data; " \
           "write_full_data(Path(sys.argv[1]))"
    subprocess.run([sys.executable, "-c", code, str(other)], check=True,
                   env={**os.environ, "PYTHONHASHSEED": "12345"})
    assert _files(other) == _files(full)


def test_official_sizes_and_few_shot_splits(full):
    for task, split in EVALUATED.items():
        assert len(_rows(full / task / f"{split}.jsonl")) == TASK_SIZES[task], task
    for task in ("gsm8k", "arc_challenge", "hellaswag", "winogrande"):
        assert len(_rows(full / task / "train.jsonl")) == FEWSHOT_ITEMS > 25  # 25-shot ARC draws from train
    assert sorted(p.name for p in (full / "mmlu").iterdir()) == sorted(MMLU_SUBJECT_SIZES)
    for subject, size in MMLU_SUBJECT_SIZES.items():
        test = _rows(full / "mmlu" / subject / "test.jsonl")
        assert len(test) == size and {r["subject"] for r in test} == {subject}
        assert len(_rows(full / "mmlu" / subject / "dev.jsonl")) == MMLU_DEV_ITEMS  # as the official dev split
    assert sum(MMLU_SUBJECT_SIZES.values()) == TASK_SIZES["mmlu"] == 14042 and len(MMLU_SUBJECT_SIZES) == 57


def test_every_file_has_the_fields_and_types_of_the_local_data(full):
    for local in sorted(DATA_DIR.rglob("*.jsonl")):
        rel = local.relative_to(DATA_DIR)
        if rel.parts[0] in ("humaneval", "mbpp"):
            continue  # code tasks are not in the leaderboard six
        if rel.parts[0] == "mmlu":
            rel = Path("mmlu", "abstract_algebra", rel.name)
        theirs, ours = _rows(local)[0], _rows(full / rel)
        shape = {k: type(v) for k, v in theirs.items()}
        assert all({k: type(v) for k, v in row.items()} == shape for row in ours), rel
    for row in _rows(full / "arc_challenge" / "test.jsonl"):
        assert row["answerKey"] in row["choices"]["label"] and len(set(row["choices"]["text"])) == 4
    for row in _rows(full / "hellaswag" / "validation.jsonl"):
        assert row["label"] in ("0", "1", "2", "3") and len(set(row["endings"])) == 4
    for row in _rows(full / "truthfulqa_mc2" / "validation.jsonl"):
        assert 1 in row["mc2_targets"]["labels"] and 0 in row["mc2_targets"]["labels"]
    for subject in MMLU_SUBJECT_SIZES:
        for row in _rows(full / "mmlu" / subject / "test.jsonl"):
            assert row["answer"] in range(4) and len(set(row["choices"])) == 4, row


def test_prompts_are_distinct_within_a_task_and_repeat_no_local_item(full):
    """The simulator recognises an item by its prompt: no two evaluated items (nor a local one) may share it."""
    def keys(root: Path, task: str) -> list[str]:
        out = []
        for path in sorted((root / task).rglob("*.jsonl")):
            for r in _rows(path):
                if task == "mmlu":
                    out.append(r["question"] + "|".join(r["choices"]))
                elif task == "hellaswag":
                    out.append(r["activity_label"] + r["ctx_a"] + r["ctx_b"])
                else:
                    out.append(r.get("question") or r.get("sentence"))
        return out

    for task in LOCAL_TASKS:
        ours = keys(full, task)
        assert len(set(ours)) == len(ours), task
        assert not set(ours) & set(keys(DATA_DIR, task)), task
    for path in full.rglob("*.jsonl"):
        assert "\\n\\n" not in path.read_text(), path  # prompts are keyed on the text after the last blank line


def test_the_suite_is_generated_once_into_the_cache_and_loads_at_full_size(tmp_path, monkeypatch):
    import yaml

    from quantgate.lmeval.full_tasks import full_dir, full_include_dir
    from quantgate.lmeval.local_tasks import lm_eval_tasks_dir

    first = full_dir(cache_root=tmp_path)
    assert first.parent == tmp_path / "local-full" and (first / ".complete").exists()
    stamp = (first / "data" / "gsm8k" / "test.jsonl").stat().st_mtime_ns
    assert full_dir(cache_root=tmp_path) == first  # keyed: reused, not rewritten
    assert (first / "data" / "gsm8k" / "test.jsonl").stat().st_mtime_ns == stamp
    hs = yaml.safe_load((first / "tasks" / "hellaswag.yaml").read_text())
    assert hs["include"] == str(lm_eval_tasks_dir() / "hellaswag" / "hellaswag.yaml")
    assert hs["dataset_kwargs"]["data_files"]["validation"] == str(first / "data" / "hellaswag" / "validation.jsonl")
    assert len(list((first / "tasks").glob("mmlu_*.yaml"))) == 57

    from lm_eval.tasks import TaskManager

    from quantgate.lmeval.offline import offline_environment

    offline_environment()
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf"))
    loaded = TaskManager(include_path=str(full_include_dir(cache_root=tmp_path)), include_defaults=False).load(
        ["mmlu", "arc_challenge"])
    sizes = {name: len(task.eval_docs) for name, task in loaded["tasks"].items()}
    assert sizes["arc_challenge"] == 1172
    assert sum(n for name, n in sizes.items() if name.startswith("mmlu_")) == 14042


def test_local_full_is_a_suite_of_the_six_with_their_standard_shots():
    assert {t.name: t.num_fewshot for t in resolve_tasks("local-full", None)} == LEADERBOARD_SHOTS


def test_the_runner_reads_the_full_size_data_for_the_suite_or_for_tasks_with_local_data(tmp_path):
    from quantgate.cli import build_parser
    from quantgate.commands.run import config_from_args
    from quantgate.lmeval.parallel import run_args
    from quantgate.lmeval.runner import RunConfig

    assert RunConfig(output=tmp_path, suite="local-full").local_suite == "local-full"
    assert RunConfig(output=tmp_path, suite="local-full", local_data="local").local_suite == "local-full"
    assert RunConfig(output=tmp_path, suite="local-full", local_data=False).local_suite is None
    assert RunConfig(output=tmp_path, suite="local").local_suite == "local"
    assert RunConfig(output=tmp_path, suite="leaderboard").local_suite is None
    args = build_parser().parse_args(["run", "--endpoint", "http://x", "--tasks", "gsm8k", "--local-data",
                                      "local-full", "--output", str(tmp_path / "o")])
    assert config_from_args(args).local_suite == "local-full"
    args = build_parser().parse_args(["run", "--endpoint", "http://x", "--tasks", "gsm8k", "--local-data",
                                      "--output", str(tmp_path / "o")])
    assert config_from_args(args).local_suite == "local"
    assert run_args("http://x", tmp_path, tasks="gsm8k", local_data="local-full")[-2:] == ["--local-data",
                                                                                           "local-full"]


def test_a_spec_may_list_tasks_on_local_full_and_its_plan_says_which_data():
    from quantgate.api.v1alpha1 import ModelEvaluationSpec
    from quantgate.lmeval.plan import run_plan

    def spec(**extra):
        return ModelEvaluationSpec.model_validate({
            "baseline": {"endpoint": {"url": "http://a"}}, "candidate": {"endpoint": {"url": "http://b"}}, **extra})

    full = run_plan(spec(suite="local-full", tasks=[{"name": "gsm8k"}]))
    local = run_plan(spec(suite="local", tasks=[{"name": "gsm8k"}]))
    assert full.runner_args() == ["--tasks", "gsm8k", "--local-data", "local-full"]
    assert local.runner_args() == ["--tasks", "gsm8k", "--local-data"]
    assert full.key_document() != local.key_document()  # the baseline cache never mixes the two datasets
    assert run_plan(spec(suite="local-full")).runner_args() == ["--suite", "local-full"]
    with pytest.raises(ValueError, match="either suite or tasks"):
        ModelEvaluationSpec.model_validate({
            "baseline": {"endpoint": {"url": "http://a"}}, "candidate": {"endpoint": {"url": "http://b"}},
            "suite": "tiny", "tasks": [{"name": "gsm8k"}]})


def test_a_fleet_names_the_suites_it_serves_and_their_indexes_never_share_a_prompt():
    from quantgate.errors import InputError
    from quantgate.simulate.config import load_fleet
    from quantgate.simulate.index import ItemIndex

    assert load_fleet({"variants": [{"name": "a"}]}).suites == ["local"]
    assert load_fleet({"suites": ["local", "local-full"], "variants": [{"name": "a"}]}).suites[1] == "local-full"
    with pytest.raises(InputError, match="invalid variants file"):
        load_fleet({"suites": ["leaderboard"], "variants": [{"name": "a"}]})
    local = ItemIndex({"keys": {"Q1 A": ["mmlu", "mmlu_x/0", 0, 2]}, "items": {"mmlu": {"mmlu_x/0": {}}}})
    full = ItemIndex({"keys": {"Q2 A": ["mmlu", "full:mmlu_x/0", 0, 2]}, "items": {"mmlu": {"full:mmlu_x/0": {}}}})
    local.merge(full)
    assert local.lookup("Q2 A").item == "full:mmlu_x/0" and set(local.items["mmlu"]) == {"mmlu_x/0", "full:mmlu_x/0"}
    clash = ItemIndex({"keys": {"Q1 A": ["mmlu", "full:mmlu_y/3", 0, 2]}, "items": {}})
    with pytest.raises(ValueError, match="share the key"):
        local.merge(clash)


def test_each_suite_is_planted_on_its_own():
    """Serving local-full next to local leaves the local answers as they were (exact planted accuracy)."""
    from quantgate.simulate.config import load_fleet
    from quantgate.simulate.index import ItemIndex
    from quantgate.simulate.model import SimulatedModel
    from quantgate.simulate.tokenizer import Tokenizer

    config = load_fleet({"seed": 4, "reference": "a", "variants": [{"name": "a", "accuracy": {"gsm8k": 0.5}}]})
    local_items = {str(i): {"gold": "1", "choices": 0} for i in range(10)}
    full_items = {f"full:{i}": {"gold": "1", "choices": 0} for i in range(30)}
    alone = SimulatedModel(config, config.variant("a"), ItemIndex({"keys": {}, "items": {"gsm8k": local_items}}),
                           Tokenizer([]))
    both = SimulatedModel(config, config.variant("a"),
                          ItemIndex({"keys": {}, "items": {"gsm8k": {**local_items, **full_items}}}), Tokenizer([]))
    assert both.correct["gsm8k"] & set(local_items) == alone.correct["gsm8k"] and len(alone.correct["gsm8k"]) == 5
    assert len(both.correct["gsm8k"] & set(full_items)) == 15
